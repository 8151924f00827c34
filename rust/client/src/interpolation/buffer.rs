//! Jitter buffers of remote objects: the received states of each object, sampled at the playback
//! tick.
//!
//! How it works:
//! - A state message lists only the objects that changed (deltas) or are due (level of detail);
//!   each listed object gets a sample at the message's tick.
//! - Sampling at tick `t` interpolates between the two samples around `t` (linear for positions,
//!   shortest-arc slerp for rotations). Past the newest sample a moving object is extrapolated
//!   with its velocity, for a bounded time (states lost or late); an object at rest is held.
//! - An object at rest is not listed while it rests, so its newest sample can be old when it
//!   starts moving again. Interpolating from that old sample would smear the start of the motion
//!   over the whole rest: the buffer first repeats the resting sample at the previous message's
//!   tick (the object was still unchanged then).
//! - Removals (and objects leaving the interest area) take effect when playback reaches their
//!   tick, so an object does not vanish before the end of its motion.

use std::collections::{BTreeMap, VecDeque};

use nexus_sim::state::{BodyKind, ObjectId, Properties, Tick};

/// Below this speed (m/s and rad/s) an object counts as at rest.
const REST_SPEED: f32 = 1.0e-3;
/// Samples kept per object beyond the playback tick.
const MAX_SAMPLES: usize = 128;

/// One received state of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Server tick of the state.
    pub tick: Tick,
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
    /// Angular velocity, rad/s.
    pub angular_velocity: [f32; 3],
    /// Whether the body sleeps.
    pub sleeping: bool,
}

impl Sample {
    fn at_rest(&self) -> bool {
        self.sleeping
            || (norm(self.velocity) < REST_SPEED && norm(self.angular_velocity) < REST_SPEED)
    }
}

/// How a sampled pose was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleMode {
    /// Between two received states.
    Interpolated,
    /// Past the newest state, continued with its velocity.
    Extrapolated,
    /// Past the newest state by more than the extrapolation limit: stopped there.
    ExtrapolationLimit,
    /// An object at rest, or playback before its first state.
    Held,
}

/// The pose of a remote object at the playback tick.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPose {
    /// Object id.
    pub id: ObjectId,
    /// Body kind.
    pub kind: BodyKind,
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
    /// How the pose was obtained.
    pub mode: SampleMode,
}

/// The received states of one object.
#[derive(Clone, Debug)]
pub struct ObjectTrack {
    /// Body kind (from the stream's metadata).
    pub kind: BodyKind,
    /// Properties (from the stream's metadata).
    pub properties: Properties,
    samples: VecDeque<Sample>,
    remove_at: Option<Tick>,
}

impl ObjectTrack {
    /// A track with no samples yet.
    pub fn new(kind: BodyKind, properties: Properties) -> Self {
        ObjectTrack {
            kind,
            properties,
            samples: VecDeque::new(),
            remove_at: None,
        }
    }

    /// The newest sample.
    pub fn newest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Adds a sample; `previous_message` is the tick of the message before the sample's one.
    pub fn push(&mut self, sample: Sample, previous_message: Option<Tick>) {
        self.remove_at = None;
        if let Some(last) = self.samples.back() {
            if sample.tick <= last.tick {
                return; // not newer: a resend of a state already held
            }
            if let Some(previous) = previous_message
                && last.tick < previous
                && previous < sample.tick
                && last.at_rest()
            {
                let mut hold = last.clone();
                hold.tick = previous;
                self.samples.push_back(hold);
            }
        }
        self.samples.push_back(sample);
        while self.samples.len() > MAX_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// Drops samples that playback at `tick` no longer needs (keeps the one before it).
    pub fn trim(&mut self, tick: f64) {
        while self.samples.len() > 2 && (self.samples[1].tick as f64) <= tick {
            self.samples.pop_front();
        }
    }

    /// The pose at (fractional) tick `tick`; extrapolation stops `max_extrapolation` ticks past
    /// the newest sample. `rate` is in ticks per second.
    pub fn sample(&self, tick: f64, max_extrapolation: f64, rate: f64) -> Option<ObjectPoseParts> {
        let first = self.samples.front()?;
        if tick <= first.tick as f64 {
            return Some(ObjectPoseParts::from_sample(first, SampleMode::Held));
        }
        let newest = self.samples.back()?;
        if tick >= newest.tick as f64 {
            if newest.at_rest() {
                return Some(ObjectPoseParts::from_sample(newest, SampleMode::Held));
            }
            let ahead = tick - newest.tick as f64;
            let (ahead, mode) = if ahead > max_extrapolation {
                (max_extrapolation, SampleMode::ExtrapolationLimit)
            } else {
                (ahead, SampleMode::Extrapolated)
            };
            let seconds = (ahead / rate) as f32;
            let position = add(newest.position, scale(newest.velocity, seconds));
            let rotation = integrate(newest.rotation, newest.angular_velocity, seconds);
            return Some(ObjectPoseParts {
                position,
                rotation,
                velocity: newest.velocity,
                mode,
            });
        }
        // Find the samples around `tick` (newest first: playback is near the end).
        let after = self
            .samples
            .iter()
            .rposition(|s| (s.tick as f64) <= tick)
            .unwrap_or(0);
        let a = &self.samples[after];
        let b = self.samples.get(after + 1).unwrap_or(a);
        let span = (b.tick - a.tick) as f64;
        let alpha = if span > 0.0 {
            ((tick - a.tick as f64) / span) as f32
        } else {
            0.0
        };
        Some(ObjectPoseParts {
            position: lerp(a.position, b.position, alpha),
            rotation: slerp(a.rotation, b.rotation, alpha),
            velocity: lerp(a.velocity, b.velocity, alpha),
            mode: SampleMode::Interpolated,
        })
    }
}

/// A sampled pose without the object's identity.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectPoseParts {
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion.
    pub rotation: [f32; 4],
    /// Linear velocity, m/s.
    pub velocity: [f32; 3],
    /// How it was obtained.
    pub mode: SampleMode,
}

