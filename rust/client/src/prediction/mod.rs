//! Prediction of the client's own avatar with the server's movement code, reconciliation with
//! the server's acknowledged states, and smoothing of the corrections.
//!
//! How it works:
//! 1. every fixed tick the client turns its controls into a [`PlayerInput`] (one input = one
//!    movement step, as on the server), applies it at once with
//!    [`nexus_sim::movement::step_character`] against its [`CollisionWorld`], and keeps the
//!    input with the predicted state in the [`PredictedHistory`];
//! 2. every state message carries the newest input the server applied (`last_input_seq`) and the
//!    avatar's authoritative state after it: [`Predictor::reconcile`] compares that state with the
//!    prediction for the same input ([`rollback`]). Within the quantisation of the stream they
//!    agree and nothing moves; otherwise the prediction rewinds to the server's state and replays
//!    the unacknowledged inputs;
//! 3. the visible jump of a correction goes into a [`CorrectionSmoother`] that decays it.

// `bootstrap` and `reconcile` are parts of `impl Predictor`: they reach up to it, nothing reaches
// down into them.
mod bootstrap;
mod correction;
mod history;
mod reconcile;
pub mod rollback;

pub use correction::{CorrectionConfig, CorrectionSmoother};
pub use history::{PredictedHistory, PredictedStep};
pub use rollback::{Reconciliation, ServerAvatar};

use nexus_sim::PlayerInput;
use nexus_sim::movement::{CharacterState, MovementSettings};

use crate::collision::CollisionWorld;

/// How the prediction runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictionConfig {
    /// Largest horizontal distance (m) between the server's avatar and the prediction that still
    /// counts as agreement. The stream quantises positions (1 mm in JSON, 2 mm in binary), so an
    /// exact prediction differs by up to that much. Default 5 mm.
    pub tolerance: f32,
    /// Largest vertical difference (m) that still counts as agreement. The character controller
    /// hovers over the ground within its 2 cm skin, and how it settles there depends on
    /// sub-millimetre differences the quantised stream cannot carry: correcting those would only
    /// make new ones. Default 3 cm.
    pub vertical_tolerance: f32,
    /// Most unacknowledged inputs kept (default 600: ten seconds at 60 Hz).
    pub max_history: usize,
}

impl Default for PredictionConfig {
    fn default() -> Self {
        PredictionConfig {
            tolerance: 0.005,
            vertical_tolerance: 0.03,
            max_history: 600,
        }
    }
}

/// The predicted avatar.
#[derive(Clone, Debug)]
pub struct Predictor {
    config: PredictionConfig,
    settings: MovementSettings,
    gravity_y: f32,
    dt: f32,
    /// The state after the newest acknowledged input (as the server has it).
    confirmed: CharacterState,
    confirmed_seq: Option<u32>,
    history: PredictedHistory,
    current: CharacterState,
    /// Movement of the prediction found before a comparison (see [`bootstrap`]).
    pending_shift: [f32; 3],
    /// Possible starts while the server's idle steps before the first input are unknown.
    bootstrap: Option<Candidates>,
    bootstrap_done: bool,
    /// Most idle steps the server can have applied: the ticks from the spawn to the state being
    /// compared (see [`Predictor::set_ticks_since_spawn`]).
    idle_bound: Option<u32>,
}

impl Predictor {
    /// A predictor for an avatar at `start`, with the server's movement settings, gravity and
    /// tick length.
    pub fn new(
        config: PredictionConfig,
        settings: MovementSettings,
        gravity_y: f32,
        dt: f32,
        start: CharacterState,
    ) -> Self {
        Predictor {
            config,
            settings,
            gravity_y,
            dt,
            confirmed: start,
            confirmed_seq: None,
            history: PredictedHistory::default(),
            current: start,
            pending_shift: [0.0; 3],
            bootstrap: None,
            bootstrap_done: false,
            idle_bound: None,
        }
    }

    /// The predicted state now (after every input so far).
    pub fn current(&self) -> &CharacterState {
        &self.current
    }

    /// The state after the newest acknowledged input.
    pub fn confirmed(&self) -> &CharacterState {
        &self.confirmed
    }

    /// The newest acknowledged input.
    pub fn confirmed_seq(&self) -> Option<u32> {
        self.confirmed_seq
    }

    /// The unacknowledged inputs and their predicted states.
    pub fn history(&self) -> &PredictedHistory {
        &self.history
    }

    /// The movement settings in use.
    pub fn settings(&self) -> &MovementSettings {
        &self.settings
    }

    /// Applies one new input.
    pub fn predict(&mut self, input: PlayerInput, world: &CollisionWorld) -> &CharacterState {
        let next = world.step_character(
            &self.settings,
            self.gravity_y,
            self.dt,
            &self.current,
            &input,
        );
        self.current = next;
        self.history.push(PredictedStep { input, state: next });
        while self.history.len() > self.config.max_history.max(1) {
            // Never acknowledged for ten seconds: the server is gone or ignoring us; what was
            // predicted for that input is the best there is.
            if let Some(step) = self.history.pop_oldest() {
                self.confirmed = step.state;
                self.confirmed_seq = Some(step.input.seq);
            }
        }
        &self.current
    }

    /// Ticks from the avatar's spawn (the welcome's tick) to the state about to be compared: the
    /// server cannot have applied more idle steps than that, which bounds the search for them.
    pub fn set_ticks_since_spawn(&mut self, ticks: u64) {
        self.idle_bound = Some(u32::try_from(ticks).unwrap_or(u32::MAX));
    }

    /// The server refused an input: it never happened there, so it must not happen here.
    pub fn forget_input(&mut self, seq: u32, world: &CollisionWorld) -> bool {
        if !self.history.remove(seq) {
            return false;
        }
        self.current = rollback::replay(
            &mut self.history,
            self.confirmed,
            &self.settings,
            self.gravity_y,
            self.dt,
            world,
        );
        true
    }
}

/// The bootstrap's starts still possible (see `bootstrap`), each advanced to the last compared
/// input, with the sum of its squared errors so far (the server's own start only ever shows
/// quantisation noise). Defined here because the predictor holds it.
#[derive(Clone, Debug)]
struct Candidates {
    states: Vec<(CharacterState, f32)>,
    at: u32,
    acks: u32,
}
