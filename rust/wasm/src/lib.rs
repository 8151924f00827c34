//! The Nexus Physics client in WebAssembly: the browser SDK (`web/client`) drives this.
//!
//! It is `nexus-client`'s I/O-free [`ClientSession`] as is — the server's own movement code for
//! prediction and reconciliation, the binary state-stream decoder with its delta baselines, the
//! remote objects' jitter buffers and the clock sync — so the browser runs the very code the
//! server and the Rust clients run: no second codec or solver in TypeScript.
//!
//! The JavaScript side owns the socket and the clock: it passes every received frame and the time
//! (`performance.now()` in seconds, any monotonic clock) in, and sends what
//! [`WasmSession::drain_outgoing`] gives back. Rarely used, structured results (events, timing,
//! statistics, object descriptions) cross as JSON text; the per-frame view (avatar, remote poses)
//! crosses as flat `Float64Array`s, which costs no allocation per object on the JS side.

use nexus_client::{ClientSession, Controls, Encoding, Frame, Phase, SessionConfig, SessionEvent};
use nexus_sim::InteractionRequest;
use nexus_sim::state::BodyKind;
use serde::Deserialize;
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

pub mod movement_trace;

/// Numbers per remote object in [`WasmSession::remote_objects`]:
/// `id, kind, px, py, pz, qx, qy, qz, qw`.
pub const REMOTE_STRIDE: usize = 9;

/// What the SDK may configure; every field but `campaign` and `token` has the Rust client's
/// default. Unknown fields are refused, so a misspelt option is an error, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmConfig {
    campaign: String,
    token: String,
    #[serde(default)]
    name: Option<String>,
    /// `binary` (default) or `json`: must match the subprotocol the socket negotiated.
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    client_type: Option<String>,
    #[serde(default)]
    interest_radius: Option<f32>,
    #[serde(default)]
    send_interval_ticks: Option<u32>,
    #[serde(default)]
    redundant_inputs: Option<usize>,
    #[serde(default)]
    predict: Option<bool>,
    #[serde(default)]
    max_extrapolation: Option<f64>,
}

fn session_config(json_text: &str) -> Result<SessionConfig, String> {
    let raw: WasmConfig =
        serde_json::from_str(json_text).map_err(|error| format!("invalid_config: {error}"))?;
    if raw.campaign.is_empty() {
        return Err("invalid_config: campaign must not be empty".into());
    }
    let mut config = SessionConfig::new(&raw.campaign, &raw.token);
    config.name = raw.name;
    config.encoding = match raw.encoding.as_deref() {
        None | Some("binary") => Encoding::Binary,
        Some("json") => Encoding::Json,
        Some(other) => {
            return Err(format!(
                "invalid_config: encoding {other:?} is neither \"binary\" nor \"json\""
            ));
        }
    };
    config.client_type = raw.client_type.unwrap_or_else(|| "web".into());
    config.interest_radius = raw.interest_radius;
    if let Some(ticks) = raw.send_interval_ticks {
        if ticks == 0 {
            return Err("invalid_config: send_interval_ticks must be at least 1".into());
        }
        config.send_interval_ticks = ticks;
    }
    if let Some(count) = raw.redundant_inputs {
        config.redundant_inputs = count;
    }
    if let Some(predict) = raw.predict {
        config.predict = predict;
    }
    if let Some(seconds) = raw.max_extrapolation {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err("invalid_config: max_extrapolation must be a non-negative number".into());
        }
        config.max_extrapolation = seconds;
    }
    Ok(config)
}

/// One client session (see the crate documentation).
#[wasm_bindgen]
pub struct WasmSession {
    inner: ClientSession,
}

