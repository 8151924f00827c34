//! Decoding what clients send: JSON text frames (every event) and compact binary frames (inputs and
//! acks only), validated for shape into a typed [`ClientMessage`].
//!
//! Validation here is about *shape*: types, ranges, finiteness, lengths. Whether an object is in
//! reach or a client may edit the environment is for the simulation and the gateway to judge.

use nexus_sim::command::{EnvironmentCommand, InteractionKind, InteractionRequest, PlayerInput};
use nexus_sim::state::{ObjectDesc, ObjectId, Properties, Tick};
use serde_json::{Map, Value};

use crate::envelope::Metadata;
use crate::error::{ProtocolError, codes};
use crate::limits::Limits;
use crate::names;

/// A decoded client frame: its metadata and its typed message.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientFrame {
    /// The event type it arrived as (one of [`names::CLIENT_TYPES`]).
    pub r#type: &'static str,
    /// The envelope's metadata (default for binary frames).
    pub metadata: Metadata,
    /// What the client asks for.
    pub message: ClientMessage,
}

/// Everything a client may ask, after validation.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    /// `session:join:v1:requested`.
    Join(JoinRequest),
    /// `session:leave:v1:requested`.
    Leave {
        /// Optional free text for logs.
        reason: Option<String>,
    },
    /// `physics:client_input:v1:requested` (a batch) or `physics:movement:v1:requested` (one input).
    Inputs {
        /// Inputs in the order sent; may be empty when the message only carries an ack.
        inputs: Vec<PlayerInput>,
        /// The newest state tick the client has applied (see [`ClientMessage::Ack`]).
        ack: Option<Tick>,
    },
    /// `physics:action:v1:requested`.
    Action(ActionRequest),
    /// `physics:object_update:v1:requested`.
    ObjectUpdate(ObjectUpdateRequest),
    /// `interaction:request:v1:requested` and the `interaction:<kind>:v1:requested` shorthands.
    Interaction(InteractionRequest),
    /// `environment:state:v1:requested`.
    EnvironmentStateRequest,
    /// `environment:edit:v1:requested` (admin role).
    EnvironmentEdit(EnvironmentCommand),
    /// `session:ack:v1:requested`: the newest state-stream tick applied (the next delta baseline),
    /// and/or a request to restart the stream from a full state.
    Ack {
        /// Tick of the newest state message the client has applied.
        tick: Option<Tick>,
        /// The client lost its baselines: forget them and send a full state next.
        resync: bool,
    },
    /// `session:webrtc_offer:v1:requested`: the SDP offer of a WebRTC peer connection.
    WebRtcOffer {
        /// The offer's SDP text.
        sdp: String,
    },
    /// `session:webrtc_candidate:v1:requested`: one ICE candidate (empty: end of candidates).
    WebRtcCandidate {
        /// The `candidate:…` attribute.
        candidate: String,
    },
    /// `session:ping:v1:requested`.
    Ping {
        /// Echoed in the pong.
        nonce: Option<u64>,
        /// Client clock (seconds), echoed in the pong for round-trip measurement.
        client_time: Option<f64>,
    },
}

/// A request to join a campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinRequest {
    /// Non-empty. In development mode the client's name; otherwise a signed token.
    pub token: String,
    /// Preferred display name (development mode uses the token when absent).
    pub name: Option<String>,
    /// Requested interest radius in metres; the server may clamp it.
    pub interest_radius: Option<f32>,
    /// The `resume_token` of an earlier welcome: take that session back (same client id and
    /// avatar) if it is still within its grace period; otherwise this is an ordinary join.
    pub resume_token: Option<String>,
}

/// Longest resume token accepted (the server's are 32 characters).
pub const MAX_RESUME_TOKEN_BYTES: usize = 128;
/// Longest SDP offer accepted (`session:webrtc_offer`); browsers' offers are 1-3 KB.
pub const MAX_WEBRTC_SDP_BYTES: usize = 16 * 1024;
/// Longest ICE candidate accepted (`session:webrtc_candidate`).
pub const MAX_WEBRTC_CANDIDATE_BYTES: usize = 1024;

