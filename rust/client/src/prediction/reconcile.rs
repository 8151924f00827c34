//! [`Predictor::reconcile`]: the prediction against the server's acknowledged state. Kept out of
//! `rollback` so that the types the parent re-exports from there never depend on the predictor.

use super::rollback::{Reconciliation, ServerAvatar, replay};
use super::{Predictor, correction::length};
use crate::collision::CollisionWorld;

/// A vertical disagreement above this (m) means the server's avatar is on another trajectory
/// (e.g. it fell where the client thought it stood): its vertical velocity replaces the predicted
/// one.
const VERTICAL_RESYNC: f32 = 0.1;

impl Predictor {
    /// Compares the server's avatar after input `ack_seq` with the prediction and corrects it if
    /// they disagree (see [`rollback`](super::rollback)).
    pub fn reconcile(
        &mut self,
        ack_seq: u32,
        server: &ServerAvatar,
        world: &CollisionWorld,
    ) -> Reconciliation {
        let predictor = self;
        if predictor.confirmed_seq.is_some_and(|c| ack_seq < c)
            || predictor
                .history
                .last_seq()
                .is_some_and(|last| ack_seq > last)
            || !server.position.iter().all(|c| c.is_finite())
        {
            return Reconciliation::Stale;
        }
        predictor.narrow_bootstrap(ack_seq, server, world);
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
}

fn sub(a: [f32; 3], b: [f32; 3]) -> [f32; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

#[cfg(test)]
mod tests {
    use nexus_sim::{BodyKind, PlayerInput, Shape};

    use super::*;
    use nexus_sim::movement::{CharacterState, MovementSettings};

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