#[wasm_bindgen]
impl WasmSession {
    /// A session from a JSON configuration (`campaign`, `token`, optional `name`, `encoding`,
    /// `client_type`, `interest_radius`, `send_interval_ticks`, `redundant_inputs`, `predict`,
    /// `max_extrapolation`). Throws on a malformed configuration.
    #[wasm_bindgen(constructor)]
    pub fn new(config_json: &str) -> Result<WasmSession, JsError> {
        let config = session_config(config_json).map_err(|message| JsError::new(&message))?;
        Ok(WasmSession {
            inner: ClientSession::new(config),
        })
    }

    /// Joins by taking back `previous`'s session (its client id, avatar and unacknowledged
    /// inputs) when the server still keeps it; call before [`WasmSession::start`]. False when
    /// `previous` has nothing to resume (never welcomed, or the server offers no resume).
    pub fn resume_from(&mut self, previous: &WasmSession) -> bool {
        match previous.inner.resume_ticket() {
            Some(ticket) => self.inner.resume_with(ticket),
            None => false,
        }
    }

    /// Queues the join; call once the socket is open.
    pub fn start(&mut self, now: f64) {
        self.inner.start(now);
    }

    /// A text frame from the server. Throws (`code: message`) on a malformed one; the session
    /// stays usable.
    pub fn receive_text(&mut self, now: f64, text: String) -> Result<(), JsError> {
        self.inner
            .receive(now, &Frame::Text(text))
            .map_err(|error| JsError::new(&error.to_string()))
    }

    /// A binary frame from the server (a binary state message). Throws on a malformed one.
    pub fn receive_binary(&mut self, now: f64, bytes: Vec<u8>) -> Result<(), JsError> {
        self.inner
            .receive(now, &Frame::Binary(bytes))
            .map_err(|error| JsError::new(&error.to_string()))
    }

