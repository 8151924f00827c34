//! Builders of server events (kind `stream`), so every producer shapes payloads the same way.
//!
//! The state stream itself is built by [`crate::StateEncoder`]; [`world_state_full`] is the plain
//! full state in the design's shape (used by the welcome and as the "full JSON" reference).

use nexus_sim::error::InputRejection;
use nexus_sim::event::{InteractionResult, ParticleEmission, TerrainPatch, WorldEvent};
use nexus_sim::state::{
    ClientId, EnvironmentState, ObjectId, ObjectState, Tick, WeatherState, WorldState,
};
use serde_json::{Value, json};

use crate::client::interaction_kind_name;
use crate::envelope::{Envelope, Metadata};
use crate::error::ProtocolError;
use crate::limits::Limits;
use crate::names;
use crate::stream::Encoding;

/// Version of the protocol as a whole (the `v1` of the names and the binary format version).
pub const PROTOCOL_VERSION: u32 = 1;

/// Everything the welcome tells a client.
#[derive(Clone, Debug)]
pub struct Welcome<'a> {
    /// The client's id (unique per gateway run).
    pub client_id: ClientId,
    /// The object the client drives; `None` for spectators.
    pub avatar_id: Option<ObjectId>,
    /// Simulation ticks per second.
    pub tick_rate: u32,
    /// State messages per second the client will receive (at most `tick_rate`).
    pub state_rate: u32,
    /// Full world state, every object with its shape.
    pub world_state: &'a WorldState,
    /// The client's name (development mode: its token).
    pub name: &'a str,
    /// The client's role, e.g. `player` or `admin`.
    pub role: &'a str,
    /// Encoding of the state stream (negotiated by subprotocol).
    pub encoding: Encoding,
    /// Radius of the client's interest area, metres.
    pub interest_radius: f32,
    /// Limits that apply to the client.
    pub limits: &'a Limits,
    /// Server clock, Unix seconds.
    pub server_time: f64,
    /// What lets the client take this session back after a lost connection, when the server
    /// keeps sessions for a grace period.
    pub resume: Option<ResumeOffer<'a>>,
    /// True when this welcome resumes an earlier session (same client id and avatar).
    pub resumed: bool,
    /// True when the server takes WebRTC offers (PROTOCOL.md section 11).
    pub webrtc: bool,
}

/// The welcome's offer to resume the session after a lost connection.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResumeOffer<'a> {
    /// Send it back as `resume_token` in the next join.
    pub token: &'a str,
    /// How long after the connection is lost the session waits, seconds.
    pub grace_secs: f64,
}

