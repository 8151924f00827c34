//! The fuzz targets: each takes any bytes and must return without panicking, hanging or growing
//! memory without bound. libFuzzer drives them (`libfuzzer/`, `scripts/fuzz`, nightly); the
//! corpus it found (`corpus/TARGET/`) is replayed on stable by `tests/corpus.rs`, so a crash once
//! found stays fixed.
//!
//! | target | what reads the bytes |
//! | --- | --- |
//! | `envelope` | the JSON event envelope (events.md) |
//! | `client_text` | every client→server JSON event and its payload, as the gateway decodes them |
//! | `client_binary` | the binary client frames (inputs, acks) |
//! | `client_stream` | a client session fed server frames after a real welcome: the binary and JSON state decoders, their baselines, interpolation and prediction |
//! | `token` | token verification, with raw strings and with fuzzed claims signed by the secret |
//! | `campaign_image` | loading a campaign from a corrupted database file |

pub mod seeds;

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use nexus_client::{ClientSession, Controls, Frame, SessionConfig};
use nexus_protocol::{Encoding, Limits};

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by name: what `scripts/fuzz` runs and `tests/corpus.rs` replays.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("client_text", client_text),
    ("client_binary", client_binary),
    ("client_stream", client_stream),
    ("token", token),
    ("campaign_image", campaign_image),
];

/// The event envelope: parsing never panics, and what parses serialises again.
pub fn envelope(data: &[u8]) {
    if let Ok(envelope) = serde_json::from_slice::<nexus_protocol::Envelope>(data) {
        let _ = envelope.to_json();
        let _ = nexus_protocol::names::parse_type(&envelope.r#type);
    }
}

/// A client's JSON event, decoded as the gateway decodes it (default limits).
pub fn client_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the WebSocket layer refuses text frames that are not UTF-8
    };
    let _ = nexus_protocol::decode_client_text_with(text, &Limits::default());
}

/// A client's binary frame (input batch or ack).
pub fn client_binary(data: &[u8]) {
    let _ = nexus_protocol::decode_client_binary_with(data, &Limits::default());
}

/// At most this many frames of an input are used: longer streams only slow the fuzzer down.
pub const MAX_FRAMES: usize = 32;

/// Splits fuzz input into frames (at most [`MAX_FRAMES`]): a kind byte (even: text, odd: binary),
/// a little-endian u16 length, then that many bytes (or what is left).
pub fn frames(mut data: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while data.len() >= 3 && frames.len() < MAX_FRAMES {
        let kind = data[0];
        let len = usize::from(u16::from_le_bytes([data[1], data[2]])).min(data.len() - 3);
        let body = &data[3..3 + len];
        data = &data[3 + len..];
        frames.push(if kind.is_multiple_of(2) {
            Frame::Text(String::from_utf8_lossy(body).into_owned())
        } else {
            Frame::Binary(body.to_vec())
        });
    }
    frames
}

/// The inverse of [`frames`], for writing seeds.
pub fn join_frames(frames: &[Frame]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        let (kind, body) = match frame {
            Frame::Text(text) => (0u8, text.as_bytes()),
            Frame::Binary(bytes) => (1u8, bytes.as_slice()),
        };
        let len = body.len().min(usize::from(u16::MAX));
        out.push(kind);
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&body[..len]);
    }
    out
}

/// The campaign of the seeds and the session.
pub const CAMPAIGN: &str = "fuzz";

/// A welcome for client 7 driving avatar 2 in a small world (binary stream): the session is
/// then where state messages are decoded.
pub fn welcome_frame() -> &'static str {
    static WELCOME: OnceLock<String> = OnceLock::new();
    WELCOME.get_or_init(|| {
        let world = seed_world();
        let state = world.snapshot(true);
        let avatar_id = state
            .objects
            .iter()
            .find(|o| o.kind == nexus_sim::state::BodyKind::Kinematic)
            .map(|o| o.id);
        let limits = Limits::default();
        let welcome = nexus_protocol::server::Welcome {
            client_id: 7,
            avatar_id,
            tick_rate: 60,
            state_rate: 20,
            world_state: &state,
            name: "fuzzer",
            role: "player",
            encoding: Encoding::Binary,
            interest_radius: 80.0,
            limits: &limits,
            server_time: 1_000_000.0,
            resume: None,
            resumed: false,
            webrtc: false,
        };
        nexus_protocol::server::welcome(CAMPAIGN, &welcome).to_json()
    })
}