    /// Advances the fixed-tick clock to `now` with these controls: predicts, batches inputs,
    /// pings, advances the playback of remote objects. `right`/`forward` are -1..=1; a zero look
    /// keeps the current direction.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        now: f64,
        right: f32,
        forward: f32,
        look_x: f32,
        look_y: f32,
        look_z: f32,
        jump: bool,
        run: bool,
    ) {
        let controls = Controls {
            movement: [clamp_axis(right), clamp_axis(forward)],
            look: finite_or_zero([look_x, look_y, look_z]),
            jump,
            run,
        };
        self.inner.update(now, &controls);
    }

    /// Sends the state acknowledgement now rather than with the next input batch.
    pub fn acknowledge_now(&mut self) {
        self.inner.acknowledge_now();
    }

    /// Queues an interaction (`{"kind": "pick_up", "target": 7, ...}` as in PROTOCOL.md);
    /// returns its request id. Throws on a malformed request.
    pub fn interact(&mut self, request_json: &str) -> Result<u32, JsError> {
        let mut value: Value = serde_json::from_str(request_json)
            .map_err(|error| JsError::new(&format!("invalid_request: {error}")))?;
        if let Some(object) = value.as_object_mut() {
            // The session numbers requests itself.
            object.entry("request_id").or_insert(json!(0));
        }
        let request: InteractionRequest = serde_json::from_value(value)
            .map_err(|error| JsError::new(&format!("invalid_request: {error}")))?;
        Ok(self.inner.interact(request))
    }

    /// Queues the leave event.
    pub fn leave(&mut self) {
        self.inner.leave();
    }

    /// The socket closed (with this reason).
    pub fn on_closed(&mut self, reason: &str) {
        self.inner.on_closed(reason);
    }

    /// The frames to send, in order: strings are text frames, `Uint8Array`s binary frames.
    pub fn drain_outgoing(&mut self) -> Vec<JsValue> {
        self.inner
            .drain_outgoing()
            .into_iter()
            .map(|frame| match frame {
                Frame::Text(text) => JsValue::from_str(&text),
                Frame::Binary(bytes) => js_sys::Uint8Array::from(bytes.as_slice()).into(),
            })
            .collect()
    }

    /// The events since the last call, as a JSON array (see `events_json`).
    pub fn poll_events(&mut self) -> String {
        events_json(self.inner.poll_events()).to_string()
    }

    /// `idle`, `joining`, `active` or `closed`.
    pub fn phase(&self) -> String {
        match self.inner.phase() {
            Phase::Idle => "idle",
            Phase::Joining => "joining",
            Phase::Active => "active",
            Phase::Closed => "closed",
        }
        .into()
    }

    /// The client's id once welcomed.
    pub fn client_id(&self) -> Option<u32> {
        self.inner.client_id()
    }

    /// The avatar's object id once welcomed (none for spectators).
    pub fn avatar_id(&self) -> Option<u32> {
        self.inner.avatar_id()
    }

    /// The own avatar as it should be drawn now:
    /// `[id, px, py, pz, qx, qy, qz, qw, predicted xyz, correction xyz, velocity xyz, grounded]`.
    pub fn avatar(&self) -> Option<Vec<f64>> {
        let view = self.inner.avatar()?;
        let mut out = Vec::with_capacity(18);
        out.push(f64::from(view.id));
        out.extend(view.position.map(f64::from));
        out.extend(view.rotation.map(f64::from));
        out.extend(view.predicted.map(f64::from));
        out.extend(view.correction_offset.map(f64::from));
        out.extend(view.velocity.map(f64::from));
        out.push(if view.grounded { 1.0 } else { 0.0 });
        Some(out)
    }

    /// Every remote object at the playback tick, [`REMOTE_STRIDE`] numbers each:
    /// `id, kind (0 dynamic, 1 kinematic, 2 static, 3 player), px, py, pz, qx, qy, qz, qw`.
    pub fn remote_objects(&self) -> Vec<f64> {
        let poses = self.inner.remote_objects();
        let mut out = Vec::with_capacity(poses.len() * REMOTE_STRIDE);
        for pose in poses {
            out.push(f64::from(pose.id));
            out.push(kind_code(pose.kind));
            out.extend(pose.position.map(f64::from));
            out.extend(pose.rotation.map(f64::from));
        }
        out
    }

    /// What the client knows of an object (`{"kind", "shape", "properties"}`), JSON.
    pub fn object_info(&self, id: u32) -> Option<String> {
        let object = self.inner.objects().get(&id)?;
        Some(
            json!({
                "kind": object.kind,
                "shape": object.shape,
                "properties": object.properties,
            })
            .to_string(),
        )
    }

    /// Ids of every object the client knows of (including static ones not interpolated).
    pub fn object_ids(&self) -> Vec<u32> {
        self.inner.objects().keys().copied().collect()
    }

    /// Clock estimates (`rtt`, `rtt_jitter`, `clock_offset`, `server_tick`, `input_tick`,
    /// `interpolation_delay`, `render_tick`; seconds and ticks), JSON.
    pub fn timing(&self, now: f64) -> String {
        let timing = self.inner.timing(now);
        json!({
            "rtt": timing.rtt,
            "rtt_jitter": timing.rtt_jitter,
            "clock_offset": timing.clock_offset,
            "server_tick": timing.server_tick,
            "input_tick": timing.input_tick,
            "interpolation_delay": timing.interpolation_delay,
            "render_tick": timing.render_tick,
        })
        .to_string()
    }

    /// Counters of the session (frames, bytes, states, reconciliations, corrections, prediction
    /// error, state age quantiles in seconds), JSON.
    pub fn stats(&self) -> String {
        let stats = self.inner.stats();
        json!({
            "frames_received": stats.frames_received,
            "bytes_received": stats.bytes_received,
            "frames_sent": stats.frames_sent,
            "bytes_sent": stats.bytes_sent,
            "states_applied": stats.states_applied,
            "states_rejected": stats.states_rejected,
            "state_age_p50": quantile_or_null(stats.state_age.count(), || stats.state_age.quantile(0.5)),
            "state_age_p99": quantile_or_null(stats.state_age.count(), || stats.state_age.quantile(0.99)),
            "inputs_created": stats.inputs_created,
            "inputs_rejected": stats.inputs_rejected,
            "reconciliations": stats.reconciliations,
            "corrections": stats.corrections,
            "correction_max": stats.correction_max,
            "prediction_error_last": stats.prediction_error_last,
            "prediction_error_max": stats.prediction_error_max,
            "errors_received": stats.errors_received,
            "malformed_frames": stats.malformed_frames,
            "last_state_tick": self.inner.last_state_tick(),
        })
        .to_string()
    }
}