/// A named gameplay action for the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRequest {
    /// Action name, non-empty.
    pub action: String,
    /// The object acted on, if any.
    pub target: Option<ObjectId>,
    /// Free-form arguments.
    pub args: Map<String, Value>,
}

/// A request to change an object. Absent fields are left unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectUpdateRequest {
    /// The object.
    pub id: ObjectId,
    /// New position, metres.
    pub position: Option<[f32; 3]>,
    /// New rotation, unit quaternion `[x, y, z, w]` (normalised by the decoder).
    pub rotation: Option<[f32; 4]>,
    /// New linear velocity, m/s.
    pub velocity: Option<[f32; 3]>,
    /// New angular velocity, rad/s.
    pub angular_velocity: Option<[f32; 3]>,
    /// Properties to merge into the object's.
    pub properties: Option<Properties>,
}

/// Decodes a JSON text frame with the default [`Limits`].
pub fn decode_client_text(text: &str) -> Result<ClientFrame, ProtocolError> {
    decode_client_text_with(text, &Limits::default())
}

/// Decodes a JSON text frame.
pub fn decode_client_text_with(text: &str, limits: &Limits) -> Result<ClientFrame, ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(codes::MALFORMED_JSON, format!("not valid JSON: {e}")))?;
    let Value::Object(mut envelope) = value else {
        return Err(ProtocolError::new(
            codes::MALFORMED_JSON,
            "the frame must be a JSON object (an envelope)",
        ));
    };
    let type_name = match envelope.get("type") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ProtocolError::new(
                codes::MALFORMED_ENVELOPE,
                "type: expected a string",
            ));
        }
        None => {
            return Err(ProtocolError::new(
                codes::MALFORMED_ENVELOPE,
                "type: missing (every envelope needs \"type\", \"payload\", \"metadata\")",
            ));
        }
    };
    let metadata = decode_metadata(envelope.remove("metadata"))?;
    let r#type = client_type(&type_name)?;
    let mut payload = match envelope.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ProtocolError::invalid("payload", "expected an object")),
    };
    check_numbers_fit_f32(&payload, "payload")?;
    let message = decode_payload(r#type, &mut payload, &metadata, limits)?;
    Ok(ClientFrame {
        r#type,
        metadata,
        message,
    })
}

/// Resolves a type name to its static client type, or explains why it is not one.
fn client_type(name: &str) -> Result<&'static str, ProtocolError> {
    if let Some(known) = names::CLIENT_TYPES.iter().find(|t| **t == name) {
        return Ok(known);
    }
    let shown = truncate(name, 100);
    if names::SERVER_TYPES.contains(&name) {
        return Err(ProtocolError::new(
            codes::WRONG_DIRECTION,
            format!("{shown} is a server event (kind `stream`); clients send kind `requested`"),
        ));
    }
    Err(ProtocolError::new(
        codes::UNKNOWN_TYPE,
        format!("unknown event type {shown:?}"),
    ))
}

fn decode_metadata(value: Option<Value>) -> Result<Metadata, ProtocolError> {
    let mut map = match value {
        None | Some(Value::Null) => return Ok(Metadata::default()),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ProtocolError::new(
                codes::MALFORMED_ENVELOPE,
                "metadata: expected an object",
            ));
        }
    };
    // Campaign ids are strings; an integer is accepted too (engines often store ids as numbers).
    let campaign_id = match map.remove("campaign_id") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => {
            return Err(ProtocolError::new(
                codes::MALFORMED_ENVELOPE,
                "metadata.campaign_id: expected a string",
            ));
        }
    };
    let mut optional_string = |key: &str| match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProtocolError::new(
            codes::MALFORMED_ENVELOPE,
            format!("metadata.{key}: expected a string"),
        )),
    };
    let entity_type = optional_string("entity_type")?;
    let client_type = optional_string("client_type")?;
    Ok(Metadata {
        campaign_id,
        entity_type,
        client_type,
        extra: map,
    })
}

