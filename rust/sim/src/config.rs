//! World configuration. Every field has a default, so a host only sets what it cares about:
//! `WorldConfig { seed: 7, ..Default::default() }`.

use serde::{Deserialize, Serialize};

use crate::movement::MovementSettings;

/// How a world is set up. Saved with the world (a restored world keeps its configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorldConfig {
    /// Fixed ticks per second (default 60).
    pub tick_rate: u32,
    /// Gravity in m/s² (default `[0, -9.81, 0]`).
    pub gravity: [f32; 3],
    /// Seed of every random choice in the world (particles, gusts), so runs are reproducible.
    pub seed: u64,
    /// Where avatars appear when the host gives no position.
    pub spawn_point: [f32; 3],
    /// Player movement (shared with predicting clients).
    pub movement: MovementSettings,
    /// Input queue limits.
    pub input: InputSettings,
    /// Interaction rules.
    pub interaction: InteractionSettings,
    /// Environment defaults.
    pub environment: EnvironmentSettings,
    /// Particle system limits.
    pub particles: ParticleSettings,
    /// Cell size in metres of the interest grid behind `objects_within`.
    pub interest_cell_size: f32,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            tick_rate: 60,
            gravity: [0.0, -9.81, 0.0],
            seed: 0x005E_ED0F_4E58_5553,
            spawn_point: [0.0, 2.0, 0.0],
            movement: MovementSettings::default(),
            input: InputSettings::default(),
            interaction: InteractionSettings::default(),
            environment: EnvironmentSettings::default(),
            particles: ParticleSettings::default(),
            interest_cell_size: 16.0,
        }
    }
}

impl WorldConfig {
    /// Length of one tick in seconds.
    pub fn dt(&self) -> f32 {
        1.0 / self.tick_rate.max(1) as f32
    }
}

/// Limits of the per-client input queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InputSettings {
    /// Processed inputs kept per client for `inputs_since` (default 60: one second at 60 Hz).
    pub history: usize,
    /// Inputs waiting per client before new ones are refused with `queue_full`.
    pub max_queued: usize,
    /// How far ahead of the current tick an input may target before `too_far_ahead`.
    pub max_future_ticks: u64,
    /// Inputs processed per client per tick; a client catching up after a stall may use more
    /// than one, but never enough to move faster than this many ticks' worth.
    pub max_per_tick: usize,
    /// An input whose target tick is this many ticks in the past is stale and ignored.
    pub stale_after_ticks: u64,
    /// After this many ticks without any input the avatar still falls (idle movement steps), so
    /// a silent client does not hang in the air. Shorter gaps are waited out, which keeps the
    /// server's movement identical to the client's prediction under normal jitter.
    pub idle_after_ticks: u64,
}

impl Default for InputSettings {
    fn default() -> Self {
        InputSettings {
            history: 60,
            max_queued: 120,
            max_future_ticks: 600,
            max_per_tick: 3,
            stale_after_ticks: 60,
            idle_after_ticks: 10,
        }
    }
}

/// Rules of the built-in interactions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InteractionSettings {
    /// Max distance (m) from the avatar's centre to the surface of an object it picks up, uses or
    /// destroys.
    pub reach: f32,
    /// Max distance (m) from the avatar's centre to the position of something it builds.
    pub build_reach: f32,
    /// Heaviest object (kg) a player can pick up.
    pub max_pickup_mass: f32,
    /// Distance (m) in front of the avatar's centre where a held object floats.
    pub hold_distance: f32,
    /// Fastest throw (m/s) a drop may ask for.
    pub max_throw_speed: f32,
    /// Objects one client may have built and still own.
    pub max_built_per_client: usize,
}

impl Default for InteractionSettings {
    fn default() -> Self {
        InteractionSettings {
            reach: 3.0,
            build_reach: 8.0,
            max_pickup_mass: 200.0,
            hold_distance: 1.5,
            max_throw_speed: 25.0,
            max_built_per_client: 1000,
        }
    }
}

/// Environment defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvironmentSettings {
    /// Real seconds per in-game day.
    pub day_length: f32,
    /// Hour the world starts at.
    pub start_time_of_day: f32,
    /// Bodies lighter than this (kg) are pushed by the wind.
    pub light_body_mass: f32,
    /// Wind drag: force per (m/s of relative wind · m² of cross-section), N·s/m³.
    pub wind_drag: f32,
    /// While the weather changes, a progress event is sent this often (seconds).
    pub transition_event_interval: f32,
}

impl Default for EnvironmentSettings {
    fn default() -> Self {
        EnvironmentSettings {
            day_length: 1200.0,
            start_time_of_day: 12.0,
            light_body_mass: 10.0,
            wind_drag: 0.6,
            transition_event_interval: 0.5,
        }
    }
}

/// Particle system limits and physics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ParticleSettings {
    /// Most live particles; emissions beyond it are cut short (the event says how many).
    pub max_particles: usize,
    /// Linear air drag per second (velocity relaxes towards the wind at this rate).
    pub drag: f32,
    /// Fraction of normal speed kept when bouncing.
    pub restitution: f32,
    /// Fraction of tangential speed kept when bouncing.
    pub friction: f32,
    /// Particles below this height are removed.
    pub kill_height: f32,
    /// Colliders larger than this (m, bounding radius) are ignored by particle collisions,
    /// except the terrain, which is sampled exactly.
    pub max_collider_radius: f32,
}

impl Default for ParticleSettings {
    fn default() -> Self {
        ParticleSettings {
            max_particles: 4_000_000,
            drag: 0.1,
            restitution: 0.3,
            friction: 0.8,
            kill_height: -100.0,
            max_collider_radius: 64.0,
        }
    }
}
