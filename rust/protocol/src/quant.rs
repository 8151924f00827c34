//! Quantisation of object states for the state stream (shared by the encoder, the decoder and the
//! change detection of both encodings).
//!
//! | quantity | step | worst-case error |
//! | --- | --- | --- |
//! | position | 1/512 m | 0.98 mm per axis |
//! | rotation | smallest three, 10 bits per component over ±1/√2 | 0.00035 per component (≈0.08°) |
//! | velocity | 1/32 m/s | 0.016 m/s per axis |
//! | angular velocity | 1/32 rad/s | 0.016 rad/s per axis |
//!
//! Values beyond the i32 range of steps (±4,194,304 m, ±67,108,864 m/s) saturate.

use nexus_sim::state::{BodyKind, ObjectState};

/// Position steps per metre.
pub const POSITION_STEPS_PER_METRE: f32 = 512.0;
/// Velocity steps per m/s (coarse: positions are the authority; velocities serve interpolation
/// and prediction, and they make the position predictor work).
pub const VELOCITY_STEPS_PER_UNIT: f32 = 16.0;
/// Gravity steps per m/s² (binary state headers carry gravity for the prediction).
pub const GRAVITY_STEPS_PER_UNIT: f32 = 512.0;
/// Angular velocity steps per rad/s.
pub const ANGULAR_STEPS_PER_UNIT: f32 = 16.0;
/// Bits of a packed smallest-three rotation: 2 (index) + 3 × 9.
pub const ROTATION_BITS: u32 = 2 + 3 * ROTATION_COMPONENT_BITS;
/// Bits per smallest-three component.
pub const ROTATION_COMPONENT_BITS: u32 = 9;
/// Highest step: an even number, so that 0 (the middle step) is exact and the identity
/// round-trips.
const ROTATION_MAX_STEP: u32 = (1 << ROTATION_COMPONENT_BITS) - 2;
/// Range of the three smallest components of a unit quaternion: ±1/√2.
const ROTATION_RANGE: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Worst-case absolute error of a dequantised position component, metres.
pub const POSITION_MAX_ERROR: f32 = 0.5 / POSITION_STEPS_PER_METRE;
/// Worst-case absolute error of a dequantised velocity component, m/s (and rad/s for angular).
pub const VELOCITY_MAX_ERROR: f32 = 0.5 / VELOCITY_STEPS_PER_UNIT;
/// Bound on the angle between a rotation and its dequantised copy, radians (measured worst case
/// over 100,000 random rotations: 0.0077).
pub const ROTATION_MAX_ANGLE_ERROR: f32 = 0.01;
/// Worst-case absolute error of a dequantised smallest-three component (the largest one, rebuilt
/// from the other three, can be off by a little more; compare rotations by angle).
pub const ROTATION_COMPONENT_MAX_ERROR: f32 = ROTATION_RANGE / ROTATION_MAX_STEP as f32;

/// An object's streamed state in quantised form: what both ends compare and hold as baselines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantizedState {
    /// Position in 1/512 m steps.
    pub position: [i32; 3],
    /// Smallest three: bits 0–1 index of the dropped (largest) component, then three 9-bit
    /// components in index order (29 bits).
    pub rotation: u32,
    /// Linear velocity in 1/32 m/s steps.
    pub velocity: [i32; 3],
    /// Angular velocity in 1/32 rad/s steps.
    pub angular_velocity: [i32; 3],
    /// Whether the body sleeps.
    pub sleeping: bool,
}

/// The baseline of an object the client does not have yet: origin, identity, at rest.
pub const ZERO_STATE: QuantizedState = QuantizedState {
    position: [0; 3],
    rotation: IDENTITY_ROTATION,
    velocity: [0; 3],
    angular_velocity: [0; 3],
    sleeping: false,
};

