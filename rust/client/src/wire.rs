//! The client's side of the protocol: what the server's frames mean, and the frames the client
//! sends. Names, envelopes and the binary formats come from `nexus_protocol`.

use nexus_protocol::{
    ClientMessage, Envelope, JsonStateMessage, Metadata, StateDecoder, decode_client_binary,
    encode_client_ack, encode_client_inputs, interaction_kind, interaction_kind_name, names,
};
use nexus_sim::movement::MovementSettings;
use nexus_sim::state::{BodyKind, ClientId, ObjectId, ObjectState, Properties, Tick, WorldState};
use nexus_sim::{InputRejection, InteractionRequest, InteractionResult, PlayerInput, TerrainPatch};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ClientError;

/// One WebSocket data frame, either way.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A text frame (a JSON envelope).
    Text(String),
    /// A binary frame (binary state stream from the server; inputs and acks from the client).
    Binary(Vec<u8>),
}

impl Frame {
    /// Payload size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// State-stream encoding, re-exported from the protocol.
pub use nexus_protocol::Encoding;

/// What the welcome told the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Welcome {
    /// The client's id.
    pub client_id: ClientId,
    /// The object the client drives (`None` for spectators).
    pub avatar_id: Option<ObjectId>,
    /// Simulation ticks per second.
    pub tick_rate: u32,
    /// State messages per second.
    pub state_rate: u32,
    /// Full world state, with shapes.
    pub world_state: WorldState,
    /// Server clock when the welcome was built, Unix seconds.
    pub server_time: Option<f64>,
    /// The server's movement settings if it sent them; the defaults otherwise.
    pub movement: MovementSettings,
    /// Sent back in a later join to take this session back after a lost connection.
    pub resume_token: Option<String>,
    /// This welcome resumed an earlier session (same client id and avatar).
    pub resumed: bool,
    /// The server offers WebRTC data channels (section 11).
    pub webrtc: bool,
}

/// One object listed in a state message.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectUpdate {
    /// Object id.
    pub id: ObjectId,
    /// Body kind, when the message carries it.
    pub kind: Option<BodyKind>,
    /// Properties, when the message carries them.
    pub properties: Option<Properties>,
    /// Position, metres.
    pub position: [f32; 3],
    /// Unit quaternion `[x, y, z, w]`.
    pub rotation: [f32; 4],
    /// m/s.
    pub velocity: [f32; 3],
    /// rad/s.
    pub angular_velocity: [f32; 3],
    /// Whether the body sleeps.
    pub sleeping: bool,
}

/// A state message, whatever its encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct StateUpdate {
    /// Tick of the state.
    pub tick: Tick,
    /// Server clock when it was taken, Unix seconds.
    pub timestamp: f64,
    /// A full state: objects not listed are not in the client's view any more.
    pub full: bool,
    /// The newest input of this client the server applied.
    pub last_input_seq: Option<u32>,
    /// Listed objects (changed, new, or due).
    pub objects: Vec<ObjectUpdate>,
    /// Ids gone from the world.
    pub removed: Vec<ObjectId>,
    /// Ids that left the interest area.
    pub left: Vec<ObjectId>,
}

