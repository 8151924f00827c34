use godot::classes::multi_mesh::TransformFormat;
use godot::classes::{DisplayServer, INode3D, MultiMesh, MultiMeshInstance3D, Node3D, SphereMesh};
use godot::prelude::*;
use nexus_sim::{EmissionParams, EmitterDesc, World};

use crate::convert::vec3_to_array;
use crate::world_access::{parent_world, read_parent_world, with_parent_world};

/// A particle emitter of its parent `PhysicsWorldServer`'s native particle system. Particles fly
/// under gravity, drag and wind and collide with the terrain, static shapes and dynamic bodies;
/// the simulation runs in Rust (multi-threaded, deterministic from the world's seed), and each
/// emission is sent to clients as a seed so they can reproduce it. Where a renderer exists the
/// live particles are drawn with a MultiMesh (up to `max_drawn`).
#[derive(GodotClass)]
#[class(init, base = Node3D)]
pub struct ParticleField {
    /// Particles per second.
    #[export(range = (0.0, 1000000.0, 1.0, or_greater))]
    #[init(val = 200.0)]
    rate: f32,
    /// Main emission direction.
    #[export]
    #[init(val = Vector3::UP)]
    direction: Vector3,
    /// Mean speed, m/s.
    #[export(range = (0.0, 100.0, 0.1, or_greater, suffix = "m/s"))]
    #[init(val = 8.0)]
    speed: f32,
    /// Half-angle of the emission cone, degrees.
    #[export(range = (0.0, 180.0, 0.5, suffix = "°"))]
    #[init(val = 15.0)]
    spread_degrees: f32,
    /// Mean lifetime, s.
    #[export(range = (0.05, 60.0, 0.05, or_greater, suffix = "s"))]
    #[init(val = 3.0)]
    lifetime: f32,
    /// Most particles drawn (rendering only; the simulation keeps them all).
    #[export(range = (0.0, 1000000.0, 1.0, or_greater))]
    #[init(val = 20000)]
    max_drawn: i32,
    /// The emitter's id in the world, or -1 while not running.
    #[var(no_set)]
    #[init(val = -1)]
    emitter_id: i64,
    drawing: Option<Gd<MultiMeshInstance3D>>,
    base: Base<Node3D>,
}

#[godot_api]
impl INode3D for ParticleField {
    fn ready(&mut self) {
        let headless = DisplayServer::singleton().get_name() == "headless";
        if !headless {
            self.base_mut().set_process(true);
        }
    }

    // Drawing only, and only with a renderer.
    fn process(&mut self, _delta: f64) {
        self.draw();
    }
}

#[godot_api]
impl ParticleField {
    /// Live particles in the whole world's particle system.
    #[func]
    fn get_live_particle_count(&self) -> i64 {
        read_parent_world(&self.base(), |w| w.particles().live_count() as i64).unwrap_or(0)
    }

    /// Emits a burst of `count` particles now, from this node; false when not running.
    #[func]
    fn emit_burst(&mut self, count: i64) -> bool {
        let origin = vec3_to_array(self.base().get_global_position());
        let params = self.params();
        let node = self.base().clone().upcast::<Node>();
        if parent_world(&node).is_none() {
            return false;
        }
        let result = with_parent_world(&node, |w| {
            w.emit_particles(origin, count.clamp(0, i64::from(u32::MAX)) as u32, params)
        });
        match result {
            Some(Ok(_)) => true,
            Some(Err(error)) => {
                godot_error!("ParticleField.emit_burst: {error}");
                false
            }
            None => false,
        }
    }
}

impl ParticleField {
    fn params(&self) -> EmissionParams {
        EmissionParams {
            direction: vec3_to_array(self.direction),
            speed: self.speed,
            spread: self.spread_degrees.to_radians(),
            lifetime: self.lifetime,
            ..EmissionParams::default()
        }
    }

    /// Adds this node's emitter to a freshly built world.
    pub fn install(&mut self, world: &mut World) {
        let desc = EmitterDesc {
            origin: vec3_to_array(self.base().get_global_position()),
            rate: self.rate,
            params: self.params(),
        };
        match world.add_emitter(desc) {
            Ok(id) => self.emitter_id = i64::from(id),
            Err(error) => godot_error!("ParticleField {}: {error}", self.base().get_name()),
        }
    }

    fn draw(&mut self) {
        let Some(positions) = read_parent_world(&self.base(), |w| w.particles().positions()) else {
            return;
        };
        let drawing = match &self.drawing {
            Some(drawing) => drawing.clone(),
            None => {
                let mut mesh = SphereMesh::new_gd();
                mesh.set_radius(0.05);
                mesh.set_height(0.1);
                mesh.set_radial_segments(4);
                mesh.set_rings(2);
                let mut multimesh = MultiMesh::new_gd();
                multimesh.set_transform_format(TransformFormat::TRANSFORM_3D);
                multimesh.set_mesh(&mesh);
                let mut instance = MultiMeshInstance3D::new_alloc();
                instance.set_multimesh(&multimesh);
                // Particles are in world space: draw them from the origin, not from this node.
                instance.set_as_top_level(true);
                self.base_mut().add_child(&instance);
                self.drawing = Some(instance.clone());
                instance
            }
        };
        let Some(mut multimesh) = drawing.get_multimesh() else {
            return;
        };
        let count = positions.len().min(self.max_drawn.max(0) as usize);
        if multimesh.get_instance_count() < count as i32 {
            multimesh.set_instance_count((count as u32).next_power_of_two() as i32);
        }
        multimesh.set_visible_instance_count(count as i32);
        for (i, p) in positions.iter().take(count).enumerate() {
            multimesh.set_instance_transform(
                i as i32,
                Transform3D::new(Basis::IDENTITY, Vector3::new(p[0], p[1], p[2])),
            );
        }
    }
}
