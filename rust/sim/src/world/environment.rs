//! The world's side of the environment (see [`crate::environment`] for how it works): the
//! commands that change it, its step, and the terrain edits. Kept apart from the environment's
//! own state so that `environment` never depends on the world.

use rapier3d::prelude::{SharedShape, Vector};

use super::World;
use crate::command::EnvironmentCommand;
use crate::error::SimError;
use crate::event::{TerrainPatch, WorldEvent};
use crate::shapes::heightfield_array;
use crate::state::{BodyKind, EnvironmentState, ObjectDesc, ObjectId, Shape, WeatherKind};

/// Fastest wind accepted, m/s.
const MAX_WIND: f32 = 100.0;
/// Longest weather transition accepted, s.
const MAX_TRANSITION: f32 = 3600.0;
/// Largest single terrain edit, m (height change) and m (radius).
const MAX_TERRAIN_DELTA: f32 = 1000.0;
const MAX_TERRAIN_RADIUS: f32 = 10_000.0;

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), SimError> {
    if ok {
        Ok(())
    } else {
        Err(SimError::new("invalid_argument", message()))
    }
}

impl World {
    /// The environment part of the world state.
    pub fn environment_state(&self) -> EnvironmentState {
        EnvironmentState {
            weather: self.env.weather.clone(),
            time_of_day: self.env.time_of_day,
            day_length: self.env.day_length,
            terrain_id: self.env.terrain_id,
            terrain_revision: self.env.terrain_revision,
        }
    }

    /// Sets the environment to a saved state: weather (an ongoing transition goes on), wind, time
    /// of day, day length, terrain id and revision. For a world rebuilt from a saved campaign:
    /// restore the objects first, so that `state.terrain_id` names an existing static
    /// heightfield (`None` leaves the world without a terrain). Emits `WeatherChanged` and
    /// `TimeOfDayChanged`. Refuses out-of-range values with `invalid_argument`, a terrain id that
    /// is not a static heightfield with `unknown_object` or `not_terrain`; on error nothing
    /// changes.
    pub fn restore_environment(&mut self, state: EnvironmentState) -> Result<(), SimError> {
        let weather = &state.weather;
        check(
            weather.intensity.is_finite() && (0.0..=1.0).contains(&weather.intensity),
            || {
                format!(
                    "weather intensity must be within 0..=1, got {}",
                    weather.intensity
                )
            },
        )?;
        check(
            weather.wind.iter().all(|c| c.is_finite())
                && Vector::from_array(weather.wind).length() <= MAX_WIND,
            || {
                format!(
                    "wind must be finite and at most {MAX_WIND} m/s, got {:?}",
                    weather.wind
                )
            },
        )?;
        check(
            weather.transition_remaining.is_finite()
                && (0.0..=MAX_TRANSITION).contains(&weather.transition_remaining),
            || {
                format!(
                    "transition_remaining must be within 0..={MAX_TRANSITION} s, got {}",
                    weather.transition_remaining
                )
            },
        )?;
        // 24 h is midnight again (the store accepts it); anything else must be a clock time.
        check(
            state.time_of_day.is_finite() && (0.0..=24.0).contains(&state.time_of_day),
            || {
                format!(
                    "time_of_day must be within 0..=24 hours, got {}",
                    state.time_of_day
                )
            },
        )?;
        check(
            state.day_length.is_finite() && state.day_length >= 1.0,
            || format!("day length must be at least 1 s, got {}", state.day_length),
        )?;
        if let Some(terrain) = state.terrain_id {
            let record = self
                .objects
                .get(&terrain)
                .ok_or_else(|| SimError::unknown_object(terrain))?;
            if record.kind != BodyKind::Static || !matches!(record.shape, Shape::Heightfield { .. })
            {
                return Err(SimError::new(
                    "not_terrain",
                    format!(
                        "object {terrain} is not a static heightfield: it cannot be the terrain"
                    ),
                ));
            }
        }
        self.env.restore_weather(state.weather);
        self.env.time_of_day = state.time_of_day.rem_euclid(24.0);
        self.env.day_length = state.day_length;
        if self.env.terrain_id != state.terrain_id {
            self.env.terrain_id = state.terrain_id;
            self.particles.invalidate_terrain();
        }
        self.env.terrain_revision = state.terrain_revision;
        self.push_weather_event();
        self.push_time_event();
        Ok(())
    }

