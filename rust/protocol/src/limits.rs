//! Limits on what clients may send, with the defaults the reference document lists.
//!
//! The decoder enforces the per-message limits itself ([`crate::decode_client_text_with`]); the
//! gateway enforces the rest (frame size, rates, connections, idle timeout) with the same values,
//! so one struct configures both and the welcome can tell clients what applies to them.

use serde::{Deserialize, Serialize};

/// Configurable limits. Every field has a documented default ([`Limits::default`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest accepted client frame (text or binary), bytes. Default 65,536.
    pub max_frame_bytes: usize,
    /// Most inputs in one `physics:client_input` message (or binary input frame). Default 64.
    pub max_inputs_per_message: usize,
    /// Inputs per second per client, averaged over one second (token bucket). Default 240.
    pub max_inputs_per_second: u32,
    /// Messages (frames) per second per client, averaged over one second. Default 120.
    pub max_messages_per_second: u32,
    /// Longest accepted token, bytes. Default 4,096.
    pub max_token_bytes: usize,
    /// Longest accepted name (player name, action name, interaction kind), bytes. Default 64.
    pub max_name_bytes: usize,
    /// Largest accepted `properties` / `args` object, bytes of its JSON text. Default 4,096.
    pub max_properties_bytes: usize,
    /// Seconds without any frame from the client before it is closed. Default 30.
    pub idle_timeout_secs: u32,
    /// Open connections on the whole gateway. Default 10,000.
    pub max_connections: usize,
    /// Open connections from one IP address. Default 64.
    pub max_connections_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_inputs_per_message: 64,
            max_inputs_per_second: 240,
            max_messages_per_second: 120,
            max_token_bytes: 4096,
            max_name_bytes: 64,
            max_properties_bytes: 4096,
            idle_timeout_secs: 30,
            max_connections: 10_000,
            max_connections_per_address: 64,
        }
    }
}
