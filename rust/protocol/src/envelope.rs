//! The JSON envelope every event travels in: `{"type", "payload", "metadata"}`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Routing facts about an event. Unknown metadata keys are kept in `extra` (and echoed nowhere).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The campaign (world) this event belongs to. Required in `session:join`; optional after.
    #[serde(default)]
    pub campaign_id: String,
    /// What produced the event, e.g. `player`, `physics_server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    /// The client software, e.g. `web`, `godot`, `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_type: Option<String>,
    /// Any other metadata keys, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// Metadata of an event produced by the server for `campaign_id`.
    pub fn server(campaign_id: &str) -> Self {
        Metadata {
            campaign_id: campaign_id.to_owned(),
            entity_type: Some("physics_server".to_owned()),
            client_type: Some("server".to_owned()),
            extra: Map::new(),
        }
    }
}

/// One event: its type name, its payload (always a JSON object on the wire) and its metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `domain:name:version:kind`, see [`crate::names`].
    #[serde(rename = "type")]
    pub r#type: String,
    /// The event's data.
    #[serde(default)]
    pub payload: Value,
    /// Routing facts.
    #[serde(default)]
    pub metadata: Metadata,
}

impl Envelope {
    /// Builds an envelope.
    pub fn new(r#type: &str, payload: Value, metadata: Metadata) -> Self {
        Envelope {
            r#type: r#type.to_owned(),
            payload,
            metadata,
        }
    }

    /// The JSON text of this envelope (what goes in a WebSocket text frame).
    pub fn to_json(&self) -> String {
        // Serialising a Value-based struct with string keys cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}