fn envelope(campaign_id: &str, r#type: &str, payload: Value) -> Envelope {
    Envelope::new(r#type, payload, Metadata::server(campaign_id))
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    // Our contract types serialise to JSON without failure (string keys, no non-string map keys).
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `session:welcome:v1:stream`.
pub fn welcome(campaign_id: &str, welcome: &Welcome<'_>) -> Envelope {
    let mut envelope = welcome_shell(campaign_id, welcome);
    if let Some(payload) = envelope.payload.as_object_mut() {
        payload.insert("world_state".into(), to_value(welcome.world_state));
    }
    envelope
}

/// The welcome without its world state.
fn welcome_shell(campaign_id: &str, welcome: &Welcome<'_>) -> Envelope {
    let mut shell = envelope(
        campaign_id,
        names::SESSION_WELCOME,
        json!({
            "client_id": welcome.client_id,
            "avatar_id": welcome.avatar_id,
            "tick_rate": welcome.tick_rate,
            "state_rate": welcome.state_rate,
            "name": welcome.name,
            "role": welcome.role,
            "protocol_version": PROTOCOL_VERSION,
            "encoding": welcome.encoding.name(),
            "subprotocol": welcome.encoding.subprotocol(),
            "interest_radius": welcome.interest_radius,
            "limits": to_value(welcome.limits),
            "server_time": welcome.server_time,
            "resumed": welcome.resumed,
        }),
    );
    if let (Some(offer), Some(payload)) = (welcome.resume, shell.payload.as_object_mut()) {
        payload.insert("resume_token".into(), Value::String(offer.token.to_owned()));
        payload.insert("resume_grace_secs".into(), json!(offer.grace_secs));
    }
    if let (true, Some(payload)) = (welcome.webrtc, shell.payload.as_object_mut()) {
        payload.insert("webrtc".into(), Value::Bool(true));
    }
    shell
}

/// The text of [`welcome`] with `world_state_json` (the JSON of `welcome.world_state`, which a
/// server welcoming many clients with one state serialises once) in place of the state.
pub fn welcome_with_state_json(
    campaign_id: &str,
    welcome: &Welcome<'_>,
    world_state_json: &str,
) -> String {
    let mut envelope = crate::server::welcome_shell(campaign_id, welcome);
    if let Some(payload) = envelope.payload.as_object_mut() {
        payload.insert("world_state".into(), Value::Null);
    }
    let text = envelope.to_json();
    // The placeholder cannot occur elsewhere: inside JSON strings its quotes would be escaped.
    text.replacen(
        "\"world_state\":null",
        &format!("\"world_state\":{world_state_json}"),
        1,
    )
}

/// `system:error:v1:stream` for a decoding or session error.
pub fn error_envelope(campaign_id: &str, error: &ProtocolError) -> Envelope {
    error_event(campaign_id, error.code, &error.message, None)
}

/// `system:error:v1:stream`; `request_type` names the event that caused it, when known.
pub fn error_event(
    campaign_id: &str,
    code: &str,
    message: &str,
    request_type: Option<&str>,
) -> Envelope {
    let mut payload = json!({ "code": code, "message": message });
    if let Some(request_type) = request_type {
        payload["request_type"] = Value::String(request_type.to_owned());
    }
    envelope(campaign_id, names::SYSTEM_ERROR, payload)
}

/// `physics:world_state:v1:stream` with the whole state (every object, every field): the design's
/// shape, plus `full: true`. The stream normally uses [`crate::StateEncoder`].
pub fn world_state_full(campaign_id: &str, state: &WorldState) -> Envelope {
    let mut payload = to_value(state);
    payload["full"] = Value::Bool(true);
    envelope(campaign_id, names::WORLD_STATE, payload)
}

/// `physics:object_added:v1:stream`: `{object}` (full state with shape).
pub fn object_added(campaign_id: &str, object: &ObjectState) -> Envelope {
    envelope(
        campaign_id,
        names::OBJECT_ADDED,
        json!({ "object": to_value(object) }),
    )
}

/// `physics:object_removed:v1:stream`: `{id, reason}`.
pub fn object_removed(campaign_id: &str, id: ObjectId, reason: &str) -> Envelope {
    envelope(
        campaign_id,
        names::OBJECT_REMOVED,
        json!({ "id": id, "reason": reason }),
    )
}

/// `physics:object_update:v1:stream`: `{object}` (the object's full current state).
pub fn object_update(campaign_id: &str, object: &ObjectState) -> Envelope {
    envelope(
        campaign_id,
        names::OBJECT_UPDATE,
        json!({ "object": to_value(object) }),
    )
}

/// `interaction:result:v1:stream`.
pub fn interaction_result(campaign_id: &str, result: &InteractionResult) -> Envelope {
    let mut payload = json!({
        "client_id": result.client_id,
        "request_id": result.request_id,
        "kind": interaction_kind_name(&result.kind),
        "success": result.success,
        "code": result.code,
        "message": result.message,
        "data": Value::Object(result.data.clone()),
    });
    if let Some(target) = result.target {
        payload["target"] = json!(target);
    }
    envelope(campaign_id, names::INTERACTION_RESULT, payload)
}

/// `environment:state:v1:stream` with the whole environment (`partial: false`).
pub fn environment_state(campaign_id: &str, environment: &EnvironmentState) -> Envelope {
    let mut payload = to_value(environment);
    payload["partial"] = Value::Bool(false);
    envelope(campaign_id, names::ENVIRONMENT_STATE, payload)
}

/// `environment:state:v1:stream` carrying only the clock (`partial: true`; merge the fields).
pub fn environment_clock(campaign_id: &str, time_of_day: f32, day_length: f32) -> Envelope {
    envelope(
        campaign_id,
        names::ENVIRONMENT_STATE,
        json!({ "time_of_day": time_of_day, "day_length": day_length, "partial": true }),
    )
}

/// `environment:weather:v1:stream`: `{weather}`.
pub fn environment_weather(campaign_id: &str, weather: &WeatherState) -> Envelope {
    envelope(
        campaign_id,
        names::ENVIRONMENT_WEATHER,
        json!({ "weather": to_value(weather) }),
    )
}

/// `environment:terrain:v1:stream`: a patch of heightfield samples.
pub fn environment_terrain(campaign_id: &str, patch: &TerrainPatch) -> Envelope {
    envelope(campaign_id, names::ENVIRONMENT_TERRAIN, to_value(patch))
}

/// `environment:object_added:v1:stream`: `{object}` (full state with shape).
pub fn environment_object_added(campaign_id: &str, object: &ObjectState) -> Envelope {
    envelope(
        campaign_id,
        names::ENVIRONMENT_OBJECT_ADDED,
        json!({ "object": to_value(object) }),
    )
}

/// `physics:particles:v1:stream`: an emission the client reproduces from its seed.
pub fn particles(campaign_id: &str, emission: &ParticleEmission) -> Envelope {
    envelope(campaign_id, names::PARTICLES, to_value(emission))
}

/// The wire event for a world event (every variant maps to exactly one event).
pub fn world_event(campaign_id: &str, event: &WorldEvent) -> Envelope {
    match event {
        WorldEvent::ObjectAdded {
            object,
            environment: true,
        } => environment_object_added(campaign_id, object),
        WorldEvent::ObjectAdded { object, .. } => object_added(campaign_id, object),
        WorldEvent::ObjectRemoved { id, reason } => object_removed(campaign_id, *id, reason),
        WorldEvent::InteractionResult(result) => interaction_result(campaign_id, result),
        WorldEvent::WeatherChanged { weather } => environment_weather(campaign_id, weather),
        WorldEvent::TimeOfDayChanged {
            time_of_day,
            day_length,
        } => environment_clock(campaign_id, *time_of_day, *day_length),
        WorldEvent::TerrainEdited(patch) => environment_terrain(campaign_id, patch),
        WorldEvent::ParticlesEmitted(emission) => particles(campaign_id, emission),
    }
}

/// `session:ack:v1:stream`: the newest input the simulation processed for this client, and the
/// inputs it refused.
pub fn input_ack(
    campaign_id: &str,
    last_input_seq: Option<u32>,
    tick: Tick,
    rejected: &[InputRejection],
) -> Envelope {
    envelope(
        campaign_id,
        names::SESSION_ACK,
        json!({
            "last_input_seq": last_input_seq,
            "tick": tick,
            "rejected": to_value(&rejected),
        }),
    )
}

/// `session:pong:v1:stream`: echoes the ping's `nonce` and `client_time`.
pub fn pong(
    campaign_id: &str,
    nonce: Option<u64>,
    client_time: Option<f64>,
    server_time: f64,
    tick: Tick,
) -> Envelope {
    envelope(
        campaign_id,
        names::SESSION_PONG,
        json!({
            "nonce": nonce,
            "client_time": client_time,
            "server_time": server_time,
            "tick": tick,
        }),
    )
}

/// `session:webrtc_answer:v1:stream`: the SDP answer to a client's WebRTC offer.
pub fn webrtc_answer(campaign_id: &str, sdp: &str) -> Envelope {
    envelope(
        campaign_id,
        names::SESSION_WEBRTC_ANSWER,
        json!({ "sdp": sdp }),
    )
}

/// `session:webrtc_state:v1:stream`: states now come on the data channel (`open`), or are back
/// on the WebSocket (`closed`, with the reason).
pub fn webrtc_state(campaign_id: &str, open: bool, reason: Option<&str>) -> Envelope {
    let mut payload = json!({ "state": if open { "open" } else { "closed" } });
    if let (Some(reason), Some(map)) = (reason, payload.as_object_mut()) {
        map.insert("reason".into(), Value::String(reason.to_owned()));
    }
    envelope(campaign_id, names::SESSION_WEBRTC_STATE, payload)
}

/// `system:custom:v1:stream`: a host-defined event `{name, data}`.
pub fn custom(campaign_id: &str, name: &str, data: Value) -> Envelope {
    envelope(
        campaign_id,
        names::SYSTEM_CUSTOM,
        json!({ "name": name, "data": data }),
    )
}
