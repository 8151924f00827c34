//! The predicted history: every input not yet acknowledged, with the avatar state it produced.

use std::collections::VecDeque;

use nexus_sim::PlayerInput;
use nexus_sim::movement::CharacterState;

/// One predicted movement step.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictedStep {
    /// The input, as sent.
    pub input: PlayerInput,
    /// The avatar's state after applying it.
    pub state: CharacterState,
}

/// Unacknowledged inputs with their predicted states, oldest first, by increasing sequence number.
#[derive(Clone, Debug, Default)]
pub struct PredictedHistory {
    steps: VecDeque<PredictedStep>,
}

impl PredictedHistory {
    /// Appends a step (its sequence number must be above the last one's).
    pub fn push(&mut self, step: PredictedStep) {
        debug_assert!(
            self.steps
                .back()
                .is_none_or(|b| b.input.seq < step.input.seq)
        );
        self.steps.push_back(step);
    }

    /// Number of steps held.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step is held.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Sequence number of the newest step.
    pub fn last_seq(&self) -> Option<u32> {
        self.steps.back().map(|s| s.input.seq)
    }

    /// Removes the steps up to and including `seq`; returns the newest removed one.
    pub fn acknowledge(&mut self, seq: u32) -> Option<PredictedStep> {
        let mut newest = None;
        while self.steps.front().is_some_and(|s| s.input.seq <= seq) {
            newest = self.steps.pop_front();
        }
        newest
    }

    /// Drops the oldest step (the history is full); returns it.
    pub fn pop_oldest(&mut self) -> Option<PredictedStep> {
        self.steps.pop_front()
    }

    /// Removes one step (an input the server refused: it never happened there).
    pub fn remove(&mut self, seq: u32) -> bool {
        match self.steps.iter().position(|s| s.input.seq == seq) {
            Some(index) => {
                self.steps.remove(index);
                true
            }
            None => false,
        }
    }

    /// The steps, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PredictedStep> {
        self.steps.iter()
    }

    /// The steps, mutably (to replay them).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut PredictedStep> {
        self.steps.iter_mut()
    }

    /// Inputs with a sequence number above `seq`, oldest first (what is still unacknowledged).
    pub fn inputs_after(&self, seq: Option<u32>) -> impl Iterator<Item = &PlayerInput> {
        self.steps
            .iter()
            .map(|s| &s.input)
            .filter(move |i| seq.is_none_or(|seq| i.seq > seq))
    }
}
