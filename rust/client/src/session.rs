//! [`ClientSession`]: the whole client, pure and transport-agnostic.
//!
//! Feed it the frames received ([`ClientSession::receive`]) and the local controls
//! ([`ClientSession::update`]) with timestamps from any monotonic clock (real or simulated); take
//! the frames to send ([`ClientSession::drain_outgoing`]), the events
//! ([`ClientSession::poll_events`]) and the view of the world ([`ClientSession::avatar`],
//! [`ClientSession::remote_objects`]).
//!
//! How one [`ClientSession::update`] runs:
//! 1. the fixed-tick clock advances (60 Hz by the welcome's tick rate), slightly faster or slower
//!    so that inputs reach the server just before the tick they target (the server's tick
//!    estimated by [`ClockSync`], plus half a round trip, the jitter and the batching delay);
//! 2. each tick turns the controls into one [`PlayerInput`] with the next sequence number, predicts
//!    it at once ([`Predictor`]) and queues it;
//! 3. every `send_interval_ticks` the queued inputs go out in one batch, together with the
//!    newest applied state tick (the server's delta baseline);
//! 4. pings keep the clock estimates fresh; the correction offset decays; the playback clock of
//!    remote objects advances.
//!
//! Each state message ([`ClientSession::receive`]) updates the clocks, the remote objects' jitter
//! buffers and the collision copy of the world, and reconciles the prediction with the server's
//! avatar after the input it acknowledges.

use std::collections::{BTreeMap, VecDeque};

use nexus_protocol::{Envelope, StateDecoder, encode_client_ack, encode_client_inputs, names};
use nexus_sim::movement::{CharacterState, MovementSettings};
use nexus_sim::state::{BodyKind, ClientId, ObjectId, Properties, Shape, Tick};
use nexus_sim::{
    InputRejection, InteractionKind, InteractionRequest, InteractionResult, PlayerInput,
};
use rapier3d::prelude::Vector;

use crate::clock::ClockSync;
use crate::collision::{CollisionWorld, unit_rotation};
use crate::error::ClientError;
use crate::interpolation::{ObjectPose, RemoteObjects, Sample, Timeline, TimelineConfig};
use crate::prediction::{
    CorrectionConfig, CorrectionSmoother, PredictionConfig, Predictor, Reconciliation, ServerAvatar,
};
use crate::stats::SessionStats;
use crate::wire::{
    Encoding, Frame, ObjectUpdate, Outgoing, ServerMessage, StateUpdate, Welcome,
    decode_server_frame,
};

/// Most inputs in one message (the protocol's default limit).
const MAX_INPUTS_PER_MESSAGE: usize = 64;
/// Inputs remembered after sending, for redundant resends.
const SENT_MEMORY: usize = 64;
/// Farther than this (ticks) from its target, the input clock jumps instead of drifting.
const TICK_JUMP: f64 = 30.0;
/// Fastest drift of the input clock (fraction of real time).
const MAX_DILATION: f64 = 0.05;
/// Unacknowledged inputs in each datagram (PROTOCOL.md section 11: the SDK sends up to 8), so
/// that a lost or late datagram costs nothing while the next one arrives.
pub const DATAGRAM_INPUTS: usize = 8;
/// Signals kept for a transport that does not take them (an application without WebRTC).
const MAX_SIGNALS: usize = 16;

/// How a session behaves. Only `campaign` and `token` have no useful default.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// The campaign to join.
    pub campaign: String,
    /// The join token (in development mode: the player's name).
    pub token: String,
    /// Preferred display name.
    pub name: Option<String>,
    /// State-stream encoding (must match the WebSocket subprotocol negotiated).
    pub encoding: Encoding,
    /// `metadata.client_type` of the frames sent (e.g. `rust`, `bot`, `godot`).
    pub client_type: String,
    /// Interest radius to ask for, metres (`None`: the server's default).
    pub interest_radius: Option<f32>,
    /// Inputs are batched over this many ticks (default 1: sent every tick).
    pub send_interval_ticks: u32,
    /// Already-sent unacknowledged inputs repeated in each batch (default 0), against lost
    /// messages on links that can lose them; the server ignores duplicates.
    pub redundant_inputs: usize,
    /// Target inputs at server ticks once the clock is synchronised (default true): the server
    /// then applies them one per tick, evenly, instead of as they arrive.
    pub target_ticks: bool,
    /// Before the clock is synchronised, inputs target the welcome's tick plus the time since the
    /// welcome plus this many ticks (default 10, just under the server's default wait before it
    /// idles a silent avatar): the server then applies them one per tick rather than in bursts
    /// as they arrive. `None` sends them untargeted until synchronised.
    pub initial_input_lead: Option<u32>,
    /// Seconds between pings once synchronised (default 1).
    pub ping_interval: f64,
    /// Predict the own avatar (default true); without it the avatar is shown as streamed.
    pub predict: bool,
    /// Play remote objects back from jitter buffers (default true). Load generators turn it off:
    /// states are still decoded, applied to the known objects and acknowledged, but nothing is
    /// buffered for display.
    pub interpolate: bool,
    /// Decode the objects of binary state messages (default). Off, the session only reads each
    /// state's head — tick, timestamp, input ack — to measure its age and acknowledge it, and
    /// keeps no remote objects: for load-testing bots, whose server sees the very same traffic.
    pub decode_states: bool,
    /// Prediction settings.
    pub prediction: PredictionConfig,
    /// Smoothing of visible corrections.
    pub correction: CorrectionConfig,
    /// Playback delay of remote objects.
    pub timeline: TimelineConfig,
    /// Longest extrapolation of a remote object past its newest state, seconds (default 0.25).
    pub max_extrapolation: f64,
    /// Objects nearer than this (m) to the avatar are kept up to date in the collision copy of
    /// the world (default 10: more than a replay window of running plus an object's size).
    pub collision_radius: f32,
    /// Most fixed ticks run by one update after a stall; the rest of the backlog is dropped
    /// (default 10).
    pub max_catch_up_ticks: u32,
    /// Take back an earlier session whose connection was lost ([`ClientSession::resume_ticket`]
    /// of the old session); `None` joins afresh.
    pub resume: Option<ResumeTicket>,
    /// Send inputs and acks as binary frames (section 7) even with the JSON stream (default
    /// false). A client that may send inputs on a WebRTC channel (binary only) sets it, so its
    /// inputs are quantised, and predicted, the same way on either transport.
    pub binary_client_frames: bool,
}