/// Everything a server frame can mean to the client.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerMessage {
    /// `session:welcome`.
    Welcome(Box<Welcome>),
    /// `physics:world_state` (JSON or binary).
    State(StateUpdate),
    /// `session:ack`: the newest input applied, and refused inputs.
    InputAck {
        /// Newest input applied.
        last_input_seq: Option<u32>,
        /// Refused inputs.
        rejected: Vec<InputRejection>,
    },
    /// `session:pong`.
    Pong {
        /// The ping's client time, echoed.
        client_time: Option<f64>,
        /// Server clock when answering, Unix seconds.
        server_time: f64,
    },
    /// `physics:object_added` or `environment:object_added` (full state with shape).
    ObjectAdded(Box<ObjectState>),
    /// `physics:object_removed`.
    ObjectRemoved {
        /// The object.
        id: ObjectId,
        /// Why.
        reason: String,
    },
    /// `physics:object_update` (an object's full state outside the stream).
    ObjectUpdated(Box<ObjectState>),
    /// `interaction:result`.
    InteractionResult(InteractionResult),
    /// `environment:terrain`.
    Terrain(TerrainPatch),
    /// `system:error`.
    Error {
        /// Stable code.
        code: String,
        /// Human message.
        message: String,
        /// The type of the request refused, when the server names it.
        request_type: Option<String>,
    },
    /// `session:webrtc_answer`: the answer to the client's offer.
    WebRtcAnswer {
        /// The answer's SDP text.
        sdp: String,
    },
    /// `session:webrtc_state`: where the state stream goes.
    WebRtcState {
        /// `open` (on the data channel from now on) or `closed` (back on the WebSocket).
        state: String,
        /// Why it closed (`timeout`, `channel_closed`, `unresponsive`, `replaced`, `failed`).
        reason: Option<String>,
    },
    /// Any other event (environment, particles, custom...), for the application.
    Other(Envelope),
}

#[derive(Deserialize)]
struct WelcomePayload {
    client_id: ClientId,
    #[serde(default)]
    avatar_id: Option<ObjectId>,
    tick_rate: u32,
    #[serde(default)]
    state_rate: Option<u32>,
    world_state: WorldState,
    #[serde(default)]
    server_time: Option<f64>,
    #[serde(default)]
    movement: Option<MovementSettings>,
    #[serde(default)]
    resume_token: Option<String>,
    #[serde(default)]
    resumed: bool,
    #[serde(default)]
    webrtc: bool,
}

#[derive(Deserialize)]
struct AckPayload {
    #[serde(default)]
    last_input_seq: Option<u32>,
    #[serde(default)]
    rejected: Vec<InputRejection>,
}

#[derive(Deserialize)]
struct PongPayload {
    #[serde(default)]
    client_time: Option<f64>,
    server_time: f64,
}

#[derive(Deserialize)]
struct ObjectPayload {
    object: ObjectState,
}

