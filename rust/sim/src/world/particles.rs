//! The world's side of the particle system (see [`crate::particles`]): emitters and emissions
//! checked against the world, and the step fed with the world's colliders and environment.

use super::World;
use crate::error::SimError;
use crate::event::{EmissionParams, ParticleEmission, WorldEvent};
use crate::particles::{
    ColliderProxy, EMISSIONS_PER_SECOND, Emitter, EmitterDesc, MAX_EMISSION, ParticleForces,
    ParticleSystem, ProxyShape, TerrainSampler, mix_seed, validate_params,
};
use crate::state::Tick;

impl World {
    /// The particle system (read-only).
    pub fn particles(&self) -> &ParticleSystem {
        &self.particles
    }

    /// Adds a continuous emitter; returns its id. Each tick it emits `rate · dt` particles
    /// (fractions carry over) and a `ParticlesEmitted` event.
    pub fn add_emitter(&mut self, desc: EmitterDesc) -> Result<u32, SimError> {
        crate::objects::check_position(desc.origin)?;
        validate_params(&desc.params)?;
        if !desc.rate.is_finite() || !(0.0..=10_000_000.0).contains(&desc.rate) {
            return Err(SimError::new(
                "invalid_argument",
                format!("rate must be within 0..=1e7 particles/s, got {}", desc.rate),
            ));
        }
        let id = self.particles.next_emitter;
        self.particles.next_emitter += 1;
        self.particles.emitters.insert(
            id,
            Emitter {
                desc,
                accumulator: 0.0,
            },
        );
        Ok(id)
    }

    /// Removes an emitter (its particles live on).
    pub fn remove_emitter(&mut self, id: u32) -> Result<(), SimError> {
        self.particles
            .emitters
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| SimError::new("unknown_emitter", format!("no emitter with id {id}")))
    }

    /// Emits a one-off burst now; returns the emission (also sent as an event).
    pub fn emit_particles(
        &mut self,
        origin: [f32; 3],
        count: u32,
        params: EmissionParams,
    ) -> Result<ParticleEmission, SimError> {
        crate::objects::check_position(origin)?;
        validate_params(&params)?;
        if count > MAX_EMISSION {
            return Err(SimError::new(
                "invalid_argument",
                format!("at most {MAX_EMISSION} particles per emission, got {count}"),
            ));
        }
        self.particles.bursts += 1;
        let seed = mix_seed(&[self.config.seed, 0, self.tick, self.particles.bursts]);
        let emitted = self.particles.emit(seed, count, origin, &params);
        let emission = ParticleEmission {
            emitter_id: 0,
            tick: self.stamp(),
            seed,
            count: emitted,
            origin,
            params,
        };
        self.events
            .push(WorldEvent::ParticlesEmitted(emission.clone()));
        Ok(emission)
    }

    pub(crate) fn step_particles(&mut self, next: Tick) {
        let dt = self.dt();
        // Emitters release what they accumulated in bursts, at most EMISSIONS_PER_SECOND times a
        // second: every emission is an event every client receives, and a fountain emitting on
        // every tick would send each client 60 of them a second.
        let burst_every = u64::from(self.config.tick_rate / EMISSIONS_PER_SECOND).max(1);
        let burst_tick = next.is_multiple_of(burst_every);
        let ids: Vec<u32> = self.particles.emitters.keys().copied().collect();
        for id in ids {
            let emitter = self.particles.emitters.get_mut(&id).expect("listed");
            emitter.accumulator += emitter.desc.rate * dt;
            let count = emitter.accumulator.floor();
            if count < 1.0 || !burst_tick {
                continue;
            }
            emitter.accumulator -= count;
            let desc = emitter.desc.clone();
            let seed = mix_seed(&[self.config.seed, id as u64, next]);
            let emitted = self.particles.emit(
                seed,
                (count as u32).min(MAX_EMISSION),
                desc.origin,
                &desc.params,
            );
            self.events
                .push(WorldEvent::ParticlesEmitted(ParticleEmission {
                    emitter_id: id,
                    tick: next,
                    seed,
                    count: emitted,
                    origin: desc.origin,
                    params: desc.params,
                }));
        }
        if self.particles.live == 0 {
            return;
        }
        if self.particles.terrain_dirty {
            self.particles.terrain = self.env.terrain_id.and_then(|id| {
                let record = self.objects.get(&id)?;
                let offset = self.physics.bodies[record.body].translation().to_array();
                TerrainSampler::new(&record.shape, offset)
            });
            self.particles.terrain_dirty = false;
        }
        let mut grid = std::mem::take(&mut self.particles.grid);
        grid.rebuild(self.particle_colliders());
        let forces = ParticleForces {
            dt,
            gravity: self.config.gravity,
            wind: self.env.weather.wind,
        };
        let terrain = self.particles.terrain.take();
        self.particles.step(&forces, terrain.as_ref(), &grid);
        self.particles.terrain = terrain;
        self.particles.grid = grid;
    }

    /// Proxies of the colliders that particles may touch during the next step.
    fn particle_colliders(&self) -> Vec<ColliderProxy> {
        use rapier3d::prelude::{Aabb, Vector};
        let Some((lo, hi)) = self.particles.bounds else {
            return Vec::new();
        };
        // Particles move at most a few metres per tick in any sane scene; the margin covers it.
        let margin = 4.0;
        let aabb = Aabb::new(
            Vector::from_array(lo) - Vector::splat(margin),
            Vector::from_array(hi) + Vector::splat(margin),
        );
        let max_radius = self.particles.settings.max_collider_radius;
        let query = self.physics.query_pipeline();
        let mut proxies = Vec::new();
        for (_, collider) in query.intersect_aabb_conservative(aabb) {
            if collider.is_sensor() {
                continue;
            }
            let shape = collider.shape();
            let pose = collider.position();
            let velocity = collider
                .parent()
                .and_then(|h| self.physics.bodies.get(h))
                .map(|b| b.linvel().to_array())
                .unwrap_or([0.0; 3]);
            let proxy_shape;
            let center;
            let radius;
            if let Some(ball) = shape.as_ball() {
                center = pose.translation;
                radius = ball.radius;
                proxy_shape = ProxyShape::Sphere { radius };
            } else if let Some(capsule) = shape.as_capsule() {
                let a = pose.transform_point(capsule.segment.a);
                let b = pose.transform_point(capsule.segment.b);
                center = (a + b) * 0.5;
                let axis = (b - a) * 0.5;
                radius = axis.length() + capsule.radius;
                proxy_shape = ProxyShape::Capsule {
                    axis: axis.to_array(),
                    radius: capsule.radius,
                };
            } else {
                use rapier3d::prelude::ShapeType;
                if matches!(
                    shape.shape_type(),
                    ShapeType::TriMesh | ShapeType::HeightField | ShapeType::Compound
                ) {
                    // Meshes are hollow and heightfields are handled by the terrain sampler.
                    continue;
                }
                let local = shape.compute_local_aabb();
                center = pose.transform_point(local.center());
                let half = local.half_extents();
                radius = half.length();
                let r = pose.rotation;
                proxy_shape = ProxyShape::Box {
                    half: half.to_array(),
                    axes: [
                        (r * Vector::X).to_array(),
                        (r * Vector::Y).to_array(),
                        (r * Vector::Z).to_array(),
                    ],
                };
            }
            if radius > max_radius {
                continue;
            }
            proxies.push(ColliderProxy {
                center: center.to_array(),
                velocity,
                shape: proxy_shape,
                radius,
            });
        }
        proxies
    }
}