fn decode_payload(
    r#type: &'static str,
    payload: &mut Map<String, Value>,
    metadata: &Metadata,
    limits: &Limits,
) -> Result<ClientMessage, ProtocolError> {
    let p = Fields {
        map: payload,
        path: "payload",
    };
    Ok(match r#type {
        names::SESSION_JOIN => {
            if metadata.campaign_id.is_empty() {
                return Err(ProtocolError::invalid(
                    "metadata.campaign_id",
                    "required to join (the campaign to join)",
                ));
            }
            let token = p.string("token", limits.max_token_bytes)?;
            if token.is_empty() {
                return Err(ProtocolError::invalid("payload.token", "must not be empty"));
            }
            let interest_radius = p.opt_f32("interest_radius")?;
            if interest_radius.is_some_and(|r| r <= 0.0) {
                return Err(ProtocolError::invalid(
                    "payload.interest_radius",
                    "must be positive (metres)",
                ));
            }
            ClientMessage::Join(JoinRequest {
                token,
                name: p.opt_string("name", limits.max_name_bytes)?,
                interest_radius,
                resume_token: p.opt_string("resume_token", MAX_RESUME_TOKEN_BYTES)?,
            })
        }
        names::SESSION_LEAVE => ClientMessage::Leave {
            reason: p.opt_string("reason", limits.max_name_bytes * 4)?,
        },
        names::SESSION_ACK_REQUEST => {
            let tick = p.opt_u64("tick")?;
            let resync = p.opt_bool("resync")?.unwrap_or(false);
            if tick.is_none() && !resync {
                return Err(ProtocolError::invalid(
                    "payload.tick",
                    "missing (an ack needs `tick`, or `resync: true`)",
                ));
            }
            ClientMessage::Ack { tick, resync }
        }
        names::SESSION_WEBRTC_OFFER => {
            let sdp = p.string("sdp", MAX_WEBRTC_SDP_BYTES)?;
            if sdp.is_empty() {
                return Err(ProtocolError::invalid("payload.sdp", "must not be empty"));
            }
            ClientMessage::WebRtcOffer { sdp }
        }
        names::SESSION_WEBRTC_CANDIDATE => ClientMessage::WebRtcCandidate {
            candidate: p.string("candidate", MAX_WEBRTC_CANDIDATE_BYTES)?,
        },
        names::SESSION_PING => ClientMessage::Ping {
            nonce: p.opt_u64("nonce")?,
            client_time: p.opt_f64("client_time")?,
        },
        names::CLIENT_INPUT => {
            let ack = p.opt_u64("ack")?;
            let inputs = match p.map.get("inputs") {
                None | Some(Value::Null) if ack.is_some() => Vec::new(),
                None | Some(Value::Null) => {
                    return Err(ProtocolError::invalid(
                        "payload.inputs",
                        "missing (an array of inputs)",
                    ));
                }
                Some(Value::Array(items)) => {
                    if items.len() > limits.max_inputs_per_message {
                        return Err(ProtocolError::new(
                            codes::LIMIT_EXCEEDED,
                            format!(
                                "payload.inputs: {} inputs, at most {} per message",
                                items.len(),
                                limits.max_inputs_per_message
                            ),
                        ));
                    }
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| decode_input(item, &format!("payload.inputs[{i}]")))
                        .collect::<Result<Vec<_>, _>>()?
                }
                Some(_) => {
                    return Err(ProtocolError::invalid(
                        "payload.inputs",
                        "expected an array",
                    ));
                }
            };
            ClientMessage::Inputs { inputs, ack }
        }
        names::MOVEMENT => {
            let ack = p.opt_u64("ack")?;
            let input = decode_input_fields(&p)?;
            ClientMessage::Inputs {
                inputs: vec![input],
                ack,
            }
        }
        names::ACTION => {
            let action = p.string("action", limits.max_name_bytes)?;
            if action.is_empty() {
                return Err(ProtocolError::invalid(
                    "payload.action",
                    "must not be empty",
                ));
            }
            ClientMessage::Action(ActionRequest {
                action,
                target: p.opt_u32("target")?,
                args: p
                    .opt_object("args", limits.max_properties_bytes)?
                    .unwrap_or_default(),
            })
        }
        names::OBJECT_UPDATE_REQUEST => {
            let request = ObjectUpdateRequest {
                id: p.u32("id")?,
                position: p.opt_f32_array::<3>("position")?,
                rotation: p.opt_rotation("rotation")?,
                velocity: p.opt_f32_array::<3>("velocity")?,
                angular_velocity: p.opt_f32_array::<3>("angular_velocity")?,
                properties: p.opt_object("properties", limits.max_properties_bytes)?,
            };
            let nothing = request.position.is_none()
                && request.rotation.is_none()
                && request.velocity.is_none()
                && request.angular_velocity.is_none()
                && request.properties.is_none();
            if nothing {
                return Err(ProtocolError::invalid(
                    "payload",
                    "nothing to update (give position, rotation, velocity, angular_velocity or properties)",
                ));
            }
            ClientMessage::ObjectUpdate(request)
        }
        names::ENVIRONMENT_STATE_REQUEST => ClientMessage::EnvironmentStateRequest,
        names::ENVIRONMENT_EDIT => {
            let command: EnvironmentCommand =
                serde_json::from_value(Value::Object(std::mem::take(p.map)))
                    .map_err(|e| ProtocolError::invalid("payload", e))?;
            ClientMessage::EnvironmentEdit(command)
        }
        names::INTERACTION_REQUEST => {
            let kind_name = p.string("kind", limits.max_name_bytes)?;
            ClientMessage::Interaction(decode_interaction(
                &p,
                interaction_kind(&kind_name)?,
                limits,
            )?)
        }
        shorthand => {
            let kind = match shorthand {
                names::INTERACTION_PICKUP => InteractionKind::Pickup,
                names::INTERACTION_DROP => InteractionKind::Drop,
                names::INTERACTION_USE => InteractionKind::Use,
                names::INTERACTION_BUILD => InteractionKind::Build,
                names::INTERACTION_DESTROY => InteractionKind::Destroy,
                other => {
                    // Unreachable through `client_type`, but a clear error beats a panic.
                    return Err(ProtocolError::new(
                        codes::UNKNOWN_TYPE,
                        format!("unknown event type {other:?}"),
                    ));
                }
            };
            if let Some(given) = p.opt_string("kind", limits.max_name_bytes)?
                && interaction_kind(&given)? != kind
            {
                return Err(ProtocolError::invalid(
                    "payload.kind",
                    format!(
                        "{given:?} contradicts the event type (kind {:?})",
                        interaction_kind_name(&kind)
                    ),
                ));
            }
            ClientMessage::Interaction(decode_interaction(&p, kind, limits)?)
        }
    })
}

