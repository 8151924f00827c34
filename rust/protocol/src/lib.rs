//! Wire types and codecs of Nexus Physics: the JSON event envelope and the binary state stream.
//!
//! Pure Rust, no I/O, no async: the gateway (tokio) and clients call it.
//!
//! # How it works
//! - [`names`]: every event type (`domain:name:version:kind`); [`codes`]: every error code.
//! - [`Envelope`] / [`Metadata`]: the JSON shape of every event.
//! - [`decode_client_text`] / [`decode_client_binary`]: a client frame → a validated
//!   [`ClientMessage`], or a [`ProtocolError`] with a stable code.
//! - [`server`]: builders of every server event (welcome, errors, object and environment events...).
//! - The state stream: the host turns each world state into one shared [`Snapshot`] (quantised once,
//!   spatial grid built once); each client's [`StateEncoder`] turns it into that client's next
//!   message — a delta against the newest state the client acknowledged, limited to its interest
//!   area, far objects at a lower rate — as JSON text or compact binary ([`Encoding`], negotiated by
//!   WebSocket subprotocol). [`StateDecoder`] is the client side of the binary stream.
//!
//! The reference for client authors is `PROTOCOL.md` next to this crate's `Cargo.toml`.
#![warn(missing_docs)]

pub mod bits;
mod client;
mod client_binary;
mod codec;
mod decoder;
mod envelope;
mod error;
pub mod limits;
pub mod names;
pub mod quant;
pub mod server;
mod shared;
mod snapshot;
mod stream;

pub use client::{
    ActionRequest, ClientFrame, ClientMessage, JoinRequest, ObjectUpdateRequest,
    decode_client_text, decode_client_text_with, interaction_kind, interaction_kind_name,
};
pub use client_binary::{
    BINARY_VERSION, decode_client_binary, decode_client_binary_with, encode_client_ack,
    encode_client_inputs,
};
pub use decoder::{
    DecodeError, DecodedObject, DecodedState, JsonObject, JsonStateMessage, StateDecoder,
    StateHeader, peek_state_header,
};
pub use envelope::{Envelope, Metadata};
pub use error::{ProtocolError, codes};
pub use limits::Limits;
pub use server::error_envelope;
pub use shared::{
    DetailTier, RADIUS_STEP, SharedEncoded, SharedSnapshot, SharedStateEncoder,
    SharedStreamSettings, SharedTimeline, ViewCell,
};
pub use snapshot::{Snapshot, SnapshotConfig};
pub use stream::{
    AckOutcome, EncodedState, Encoding, LodBand, SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON,
    StateEncoder, StatePayload, StreamSettings,
};
