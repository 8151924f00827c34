//! Events the world emits while it steps. The host drains them after each tick
//! (`World::drain_events`) and turns them into wire events (`object_added`, `interaction:result`,
//! `environment:*`, ...). They are *reliable*: every one must reach the clients it concerns.

use serde::{Deserialize, Serialize};

use crate::command::InteractionKind;
use crate::state::{ClientId, ObjectId, ObjectState, Tick, WeatherState};

/// Outcome of one interaction request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InteractionResult {
    /// The client that asked.
    pub client_id: ClientId,
    /// The request id the client chose.
    pub request_id: u32,
    /// The interaction kind asked for.
    pub kind: InteractionKind,
    /// Whether it happened.
    pub success: bool,
    /// Stable snake_case reason: `ok`, `out_of_reach`, `held_by_other`, `not_pickupable`,
    /// `nothing_held`, `overlaps`, `forbidden`, `unknown_object`, `unknown_interaction`, `vetoed`...
    pub code: String,
    /// Human-readable explanation (empty on success).
    pub message: String,
    /// The object concerned (the target, or the built/dropped object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ObjectId>,
    /// Extra data from the handler (e.g. the id of a built object).
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A terrain edit: the rectangular block of heightfield samples that changed, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerrainPatch {
    /// The terrain object.
    pub terrain_id: ObjectId,
    /// Terrain revision after this edit.
    pub revision: u32,
    /// First changed row (Z index).
    pub row0: u32,
    /// First changed column (X index).
    pub col0: u32,
    /// Number of rows in the block.
    pub rows: u32,
    /// Number of columns in the block.
    pub cols: u32,
    /// The new heights of the block, row-major.
    pub heights: Vec<f32>,
}

/// A particle emission clients can reproduce deterministically from its seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticleEmission {
    /// The emitter (0 for a one-off burst).
    pub emitter_id: u32,
    /// Tick of the emission.
    pub tick: Tick,
    /// Seed from which every particle of the emission derives.
    pub seed: u64,
    /// Particles emitted.
    pub count: u32,
    /// Emission point, world space.
    pub origin: [f32; 3],
    /// Direction, speed, spread and lifetime of the particles (with the seed, enough for a client
    /// to rebuild them with `nexus_sim::particles::emission_particle`).
    #[serde(default)]
    pub params: EmissionParams,
}

/// How the particles of an emission start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmissionParams {
    /// Main direction (need not be normalised).
    pub direction: [f32; 3],
    /// Mean speed, m/s.
    pub speed: f32,
    /// Relative speed variation, 0..=1.
    pub speed_jitter: f32,
    /// Half-angle of the emission cone, radians (0..=π).
    pub spread: f32,
    /// Mean lifetime, s.
    pub lifetime: f32,
    /// Relative lifetime variation, 0..=1.
    pub lifetime_jitter: f32,
}

impl Default for EmissionParams {
    fn default() -> Self {
        EmissionParams {
            direction: [0.0, 1.0, 0.0],
            speed: 5.0,
            speed_jitter: 0.2,
            spread: 0.5,
            lifetime: 2.0,
            lifetime_jitter: 0.2,
        }
    }
}

/// Something that happened in the world during a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorldEvent {
    /// A new object (full state, with its shape). `environment` marks environment objects.
    ObjectAdded {
        /// Its full state, with the shape.
        object: ObjectState,
        /// Added as part of the environment.
        environment: bool,
    },
    /// An object left the world (`reason`: `removed`, `destroyed`, `player_left`, `environment`).
    ObjectRemoved {
        /// The removed object.
        id: ObjectId,
        /// Why it left.
        reason: String,
    },
    /// The outcome of an interaction request.
    InteractionResult(InteractionResult),
    /// Weather changed (start, progress, midpoint and end of transitions; wind).
    WeatherChanged {
        /// The weather now.
        weather: WeatherState,
    },
    /// The clock was set, the day length changed, or an in-game hour passed.
    TimeOfDayChanged {
        /// Hours, 0.0..24.0.
        time_of_day: f32,
        /// Real seconds per day.
        day_length: f32,
    },
    /// The terrain changed: the changed block of samples.
    TerrainEdited(TerrainPatch),
    /// Particles were emitted (reproducible from the seed).
    ParticlesEmitted(ParticleEmission),
}
