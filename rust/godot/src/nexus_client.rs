//! `NexusClient`: the game-side node that joins a Nexus Physics server and shows its world.

mod link;
mod meshes;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use godot::classes::{
    Camera3D, Engine, INode3D, Input, InputMap, MeshInstance3D, Node3D, PackedScene,
};
use godot::global::Error;
use godot::prelude::*;
use nexus_client::{
    ClientError, ClientSession, Controls, Encoding, Frame, ResumeTicket, SessionConfig,
    SessionEvent,
};
use nexus_protocol::{interaction_kind, interaction_kind_name};
use nexus_sim::state::{BodyKind, ClientId, ObjectDesc, ObjectId};
use nexus_sim::{InteractionKind, InteractionRequest, InteractionResult};

use crate::convert::{
    array_to_quat, array_to_vec3, dictionary_to_json, emit_deferred, from_dictionary,
    json_object_to_dictionary, json_to_variant, to_variant,
};
use crate::nexus_gateway::envelope_from_dictionary;
use link::{Link, LinkEvent, ServerClose};

/// Encoding of the state stream asked of the server (other events are always JSON).
#[derive(GodotConvert, Var, Export, Default, Clone, Copy, PartialEq, Eq, Debug)]
#[godot(via = i64)]
pub enum StreamEncoding {
    /// JSON text frames: readable, about 30 times larger.
    Json,
    /// The compact binary delta stream (`nexus.binary.v1`).
    #[default]
    Binary,
}

/// Where the connection is.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum LinkState {
    #[default]
    Disconnected,
    /// Opening the WebSocket.
    Connecting,
    /// Open, join sent, waiting for the welcome.
    Joining,
    /// Welcomed: playing.
    Connected,
    /// Leave sent; waiting for the socket to close.
    Disconnecting,
    /// The connection was lost: waiting out the backoff before the next attempt.
    Reconnecting,
}

impl LinkState {
    fn name(self) -> &'static str {
        match self {
            LinkState::Disconnected => "disconnected",
            LinkState::Connecting => "connecting",
            LinkState::Joining => "joining",
            LinkState::Connected => "connected",
            LinkState::Disconnecting => "disconnecting",
            LinkState::Reconnecting => "reconnecting",
        }
    }
}

/// A reconnection under way, from the lost connection until the next welcome.
struct Reconnect {
    /// Attempts scheduled so far (the current one's number, from 1).
    attempt: u32,
    /// What the next join needs to take the session back (`None`: it joins afresh).
    ticket: Option<ResumeTicket>,
    /// When the next attempt starts, while waiting (`LinkState::Reconnecting`).
    retry_at: Instant,
}

/// The node showing one world object.
struct ObjectNode {
    node: Gd<Node3D>,
    /// Made visible once it has a pose (hidden until then rather than shown at the origin).
    shown: bool,
    /// Drawn as the placeholder box because the shape was unknown; redrawn when it arrives.
    placeholder: bool,
}

