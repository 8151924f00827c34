//! The shared, per-tick input of the state stream.
//!
//! Built once per snapshot tick from a [`WorldState`] and shared (in an `Arc`) by every client's
//! encoder: the quantisation, the change keys, the JSON fragments and the spatial grid are computed
//! here once instead of once per client.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use nexus_sim::state::{
    BodyKind, EnvironmentState, ObjectId, ObjectState, PhysicsInfo, Tick, WorldState,
};

use crate::quant::{QuantizedState, kind_name, quantize_object};

/// Settings of snapshot building.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotConfig {
    /// Side of a spatial-grid cell (X and Z), metres. Default 32.
    pub grid_cell_size: f32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            grid_cell_size: 32.0,
        }
    }
}

/// One world state, prepared for encoding to many clients.
pub struct Snapshot {
    tick: Tick,
    timestamp: f64,
    physics: PhysicsInfo,
    environment: EnvironmentState,
    /// Sorted by id; shapes stripped (the stream never carries them).
    objects: Vec<ObjectState>,
    /// The ids of `objects`: id lookups search these 4-byte keys, not the large states (encoders
    /// look objects up in older snapshots that are no longer in the cache).
    ids: Vec<ObjectId>,
    quantized: Vec<QuantizedState>,
    /// Hash of kind + properties: a change means the stream must resend them.
    meta_keys: Vec<u64>,
    properties_json: Vec<String>,
    environment_key: u64,
    physics_key: u64,
    cell_size: f32,
    /// XZ cell → indices into `objects`.
    grid: HashMap<(i32, i32), Vec<u32>>,
    json: OnceLock<JsonParts>,
}

/// JSON text pieces shared by every JSON client of a snapshot.
pub(crate) struct JsonParts {
    /// Per object: `{"id":…,"position":…,"rotation":…,"velocity":…,"angular_velocity":…,"sleeping":…`
    /// (no closing brace).
    pub kinematics: Vec<String>,
    /// Per object: `,"kind":"…","properties":{…}`.
    pub meta: Vec<String>,
    pub physics: String,
    pub environment: String,
}

/// The change key of kind + properties as the stream sees them.
pub(crate) fn meta_key(kind: BodyKind, properties_json: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    kind_name(kind).hash(&mut hasher);
    properties_json.hash(&mut hasher);
    hasher.finish()
}

impl Snapshot {
    /// Prepares `state` with the default [`SnapshotConfig`].
    pub fn new(state: WorldState) -> Snapshot {
        Snapshot::with_config(state, &SnapshotConfig::default())
    }

    /// Prepares `state`: sorts objects by id, quantises them, builds the spatial grid.
    pub fn with_config(state: WorldState, config: &SnapshotConfig) -> Snapshot {
        let WorldState {
            timestamp,
            tick,
            mut objects,
            physics,
            environment,
        } = state;
        objects.sort_by_key(|o| o.id);
        // Duplicate ids would make "the object with id X" ambiguous: keep the first.
        objects.dedup_by_key(|o| o.id);
        for object in &mut objects {
            object.shape = None;
        }
        let quantized = objects.iter().map(quantize_object).collect();
        let properties_json: Vec<String> = objects
            .iter()
            .map(|o| {
                if o.properties.is_empty() {
                    "{}".to_owned() // the common case, without a trip through serde
                } else {
                    serde_json::to_string(&o.properties).unwrap_or_else(|_| "{}".to_owned())
                }
            })
            .collect();
        let meta_keys = objects
            .iter()
            .zip(&properties_json)
            .map(|(o, p)| meta_key(o.kind, p))
            .collect();
        let cell_size = if config.grid_cell_size.is_finite() && config.grid_cell_size > 0.01 {
            config.grid_cell_size
        } else {
            SnapshotConfig::default().grid_cell_size
        };
        let mut grid: HashMap<(i32, i32), Vec<u32>> = HashMap::new();
        for (index, object) in objects.iter().enumerate() {
            grid.entry(cell_of(object.position, cell_size))
                .or_default()
                .push(index as u32);
        }
        let ids = objects.iter().map(|o| o.id).collect();
        Snapshot {
            tick,
            timestamp,
            ids,
            environment_key: environment_key(&environment),
            physics_key: physics_key(&physics),
            physics,
            environment,
            objects,
            quantized,
            meta_keys,
            properties_json,
            cell_size,
            grid,
            json: OnceLock::new(),
        }
    }

