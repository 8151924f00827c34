//! The inputs fuzzing starts from: real frames and files, as the clients, the server and the store
//! make them, so libFuzzer's mutations begin past the first checks of each decoder.

use std::path::Path;

use nexus_client::Frame;
use nexus_protocol::{Encoding, Snapshot, StateEncoder, StatePayload, StreamSettings};
use nexus_sim::command::PlayerInput;

use crate::{CAMPAIGN, TOKEN_SECRETS, join_frames, seed_world};

fn envelope(r#type: &str, payload: &str) -> String {
    format!(
        r#"{{"type":"{type}","payload":{payload},"metadata":{{"campaign_id":"{CAMPAIGN}","entity_type":"player","client_type":"web"}}}}"#,
        r#type = r#type
    )
}

/// One JSON event of every client→server type (PROTOCOL.md section 3).
pub fn client_texts() -> Vec<String> {
    let object = r#"{"kind":"dynamic","shape":{"type":"box","half_extents":[0.5,0.5,0.5]},"position":[1,2,3],"rotation":[0,0,0,1],"mass":2,"friction":0.4,"restitution":0.1,"properties":{"pickupable":true}}"#;
    [
        (
            "session:join:v1:requested",
            r#"{"token":"nx1.abc.def","name":"ann","interest_radius":60,"resume_token":"r-1"}"#.to_string(),
        ),
        ("session:leave:v1:requested", r#"{"reason":"bye"}"#.into()),
        ("session:ack:v1:requested", r#"{"tick":120,"resync":false}"#.into()),
        ("session:ping:v1:requested", r#"{"nonce":5,"client_time":12.5}"#.into()),
        (
            "physics:client_input:v1:requested",
            r#"{"inputs":[{"seq":1,"tick":100,"movement":[0.5,1],"look":[0,0,1],"jump":false,"run":true},{"seq":2,"movement":[-1,0],"jump":true}],"ack":98}"#.into(),
        ),
        (
            "physics:movement:v1:requested",
            r#"{"seq":3,"movement":[0,1],"look":[1,0,0],"ack":99}"#.into(),
        ),
        (
            "physics:action:v1:requested",
            r#"{"action":"wave","target":3,"args":{"speed":2,"tags":["a","b"]}}"#.into(),
        ),
        (
            "physics:object_update:v1:requested",
            r#"{"id":3,"position":[1,2,3],"rotation":[0,0.7071,0,0.7071],"velocity":[0,1,0],"angular_velocity":[0,0,1],"properties":{"color":"red"}}"#.into(),
        ),
        (
            "interaction:request:v1:requested",
            format!(r#"{{"kind":"build","request_id":4,"build":{object}}}"#),
        ),
        ("interaction:pickup:v1:requested", r#"{"request_id":5,"target":3}"#.into()),
        (
            "interaction:drop:v1:requested",
            r#"{"request_id":6,"args":{"velocity":[0,3,4]}}"#.into(),
        ),
        ("interaction:use:v1:requested", r#"{"target":4}"#.into()),
        ("interaction:destroy:v1:requested", r#"{"target":4}"#.into()),
        ("environment:state:v1:requested", "{}".into()),
        (
            "environment:edit:v1:requested",
            r#"{"op":"set_weather","kind":"storm","transition_seconds":3}"#.into(),
        ),
        (
            "environment:edit:v1:requested",
            r#"{"op":"edit_terrain","center":[4,5],"radius":3,"delta":-0.5}"#.into(),
        ),
        (
            "environment:edit:v1:requested",
            format!(r#"{{"op":"add_object","object":{object}}}"#),
        ),
    ]
    .iter()
    .map(|(t, p)| envelope(t, p))
    .collect()
}

/// Binary input batches and acks (PROTOCOL.md, "Binary client frames").
pub fn client_binaries() -> Vec<Vec<u8>> {
    let input = |seq, jump, look: [f32; 3]| PlayerInput {
        seq,
        tick: Some(u64::from(seq) + 100),
        movement: [0.25, -1.0],
        look,
        jump,
        run: !jump,
    };
    vec![
        nexus_protocol::encode_client_inputs(
            &[input(1, false, [0.0, 0.0, 1.0]), input(2, true, [0.0; 3])],
            Some(90),
        ),
        nexus_protocol::encode_client_inputs(&[], Some(7)),
        nexus_protocol::encode_client_ack(123_456),
    ]
}

/// A server's stream as [`crate::client_stream`] reads it (after its welcome): the states of 30
/// ticks as binary deltas, and as JSON followed by a few JSON events.
pub fn server_streams() -> Vec<Vec<u8>> {
    let mut world = seed_world();
    let mut binary = StateEncoder::new(CAMPAIGN, Encoding::Binary, StreamSettings::default());
    let mut json = StateEncoder::new(CAMPAIGN, Encoding::Json, StreamSettings::default());
    let mut binary_frames = Vec::new();
    let mut json_frames = Vec::new();
    for step in 0..60u32 {
        world.step();
        if step % 3 != 0 {
            continue;
        }
        let snapshot = Snapshot::new(world.snapshot(false));
        for (encoder, frames) in [
            (&mut binary, &mut binary_frames),
            (&mut json, &mut json_frames),
        ] {
            if let Some(encoded) = encoder.encode(&snapshot, Some([0.0, 1.0, 0.0]), Some(step)) {
                let tick = encoded.tick;
                frames.push(match encoded.payload {
                    StatePayload::Binary(bytes) => Frame::Binary(bytes),
                    StatePayload::Text(text) => Frame::Text(text),
                });
                // Acknowledged at once, so later messages are deltas.
                let _ = encoder.acknowledge(tick);
            }
        }
    }
    let events = [
        r#"{"type":"session:pong:v1:stream","payload":{"nonce":1,"client_time":0.5,"server_time":1000000.2},"metadata":{"campaign_id":"fuzz"}}"#,
        r#"{"type":"interaction:result:v1:stream","payload":{"request_id":5,"kind":"pickup","success":true,"target":3},"metadata":{"campaign_id":"fuzz"}}"#,
        r#"{"type":"system:error:v1:stream","payload":{"code":"rate_limited","message":"slow down"},"metadata":{"campaign_id":"fuzz"}}"#,
    ];
    json_frames.extend(events.iter().map(|e| Frame::Text((*e).to_owned())));
    vec![join_frames(&binary_frames), join_frames(&json_frames)]
}

/// Tokens: a valid one, one for the previous secret, and claims to be signed (first byte 0).
pub fn tokens() -> Vec<Vec<u8>> {
    let claims = r#"{"sub":"acct-1","name":"Ann","role":"player","exp":1900000600,"cmp":"fuzz"}"#;
    let mut signed_claims = vec![0u8];
    signed_claims.extend_from_slice(claims.as_bytes());
    vec![
        crate::sign(TOKEN_SECRETS[0], claims.as_bytes()).into_bytes(),
        crate::sign(TOKEN_SECRETS[1], claims.as_bytes()).into_bytes(),
        signed_claims,
    ]
}

/// The database file of a saved campaign (the seed world, its players), as the server writes it.
pub fn campaign_image() -> Vec<u8> {
    let scratch = std::env::temp_dir().join(format!("nexus-fuzz-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let image = {
        use nexus_store::CampaignStore as _;
        let world = seed_world();
        let players = nexus_store::world_bridge::player_records(&world);
        let record = nexus_store::world_bridge::record_from_world(CAMPAIGN, &world, &players);
        let mut store = nexus_store::SqliteStore::open(&scratch).expect("a scratch store");
        store
            .replace_campaign(&record)
            .expect("the seed campaign saves");
        store.close(); // checkpoints the WAL into the file
        std::fs::read(store.campaign_path(CAMPAIGN)).expect("the campaign file")
    };
    let _ = std::fs::remove_dir_all(&scratch);
    image
}

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let texts: Vec<Vec<u8>> = client_texts().into_iter().map(String::into_bytes).collect();
    vec![
        ("envelope", texts.clone()),
        ("client_text", texts),
        ("client_binary", client_binaries()),
        ("client_stream", server_streams()),
        ("token", tokens()),
        ("campaign_image", vec![campaign_image()]),
    ]
}

/// Writes the seeds into `corpus/TARGET/seed-N` (kept beside what fuzzing adds).
pub fn write(corpus: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (target, seeds) in all() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
            written += 1;
        }
    }
    Ok(written)
}
