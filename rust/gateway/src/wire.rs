//! The gateway's use of the protocol crate, in one place: decoding client frames, building server
//! events, and the per-client state encoder.

use nexus_protocol::server::{self as events, Welcome};
use nexus_protocol::{EncodedState, StateEncoder, StatePayload};
use nexus_sim::event::WorldEvent;
use nexus_sim::state::{ClientId, ObjectId, Tick, WorldState};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

pub use nexus_protocol::{
    ActionRequest, ClientFrame, ClientMessage, Encoding, Envelope, JoinRequest, Limits, Metadata,
    ObjectUpdateRequest, ProtocolError, SnapshotConfig, StreamSettings,
};

use crate::auth::unix_now_f64;
use crate::campaign::MemberInfo;
use crate::config::GatewayConfig;

/// Error codes: the protocol's, plus the few only the gateway produces.
pub mod codes {
    pub use nexus_protocol::codes::*;
    /// Not welcomed into a campaign within the join timeout (closes the connection).
    pub const JOIN_TIMEOUT: &str = "join_timeout";
    /// The campaign's simulation is too far behind to take more requests; retry later.
    pub const SERVER_BUSY: &str = "server_busy";
    /// A WebSocket-level violation (bad UTF-8 in a text frame, reserved bits or opcodes, an
    /// unmasked client frame...): the stream cannot be parsed further (closes the connection).
    pub const PROTOCOL_VIOLATION: &str = "protocol_violation";
}

/// Interest management and level of detail of the state stream.
#[derive(Clone, Debug, PartialEq)]
pub struct InterestSettings {
    /// Interest and LOD settings of each client's stream; its `interest_radius` is the default
    /// radius of clients that ask for none.
    pub stream: StreamSettings,
    /// Snapshot preparation (spatial grid cell size).
    pub snapshot: SnapshotConfig,
    /// Smallest radius a client may ask for, metres.
    pub min_radius: f32,
    /// Largest radius a client may ask for, metres.
    pub max_radius: f32,
}

impl Default for InterestSettings {
    fn default() -> Self {
        InterestSettings {
            stream: StreamSettings::default(),
            snapshot: SnapshotConfig::default(),
            min_radius: 1.0,
            max_radius: 500.0,
        }
    }
}

impl InterestSettings {
    /// Every object to every client at every message: no interest limit, no LOD.
    pub fn everything() -> Self {
        InterestSettings {
            stream: StreamSettings::everything(),
            max_radius: f32::INFINITY,
            ..InterestSettings::default()
        }
    }

    /// The radius a client gets for the one it asked for.
    pub fn clamp_radius(&self, requested: Option<f32>) -> f32 {
        let radius = requested.unwrap_or(self.stream.interest_radius);
        if radius.is_nan() {
            return self.stream.interest_radius;
        }
        radius.clamp(self.min_radius, self.max_radius.max(self.min_radius))
    }
}

/// One published world state, prepared once for every client's encoder.
pub(crate) struct SharedState {
    snapshot: nexus_protocol::Snapshot,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("tick", &self.snapshot.tick())
            .field("objects", &self.snapshot.objects().len())
            .finish()
    }
}

impl SharedState {
    pub fn new(state: WorldState, settings: &InterestSettings) -> Self {
        SharedState {
            snapshot: nexus_protocol::Snapshot::with_config(state, &settings.snapshot),
        }
    }

    #[cfg(test)]
    pub fn tick(&self) -> Tick {
        self.snapshot.tick()
    }

    #[cfg(test)]
    pub fn for_tests(tick: Tick) -> Self {
        let state: WorldState = serde_json::from_value(serde_json::json!({
            "timestamp": 0.0, "tick": tick, "objects": [],
            "physics": {"gravity": [0.0, -9.81, 0.0], "tick_rate": 60, "body_count": 0, "awake_count": 0},
            "environment": {"weather": {"kind": "clear", "intensity": 0.0, "wind": [0.0, 0.0, 0.0]},
                            "time_of_day": 12.0, "day_length": 600.0}
        }))
        .expect("a valid world state");
        Self::new(state, &InterestSettings::default())
    }
}