/// Joins a Nexus Physics server as a player and shows its world as child nodes.
///
/// `connect_to_server()` (or `autoconnect`) opens a WebSocket to `url` on a background thread
/// (the main thread never waits on the network) and joins `campaign_id` with `token`. Every
/// frame the node then feeds the received frames to the client session (prediction,
/// reconciliation, interpolation: the `nexus-client` crate), turns the input actions into the
/// avatar's controls and sends them.
///
/// **Children.** Each world object gets one `Node3D` child named `Object_<id>`, created when the
/// object becomes known (`object_spawned`) and freed when it goes (`object_removed`): an instance
/// of `object_scene` when set (its root must be a `Node3D`), otherwise a `MeshInstance3D` built
/// from the object's shape. Each node carries the metadata `object_id`, `kind`, `properties`,
/// `shape` and `own_avatar`. Its transform is set every frame, relative to this node: the own
/// avatar from the prediction, everything else from interpolation of the server's states. Keep
/// this node at the origin to see the world in place. A node stays hidden until its first pose.
///
/// **Input.** With `input_enabled`, movement comes from the `action_*` input actions (empty name:
/// unused), relative to the look direction: the horizontal view direction of `camera` when set,
/// else of the first `Camera3D` child found at connection, else `look_yaw` (0 looks down -Z). The
/// interact action picks up the nearest pickupable object, or drops the held one. Without
/// `input_enabled`, `set_controls()` drives the avatar (bots, AI, tests).
///
/// **Reconnecting.** With `auto_reconnect`, a connection lost after the welcome (the network
/// failed, or the server found it dead or is shutting down) is made again by itself, on the
/// background thread as always: `reconnecting` fires before each attempt, which waits
/// `reconnect_delay` doubling up to `reconnect_max_delay` (each wait drawn between half and all of
/// that, so that clients dropped together do not come back together). The join carries the last
/// welcome's resume token: within the server's grace period the session is taken back (same client
/// id and avatar, the inputs the server had not acknowledged sent again once) and `reconnected`
/// fires with `resumed` true; otherwise (e.g. the server restarted) it is a new session:
/// `connected` with the new ids, then `reconnected(false)`. Meanwhile the object nodes stay where
/// they were, `is_connected_to_server()` is false and no input is sent. A leave
/// (`disconnect_from_server()`, leaving the tree) and a server close that means "do not come back"
/// (`invalid_token`, `session_resumed`, a kick, flooding...) never reconnect.
///
/// **Signals** are emitted at the end of the frame (deferred), so handlers may call back into the
/// node, except `disconnected` when the node leaves the tree, which is emitted at once.
///
/// **Leaving the tree** (or being freed) sends a leave, closes the socket and joins the network
/// thread: that waits for the server's close answer, at most about 0.6 s. `get_stats()` shows the
/// round trip, state age, traffic and prediction corrections.
#[derive(GodotClass)]
#[class(init, base = Node3D)]
pub struct NexusClient {
    /// WebSocket URL of the server (`scripts/serve` listens on ws://127.0.0.1:9090/ws).
    #[export]
    #[init(val = GString::from("ws://127.0.0.1:9090/ws"))]
    url: GString,
    /// The campaign (world) to join (the demo server's is "0").
    #[export]
    #[init(val = GString::from("0"))]
    campaign_id: GString,
    /// Join token. A development-mode server accepts any non-empty token as the player's name;
    /// empty: `player_name` is sent as the token.
    #[export]
    token: GString,
    /// Preferred display name (empty: the server's choice).
    #[export]
    #[init(val = GString::from("player"))]
    player_name: GString,
    /// Encoding of the state stream: Binary is far smaller; JSON is readable in traffic dumps.
    #[export]
    encoding: StreamEncoding,
    /// Connect when the node enters the tree (outside the editor).
    #[export]
    #[init(val = true)]
    autoconnect: bool,
    /// Predict the own avatar from the local inputs (reconciled with the server's states);
    /// without prediction it is shown as streamed, a round trip late.
    #[export]
    #[init(val = true)]
    prediction: bool,
    /// Instanced once per world object (root: a Node3D). Unset: meshes from the objects' shapes.
    #[export]
    object_scene: Option<Gd<PackedScene>>,
    /// Take the avatar's controls from the input actions below; off: from `set_controls()`.
    #[export]
    #[export_group(name = "Input")]
    #[init(val = true)]
    input_enabled: bool,
    /// Action that walks forward (along the look direction).
    #[export]
    #[init(val = GString::from("ui_up"))]
    action_forward: GString,
    /// Action that walks backwards.
    #[export]
    #[init(val = GString::from("ui_down"))]
    action_back: GString,
    /// Action that walks left.
    #[export]
    #[init(val = GString::from("ui_left"))]
    action_left: GString,
    /// Action that walks right.
    #[export]
    #[init(val = GString::from("ui_right"))]
    action_right: GString,
    /// Action that jumps.
    #[export]
    #[init(val = GString::from("ui_accept"))]
    action_jump: GString,
    /// Action held to run (empty: never runs).
    #[export]
    action_run: GString,
    /// Action that picks up the nearest pickupable object, or drops the held one (empty: none).
    #[export]
    action_interact: GString,
    /// The camera whose horizontal view direction the avatar looks along (see the class notes).
    #[export]
    #[export_group(name = "Look")]
    camera: Option<Gd<Camera3D>>,
    /// Look direction without a camera: yaw around +Y; 0 looks down -Z (Godot's forward).
    #[export(range = (-180.0, 180.0, 0.1, radians_as_degrees))]
    look_yaw: f32,
    /// Radius of the area the server streams (0: the server's default, 120 m).
    #[export(range = (0.0, 500.0, 1.0, suffix = "m"))]
    #[export_group(name = "Network")]
    interest_radius: f32,
    /// Time allowed to connect, and again to be welcomed, before giving up.
    #[export(range = (0.5, 60.0, 0.5, suffix = "s"))]
    #[init(val = 10.0)]
    join_timeout: f32,
    /// Inputs are sent in batches of this many ticks (1: every tick, the lowest latency).
    #[export(range = (1.0, 10.0, 1.0))]
    #[init(val = 1)]
    send_interval_ticks: i32,
    /// Already-sent inputs repeated in each batch, against lost messages on lossy links.
    #[export(range = (0.0, 16.0, 1.0))]
    redundant_inputs: i32,
    /// Remote objects play back at least this many snapshot intervals behind the newest state
    /// (more hides more jitter, at the cost of latency).
    #[export(range = (1.0, 10.0, 0.5))]
    #[init(val = 3.0)]
    interpolation_intervals: f32,
    /// Longest extrapolation of a remote object whose states are late.
    #[export(range = (0.0, 1.0, 0.01, suffix = "s"))]
    #[init(val = 0.25)]
    max_extrapolation: f32,
    /// Time constant over which a prediction correction of the own avatar is smoothed away.
    #[export(range = (0.0, 1.0, 0.01, suffix = "s"))]
    #[init(val = 0.1)]
    correction_time: f32,
    /// Make a connection lost after the welcome again by itself, taking the session back when the
    /// server still keeps it (see the class notes); off: a lost connection reports
    /// `error("connection_lost", ...)` and `disconnected`. Turning it off while reconnecting gives
    /// up at once.
    #[export]
    #[export_subgroup(name = "Reconnect")]
    #[init(val = true)]
    auto_reconnect: bool,
    /// Wait before the first reconnection attempt; it doubles with each failed attempt (as the Rust
    /// client `nexus-bots` does: 0.1 s doubling to 5 s).
    #[export(range = (0.01, 10.0, 0.01, suffix = "s"))]
    #[init(val = 0.1)]
    reconnect_delay: f32,
    /// Longest wait between reconnection attempts.
    #[export(range = (0.1, 120.0, 0.1, suffix = "s"))]
    #[init(val = 5.0)]
    reconnect_max_delay: f32,
    /// Attempts before giving up (`error("connection_lost", ...)`, then `disconnected`); 0: try
    /// until the server answers or `disconnect_from_server()`.
    #[export(range = (0.0, 1000.0, 1.0, or_greater))]
    reconnect_max_attempts: i32,
    state: LinkState,
    link: Option<Link>,
    session: Option<ClientSession>,
    /// The session settings of the next link to open.
    pending_config: Option<SessionConfig>,
    /// The URL and session settings taken from the properties at `connect_to_server()`, kept for
    /// reconnections.
    connection: Option<(String, SessionConfig)>,
    /// Set from the lost connection until the next welcome.
    reconnect: Option<Reconnect>,
    /// Reconnections since `connect_to_server()`, and how many of them resumed the session.
    reconnects: u64,
    resumes: u64,
    /// The session's clock starts at `connect_to_server()`.
    origin: Option<Instant>,
    join_deadline: f64,
    /// Reported by `disconnected` instead of the socket's reason (we asked to close, and why).
    close_reason: Option<String>,
    client_id: Option<ClientId>,
    avatar_id: Option<ObjectId>,
    held: Option<ObjectId>,
    objects: BTreeMap<ObjectId, ObjectNode>,
    view_camera: Option<Gd<Camera3D>>,
    scripted: Controls,
    warned_actions: HashSet<String>,
    base: Base<Node3D>,
}

#[godot_api]
impl INode3D for NexusClient {
    fn ready(&mut self) {
        if self.autoconnect && !Engine::singleton().is_editor_hint() {
            // A failure is reported by `error` and the log; nothing else to do here.
            let _ = self.connect_to_server();
        }
    }

    fn process(&mut self, _delta: f64) {
        if self.link.is_some() || self.state == LinkState::Reconnecting {
            self.poll();
        }
    }

    fn exit_tree(&mut self) {
        // The node may be on its way to being freed: close now and report at once (a deferred
        // signal would never reach a freed node).
        if self.link.is_none() && self.state != LinkState::Reconnecting {
            return;
        }
        if let Some(session) = &mut self.session {
            session.leave();
        }
        self.flush();
        let reason = self
            .close_reason
            .take()
            .unwrap_or_else(|| "the client left the scene tree".into());
        self.reset(false);
        self.signals()
            .disconnected()
            .emit(&GString::from(reason.as_str()));
    }
}