/// What a new connection needs to take a lost session back: the welcome's resume token, and
/// the inputs the server may not have applied (replayed once; the server skips those it has).
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeTicket {
    /// The newest welcome's `resume_token`.
    pub token: String,
    /// The session's client id.
    pub client_id: ClientId,
    /// The sequence number the next input takes (numbers keep rising across the resume).
    pub next_seq: u32,
    /// Inputs not acknowledged yet, oldest first (at most a second's worth).
    pub unacknowledged: Vec<PlayerInput>,
}

impl SessionConfig {
    /// Defaults for joining `campaign` with `token`.
    pub fn new(campaign: &str, token: &str) -> Self {
        SessionConfig {
            campaign: campaign.to_owned(),
            token: token.to_owned(),
            name: None,
            encoding: Encoding::Json,
            client_type: "rust".to_owned(),
            interest_radius: None,
            send_interval_ticks: 1,
            redundant_inputs: 0,
            target_ticks: true,
            initial_input_lead: Some(10),
            ping_interval: 1.0,
            predict: true,
            interpolate: true,
            decode_states: true,
            prediction: PredictionConfig::default(),
            correction: CorrectionConfig::default(),
            timeline: TimelineConfig::default(),
            max_extrapolation: 0.25,
            collision_radius: 10.0,
            max_catch_up_ticks: 10,
            resume: None,
            binary_client_frames: false,
        }
    }
}

/// What the player wants this tick.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Controls {
    /// `[right, forward]`, each -1..=1.
    pub movement: [f32; 2],
    /// Look direction (world space; zero keeps the current one).
    pub look: [f32; 3],
    /// Jump (when grounded).
    pub jump: bool,
    /// Run instead of walk.
    pub run: bool,
}

/// Where the session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Created; [`ClientSession::start`] not called yet.
    Idle,
    /// Join sent, waiting for the welcome.
    Joining,
    /// Welcomed: playing.
    Active,
    /// Left or disconnected.
    Closed,
}

/// Something the application may want to react to.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The server welcomed the client.
    Welcomed {
        /// The client's id.
        client_id: ClientId,
        /// The avatar it drives.
        avatar_id: Option<ObjectId>,
        /// It took back the session of [`SessionConfig::resume`] (same id, same avatar), and
        /// the unacknowledged inputs were sent again.
        resumed: bool,
    },
    /// An object appeared (welcome, `object_added`, or first seen in the stream).
    ObjectAdded {
        /// The object.
        id: ObjectId,
        /// Its kind.
        kind: BodyKind,
    },
    /// An object left the world or the interest area.
    ObjectRemoved {
        /// The object.
        id: ObjectId,
        /// Why (`removed`, `destroyed`, `player_left`, `left_interest`...).
        reason: String,
    },
    /// The outcome of an interaction.
    InteractionResult(InteractionResult),
    /// The server refused an input.
    InputRejected(InputRejection),
    /// An error event from the server.
    ServerError {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
    },
    /// Any other event (environment, particles, custom...).
    Other(Box<Envelope>),
    /// The session ended.
    Closed {
        /// Why.
        reason: String,
    },
}

/// WebRTC signalling from the server, for the transport (not application events).
#[derive(Clone, Debug, PartialEq)]
pub enum WebRtcSignal {
    /// The answer to the offer (SDP text).
    Answer(String),
    /// The server streams states on the data channel from now on.
    Open,
    /// The server streams states on the WebSocket again, and why.
    Closed(String),
    /// The server refused the offer (`webrtc_unavailable`, `invalid_payload`,
    /// `limit_exceeded`...).
    Refused {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
    },
}

/// The client's own avatar as it should be displayed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvatarView {
    /// The avatar's object id.
    pub id: ObjectId,
    /// Where to draw it: the predicted position between the last two ticks, plus the decaying
    /// correction offset.
    pub position: [f32; 3],
    /// Yaw rotation `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// The predicted position after the newest input.
    pub predicted: [f32; 3],
    /// The correction offset still shown, m.
    pub correction_offset: [f32; 3],
    /// Velocity, m/s.
    pub velocity: [f32; 3],
    /// Standing on something.
    pub grounded: bool,
}

/// What the client knows about an object.
#[derive(Clone, Debug, PartialEq)]
pub struct KnownObject {
    /// Body kind.
    pub kind: BodyKind,
    /// Collision shape, if the client received it.
    pub shape: Option<Shape>,
    /// Properties.
    pub properties: Properties,
}

/// Clock and timing estimates, for displays and reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingInfo {
    /// Smoothed round trip, seconds.
    pub rtt: Option<f64>,
    /// Round-trip variation, seconds.
    pub rtt_jitter: f64,
    /// Server clock minus local clock, seconds.
    pub clock_offset: Option<f64>,
    /// Estimated server tick now.
    pub server_tick: Option<f64>,
    /// The tick the next input targets.
    pub input_tick: f64,
    /// Playback delay of remote objects, seconds.
    pub interpolation_delay: f64,
    /// Playback tick of remote objects.
    pub render_tick: Option<f64>,
}

