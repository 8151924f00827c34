//! Server event builders: every event has its documented name and payload fields, and parses back
//! as JSON. Error envelopes exist for every code.

mod common;

use nexus_protocol::server::{self, Welcome};
use nexus_protocol::{Encoding, Envelope, Limits, ProtocolError, codes, error_envelope, names};
use nexus_sim::InputRejection;
use nexus_sim::command::InteractionKind;
use nexus_sim::event::{InteractionResult, ParticleEmission, TerrainPatch, WorldEvent};
use nexus_sim::state::WorldState;
use serde_json::Value;

fn parsed(envelope: &Envelope) -> Value {
    let value: Value = serde_json::from_str(&envelope.to_json()).expect("valid JSON");
    assert_eq!(value["type"], envelope.r#type);
    assert_eq!(value["metadata"]["campaign_id"], "c9");
    assert!(
        names::SERVER_TYPES.contains(&envelope.r#type.as_str()),
        "{}",
        envelope.r#type
    );
    value["payload"].clone()
}

fn world() -> WorldState {
    common::RandomWorld::new(3, 5, 10.0).state()
}

#[test]
fn welcome_has_the_fixed_fields_and_a_full_world_state() {
    let mut state = world();
    // serde_json's default float parser may be off by one ulp; keep the comparison exact.
    state.timestamp = 1_700_000_000.5;
    let limits = Limits::default();
    let welcome = Welcome {
        client_id: 4,
        avatar_id: Some(17),
        tick_rate: 60,
        state_rate: 30,
        world_state: &state,
        name: "alice",
        role: "player",
        encoding: Encoding::Binary,
        interest_radius: 80.0,
        limits: &limits,
        server_time: 1.5e9,
        resume: None,
        resumed: false,
        webrtc: false,
    };
    let p = parsed(&server::welcome("c9", &welcome));
    assert_eq!(p["client_id"], 4);
    assert_eq!(p["avatar_id"], 17);
    assert_eq!(p["tick_rate"], 60);
    assert_eq!(p["encoding"], "binary");
    assert_eq!(p["subprotocol"], "nexus.binary.v1");
    assert_eq!(p["limits"]["max_frame_bytes"], 65536);
    let back: WorldState = serde_json::from_value(p["world_state"].clone()).expect("a world state");
    assert_eq!(back, state);

    // The same welcome around a state serialised once for many clients: the same JSON value.
    let state_json = serde_json::to_string(&state).expect("serialisable");
    let shared = server::welcome_with_state_json("c9", &welcome, &state_json);
    let mut shared: Value = serde_json::from_str(&shared).expect("valid JSON");
    let mut direct: Value =
        serde_json::from_str(&server::welcome("c9", &welcome).to_json()).expect("JSON");
    let back: WorldState =
        serde_json::from_value(shared["payload"]["world_state"].take()).expect("a world state");
    assert_eq!(back, state);
    direct["payload"]["world_state"].take();
    assert_eq!(shared, direct, "the rest of the welcome is the same");
}

#[test]
fn every_world_event_maps_to_its_event() {
    let state = world();
    let object = state.objects[0].clone();
    let cases = vec![
        (
            WorldEvent::ObjectAdded {
                object: object.clone(),
                environment: false,
            },
            names::OBJECT_ADDED,
        ),
        (
            WorldEvent::ObjectAdded {
                object: object.clone(),
                environment: true,
            },
            names::ENVIRONMENT_OBJECT_ADDED,
        ),
        (
            WorldEvent::ObjectRemoved {
                id: 3,
                reason: "destroyed".into(),
            },
            names::OBJECT_REMOVED,
        ),
        (
            WorldEvent::InteractionResult(InteractionResult {
                client_id: 1,
                request_id: 9,
                kind: InteractionKind::Custom("paint".into()),
                success: false,
                code: "out_of_reach".into(),
                message: "too far".into(),
                target: Some(3),
                data: Default::default(),
            }),
            names::INTERACTION_RESULT,
        ),
        (
            WorldEvent::WeatherChanged {
                weather: state.environment.weather.clone(),
            },
            names::ENVIRONMENT_WEATHER,
        ),
        (
            WorldEvent::TimeOfDayChanged {
                time_of_day: 6.5,
                day_length: 600.0,
            },
            names::ENVIRONMENT_STATE,
        ),
        (
            WorldEvent::TerrainEdited(TerrainPatch {
                terrain_id: 1,
                revision: 2,
                row0: 0,
                col0: 0,
                rows: 1,
                cols: 2,
                heights: vec![0.5, 1.0],
            }),
            names::ENVIRONMENT_TERRAIN,
        ),
        (
            WorldEvent::ParticlesEmitted(ParticleEmission {
                emitter_id: 1,
                tick: 5,
                seed: 7,
                count: 10,
                origin: [0.0; 3],
                params: Default::default(),
            }),
            names::PARTICLES,
        ),
    ];
    for (event, expected) in cases {
        let envelope = server::world_event("c9", &event);
        assert_eq!(envelope.r#type, expected);
        let p = parsed(&envelope);
        match expected {
            names::OBJECT_ADDED | names::ENVIRONMENT_OBJECT_ADDED => {
                assert_eq!(p["object"]["id"], object.id)
            }
            names::OBJECT_REMOVED => assert_eq!(
                (p["id"].clone(), p["reason"].clone()),
                (3.into(), "destroyed".into())
            ),
            names::INTERACTION_RESULT => {
                assert_eq!(p["kind"], "paint");
                assert_eq!(p["request_id"], 9);
                assert_eq!(p["code"], "out_of_reach");
                assert_eq!(p["target"], 3);
            }
            names::ENVIRONMENT_WEATHER => assert_eq!(p["weather"]["kind"], "clear"),
            names::ENVIRONMENT_STATE => {
                assert_eq!(p["partial"], true);
                assert_eq!(p["time_of_day"], 6.5);
            }
            names::ENVIRONMENT_TERRAIN => assert_eq!(p["heights"], serde_json::json!([0.5, 1.0])),
            names::PARTICLES => assert_eq!(p["seed"], 7),
            _ => unreachable!(),
        }
    }
}

#[test]
fn session_and_state_events() {
    let p = parsed(&server::environment_state("c9", &world().environment));
    assert_eq!(p["partial"], false);
    assert_eq!(p["day_length"], 600.0);
    let rejected = [InputRejection {
        seq: 4,
        code: "out_of_range".into(),
        message: "m".into(),
    }];
    let p = parsed(&server::input_ack("c9", Some(12), 300, &rejected));
    assert_eq!(p["last_input_seq"], 12);
    assert_eq!(p["rejected"][0]["seq"], 4);
    let p = parsed(&server::pong("c9", Some(5), None, 2.0, 77));
    assert_eq!(
        (
            p["nonce"].clone(),
            p["client_time"].clone(),
            p["tick"].clone()
        ),
        (5.into(), Value::Null, 77.into())
    );
    let p = parsed(&server::world_state_full("c9", &world()));
    assert_eq!(p["full"], true);
    assert_eq!(p["objects"].as_array().map(Vec::len), Some(5));
    let p = parsed(&server::object_update("c9", &world().objects[1]));
    assert!(p["object"]["position"].is_array());
    let p = parsed(&server::custom(
        "c9",
        "chat",
        serde_json::json!({"text": "hi"}),
    ));
    assert_eq!(p["data"]["text"], "hi");
}

#[test]
fn every_error_code_has_an_error_event() {
    for code in codes::ALL {
        let envelope = error_envelope("c9", &ProtocolError::new(code, format!("because {code}")));
        assert_eq!(envelope.r#type, names::SYSTEM_ERROR);
        let p = parsed(&envelope);
        assert_eq!(p["code"], *code);
        assert_eq!(p["message"], format!("because {code}"));
    }
    let p = parsed(&server::error_event(
        "c9",
        codes::FORBIDDEN,
        "admins only",
        Some(names::ENVIRONMENT_EDIT),
    ));
    assert_eq!(p["request_type"], names::ENVIRONMENT_EDIT);
}