#[godot_api]
impl NexusClient {
    /// The server welcomed the client: its id and the id of the avatar it drives (-1: none). Fires
    /// for the first welcome, and again when a reconnection could not take the session back (new
    /// ids, before `reconnected(false)`).
    #[signal]
    fn connected(client_id: i64, avatar_id: i64);
    /// A connection attempt or session ended for good, and why (after `error` when it failed). Not
    /// emitted while reconnecting, only once the node gives up or is told to stop.
    #[signal]
    fn disconnected(reason: GString);
    /// The connection was lost (or a reconnection attempt failed) and attempt number `attempt`
    /// (from 1) starts in `delay_seconds` (see `auto_reconnect`).
    #[signal]
    fn reconnecting(attempt: i64, delay_seconds: f64);
    /// Welcomed again after a lost connection. `resumed`: the session was taken back (same client
    /// id and avatar, unacknowledged inputs sent again once); false: a new session (the server
    /// no longer knew the old one, e.g. after a restart or past its grace period), announced by
    /// `connected` with the new ids just before.
    #[signal]
    fn reconnected(resumed: bool);
    /// A world object became known and has its child node (still hidden until its first pose).
    #[signal]
    fn object_spawned(id: i64, node: Gd<Node3D>);
    /// A world object is gone (its node is freed): `reason` as the server gave it (`removed`,
    /// `destroyed`, `player_left`...), `left_interest` when it left the streamed area, or
    /// `reconnected` when the world state of a reconnection no longer has it (or it stopped or
    /// became the own avatar: it is spawned again).
    #[signal]
    fn object_removed(id: i64, reason: GString);
    /// The outcome of an interaction (anyone's): `success`, `code` (`ok`, `out_of_reach`,
    /// `not_pickupable`, ...), `message`, `kind`, `request_id`, `target` (-1: none), `data`,
    /// `client_id` and `own` (whether this client asked).
    #[signal]
    fn interaction_result(result: VarDictionary);
    /// Any other server event (weather, environment, particles, custom...), as an envelope
    /// Dictionary with `type`, `payload` and `metadata`.
    #[signal]
    fn event_received(event: VarDictionary);
    /// Something failed: a stable code (`invalid_url`, `connect_failed`, `timeout`,
    /// `connection_lost`, the server's error codes such as `unknown_campaign` or
    /// `invalid_token`...) and a message for people. `connection_lost` means the connection broke
    /// and is not made again: `auto_reconnect` is off, or `reconnect_max_attempts` ran out; a
    /// reconnection the server refuses reports the server's code.
    #[signal]
    fn error(code: GString, message: GString);

