//! Pieces of the binary state format shared by the encoder and the decoder, so both ends compute
//! exactly the same predictions and codes.

use crate::bits::{BitReader, BitWriter, ReadError, zigzag};
use crate::quant::{
    GRAVITY_STEPS_PER_UNIT, POSITION_STEPS_PER_METRE, ROTATION_COMPONENT_BITS,
    VELOCITY_STEPS_PER_UNIT,
};

/// Positions are predicted over at most this many ticks of the baseline's velocity.
pub const PREDICTION_MAX_TICKS: u64 = 64;
/// Largest exp-Golomb order a message may choose for a field group.
pub const MAX_ORDER: u32 = 7;
/// Bits of each field group's order in the message.
pub const ORDER_BITS: u32 = 3;

/// Field groups with their own exp-Golomb order per message: position x, y, z residuals (0–2),
/// rotation component deltas (3), velocity x, y, z residuals (4–6), angular velocity x, y, z
/// deltas (7–9). Axes differ (a sliding body moves in x and z, not y), hence one order each.
pub const GROUP_POSITION: usize = 0;
/// Rotation component deltas (one order for the three components).
pub const GROUP_ROTATION: usize = 3;
/// First velocity group (x; y and z follow).
pub const GROUP_VELOCITY: usize = 4;
/// First angular velocity group (x; y and z follow).
pub const GROUP_ANGULAR: usize = 7;
/// Number of field groups.
pub const GROUPS: usize = 10;

/// The orders of the three axes of a vector field starting at group `first`.
pub fn axis_orders(orders: &[u32; GROUPS], first: usize) -> [u32; 3] {
    [orders[first], orders[first + 1], orders[first + 2]]
}

/// What both ends know when predicting a record's fields: the tick distance to the baseline, the
/// tick rate and the quantised gravity of the message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prediction {
    /// `h = min(tick − baseline, 64)` ticks (0 for a full message).
    pub ticks: u64,
    /// Ticks per second (0: no prediction).
    pub tick_rate: u32,
    /// Gravity in 1/512 m/s² steps.
    pub gravity: [i32; 3],
}

/// Rounds `numerator / denominator` to the nearest integer, halves up (floor(x + ½)).
/// `denominator` must be positive.
fn round_div(numerator: i128, denominator: i128) -> i128 {
    let (n, d) = (2 * numerator + denominator, 2 * denominator);
    // 128-bit division is slow; realistic values fit 64 bits (same result either way).
    match (i64::try_from(n), i64::try_from(d)) {
        (Ok(n), Ok(d)) => i128::from(n.div_euclid(d)),
        _ => n.div_euclid(d),
    }
}