impl ObjectPoseParts {
    fn from_sample(sample: &Sample, mode: SampleMode) -> Self {
        ObjectPoseParts {
            position: sample.position,
            rotation: sample.rotation,
            velocity: sample.velocity,
            mode,
        }
    }
}

/// Every remote object's track.
#[derive(Clone, Debug, Default)]
pub struct RemoteObjects {
    tracks: BTreeMap<ObjectId, ObjectTrack>,
    last_message: Option<Tick>,
    previous_message: Option<Tick>,
}

impl RemoteObjects {
    /// Starts a message of `tick` (call before its [`RemoteObjects::update`]s).
    pub fn begin_message(&mut self, tick: Tick) {
        if self.last_message.is_none_or(|last| tick > last) {
            self.previous_message = self.last_message;
            self.last_message = Some(tick);
        }
    }

    /// A listed object of the current message.
    pub fn update(
        &mut self,
        id: ObjectId,
        kind: Option<BodyKind>,
        properties: Option<&Properties>,
        sample: Sample,
    ) {
        let track = self.tracks.entry(id).or_insert_with(|| {
            ObjectTrack::new(kind.unwrap_or(BodyKind::Dynamic), Properties::new())
        });
        if let Some(kind) = kind {
            track.kind = kind;
        }
        if let Some(properties) = properties {
            track.properties.clone_from(properties);
        }
        track.push(sample, self.previous_message);
    }

    /// The object is gone (or out of interest) as of `tick`.
    pub fn remove_at(&mut self, id: ObjectId, tick: Tick) {
        if let Some(track) = self.tracks.get_mut(&id) {
            track.remove_at = Some(tick);
        }
    }

    /// Removes an object at once.
    pub fn remove_now(&mut self, id: ObjectId) -> bool {
        self.tracks.remove(&id).is_some()
    }

    /// Ids of the objects whose removal playback at `tick` reached (they are dropped).
    pub fn prune(&mut self, tick: f64) -> Vec<ObjectId> {
        let gone: Vec<ObjectId> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.remove_at.is_some_and(|at| at as f64 <= tick))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.tracks.remove(id);
        }
        for track in self.tracks.values_mut() {
            track.trim(tick);
        }
        gone
    }

    /// One object's track.
    pub fn track(&self, id: ObjectId) -> Option<&ObjectTrack> {
        self.tracks.get(&id)
    }

    /// Ids of every tracked object.
    pub fn ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.tracks.keys().copied()
    }

    /// Number of tracked objects.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The pose of one object at `tick`.
    pub fn sample(
        &self,
        id: ObjectId,
        tick: f64,
        max_extrapolation: f64,
        rate: f64,
    ) -> Option<ObjectPose> {
        let track = self.tracks.get(&id)?;
        let parts = track.sample(tick, max_extrapolation, rate)?;
        Some(ObjectPose {
            id,
            kind: track.kind,
            position: parts.position,
            rotation: parts.rotation,
            velocity: parts.velocity,
            mode: parts.mode,
        })
    }
}