/// Identity `[0, 0, 0, 1]`: w (index 3) dropped, the others at the middle step (255).
pub const IDENTITY_ROTATION: u32 = {
    let mid = ROTATION_MAX_STEP / 2;
    let bits = ROTATION_COMPONENT_BITS;
    3 | (mid << 2) | (mid << (2 + bits)) | (mid << (2 + 2 * bits))
};

fn steps(value: f32, per_unit: f32) -> i32 {
    // `as` saturates and maps NaN to 0: no input makes this panic.
    (value * per_unit).round() as i32
}

/// Quantises one vector component by component.
fn steps3(v: [f32; 3], per_unit: f32) -> [i32; 3] {
    v.map(|c| steps(c, per_unit))
}

fn unsteps3(q: [i32; 3], per_unit: f32) -> [f32; 3] {
    q.map(|c| c as f32 / per_unit)
}

/// Quantises a position.
pub fn quantize_position(p: [f32; 3]) -> [i32; 3] {
    steps3(p, POSITION_STEPS_PER_METRE)
}

/// Dequantises a position.
pub fn dequantize_position(q: [i32; 3]) -> [f32; 3] {
    unsteps3(q, POSITION_STEPS_PER_METRE)
}

/// Quantises a velocity.
pub fn quantize_velocity(v: [f32; 3]) -> [i32; 3] {
    steps3(v, VELOCITY_STEPS_PER_UNIT)
}

/// Dequantises a velocity.
pub fn dequantize_velocity(q: [i32; 3]) -> [f32; 3] {
    unsteps3(q, VELOCITY_STEPS_PER_UNIT)
}

/// Quantises an angular velocity.
pub fn quantize_angular(v: [f32; 3]) -> [i32; 3] {
    steps3(v, ANGULAR_STEPS_PER_UNIT)
}

/// Dequantises an angular velocity.
pub fn dequantize_angular(q: [i32; 3]) -> [f32; 3] {
    unsteps3(q, ANGULAR_STEPS_PER_UNIT)
}

/// Smallest-three encoding of a quaternion `[x, y, z, w]` (normalised first; a zero or non-finite
/// quaternion becomes the identity). `q` and `-q` encode alike: the dropped component is made
/// positive.
pub fn quantize_rotation(q: [f32; 4]) -> u32 {
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    if !(norm.is_finite() && norm > 1e-12) {
        return IDENTITY_ROTATION;
    }
    let mut largest = 0;
    for i in 1..4 {
        if q[i].abs() > q[largest].abs() {
            largest = i;
        }
    }
    let sign = if q[largest] < 0.0 { -1.0 } else { 1.0 };
    let mut packed = largest as u32;
    let mut shift = 2;
    for (i, c) in q.iter().enumerate() {
        if i == largest {
            continue;
        }
        let unit = (c * sign / norm).clamp(-ROTATION_RANGE, ROTATION_RANGE);
        let step = ((unit + ROTATION_RANGE) / (2.0 * ROTATION_RANGE) * ROTATION_MAX_STEP as f32)
            .round() as u32;
        packed |= step.min(ROTATION_MAX_STEP) << shift;
        shift += ROTATION_COMPONENT_BITS;
    }
    packed
}

/// Rebuilds a unit quaternion `[x, y, z, w]` from its smallest-three encoding.
pub fn dequantize_rotation(packed: u32) -> [f32; 4] {
    let largest = (packed & 3) as usize;
    let mut q = [0.0f32; 4];
    let mut shift = 2;
    let mut sum = 0.0;
    for (i, c) in q.iter_mut().enumerate() {
        if i == largest {
            continue;
        }
        let step =
            ((packed >> shift) & ((1 << ROTATION_COMPONENT_BITS) - 1)).min(ROTATION_MAX_STEP);
        *c = step as f32 / ROTATION_MAX_STEP as f32 * (2.0 * ROTATION_RANGE) - ROTATION_RANGE;
        sum += *c * *c;
        shift += ROTATION_COMPONENT_BITS;
    }
    q[largest] = (1.0 - sum).max(0.0).sqrt();
    // Renormalise: quantisation can leave the three small components summing above 1.
    let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
    q.map(|c| c / norm)
}