/// See the module documentation.
pub struct ClientSession {
    config: SessionConfig,
    outgoing: Outgoing,
    out: Vec<Frame>,
    events: VecDeque<SessionEvent>,
    phase: Phase,
    decoder: StateDecoder,
    clock: ClockSync,
    stats: SessionStats,
    client_id: Option<ClientId>,
    avatar_id: Option<ObjectId>,
    tick_rate: u32,
    movement: MovementSettings,
    gravity_y: f32,
    collision: CollisionWorld,
    predictor: Option<Predictor>,
    smoother: CorrectionSmoother,
    /// Predicted position before the newest tick (display interpolates from it).
    previous_position: [f32; 3],
    server_avatar: Option<ServerAvatar>,
    remote: RemoteObjects,
    timeline: Timeline,
    render_tick: Option<f64>,
    objects: BTreeMap<ObjectId, KnownObject>,
    last_state_tick: Option<Tick>,
    ack_due: bool,
    next_seq: u32,
    unsent: Vec<PlayerInput>,
    sent: VecDeque<PlayerInput>,
    /// When each input not yet acknowledged was first sent: its ack latency when a state
    /// acknowledges it.
    send_times: VecDeque<(u32, f64)>,
    input_tick: f64,
    input_clock_synced: bool,
    /// The welcome's tick and local arrival time (coarse tick clock before synchronisation).
    welcome_tick: Option<(Tick, f64)>,
    accumulator: f64,
    last_update: Option<f64>,
    ticks_since_send: u32,
    next_ping: f64,
    pings_sent: u64,
    next_request_id: u32,
    /// The newest welcome's resume token.
    resume_token: Option<String>,
    /// The welcome offered WebRTC data channels.
    server_webrtc: bool,
    signals: VecDeque<WebRtcSignal>,
    /// Inputs and acks go out as datagrams ([`ClientSession::drain_datagrams`]).
    datagram_inputs: bool,
    datagrams: Vec<Vec<u8>>,
    /// The next stream batch repeats the unacknowledged inputs (after datagrams stopped).
    repeat_once: bool,
}

impl ClientSession {
    /// A session that has not joined yet.
    pub fn new(config: SessionConfig) -> Self {
        let outgoing = Outgoing::new(&config.campaign, &config.client_type, config.encoding)
            .with_binary_frames(config.binary_client_frames);
        let timeline = Timeline::new(config.timeline.clone(), 60, 20);
        ClientSession {
            collision: CollisionWorld::new(config.collision_radius),
            smoother: CorrectionSmoother::new(config.correction.clone()),
            outgoing,
            out: Vec::new(),
            events: VecDeque::new(),
            phase: Phase::Idle,
            decoder: StateDecoder::default(),
            clock: ClockSync::new(60),
            stats: SessionStats::default(),
            client_id: None,
            avatar_id: None,
            tick_rate: 60,
            movement: MovementSettings::default(),
            gravity_y: -9.81,
            predictor: None,
            previous_position: [0.0; 3],
            server_avatar: None,
            remote: RemoteObjects::default(),
            timeline,
            render_tick: None,
            objects: BTreeMap::new(),
            last_state_tick: None,
            ack_due: false,
            unsent: Vec::new(),
            sent: VecDeque::new(),
            send_times: VecDeque::new(),
            input_tick: 0.0,
            input_clock_synced: false,
            welcome_tick: None,
            accumulator: 0.0,
            last_update: None,
            ticks_since_send: 0,
            next_ping: 0.0,
            pings_sent: 0,
            next_request_id: 1,
            resume_token: None,
            server_webrtc: false,
            signals: VecDeque::new(),
            datagram_inputs: false,
            datagrams: Vec::new(),
            repeat_once: false,
            next_seq: config
                .resume
                .as_ref()
                .map_or(1, |ticket| ticket.next_seq.max(1)),
            config,
        }
    }

    /// Joins by taking back the session of `ticket` (as [`SessionConfig::resume`]); only before
    /// [`ClientSession::start`]. Returns whether it was taken.
    pub fn resume_with(&mut self, ticket: ResumeTicket) -> bool {
        if self.phase != Phase::Idle {
            return false;
        }
        self.next_seq = ticket.next_seq.max(1);
        self.config.resume = Some(ticket);
        true
    }