    /// Applies an environment edit (host or admin). Every change emits an event; invalid values
    /// are refused with `invalid_argument` (or `no_terrain`, `out_of_bounds`, `unknown_object`,
    /// `not_environment`).
    pub fn apply_environment(&mut self, cmd: EnvironmentCommand) -> Result<(), SimError> {
        match cmd {
            EnvironmentCommand::SetWeather {
                kind,
                transition_seconds,
            } => self.set_weather(kind, transition_seconds),
            EnvironmentCommand::SetWind { wind } => self.set_wind(wind),
            EnvironmentCommand::SetTimeOfDay { hours } => {
                check(hours.is_finite() && (0.0..24.0).contains(&hours), || {
                    format!("hours must be within 0..24, got {hours}")
                })?;
                self.env.time_of_day = hours;
                self.push_time_event();
                Ok(())
            }
            EnvironmentCommand::SetDayLength { seconds } => {
                check(seconds.is_finite() && seconds >= 1.0, || {
                    format!("day length must be at least 1 s, got {seconds}")
                })?;
                self.env.day_length = seconds;
                self.push_time_event();
                Ok(())
            }
            EnvironmentCommand::EditTerrain {
                center,
                radius,
                delta,
            } => self.edit_terrain(center, radius, delta).map(|_| ()),
            EnvironmentCommand::AddObject { object } => {
                self.add_environment_object(object).map(|_| ())
            }
            EnvironmentCommand::RemoveObject { id } => {
                let record = self
                    .objects
                    .get(&id)
                    .ok_or_else(|| SimError::unknown_object(id))?;
                if !record.environment {
                    return Err(SimError::new(
                        "not_environment",
                        format!("object {id} is not an environment object"),
                    ));
                }
                self.remove_object_with_reason(id, "environment")
            }
        }
    }

    /// Adds an environment object (flagged `environment: true` in `ObjectAdded`). The first
    /// static heightfield becomes the terrain.
    pub fn add_environment_object(&mut self, desc: ObjectDesc) -> Result<ObjectId, SimError> {
        self.insert_object(desc, None, true)
    }

    fn set_weather(&mut self, kind: WeatherKind, seconds: f32) -> Result<(), SimError> {
        check(
            seconds.is_finite() && (0.0..=MAX_TRANSITION).contains(&seconds),
            || format!("transition must be within 0..={MAX_TRANSITION} s, got {seconds}"),
        )?;
        let weather = &mut self.env.weather;
        if seconds == 0.0 {
            weather.kind = kind;
            weather.intensity = 1.0;
            weather.transition_to = None;
            weather.transition_remaining = 0.0;
        } else {
            weather.transition_to = Some(kind);
            weather.transition_remaining = seconds;
            self.env.transition_total = seconds;
            self.env.start_intensity = weather.intensity;
            self.env.since_progress_event = 0.0;
        }
        self.push_weather_event();
        Ok(())
    }

    fn set_wind(&mut self, wind: [f32; 3]) -> Result<(), SimError> {
        let speed = Vector::from_array(wind).length();
        check(
            wind.iter().all(|c| c.is_finite()) && speed <= MAX_WIND,
            || format!("wind must be finite and at most {MAX_WIND} m/s, got {wind:?}"),
        )?;
        self.env.weather.wind = wind;
        // Light bodies at rest would otherwise never notice the new wind.
        let light: Vec<ObjectId> = self.env.light_bodies.iter().copied().collect();
        for id in light {
            if let Some(handle) = self.body_handle(id) {
                self.physics.wake_up(handle, true);
            }
        }
        self.push_weather_event();
        Ok(())
    }

    fn push_weather_event(&mut self) {
        self.events.push(WorldEvent::WeatherChanged {
            weather: self.env.weather.clone(),
        });
    }

    fn push_time_event(&mut self) {
        self.events.push(WorldEvent::TimeOfDayChanged {
            time_of_day: self.env.time_of_day,
            day_length: self.env.day_length,
        });
    }