fn decode_interaction(
    p: &Fields<'_>,
    kind: InteractionKind,
    limits: &Limits,
) -> Result<InteractionRequest, ProtocolError> {
    let build = match p.map.get("build") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            serde_json::from_value::<ObjectDesc>(value.clone())
                .map_err(|e| ProtocolError::invalid("payload.build", e))?,
        ),
    };
    if kind == InteractionKind::Build && build.is_none() {
        return Err(ProtocolError::invalid(
            "payload.build",
            "required for a build (an object description)",
        ));
    }
    Ok(InteractionRequest {
        request_id: p.opt_u32("request_id")?.unwrap_or(0),
        kind,
        target: p.opt_u32("target")?,
        build,
        args: p
            .opt_object("args", limits.max_properties_bytes)?
            .unwrap_or_default(),
    })
}

/// The wire name of an interaction kind: `pickup`, `drop`, `use`, `build`, `destroy` or the custom
/// name.
pub fn interaction_kind_name(kind: &InteractionKind) -> &str {
    match kind {
        InteractionKind::Pickup => "pickup",
        InteractionKind::Drop => "drop",
        InteractionKind::Use => "use",
        InteractionKind::Build => "build",
        InteractionKind::Destroy => "destroy",
        InteractionKind::Custom(name) => name,
    }
}

