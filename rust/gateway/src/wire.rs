//! The gateway's use of the protocol crate, in one place: decoding client frames, building server
//! events, and the per-client state encoder.

use nexus_protocol::server::{self as events, Welcome};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use nexus_protocol::{
    EncodedState, SharedSnapshot, SharedStateEncoder, SharedStreamSettings, SharedTimeline,
    StateEncoder, StatePayload,
};
use nexus_sim::event::WorldEvent;
use nexus_sim::state::{ClientId, ObjectId, Tick, WorldState};

pub use nexus_protocol::{
    ActionRequest, ClientFrame, ClientMessage, Encoding, Envelope, JoinRequest, Limits, Metadata,
    ObjectUpdateRequest, ProtocolError, SnapshotConfig, StreamSettings,
};

use crate::auth::Role;
use crate::auth::unix_now_f64;

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
    /// Encode each message once per group of clients in the same situation (same view cell,
    /// baseline and radius; see [`nexus_protocol::SharedTimeline`]) instead of once per client.
    /// `None` uses per-client encoders instead: level of detail by distance (`stream.lod`), at a
    /// cost proportional to clients × objects. Default: shared.
    pub shared: Option<SharedStreamSettings>,
    /// Interest and LOD settings of each client's stream; its `interest_radius` is the default
    /// radius of clients that ask for none. Only the radius applies to shared streams.
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
            shared: Some(SharedStreamSettings::default()),
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
            shared: Some(SharedStreamSettings {
                max_objects: usize::MAX,
                ..SharedStreamSettings::default()
            }),
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

/// The shared timeline of a campaign's states.
pub(crate) fn timeline(campaign_id: &str, settings: &InterestSettings) -> SharedTimeline {
    let mut shared = settings.shared.clone().unwrap_or_default();
    shared.snapshot = settings.snapshot.clone();
    SharedTimeline::new(campaign_id, shared)
}

/// One published world state, prepared once for every client's encoder.
pub(crate) struct SharedState {
    entry: Arc<SharedSnapshot>,
    timeline: Arc<SharedTimeline>,
    /// When the campaign router published it (for the state-age histogram).
    pub published: std::time::Instant,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("tick", &self.entry.tick())
            .field("objects", &self.entry.snapshot().objects().len())
            .finish()
    }
}

impl SharedState {
    /// Prepares `state` and keeps it on `timeline` (the campaign's router is its only publisher).
    pub fn publish(state: WorldState, timeline: &Arc<SharedTimeline>) -> Self {
        SharedState {
            entry: timeline.publish(state),
            timeline: timeline.clone(),
            published: std::time::Instant::now(),
        }
    }

    /// The state is one the shared stream moves baselines to (every `baseline_interval`-th
    /// publication).
    pub fn on_baseline_grid(&self) -> bool {
        self.entry
            .sequence()
            .is_multiple_of(self.timeline.settings().baseline_interval.max(1))
    }

    #[cfg(test)]
    pub fn tick(&self) -> Tick {
        self.entry.tick()
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
        let settings = InterestSettings::default();
        Self::publish(state, &Arc::new(timeline("test", &settings)))
    }
}

/// How one client's messages are made.
enum StreamMode {
    /// From the group's shared encoding.
    Shared(SharedStateEncoder),
    /// By its own encoder (level of detail by distance).
    PerClient(Box<StateEncoder>),
}

/// One client's state stream.
pub(crate) struct ClientStateEncoder {
    mode: StreamMode,
}

impl ClientStateEncoder {
    pub fn new(
        campaign_id: &str,
        encoding: Encoding,
        settings: &InterestSettings,
        radius: f32,
    ) -> Self {
        let mode = match &settings.shared {
            Some(shared) => {
                let mut encoder = SharedStateEncoder::new(encoding, radius);
                encoder.set_baseline_interval(shared.baseline_interval);
                StreamMode::Shared(encoder)
            }
            None => {
                let mut stream = settings.stream.clone();
                stream.interest_radius = radius;
                StreamMode::PerClient(Box::new(StateEncoder::new(campaign_id, encoding, stream)))
            }
        };
        ClientStateEncoder { mode }
    }

    pub fn resync(&mut self) {
        match &mut self.mode {
            StreamMode::Shared(encoder) => encoder.resync(),
            StreamMode::PerClient(encoder) => encoder.resync(),
        }
    }

    /// This client's next state message, or `None` if there is nothing newer to say; and whether
    /// this client encoded it (rather than sharing another client's encoding). `acks` are the
    /// client's acks since the previous call, oldest first.
    pub fn encode(
        &mut self,
        state: &SharedState,
        acks: &[Tick],
        avatar: Option<ObjectId>,
        input_ack: Option<u32>,
    ) -> Option<(Message, bool)> {
        let snapshot = state.entry.snapshot();
        // Without an avatar position (spectator, or avatar gone) stream everything.
        let viewer = avatar.and_then(|id| snapshot.position_of(id));
        // Stale or unknown acks are simply ignored by the encoders (a delta stays valid against
        // the older baseline).
        let (payload, encoded_here) = match &mut self.mode {
            StreamMode::Shared(encoder) => {
                for &tick in acks {
                    let _ = encoder.acknowledge(tick);
                }
                let encoded = encoder.encode(&state.timeline, &state.entry, viewer, input_ack)?;
                (encoded.payload, encoded.encoded_here)
            }
            StreamMode::PerClient(encoder) => {
                for &tick in acks {
                    let _ = encoder.acknowledge(tick);
                }
                let EncodedState { payload, .. } = encoder.encode(snapshot, viewer, input_ack)?;
                (payload, true)
            }
        };
        let message = match payload {
            StatePayload::Text(text) => Message::Text(Utf8Bytes::from(text)),
            StatePayload::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
        };
        Some((message, encoded_here))
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

pub(crate) fn webrtc_answer_text(campaign_id: &str, sdp: &str) -> String {
    events::webrtc_answer(campaign_id, sdp).to_json()
}

pub(crate) fn webrtc_state_text(campaign_id: &str, open: bool, reason: Option<&str>) -> String {
    events::webrtc_state(campaign_id, open, reason).to_json()
}

/// The wire event of a world event, encoded once for all clients.
pub(crate) fn world_event_text(event: &WorldEvent, campaign_id: &str) -> Option<String> {
    Some(events::world_event(campaign_id, event).to_json())
}

/// What the router needs to know about a member to welcome it.
#[derive(Clone, Debug)]
pub(crate) struct MemberInfo {
    pub name: String,
    pub role: Role,
    pub interest_radius: f32,
    pub encoding: Encoding,
    /// Account id from the token: only the same account may resume the session.
    pub user_id: String,
    /// Offered in the welcome when the gateway keeps lost sessions (`resume_grace` > 0).
    pub resume_token: Option<Arc<str>>,
    /// The gateway takes WebRTC offers (said in the welcome).
    pub webrtc: bool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn welcome_text(
    campaign_id: &str,
    client_id: ClientId,
    avatar_id: ObjectId,
    world_state: &WorldState,
    world_state_json: &str,
    state_rate: u32,
    member: &MemberInfo,
    limits: &Limits,
    resume_grace_secs: f64,
    resumed: bool,
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
        limits,
        server_time: unix_now_f64(),
        resume: member
            .resume_token
            .as_deref()
            .map(|token| events::ResumeOffer {
                token,
                grace_secs: resume_grace_secs,
            }),
        resumed,
        webrtc: member.webrtc,
    };
    events::welcome_with_state_json(campaign_id, &welcome, world_state_json)
}

/// At most `max` bytes of `text` (on a character boundary), for echoing client text in errors.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