    /// The tick of the state.
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// Server clock when the state was taken, Unix seconds.
    pub fn timestamp(&self) -> f64 {
        self.timestamp
    }

    /// Objects sorted by id (shapes stripped).
    pub fn objects(&self) -> &[ObjectState] {
        &self.objects
    }

    /// Global physics facts.
    pub fn physics(&self) -> &PhysicsInfo {
        &self.physics
    }

    /// The environment.
    pub fn environment(&self) -> &EnvironmentState {
        &self.environment
    }

    /// The object with `id`, if present.
    pub fn object(&self, id: ObjectId) -> Option<&ObjectState> {
        self.index_of(id).map(|i| &self.objects[i])
    }

    /// The position of object `id` (e.g. a client's avatar: its interest centre).
    pub fn position_of(&self, id: ObjectId) -> Option<[f32; 3]> {
        self.object(id).map(|o| o.position)
    }

    /// Ids of the objects within `radius` metres of `center`, from the spatial grid.
    pub fn objects_within(&self, center: [f32; 3], radius: f32) -> Vec<ObjectId> {
        let mut ids = Vec::new();
        self.for_each_within(center, radius, |index, _| ids.push(self.objects[index].id));
        ids.sort_unstable();
        ids
    }

    pub(crate) fn index_of(&self, id: ObjectId) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// [`Self::index_of`], trying `hint` first: the object's index in a nearby state of the same
    /// world, usually the same while nothing was added or removed before it.
    pub(crate) fn index_of_near(&self, id: ObjectId, hint: usize) -> Option<usize> {
        if self.ids.get(hint) == Some(&id) {
            Some(hint)
        } else {
            self.index_of(id)
        }
    }

    pub(crate) fn quantized(&self, index: usize) -> &QuantizedState {
        &self.quantized[index]
    }

    pub(crate) fn meta_key_of(&self, index: usize) -> u64 {
        self.meta_keys[index]
    }

    pub(crate) fn properties_json(&self, index: usize) -> &str {
        &self.properties_json[index]
    }

    pub(crate) fn environment_key(&self) -> u64 {
        self.environment_key
    }

    pub(crate) fn physics_key(&self) -> u64 {
        self.physics_key
    }

    /// Calls `visit(index, distance)` for every object within `radius` of `center`.
    pub(crate) fn for_each_within(
        &self,
        center: [f32; 3],
        radius: f32,
        mut visit: impl FnMut(usize, f32),
    ) {
        let mut check = |index: usize| {
            let d = distance(self.objects[index].position, center);
            if d <= radius {
                visit(index, d);
            }
        };
        let (x0, z0) = cell_of(
            [center[0] - radius, 0.0, center[2] - radius],
            self.cell_size,
        );
        let (x1, z1) = cell_of(
            [center[0] + radius, 0.0, center[2] + radius],
            self.cell_size,
        );
        let cells = (i128::from(x1) - i128::from(x0) + 1) * (i128::from(z1) - i128::from(z0) + 1);
        // A radius spanning more cells than there are occupied cells: scanning is cheaper.
        if !(radius.is_finite() && center.iter().all(|c| c.is_finite()))
            || cells > self.grid.len() as i128
        {
            (0..self.objects.len()).for_each(check);
            return;
        }
        for x in x0..=x1 {
            for z in z0..=z1 {
                if let Some(indices) = self.grid.get(&(x, z)) {
                    indices.iter().for_each(|&i| check(i as usize));
                }
            }
        }
    }

    pub(crate) fn json_parts(&self) -> &JsonParts {
        self.json.get_or_init(|| {
            let kinematics = self.objects.iter().map(object_kinematics_json).collect();
            let meta = self
                .objects
                .iter()
                .zip(&self.properties_json)
                .map(|(o, props)| {
                    format!(",\"kind\":\"{}\",\"properties\":{props}", kind_name(o.kind))
                })
                .collect();
            JsonParts {
                kinematics,
                meta,
                physics: serde_json::to_string(&self.physics).unwrap_or_else(|_| "null".into()),
                environment: serde_json::to_string(&self.environment)
                    .unwrap_or_else(|_| "null".into()),
            }
        })
    }
}

