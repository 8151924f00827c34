//! Reconciliation: rewind to the server's state, replay the unacknowledged inputs. What a
//! reconciliation is given and answers, and the replay; [`Predictor::reconcile`] does it.
//!
//! [`Predictor::reconcile`]: super::Predictor::reconcile

use nexus_sim::movement::{CharacterState, MovementSettings};

use super::PredictedHistory;
use crate::collision::CollisionWorld;

/// The server's authoritative avatar, as streamed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerAvatar {
    /// Position (capsule centre), metres.
    pub position: [f32; 3],
    /// Velocity, m/s.
    pub velocity: [f32; 3],
}

/// What a reconciliation did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reconciliation {
    /// The acknowledgement is older than one already applied: nothing to compare.
    Stale,
    /// The server agrees with the prediction (within the tolerance): nothing moved.
    Agreed {
        /// Distance between the server's position and the prediction for that input, m.
        error: f32,
    },
    /// The server agrees once the idle steps it applied before the first input are accounted for
    /// (see `bootstrap`): the prediction moved to that exact start.
    Rebased {
        /// Distance between the server's position and the prediction for that input, m.
        error: f32,
        /// How far the current predicted position moved, m.
        shift: [f32; 3],
    },
    /// The server disagreed: the prediction was rewound and replayed.
    Corrected {
        /// Distance between the server's position and the prediction for that input, m.
        error: f32,
        /// How far the current predicted position moved (new minus old), m.
        shift: [f32; 3],
        /// Inputs replayed.
        replayed: usize,
    },
}

impl Reconciliation {
    /// The prediction error at the acknowledged input, if compared.
    pub fn error(&self) -> Option<f32> {
        match self {
            Reconciliation::Stale => None,
            Reconciliation::Agreed { error }
            | Reconciliation::Rebased { error, .. }
            | Reconciliation::Corrected { error, .. } => Some(*error),
        }
    }
}
/// Replays every step of `history` from `base`, rewriting their predicted states; returns the
/// final state.
pub(crate) fn replay(
    history: &mut PredictedHistory,
    base: CharacterState,
    settings: &MovementSettings,
    gravity_y: f32,
    dt: f32,
    world: &CollisionWorld,
) -> CharacterState {
    let mut state = base;
    for step in history.iter_mut() {
        state = world.step_character(settings, gravity_y, dt, &state, &step.input);
        step.state = state;
    }
    state
}
