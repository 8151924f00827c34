//! Event type names: `domain:name:version:kind`.
//!
//! Kind `requested` travels client → server, kind `stream` server → client. The names of the design
//! (events.md) are kept verbatim; the `session:*`, `system:*` and `environment:edit` names are ours,
//! in the same scheme.

// --- world state (server → client) ---
/// The state stream: full or delta world state (JSON) — or a binary frame when negotiated.
pub const WORLD_STATE: &str = "physics:world_state:v1:stream";
/// One object's state changed outside the stream (e.g. after an `object_update` request).
pub const OBJECT_UPDATE: &str = "physics:object_update:v1:stream";
/// An object was added to the world (reliable; carries its shape).
pub const OBJECT_ADDED: &str = "physics:object_added:v1:stream";
/// An object was removed from the world (reliable).
pub const OBJECT_REMOVED: &str = "physics:object_removed:v1:stream";
/// A particle emission the client reproduces from its seed (ours: cosmetic, not in the design).
pub const PARTICLES: &str = "physics:particles:v1:stream";

// --- client input (client → server) ---
/// A batch of movement inputs (plus an optional state ack).
pub const CLIENT_INPUT: &str = "physics:client_input:v1:requested";
/// A single movement input (plus an optional state ack).
pub const MOVEMENT: &str = "physics:movement:v1:requested";
/// A named gameplay action for the host to interpret.
pub const ACTION: &str = "physics:action:v1:requested";
/// A request to change an object's state or properties.
pub const OBJECT_UPDATE_REQUEST: &str = "physics:object_update:v1:requested";

// --- environment ---
/// Ask for the full environment state (answered with [`ENVIRONMENT_STATE`]).
pub const ENVIRONMENT_STATE_REQUEST: &str = "environment:state:v1:requested";
/// The environment: weather, time of day, terrain summary.
pub const ENVIRONMENT_STATE: &str = "environment:state:v1:stream";
/// A terrain patch changed.
pub const ENVIRONMENT_TERRAIN: &str = "environment:terrain:v1:stream";
/// The weather changed.
pub const ENVIRONMENT_WEATHER: &str = "environment:weather:v1:stream";
/// An environment object (tree, rock, building...) was added.
pub const ENVIRONMENT_OBJECT_ADDED: &str = "environment:object_added:v1:stream";
/// Edit the environment (admin role). Ours: the design names no edit request.
pub const ENVIRONMENT_EDIT: &str = "environment:edit:v1:requested";

// --- interaction ---
/// A generic interaction request (`kind` in the payload).
pub const INTERACTION_REQUEST: &str = "interaction:request:v1:requested";
/// The outcome of an interaction request.
pub const INTERACTION_RESULT: &str = "interaction:result:v1:stream";
/// Shorthand for an interaction of kind `pickup`.
pub const INTERACTION_PICKUP: &str = "interaction:pickup:v1:requested";
/// Shorthand for an interaction of kind `drop`.
pub const INTERACTION_DROP: &str = "interaction:drop:v1:requested";
/// Shorthand for an interaction of kind `use`.
pub const INTERACTION_USE: &str = "interaction:use:v1:requested";
/// Shorthand for an interaction of kind `build`.
pub const INTERACTION_BUILD: &str = "interaction:build:v1:requested";
/// Shorthand for an interaction of kind `destroy`.
pub const INTERACTION_DESTROY: &str = "interaction:destroy:v1:requested";

// --- session (ours) ---
/// Join a campaign: `metadata.campaign_id` + `payload.token`.
pub const SESSION_JOIN: &str = "session:join:v1:requested";
/// Answer to a join: client id, avatar id, tick rate, full world state.
pub const SESSION_WELCOME: &str = "session:welcome:v1:stream";
/// Leave the campaign (the server then closes the connection normally).
pub const SESSION_LEAVE: &str = "session:leave:v1:requested";
/// Client → server: acknowledge the newest state-stream tick applied (the delta baseline).
pub const SESSION_ACK_REQUEST: &str = "session:ack:v1:requested";
/// Server → client: acknowledge processed input sequence numbers (and report rejected inputs).
pub const SESSION_ACK: &str = "session:ack:v1:stream";
/// Client → server keep-alive / round-trip probe.
pub const SESSION_PING: &str = "session:ping:v1:requested";
/// Server → client answer to a ping.
pub const SESSION_PONG: &str = "session:pong:v1:stream";
/// WebRTC signalling (PROTOCOL.md section 11): the client's SDP offer.
pub const SESSION_WEBRTC_OFFER: &str = "session:webrtc_offer:v1:requested";
/// WebRTC signalling: the server's SDP answer.
pub const SESSION_WEBRTC_ANSWER: &str = "session:webrtc_answer:v1:stream";
/// WebRTC signalling: one ICE candidate of the client (optional: trickle).
pub const SESSION_WEBRTC_CANDIDATE: &str = "session:webrtc_candidate:v1:requested";
/// WebRTC: the state stream moved onto the data channel (`open`) or back to the WebSocket.
pub const SESSION_WEBRTC_STATE: &str = "session:webrtc_state:v1:stream";

