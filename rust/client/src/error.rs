//! Errors of the client: a stable machine-readable code plus a human message.

use std::fmt;

/// Something the client could not do or could not understand. `code` is a stable snake_case
/// string (`malformed_message`, `invalid_shape`, `connect_failed`, `join_refused`, `timeout`,
/// `closed`, ...); `message` explains it to a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ClientError {
    /// Builds an error from a code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ClientError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ClientError {}