/// A ground, a few boxes and the player's avatar (client 7).
pub fn seed_world() -> nexus_sim::World {
    use nexus_sim::state::BodyKind;
    use nexus_sim::{ObjectDesc, Shape, World, WorldConfig};
    let mut world = World::new(WorldConfig::default());
    let mut add = |kind, shape, position: [f32; 3]| {
        world
            .add_object(ObjectDesc {
                kind,
                shape,
                position,
                rotation: [0.0, 0.0, 0.0, 1.0],
                mass: None,
                friction: 0.5,
                restitution: 0.1,
                properties: Default::default(),
            })
            .expect("a seed object");
    };
    let ground = Shape::Box {
        half_extents: [50.0, 0.5, 50.0],
    };
    add(BodyKind::Static, ground, [0.0, -0.5, 0.0]);
    for i in 0..6 {
        let crate_shape = Shape::Box {
            half_extents: [0.5, 0.5, 0.5],
        };
        add(
            BodyKind::Dynamic,
            crate_shape,
            [i as f32 * 1.5 - 4.0, 2.0 + i as f32, 3.0],
        );
    }
    world
        .spawn_player(7, "fuzzer", Some([0.0, 1.0, 0.0]))
        .expect("the avatar");
    world
}

/// A client session after a real welcome, fed the frames in `data` with time moving on and the
/// avatar walking: what a browser or bot does with whatever a (broken or hostile) server sends.
pub fn client_stream(data: &[u8]) {
    let mut config = SessionConfig::new(CAMPAIGN, "fuzzer");
    config.encoding = Encoding::Binary;
    let mut session = ClientSession::new(config);
    session.start(0.0);
    let _ = session.receive(0.01, &Frame::Text(welcome_frame().to_owned()));
    let controls = Controls {
        movement: [0.3, 1.0],
        ..Controls::default()
    };
    let mut now = 0.01;
    for frame in frames(data) {
        now += 0.05;
        let _ = session.receive(now, &frame);
        session.update(now, &controls);
        let _ = session.drain_outgoing();
        let _ = session.poll_events();
        let _ = session.avatar();
        let _ = session.remote_objects();
    }
}

/// The secrets the token target verifies against (current, previous).
pub const TOKEN_SECRETS: [&[u8]; 2] = [
    b"fuzz-secret-current-0123456789",
    b"fuzz-secret-previous-012345678",
];
const TOKEN_NOW: u64 = 1_900_000_000;

/// Token verification. A first byte of 0 makes the rest the claims JSON, signed with the current
/// secret (else the fuzzer would never get past the MAC); otherwise the bytes are the token.
pub fn token(data: &[u8]) {
    let token = match data.split_first() {
        Some((0, claims)) => sign(TOKEN_SECRETS[0], claims),
        _ => String::from_utf8_lossy(data).into_owned(),
    };
    if let Ok((claims, _)) =
        nexus_gateway::auth::verify_token_with_any(&TOKEN_SECRETS, &token, TOKEN_NOW)
    {
        assert!(
            claims.expires_at > TOKEN_NOW,
            "an expired token was accepted"
        );
    }
}

/// A token over `claims` (any bytes) as the gateway signs them (PROTOCOL.md, "Tokens").
pub fn sign(secret: &[u8], claims: &[u8]) -> String {
    let signed_part = format!("nx1.{}", URL_SAFE_NO_PAD.encode(claims));
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(signed_part.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// A campaign file's bytes, loaded as the server loads a campaign at start.
pub fn campaign_image(data: &[u8]) {
    if let Ok(Some(record)) = nexus_store::load_campaign_image(data, CAMPAIGN) {
        // What loads becomes a world, as at a server's start, or says why it cannot.
        if record.validate().is_ok() {
            let _ = nexus_store::world_bridge::restore_world(
                &record,
                nexus_sim::WorldConfig::default(),
            );
        }
    }
}