/// The session's events as JSON objects, each with a `type`: `welcomed` (`client_id`,
/// `avatar_id`), `object_added` (`id`, `kind`), `object_removed` (`id`, `reason`),
/// `interaction_result` (`result`), `input_rejected` (`rejection`), `server_error` (`code`,
/// `message`), `event` (`event`: any other envelope, as received) and `closed` (`reason`).
pub fn events_json(events: Vec<SessionEvent>) -> Value {
    Value::Array(
        events
            .into_iter()
            .map(|event| match event {
                SessionEvent::Welcomed {
                    client_id,
                    avatar_id,
                    resumed,
                } => json!({"type": "welcomed", "client_id": client_id, "avatar_id": avatar_id, "resumed": resumed}),
                SessionEvent::ObjectAdded { id, kind } => {
                    json!({"type": "object_added", "id": id, "kind": kind})
                }
                SessionEvent::ObjectRemoved { id, reason } => {
                    json!({"type": "object_removed", "id": id, "reason": reason})
                }
                SessionEvent::InteractionResult(result) => {
                    json!({"type": "interaction_result", "result": result})
                }
                SessionEvent::InputRejected(rejection) => {
                    json!({"type": "input_rejected", "rejection": rejection})
                }
                SessionEvent::ServerError { code, message } => {
                    json!({"type": "server_error", "code": code, "message": message})
                }
                SessionEvent::Other(envelope) => json!({"type": "event", "event": envelope}),
                SessionEvent::Closed { reason } => json!({"type": "closed", "reason": reason}),
            })
            .collect(),
    )
}

fn kind_code(kind: BodyKind) -> f64 {
    match kind {
        BodyKind::Dynamic => 0.0,
        BodyKind::Kinematic => 1.0,
        BodyKind::Static => 2.0,
        BodyKind::Player => 3.0,
    }
}

fn quantile_or_null(count: u64, quantile: impl FnOnce() -> f64) -> Value {
    if count == 0 {
        Value::Null
    } else {
        json!(quantile())
    }
}

fn clamp_axis(value: f32) -> f32 {
    if value.is_finite() {
        value.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

fn finite_or_zero(v: [f32; 3]) -> [f32; 3] {
    if v.iter().all(|c| c.is_finite()) {
        v
    } else {
        [0.0; 3]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_are_clear() {
        assert!(session_config(r#"{"campaign":"0","token":"a"}"#).is_ok());
        let unknown = session_config(r#"{"campaign":"0","token":"a","encodng":"json"}"#);
        assert!(unknown.unwrap_err().contains("unknown field `encodng`"));
        let encoding = session_config(r#"{"campaign":"0","token":"a","encoding":"xml"}"#);
        assert!(encoding.unwrap_err().contains("\"xml\""));
        assert!(session_config(r#"{"campaign":"","token":"a"}"#).is_err());
        assert!(
            session_config("not json")
                .unwrap_err()
                .starts_with("invalid_config")
        );
    }

    #[test]
    fn events_carry_their_type() {
        let events = events_json(vec![
            SessionEvent::Welcomed {
                client_id: 3,
                avatar_id: Some(9),
                resumed: false,
            },
            SessionEvent::Closed {
                reason: "bye".into(),
            },
        ]);
        assert_eq!(events[0]["type"], "welcomed");
        assert_eq!(events[0]["avatar_id"], 9);
        assert_eq!(events[1]["reason"], "bye");
    }
}