    /// Connects to `url` and joins `campaign_id` with the current properties. Returns OK when the
    /// attempt started (`connected` or `error` + `disconnected` follow), ERR_ALREADY_IN_USE when
    /// already connected (or reconnecting), ERR_UNCONFIGURED outside the scene tree,
    /// ERR_INVALID_PARAMETER for a malformed URL or empty campaign/token.
    #[func]
    pub fn connect_to_server(&mut self) -> Error {
        match self.state {
            LinkState::Disconnected => {}
            // The previous socket is on its way out: finish that first.
            LinkState::Disconnecting => self.finish("disconnected by the client".into(), None),
            _ => return Error::ERR_ALREADY_IN_USE,
        }
        if !self.base().is_inside_tree() {
            godot_error!("NexusClient.connect_to_server: the node must be in the scene tree");
            return Error::ERR_UNCONFIGURED;
        }
        let config = match self.session_config() {
            Ok(config) => config,
            Err(message) => {
                self.report_error("invalid_config", &message);
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        let url = self.url.to_string();
        let timeout = Duration::from_secs_f32(self.join_timeout.clamp(0.5, 60.0));
        match Link::open(&url, config.encoding, timeout) {
            Ok(link) => {
                self.link = Some(link);
                self.connection = Some((url, config.clone()));
                self.reconnect = None;
                self.reconnects = 0;
                self.resumes = 0;
                self.pending_config = Some(config);
                self.origin = Some(Instant::now());
                self.state = LinkState::Connecting;
                self.close_reason = None;
                self.view_camera = self.find_camera();
                Error::OK
            }
            Err(error) => {
                self.report_error(error.code, &error.message);
                if error.code == "invalid_url" {
                    Error::ERR_INVALID_PARAMETER
                } else {
                    Error::ERR_CANT_CREATE
                }
            }
        }
    }

    /// Leaves the campaign and closes the connection; `disconnected` follows once the socket has
    /// closed (at once when nothing was open). Also stops reconnecting.
    #[func]
    pub fn disconnect_from_server(&mut self) {
        match self.state {
            LinkState::Disconnected | LinkState::Disconnecting => {}
            LinkState::Reconnecting => self.finish("disconnected by the client".into(), None),
            _ => {
                self.close_reason = Some("disconnected by the client".into());
                self.begin_disconnect();
            }
        }
    }

    /// Whether the server has welcomed this client and the session is running.
    #[func]
    pub fn is_connected_to_server(&self) -> bool {
        self.state == LinkState::Connected
    }

    /// `disconnected`, `connecting`, `joining`, `connected`, `reconnecting` (from a lost
    /// connection until the next welcome, attempts included) or `disconnecting`.
    #[func]
    pub fn get_connection_state(&self) -> GString {
        match self.state {
            LinkState::Connecting | LinkState::Joining if self.reconnect.is_some() => {
                "reconnecting".into()
            }
            state => state.name().into(),
        }
    }

    /// This client's id on the server, or -1 before the welcome.
    #[func]
    pub fn get_client_id(&self) -> i64 {
        self.client_id.map_or(-1, i64::from)
    }

    /// The id of the object this client drives, or -1 (not welcomed, or a spectator).
    #[func]
    pub fn get_avatar_id(&self) -> i64 {
        self.avatar_id.map_or(-1, i64::from)
    }

    /// The node showing object `id`, or null.
    #[func]
    pub fn get_object_node(&self, id: i64) -> Option<Gd<Node3D>> {
        let id = ObjectId::try_from(id).ok()?;
        self.objects
            .get(&id)
            .map(|entry| entry.node.clone())
            .filter(Gd::is_instance_valid)
    }

    /// The node showing the own avatar, or null.
    #[func]
    pub fn get_avatar_node(&self) -> Option<Gd<Node3D>> {
        self.get_object_node(self.get_avatar_id())
    }

    /// Ids of the objects shown, ascending.
    #[func]
    pub fn get_object_ids(&self) -> PackedInt64Array {
        self.objects.keys().map(|&id| i64::from(id)).collect()
    }

    /// What the client knows of object `id`: `kind`, `shape` (or null), `properties`; empty
    /// when unknown.
    #[func]
    pub fn get_object_info(&self, id: i64) -> VarDictionary {
        let known = ObjectId::try_from(id)
            .ok()
            .zip(self.session.as_ref())
            .and_then(|(id, session)| session.objects().get(&id));
        let mut info = VarDictionary::new();
        if let Some(known) = known {
            info.set("kind", kind_name(known.kind));
            info.set("shape", &to_variant(&known.shape));
            info.set("properties", &json_object_to_dictionary(&known.properties));
        }
        info
    }

    /// Controls used while `input_enabled` is off: `movement` (x right, y forward, each -1..1),
    /// jump and run. They stay until changed.
    #[func]
    pub fn set_controls(
        &mut self,
        movement: Vector2,
        #[opt(default = false)] jump: bool,
        #[opt(default = false)] run: bool,
    ) {
        let movement = if movement.is_finite() {
            movement.limit_length(Some(1.0))
        } else {
            Vector2::ZERO
        };
        self.scripted = Controls {
            movement: [movement.x, movement.y],
            look: [0.0; 3],
            jump,
            run,
        };
    }

    /// Asks for an interaction: `kind` is `pickup`, `drop`, `use`, `destroy` or a custom name
    /// registered on the server; `target_id` the object (-1: none, e.g. drop). Returns the request
    /// id echoed in `interaction_result`, or -1 when it could not be sent (not connected, bad
    /// arguments). With arguments: `interact_with_args()`; building: `build()`.
    #[func]
    pub fn interact(&mut self, kind: GString, #[opt(default = -1)] target_id: i64) -> i64 {
        self.interact_with_args(kind, target_id, VarDictionary::new())
    }

    /// `interact()` with extra arguments, e.g. `interact_with_args("drop", -1, {"velocity":
    /// [x, y, z]})` throws the held object; custom interactions read theirs.
    #[func]
    pub fn interact_with_args(
        &mut self,
        kind: GString,
        target_id: i64,
        args: VarDictionary,
    ) -> i64 {
        let kind = match interaction_kind(&kind.to_string()) {
            Ok(InteractionKind::Build) => {
                godot_error!("NexusClient.interact: use build(description) to build");
                return -1;
            }
            Ok(kind) => kind,
            Err(error) => {
                godot_error!("NexusClient.interact: {error}");
                return -1;
            }
        };
        let target = match target_id {
            -1 => None,
            id => match ObjectId::try_from(id) {
                Ok(id) => Some(id),
                Err(_) => {
                    godot_error!("NexusClient.interact: {id} is not an object id");
                    return -1;
                }
            },
        };
        let args = match dictionary_to_json(&args) {
            Ok(args) => args,
            Err(error) => {
                godot_error!("NexusClient.interact: args: {error}");
                return -1;
            }
        };
        self.request(InteractionRequest {
            request_id: 0,
            kind,
            target,
            build: None,
            args,
        })
    }

    /// Asks to build an object from `description` (`kind`, `shape`, `position`, `rotation`,
    /// `mass`, `properties`... as in the protocol's object description). Returns the request id
    /// or -1.
    #[func]
    pub fn build(&mut self, description: VarDictionary) -> i64 {
        let desc: ObjectDesc = match from_dictionary(&description) {
            Ok(desc) => desc,
            Err(error) => {
                godot_error!("NexusClient.build: not an object description: {error}");
                return -1;
            }
        };
        self.request(InteractionRequest {
            request_id: 0,
            kind: InteractionKind::Build,
            target: None,
            build: Some(desc),
            args: Default::default(),
        })
    }

    /// Sends a raw event envelope (`type`, `payload`, optional `metadata`; the campaign and
    /// client type are filled in), e.g. `environment:state:v1:requested` or
    /// `physics:action:v1:requested`. Only `…:requested` types go to the server. Returns OK,
    /// ERR_UNCONFIGURED when not connected or ERR_INVALID_PARAMETER for a bad envelope.
    #[func]
    pub fn send_event(&mut self, event: VarDictionary) -> Error {
        if self.state != LinkState::Connected {
            godot_error!("NexusClient.send_event: not connected");
            return Error::ERR_UNCONFIGURED;
        }
        let mut envelope = match envelope_from_dictionary(&event) {
            Ok(envelope) => envelope,
            Err(message) => {
                godot_error!("NexusClient.send_event: {message}");
                return Error::ERR_INVALID_PARAMETER;
            }
        };
        if !envelope.r#type.ends_with(":requested") {
            godot_error!(
                "NexusClient.send_event: {:?} is not a request (`domain:name:version:requested`)",
                envelope.r#type
            );
            return Error::ERR_INVALID_PARAMETER;
        }
        let metadata = &mut envelope.metadata;
        if metadata.campaign_id.is_empty() {
            metadata.campaign_id = self.campaign_id.to_string();
        }
        metadata.entity_type.get_or_insert_with(|| "player".into());
        metadata.client_type.get_or_insert_with(|| "godot".into());
        if let Some(link) = &self.link {
            link.send(Frame::Text(envelope.to_json()));
        }
        Error::OK
    }

    /// Figures of the session: `state`, `connected`, `client_id`, `avatar_id`, `objects` (nodes
    /// shown), `encoding`, `rtt_ms` and `rtt_jitter_ms` (-1 until measured),
    /// `interpolation_delay_ms`, `state_age_p50_ms`, `state_age_p99_ms`, `states_applied`,
    /// `bytes_received`, `bytes_sent`, `frames_received`, `frames_sent`, `corrections`,
    /// `reconciliations`, `correction_max_m`, `prediction_error_last_m`, `inputs_sent`,
    /// `inputs_rejected`, `errors_received`, `malformed_frames`, `server_tick`,
    /// `last_state_tick` (-1 when unknown), `inputs_replayed` (unacknowledged inputs sent again
    /// after a resume), `last_acked_input_seq` (the newest input the server acknowledged, as the
    /// prediction saw it; -1 when unknown or without prediction), `reconnects` and `resumes`
    /// (reconnections since `connect_to_server()`, and those that took the session back),
    /// `reconnect_attempt` (the attempt under way, 0 when not reconnecting). Except the last
    /// three, the figures are those of the current connection.
    #[func]
    pub fn get_stats(&self) -> VarDictionary {
        let mut stats = VarDictionary::new();
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        stats.set("state", &self.get_connection_state());
        stats.set("connected", self.is_connected_to_server());
        stats.set("client_id", self.get_client_id());
        stats.set("avatar_id", self.get_avatar_id());
        stats.set("objects", self.objects.len() as i64);
        stats.set("reconnects", count(self.reconnects));
        stats.set("resumes", count(self.resumes));
        stats.set(
            "reconnect_attempt",
            self.reconnect.as_ref().map_or(0, |r| i64::from(r.attempt)),
        );
        let Some(session) = &self.session else {
            return stats;
        };
        let encoding = match session.config().encoding {
            Encoding::Json => "json",
            Encoding::Binary => "binary",
        };
        stats.set("encoding", encoding);
        let timing = session.timing(self.now());
        let ms = |seconds: Option<f64>| seconds.map_or(-1.0, |s| s * 1e3);
        stats.set("rtt_ms", ms(timing.rtt));
        stats.set("rtt_jitter_ms", ms(timing.rtt.map(|_| timing.rtt_jitter)));
        stats.set("interpolation_delay_ms", timing.interpolation_delay * 1e3);
        stats.set("server_tick", timing.server_tick.unwrap_or(-1.0));
        let counters = session.stats();
        stats.set("state_age_p50_ms", counters.state_age.quantile(0.5) * 1e3);
        stats.set("state_age_p99_ms", counters.state_age.quantile(0.99) * 1e3);
        stats.set("states_applied", count(counters.states_applied));
        stats.set("bytes_received", count(counters.bytes_received));
        stats.set("bytes_sent", count(counters.bytes_sent));
        stats.set("frames_received", count(counters.frames_received));
        stats.set("frames_sent", count(counters.frames_sent));
        stats.set("corrections", count(counters.corrections));
        stats.set("reconciliations", count(counters.reconciliations));
        stats.set("correction_max_m", counters.correction_max);
        stats.set("prediction_error_last_m", counters.prediction_error_last);
        stats.set("inputs_sent", count(counters.inputs_created));
        stats.set("inputs_rejected", count(counters.inputs_rejected));
        stats.set("inputs_replayed", count(counters.inputs_replayed));
        stats.set(
            "last_acked_input_seq",
            session
                .predictor()
                .and_then(|p| p.confirmed_seq())
                .map_or(-1, i64::from),
        );
        stats.set("errors_received", count(counters.errors_received));
        stats.set("malformed_frames", count(counters.malformed_frames));
        stats.set(
            "last_state_tick",
            session.last_state_tick().map_or(-1, count),
        );
        stats
    }
}

impl NexusClient {
    /// Seconds on the session's clock.
    fn now(&self) -> f64 {
        self.origin.map_or(0.0, |o| o.elapsed().as_secs_f64())
    }