/// One client's state stream.
pub(crate) struct ClientStateEncoder {
    encoder: StateEncoder,
    acked: Option<Tick>,
}

impl ClientStateEncoder {
    pub fn new(
        campaign_id: &str,
        encoding: Encoding,
        settings: &InterestSettings,
        radius: f32,
    ) -> Self {
        let mut stream = settings.stream.clone();
        stream.interest_radius = radius;
        ClientStateEncoder {
            encoder: StateEncoder::new(campaign_id, encoding, stream),
            acked: None,
        }
    }

    pub fn resync(&mut self) {
        self.encoder.resync();
        self.acked = None;
    }

    /// This client's next state message, or `None` if there is nothing newer to say.
    pub fn encode(
        &mut self,
        state: &SharedState,
        acked: Option<Tick>,
        avatar: Option<ObjectId>,
        input_ack: Option<u32>,
    ) -> Option<Message> {
        if let Some(tick) = acked
            && self.acked != Some(tick)
        {
            self.acked = Some(tick);
            // Stale or unknown acks are simply ignored by the encoder (a delta stays valid
            // against the older baseline).
            let _ = self.encoder.acknowledge(tick);
        }
        // Without an avatar position (spectator, or avatar gone) stream everything.
        let viewer = avatar.and_then(|id| state.snapshot.position_of(id));
        let EncodedState { payload, .. } =
            self.encoder.encode(&state.snapshot, viewer, input_ack)?;
        Some(match payload {
            StatePayload::Text(text) => Message::Text(Utf8Bytes::from(text)),
            StatePayload::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
        })
    }
}

/// Picks the state stream encoding from the offered subprotocols: the subprotocol to answer with
/// (if any) and the encoding (JSON when none we know is offered).
pub(crate) fn negotiate(offered: &[String]) -> (Option<&'static str>, Encoding) {
    match Encoding::negotiate(offered.iter().map(String::as_str)) {
        Some((encoding, name)) => (Some(name), encoding),
        None => (None, Encoding::Json),
    }
}

pub(crate) fn decode_text(text: &str, limits: &Limits) -> Result<ClientFrame, ProtocolError> {
    nexus_protocol::decode_client_text_with(text, limits)
}

pub(crate) fn decode_binary(bytes: &[u8], limits: &Limits) -> Result<ClientFrame, ProtocolError> {
    nexus_protocol::decode_client_binary_with(bytes, limits)
}

pub(crate) fn error_text(campaign_id: &str, code: &str, message: &str) -> String {
    events::error_event(campaign_id, code, message, None).to_json()
}

pub(crate) fn pong_text(
    campaign_id: &str,
    nonce: Option<u64>,
    client_time: Option<f64>,
    tick: Tick,
) -> String {
    events::pong(campaign_id, nonce, client_time, unix_now_f64(), tick).to_json()
}

/// The wire event of a world event, encoded once for all clients.
pub(crate) fn world_event_text(event: &WorldEvent, campaign_id: &str) -> Option<String> {
    Some(events::world_event(campaign_id, event).to_json())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn welcome_text(
    campaign_id: &str,
    client_id: ClientId,
    avatar_id: ObjectId,
    world_state: &WorldState,
    state_rate: u32,
    member: &MemberInfo,
    config: &GatewayConfig,
) -> String {
    let welcome = Welcome {
        client_id,
        avatar_id: Some(avatar_id),
        tick_rate: world_state.physics.tick_rate,
        state_rate,
        world_state,
        name: &member.name,
        role: member.role.as_str(),
        encoding: member.encoding,
        interest_radius: member.interest_radius,
        limits: &config.limits,
        server_time: unix_now_f64(),
    };
    events::welcome(campaign_id, &welcome).to_json()
}

/// At most `max` bytes of `text` (on a character boundary), for echoing client text in errors.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
