//! Per-client input queues: ordering by sequence number, target ticks, history for prediction.
//!
//! Rules (each one tested):
//! - inputs are validated first: non-finite numbers → `non_finite`, a movement component outside
//!   -1..=1 or an absurd look vector → `out_of_range`; refused inputs come back as
//!   [`InputRejection`]s, the rest of the batch is still used;
//! - an input whose sequence number is already queued or in the history is a *duplicate*, one
//!   at or below the last processed sequence number is *stale*, and so is one whose target tick
//!   lies more than `stale_after_ticks` in the past: all are ignored silently (clients resend
//!   unacknowledged inputs on purpose, so this is normal traffic) and counted in [`InputStats`];
//! - inputs are processed in sequence order, at most `max_per_tick` per tick; one that targets a
//!   future tick is held until that tick (and holds back those after it);
//! - more than `max_queued` waiting → `queue_full`; a target more than `max_future_ticks` ahead →
//!   `too_far_ahead`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::command::PlayerInput;
use crate::config::InputSettings;
use crate::error::InputRejection;
use crate::state::Tick;

/// Largest accepted look-vector component (the vector is normalised; this only bounds junk).
const LOOK_LIMIT: f32 = 1.0e6;
/// Slack on the -1..=1 movement range, for clients that normalise with rounding error.
const MOVEMENT_SLACK: f32 = 1.0e-3;

/// Counters of what a client's queue did with its inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStats {
    /// Inputs accepted into the queue.
    pub accepted: u64,
    /// Inputs processed (applied to the avatar).
    pub processed: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
    /// Stale inputs ignored.
    pub stale: u64,
    /// Inputs refused with an [`InputRejection`].
    pub rejected: u64,
}

/// The input queue of one client.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct InputQueue {
    /// Waiting inputs, in ascending sequence order (saved as a map from sequence number to
    /// input, as before: saves stay readable both ways).
    #[serde(with = "by_sequence")]
    pending: VecDeque<PlayerInput>,
    history: VecDeque<PlayerInput>,
    last_processed: Option<u32>,
    /// Tick at which the last input was processed (or the client joined).
    pub last_input_tick: Tick,
    pub stats: InputStats,
}

fn reject(input: &PlayerInput, code: &str, message: String) -> InputRejection {
    InputRejection {
        seq: input.seq,
        code: code.to_string(),
        message,
    }
}

/// Checks the numbers of one input.
pub(crate) fn validate(input: &PlayerInput) -> Result<(), InputRejection> {
    let numbers = input.movement.iter().chain(input.look.iter());
    if numbers.clone().any(|v| !v.is_finite()) {
        return Err(reject(
            input,
            "non_finite",
            format!(
                "input {} has a non-finite movement or look value",
                input.seq
            ),
        ));
    }
    if input
        .movement
        .iter()
        .any(|m| m.abs() > 1.0 + MOVEMENT_SLACK)
    {
        return Err(reject(
            input,
            "out_of_range",
            format!(
                "input {}: movement components must be within -1..=1, got {:?}",
                input.seq, input.movement
            ),
        ));
    }
    if input.look.iter().any(|l| l.abs() > LOOK_LIMIT) {
        return Err(reject(
            input,
            "out_of_range",
            format!(
                "input {}: look components must be within ±{LOOK_LIMIT}, got {:?}",
                input.seq, input.look
            ),
        ));
    }
    Ok(())
}

impl InputQueue {
    /// A fresh queue for a client that joined at `tick`.
    pub fn new(tick: Tick) -> Self {
        InputQueue {
            last_input_tick: tick,
            ..InputQueue::default()
        }
    }

    /// Adds a batch; returns the refused inputs. `current` is the world's current tick.
    pub fn push_batch(
        &mut self,
        inputs: &[PlayerInput],
        current: Tick,
        settings: &InputSettings,
    ) -> Vec<InputRejection> {
        let mut rejections = Vec::new();
        for input in inputs {
            if let Err(rejection) = validate(input) {
                self.stats.rejected += 1;
                rejections.push(rejection);
                continue;
            }
            let already_processed = self.last_processed.is_some_and(|last| input.seq <= last);
            // Both the queue and the history are in ascending sequence order.
            let position = self.pending.partition_point(|p| p.seq < input.seq);
            if self
                .pending
                .get(position)
                .is_some_and(|p| p.seq == input.seq)
                || (already_processed
                    && self
                        .history
                        .binary_search_by_key(&input.seq, |h| h.seq)
                        .is_ok())
            {
                self.stats.duplicates += 1;
                continue;
            }
            let too_late = input
                .tick
                .is_some_and(|t| t.saturating_add(settings.stale_after_ticks) < current);
            if already_processed || too_late {
                self.stats.stale += 1;
                continue;
            }
            if let Some(target) = input.tick
                && target > current.saturating_add(settings.max_future_ticks)
            {
                self.stats.rejected += 1;
                rejections.push(reject(
                    input,
                    "too_far_ahead",
                    format!(
                        "input {} targets tick {target}, more than {} ticks after the current tick {current}",
                        input.seq, settings.max_future_ticks
                    ),
                ));
                continue;
            }
            if self.pending.len() >= settings.max_queued {
                self.stats.rejected += 1;
                rejections.push(reject(
                    input,
                    "queue_full",
                    format!(
                        "input {} refused: {} inputs are already waiting",
                        input.seq, settings.max_queued
                    ),
                ));
                continue;
            }
            self.stats.accepted += 1;
            self.pending.insert(position, input.clone());
        }
        rejections
    }