    /// What a new connection needs to take this session back after this one is lost (send it as
    /// [`SessionConfig::resume`]); `None` before the welcome or when the server offers no resume.
    pub fn resume_ticket(&self) -> Option<ResumeTicket> {
        Some(ResumeTicket {
            token: self.resume_token.clone()?,
            client_id: self.client_id?,
            next_seq: self.next_seq,
            unacknowledged: self.sent.iter().chain(&self.unsent).cloned().collect(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Where the session is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The client's id, once welcomed.
    pub fn client_id(&self) -> Option<ClientId> {
        self.client_id
    }

    /// The avatar's object id, once welcomed.
    pub fn avatar_id(&self) -> Option<ObjectId> {
        self.avatar_id
    }

    /// Counters since the start.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Objects the client knows (welcome, events, stream).
    pub fn objects(&self) -> &BTreeMap<ObjectId, KnownObject> {
        &self.objects
    }

    /// The predictor (once welcomed with an avatar and prediction on).
    pub fn predictor(&self) -> Option<&Predictor> {
        self.predictor.as_ref()
    }

    /// The newest state message applied.
    pub fn last_state_tick(&self) -> Option<Tick> {
        self.last_state_tick
    }

    /// The server's avatar as last streamed (authoritative, not predicted).
    pub fn server_avatar(&self) -> Option<ServerAvatar> {
        self.server_avatar
    }

    /// Clock and timing estimates at local time `now`.
    pub fn timing(&self, now: f64) -> TimingInfo {
        TimingInfo {
            rtt: self.clock.rtt(),
            rtt_jitter: self.clock.rtt_jitter(),
            clock_offset: self.clock.offset(),
            server_tick: self.clock.server_tick(now),
            input_tick: self.input_tick,
            interpolation_delay: self.timeline.delay_seconds(),
            render_tick: self.render_tick,
        }
    }

    /// Sends the join. Call once, after connecting.
    pub fn start(&mut self, _now: f64) {
        if self.phase != Phase::Idle {
            return;
        }
        let frame = self.outgoing.join(
            &self.config.token,
            self.config.name.as_deref(),
            self.config.interest_radius,
            self.config
                .resume
                .as_ref()
                .map(|ticket| ticket.token.as_str()),
        );
        self.push_out(frame);
        self.phase = Phase::Joining;
    }

    /// Sends a leave; the server then closes the connection.
    pub fn leave(&mut self) {
        if matches!(self.phase, Phase::Joining | Phase::Active) {
            let frame = self.outgoing.leave();
            self.push_out(frame);
        }
    }

    /// The transport closed.
    pub fn on_closed(&mut self, reason: &str) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.events.push_back(SessionEvent::Closed {
                reason: reason.to_owned(),
            });
        }
    }

    /// Asks for an interaction; returns its request id (echoed in the result event).
    pub fn interact(&mut self, mut request: InteractionRequest) -> u32 {
        if request.request_id == 0 {
            request.request_id = self.next_request_id;
            self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        }
        let frame = self.outgoing.interaction(&request);
        self.push_out(frame);
        request.request_id
    }

    /// Frames to send now, oldest first.
    pub fn drain_outgoing(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.out)
    }

    // ── WebRTC data channels (PROTOCOL.md section 11) ───────────────────

    /// Whether the welcome offered WebRTC data channels.
    pub fn server_offers_webrtc(&self) -> bool {
        self.server_webrtc
    }

    /// Sends a WebRTC offer (SDP text) on the stream.
    pub fn offer_webrtc(&mut self, sdp: &str) {
        let frame = self.outgoing.webrtc_offer(sdp);
        self.push_out(frame);
    }

    /// Sends one of the client's ICE candidates on the stream (empty: the end of them).
    pub fn send_webrtc_candidate(&mut self, candidate: &str) {
        let frame = self.outgoing.webrtc_candidate(candidate);
        self.push_out(frame);
    }

    /// WebRTC signals received since the last call, oldest first.
    pub fn poll_webrtc_signals(&mut self) -> Vec<WebRtcSignal> {
        self.signals.drain(..).collect()
    }

    fn signal(&mut self, signal: WebRtcSignal) {
        if self.signals.len() >= MAX_SIGNALS {
            self.signals.pop_front();
        }
        self.signals.push_back(signal);
    }

    /// Routes inputs and acks to datagrams (an open `input` channel) or back to the stream.
    /// Datagrams are binary frames carrying the newest inputs plus up to [`DATAGRAM_INPUTS`]
    /// unacknowledged ones in all, and the newest applied tick. Going back to the stream, the
    /// next batch repeats the unacknowledged inputs once (the last datagrams may have been lost).
    pub fn set_datagram_inputs(&mut self, on: bool) {
        if self.datagram_inputs && !on {
            self.repeat_once = true;
        }
        self.datagram_inputs = on;
    }

    /// Whether inputs and acks go out as datagrams.
    pub fn datagram_inputs(&self) -> bool {
        self.datagram_inputs
    }

    /// Datagrams (binary client frames) to send now on the `input` channel, oldest first.
    pub fn drain_datagrams(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.datagrams)
    }