    fn session_config(&self) -> Result<SessionConfig, String> {
        let campaign = self.campaign_id.to_string();
        if campaign.is_empty() {
            return Err("campaign_id is empty".into());
        }
        let name = self.player_name.to_string();
        let token = match self.token.to_string() {
            token if token.is_empty() => name.clone(),
            token => token,
        };
        if token.is_empty() {
            return Err("both token and player_name are empty: set one".into());
        }
        let mut config = SessionConfig::new(&campaign, &token);
        config.name = (!name.is_empty()).then_some(name);
        config.encoding = match self.encoding {
            StreamEncoding::Json => Encoding::Json,
            StreamEncoding::Binary => Encoding::Binary,
        };
        config.client_type = "godot".into();
        config.interest_radius = (self.interest_radius > 0.0).then_some(self.interest_radius);
        config.send_interval_ticks = self.send_interval_ticks.clamp(1, 10) as u32;
        config.redundant_inputs = self.redundant_inputs.clamp(0, 16) as usize;
        config.predict = self.prediction;
        config.max_extrapolation = f64::from(self.max_extrapolation.clamp(0.0, 1.0));
        config.timeline.min_intervals = f64::from(self.interpolation_intervals.clamp(1.0, 10.0));
        config.correction.time_constant = self.correction_time.clamp(0.0, 1.0);
        Ok(config)
    }

    /// One frame of the connection: network in, session update, network out, events, poses.
    fn poll(&mut self) {
        if self.state == LinkState::Reconnecting {
            self.poll_reconnect();
            return;
        }
        let now = self.now();
        let mut ended = None;
        while let Some(event) = self.link.as_ref().and_then(Link::try_event) {
            match event {
                LinkEvent::Open(encoding) => self.on_open(now, encoding),
                LinkEvent::Frame(frame) => {
                    if let Some(session) = &mut self.session {
                        // A frame the session cannot read is counted in its stats (see
                        // `malformed_frames`); the stream goes on.
                        let _ = session.receive(now, &frame);
                    }
                }
                LinkEvent::Closed {
                    reason,
                    error,
                    server_close,
                } => {
                    ended = Some((reason, error, server_close));
                    break;
                }
            }
        }
        if matches!(self.state, LinkState::Joining | LinkState::Connected) {
            let controls = if self.state == LinkState::Connected {
                self.controls()
            } else {
                Controls::default()
            };
            if let Some(session) = &mut self.session {
                session.update(now, &controls);
            }
            self.flush();
            let events = self
                .session
                .as_mut()
                .map(ClientSession::poll_events)
                .unwrap_or_default();
            self.on_session_events(events);
        }
        if self.state == LinkState::Joining && now > self.join_deadline {
            let seconds = self.join_timeout;
            let message = format!("no welcome from the server within {seconds} s");
            if self.reconnect.is_some() && ended.is_none() {
                // A reconnection attempt: drop it (without a goodbye, which would end the session
                // should the server take it back after all) and try again.
                if let Some(link) = self.link.take() {
                    link.abandon();
                }
                self.schedule_reconnect(format!("timeout: {message}"));
                return;
            }
            self.fail("timeout", &message);
        }
        if self.state == LinkState::Connected
            && self.action_just_pressed(self.action_interact.clone())
        {
            self.interact_nearest();
        }
        self.update_nodes();
        if let Some((reason, error, server_close)) = ended {
            self.on_link_closed(reason, error, server_close);
        }
    }

    /// The socket closed: reconnect when the connection was lost after a welcome (see
    /// `auto_reconnect`), otherwise report and release everything.
    fn on_link_closed(
        &mut self,
        reason: String,
        error: Option<ClientError>,
        server_close: Option<ServerClose>,
    ) {
        let asked = self.close_reason.is_some();
        let welcomed = self.state == LinkState::Connected || self.reconnect.is_some();
        if !asked && welcomed && self.auto_reconnect && may_reconnect(server_close.as_ref()) {
            self.schedule_reconnect(reason);
        } else {
            self.finish(reason, error);
        }
    }