/// Quantises gravity (1/512 m/s² steps), as carried in binary state headers for prediction.
pub fn quantize_gravity(g: [f32; 3]) -> [i32; 3] {
    steps3(g, GRAVITY_STEPS_PER_UNIT)
}

/// Quantises the streamed part of an object's state.
pub fn quantize_object(object: &ObjectState) -> QuantizedState {
    QuantizedState {
        position: quantize_position(object.position),
        rotation: quantize_rotation(object.rotation),
        velocity: quantize_velocity(object.velocity),
        angular_velocity: quantize_angular(object.angular_velocity),
        sleeping: object.sleeping,
    }
}

/// Wire code of a body kind (2 bits in the binary stream).
pub fn kind_code(kind: BodyKind) -> u32 {
    match kind {
        BodyKind::Dynamic => 0,
        BodyKind::Kinematic => 1,
        BodyKind::Static => 2,
        BodyKind::Player => 3,
    }
}

/// Body kind of a wire code (only the low two bits count).
pub fn kind_of_code(code: u32) -> BodyKind {
    match code & 3 {
        0 => BodyKind::Dynamic,
        1 => BodyKind::Kinematic,
        2 => BodyKind::Static,
        _ => BodyKind::Player,
    }
}

/// Wire name of a body kind (`dynamic`, `kinematic`, `static`, `player`).
pub fn kind_name(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Dynamic => "dynamic",
        BodyKind::Kinematic => "kinematic",
        BodyKind::Static => "static",
        BodyKind::Player => "player",
    }
}

/// Angle in radians between two unit rotations (0 when equal, also for `q` vs `-q`).
pub fn rotation_angle_between(a: [f32; 4], b: [f32; 4]) -> f32 {
    // From the chord |a − b| (sign-aligned) rather than acos(dot), which is imprecise near 0.
    let dot: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let sign = if dot < 0.0 { -1.0 } else { 1.0 };
    let chord = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (f64::from(*x) - sign * f64::from(*y)).powi(2))
        .sum::<f64>()
        .sqrt();
    (4.0 * (chord / 2.0).min(1.0).asin()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_exactly() {
        assert_eq!(quantize_rotation([0.0, 0.0, 0.0, 1.0]), IDENTITY_ROTATION);
        assert_eq!(quantize_rotation([0.0, 0.0, 0.0, -1.0]), IDENTITY_ROTATION);
        let q = dequantize_rotation(IDENTITY_ROTATION);
        assert_eq!(q, [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn random_rotations_round_trip_within_the_documented_error() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut worst = 0.0f32;
        for _ in 0..100_000 {
            let q = [next(), next(), next(), next()];
            let n = q.iter().map(|c| c * c).sum::<f32>().sqrt();
            if n < 0.1 {
                continue;
            }
            let q = q.map(|c| c / n);
            let back = dequantize_rotation(quantize_rotation(q));
            worst = worst.max(rotation_angle_between(q, back));
        }
        assert!(
            worst < ROTATION_MAX_ANGLE_ERROR,
            "worst rotation error {worst} rad"
        );
        assert!(
            worst > ROTATION_MAX_ANGLE_ERROR * 0.5,
            "the documented bound is tight: {worst}"
        );
    }

    #[test]
    fn degenerate_rotations_become_identity() {
        assert_eq!(quantize_rotation([0.0; 4]), IDENTITY_ROTATION);
        assert_eq!(
            quantize_rotation([f32::NAN, 0.0, 0.0, 1.0]),
            IDENTITY_ROTATION
        );
    }

    #[test]
    fn non_finite_and_huge_values_saturate_without_panic() {
        assert_eq!(
            quantize_position([f32::NAN, f32::INFINITY, -1e30]),
            [0, i32::MAX, i32::MIN]
        );
    }
}
