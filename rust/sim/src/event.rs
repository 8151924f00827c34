//! Events the world emits while it steps. The host drains them after each tick
//! (`World::drain_events`) and turns them into wire events (`object_added`, `interaction:result`,
//! `environment:*`, ...). They are *reliable*: every one must reach the clients it concerns.

use serde::{Deserialize, Serialize};

use crate::command::InteractionKind;
use crate::state::{ClientId, ObjectId, ObjectState, Tick, WeatherState};

/// Outcome of one interaction request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InteractionResult {
    pub client_id: ClientId,
    pub request_id: u32,
    pub kind: InteractionKind,
    pub success: bool,
    /// Stable snake_case reason: `ok`, `out_of_reach`, `held_by_other`, `not_pickupable`,
    /// `nothing_held`, `overlaps`, `forbidden`, `unknown_object`, `unknown_interaction`, `vetoed`...
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ObjectId>,
    /// Extra data from the handler (e.g. the id of a built object).
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A terrain edit: the rectangular block of heightfield samples that changed, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerrainPatch {
    pub terrain_id: ObjectId,
    pub revision: u32,
    pub row0: u32,
    pub col0: u32,
    pub rows: u32,
    pub cols: u32,
    pub heights: Vec<f32>,
}

/// A particle emission clients can reproduce deterministically from its seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticleEmission {
    pub emitter_id: u32,
    pub tick: Tick,
    pub seed: u64,
    pub count: u32,
    pub origin: [f32; 3],
}

/// Something that happened in the world during a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorldEvent {
    /// A new object (full state, with its shape). `environment` marks environment objects.
    ObjectAdded { object: ObjectState, environment: bool },
    ObjectRemoved { id: ObjectId, reason: String },
    InteractionResult(InteractionResult),
    WeatherChanged { weather: WeatherState },
    TimeOfDayChanged { time_of_day: f32, day_length: f32 },
    TerrainEdited(TerrainPatch),
    ParticlesEmitted(ParticleEmission),
}
