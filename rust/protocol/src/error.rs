//! Protocol errors: a stable snake_case `code` for machines and a `message` for people.
//!
//! Every code the server may put in a `system:error:v1:stream` event (or in a close frame's reason)
//! is listed in [`codes`], in one place, so that client authors and the reference document can rely
//! on them. The gateway uses the same constants.

use std::fmt;

/// Every error code of the protocol. Stable: never renamed, only added to.
pub mod codes {
    // --- decoding a client frame (produced by this crate) ---
    /// The text frame is not valid JSON (or not UTF-8), or its top level is not an object.
    pub const MALFORMED_JSON: &str = "malformed_json";
    /// Valid JSON, but not an envelope: `type` missing or not a string, `metadata` not an object.
    pub const MALFORMED_ENVELOPE: &str = "malformed_envelope";
    /// A binary client frame that is truncated, has trailing bytes or an unknown format version.
    pub const MALFORMED_BINARY: &str = "malformed_binary";
    /// The `type` is not one this protocol knows (the message names it).
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// A known server event (`…:stream`) or another non-`requested` kind sent by a client.
    pub const WRONG_DIRECTION: &str = "wrong_direction";
    /// A payload field is missing, has the wrong type, is out of range or is not a finite number;
    /// the message starts with the field path, e.g. `payload.inputs[3].movement[0]: …`.
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    /// A list or string in the payload is longer than the configured limit (e.g. inputs per message).
    pub const LIMIT_EXCEEDED: &str = "limit_exceeded";

    // --- session and limits (produced by the gateway) ---
    /// The frame is larger than the maximum frame size.
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// A message other than `session:join` / `session:ping` before joining.
    pub const NOT_JOINED: &str = "not_joined";
    /// A second `session:join` on a connection that already joined.
    pub const ALREADY_JOINED: &str = "already_joined";
    /// `metadata.campaign_id` names no open campaign.
    pub const UNKNOWN_CAMPAIGN: &str = "unknown_campaign";
    /// A message whose `metadata.campaign_id` differs from the joined campaign.
    pub const CAMPAIGN_MISMATCH: &str = "campaign_mismatch";
    /// The token is missing, malformed, badly signed or expired (closes the connection).
    pub const INVALID_TOKEN: &str = "invalid_token";
    /// The client's role may not do this (e.g. environment edits need `admin`).
    pub const FORBIDDEN: &str = "forbidden";
    /// Too many messages or inputs per second; the excess is dropped (repeated flooding closes).
    pub const RATE_LIMITED: &str = "rate_limited";
    /// The server or this address has too many connections (closes the connection).
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// Nothing received for longer than the idle timeout (closes the connection).
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
    /// The client cannot keep up with reliable events (closes the connection).
    pub const SLOW_CONSUMER: &str = "slow_consumer";
    /// The simulation refused an input (`session:ack` lists these per sequence number).
    pub const INPUT_REJECTED: &str = "input_rejected";
    /// The server is shutting down or the campaign was closed (closes the connection).
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// An unexpected server-side failure; the connection carries on.
    pub const INTERNAL_ERROR: &str = "internal_error";
    /// Not welcomed into a campaign within the join timeout (closes the connection).
    pub const JOIN_TIMEOUT: &str = "join_timeout";
    /// The campaign's simulation is too far behind to take more requests; retry later.
    pub const SERVER_BUSY: &str = "server_busy";
    /// A WebSocket-level violation (bad UTF-8 in a text frame, bad framing); closes the connection.
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
    /// The session was resumed on another connection (the close reason of the one it left).
    pub const SESSION_RESUMED: &str = "session_resumed";
    /// A WebRTC offer to a server that has no WebRTC (PROTOCOL.md section 11).
    pub const WEBRTC_UNAVAILABLE: &str = "webrtc_unavailable";

    /// All codes, for documentation and tests.
    pub const ALL: &[&str] = &[
        MALFORMED_JSON,
        MALFORMED_ENVELOPE,
        MALFORMED_BINARY,
        UNKNOWN_TYPE,
        WRONG_DIRECTION,
        INVALID_PAYLOAD,
        LIMIT_EXCEEDED,
        FRAME_TOO_LARGE,
        NOT_JOINED,
        ALREADY_JOINED,
        UNKNOWN_CAMPAIGN,
        CAMPAIGN_MISMATCH,
        INVALID_TOKEN,
        FORBIDDEN,
        RATE_LIMITED,
        TOO_MANY_CONNECTIONS,
        IDLE_TIMEOUT,
        SLOW_CONSUMER,
        INPUT_REJECTED,
        SHUTTING_DOWN,
        INTERNAL_ERROR,
        JOIN_TIMEOUT,
        SERVER_BUSY,
        PROTOCOL_VIOLATION,
        SESSION_RESUMED,
        WEBRTC_UNAVAILABLE,
    ];
}

/// Why a frame was refused: a stable code from [`codes`] plus a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// Stable snake_case code, one of [`codes::ALL`].
    pub code: &'static str,
    /// Human-readable explanation; for payload errors it starts with the field path.
    pub message: String,
}

impl ProtocolError {
    /// Builds an error from a code and a message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    /// An `invalid_payload` error about the field at `path`.
    pub fn invalid(path: &str, what: impl fmt::Display) -> Self {
        ProtocolError::new(codes::INVALID_PAYLOAD, format!("{path}: {what}"))
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in codes::ALL {
            assert!(seen.insert(*code), "duplicate {code}");
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code} is not snake_case"
            );
        }
    }
}
