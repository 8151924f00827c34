//! Errors of the simulation API: a stable machine-readable code plus a human message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A request the world refused. `code` is a stable snake_case string that clients and hosts can
/// match on; `message` explains it to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimError {
    /// Stable snake_case code, e.g. `unknown_object`, `invalid_shape`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl SimError {
    /// Builds an error from a code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SimError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unknown_object(id: u32) -> Self {
        SimError::new("unknown_object", format!("no object with id {id}"))
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for SimError {}

/// Why one input of a batch was refused (the rest of the batch is still used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRejection {
    /// Sequence number of the refused input.
    pub seq: u32,
    /// Stable snake_case code: `no_avatar`, `non_finite`, `out_of_range`, `too_far_ahead`,
    /// `queue_full`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}