    /// Releases the lost connection and schedules the next attempt (`reconnecting`), or gives up
    /// when the attempts ran out.
    fn schedule_reconnect(&mut self, reason: String) {
        // A welcomed session hands its resume ticket on (none when the server keeps no lost
        // sessions); a failed attempt keeps the one it was given.
        let ended = self.session.take();
        let ticket = ended
            .as_ref()
            .filter(|session| session.client_id().is_some())
            .map(ClientSession::resume_ticket);
        if let Some(link) = self.link.take() {
            link.abandon(); // its thread has ended the connection and ends by itself
        }
        self.pending_config = None;
        let reconnect = self.reconnect.get_or_insert(Reconnect {
            attempt: 0,
            ticket: None,
            retry_at: Instant::now(),
        });
        if let Some(ticket) = ticket {
            reconnect.ticket = ticket;
        }
        let max_attempts = u32::try_from(self.reconnect_max_attempts).unwrap_or(0);
        if max_attempts > 0 && reconnect.attempt >= max_attempts {
            let attempts = reconnect.attempt;
            self.give_up(&format!(
                "gave up reconnecting after {attempts} attempts: {reason}"
            ));
            return;
        }
        reconnect.attempt += 1;
        let first = f64::from(self.reconnect_delay.clamp(0.01, 10.0));
        let longest = f64::from(self.reconnect_max_delay.clamp(0.1, 120.0)).max(first);
        let delay = backoff_delay(reconnect.attempt, first, longest, random_unit());
        reconnect.retry_at = Instant::now() + Duration::from_secs_f64(delay);
        let attempt = reconnect.attempt;
        self.state = LinkState::Reconnecting;
        godot_print!(
            "NexusClient: connection lost ({reason}); reconnecting in {delay:.2} s (attempt {attempt})"
        );
        self.emit(
            "reconnecting",
            &[i64::from(attempt).to_variant(), delay.to_variant()],
        );
    }

    /// Waiting to reconnect: start the attempt when it is due.
    fn poll_reconnect(&mut self) {
        if !self.auto_reconnect {
            self.give_up("reconnecting was turned off");
            return;
        }
        let Some(reconnect) = &self.reconnect else {
            return;
        };
        if Instant::now() < reconnect.retry_at {
            return;
        }
        let Some((url, mut config)) = self.connection.clone() else {
            return;
        };
        config.resume = reconnect.ticket.clone();
        let timeout = Duration::from_secs_f32(self.join_timeout.clamp(0.5, 60.0));
        match Link::open(&url, config.encoding, timeout) {
            Ok(link) => {
                self.link = Some(link);
                self.pending_config = Some(config);
                self.origin = Some(Instant::now());
                self.state = LinkState::Connecting;
            }
            Err(error) => {
                self.report_error(error.code, &error.message);
                self.finish(error.to_string(), None);
            }
        }
    }

    /// Stops reconnecting: `error("connection_lost", ...)`, then `disconnected`.
    fn give_up(&mut self, message: &str) {
        self.report_error("connection_lost", message);
        self.finish(message.to_owned(), None);
    }

    fn on_open(&mut self, now: f64, encoding: Encoding) {
        let Some(mut config) = self.pending_config.take() else {
            return;
        };
        // The server may grant another encoding than asked: the session must decode what comes.
        config.encoding = encoding;
        let mut session = ClientSession::new(config);
        session.start(now);
        self.session = Some(session);
        self.state = LinkState::Joining;
        self.join_deadline = now + f64::from(self.join_timeout);
        self.flush();
    }

    /// Sends what the session queued.
    fn flush(&mut self) {
        if let (Some(session), Some(link)) = (&mut self.session, &self.link) {
            for frame in session.drain_outgoing() {
                link.send(frame);
            }
        }
    }

    fn on_session_events(&mut self, mut events: Vec<SessionEvent>) {
        // The welcome's objects are queued before the welcome itself; announce the connection
        // first, so that `connected` precedes their `object_spawned`.
        if let Some(index) = events
            .iter()
            .position(|e| matches!(e, SessionEvent::Welcomed { .. }))
        {
            let welcome = events.remove(index);
            events.insert(0, welcome);
        }
        for event in events {
            match event {
                SessionEvent::Welcomed {
                    client_id,
                    avatar_id,
                    resumed,
                } => {
                    self.state = LinkState::Connected;
                    let rejoined = self.reconnect.take().is_some();
                    if rejoined {
                        self.drop_stale_nodes(avatar_id);
                        if !resumed {
                            self.held = None;
                        }
                    }
                    self.client_id = Some(client_id);
                    self.avatar_id = avatar_id;
                    if !(rejoined && resumed) {
                        self.emit(
                            "connected",
                            &[
                                i64::from(client_id).to_variant(),
                                avatar_id.map_or(-1, i64::from).to_variant(),
                            ],
                        );
                    }
                    if rejoined {
                        self.reconnects += 1;
                        self.resumes += u64::from(resumed);
                        godot_print!(
                            "NexusClient: reconnected ({})",
                            if resumed {
                                "session resumed"
                            } else {
                                "new session"
                            }
                        );
                        self.emit("reconnected", &[resumed.to_variant()]);
                    }
                }
                SessionEvent::ObjectAdded { id, kind } => self.spawn(id, kind),
                SessionEvent::ObjectRemoved { id, reason } => self.despawn(id, &reason),
                SessionEvent::InteractionResult(result) => self.on_interaction_result(&result),
                SessionEvent::ServerError { code, message } => {
                    if self.state == LinkState::Joining {
                        // Before the welcome an error means the join was refused.
                        self.fail(&code, &message);
                        return;
                    }
                    self.report_error(&code, &message);
                }
                SessionEvent::Other(envelope) => {
                    let event = to_variant(&*envelope);
                    self.emit("event_received", &[event]);
                }
                // Refused inputs are counted (`inputs_rejected`); the prediction drops them.
                SessionEvent::InputRejected(_) | SessionEvent::Closed { .. } => {}
            }
        }
    }

    /// After a reconnection: frees the nodes of objects the new world state does not have, and
    /// of those that became or stopped being the own avatar (spawned again, drawn as such).
    fn drop_stale_nodes(&mut self, avatar_id: Option<ObjectId>) {
        let Some(session) = &self.session else {
            return;
        };
        let old_avatar = self.avatar_id;
        let stale: Vec<ObjectId> = self
            .objects
            .keys()
            .copied()
            .filter(|id| {
                !session.objects().contains_key(id)
                    || (Some(*id) == old_avatar) != (Some(*id) == avatar_id)
            })
            .collect();
        for id in stale {
            self.despawn(id, "reconnected");
        }
    }

    fn on_interaction_result(&mut self, result: &InteractionResult) {
        let own = Some(result.client_id) == self.client_id;
        if own && result.success {
            match result.kind {
                InteractionKind::Pickup => self.held = result.target,
                InteractionKind::Drop => self.held = None,
                _ => {}
            }
        }
        let mut dict = VarDictionary::new();
        dict.set("success", result.success);
        dict.set("code", result.code.as_str());
        dict.set("message", result.message.as_str());
        dict.set("kind", interaction_kind_name(&result.kind));
        dict.set("request_id", i64::from(result.request_id));
        dict.set("target", result.target.map_or(-1, i64::from));
        dict.set(
            "data",
            &json_to_variant(&serde_json::Value::Object(result.data.clone())),
        );
        dict.set("client_id", i64::from(result.client_id));
        dict.set("own", own);
        self.emit("interaction_result", &[dict.to_variant()]);
    }

