//! Reconciliation: rewind to the server's state, replay the unacknowledged inputs.

use nexus_sim::movement::{CharacterState, MovementSettings};

use super::{PredictedHistory, Predictor};
use crate::collision::CollisionWorld;
use crate::prediction::correction::length;

/// A vertical disagreement above this (m) means the server's avatar is on another trajectory
/// (e.g. it fell where the client thought it stood): its vertical velocity replaces the predicted
/// one.
const VERTICAL_RESYNC: f32 = 0.1;

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

pub(super) fn reconcile(
    predictor: &mut Predictor,
    ack_seq: u32,
    server: &ServerAvatar,
    world: &CollisionWorld,
) -> Reconciliation {
    if predictor.confirmed_seq.is_some_and(|c| ack_seq < c)
        || predictor
            .history
            .last_seq()
            .is_some_and(|last| ack_seq > last)
        || !server.position.iter().all(|c| c.is_finite())
    {
        return Reconciliation::Stale;
    }
    super::bootstrap::narrow(predictor, ack_seq, server, world);
    // The prediction for the acknowledged input: from the history, or the confirmed state if it
    // was acknowledged before (the server may repeat an ack while its avatar changes, e.g. when
    // it applies idle steps to a silent client).
    let predicted = match predictor.history.acknowledge(ack_seq) {
        Some(step) => step.state,
        // Acknowledged before (the server may repeat an ack), or just rebased by the bootstrap.
        None if predictor.confirmed_seq == Some(ack_seq) => predictor.confirmed,
        None => return Reconciliation::Stale,
    };
    predictor.confirmed_seq = Some(ack_seq);
    let difference = sub(server.position, predicted.position);
    let error = length(difference);
    let horizontal = (difference[0] * difference[0] + difference[2] * difference[2]).sqrt();
    if horizontal <= predictor.config.tolerance
        && difference[1].abs() <= predictor.config.vertical_tolerance
    {
        // Keep the prediction's own bits: the server's are the same up to quantisation.
        predictor.confirmed = predicted;
        let shift = std::mem::take(&mut predictor.pending_shift);
        if shift != [0.0; 3] {
            return Reconciliation::Rebased { error, shift };
        }
        return Reconciliation::Agreed { error };
    }
    let mut base = predicted;
    base.position = server.position;
    if server.velocity.iter().all(|v| v.is_finite()) {
        base.velocity = server.velocity;
        if difference[1].abs() > VERTICAL_RESYNC {
            base.vertical_speed = server.velocity[1];
            base.grounded = false;
        }
    }
    predictor.confirmed = base;
    let before = predictor.current.position;
    predictor.current = replay(
        &mut predictor.history,
        base,
        &predictor.settings,
        predictor.gravity_y,
        predictor.dt,
        world,
    );
    let pending = std::mem::take(&mut predictor.pending_shift);
    let shift = sub(predictor.current.position, before);
    Reconciliation::Corrected {
        error,
        shift: [
            shift[0] + pending[0],
            shift[1] + pending[1],
            shift[2] + pending[2],
        ],
        replayed: predictor.history.len(),
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

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use nexus_sim::{BodyKind, PlayerInput, Shape};

    use super::*;
    use crate::prediction::PredictionConfig;

    fn world() -> CollisionWorld {
        let mut world = CollisionWorld::new(30.0);
        let ground = Shape::Box {
            half_extents: [50.0, 0.5, 50.0],
        };
        world
            .insert(
                1,
                BodyKind::Static,
                &ground,
                [0.0, -0.5, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            )
            .unwrap();
        world.prepare([0.0; 3]);
        world
    }

    fn walk(seq: u32) -> PlayerInput {
        PlayerInput {
            seq,
            tick: None,
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            jump: false,
            run: false,
        }
    }

    fn predictor(world: &CollisionWorld) -> Predictor {
        let settings = MovementSettings::default();
        let mut start = CharacterState::new([0.0, 0.9, 0.0]);
        start.grounded = true;
        let mut p = Predictor::new(
            PredictionConfig::default(),
            settings,
            -9.81,
            1.0 / 60.0,
            start,
        );
        // Settle first, as a server would before the client's first input.
        for seq in 1..=5 {
            let mut still = walk(seq);
            still.movement = [0.0, 0.0];
            p.predict(still, world);
        }
        p
    }

    #[test]
    fn agreement_changes_nothing_and_disagreement_replays() {
        let world = world();
        let mut p = predictor(&world);
        for seq in 6..=30 {
            p.predict(walk(seq), &world);
        }
        let at_20 = p.history.iter().find(|s| s.input.seq == 20).unwrap().state;
        let current = *p.current();
        let agreed = p.reconcile(
            20,
            &ServerAvatar {
                position: at_20.position.map(|c| c + 0.0004),
                velocity: at_20.velocity,
            },
            &world,
        );
        assert!(
            matches!(agreed, Reconciliation::Agreed { .. }),
            "{agreed:?}"
        );
        assert_eq!(
            *p.current(),
            current,
            "no correction when the server agrees"
        );

        let at_25 = p.history.iter().find(|s| s.input.seq == 25).unwrap().state;
        let mut moved = at_25.position;
        moved[0] += 0.5;
        let corrected = p.reconcile(
            25,
            &ServerAvatar {
                position: moved,
                velocity: at_25.velocity,
            },
            &world,
        );
        let Reconciliation::Corrected {
            shift, replayed, ..
        } = corrected
        else {
            panic!("expected a correction, got {corrected:?}");
        };
        assert_eq!(replayed, 5);
        assert!((shift[0] - 0.5).abs() < 1e-3, "{shift:?}");
        assert!(matches!(
            p.reconcile(
                24,
                &ServerAvatar {
                    position: moved,
                    velocity: [0.0; 3]
                },
                &world
            ),
            Reconciliation::Stale
        ));
    }
}