    /// Weather transition and clock, once per tick.
    pub(crate) fn step_environment(&mut self) {
        let dt = self.dt();
        let env = &mut self.env;
        if let Some(target) = env.weather.transition_to {
            let total = env.transition_total.max(dt);
            let half = total * 0.5;
            let before = env.weather.transition_remaining;
            let remaining = (before - dt).max(0.0);
            env.weather.transition_remaining = remaining;
            let mut milestone = false;
            if remaining > half {
                // Fading out the old weather.
                env.weather.intensity = env.start_intensity * ((remaining - half) / half);
            } else {
                if before > half || env.weather.kind != target {
                    env.weather.kind = target;
                    milestone = true;
                }
                env.weather.intensity = ((half - remaining) / half).clamp(0.0, 1.0);
            }
            if remaining <= 0.0 {
                env.weather.kind = target;
                env.weather.intensity = 1.0;
                env.weather.transition_to = None;
                env.weather.transition_remaining = 0.0;
                milestone = true;
            }
            env.since_progress_event += dt;
            if env.since_progress_event >= self.config.environment.transition_event_interval {
                milestone = true;
            }
            if milestone {
                env.since_progress_event = 0.0;
                self.push_weather_event();
            }
        }
        let env = &mut self.env;
        let before = env.time_of_day;
        env.time_of_day = (before + 24.0 * dt / env.day_length).rem_euclid(24.0);
        if env.time_of_day.floor() != before.floor() {
            self.push_time_event();
        }
    }

    /// Wind drag on awake light dynamic bodies (sleeping ones cost nothing).
    pub(crate) fn apply_wind(&mut self) {
        let wind = self.env.wind();
        if wind == Vector::ZERO || self.env.light_bodies.is_empty() {
            return;
        }
        let dt = self.dt();
        let drag = self.config.environment.wind_drag;
        let active: Vec<_> = self.physics.islands.active_bodies().collect();
        for handle in active {
            let body = &mut self.physics.bodies[handle];
            let id = body.user_data as ObjectId;
            if !body.is_dynamic() || !self.env.light_bodies.contains(&id) {
                continue;
            }
            let Some(record) = self.objects.get(&id) else {
                continue;
            };
            let relative = wind - body.linvel();
            let speed = relative.length();
            let radius = record.bounding_radius.min(5.0);
            let area = std::f32::consts::PI * radius * radius;
            let mass = body.mass().max(1.0e-3);
            // Quadratic drag, capped so one tick never overshoots the wind speed.
            let dv = (drag * area * speed * dt / mass).min(1.0);
            body.apply_impulse(relative * (dv * mass), true);
        }
    }

