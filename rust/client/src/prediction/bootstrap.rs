//! The start of a prediction: recovering the idle steps the server applied before the client's
//! first input arrived.
//!
//! How it works: the server waits `idle_after_ticks` for a fresh avatar's first input, then moves
//! it with idle steps (no movement, gravity) until the input comes; with a long round trip the
//! first acknowledgement already includes a few. The client cannot know how many, and rebasing on
//! the server's quantised position would leave the prediction inexact (the character controller
//! turns sub-millimetre differences into lost steps later). So at the first acknowledgement it
//! tries every count up to two seconds, keeps each start whose replay matches the server within
//! the stream's quantisation, follows the most accurate one, and narrows the set at every
//! acknowledgement until one is left (or a bounded number of acknowledgements passed). Each
//! candidate only advances through the newly acknowledged inputs, so the cost is small.

use nexus_sim::PlayerInput;
use nexus_sim::movement::CharacterState;

use super::rollback::{ServerAvatar, replay};
use super::{Candidates, Predictor};
use crate::collision::CollisionWorld;

/// Most idle steps the server may have applied before the first input (two seconds at 60 Hz).
const MAX_IDLE_STEPS: usize = 120;
/// Acknowledgements after which the search stops with the best candidate.
const MAX_ACKS: u32 = 60;

fn error(server: &ServerAvatar, state: &CharacterState) -> f32 {
    (0..3)
        .map(|i| (server.position[i] - state.position[i]).abs())
        .fold(0.0, f32::max)
}

/// Exact up to the stream's quantisation (the coarser, binary one), per axis.
fn exact() -> f32 {
    nexus_protocol::quant::POSITION_MAX_ERROR + 1.0e-4
}

/// Whether two candidate states are the same start for every purpose: the movement code settles
/// a grounded avatar at one height, so different idle counts from a resting spawn end up equal to
/// within rounding, far below anything the stream can tell apart (and such differences no longer
/// grow). Keeping such twins apart would hold the search open for nothing, and let it absorb
/// real corrections as rebases.
fn indistinguishable(a: &CharacterState, b: &CharacterState) -> bool {
    const SAME: f32 = 1.0e-4;
    let close = |x: [f32; 3], y: [f32; 3]| (0..3).all(|i| (x[i] - y[i]).abs() <= SAME);
    a.grounded == b.grounded
        && a.look == b.look
        && (a.vertical_speed - b.vertical_speed).abs() <= SAME
        && close(a.position, b.position)
}

impl Predictor {
    /// Advances `state` through the history's inputs in `(after, upto]`.
    fn advance(
        &self,
        world: &CollisionWorld,
        mut state: CharacterState,
        after: Option<u32>,
        upto: u32,
    ) -> CharacterState {
        for step in self.history.iter() {
            let seq = step.input.seq;
            if after.is_some_and(|a| seq <= a) || seq > upto {
                continue;
            }
            state =
                world.step_character(&self.settings, self.gravity_y, self.dt, &state, &step.input);
        }
        state
    }

    /// Called before each comparison, while the start is not settled; may rebase the prediction on
    /// a better candidate (recording the visible shift in `pending_shift`).
    pub(super) fn narrow_bootstrap(
        &mut self,
        ack_seq: u32,
        server: &ServerAvatar,
        world: &CollisionWorld,
    ) {
        let predictor = self;
        if predictor.bootstrap_done {
            return;
        }
        let candidates = match predictor.bootstrap.take() {
            None => {
                // Zero idle steps (the plain prediction) is a candidate like the others: a chance
                // match within the quantisation proves nothing.
                let mut states = Vec::new();
                let mut start = predictor.confirmed;
                let plain = predictor.advance(world, start, None, ack_seq);
                let e = error(server, &plain);
                if e <= exact() {
                    states.push((plain, e * e));
                }
                let most = predictor
                    .idle_bound
                    .map_or(MAX_IDLE_STEPS, |b| (b as usize).min(MAX_IDLE_STEPS));
                for _ in 0..most {
                    let idle = PlayerInput {
                        seq: 0,
                        tick: None,
                        movement: [0.0, 0.0],
                        look: start.look,
                        jump: false,
                        run: false,
                    };
                    start = world.step_character(
                        &predictor.settings,
                        predictor.gravity_y,
                        predictor.dt,
                        &start,
                        &idle,
                    );
                    let state = predictor.advance(world, start, None, ack_seq);
                    let e = error(server, &state);
                    if e <= exact() && !states.iter().any(|(s, _)| indistinguishable(s, &state)) {
                        states.push((state, e * e));
                    }
                }
                Candidates {
                    states,
                    at: ack_seq,
                    acks: 1,
                }
            }
            Some(mut candidates) => {
                if ack_seq > candidates.at {
                    let at = candidates.at;
                    candidates.states = candidates
                        .states
                        .iter()
                        .map(|(s, score)| {
                            let next = predictor.advance(world, *s, Some(at), ack_seq);
                            let e = error(server, &next);
                            (next, score + e * e, e)
                        })
                        .filter(|(_, _, e)| *e <= exact())
                        .map(|(s, score, _)| (s, score))
                        .collect();
                    candidates
                        .states
                        .dedup_by(|a, b| indistinguishable(&a.0, &b.0));
                    candidates.at = ack_seq;
                    candidates.acks += 1;
                }
                candidates
            }
        };
        let current_at_ack = predictor
            .history
            .iter()
            .find(|s| s.input.seq == ack_seq)
            .map(|s| s.state)
            .or((predictor.confirmed_seq == Some(ack_seq)).then_some(predictor.confirmed));
        // Keep following the current start while it survives (switching is a visible shift).
        let keep = current_at_ack.filter(|c| {
            candidates
                .states
                .iter()
                .any(|(s, _)| indistinguishable(s, c))
        });
        let Some(best) = keep.or_else(|| {
            candidates
                .states
                .iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(s, _)| *s)
        }) else {
            // No idle count explains the server: an ordinary correction follows.
            predictor.bootstrap_done = true;
            return;
        };
        if keep.is_none() {
            // Rebase on the best candidate: exact if it is the server's start.
            let before = predictor.current.position;
            predictor.history.acknowledge(ack_seq);
            predictor.confirmed = best;
            predictor.confirmed_seq = Some(ack_seq);
            predictor.current = replay(
                &mut predictor.history,
                best,
                &predictor.settings,
                predictor.gravity_y,
                predictor.dt,
                world,
            );
            for (p, (now, was)) in predictor
                .pending_shift
                .iter_mut()
                .zip(predictor.current.position.iter().zip(before))
            {
                *p += now - was;
            }
        }
        if candidates.states.len() > 1 && candidates.acks < MAX_ACKS {
            predictor.bootstrap = Some(candidates);
        } else {
            predictor.bootstrap_done = true;
        }
    }
}
