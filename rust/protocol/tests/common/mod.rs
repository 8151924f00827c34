//! Shared test helpers: a small deterministic RNG and random evolving worlds.
#![allow(dead_code)]

use nexus_sim::state::{
    BodyKind, EnvironmentState, ObjectId, ObjectState, PhysicsInfo, Properties, WeatherKind,
    WeatherState, WorldState,
};
use std::collections::BTreeMap;

use nexus_protocol::quant::{
    POSITION_MAX_ERROR, ROTATION_MAX_ANGLE_ERROR, VELOCITY_MAX_ERROR, rotation_angle_between,
};
use nexus_protocol::{DecodedObject, JsonObject, JsonStateMessage};
use serde_json::json;

/// xorshift64*: deterministic, dependency-free.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn vec3(&mut self, scale: f32) -> [f32; 3] {
        [
            self.range(-scale, scale),
            self.range(-scale, scale),
            self.range(-scale, scale),
        ]
    }
    pub fn rotation(&mut self) -> [f32; 4] {
        loop {
            let q = [
                self.range(-1.0, 1.0),
                self.range(-1.0, 1.0),
                self.range(-1.0, 1.0),
                self.range(-1.0, 1.0),
            ];
            let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
            if n > 0.1 && n <= 1.0 {
                return q.map(|c| c / n);
            }
        }
    }
}

pub fn environment() -> EnvironmentState {
    EnvironmentState {
        weather: WeatherState {
            kind: WeatherKind::Clear,
            intensity: 0.0,
            wind: [0.0; 3],
            transition_to: None,
            transition_remaining: 0.0,
        },
        time_of_day: 12.0,
        day_length: 600.0,
        terrain_id: None,
        terrain_revision: 0,
    }
}

pub fn physics(count: usize) -> PhysicsInfo {
    PhysicsInfo {
        gravity: [0.0, -9.81, 0.0],
        tick_rate: 60,
        body_count: count as u32,
        awake_count: 0,
    }
}

pub fn object(rng: &mut Rng, id: ObjectId, extent: f32) -> ObjectState {
    let kind = match rng.below(10) {
        0 => BodyKind::Kinematic,
        1 => BodyKind::Static,
        2 => BodyKind::Player,
        _ => BodyKind::Dynamic,
    };
    let mut properties = Properties::new();
    if rng.chance(0.2) {
        properties.insert(
            "color".into(),
            json!(["red", "green", "blue"][rng.below(3) as usize]),
        );
    }
    let sleeping = rng.chance(0.3);
    ObjectState {
        id,
        kind,
        position: [
            rng.range(-extent, extent),
            rng.range(0.0, 20.0),
            rng.range(-extent, extent),
        ],
        rotation: rng.rotation(),
        velocity: if sleeping { [0.0; 3] } else { rng.vec3(20.0) },
        angular_velocity: if sleeping { [0.0; 3] } else { rng.vec3(10.0) },
        sleeping,
        shape: None,
        properties,
    }
}

/// A world of random objects that changes a little every step: moves, sleeps and wakes, property
/// changes, removals and additions.
pub struct RandomWorld {
    pub rng: Rng,
    pub tick: u64,
    pub objects: Vec<ObjectState>,
    pub next_id: ObjectId,
    pub extent: f32,
}

impl RandomWorld {
    pub fn new(seed: u64, count: usize, extent: f32) -> RandomWorld {
        let mut rng = Rng::new(seed);
        // Sparse ids exercise the id gap coding.
        let mut next_id = 0;
        let mut objects = Vec::new();
        for _ in 0..count {
            next_id += 1 + rng.below(3) as ObjectId;
            objects.push(object(&mut rng, next_id, extent));
        }
        RandomWorld {
            rng,
            tick: 1,
            objects,
            next_id: next_id + 1,
            extent,
        }
    }