    /// Raises (`delta > 0`) or lowers the terrain around `center` (`[x, z]`, world space) within
    /// `radius` metres. Returns the patch that was also emitted as `TerrainEdited`.
    pub fn edit_terrain(
        &mut self,
        center: [f32; 2],
        radius: f32,
        delta: f32,
    ) -> Result<TerrainPatch, SimError> {
        check(
            center.iter().all(|c| c.is_finite())
                && radius.is_finite()
                && radius > 0.0
                && radius <= MAX_TERRAIN_RADIUS
                && delta.is_finite()
                && delta.abs() <= MAX_TERRAIN_DELTA,
            || {
                format!(
                    "terrain edit needs finite center, radius in (0, {MAX_TERRAIN_RADIUS}] and |delta| <= {MAX_TERRAIN_DELTA}, got center {center:?} radius {radius} delta {delta}"
                )
            },
        )?;
        let terrain_id = self
            .env
            .terrain_id
            .ok_or_else(|| SimError::new("no_terrain", "the world has no terrain to edit"))?;
        let record = self
            .objects
            .get(&terrain_id)
            .ok_or_else(|| SimError::unknown_object(terrain_id))?;
        let pose = *self.physics.bodies[record.body].position();
        let collider = record.collider;
        let Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } = &record.shape
        else {
            return Err(SimError::new(
                "no_terrain",
                "the terrain is not a heightfield",
            ));
        };
        let (rows, cols, size) = (*rows as usize, *cols as usize, *size);
        let local =
            pose.inverse_transform_point(Vector::new(center[0], pose.translation.y, center[1]));
        let col_of = |x: f32| (x / size[0] + 0.5) * (cols - 1) as f32;
        let row_of = |z: f32| (z / size[2] + 0.5) * (rows - 1) as f32;
        let c0 = col_of(local.x - radius).ceil().max(0.0);
        let c1 = col_of(local.x + radius).floor().min((cols - 1) as f32);
        let r0 = row_of(local.z - radius).ceil().max(0.0);
        let r1 = row_of(local.z + radius).floor().min((rows - 1) as f32);
        if c0 > c1 || r0 > r1 {
            return Err(SimError::new(
                "out_of_bounds",
                format!("the edit at {center:?} (radius {radius}) misses the terrain"),
            ));
        }
        let (c0, c1, r0, r1) = (c0 as usize, c1 as usize, r0 as usize, r1 as usize);
        let mut heights = heights.clone();
        for r in r0..=r1 {
            let z = (r as f32 / (rows - 1) as f32 - 0.5) * size[2];
            for c in c0..=c1 {
                let x = (c as f32 / (cols - 1) as f32 - 0.5) * size[0];
                let d2 = ((x - local.x).powi(2) + (z - local.z).powi(2)) / (radius * radius);
                if d2 < 1.0 {
                    let weight = (1.0 - d2) * (1.0 - d2);
                    let h = &mut heights[r * cols + c];
                    *h = (*h + delta * weight / size[1]).clamp(-10_000.0, 10_000.0);
                }
            }
        }
        // Ground heights under nearby objects before the edit, to carry resting ones along.
        let world_center = [center[0], pose.translation.y, center[1]];
        let nearby: Vec<(ObjectId, f32)> = self
            .grid
            .within(world_center, radius + delta.abs() + 2.0)
            .into_iter()
            .filter(|id| *id != terrain_id)
            .filter_map(|id| {
                let record = self.objects.get(&id)?;
                if !matches!(record.kind, BodyKind::Dynamic | BodyKind::Player) {
                    return None;
                }
                let p = self.physics.bodies[record.body].translation();
                Some((id, self.terrain_height(p.x, p.z)?))
            })
            .collect();
        let patch_heights: Vec<f32> = (r0..=r1)
            .flat_map(|r| heights[r * cols + c0..=r * cols + c1].iter().copied())
            .collect();
        self.physics.colliders[collider].set_shape(SharedShape::heightfield(
            heightfield_array(rows, cols, &heights),
            Vector::from_array(size),
        ));
        let record = self.objects.get_mut(&terrain_id).expect("checked above");
        record.shape = Shape::Heightfield {
            rows: rows as u32,
            cols: cols as u32,
            heights,
            size,
        };
        let max_h = match &record.shape {
            Shape::Heightfield { heights, .. } => {
                heights.iter().fold(0.0f32, |m, h| m.max(h.abs())) * size[1]
            }
            _ => 0.0,
        };
        record.bounding_radius =
            (size[0] * size[0] * 0.25 + size[2] * size[2] * 0.25 + max_h * max_h).sqrt();
        self.env.terrain_revision += 1;
        let stamp = self.stamp();
        self.changes.touch(terrain_id, stamp);
        self.particles.invalidate_terrain();
        // Bodies on the changed ground must notice it; those the ground rose under are lifted
        // with it (a heightfield is one-sided: a body left below its surface would fall through).
        for (id, old_ground) in nearby {
            let Some(record) = self.objects.get(&id) else {
                continue;
            };
            let (handle, kind, reach) = (record.body, record.kind, record.bounding_radius);
            let mut p = self.physics.bodies[handle].translation();
            let Some(new_ground) = self.terrain_height(p.x, p.z) else {
                continue;
            };
            let rise = new_ground - old_ground;
            if rise > 0.0 && p.y >= old_ground - reach && p.y < new_ground + reach {
                p.y += rise;
                // Moved now, not by the next step: `changed_since` must say so at once (a save
                // taken before that step would otherwise keep the body under the new ground).
                self.changes.touch(id, stamp);
                if kind == BodyKind::Player {
                    let owner = record.owner;
                    self.physics.bodies[handle].set_translation(p, true);
                    if let Some(player) = owner.and_then(|c| self.players.get_mut(&c)) {
                        player.character.position = p.to_array();
                    }
                } else {
                    self.physics.bodies[handle].set_translation(p, true);
                }
            }
            if kind == BodyKind::Dynamic {
                self.physics.wake_up(handle, true);
            }
        }
        let patch = TerrainPatch {
            terrain_id,
            revision: self.env.terrain_revision,
            row0: r0 as u32,
            col0: c0 as u32,
            rows: (r1 - r0 + 1) as u32,
            cols: (c1 - c0 + 1) as u32,
            heights: patch_heights,
        };
        self.events.push(WorldEvent::TerrainEdited(patch.clone()));
        Ok(patch)
    }

    /// Height of the terrain surface at world `[x, z]` (bilinear between samples), if the world
    /// has a terrain covering that point.
    pub fn terrain_height(&self, x: f32, z: f32) -> Option<f32> {
        let record = self.objects.get(&self.env.terrain_id?)?;
        let pose = self.physics.bodies[record.body].position();
        let Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } = &record.shape
        else {
            return None;
        };
        let local = pose.inverse_transform_point(Vector::new(x, pose.translation.y, z));
        crate::particles::TerrainSampler::sample_grid(
            *rows as usize,
            *cols as usize,
            heights,
            *size,
            local.x,
            local.z,
        )
        .map(|h| h + pose.translation.y)
    }
}