#[derive(Deserialize)]
struct RemovedPayload {
    id: ObjectId,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct ResultPayload {
    #[serde(default)]
    client_id: ClientId,
    #[serde(default)]
    request_id: u32,
    kind: String,
    success: bool,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    target: Option<ObjectId>,
    #[serde(default)]
    data: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct ErrorPayload {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_type: Option<String>,
}

#[derive(Deserialize)]
struct SdpPayload {
    sdp: String,
}

#[derive(Deserialize)]
struct WebRtcStatePayload {
    state: String,
    #[serde(default)]
    reason: Option<String>,
}

fn payload<T: for<'de> Deserialize<'de>>(envelope: &Envelope) -> Result<T, ClientError> {
    T::deserialize(&envelope.payload).map_err(|e| {
        ClientError::new(
            "malformed_message",
            format!("{}: payload: {e}", envelope.r#type),
        )
    })
}

/// Decodes a server frame. Binary frames need the stream's decoder (it holds the baselines).
pub fn decode_server_frame(
    frame: &Frame,
    decoder: &mut StateDecoder,
) -> Result<ServerMessage, ClientError> {
    match frame {
        Frame::Binary(bytes) => {
            // Only the listed objects: the session keeps its own copy of the rest.
            let decoded = decoder
                .decode_changes(bytes)
                .map_err(|e| ClientError::new("malformed_state", e.to_string()))?;
            let objects = decoded
                .objects
                .iter()
                .map(|o| {
                    // Kind and properties only when the record carried them: copying every
                    // object's properties on every message costs more than decoding it.
                    let meta = decoded.meta_updated.binary_search(&o.id).is_ok();
                    (o, meta)
                })
                .map(|(o, meta)| ObjectUpdate {
                    id: o.id,
                    kind: meta.then_some(o.kind),
                    properties: meta.then(|| (*o.properties).clone()),
                    position: o.position,
                    rotation: o.rotation,
                    velocity: o.velocity,
                    angular_velocity: o.angular_velocity,
                    sleeping: o.sleeping,
                })
                .collect();
            Ok(ServerMessage::State(StateUpdate {
                tick: decoded.tick,
                timestamp: decoded.timestamp,
                full: decoded.baseline.is_none(),
                last_input_seq: decoded.last_input_seq,
                objects,
                removed: decoded.removed,
                left: decoded.left,
            }))
        }
        Frame::Text(text) => {
            let envelope: Envelope = serde_json::from_str(text).map_err(|e| {
                ClientError::new("malformed_message", format!("not an envelope: {e}"))
            })?;
            decode_envelope(envelope)
        }
    }
}

fn decode_envelope(envelope: Envelope) -> Result<ServerMessage, ClientError> {
    Ok(match envelope.r#type.as_str() {
        names::WORLD_STATE => {
            let state: JsonStateMessage = payload(&envelope)?;
            ServerMessage::State(StateUpdate {
                tick: state.tick,
                timestamp: state.timestamp,
                full: state.full,
                last_input_seq: state.last_input_seq,
                objects: state
                    .objects
                    .into_iter()
                    .map(|o| ObjectUpdate {
                        id: o.id,
                        kind: o.kind,
                        properties: o.properties,
                        position: o.position,
                        rotation: o.rotation,
                        velocity: o.velocity,
                        angular_velocity: o.angular_velocity,
                        sleeping: o.sleeping,
                    })
                    .collect(),
                removed: state.removed,
                left: state.left,
            })
        }
        names::SESSION_WELCOME => {
            let p: WelcomePayload = payload(&envelope)?;
            ServerMessage::Welcome(Box::new(Welcome {
                client_id: p.client_id,
                avatar_id: p.avatar_id,
                tick_rate: p.tick_rate.max(1),
                state_rate: p.state_rate.unwrap_or(p.tick_rate).max(1),
                world_state: p.world_state,
                server_time: p.server_time,
                movement: p.movement.unwrap_or_default(),
                resume_token: p.resume_token,
                resumed: p.resumed,
                webrtc: p.webrtc,
            }))
        }
        names::SESSION_ACK => {
            let p: AckPayload = payload(&envelope)?;
            ServerMessage::InputAck {
                last_input_seq: p.last_input_seq,
                rejected: p.rejected,
            }
        }
        names::SESSION_PONG => {
            let p: PongPayload = payload(&envelope)?;
            ServerMessage::Pong {
                client_time: p.client_time,
                server_time: p.server_time,
            }
        }
        names::OBJECT_ADDED | names::ENVIRONMENT_OBJECT_ADDED => {
            let p: ObjectPayload = payload(&envelope)?;
            ServerMessage::ObjectAdded(Box::new(p.object))
        }
        names::OBJECT_UPDATE => {
            let p: ObjectPayload = payload(&envelope)?;
            ServerMessage::ObjectUpdated(Box::new(p.object))
        }
        names::OBJECT_REMOVED => {
            let p: RemovedPayload = payload(&envelope)?;
            ServerMessage::ObjectRemoved {
                id: p.id,
                reason: p.reason,
            }
        }
        names::INTERACTION_RESULT => {
            let p: ResultPayload = payload(&envelope)?;
            let kind = interaction_kind(&p.kind).map_err(|e| {
                ClientError::new("malformed_message", format!("interaction result: {e}"))
            })?;
            ServerMessage::InteractionResult(InteractionResult {
                client_id: p.client_id,
                request_id: p.request_id,
                kind,
                success: p.success,
                code: p.code,
                message: p.message,
                target: p.target,
                data: p.data,
            })
        }
        names::ENVIRONMENT_TERRAIN => ServerMessage::Terrain(payload(&envelope)?),
        names::SYSTEM_ERROR => {
            let p: ErrorPayload = payload(&envelope)?;
            ServerMessage::Error {
                code: p.code,
                message: p.message,
                request_type: p.request_type,
            }
        }
        names::SESSION_WEBRTC_ANSWER => {
            let p: SdpPayload = payload(&envelope)?;
            ServerMessage::WebRtcAnswer { sdp: p.sdp }
        }
        names::SESSION_WEBRTC_STATE => {
            let p: WebRtcStatePayload = payload(&envelope)?;
            ServerMessage::WebRtcState {
                state: p.state,
                reason: p.reason,
            }
        }
        _ => ServerMessage::Other(envelope),
    })
}

/// Builds the frames a client sends to one campaign.
#[derive(Clone, Debug)]
pub struct Outgoing {
    metadata: Metadata,
    /// Inputs and acks as binary frames (section 7): with the binary stream, or when asked.
    binary_frames: bool,
}

impl Outgoing {
    /// Frames for `campaign_id`, sent by a client of type `client_type` (e.g. `bot`, `godot`).
    pub fn new(campaign_id: &str, client_type: &str, encoding: Encoding) -> Self {
        Outgoing {
            metadata: Metadata {
                campaign_id: campaign_id.to_owned(),
                entity_type: Some("player".to_owned()),
                client_type: Some(client_type.to_owned()),
                extra: serde_json::Map::new(),
            },
            binary_frames: encoding == Encoding::Binary,
        }
    }

    /// Sends inputs and acks as binary frames whatever the stream's encoding (section 7 allows it
    /// on either subprotocol), e.g. so that inputs are quantised the same on every transport.
    pub fn with_binary_frames(mut self, binary: bool) -> Self {
        self.binary_frames |= binary;
        self
    }

    fn text(&self, r#type: &str, payload: Value) -> Frame {
        Frame::Text(Envelope::new(r#type, payload, self.metadata.clone()).to_json())
    }

    /// `session:join`.
    pub fn join(
        &self,
        token: &str,
        name: Option<&str>,
        interest_radius: Option<f32>,
        resume_token: Option<&str>,
    ) -> Frame {
        let mut payload = json!({ "token": token });
        if let Some(resume_token) = resume_token {
            payload["resume_token"] = json!(resume_token);
        }
        if let Some(name) = name {
            payload["name"] = json!(name);
        }
        if let Some(radius) = interest_radius {
            payload["interest_radius"] = json!(radius);
        }
        self.text(names::SESSION_JOIN, payload)
    }

    /// `session:leave`.
    pub fn leave(&self) -> Frame {
        self.text(names::SESSION_LEAVE, json!({}))
    }

    /// An input batch with the newest applied state tick (binary when the stream is binary).
    pub fn inputs(&self, inputs: &[PlayerInput], ack: Option<Tick>) -> Frame {
        if self.binary_frames {
            return Frame::Binary(encode_client_inputs(inputs, ack));
        }
        let mut payload = json!({ "inputs": inputs });
        if let Some(tick) = ack {
            payload["ack"] = json!(tick);
        }
        self.text(names::CLIENT_INPUT, payload)
    }

    /// The input exactly as the server will decode it: the binary format quantises movement
    /// (1/127) and look (1/32767 per component), and the prediction must move with what the
    /// server moves with, or it drifts. JSON carries `f32` values exactly.
    pub fn as_received(&self, input: &PlayerInput) -> PlayerInput {
        if !self.binary_frames {
            return input.clone();
        }
        // Through the protocol's own encoder and decoder: identical by construction.
        let bytes = encode_client_inputs(std::slice::from_ref(input), None);
        match decode_client_binary(&bytes).map(|frame| frame.message) {
            Ok(ClientMessage::Inputs { mut inputs, .. }) if inputs.len() == 1 => inputs.remove(0),
            _ => input.clone(),
        }
    }

    /// A state acknowledgement alone.
    pub fn ack(&self, tick: Tick) -> Frame {
        if self.binary_frames {
            Frame::Binary(encode_client_ack(tick))
        } else {
            self.text(names::SESSION_ACK_REQUEST, json!({ "tick": tick }))
        }
    }

    /// `session:webrtc_offer` with the offer's SDP text.
    pub fn webrtc_offer(&self, sdp: &str) -> Frame {
        self.text(names::SESSION_WEBRTC_OFFER, json!({ "sdp": sdp }))
    }

    /// `session:webrtc_candidate` (an empty `candidate` ends the client's candidates).
    pub fn webrtc_candidate(&self, candidate: &str) -> Frame {
        self.text(
            names::SESSION_WEBRTC_CANDIDATE,
            json!({ "candidate": candidate }),
        )
    }

    /// Asks the server to restart the stream from a full state (the client lost its baselines).
    pub fn resync(&self) -> Frame {
        self.text(names::SESSION_ACK_REQUEST, json!({ "resync": true }))
    }

    /// `session:ping` carrying the local clock.
    pub fn ping(&self, nonce: u64, client_time: f64) -> Frame {
        self.text(
            names::SESSION_PING,
            json!({ "nonce": nonce, "client_time": client_time }),
        )
    }

    /// `interaction:request`.
    pub fn interaction(&self, request: &InteractionRequest) -> Frame {
        let mut payload = json!({
            "request_id": request.request_id,
            "kind": interaction_kind_name(&request.kind),
            "args": request.args,
        });
        if let Some(target) = request.target {
            payload["target"] = json!(target);
        }
        if let Some(build) = &request.build {
            payload["build"] = serde_json::to_value(build).unwrap_or(Value::Null);
        }
        self.text(names::INTERACTION_REQUEST, payload)
    }

    /// `physics:action` (a named gameplay action for the host).
    pub fn action(&self, action: &str, target: Option<ObjectId>, args: Value) -> Frame {
        let mut payload = json!({ "action": action, "args": args });
        if let Some(target) = target {
            payload["target"] = json!(target);
        }
        self.text(names::ACTION, payload)
    }
}

#[cfg(test)]
mod tests {
    use nexus_protocol::decode_client_text;

    use super::*;

    fn input(seq: u32) -> PlayerInput {
        PlayerInput {
            seq,
            tick: Some(100 + u64::from(seq)),
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            jump: seq.is_multiple_of(2),
            run: false,
        }
    }

    #[test]
    fn input_frames_decode_on_the_server_side() {
        for encoding in [Encoding::Json, Encoding::Binary] {
            let out = Outgoing::new("c1", "bot", encoding);
            let frame = out.inputs(&[input(1), input(2)], Some(42));
            let decoded = match &frame {
                Frame::Text(text) => decode_client_text(text).unwrap(),
                Frame::Binary(bytes) => decode_client_binary(bytes).unwrap(),
            };
            let ClientMessage::Inputs { inputs, ack } = decoded.message else {
                panic!("not inputs: {decoded:?}");
            };
            assert_eq!(ack, Some(42));
            assert_eq!(inputs.len(), 2);
            assert_eq!(inputs[1].seq, 2);
            assert_eq!(inputs[1].tick, Some(102));
            assert!(inputs[1].jump);
        }
        let join = Outgoing::new("c1", "bot", Encoding::Json).join("alice", None, Some(50.0), None);
        let Frame::Text(text) = join else { panic!() };
        let decoded = decode_client_text(&text).unwrap();
        assert_eq!(decoded.metadata.campaign_id, "c1");
        assert!(matches!(decoded.message, ClientMessage::Join(_)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut decoder = StateDecoder::default();
        for frame in [
            Frame::Text("not json".into()),
            Frame::Text(
                r#"{"type":"session:welcome:v1:stream","payload":{"client_id":"x"}}"#.into(),
            ),
            Frame::Binary(vec![1, 1, 0, 0xff]),
            Frame::Binary(vec![]),
        ] {
            assert!(
                decode_server_frame(&frame, &mut decoder).is_err(),
                "{frame:?}"
            );
        }
        let unknown = Frame::Text(r#"{"type":"x:y:v1:stream","payload":{}}"#.into());
        assert!(matches!(
            decode_server_frame(&unknown, &mut decoder),
            Ok(ServerMessage::Other(_))
        ));
    }
}