/// Parses a wire interaction kind: the five built-in names, or a custom name made of lowercase
/// ASCII letters, digits and `_`.
pub fn interaction_kind(name: &str) -> Result<InteractionKind, ProtocolError> {
    Ok(match name {
        "pickup" => InteractionKind::Pickup,
        "drop" => InteractionKind::Drop,
        "use" => InteractionKind::Use,
        "build" => InteractionKind::Build,
        "destroy" => InteractionKind::Destroy,
        "" => return Err(ProtocolError::invalid("payload.kind", "must not be empty")),
        custom
            if custom
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
        {
            InteractionKind::Custom(custom.to_owned())
        }
        other => {
            return Err(ProtocolError::invalid(
                "payload.kind",
                format!(
                    "{:?}: use lowercase letters, digits and _",
                    truncate(other, 64)
                ),
            ));
        }
    })
}

fn decode_input(value: &Value, path: &str) -> Result<PlayerInput, ProtocolError> {
    match value {
        Value::Object(map) => {
            // `Fields` wants `&mut`; inputs are small, so a clone keeps the borrow simple.
            let mut map = map.clone();
            decode_input_fields(&Fields {
                map: &mut map,
                path,
            })
        }
        _ => Err(ProtocolError::invalid(
            path,
            "expected an object (an input)",
        )),
    }
}

fn decode_input_fields(p: &Fields<'_>) -> Result<PlayerInput, ProtocolError> {
    let movement = p.opt_f32_array::<2>("movement")?.unwrap_or([0.0, 0.0]);
    for (i, m) in movement.iter().enumerate() {
        if !(-1.0..=1.0).contains(m) {
            return Err(ProtocolError::invalid(
                &format!("{}.movement[{i}]", p.path),
                format!("{m} is outside -1..=1"),
            ));
        }
    }
    Ok(PlayerInput {
        seq: p.u32("seq")?,
        tick: p.opt_u64("tick")?,
        movement,
        look: p.opt_f32_array::<3>("look")?.unwrap_or([0.0; 3]),
        jump: p.opt_bool("jump")?.unwrap_or(false),
        run: p.opt_bool("run")?.unwrap_or(false),
    })
}