/// Saturates to the i32 range.
fn saturate(value: i128) -> i32 {
    value.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

impl Prediction {
    /// The prediction context of a message `distance` ticks after its baseline.
    pub fn new(distance: u64, tick_rate: u32, gravity: [i32; 3]) -> Prediction {
        Prediction {
            ticks: distance.min(PREDICTION_MAX_TICKS),
            tick_rate,
            gravity,
        }
    }

    fn usable(&self) -> bool {
        self.ticks > 0 && self.tick_rate > 0
    }

    /// Position predictor 0 (linear): `p + v·t`; 1 (ballistic): `p + v·t + ½·g·t²`, with
    /// `t = h / tick_rate`. Exact integer arithmetic, per axis:
    /// `p + round((2·v·h·512·rate + b·g·h²·32) / (64·rate²))` with b = 0 or 1.
    pub fn position(
        &self,
        predictor: u32,
        base_position: [i32; 3],
        base_velocity: [i32; 3],
    ) -> [i32; 3] {
        if !self.usable() {
            return base_position;
        }
        let h = i128::from(self.ticks);
        let rate = i128::from(self.tick_rate);
        let pos = POSITION_STEPS_PER_METRE as i128;
        let vel = VELOCITY_STEPS_PER_UNIT as i128;
        let grav = GRAVITY_STEPS_PER_UNIT as i128;
        // Common denominator 2·vel·grav·rate² (steps: pos/vel per velocity step, pos/grav per
        // gravity step).
        let denominator = 2 * vel * grav * rate * rate;
        std::array::from_fn(|axis| {
            let mut numerator = 2 * i128::from(base_velocity[axis]) * h * pos * grav * rate;
            if predictor == 1 {
                numerator += i128::from(self.gravity[axis]) * h * h * pos * vel;
            }
            saturate(i128::from(base_position[axis]) + round_div(numerator, denominator))
        })
    }

    /// Velocity predictors, for an object that moved from `base_position` to `position`:
    /// 0: the baseline velocity; 1: baseline velocity + g·t (falling); 2: the average velocity
    /// Δp / t; 3: constant acceleration 2·Δp / t − v_base. In velocity steps, exact integer
    /// arithmetic rounded floor(x + ½).
    pub fn velocity(
        &self,
        predictor: u32,
        base_position: [i32; 3],
        position: [i32; 3],
        base_velocity: [i32; 3],
    ) -> [i32; 3] {
        if predictor == 0 || !self.usable() {
            return base_velocity;
        }
        let h = i128::from(self.ticks);
        let rate = i128::from(self.tick_rate);
        let pos = POSITION_STEPS_PER_METRE as i128;
        let vel = VELOCITY_STEPS_PER_UNIT as i128;
        let grav = GRAVITY_STEPS_PER_UNIT as i128;
        std::array::from_fn(|axis| {
            let base = i128::from(base_velocity[axis]);
            let displacement = i128::from(position[axis]) - i128::from(base_position[axis]);
            let (numerator, denominator) = match predictor {
                // v + g·h/rate, in velocity steps: v + g·h·vel / (grav·rate).
                1 => (
                    base * grav * rate + i128::from(self.gravity[axis]) * h * vel,
                    grav * rate,
                ),
                // Δp·vel·rate / (pos·h).
                2 => (displacement * vel * rate, pos * h),
                _ => (2 * displacement * vel * rate - base * pos * h, pos * h),
            };
            saturate(round_div(numerator, denominator))
        })
    }
}

/// Position predictors a record may choose (1 bit).
pub const POSITION_PREDICTORS: u32 = 2;
/// Velocity predictors a record may choose (2 bits).
pub const VELOCITY_PREDICTORS: u32 = 4;

/// The dropped-component index and the three 10-bit components of a smallest-three rotation.
pub fn rotation_parts(packed: u32) -> (u32, [i32; 3]) {
    let mask = (1 << ROTATION_COMPONENT_BITS) - 1;
    let component = |j: u32| ((packed >> (2 + ROTATION_COMPONENT_BITS * j)) & mask) as i32;
    (packed & 3, [component(0), component(1), component(2)])
}

/// Packs an index and three 10-bit components; `None` if a component is out of range.
pub fn rotation_pack(index: u32, parts: [i32; 3]) -> Option<u32> {
    let mask = (1i32 << ROTATION_COMPONENT_BITS) - 1;
    let mut packed = index & 3;
    for (j, part) in parts.iter().enumerate() {
        if !(0..=mask).contains(part) {
            return None;
        }
        packed |= (*part as u32) << (2 + ROTATION_COMPONENT_BITS * j as u32);
    }
    Some(packed)
}

/// Bits of `value` in exp-Golomb order `k`: gamma(value >> k) then the low k bits.
pub fn egk_len(value: u64, k: u32) -> u64 {
    let high = (value >> k) + 1;
    let n = u64::from(63 - high.leading_zeros());
    2 * n + 1 + u64::from(k)
}

/// The order (0..=7) that codes `values` in the fewest bits.
pub fn best_order(values: &[u64]) -> u32 {
    (0..=MAX_ORDER)
        .min_by_key(|&k| values.iter().map(|&v| egk_len(v, k)).sum::<u64>())
        .unwrap_or(0)
}

/// Writes `value` in exp-Golomb order `k`.
pub fn write_egk(w: &mut BitWriter, value: u64, k: u32) {
    w.gamma(value >> k);
    if k > 0 {
        w.bits((value & ((1u64 << k) - 1)) as u32, k);
    }
}

/// Reads a value in exp-Golomb order `k`.
pub fn read_egk(r: &mut BitReader<'_>, k: u32) -> Result<u64, ReadError> {
    let high = r.gamma()?;
    let low = if k > 0 { u64::from(r.bits(k)?) } else { 0 };
    high.checked_mul(1 << k)
        .and_then(|v| v.checked_add(low))
        .ok_or(ReadError("exp-Golomb value overflows 64 bits"))
}

/// Zigzag of the difference of two quantised values.
pub fn delta_code(value: i32, base: i32) -> u64 {
    zigzag(i64::from(value) - i64::from(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_predictions_round_exactly_and_saturate() {
        let p = Prediction::new(6, 60, [0, -5023, 0]); // g = 9.81 m/s² in 1/512 steps
        // 16 steps = 1 m/s; 0.1 s → 0.1 m = 51.2 steps → 51.
        assert_eq!(p.position(0, [0; 3], [16, -16, 0]), [51, -51, 0]);
        // Ballistic from rest: ½·9.81·0.01 m = 0.04905 m = 25.1 steps → −25.
        assert_eq!(p.position(1, [0; 3], [0; 3]), [0, -25, 0]);
        // The horizon is capped at 64 ticks.
        assert_eq!(
            Prediction::new(1000, 60, [0; 3]),
            Prediction::new(64, 60, [0; 3])
        );
        let extreme = Prediction::new(64, 1, [i32::MIN; 3]);
        assert_eq!(
            extreme.position(0, [i32::MAX; 3], [i32::MAX; 3]),
            [i32::MAX; 3]
        );
        assert_eq!(extreme.position(1, [i32::MAX; 3], [0; 3]), [i32::MIN; 3]);
        assert_eq!(
            Prediction::new(6, 0, [0; 3]).position(0, [5; 3], [100; 3]),
            [5; 3]
        );
        assert_eq!(
            Prediction::new(0, 60, [0; 3]).position(1, [5; 3], [100; 3]),
            [5; 3]
        );
    }

    #[test]
    fn velocity_predictors_match_their_physics() {
        let p = Prediction::new(6, 60, [0, -5023, 0]);
        // Falling from rest for 0.1 s: v = 0.981 m/s ≈ 15.7 steps, Δp ≈ 25 position steps.
        let (p0, p1, v0) = ([0, 0, 0], [0, -25, 0], [0; 3]);
        assert_eq!(p.velocity(0, p0, p1, v0), [0; 3]);
        assert_eq!(p.velocity(1, p0, p1, v0), [0, -16, 0]);
        assert_eq!(p.velocity(2, p0, p1, v0), [0, -8, 0]);
        assert_eq!(p.velocity(3, p0, p1, v0), [0, -16, 0]);
        assert_eq!(
            Prediction::new(0, 60, [0; 3]).velocity(3, p0, p1, [7; 3]),
            [7; 3]
        );
        let extreme = Prediction::new(1, 1000, [0; 3]);
        assert_eq!(
            extreme.velocity(3, [i32::MIN; 3], [i32::MAX; 3], [i32::MIN; 3]),
            [i32::MAX; 3]
        );
    }

    #[test]
    fn exp_golomb_orders_round_trip() {
        for k in 0..=MAX_ORDER {
            let mut w = BitWriter::default();
            let values = [0u64, 1, 2, 3, 7, 8, 100, 1000, 1 << 40];
            for v in values {
                write_egk(&mut w, v, k);
            }
            let expected_bits: u64 = values.iter().map(|&v| egk_len(v, k)).sum();
            let bytes = w.finish();
            assert_eq!(bytes.len() as u64, expected_bits.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for v in values {
                assert_eq!(read_egk(&mut r, k), Ok(v));
            }
        }
        assert_eq!(best_order(&[1000, 900, 1100]), 7);
        assert_eq!(best_order(&[0, 0, 1]), 0);
    }

    #[test]
    fn rotation_parts_round_trip() {
        let packed = 2 | (5 << 2) | (500 << 11) | (510 << 20);
        let (index, parts) = rotation_parts(packed);
        assert_eq!((index, parts), (2, [5, 500, 510]));
        assert_eq!(rotation_pack(index, parts), Some(packed));
        assert_eq!(rotation_pack(0, [512, 0, 0]), None);
    }
}
