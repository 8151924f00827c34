//! Smoothing of visible corrections: after a reconciliation moves the predicted avatar, the
//! displayed avatar keeps its place and the difference (the *error offset*) decays over time.

/// How corrections are smoothed.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrectionConfig {
    /// Time constant of the exponential decay of the error offset, seconds (default 0.1: 95 %
    /// of a correction is absorbed within 0.3 s).
    pub time_constant: f32,
    /// Corrections larger than this (m) are shown at once (a teleport, not a glitch to hide).
    pub snap_distance: f32,
    /// Offsets below this (m) are dropped.
    pub epsilon: f32,
}

impl Default for CorrectionConfig {
    fn default() -> Self {
        CorrectionConfig {
            time_constant: 0.1,
            snap_distance: 4.0,
            epsilon: 1.0e-4,
        }
    }
}

/// The error offset of the displayed avatar.
#[derive(Clone, Debug, Default)]
pub struct CorrectionSmoother {
    config: CorrectionConfig,
    offset: [f32; 3],
}

impl CorrectionSmoother {
    /// A smoother with `config`.
    pub fn new(config: CorrectionConfig) -> Self {
        CorrectionSmoother {
            config,
            offset: [0.0; 3],
        }
    }

    /// The prediction moved by `shift` (new minus old position): the display stays where it was.
    pub fn on_correction(&mut self, shift: [f32; 3]) {
        for (o, s) in self.offset.iter_mut().zip(shift) {
            *o -= s;
        }
        if length(self.offset) > self.config.snap_distance || !length(self.offset).is_finite() {
            self.offset = [0.0; 3];
        }
    }

    /// Lets `dt` seconds pass.
    pub fn advance(&mut self, dt: f32) {
        if dt.is_nan() || dt <= 0.0 {
            return;
        }
        let keep = (-dt / self.config.time_constant.max(1.0e-4)).exp();
        self.offset = self.offset.map(|o| o * keep);
        if length(self.offset) < self.config.epsilon {
            self.offset = [0.0; 3];
        }
    }

    /// The current offset to add to the predicted position.
    pub fn offset(&self) -> [f32; 3] {
        self.offset
    }
}

pub(crate) fn length(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correction_is_hidden_then_decays_to_zero() {
        let mut smoother = CorrectionSmoother::new(CorrectionConfig::default());
        smoother.on_correction([0.3, 0.0, 0.0]);
        assert_eq!(smoother.offset(), [-0.3, 0.0, 0.0]);
        let mut previous = 0.3;
        for _ in 0..60 {
            smoother.advance(1.0 / 60.0);
            let now = length(smoother.offset());
            assert!(now < previous || now == 0.0);
            previous = now;
        }
        assert_eq!(smoother.offset(), [0.0; 3], "gone after a second");
    }

    #[test]
    fn teleports_snap() {
        let mut smoother = CorrectionSmoother::new(CorrectionConfig::default());
        smoother.on_correction([10.0, 0.0, 0.0]);
        assert_eq!(smoother.offset(), [0.0; 3]);
    }
}