    fn request(&mut self, request: InteractionRequest) -> i64 {
        let Some(session) = self
            .session
            .as_mut()
            .filter(|_| self.state == LinkState::Connected)
        else {
            godot_error!("NexusClient: not connected; the interaction was not sent");
            return -1;
        };
        let id = session.interact(request);
        self.flush();
        i64::from(id)
    }

    /// Pickup of the nearest pickupable object, or drop of the held one (the interact action).
    fn interact_nearest(&mut self) {
        if self.held.is_some() {
            self.request(InteractionRequest {
                request_id: 0,
                kind: InteractionKind::Drop,
                target: None,
                build: None,
                args: Default::default(),
            });
            return;
        }
        let Some(session) = &self.session else {
            return;
        };
        let Some(avatar) = session.avatar() else {
            return;
        };
        let distance = |p: [f32; 3]| array_to_vec3(p).distance_to(array_to_vec3(avatar.position));
        let nearest = session
            .objects()
            .iter()
            .filter(|(_, o)| o.properties.get("pickupable") == Some(&serde_json::Value::Bool(true)))
            .filter_map(|(&id, _)| {
                session
                    .remote_object(id)
                    .map(|p| (id, distance(p.position)))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        // The server judges the reach; the nearest is the best candidate.
        if let Some((target, _)) = nearest {
            self.request(InteractionRequest {
                request_id: 0,
                kind: InteractionKind::Pickup,
                target: Some(target),
                build: None,
                args: Default::default(),
            });
        }
    }

    /// Reports a failure: the `error` signal and a warning in the log (a network failure is not
    /// a bug of the game, but nobody may be listening to the signal).
    fn report_error(&mut self, code: &str, message: &str) {
        godot_warn!("NexusClient: {code}: {message}");
        self.emit("error", &[code.to_variant(), message.to_variant()]);
    }

    /// Reports a failure and closes the connection.
    fn fail(&mut self, code: &str, message: &str) {
        self.report_error(code, message);
        self.close_reason = Some(format!("{code}: {message}"));
        self.begin_disconnect();
    }

    fn begin_disconnect(&mut self) {
        if let Some(session) = &mut self.session {
            session.leave();
        }
        self.flush();
        if let Some(link) = &self.link {
            link.close();
        }
        self.state = LinkState::Disconnecting;
    }

    /// The connection is over for good: report, release everything.
    fn finish(&mut self, reason: String, error: Option<ClientError>) {
        let asked = self.close_reason.is_some();
        if let Some(error) = error.filter(|_| !asked) {
            self.report_error(error.code, &error.message);
        }
        let reason = self.close_reason.take().unwrap_or(reason);
        self.reset(true);
        self.emit("disconnected", &[reason.to_variant()]);
    }

    /// Joins the socket thread and frees the object nodes. `detach`: take the nodes out of the
    /// tree now (their names are free again for a new connection); not possible while this node
    /// itself leaves the tree.
    fn reset(&mut self, detach: bool) {
        if let Some(mut link) = self.link.take() {
            link.shut_down();
        }
        if let Some(session) = &mut self.session {
            session.on_closed("closed");
        }
        self.session = None;
        self.pending_config = None;
        self.connection = None;
        self.reconnect = None;
        self.state = LinkState::Disconnected;
        self.client_id = None;
        self.avatar_id = None;
        self.held = None;
        self.view_camera = None;
        for (_, entry) in std::mem::take(&mut self.objects) {
            self.free_node(entry.node, detach);
        }
    }

    fn free_node(&mut self, mut node: Gd<Node3D>, detach: bool) {
        if !node.is_instance_valid() {
            return; // a script freed it already
        }
        let own_id = self.base().instance_id();
        let ours = node
            .get_parent()
            .is_some_and(|parent| parent.instance_id() == own_id);
        if detach && ours {
            self.base_mut().remove_child(&node);
        }
        node.queue_free();
    }

    fn emit(&mut self, signal: &str, args: &[Variant]) {
        emit_deferred(&mut self.base_mut(), signal, args);
    }

    fn spawn(&mut self, id: ObjectId, kind: BodyKind) {
        if self.objects.contains_key(&id) {
            return;
        }
        let Some(session) = &self.session else {
            return;
        };
        let known = session.objects().get(&id);
        let shape = known.and_then(|k| k.shape.clone());
        let properties = known.map(|k| k.properties.clone()).unwrap_or_default();
        let own = Some(id) == self.avatar_id;
        let scene_node = self.object_scene.as_ref().and_then(|scene| {
            let node = scene.instantiate()?;
            match node.try_cast::<Node3D>() {
                Ok(node) => Some(node),
                Err(other) => {
                    godot_error!(
                        "NexusClient: the root of object_scene must be a Node3D; showing meshes instead"
                    );
                    other.free();
                    None
                }
            }
        });
        let (mut node, placeholder) = match scene_node {
            Some(node) => (node, false),
            None => {
                let color = meshes::object_color(kind, shape.as_ref(), own);
                let mesh = meshes::mesh_instance(shape.as_ref(), color);
                (mesh.upcast::<Node3D>(), shape.is_none())
            }
        };
        node.set_name(&format!("Object_{id}"));
        node.set_meta("object_id", &i64::from(id).to_variant());
        node.set_meta("kind", &kind_name(kind).to_variant());
        node.set_meta(
            "properties",
            &json_object_to_dictionary(&properties).to_variant(),
        );
        node.set_meta("shape", &to_variant(&shape));
        node.set_meta("own_avatar", &own.to_variant());
        node.set_visible(false);
        self.base_mut().add_child(&node);
        self.objects.insert(
            id,
            ObjectNode {
                node: node.clone(),
                shown: false,
                placeholder,
            },
        );
        self.emit(
            "object_spawned",
            &[i64::from(id).to_variant(), node.to_variant()],
        );
    }

    fn despawn(&mut self, id: ObjectId, reason: &str) {
        if let Some(entry) = self.objects.remove(&id) {
            self.free_node(entry.node, true);
        }
        if self.held == Some(id) {
            self.held = None;
        }
        self.emit(
            "object_removed",
            &[i64::from(id).to_variant(), reason.to_variant()],
        );
    }

    /// Sets every object node's transform from the session, and redraws placeholders whose shape
    /// has arrived since.
    fn update_nodes(&mut self) {
        let Some(session) = &self.session else {
            return;
        };
        let avatar = self.avatar_id;
        let mut released = Vec::new();
        for (&id, entry) in &mut self.objects {
            if !entry.node.is_instance_valid() {
                released.push(id); // freed by a script: stop driving it
                continue;
            }
            let pose = if Some(id) == avatar {
                session.avatar().map(|a| (a.position, a.rotation))
            } else {
                session.remote_object(id).map(|p| (p.position, p.rotation))
            };
            if let Some((position, rotation)) = pose {
                entry.node.set_position(array_to_vec3(position));
                entry.node.set_quaternion(unit_quaternion(rotation));
                if !entry.shown {
                    entry.node.set_visible(true);
                    entry.shown = true;
                }
            }
            if entry.placeholder
                && let Some(known) = session.objects().get(&id)
                && let Some(shape) = &known.shape
                && let Ok(mut mesh) = entry.node.clone().try_cast::<MeshInstance3D>()
            {
                let color = meshes::object_color(known.kind, Some(shape), Some(id) == avatar);
                meshes::set_shape(&mut mesh, Some(shape), color);
                mesh.set_meta("shape", &to_variant(shape));
                entry.placeholder = false;
            }
        }
        for id in released {
            self.objects.remove(&id);
        }
    }

    /// The avatar's controls this frame.
    fn controls(&mut self) -> Controls {
        let look = self.look_direction();
        if !self.input_enabled {
            return Controls {
                look,
                ..self.scripted
            };
        }
        let right = self.action_strength(self.action_right.clone())
            - self.action_strength(self.action_left.clone());
        let forward = self.action_strength(self.action_forward.clone())
            - self.action_strength(self.action_back.clone());
        let movement = Vector2::new(right, forward).limit_length(Some(1.0));
        Controls {
            movement: [movement.x, movement.y],
            look,
            jump: self.action_strength(self.action_jump.clone()) > 0.5,
            run: self.action_strength(self.action_run.clone()) > 0.5,
        }
    }

    /// An action's strength, 0 for an empty name; an action missing from the project's input
    /// map is reported once instead of every frame.
    fn action_strength(&mut self, action: GString) -> f32 {
        if !self.has_action(&action) {
            return 0.0;
        }
        Input::singleton().get_action_strength(&StringName::from(&action))
    }

    fn action_just_pressed(&mut self, action: GString) -> bool {
        self.has_action(&action)
            && Input::singleton().is_action_just_pressed(&StringName::from(&action))
    }

    fn has_action(&mut self, action: &GString) -> bool {
        if action.is_empty() {
            return false;
        }
        if InputMap::singleton().has_action(&StringName::from(action)) {
            return true;
        }
        if self.warned_actions.insert(action.to_string()) {
            godot_warn!("NexusClient: the input action {action:?} does not exist in this project");
        }
        false
    }

    /// The horizontal direction the avatar looks along (see the class notes).
    fn look_direction(&self) -> [f32; 3] {
        let camera = self.camera.clone().or_else(|| self.view_camera.clone());
        if let Some(camera) = camera.filter(|c| c.is_instance_valid() && c.is_inside_tree()) {
            let back = camera.get_global_transform().basis.col_c();
            let flat = Vector3::new(-back.x, 0.0, -back.z);
            if flat.length() > 1e-3 {
                let flat = flat.normalized();
                return [flat.x, 0.0, flat.z];
            }
        }
        let (sin, cos) = self.look_yaw.sin_cos();
        [-sin, 0.0, -cos]
    }

    /// The first `Camera3D` child, looked up once per connection (object nodes come later).
    fn find_camera(&self) -> Option<Gd<Camera3D>> {
        self.base()
            .get_children()
            .iter_shared()
            .find_map(|child| child.try_cast::<Camera3D>().ok())
    }
}

/// Whether a connection that ended this way may be made again: it broke or never opened (the
/// network), or the server closed it for a reason that does not mean "do not come back": it found
/// the connection dead (`idle_timeout`, `slow_consumer`: the session is kept for a resume), it is
/// shutting down (it may come back, without the session), or the join took too long. Everything
/// else the server closes on purpose (`invalid_token`, `session_resumed`, `rate_limited`,
/// `too_many_connections`, a kick, a leave...) is final.
fn may_reconnect(server_close: Option<&ServerClose>) -> bool {
    let Some(close) = server_close else {
        return true;
    };
    match close.reason.split(':').next().unwrap_or_default().trim() {
        "idle_timeout" | "slow_consumer" | "shutting_down" | "join_timeout" => true,
        // No reason: going away, internal error, service restart, try again later.
        "" => matches!(close.code, 1001 | 1011 | 1012 | 1013),
        _ => false,
    }
}

/// The wait before reconnection attempt `attempt` (from 1): `first` doubling per attempt up to
/// `longest`, scaled into its upper half by `unit` (0..1: the jitter).
fn backoff_delay(attempt: u32, first: f64, longest: f64, unit: f64) -> f64 {
    let doublings = attempt.saturating_sub(1).min(30) as i32;
    let delay = (first * 2f64.powi(doublings)).min(longest);
    delay * (0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// A random number in 0..1 for the backoff's jitter (without touching Godot's global generator,
/// which a game may seed for its own sequences).
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::hash::RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn kind_name(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Dynamic => "dynamic",
        BodyKind::Kinematic => "kinematic",
        BodyKind::Static => "static",
        BodyKind::Player => "player",
    }
}

/// A rotation Godot accepts (`set_quaternion` refuses non-unit quaternions).
fn unit_quaternion(q: [f32; 4]) -> Quaternion {
    let q = array_to_quat(q);
    let length = q.length();
    if length.is_finite() && length > 1e-6 {
        q / length
    } else {
        Quaternion::IDENTITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(code: u16, reason: &str) -> ServerClose {
        ServerClose {
            code,
            reason: reason.into(),
        }
    }

    #[test]
    fn only_lost_connections_and_transient_closes_reconnect() {
        assert!(may_reconnect(None), "a broken network");
        for reason in [
            "idle_timeout: nothing received for 30 s",
            "slow_consumer: too slow",
            "shutting_down: the server is stopping",
        ] {
            assert!(may_reconnect(Some(&close(1008, reason))), "{reason}");
        }
        assert!(may_reconnect(Some(&close(1001, ""))));
        for reason in [
            "invalid_token: expired",
            "session_resumed: taken over by another connection",
            "rate_limited: flooding",
            "too_many_connections: full",
            "kicked: by the host",
            "left",
            "protocol_violation: bad utf-8",
        ] {
            assert!(!may_reconnect(Some(&close(1008, reason))), "{reason}");
        }
        assert!(!may_reconnect(Some(&close(1000, ""))), "a normal close");
    }

    #[test]
    fn the_backoff_doubles_up_to_the_longest_wait_with_jitter() {
        let waits: Vec<f64> = (1..=8).map(|a| backoff_delay(a, 0.1, 5.0, 1.0)).collect();
        assert_eq!(waits[..3], [0.1, 0.2, 0.4]);
        assert_eq!(waits[7], 5.0);
        assert_eq!(backoff_delay(3, 0.1, 5.0, 0.0), 0.2, "at least half");
        assert_eq!(backoff_delay(u32::MAX, 0.1, 5.0, 1.0), 5.0);
        let unit = random_unit();
        assert!((0.0..1.0).contains(&unit));
    }
}
