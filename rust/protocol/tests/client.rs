//! Decoding client frames: every message type round-trips from JSON, and every decoding error code
//! comes back for the input that should produce it — never a panic.

mod common;

use common::Rng;
use nexus_protocol::{
    ClientMessage, Limits, codes, decode_client_binary, decode_client_binary_with,
    decode_client_text, decode_client_text_with, encode_client_ack, encode_client_inputs, names,
};
use nexus_sim::command::{EnvironmentCommand, InteractionKind, PlayerInput};
use nexus_sim::state::WeatherKind;
use serde_json::json;

fn frame(r#type: &str, payload: serde_json::Value) -> String {
    json!({"type": r#type, "payload": payload, "metadata": {"campaign_id": "c1", "client_type": "web"}})
        .to_string()
}

fn code_of(text: &str) -> &'static str {
    decode_client_text(text)
        .expect_err("should be refused")
        .code
}

#[test]
fn join_carries_token_campaign_and_options() {
    let f = decode_client_text(&frame(
        names::SESSION_JOIN,
        json!({"token": "alice", "name": "Alice", "interest_radius": 50.0}),
    ))
    .unwrap();
    assert_eq!(f.r#type, names::SESSION_JOIN);
    assert_eq!(f.metadata.campaign_id, "c1");
    assert_eq!(f.metadata.client_type.as_deref(), Some("web"));
    let ClientMessage::Join(join) = f.message else {
        panic!("{f:?}")
    };
    assert_eq!(join.token, "alice");
    assert_eq!(join.name.as_deref(), Some("Alice"));
    assert_eq!(join.interest_radius, Some(50.0));
    // An integer campaign id is read as its decimal text.
    let f = decode_client_text(r#"{"type":"session:join:v1:requested","payload":{"token":"t"},"metadata":{"campaign_id":7}}"#).unwrap();
    assert_eq!(f.metadata.campaign_id, "7");
}

#[test]
fn inputs_round_trip_with_defaults_and_ack() {
    let f = decode_client_text(&frame(
        names::CLIENT_INPUT,
        json!({"ack": 99, "inputs": [
            {"seq": 1, "movement": [0.5, -1.0], "look": [0.0, 0.0, 1.0], "jump": true},
            {"seq": 2, "tick": 120, "run": true}
        ]}),
    ))
    .unwrap();
    let ClientMessage::Inputs { inputs, ack } = f.message else {
        panic!()
    };
    assert_eq!(ack, Some(99));
    assert_eq!(
        inputs,
        vec![
            PlayerInput {
                seq: 1,
                tick: None,
                movement: [0.5, -1.0],
                look: [0.0, 0.0, 1.0],
                jump: true,
                run: false
            },
            PlayerInput {
                seq: 2,
                tick: Some(120),
                movement: [0.0, 0.0],
                look: [0.0; 3],
                jump: false,
                run: true
            },
        ]
    );
    // An ack alone is fine; so is the single-input movement event.
    let f = decode_client_text(&frame(names::CLIENT_INPUT, json!({"ack": 5}))).unwrap();
    assert_eq!(
        f.message,
        ClientMessage::Inputs {
            inputs: vec![],
            ack: Some(5)
        }
    );
    let f = decode_client_text(&frame(
        names::MOVEMENT,
        json!({"seq": 3, "movement": [1, 0]}),
    ))
    .unwrap();
    let ClientMessage::Inputs { inputs, ack: None } = f.message else {
        panic!()
    };
    assert_eq!(inputs[0].seq, 3);
    assert_eq!(inputs[0].movement, [1.0, 0.0]);
}

#[test]
fn every_other_message_type_decodes() {
    let cases = [
        (names::SESSION_LEAVE, json!({"reason": "bye"})),
        (names::SESSION_ACK_REQUEST, json!({"tick": 10})),
        (names::SESSION_ACK_REQUEST, json!({"resync": true})),
        (
            names::SESSION_PING,
            json!({"nonce": 4, "client_time": 12.5}),
        ),
        (
            names::ACTION,
            json!({"action": "wave", "target": 3, "args": {"n": 1}}),
        ),
        (
            names::OBJECT_UPDATE_REQUEST,
            json!({"id": 3, "rotation": [0, 0, 0, 2], "properties": {"c": 1}}),
        ),
        (names::ENVIRONMENT_STATE_REQUEST, json!({})),
        (
            names::ENVIRONMENT_EDIT,
            json!({"op": "set_weather", "kind": "rain", "transition_seconds": 4}),
        ),
        (
            names::INTERACTION_REQUEST,
            json!({"kind": "pickup", "target": 7, "request_id": 2}),
        ),
        (
            names::INTERACTION_REQUEST,
            json!({"kind": "paint_wall", "target": 7}),
        ),
        (names::INTERACTION_PICKUP, json!({"target": 7})),
        (
            names::INTERACTION_DROP,
            json!({"args": {"velocity": [0, 1, 0]}}),
        ),
        (names::INTERACTION_USE, json!({"target": 7, "kind": "use"})),
        (names::INTERACTION_DESTROY, json!({"target": 7})),
        (
            names::INTERACTION_BUILD,
            json!({"build": {"kind": "static", "shape": {"type": "box", "half_extents": [1, 1, 1]}, "position": [0, 1, 0]}}),
        ),
    ];
    for (r#type, payload) in cases {
        let f = decode_client_text(&frame(r#type, payload.clone()))
            .unwrap_or_else(|e| panic!("{type} {payload}: {e}"));
        assert_eq!(f.r#type, r#type);
        match (r#type, &f.message) {
            (names::SESSION_LEAVE, ClientMessage::Leave { reason }) => {
                assert_eq!(reason.as_deref(), Some("bye"))
            }
            (names::SESSION_ACK_REQUEST, ClientMessage::Ack { tick, resync }) => {
                assert!(tick.is_some() || *resync)
            }
            (names::SESSION_PING, ClientMessage::Ping { nonce, client_time }) => {
                assert_eq!((*nonce, *client_time), (Some(4), Some(12.5)))
            }
            (names::ACTION, ClientMessage::Action(a)) => {
                assert_eq!((a.action.as_str(), a.target), ("wave", Some(3)))
            }
            (names::OBJECT_UPDATE_REQUEST, ClientMessage::ObjectUpdate(u)) => {
                assert_eq!(u.rotation, Some([0.0, 0.0, 0.0, 1.0]), "normalised");
                assert!(u.position.is_none() && u.properties.is_some());
            }
            (names::ENVIRONMENT_STATE_REQUEST, ClientMessage::EnvironmentStateRequest) => {}
            (names::ENVIRONMENT_EDIT, ClientMessage::EnvironmentEdit(cmd)) => assert_eq!(
                *cmd,
                EnvironmentCommand::SetWeather {
                    kind: WeatherKind::Rain,
                    transition_seconds: 4.0
                }
            ),
            (_, ClientMessage::Interaction(req)) => {
                let expected = match r#type {
                    names::INTERACTION_PICKUP => InteractionKind::Pickup,
                    names::INTERACTION_DROP => InteractionKind::Drop,
                    names::INTERACTION_USE => InteractionKind::Use,
                    names::INTERACTION_DESTROY => InteractionKind::Destroy,
                    names::INTERACTION_BUILD => InteractionKind::Build,
                    _ if payload["kind"] == "pickup" => InteractionKind::Pickup,
                    _ => InteractionKind::Custom("paint_wall".into()),
                };
                assert_eq!(req.kind, expected);
                if r#type == names::INTERACTION_BUILD {
                    assert!(req.build.is_some());
                }
            }
            (t, m) => panic!("{t} decoded to {m:?}"),
        }
    }
}

#[test]
fn malformed_json_and_envelopes_are_refused() {
    assert_eq!(code_of("{not json"), codes::MALFORMED_JSON);
    assert_eq!(code_of("[1, 2]"), codes::MALFORMED_JSON);
    assert_eq!(code_of("\"text\""), codes::MALFORMED_JSON);
    assert_eq!(code_of("1e999"), codes::MALFORMED_JSON);
    assert_eq!(code_of(r#"{"payload": {}}"#), codes::MALFORMED_ENVELOPE);
    assert_eq!(code_of(r#"{"type": 5}"#), codes::MALFORMED_ENVELOPE);
    assert_eq!(
        code_of(r#"{"type": "session:ping:v1:requested", "metadata": []}"#),
        codes::MALFORMED_ENVELOPE
    );
    assert_eq!(
        code_of(r#"{"type": "session:ping:v1:requested", "metadata": {"campaign_id": true}}"#),
        codes::MALFORMED_ENVELOPE
    );
    assert_eq!(
        code_of(r#"{"type": "session:ping:v1:requested", "metadata": {"client_type": 1}}"#),
        codes::MALFORMED_ENVELOPE
    );
    // Deep nesting is refused by the JSON parser's recursion limit, not by a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(code_of(&deep), codes::MALFORMED_JSON);
}

#[test]
fn unknown_types_and_wrong_directions_are_refused() {
    assert_eq!(
        code_of(&frame("physics:teleport:v1:requested", json!({}))),
        codes::UNKNOWN_TYPE
    );
    assert_eq!(
        code_of(&frame("not a type", json!({}))),
        codes::UNKNOWN_TYPE
    );
    assert_eq!(code_of(&frame("", json!({}))), codes::UNKNOWN_TYPE);
    for server_type in names::SERVER_TYPES {
        assert_eq!(
            code_of(&frame(server_type, json!({}))),
            codes::WRONG_DIRECTION,
            "{server_type}"
        );
    }
    // The message names the type, truncated: an attacker cannot make errors huge.
    let long = "x".repeat(10_000);
    let err = decode_client_text(&frame(&long, json!({}))).unwrap_err();
    assert!(err.message.len() < 200, "{}", err.message.len());
}

#[test]
fn invalid_payloads_name_the_field() {
    let cases = [
        (names::SESSION_JOIN, json!({}), "payload.token"),
        (names::SESSION_JOIN, json!({"token": ""}), "payload.token"),
        (names::SESSION_JOIN, json!({"token": 5}), "payload.token"),
        (
            names::SESSION_JOIN,
            json!({"token": "a", "interest_radius": -1}),
            "payload.interest_radius",
        ),
        (names::SESSION_ACK_REQUEST, json!({}), "payload.tick"),
        (
            names::SESSION_ACK_REQUEST,
            json!({"tick": -1}),
            "payload.tick",
        ),
        (
            names::SESSION_ACK_REQUEST,
            json!({"tick": 1.5}),
            "payload.tick",
        ),
        (names::CLIENT_INPUT, json!({}), "payload.inputs"),
        (names::CLIENT_INPUT, json!({"inputs": {}}), "payload.inputs"),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [5]}),
            "payload.inputs[0]",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"movement": [0, 0]}]}),
            "payload.inputs[0].seq",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 4294967296u64}]}),
            "payload.inputs[0].seq",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1}, {"seq": 2, "movement": [2, 0]}]}),
            "payload.inputs[1].movement[0]",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1, "movement": [0]}]}),
            "payload.inputs[0].movement",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1, "look": [0, "a", 0]}]}),
            "payload.inputs[0].look[1]",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1, "jump": "yes"}]}),
            "payload.inputs[0].jump",
        ),
        (
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1, "look": [0, 1e39, 0]}]}),
            "payload.inputs.[0].look[1]",
        ),
        (names::MOVEMENT, json!({"movement": [0, 0]}), "payload.seq"),
        (names::ACTION, json!({"action": ""}), "payload.action"),
        (
            names::ACTION,
            json!({"action": "x", "args": []}),
            "payload.args",
        ),
        (names::OBJECT_UPDATE_REQUEST, json!({"id": 1}), "payload"),
        (
            names::OBJECT_UPDATE_REQUEST,
            json!({"id": 1, "rotation": [0, 0, 0, 0]}),
            "payload.rotation",
        ),
        (
            names::OBJECT_UPDATE_REQUEST,
            json!({"position": [0, 0, 0]}),
            "payload.id",
        ),
        (
            names::ENVIRONMENT_EDIT,
            json!({"op": "melt_world"}),
            "payload",
        ),
        (
            names::ENVIRONMENT_EDIT,
            json!({"op": "set_wind"}),
            "payload",
        ),
        (
            names::INTERACTION_REQUEST,
            json!({"target": 1}),
            "payload.kind",
        ),
        (
            names::INTERACTION_REQUEST,
            json!({"kind": "Pick Up"}),
            "payload.kind",
        ),
        (
            names::INTERACTION_PICKUP,
            json!({"kind": "drop"}),
            "payload.kind",
        ),
        (names::INTERACTION_BUILD, json!({}), "payload.build"),
        (
            names::INTERACTION_BUILD,
            json!({"build": {"kind": "static"}}),
            "payload.build",
        ),
        (names::SESSION_PING, json!({"nonce": "n"}), "payload.nonce"),
        ("session:join:v1:requested", json!([]), "payload"),
    ];
    for (r#type, payload, path) in cases {
        let err = decode_client_text(&frame(r#type, payload.clone()))
            .expect_err(&format!("{type} {payload} should be refused"));
        assert_eq!(err.code, codes::INVALID_PAYLOAD, "{type} {payload}: {err}");
        let path = path.replace(".[", "[");
        assert!(
            err.message.starts_with(&path),
            "{type} {payload}: {:?} should start with {path}",
            err.message
        );
    }
    // Joining needs a campaign in the metadata.
    let err = decode_client_text(r#"{"type":"session:join:v1:requested","payload":{"token":"t"}}"#)
        .unwrap_err();
    assert_eq!(err.code, codes::INVALID_PAYLOAD);
    assert!(err.message.starts_with("metadata.campaign_id"));
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_inputs_per_message: 2,
        max_token_bytes: 8,
        max_name_bytes: 4,
        max_properties_bytes: 16,
        ..Limits::default()
    };
    let decode = |t: &str, p: serde_json::Value| decode_client_text_with(&frame(t, p), &limits);
    let inputs = json!({"inputs": [{"seq": 1}, {"seq": 2}, {"seq": 3}]});
    assert_eq!(
        decode(names::CLIENT_INPUT, inputs).unwrap_err().code,
        codes::LIMIT_EXCEEDED
    );
    assert_eq!(
        decode(names::SESSION_JOIN, json!({"token": "123456789"}))
            .unwrap_err()
            .code,
        codes::LIMIT_EXCEEDED
    );
    assert_eq!(
        decode(names::ACTION, json!({"action": "dance"}))
            .unwrap_err()
            .code,
        codes::LIMIT_EXCEEDED
    );
    let args = json!({"action": "a", "args": {"long": "xxxxxxxxxxxxxxxx"}});
    assert_eq!(
        decode(names::ACTION, args).unwrap_err().code,
        codes::LIMIT_EXCEEDED
    );
    assert!(
        decode(
            names::CLIENT_INPUT,
            json!({"inputs": [{"seq": 1}, {"seq": 2}]})
        )
        .is_ok()
    );
    let binary = encode_client_inputs(&[input(1), input(2), input(3)], None);
    assert_eq!(
        decode_client_binary_with(&binary, &limits)
            .unwrap_err()
            .code,
        codes::LIMIT_EXCEEDED
    );
}

fn input(seq: u32) -> PlayerInput {
    PlayerInput {
        seq,
        tick: None,
        movement: [0.0; 2],
        look: [0.0; 3],
        jump: false,
        run: false,
    }
}

#[test]
fn binary_inputs_round_trip_within_their_quantisation() {
    let mut rng = Rng::new(7);
    for _ in 0..500 {
        let count = rng.below(10) as usize;
        let inputs: Vec<PlayerInput> = (0..count)
            .map(|i| PlayerInput {
                seq: i as u32 * 3 + rng.below(3) as u32,
                tick: rng.chance(0.5).then(|| rng.next_u64() >> 20),
                movement: [rng.range(-1.0, 1.0), rng.range(-1.0, 1.0)],
                look: if rng.chance(0.3) {
                    [0.0; 3]
                } else {
                    rng.vec3(5.0)
                },
                jump: rng.chance(0.5),
                run: rng.chance(0.5),
            })
            .collect();
        let ack = rng.chance(0.5).then(|| rng.next_u64() >> 16);
        let frame = decode_client_binary(&encode_client_inputs(&inputs, ack)).unwrap();
        assert_eq!(frame.r#type, names::CLIENT_INPUT);
        let ClientMessage::Inputs {
            inputs: decoded,
            ack: decoded_ack,
        } = frame.message
        else {
            panic!()
        };
        assert_eq!(decoded_ack, ack);
        assert_eq!(decoded.len(), inputs.len());
        for (d, i) in decoded.iter().zip(&inputs) {
            assert_eq!(
                (d.seq, d.tick, d.jump, d.run),
                (i.seq, i.tick, i.jump, i.run)
            );
            for axis in 0..2 {
                assert!((d.movement[axis] - i.movement[axis]).abs() <= 0.5 / 127.0 + 1e-6);
            }
            let length = i.look.iter().map(|c| c * c).sum::<f32>().sqrt();
            for axis in 0..3 {
                let expected = if length > 1e-6 {
                    i.look[axis] / length
                } else {
                    0.0
                };
                assert!((d.look[axis] - expected).abs() <= 1.0 / 32767.0 + 1e-6);
            }
        }
    }
    let frame = decode_client_binary(&encode_client_ack(123_456)).unwrap();
    assert_eq!(
        frame.message,
        ClientMessage::Ack {
            tick: Some(123_456),
            resync: false
        }
    );
}

#[test]
fn malformed_binary_frames_are_refused() {
    let good = encode_client_inputs(&[input(1)], Some(9));
    assert!(decode_client_binary(&good).is_ok());
    assert_eq!(
        decode_client_binary(&[]).unwrap_err().code,
        codes::MALFORMED_BINARY
    );
    assert_eq!(
        decode_client_binary(&[2, 0x81]).unwrap_err().code,
        codes::MALFORMED_BINARY
    );
    assert_eq!(
        decode_client_binary(&[1, 0x99]).unwrap_err().code,
        codes::UNKNOWN_TYPE
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        decode_client_binary(&trailing).unwrap_err().code,
        codes::MALFORMED_BINARY
    );
    for cut in 1..good.len() {
        assert_eq!(
            decode_client_binary(&good[..cut]).unwrap_err().code,
            codes::MALFORMED_BINARY,
            "cut {cut}"
        );
    }
    // Unknown flag bits, and the forbidden -128 movement byte.
    assert_eq!(
        decode_client_binary(&[1, 0x81, 0, 1, 1, 0x10, 0, 0])
            .unwrap_err()
            .code,
        codes::MALFORMED_BINARY
    );
    assert_eq!(
        decode_client_binary(&[1, 0x81, 0, 1, 1, 0, 0x80, 0])
            .unwrap_err()
            .code,
        codes::MALFORMED_BINARY
    );
    // A huge count does not allocate: it fails on the limit first.
    let err = decode_client_binary(&[1, 0x81, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
    assert_eq!(err.code, codes::LIMIT_EXCEEDED);
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(99);
    for _ in 0..20_000 {
        let len = rng.below(40) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if rng.chance(0.5) && bytes.len() >= 2 {
            bytes[0] = 1;
            bytes[1] = if rng.chance(0.5) { 0x81 } else { 0x82 };
        }
        let _ = decode_client_binary(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = decode_client_text(text);
        }
    }
}
