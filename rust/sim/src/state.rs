//! Snapshot types: what the world says about itself.
//!
//! These are the *contract* between the simulation, the protocol codecs, the gateway, the Godot
//! nodes and the predicting client. They use plain arrays (not a math library's types) so that every
//! consumer can use them without converting, and they serialise to the JSON shapes of the design:
//! a world state carries `timestamp`, `tick`, `objects`, `physics`, `environment`; an object carries
//! `id`, `position`, `rotation` (quaternion `[x, y, z, w]`), `velocity`, `angular_velocity`,
//! `properties`.

use serde::{Deserialize, Serialize};

/// Stable identifier of a world object; never reused within a world's lifetime.
pub type ObjectId = u32;
/// Identifier of a connected client (assigned by the gateway, unique per gateway run).
pub type ClientId = u32;
/// Simulation tick number; tick 0 is the initial state.
pub type Tick = u64;

/// Free-form object properties (JSON-like values), e.g. `{"color": "red", "pickupable": true}`.
pub type Properties = serde_json::Map<String, serde_json::Value>;

/// How an object moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// Moved by forces and collisions.
    Dynamic,
    /// Moved by code (position set each tick), pushes dynamic bodies.
    Kinematic,
    /// Never moves.
    Static,
    /// A client's avatar (kinematic character controller).
    Player,
}

/// Collision shape of an object. Sizes are in metres.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Shape {
    /// Box with half extents.
    Box { half_extents: [f32; 3] },
    Sphere { radius: f32 },
    /// Capsule along the Y axis; `half_height` excludes the caps.
    Capsule { half_height: f32, radius: f32 },
    /// Cylinder along the Y axis.
    Cylinder { half_height: f32, radius: f32 },
    ConvexHull { points: Vec<[f32; 3]> },
    TriangleMesh { vertices: Vec<[f32; 3]>, indices: Vec<[u32; 3]> },
    /// Heights in row-major order (`rows` x `cols`), spanning `size` metres in X and Z.
    Heightfield { rows: u32, cols: u32, heights: Vec<f32>, size: [f32; 3] },
}

/// Everything needed to create an object (also the body of `object_added` events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectDesc {
    pub kind: BodyKind,
    pub shape: Shape,
    pub position: [f32; 3],
    /// Quaternion `[x, y, z, w]`.
    #[serde(default = "identity_rotation")]
    pub rotation: [f32; 4],
    /// Mass in kg (dynamic bodies); `None` derives it from the shape with density 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass: Option<f32>,
    #[serde(default = "default_friction")]
    pub friction: f32,
    #[serde(default)]
    pub restitution: f32,
    #[serde(default)]
    pub properties: Properties,
}

pub fn identity_rotation() -> [f32; 4] {
    [0.0, 0.0, 0.0, 1.0]
}
fn default_friction() -> f32 {
    0.5
}

/// The state of one object at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    pub id: ObjectId,
    pub kind: BodyKind,
    pub position: [f32; 3],
    /// Quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    pub velocity: [f32; 3],
    pub angular_velocity: [f32; 3],
    #[serde(default)]
    pub sleeping: bool,
    /// The shape, included in full states (welcome, object_added) so a client can build the
    /// object; omitted from streamed updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    #[serde(default)]
    pub properties: Properties,
}

/// Global simulation facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhysicsInfo {
    pub gravity: [f32; 3],
    pub tick_rate: u32,
    pub body_count: u32,
    pub awake_count: u32,
}

/// Weather kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherKind {
    Clear,
    Rain,
    Storm,
    Fog,
}

/// Current weather, possibly mid-transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeatherState {
    pub kind: WeatherKind,
    /// 0..=1: how strongly `kind` applies (ramps during a transition).
    pub intensity: f32,
    /// Wind velocity in m/s; pushes light bodies and particles.
    pub wind: [f32; 3],
    /// Target of an ongoing transition, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition_to: Option<WeatherKind>,
    /// Seconds left in the ongoing transition.
    #[serde(default)]
    pub transition_remaining: f32,
}

/// Environment: weather, time of day, terrain summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentState {
    pub weather: WeatherState,
    /// Hours, 0.0..24.0.
    pub time_of_day: f32,
    /// Real seconds for a full day.
    pub day_length: f32,
    /// Terrain object id, if the world has a terrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terrain_id: Option<ObjectId>,
    /// Number of terrain edits applied so far (clients re-request the terrain when it changes).
    #[serde(default)]
    pub terrain_revision: u32,
}

/// A full (or, with `objects` filtered, partial) state of the world at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldState {
    /// Unix time in seconds (server clock) when this state was taken.
    pub timestamp: f64,
    pub tick: Tick,
    pub objects: Vec<ObjectState>,
    pub physics: PhysicsInfo,
    pub environment: EnvironmentState,
}