    fn push_datagram(&mut self, bytes: Vec<u8>) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.datagrams.push(bytes);
    }

    /// Events since the last call, oldest first.
    pub fn poll_events(&mut self) -> Vec<SessionEvent> {
        self.events.drain(..).collect()
    }

    fn push_out(&mut self, frame: Frame) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += frame.len() as u64;
        self.out.push(frame);
    }

    // ── Receiving ───────────────────────────────────────────────────────

    /// A frame of `len` bytes arrived but was lost to network emulation: it counts as received
    /// traffic, and nothing else happens.
    pub fn note_lost_frame(&mut self, len: usize) {
        self.stats.frames_received += 1;
        self.stats.frames_lost += 1;
        self.stats.bytes_received += len as u64;
    }

    /// A frame arrived at local time `now`. A frame the client cannot understand is counted and
    /// returned as an error; the session carries on.
    pub fn receive(&mut self, now: f64, frame: &Frame) -> Result<(), ClientError> {
        self.stats.frames_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        // Two transports, one unordered: a state not newer than the newest applied is skipped
        // before decoding (the decoder would call it out of order, which is no error here).
        if let Frame::Binary(bytes) = frame
            && let Ok(head) = nexus_protocol::peek_state_header(bytes)
            && self.last_state_tick.is_some_and(|t| head.tick <= t)
        {
            self.stats.states_rejected += 1;
            self.stats.states_stale += 1;
            return Ok(());
        }
        if !self.config.decode_states
            && let Frame::Binary(bytes) = frame
            && let Ok(head) = nexus_protocol::peek_state_header(bytes)
        {
            let state = StateUpdate {
                tick: head.tick,
                timestamp: head.timestamp,
                full: false,
                last_input_seq: head.last_input_seq,
                objects: Vec::new(),
                removed: Vec::new(),
                left: Vec::new(),
            };
            self.on_state(now, state);
            return Ok(());
        }
        let message = match decode_server_frame(frame, &mut self.decoder) {
            Ok(message) => message,
            Err(err) => {
                self.stats.malformed_frames += 1;
                if matches!(frame, Frame::Binary(_)) {
                    self.stats.states_rejected += 1;
                    if err.message.contains("baseline") {
                        // The stream cannot continue from what this client holds: start over.
                        self.decoder.clear();
                        let resync = self.outgoing.resync();
                        self.push_out(resync);
                    }
                }
                return Err(err);
            }
        };
        self.apply(now, message)
    }

    fn apply(&mut self, now: f64, message: ServerMessage) -> Result<(), ClientError> {
        match message {
            ServerMessage::Welcome(welcome) => self.on_welcome(now, *welcome)?,
            ServerMessage::State(state) => self.on_state(now, state),
            ServerMessage::InputAck { rejected, .. } => {
                for rejection in rejected {
                    self.stats.inputs_rejected += 1;
                    if let Some(predictor) = &mut self.predictor {
                        predictor.forget_input(rejection.seq, &self.collision);
                    }
                    self.events
                        .push_back(SessionEvent::InputRejected(rejection));
                }
            }
            ServerMessage::Pong {
                client_time,
                server_time,
            } => {
                if let Some(client_time) = client_time {
                    self.clock.on_pong(now, client_time, server_time);
                }
            }
            ServerMessage::ObjectAdded(object) => {
                let id = object.id;
                let kind = object.kind;
                if let Some(shape) = &object.shape
                    && Some(id) != self.avatar_id
                {
                    self.collision
                        .insert(id, kind, shape, object.position, object.rotation)?;
                }
                let added = self
                    .objects
                    .insert(
                        id,
                        KnownObject {
                            kind,
                            shape: object.shape.clone(),
                            properties: object.properties.clone(),
                        },
                    )
                    .is_none();
                if added {
                    self.events
                        .push_back(SessionEvent::ObjectAdded { id, kind });
                }
            }
            ServerMessage::ObjectUpdated(object) => {
                if let Some(known) = self.objects.get_mut(&object.id) {
                    known.properties = object.properties.clone();
                }
                if Some(object.id) != self.avatar_id {
                    self.collision.set_pose(
                        object.id,
                        object.position,
                        object.rotation,
                        object.velocity,
                    );
                }
            }
            ServerMessage::ObjectRemoved { id, reason } => self.forget_object(id, &reason),
            ServerMessage::InteractionResult(result) => {
                if Some(result.client_id) == self.client_id && result.success {
                    match result.kind {
                        InteractionKind::Pickup => self.collision.set_held(result.target),
                        InteractionKind::Drop => self.collision.set_held(None),
                        _ => {}
                    }
                }
                self.events
                    .push_back(SessionEvent::InteractionResult(result));
            }
            ServerMessage::Terrain(patch) => self.collision.apply_terrain_patch(&patch)?,
            ServerMessage::Error {
                code,
                message,
                request_type,
            } => {
                self.stats.errors_received += 1;
                // A refused candidate is no reason to give up: the offer carries the candidate.
                let webrtc = code == "webrtc_unavailable"
                    || request_type.as_deref() == Some(names::SESSION_WEBRTC_OFFER);
                if webrtc {
                    self.signal(WebRtcSignal::Refused {
                        code: code.clone(),
                        message: message.clone(),
                    });
                }
                self.events
                    .push_back(SessionEvent::ServerError { code, message });
            }
            ServerMessage::WebRtcAnswer { sdp } => self.signal(WebRtcSignal::Answer(sdp)),
            ServerMessage::WebRtcState { state, reason } => {
                let signal = if state == "open" {
                    WebRtcSignal::Open
                } else {
                    WebRtcSignal::Closed(reason.unwrap_or(state))
                };
                self.signal(signal);
            }
            ServerMessage::Other(envelope) => {
                self.events
                    .push_back(SessionEvent::Other(Box::new(envelope)));
            }
        }
        Ok(())
    }

    fn forget_object(&mut self, id: ObjectId, reason: &str) {
        if self.objects.remove(&id).is_some() {
            self.events.push_back(SessionEvent::ObjectRemoved {
                id,
                reason: reason.to_owned(),
            });
        }
        self.collision.remove(id);
        // Shown until playback reaches the removal (the next state's tick at the latest).
        let at = self.last_state_tick.map_or(0, |t| t + 1);
        self.remote.remove_at(id, at);
    }

    fn on_welcome(&mut self, now: f64, welcome: Welcome) -> Result<(), ClientError> {
        if self.phase == Phase::Active {
            return Err(ClientError::new(
                "unexpected_message",
                "a second welcome on the same session",
            ));
        }
        self.client_id = Some(welcome.client_id);
        self.avatar_id = welcome.avatar_id;
        self.tick_rate = welcome.tick_rate.max(1);
        self.clock.set_tick_rate(self.tick_rate);
        if let Some(server_time) = welcome.server_time {
            self.clock.on_server_time(now, server_time);
        }
        self.timeline = Timeline::new(
            self.config.timeline.clone(),
            self.tick_rate,
            welcome.state_rate,
        );
        self.movement = welcome.movement.clone();
        let state = &welcome.world_state;
        self.gravity_y = state.physics.gravity[1];
        let mut start = None;
        self.remote.begin_message(state.tick);
        for object in &state.objects {
            self.objects.insert(
                object.id,
                KnownObject {
                    kind: object.kind,
                    shape: object.shape.clone(),
                    properties: object.properties.clone(),
                },
            );
            self.events.push_back(SessionEvent::ObjectAdded {
                id: object.id,
                kind: object.kind,
            });
            if Some(object.id) == self.avatar_id {
                let mut character = CharacterState::new(object.position);
                let forward = unit_rotation(object.rotation) * Vector::new(0.0, 0.0, -1.0);
                character.look = forward.to_array();
                start = Some(character);
                self.server_avatar = Some(ServerAvatar {
                    position: object.position,
                    velocity: object.velocity,
                });
                continue;
            }
            // The collision copy serves the prediction only.
            if let Some(shape) = &object.shape
                && self.config.predict
            {
                self.collision.insert(
                    object.id,
                    object.kind,
                    shape,
                    object.position,
                    object.rotation,
                )?;
            }
            if !self.config.interpolate {
                continue;
            }
            self.remote.update(
                object.id,
                Some(object.kind),
                Some(&object.properties),
                Sample {
                    tick: state.tick,
                    position: object.position,
                    rotation: object.rotation,
                    velocity: object.velocity,
                    angular_velocity: object.angular_velocity,
                    sleeping: object.sleeping,
                },
            );
        }
        if let Some(start) = start {
            self.previous_position = start.position;
            self.collision.prepare(start.position);
            if self.config.predict {
                self.predictor = Some(Predictor::new(
                    self.config.prediction.clone(),
                    self.movement.clone(),
                    self.gravity_y,
                    1.0 / self.tick_rate as f32,
                    start,
                ));
            }
        }
        self.welcome_tick = Some((state.tick, now));
        self.phase = Phase::Active;
        self.next_ping = now;
        self.last_update = Some(now);
        self.resume_token = welcome.resume_token.clone();
        self.server_webrtc = welcome.webrtc;
        let resumed = welcome.resumed
            && self
                .config
                .resume
                .as_ref()
                .is_some_and(|ticket| ticket.client_id == welcome.client_id);
        if let Some(ticket) = self.config.resume.take()
            && resumed
        {
            // Sent again once, to be applied as soon as they arrive (their target ticks are past);
            // the server skips those it had applied already, by sequence number.
            let replay: Vec<PlayerInput> = ticket
                .unacknowledged
                .into_iter()
                .map(|input| PlayerInput {
                    tick: None,
                    ..input
                })
                .collect();
            for chunk in replay.chunks(MAX_INPUTS_PER_MESSAGE) {
                let frame = self.outgoing.inputs(chunk, None);
                self.push_out(frame);
                self.stats.inputs_replayed += chunk.len() as u64;
            }
            self.sent.extend(replay);
            while self.sent.len() > SENT_MEMORY {
                self.sent.pop_front();
            }
        }
        self.events.push_back(SessionEvent::Welcomed {
            client_id: welcome.client_id,
            avatar_id: welcome.avatar_id,
            resumed,
        });
        Ok(())
    }

    fn on_state(&mut self, now: f64, state: StateUpdate) {
        if self.phase != Phase::Active {
            self.stats.states_rejected += 1;
            return;
        }
        if self.last_state_tick.is_some_and(|t| state.tick <= t) {
            self.stats.states_rejected += 1;
            self.stats.states_stale += 1;
            return;
        }
        let tick = state.tick;
        self.clock.on_state(tick, state.timestamp);
        self.timeline.on_state(now, tick);
        if let Some(server_now) = self.clock.server_time(now) {
            self.stats.state_age.record(server_now - state.timestamp);
        }
        self.remote.begin_message(tick);
        if state.full {
            // A full state is the whole view: whatever it does not list is out of it.
            let mut listed: Vec<ObjectId> = state.objects.iter().map(|o| o.id).collect();
            listed.sort_unstable();
            let stale: Vec<ObjectId> = self
                .remote
                .ids()
                .filter(|id| listed.binary_search(id).is_err())
                .collect();
            for id in stale {
                self.remote.remove_at(id, tick);
            }
        }
        for object in &state.objects {
            self.on_listed_object(tick, object);
        }
        for &id in &state.removed {
            if self.objects.remove(&id).is_some() {
                self.events.push_back(SessionEvent::ObjectRemoved {
                    id,
                    reason: "removed".into(),
                });
            }
            self.collision.remove(id);
            self.remote.remove_at(id, tick);
        }
        for &id in &state.left {
            self.remote.remove_at(id, tick);
            if !self.config.interpolate && self.objects.remove(&id).is_some() {
                // Nothing plays it back: it is gone from the view now.
                self.events.push_back(SessionEvent::ObjectRemoved {
                    id,
                    reason: "left_interest".into(),
                });
            }
            // Static geometry stays valid out of sight; moving objects' poses would go stale.
            if self
                .objects
                .get(&id)
                .is_none_or(|o| o.kind != BodyKind::Static)
            {
                self.collision.remove(id);
            }
        }
        self.last_state_tick = Some(tick);
        self.ack_due = true;
        self.stats.states_applied += 1;
        if let Some(acked) = state.last_input_seq {
            while let Some(&(seq, sent)) = self.send_times.front() {
                if seq > acked {
                    break;
                }
                self.stats.input_ack_latency.record(now - sent);
                self.send_times.pop_front();
            }
        }
        self.reconcile(state.last_input_seq);
    }

    fn on_listed_object(&mut self, tick: Tick, object: &ObjectUpdate) {
        let is_new_known = !self.objects.contains_key(&object.id);
        let known = self
            .objects
            .entry(object.id)
            .or_insert_with(|| KnownObject {
                kind: object.kind.unwrap_or(BodyKind::Dynamic),
                shape: None,
                properties: Properties::new(),
            });
        if let Some(kind) = object.kind {
            known.kind = kind;
        }
        if let Some(properties) = &object.properties {
            known.properties.clone_from(properties);
        }
        if Some(object.id) == self.avatar_id {
            self.server_avatar = Some(ServerAvatar {
                position: object.position,
                velocity: object.velocity,
            });
            return;
        }
        if !self.config.interpolate {
            if is_new_known {
                let kind = self.objects[&object.id].kind;
                self.events.push_back(SessionEvent::ObjectAdded {
                    id: object.id,
                    kind,
                });
            }
            return;
        }
        let is_new = self.remote.track(object.id).is_none();
        self.remote.update(
            object.id,
            object.kind,
            object.properties.as_ref(),
            Sample {
                tick,
                position: object.position,
                rotation: object.rotation,
                velocity: object.velocity,
                angular_velocity: object.angular_velocity,
                sleeping: object.sleeping,
            },
        );
        if is_new {
            let kind = self.objects[&object.id].kind;
            self.events.push_back(SessionEvent::ObjectAdded {
                id: object.id,
                kind,
            });
        }
        // Only the prediction collides with the world.
        if self.config.predict {
            self.collision
                .set_pose(object.id, object.position, object.rotation, object.velocity);
        }
    }

    fn reconcile(&mut self, ack: Option<u32>) {
        let (Some(seq), Some(server)) = (ack, self.server_avatar) else {
            return;
        };
        while self.sent.front().is_some_and(|i| i.seq <= seq) {
            self.sent.pop_front();
        }
        let Some(predictor) = &mut self.predictor else {
            return;
        };
        self.collision.prepare(predictor.current().position);
        if let (Some((spawn, _)), Some(tick)) = (self.welcome_tick, self.last_state_tick) {
            predictor.set_ticks_since_spawn(tick.saturating_sub(spawn));
        }
        let outcome = predictor.reconcile(seq, &server, &self.collision);
        if let Some(error) = outcome.error() {
            self.stats.reconciliations += 1;
            self.stats.prediction_error_last = f64::from(error);
            self.stats.prediction_error_max = self.stats.prediction_error_max.max(f64::from(error));
        }
        let shift = match outcome {
            Reconciliation::Corrected { shift, .. } => {
                let magnitude = f64::from(length(shift));
                self.stats.corrections += 1;
                self.stats.correction_total += magnitude;
                self.stats.correction_max = self.stats.correction_max.max(magnitude);
                Some(shift)
            }
            Reconciliation::Rebased { shift, .. } => {
                self.stats.rebases += 1;
                self.stats.rebase_max = self.stats.rebase_max.max(f64::from(length(shift)));
                Some(shift)
            }
            Reconciliation::Stale | Reconciliation::Agreed { .. } => None,
        };
        if let Some(shift) = shift {
            self.smoother.on_correction(shift);
            for (p, s) in self.previous_position.iter_mut().zip(shift) {
                *p += s;
            }
        }
    }

    // ── Local updates ───────────────────────────────────────────────────

    /// Advances the session to local time `now` with the player's `controls`: runs the fixed
    /// ticks due (inputs and prediction), sends batches, acks and pings, advances playback.
    pub fn update(&mut self, now: f64, controls: &Controls) {
        if self.phase != Phase::Active {
            return;
        }
        let elapsed = self
            .last_update
            .map_or(0.0, |last| (now - last).clamp(0.0, 1.0));
        self.last_update = Some(now);
        self.smoother.advance(elapsed as f32);

        let rate = f64::from(self.tick_rate);
        self.accumulator += elapsed * rate * self.input_dilation(now);
        let mut ran = 0;
        while self.accumulator >= 1.0 && ran < self.config.max_catch_up_ticks.max(1) {
            self.accumulator -= 1.0;
            self.fixed_tick(controls);
            ran += 1;
        }
        if self.accumulator >= 1.0 {
            // A stall (the application froze): drop the backlog rather than fast-forward.
            self.accumulator = self.accumulator.fract();
        }
        if self.ticks_since_send >= self.config.send_interval_ticks.max(1)
            || (self.avatar_id.is_none() && self.ack_due)
        {
            self.flush_inputs();
        }
        if now >= self.next_ping {
            let frame = self.outgoing.ping(self.pings_sent, now);
            self.push_out(frame);
            self.pings_sent += 1;
            // A quick burst first, so that the clock is usable within a fraction of a second.
            let gap = if self.pings_sent < 5 {
                0.1
            } else {
                self.config.ping_interval.max(0.05)
            };
            self.next_ping = now + gap;
        }
        self.render_tick = self.timeline.advance(now);
        if let Some(tick) = self.render_tick {
            for id in self.remote.prune(tick) {
                if !self.objects.contains_key(&id) {
                    continue; // already reported by the removal event or message
                }
                if self
                    .objects
                    .get(&id)
                    .is_some_and(|o| o.kind != BodyKind::Static)
                {
                    self.events.push_back(SessionEvent::ObjectRemoved {
                        id,
                        reason: "left_interest".into(),
                    });
                    self.objects.remove(&id);
                }
            }
        }
    }

    /// How fast the input clock runs relative to real time, steering it towards the tick its
    /// inputs should target.
    fn input_dilation(&mut self, now: f64) -> f64 {
        let Some(target) = self.input_target(now) else {
            return 1.0;
        };
        if !self.input_clock_synced || (target - self.input_tick).abs() > TICK_JUMP {
            self.input_tick = target.round();
            self.input_clock_synced = true;
            return 1.0;
        }
        let rate = f64::from(self.tick_rate);
        1.0 + ((target - self.input_tick) / rate).clamp(-MAX_DILATION, MAX_DILATION)
    }

    /// The tick an input created now should target: the server's tick when it arrives, with
    /// margins for jitter and batching.
    fn input_target(&self, now: f64) -> Option<f64> {
        if !self.config.target_ticks {
            return None;
        }
        let rate = f64::from(self.tick_rate);
        if !self.clock.is_synced() {
            // Coarse: the welcome's tick advanced at the tick rate (its one-way delay unknown).
            let (tick, at) = self.welcome_tick?;
            let lead = f64::from(self.config.initial_input_lead?);
            return Some(tick as f64 + (now - at) * rate + lead);
        }
        let server_tick = self.clock.server_tick(now)?;
        let rtt = self.clock.rtt()?;
        // A lost message delays its inputs to the next batch that repeats them.
        let resend = if self.config.redundant_inputs > 0 {
            f64::from(self.config.send_interval_ticks.max(1))
        } else {
            0.0
        };
        let lead = (rtt / 2.0 + 2.0 * self.clock.rtt_jitter()) * rate
            + f64::from(self.config.send_interval_ticks.max(1))
            + resend
            + 2.0;
        Some(server_tick + lead)
    }

    fn fixed_tick(&mut self, controls: &Controls) {
        if self.avatar_id.is_none() {
            return; // spectators send no inputs
        }
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let tick = self
            .input_clock_synced
            .then(|| self.input_tick.max(0.0).round() as Tick);
        self.input_tick += 1.0;
        let clamp = |v: f32| {
            if v.is_finite() {
                v.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        };
        let look = if controls.look.iter().all(|c| c.is_finite()) {
            controls.look
        } else {
            [0.0; 3]
        };
        let input = PlayerInput {
            seq,
            tick,
            movement: controls.movement.map(clamp),
            look,
            jump: controls.jump,
            run: controls.run,
        };
        if let Some(predictor) = &mut self.predictor {
            self.previous_position = predictor.current().position;
            self.collision.prepare(predictor.current().position);
            // Predict with what the server will decode; send the original (quantising twice
            // would not give the same values: the look is normalised before quantising).
            predictor.predict(self.outgoing.as_received(&input), &self.collision);
        }
        self.unsent.push(input);
        self.stats.inputs_created += 1;
        self.ticks_since_send += 1;
        if self.unsent.len() >= MAX_INPUTS_PER_MESSAGE {
            self.flush_inputs();
        }
    }

    /// Sends the acknowledgement of the newest state now instead of with the next update's
    /// inputs. A client that updates at a low rate (a bot) calls it after receiving, so the
    /// server's delta baseline stays as fresh as a 60 fps client's would be.
    pub fn acknowledge_now(&mut self) {
        if !self.ack_due {
            return;
        }
        self.ack_due = false;
        if let Some(tick) = self.last_state_tick {
            if self.datagram_inputs {
                self.push_datagram(encode_client_ack(tick));
            } else {
                let frame = self.outgoing.ack(tick);
                self.push_out(frame);
            }
        }
    }

    fn flush_inputs(&mut self) {
        self.ticks_since_send = 0;
        if self.unsent.is_empty() && !self.ack_due {
            return;
        }
        let ack = self.ack_due.then_some(self.last_state_tick).flatten();
        self.ack_due = false;
        if self.unsent.is_empty() {
            if let Some(tick) = ack {
                if self.datagram_inputs {
                    self.push_datagram(encode_client_ack(tick));
                } else {
                    let frame = self.outgoing.ack(tick);
                    self.push_out(frame);
                }
            }
            return;
        }
        let room = MAX_INPUTS_PER_MESSAGE.saturating_sub(self.unsent.len());
        let wanted = if self.datagram_inputs {
            DATAGRAM_INPUTS.saturating_sub(self.unsent.len())
        } else if std::mem::take(&mut self.repeat_once) {
            self.config.redundant_inputs.max(DATAGRAM_INPUTS)
        } else {
            self.config.redundant_inputs
        };
        let repeat = wanted.min(room).min(self.sent.len());
        let mut batch: Vec<PlayerInput> = self
            .sent
            .iter()
            .skip(self.sent.len() - repeat)
            .cloned()
            .collect();
        batch.append(&mut self.unsent);
        if self.datagram_inputs {
            // Every datagram carries the newest applied tick: a lost one loses no ack.
            let bytes = encode_client_inputs(&batch, self.last_state_tick);
            self.push_datagram(bytes);
        } else {
            let frame = self.outgoing.inputs(&batch, ack);
            self.push_out(frame);
        }
        let now = self.last_update.unwrap_or(0.0);
        for input in batch.into_iter().skip(repeat) {
            if self.send_times.len() >= SENT_MEMORY {
                self.send_times.pop_front();
            }
            self.send_times.push_back((input.seq, now));
            self.sent.push_back(input);
        }
        while self.sent.len() > SENT_MEMORY {
            self.sent.pop_front();
        }
    }

    // ── The view ────────────────────────────────────────────────────────

    /// The own avatar as it should be displayed now.
    pub fn avatar(&self) -> Option<AvatarView> {
        let id = self.avatar_id?;
        match &self.predictor {
            Some(predictor) => {
                let state = predictor.current();
                let alpha = self.accumulator.clamp(0.0, 1.0) as f32;
                let offset = self.smoother.offset();
                let mut position = [0.0; 3];
                for i in 0..3 {
                    position[i] = self.previous_position[i]
                        + (state.position[i] - self.previous_position[i]) * alpha
                        + offset[i];
                }
                Some(AvatarView {
                    id,
                    position,
                    rotation: state.rotation(),
                    predicted: state.position,
                    correction_offset: offset,
                    velocity: state.velocity,
                    grounded: state.grounded,
                })
            }
            None => {
                let server = self.server_avatar?;
                Some(AvatarView {
                    id,
                    position: server.position,
                    rotation: [0.0, 0.0, 0.0, 1.0],
                    predicted: server.position,
                    correction_offset: [0.0; 3],
                    velocity: server.velocity,
                    grounded: false,
                })
            }
        }
    }

    /// The playback tick of remote objects (after the last update).
    pub fn render_tick(&self) -> Option<f64> {
        self.render_tick
    }

    /// One remote object at the playback tick.
    pub fn remote_object(&self, id: ObjectId) -> Option<ObjectPose> {
        let tick = self.render_tick?;
        let rate = f64::from(self.tick_rate);
        self.remote
            .sample(id, tick, self.config.max_extrapolation * rate, rate)
    }

    /// Every remote object at the playback tick.
    pub fn remote_objects(&self) -> Vec<ObjectPose> {
        let Some(tick) = self.render_tick else {
            return Vec::new();
        };
        let rate = f64::from(self.tick_rate);
        let limit = self.config.max_extrapolation * rate;
        self.remote
            .ids()
            .filter_map(|id| self.remote.sample(id, tick, limit, rate))
            .collect()
    }
}

fn length(v: [f32; 3]) -> f32 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}