    /// Takes the inputs due in the step that produces tick `next` (in sequence order).
    pub fn take_due(&mut self, next: Tick, settings: &InputSettings) -> Vec<PlayerInput> {
        let mut due = Vec::new();
        while due.len() < settings.max_per_tick.max(1)
            && let Some(input) = self
                .pending
                .pop_front_if(|i| i.tick.is_none_or(|t| t <= next))
        {
            due.push(input);
        }
        due
    }

    /// Records that `input` was applied at tick `tick`.
    pub fn mark_processed(&mut self, input: PlayerInput, tick: Tick, history_len: usize) {
        self.last_processed = Some(input.seq);
        self.last_input_tick = tick;
        self.stats.processed += 1;
        self.history.push_back(input);
        while self.history.len() > history_len {
            self.history.pop_front();
        }
    }

    /// Sequence number of the last processed input.
    pub fn last_processed(&self) -> Option<u32> {
        self.last_processed
    }

    /// Processed inputs with a sequence number above `seq`, oldest first (from the history).
    pub fn since(&self, seq: u32) -> Vec<PlayerInput> {
        self.history
            .iter()
            .filter(|i| i.seq > seq)
            .cloned()
            .collect()
    }

    /// Number of inputs waiting.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

/// The waiting inputs as a map from sequence number to input (their saved form).
mod by_sequence {
    use std::collections::{BTreeMap, VecDeque};

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::command::PlayerInput;

    pub fn serialize<S: Serializer>(
        pending: &VecDeque<PlayerInput>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(pending.iter().map(|input| (input.seq, input)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<VecDeque<PlayerInput>, D::Error> {
        let by_seq = BTreeMap::<u32, PlayerInput>::deserialize(deserializer)?;
        Ok(by_seq.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seq: u32, tick: Option<Tick>) -> PlayerInput {
        PlayerInput {
            seq,
            tick,
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            jump: false,
            run: false,
        }
    }

    #[test]
    fn waiting_inputs_are_saved_as_a_map_by_sequence_number() {
        let settings = InputSettings::default();
        let mut q = InputQueue::new(0);
        q.push_batch(
            &[input(10, None), input(9, None), input(11, None)],
            0,
            &settings,
        );
        let saved = serde_json::to_value(&q).unwrap();
        let pending = saved["pending"].as_object().expect("a map");
        assert_eq!(pending.len(), 3);
        for seq in [9, 10, 11] {
            assert_eq!(pending[&seq.to_string()]["seq"], seq);
        }
        // Loaded in sequence order, whatever order the keys come in ("10" < "9" as text).
        let mut loaded: InputQueue = serde_json::from_value(saved).unwrap();
        let due: Vec<u32> = loaded
            .take_due(1, &settings)
            .iter()
            .map(|i| i.seq)
            .collect();
        assert_eq!(due, vec![9, 10, 11]);
    }

    #[test]
    fn due_inputs_come_in_sequence_order_and_future_ones_wait() {
        let settings = InputSettings::default();
        let mut q = InputQueue::new(0);
        let rejected = q.push_batch(
            &[input(3, None), input(1, None), input(2, Some(5))],
            0,
            &settings,
        );
        assert!(rejected.is_empty());
        let due: Vec<u32> = q.take_due(1, &settings).iter().map(|i| i.seq).collect();
        assert_eq!(due, vec![1], "seq 2 targets tick 5 and holds back seq 3");
        assert!(q.take_due(4, &settings).is_empty());
        let due: Vec<u32> = q.take_due(5, &settings).iter().map(|i| i.seq).collect();
        assert_eq!(due, vec![2, 3]);
    }

    #[test]
    fn at_most_max_per_tick_inputs_are_due() {
        let settings = InputSettings {
            max_per_tick: 2,
            ..InputSettings::default()
        };
        let mut q = InputQueue::new(0);
        let batch: Vec<_> = (1..=5).map(|s| input(s, None)).collect();
        q.push_batch(&batch, 0, &settings);
        assert_eq!(q.take_due(1, &settings).len(), 2);
        assert_eq!(q.pending_len(), 3);
    }

    #[test]
    fn queue_full_and_history_bound() {
        let settings = InputSettings {
            max_queued: 2,
            history: 3,
            ..InputSettings::default()
        };
        let mut q = InputQueue::new(0);
        let rejected = q.push_batch(
            &[input(1, None), input(2, None), input(3, None)],
            0,
            &settings,
        );
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].code, "queue_full");
        assert_eq!(rejected[0].seq, 3);
        for tick in 1..=2 {
            for i in q.take_due(tick, &settings) {
                q.mark_processed(i, tick, settings.history);
            }
        }
        for seq in 3..=6 {
            q.push_batch(&[input(seq, None)], 2, &settings);
            for i in q.take_due(seq as Tick, &settings) {
                q.mark_processed(i, seq as Tick, settings.history);
            }
        }
        let kept: Vec<u32> = q.since(0).iter().map(|i| i.seq).collect();
        assert_eq!(kept, vec![4, 5, 6]);
    }
}