fn cell_of(position: [f32; 3], cell_size: f32) -> (i32, i32) {
    // `as` saturates (and maps NaN to 0): far-away or broken positions land in edge cells.
    (
        (position[0] / cell_size).floor() as i32,
        (position[2] / cell_size).floor() as i32,
    )
}

fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
}

/// Environment changes the stream reports; the clock counts in whole game minutes so that a
/// running day does not make every message carry the environment.
fn environment_key(environment: &EnvironmentState) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(&environment.weather)
        .unwrap_or_default()
        .hash(&mut hasher);
    ((environment.time_of_day * 60.0).floor() as i64).hash(&mut hasher);
    environment.day_length.to_bits().hash(&mut hasher);
    environment.terrain_id.hash(&mut hasher);
    environment.terrain_revision.hash(&mut hasher);
    hasher.finish()
}

/// Physics facts the stream reports (the awake count is informational and not tracked).
fn physics_key(physics: &PhysicsInfo) -> u64 {
    let mut hasher = DefaultHasher::new();
    physics.gravity.map(f32::to_bits).hash(&mut hasher);
    physics.tick_rate.hash(&mut hasher);
    physics.body_count.hash(&mut hasher);
    hasher.finish()
}

/// Writes `value` rounded to `decimals` places, without trailing zeros (`1.5`, `-0.25`, `3`).
pub(crate) fn write_fixed(out: &mut String, value: f32, decimals: u32) {
    use std::fmt::Write;
    let scale = 10i64.pow(decimals);
    let scaled = if value.is_finite() {
        (f64::from(value) * scale as f64).round() as i64
    } else {
        0 // never emit invalid JSON; the simulation does not produce non-finite states
    };
    if scaled < 0 {
        out.push('-');
    }
    let magnitude = scaled.unsigned_abs();
    let whole = magnitude / scale as u64;
    let mut frac = magnitude % scale as u64;
    let _ = write!(out, "{whole}");
    if frac != 0 {
        let mut digits = decimals as usize;
        while frac.is_multiple_of(10) {
            frac /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{frac:0digits$}");
    }
}

fn write_array(out: &mut String, values: &[f32], decimals: u32) {
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_fixed(out, *v, decimals);
    }
    out.push(']');
}

/// Decimals of JSON numbers in the state stream: millimetres, mm/s, and 1e-4 per quaternion
/// component.
pub(crate) const JSON_LINEAR_DECIMALS: u32 = 3;
pub(crate) const JSON_ROTATION_DECIMALS: u32 = 4;

fn object_kinematics_json(object: &ObjectState) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(160);
    let _ = write!(out, "{{\"id\":{},\"position\":", object.id);
    write_array(&mut out, &object.position, JSON_LINEAR_DECIMALS);
    out.push_str(",\"rotation\":");
    let q = object.rotation;
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    let unit = if norm.is_finite() && norm > 1e-12 {
        q.map(|c| c / norm)
    } else {
        [0.0, 0.0, 0.0, 1.0]
    };
    write_array(&mut out, &unit, JSON_ROTATION_DECIMALS);
    out.push_str(",\"velocity\":");
    write_array(&mut out, &object.velocity, JSON_LINEAR_DECIMALS);
    out.push_str(",\"angular_velocity\":");
    write_array(&mut out, &object.angular_velocity, JSON_LINEAR_DECIMALS);
    let _ = write!(out, ",\"sleeping\":{}", object.sleeping);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_numbers_are_short_and_exact() {
        let cases = [
            (1.5f32, 3, "1.5"),
            (-0.25, 3, "-0.25"),
            (3.0, 3, "3"),
            (0.0004, 3, "0"),
            (-0.0004, 3, "0"),
            (12.3456, 3, "12.346"),
            (-7.0001, 4, "-7.0001"),
            (f32::NAN, 3, "0"),
        ];
        for (value, decimals, expected) in cases {
            let mut out = String::new();
            write_fixed(&mut out, value, decimals);
            assert_eq!(out, expected, "{value}");
        }
    }
}