fn norm(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

fn add(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn scale(v: [f32; 3], s: f32) -> [f32; 3] {
    v.map(|c| c * s)
}

fn lerp(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn normalize4(q: [f32; 4]) -> [f32; 4] {
    let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    if n.is_finite() && n > 1e-6 {
        q.map(|c| c / n)
    } else {
        [0.0, 0.0, 0.0, 1.0]
    }
}

/// Shortest-arc spherical interpolation of unit quaternions.
pub(crate) fn slerp(a: [f32; 4], b: [f32; 4], t: f32) -> [f32; 4] {
    let mut b = b;
    let mut dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    if dot < 0.0 {
        b = b.map(|c| -c);
        dot = -dot;
    }
    if dot > 0.9995 {
        // Nearly identical: linear is exact enough and avoids dividing by sin(0).
        let q = [
            a[0] + (b[0] - a[0]) * t,
            a[1] + (b[1] - a[1]) * t,
            a[2] + (b[2] - a[2]) * t,
            a[3] + (b[3] - a[3]) * t,
        ];
        return normalize4(q);
    }
    let theta = dot.clamp(-1.0, 1.0).acos();
    let sin = theta.sin();
    let wa = ((1.0 - t) * theta).sin() / sin;
    let wb = (t * theta).sin() / sin;
    normalize4([
        a[0] * wa + b[0] * wb,
        a[1] * wa + b[1] * wb,
        a[2] * wa + b[2] * wb,
        a[3] * wa + b[3] * wb,
    ])
}

/// Rotates `q` by angular velocity `w` (rad/s, world frame) for `dt` seconds.
fn integrate(q: [f32; 4], w: [f32; 3], dt: f32) -> [f32; 4] {
    let angle = norm(w) * dt;
    if angle.is_nan() || angle <= 1e-7 {
        return q;
    }
    let axis = scale(w, 1.0 / norm(w));
    let (s, c) = (angle * 0.5).sin_cos();
    let r = [axis[0] * s, axis[1] * s, axis[2] * s, c];
    // r ⊗ q
    normalize4([
        r[3] * q[0] + r[0] * q[3] + r[1] * q[2] - r[2] * q[1],
        r[3] * q[1] - r[0] * q[2] + r[1] * q[3] + r[2] * q[0],
        r[3] * q[2] + r[0] * q[1] - r[1] * q[0] + r[2] * q[3],
        r[3] * q[3] - r[0] * q[0] - r[1] * q[1] - r[2] * q[2],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tick: Tick, x: f32, vx: f32) -> Sample {
        Sample {
            tick,
            position: [x, 0.0, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            velocity: [vx, 0.0, 0.0],
            angular_velocity: [0.0; 3],
            sleeping: false,
        }
    }

    #[test]
    fn interpolates_then_extrapolates_a_bounded_time() {
        let mut track = ObjectTrack::new(BodyKind::Dynamic, Properties::new());
        track.push(sample(0, 0.0, 6.0), None);
        track.push(sample(6, 0.6, 6.0), Some(0));
        let mid = track.sample(3.0, 15.0, 60.0).unwrap();
        assert_eq!(mid.mode, SampleMode::Interpolated);
        assert!((mid.position[0] - 0.3).abs() < 1e-6);
        let ahead = track.sample(12.0, 15.0, 60.0).unwrap();
        assert_eq!(ahead.mode, SampleMode::Extrapolated);
        assert!((ahead.position[0] - 1.2).abs() < 1e-5);
        let far = track.sample(60.0, 15.0, 60.0).unwrap();
        assert_eq!(far.mode, SampleMode::ExtrapolationLimit);
        assert!((far.position[0] - 2.1).abs() < 1e-5);
    }

    #[test]
    fn a_resting_object_starts_moving_without_smearing() {
        let mut track = ObjectTrack::new(BodyKind::Dynamic, Properties::new());
        track.push(sample(0, 0.0, 0.0), None);
        // Unlisted (at rest) in the messages of ticks 3..=27, moving in the one of tick 30.
        track.push(sample(30, 0.3, 6.0), Some(27));
        let before = track.sample(26.0, 15.0, 60.0).unwrap();
        assert_eq!(before.position[0], 0.0, "still at rest until tick 27");
    }

    #[test]
    fn slerp_takes_the_short_way() {
        let a = [0.0, 0.0, 0.0, 1.0];
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let b = [0.0, -h, 0.0, -h]; // +90° about Y, negated
        let half = slerp(a, b, 0.5);
        let expected = [0.0, 0.38268343, 0.0, 0.9238795];
        for (h, e) in half.iter().zip(expected) {
            assert!((h - e).abs() < 1e-5, "{half:?}");
        }
    }
}