// --- system (ours) ---
/// An error with a stable code and a human message.
pub const SYSTEM_ERROR: &str = "system:error:v1:stream";
/// A host-defined event (e.g. particles, chat); the payload carries `name` and `data`.
pub const SYSTEM_CUSTOM: &str = "system:custom:v1:stream";

/// Every type a client may send (kind `requested`).
pub const CLIENT_TYPES: &[&str] = &[
    CLIENT_INPUT,
    MOVEMENT,
    ACTION,
    OBJECT_UPDATE_REQUEST,
    ENVIRONMENT_STATE_REQUEST,
    ENVIRONMENT_EDIT,
    INTERACTION_REQUEST,
    INTERACTION_PICKUP,
    INTERACTION_DROP,
    INTERACTION_USE,
    INTERACTION_BUILD,
    INTERACTION_DESTROY,
    SESSION_JOIN,
    SESSION_LEAVE,
    SESSION_ACK_REQUEST,
    SESSION_PING,
    SESSION_WEBRTC_OFFER,
    SESSION_WEBRTC_CANDIDATE,
];

/// Every type the server may send (kind `stream`).
pub const SERVER_TYPES: &[&str] = &[
    WORLD_STATE,
    OBJECT_UPDATE,
    OBJECT_ADDED,
    OBJECT_REMOVED,
    PARTICLES,
    ENVIRONMENT_STATE,
    ENVIRONMENT_TERRAIN,
    ENVIRONMENT_WEATHER,
    ENVIRONMENT_OBJECT_ADDED,
    INTERACTION_RESULT,
    SESSION_WELCOME,
    SESSION_ACK,
    SESSION_PONG,
    SESSION_WEBRTC_ANSWER,
    SESSION_WEBRTC_STATE,
    SYSTEM_ERROR,
    SYSTEM_CUSTOM,
];

/// Whether `name` is any type this protocol knows, in either direction.
pub fn is_known(name: &str) -> bool {
    CLIENT_TYPES.contains(&name) || SERVER_TYPES.contains(&name)
}

/// The four parts of a type name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeName<'a> {
    /// e.g. `physics`.
    pub domain: &'a str,
    /// e.g. `client_input`.
    pub name: &'a str,
    /// e.g. `v1`.
    pub version: &'a str,
    /// `requested` or `stream` (anything else is not a valid kind).
    pub kind: &'a str,
}

/// Splits `domain:name:version:kind`; `None` unless there are exactly four non-empty parts.
pub fn parse_type(name: &str) -> Option<TypeName<'_>> {
    let mut parts = name.split(':');
    let parsed = TypeName {
        domain: parts.next()?,
        name: parts.next()?,
        version: parts.next()?,
        kind: parts.next()?,
    };
    let all_present = [parsed.domain, parsed.name, parsed.version, parsed.kind]
        .iter()
        .all(|part| !part.is_empty());
    (parts.next().is_none() && all_present).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_follows_the_scheme_and_direction() {
        for name in CLIENT_TYPES {
            assert_eq!(
                parse_type(name).map(|t| t.kind),
                Some("requested"),
                "{name}"
            );
        }
        for name in SERVER_TYPES {
            assert_eq!(parse_type(name).map(|t| t.kind), Some("stream"), "{name}");
        }
    }

    #[test]
    fn design_names_are_verbatim() {
        // The table of events.md, copied by hand: a rename would break third-party clients.
        let design = [
            "physics:world_state:v1:stream",
            "physics:object_update:v1:stream",
            "physics:object_added:v1:stream",
            "physics:object_removed:v1:stream",
            "physics:client_input:v1:requested",
            "physics:movement:v1:requested",
            "physics:action:v1:requested",
            "physics:object_update:v1:requested",
            "environment:state:v1:requested",
            "environment:state:v1:stream",
            "environment:terrain:v1:stream",
            "environment:weather:v1:stream",
            "environment:object_added:v1:stream",
            "interaction:request:v1:requested",
            "interaction:result:v1:stream",
            "interaction:pickup:v1:requested",
            "interaction:drop:v1:requested",
            "interaction:use:v1:requested",
            "interaction:build:v1:requested",
            "interaction:destroy:v1:requested",
            "session:join:v1:requested",
            "session:welcome:v1:stream",
            "system:error:v1:stream",
        ];
        for name in design {
            assert!(is_known(name), "{name} missing");
        }
    }

    #[test]
    fn parse_type_rejects_bad_shapes() {
        assert!(parse_type("a:b:c").is_none());
        assert!(parse_type("a:b:c:d:e").is_none());
        assert!(parse_type("a::c:d").is_none());
        assert_eq!(parse_type("a:b:v1:stream").map(|t| t.name), Some("b"));
    }
}