/// JSON numbers beyond ±f32::MAX would become infinities in the simulation's `f32` fields: refuse
/// them up front, with the path of the offending number.
fn check_numbers_fit_f32(map: &Map<String, Value>, path: &str) -> Result<(), ProtocolError> {
    fn walk(value: &Value, path: &mut String) -> Result<(), ProtocolError> {
        match value {
            Value::Number(n) => match n.as_f64() {
                Some(x) if x.is_finite() && x.abs() <= f32::MAX as f64 => Ok(()),
                _ => Err(ProtocolError::invalid(
                    path,
                    format!("{n} is not a finite 32-bit number"),
                )),
            },
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(key);
                    walk(item, path)?;
                    path.truncate(len);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    let mut path = path.to_owned();
    for (key, value) in map {
        let len = path.len();
        path.push('.');
        path.push_str(key);
        walk(value, &mut path)?;
        path.truncate(len);
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Typed access to the fields of one JSON object, producing errors that name the field path.
struct Fields<'a> {
    map: &'a mut Map<String, Value>,
    path: &'a str,
}

impl Fields<'_> {
    fn field_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&Value, ProtocolError> {
        self.get(key)
            .ok_or_else(|| ProtocolError::invalid(&self.field_path(key), "missing"))
    }

    fn u64_of(&self, key: &str, value: &Value) -> Result<u64, ProtocolError> {
        value.as_u64().ok_or_else(|| {
            ProtocolError::invalid(&self.field_path(key), "expected a non-negative integer")
        })
    }

    fn u32(&self, key: &str) -> Result<u32, ProtocolError> {
        let value = self.required(key)?;
        let n = self.u64_of(key, value)?;
        u32::try_from(n).map_err(|_| {
            ProtocolError::invalid(&self.field_path(key), format!("{n} exceeds {}", u32::MAX))
        })
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, ProtocolError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.u32(key).map(Some),
        }
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>, ProtocolError> {
        self.get(key).map(|v| self.u64_of(key, v)).transpose()
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, ProtocolError> {
        self.get(key)
            .map(|v| {
                v.as_f64().ok_or_else(|| {
                    ProtocolError::invalid(&self.field_path(key), "expected a number")
                })
            })
            .transpose()
    }

    fn opt_f32(&self, key: &str) -> Result<Option<f32>, ProtocolError> {
        // Range was checked by `check_numbers_fit_f32`, so the cast stays finite.
        Ok(self.opt_f64(key)?.map(|x| x as f32))
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, ProtocolError> {
        self.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    ProtocolError::invalid(&self.field_path(key), "expected true or false")
                })
            })
            .transpose()
    }

    fn string(&self, key: &str, max_bytes: usize) -> Result<String, ProtocolError> {
        match self.required(key)? {
            Value::String(s) if s.len() > max_bytes => Err(ProtocolError::new(
                codes::LIMIT_EXCEEDED,
                format!(
                    "{}: {} bytes, at most {max_bytes}",
                    self.field_path(key),
                    s.len()
                ),
            )),
            Value::String(s) => Ok(s.clone()),
            _ => Err(ProtocolError::invalid(
                &self.field_path(key),
                "expected a string",
            )),
        }
    }

    fn opt_string(&self, key: &str, max_bytes: usize) -> Result<Option<String>, ProtocolError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.string(key, max_bytes).map(Some),
        }
    }

    fn opt_object(
        &self,
        key: &str,
        max_bytes: usize,
    ) -> Result<Option<Map<String, Value>>, ProtocolError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => {
                let size = serde_json::to_string(map)
                    .map(|s| s.len())
                    .unwrap_or(usize::MAX);
                if size > max_bytes {
                    return Err(ProtocolError::new(
                        codes::LIMIT_EXCEEDED,
                        format!(
                            "{}: {size} bytes of JSON, at most {max_bytes}",
                            self.field_path(key)
                        ),
                    ));
                }
                Ok(Some(map.clone()))
            }
            Some(_) => Err(ProtocolError::invalid(
                &self.field_path(key),
                "expected an object",
            )),
        }
    }

    fn opt_f32_array<const N: usize>(&self, key: &str) -> Result<Option<[f32; N]>, ProtocolError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let path = self.field_path(key);
        let Value::Array(items) = value else {
            return Err(ProtocolError::invalid(
                &path,
                format!("expected an array of {N} numbers"),
            ));
        };
        if items.len() != N {
            return Err(ProtocolError::invalid(
                &path,
                format!("expected {N} numbers, got {}", items.len()),
            ));
        }
        let mut out = [0.0f32; N];
        for (i, item) in items.iter().enumerate() {
            out[i] = item.as_f64().ok_or_else(|| {
                ProtocolError::invalid(&format!("{path}[{i}]"), "expected a number")
            })? as f32;
        }
        Ok(Some(out))
    }

    fn opt_rotation(&self, key: &str) -> Result<Option<[f32; 4]>, ProtocolError> {
        let Some(q) = self.opt_f32_array::<4>(key)? else {
            return Ok(None);
        };
        let norm = q.iter().map(|c| c * c).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 1e-6) {
            return Err(ProtocolError::invalid(
                &self.field_path(key),
                "not a rotation (quaternion of zero length)",
            ));
        }
        Ok(Some(q.map(|c| c / norm)))
    }
}