    pub fn step(&mut self) {
        self.tick += 1 + self.rng.below(2);
        let extent = self.extent;
        for o in &mut self.objects {
            if self.rng.chance(0.05) {
                o.sleeping = !o.sleeping;
            }
            if !o.sleeping {
                let dt = 1.0 / 60.0;
                for axis in 0..3 {
                    o.position[axis] += o.velocity[axis] * dt;
                }
                o.position[0] = o.position[0].clamp(-extent, extent);
                o.position[2] = o.position[2].clamp(-extent, extent);
                if self.rng.chance(0.3) {
                    o.velocity = self.rng.vec3(20.0);
                    o.angular_velocity = self.rng.vec3(10.0);
                    o.rotation = self.rng.rotation();
                }
            } else {
                o.velocity = [0.0; 3];
                o.angular_velocity = [0.0; 3];
            }
            if self.rng.chance(0.01) {
                o.properties
                    .insert("hits".into(), json!(self.rng.below(100)));
            }
            if self.rng.chance(0.003) {
                o.kind = BodyKind::Kinematic;
            }
        }
        if self.rng.chance(0.3) && !self.objects.is_empty() {
            let i = self.rng.below(self.objects.len() as u64) as usize;
            self.objects.remove(i);
        }
        if self.rng.chance(0.3) {
            let id = self.next_id;
            self.next_id += 1 + self.rng.below(5) as ObjectId;
            let o = object(&mut self.rng, id, extent);
            self.objects.push(o);
        }
    }

    pub fn state(&self) -> WorldState {
        WorldState {
            timestamp: 1_700_000_000.0 + self.tick as f64 / 60.0,
            tick: self.tick,
            objects: self.objects.clone(),
            physics: physics(self.objects.len()),
            environment: environment(),
        }
    }
}

pub fn distance(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Whether a decoded object matches `truth` within the stream's quantisation.
pub fn is_close(decoded: &DecodedObject, truth: &ObjectState) -> bool {
    (0..3).all(|axis| {
        (decoded.position[axis] - truth.position[axis]).abs() <= POSITION_MAX_ERROR * 1.001
            && (decoded.velocity[axis] - truth.velocity[axis]).abs() <= VELOCITY_MAX_ERROR * 1.001
            && (decoded.angular_velocity[axis] - truth.angular_velocity[axis]).abs()
                <= VELOCITY_MAX_ERROR * 1.001
    }) && rotation_angle_between(decoded.rotation, truth.rotation) < ROTATION_MAX_ANGLE_ERROR
        && decoded.sleeping == truth.sleeping
        && decoded.kind == truth.kind
        && *decoded.properties == truth.properties
}

pub fn assert_close(decoded: &DecodedObject, truth: &ObjectState, what: &str) {
    for axis in 0..3 {
        let e = (decoded.position[axis] - truth.position[axis]).abs();
        assert!(
            e <= POSITION_MAX_ERROR * 1.001,
            "{what}: position error {e} of {:?}",
            truth.id
        );
        let e = (decoded.velocity[axis] - truth.velocity[axis]).abs();
        assert!(
            e <= VELOCITY_MAX_ERROR * 1.001,
            "{what}: velocity error {e}"
        );
        let e = (decoded.angular_velocity[axis] - truth.angular_velocity[axis]).abs();
        assert!(
            e <= VELOCITY_MAX_ERROR * 1.001,
            "{what}: angular velocity error {e}"
        );
    }
    let angle = rotation_angle_between(decoded.rotation, truth.rotation);
    assert!(
        angle < ROTATION_MAX_ANGLE_ERROR,
        "{what}: rotation error {angle} rad of {}",
        truth.id
    );
    assert_eq!(decoded.sleeping, truth.sleeping, "{what}: sleeping");
    assert_eq!(decoded.kind, truth.kind, "{what}: kind");
    assert_eq!(*decoded.properties, truth.properties, "{what}: properties");
}

/// A JSON client that keeps no per-tick views: it merges listed objects and drops removed/left.
#[derive(Default)]
pub struct MergingClient {
    pub objects: BTreeMap<ObjectId, JsonObject>,
}

impl MergingClient {
    pub fn apply(&mut self, message: &JsonStateMessage) {
        if message.full {
            self.objects.clear();
        }
        for id in message.removed.iter().chain(&message.left) {
            self.objects.remove(id);
        }
        for object in &message.objects {
            let entry = self.objects.entry(object.id);
            match entry {
                std::collections::btree_map::Entry::Occupied(mut held) => {
                    let held = held.get_mut();
                    let (kind, properties) = (held.kind, held.properties.take());
                    *held = object.clone();
                    held.kind = object.kind.or(kind);
                    held.properties = object.properties.clone().or(properties);
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    assert!(
                        object.kind.is_some() && object.properties.is_some(),
                        "an object new to the client carries kind and properties"
                    );
                    slot.insert(object.clone());
                }
            }
        }
    }
}
