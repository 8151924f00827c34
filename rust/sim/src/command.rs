//! Commands: what clients and hosts ask of the world. Decoded and validated for shape by the
//! protocol layer off the tick thread; validated against the world (reach, ownership, ...) by the
//! simulation.

use serde::{Deserialize, Serialize};

use crate::state::{ObjectDesc, ObjectId, Tick, WeatherKind};

/// One movement input of a client, for its own avatar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerInput {
    /// Client-side sequence number, strictly increasing per client.
    pub seq: u32,
    /// The tick this input is meant for; `None` means "as soon as possible".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<Tick>,
    /// Desired movement in the avatar's local frame: `[x (right), z (forward)]`, each -1..=1.
    #[serde(default)]
    pub movement: [f32; 2],
    /// Look direction (world space, need not be normalised; zero keeps the current one).
    #[serde(default)]
    pub look: [f32; 3],
    /// Jump (when grounded).
    #[serde(default)]
    pub jump: bool,
    /// Run instead of walk.
    #[serde(default)]
    pub run: bool,
}

/// Interaction kinds built into the world; hosts may register more by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractionKind {
    /// Pick up an object (it then follows the avatar).
    Pickup,
    /// Drop (or throw) the held object.
    Drop,
    /// Use an object (built-in: toggles its `active` property).
    Use,
    /// Build a new object (dynamic or static) owned by the client.
    Build,
    /// Destroy an object (owner, admin, or property `destructible`).
    Destroy,
    /// A host-registered interaction type.
    Custom(String),
}

/// A request to interact with the world.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InteractionRequest {
    /// Client-chosen id echoed in the result, so the client can match them.
    #[serde(default)]
    pub request_id: u32,
    /// What to do.
    pub kind: InteractionKind,
    /// The object acted on (pickup, use, destroy; drop may omit it: the held object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ObjectId>,
    /// What to build (build only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ObjectDesc>,
    /// Extra arguments (use, custom kinds; drop may carry a throw velocity `"velocity": [x,y,z]`).
    #[serde(default)]
    pub args: serde_json::Map<String, serde_json::Value>,
}

/// Environment edits (admin role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EnvironmentCommand {
    /// Change the weather, over `transition_seconds` (0: at once).
    SetWeather {
        /// Target weather.
        kind: WeatherKind,
        /// Transition duration in seconds.
        #[serde(default)]
        transition_seconds: f32,
    },
    /// Set the wind velocity, m/s.
    SetWind {
        /// Wind velocity, m/s.
        wind: [f32; 3],
    },
    /// Set the clock, hours in 0..24.
    SetTimeOfDay {
        /// Hours, 0.0..24.0.
        hours: f32,
    },
    /// Set the real seconds per in-game day.
    SetDayLength {
        /// Real seconds per day (>= 1).
        seconds: f32,
    },
    /// Raise (positive) or lower the terrain around a point, with a smooth falloff.
    EditTerrain {
        /// World `[x, z]` of the centre.
        center: [f32; 2],
        /// Radius of the edit, m.
        radius: f32,
        /// Height change at the centre, m (falls off to 0 at the radius).
        delta: f32,
    },
    /// Add an environment object (the first static heightfield becomes the terrain).
    AddObject {
        /// The object.
        object: ObjectDesc,
    },
    /// Remove an environment object.
    RemoveObject {
        /// The environment object to remove.
        id: ObjectId,
    },
}
