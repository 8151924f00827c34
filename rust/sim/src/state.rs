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
    Box {
        /// Half sizes along X, Y, Z.
        half_extents: [f32; 3],
    },
    /// Ball with a radius.
    Sphere {
        /// Radius.
        radius: f32,
    },
    /// Capsule along the Y axis; `half_height` excludes the caps.
    Capsule {
        /// Half height of the cylindrical part.
        half_height: f32,
        /// Radius.
        radius: f32,
    },
    /// Cylinder along the Y axis.
    Cylinder {
        /// Half height.
        half_height: f32,
        /// Radius.
        radius: f32,
    },
    /// Convex hull of a point cloud (at least 4 non-coplanar points).
    ConvexHull {
        /// Points in the body frame.
        points: Vec<[f32; 3]>,
    },
    /// Triangle mesh (static or kinematic only: it has no volume).
    TriangleMesh {
        /// Vertices in the body frame.
        vertices: Vec<[f32; 3]>,
        /// Triangles as vertex indices.
        indices: Vec<[u32; 3]>,
    },
    /// Heights in row-major order (`rows` x `cols`), spanning `size` metres in X and Z.
    Heightfield {
        /// Samples along Z (at least 2).
        rows: u32,
        /// Samples along X (at least 2).
        cols: u32,
        /// `rows * cols` heights, row-major, multiplied by `size[1]`.
        heights: Vec<f32>,
        /// `[extent X, height scale, extent Z]`; the field is centred on the body origin.
        size: [f32; 3],
    },
}

/// Everything needed to create an object (also the body of `object_added` events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectDesc {
    /// How the object moves.
    pub kind: BodyKind,
    /// Collision shape.
    pub shape: Shape,
    /// Position of the body origin, metres (world space).
    pub position: [f32; 3],
    /// Quaternion `[x, y, z, w]`.
    #[serde(default = "identity_rotation")]
    pub rotation: [f32; 4],
    /// Mass in kg (dynamic bodies); `None` derives it from the shape with density 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mass: Option<f32>,
    /// Friction coefficient (default 0.5).
    #[serde(default = "default_friction")]
    pub friction: f32,
    /// Bounciness, 0..=1 (default 0).
    #[serde(default)]
    pub restitution: f32,
    /// Free-form properties (e.g. `pickupable`, `destructible`, `usable`).
    #[serde(default)]
    pub properties: Properties,
}

/// The identity quaternion `[0, 0, 0, 1]`.
pub fn identity_rotation() -> [f32; 4] {
    [0.0, 0.0, 0.0, 1.0]
}
fn default_friction() -> f32 {
    0.5
}

/// The state of one object at a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectState {
    /// Stable object id.
    pub id: ObjectId,
    /// How the object moves.
    pub kind: BodyKind,
    /// Position of the body origin, metres (world space).
    pub position: [f32; 3],
    /// Quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
    /// Angular velocity, rad/s.
    pub angular_velocity: [f32; 3],
    /// Whether the body sleeps (at rest, not simulated).
    #[serde(default)]
    pub sleeping: bool,
    /// The shape, included in full states (welcome, object_added) so a client can build the
    /// object; omitted from streamed updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Shape>,
    /// Free-form properties (e.g. `pickupable`, `destructible`, `usable`).
    #[serde(default)]
    pub properties: Properties,
}

/// Global simulation facts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhysicsInfo {
    /// Gravity, m/s².
    pub gravity: [f32; 3],
    /// Fixed ticks per second.
    pub tick_rate: u32,
    /// Number of objects.
    pub body_count: u32,
    /// Number of bodies simulated this tick (not sleeping).
    pub awake_count: u32,
}

/// Weather kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherKind {
    /// Clear sky.
    Clear,
    /// Rain.
    Rain,
    /// Storm.
    Storm,
    /// Fog.
    Fog,
}

/// Current weather, possibly mid-transition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeatherState {
    /// Current weather kind.
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
    /// Current weather.
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
    /// Tick of this state.
    pub tick: Tick,
    /// Object states (all of them, or a filtered subset).
    pub objects: Vec<ObjectState>,
    /// Global physics facts.
    pub physics: PhysicsInfo,
    /// Environment state.
    pub environment: EnvironmentState,
}
