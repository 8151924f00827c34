//! Bad input and limits over real sockets: every case gets a clear error event or a close frame
//! with a reason, and the server and the other clients carry on.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use nexus_gateway::HostEvent;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn malformed_json_gets_an_error_and_the_connection_carries_on() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    for garbage in [
        "{",
        "not json",
        "[1,2,3]",
        "\"just a string\"",
        "{\"type\": 5}",
    ] {
        client.send_text(garbage).await;
        let error = client.next_error().await;
        let code = error["code"].as_str().unwrap();
        assert!(
            code == "malformed_json" || code == "malformed_envelope",
            "{garbage:?} -> {error}"
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    client.round_trip("0", 1).await;
}

#[tokio::test]
async fn unknown_types_and_invalid_payloads_get_errors() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;

    client
        .send_json(&envelope("physics:teleport:v1:requested", "0", json!({})))
        .await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "unknown_type");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("physics:teleport")
    );

    client
        .send_json(&envelope("physics:world_state:v1:stream", "0", json!({})))
        .await;
    assert_eq!(client.next_error().await["code"], "wrong_direction");

    client
        .send_json(&envelope(
            "physics:movement:v1:requested",
            "0",
            json!({"seq": 1, "movement": ["fast", 0]}),
        ))
        .await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "invalid_payload");
    assert!(error["message"].as_str().unwrap().contains("movement"));
    client.round_trip("0", 2).await;
}

#[tokio::test]
async fn oversized_frames_get_an_error_and_giant_ones_close_with_1009() {
    let mut config = dev_config();
    config.limits.max_frame_bytes = 1024;
    config.session.hard_max_frame_bytes = 8 * 1024;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;

    // Above the limit but below the hard cap: skipped with an error, the connection goes on.
    let padding = "x".repeat(2000);
    client
        .send_json(&envelope(
            "session:ping:v1:requested",
            "0",
            json!({"pad": padding}),
        ))
        .await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "frame_too_large");
    assert!(error["message"].as_str().unwrap().contains("1024"));
    client
        .ws
        .send(Message::binary(vec![0u8; 4000]))
        .await
        .unwrap();
    assert_eq!(client.next_error().await["code"], "frame_too_large");
    client.round_trip("0", 3).await;

    // Above the hard cap: cannot be skipped; closed with 1009 and a reason.
    let giant = "y".repeat(20 * 1024);
    let _ = client.ws.send(Message::text(giant)).await;
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Size);
    assert!(
        close.reason.starts_with("frame_too_large"),
        "{}",
        close.reason
    );
    assert_eq!(gateway.metrics().disconnects_oversized, 1);
}

#[tokio::test]
async fn flooding_inputs_are_rate_limited_then_disconnected() {
    let mut config = dev_config();
    config.limits.max_messages_per_second = 20;
    config.limits.max_inputs_per_second = 20;
    config.session.flood_tolerance = 30;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    let mut bystander = connect(&gateway).await;
    join_fake(&mut bystander, &link, "0", "Bob").await;

    let mut sent = 0;
    for seq in 1..=400u32 {
        let message = envelope(
            "physics:movement:v1:requested",
            "0",
            json!({"seq": seq, "movement": [0.0, 1.0]}),
        );
        if client
            .ws
            .send(Message::text(message.to_string()))
            .await
            .is_err()
        {
            break; // already closed on us
        }
        sent += 1;
    }
    assert!(sent > 60);
    let error = client.next_error().await;
    assert_eq!(error["code"], "rate_limited");
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.starts_with("rate_limited"), "{}", close.reason);
    let metrics = gateway.metrics();
    assert_eq!(metrics.disconnects_flood, 1);
    assert!(metrics.inputs_rejected >= 30, "{metrics:?}");
    // Only what the bucket allowed reached the host: about the burst (the join took a token too)
    // plus the refill while sending.
    let inputs: usize = link
        .poll()
        .iter()
        .filter_map(|e| match e {
            HostEvent::Inputs { inputs, .. } => Some(inputs.len()),
            _ => None,
        })
        .sum();
    assert!(
        (10..sent / 2).contains(&inputs),
        "{inputs} inputs of {sent} reached the host"
    );
    // The other client carries on.
    bystander.round_trip("0", 4).await;
}

#[tokio::test]
async fn too_many_connections_are_refused_with_a_reason() {
    let mut config = dev_config();
    config.limits.max_connections = 2;
    let gateway = start(config);
    let mut first = connect(&gateway).await;
    let _second = connect(&gateway).await;
    let mut third = connect(&gateway).await;
    let close = third.expect_close().await;
    assert_eq!(close.code, CloseCode::Again);
    assert!(
        close.reason.starts_with("too_many_connections"),
        "{}",
        close.reason
    );
    assert_eq!(gateway.metrics().connections_rejected_total_limit, 1);
    first.round_trip("", 1).await;
    // A slot frees up when a client leaves.
    drop(first);
    wait_metrics(&gateway, "one connection", |m| m.connections_open == 1).await;
    let mut fourth = connect(&gateway).await;
    fourth.round_trip("", 2).await;
}

#[tokio::test]
async fn too_many_connections_from_one_address_are_refused() {
    let mut config = dev_config();
    config.limits.max_connections_per_address = 1;
    let gateway = start(config);
    let mut first = connect(&gateway).await;
    let mut second = connect(&gateway).await;
    let close = second.expect_close().await;
    assert_eq!(close.code, CloseCode::Again);
    assert!(close.reason.contains("address"), "{}", close.reason);
    assert_eq!(gateway.metrics().connections_rejected_address_limit, 1);
    first.round_trip("", 1).await;
}

#[tokio::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    let mut config = dev_config();
    config.limits.idle_timeout_secs = 1;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    // Not reading means not answering pings: the server hears nothing.
    wait_metrics(&gateway, "an idle disconnect", |m| m.disconnects_idle == 1).await;
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.starts_with("idle_timeout"), "{}", close.reason);
    let left = wait_event(&link, |e| matches!(e, HostEvent::ClientLeft { .. })).await;
    assert!(matches!(left, HostEvent::ClientLeft { .. }));
}

#[tokio::test]
async fn clients_that_answer_pings_stay_connected() {
    let mut config = dev_config();
    // Pings every second; a 3 s margin keeps a busy test machine from failing this.
    config.limits.idle_timeout_secs = 3;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    // Keep reading (tungstenite answers the server's pings) across several idle periods, until
    // the server has pinged us at least 3 times; we are still connected.
    let mut pings = 0;
    while pings < 3 {
        let message = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut client.ws))
            .await
            .expect("pings keep coming")
            .expect("still open")
            .expect("valid frame");
        match message {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
    client.round_trip("0", 9).await;
    assert_eq!(gateway.metrics().disconnects_idle, 0);
}

#[tokio::test]
async fn clients_that_never_join_are_closed_after_the_join_timeout() {
    let mut config = dev_config();
    config.session.join_timeout = Duration::from_millis(200);
    let gateway = start(config);
    let mut client = connect(&gateway).await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "join_timeout");
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Policy);
    assert!(close.reason.starts_with("join_timeout"), "{}", close.reason);
}

#[tokio::test]
async fn host_overload_answers_server_busy_but_never_loses_a_leave() {
    let mut config = dev_config();
    config.session.host_queue_capacity = 4;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    let client_id = join_fake(&mut client, &link, "0", "Ada").await;
    // The host does not poll: after 4 queued requests, the rest are refused.
    for seq in 1..=6 {
        client
            .send_json(&envelope(
                "physics:movement:v1:requested",
                "0",
                json!({"seq": seq, "movement": [0.0, 1.0]}),
            ))
            .await;
    }
    assert_eq!(client.next_error().await["code"], "server_busy");
    drop(client);
    // The leave still got through, after the 4 accepted inputs.
    let left = wait_event(&link, |e| matches!(e, HostEvent::ClientLeft { .. })).await;
    assert_eq!(left.client_id(), client_id);
}

/// Opens a WebSocket by hand, then sends `frames` byte for byte (masking and all), bypassing the
/// client library's own checks: invalid opcodes, bad UTF-8 in text frames, reserved bits. Returns
/// everything the server sent after its handshake response.
async fn raw_frames(gateway: &nexus_gateway::GatewayHandle, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut stream = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        gateway.local_addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // A client may only send frames once the server accepted the upgrade.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("handshake answer in time")
            .unwrap();
        assert_eq!(n, 1, "the server closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    for frame in frames {
        if stream.write_all(frame).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    answer
}

/// A masked client frame (mask key zero keeps the payload readable).
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn protocol_violations_close_the_connection_without_harming_others() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut bystander = connect(&gateway).await;
    join_fake(&mut bystander, &link, "0", "Bob").await;
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![frame(0x81, &[0xff, 0xfe, 0xfd])], // text frame, invalid UTF-8
        vec![frame(0x83, b"?")],                // reserved opcode
        vec![frame(0xC1, b"{}")],               // RSV1 without an extension
        vec![frame(0x01, b"{"), frame(0x81, b"}")], // data frame inside a fragmented message
        vec![vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o']], // unmasked client frame
        vec![frame(0x89, &[b'p'; 200])],        // control frame payload > 125
        vec![b"\x00\x01garbage that is not a websocket frame at all".to_vec()],
    ];
    for frames in cases {
        let answer = raw_frames(&gateway, &frames).await;
        // A close frame (opcode 8) saying why: 1002 protocol error or 1007 invalid data.
        assert!(
            answer.len() >= 4 && answer[0] == 0x88,
            "{frames:?} -> {answer:?}"
        );
        let code = u16::from_be_bytes([answer[2], answer[3]]);
        assert!(
            code == 1002 || code == 1007,
            "{frames:?} -> close code {code}"
        );
        let reason = String::from_utf8_lossy(&answer[4..]);
        assert!(reason.starts_with("protocol_violation"), "{reason}");
    }
    bystander.round_trip("0", 5).await;
    assert_eq!(gateway.metrics().task_panics, 0);
}

#[tokio::test]
async fn garbage_frames_never_panic_and_others_carry_on() {
    let mut config = dev_config();
    // Exercise decoding, not the rate limiter.
    config.limits.max_messages_per_second = 100_000;
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut bystander = connect(&gateway).await;
    join_fake(&mut bystander, &link, "0", "Bob").await;
    let mut fuzzer = connect(&gateway).await;
    join_fake(&mut fuzzer, &link, "0", "Fuzz").await;

    // Deterministic pseudo-random mutations of valid messages, plus raw bytes.
    let seeds = [
        envelope(
            "physics:client_input:v1:requested",
            "0",
            json!({"inputs": [{"seq": 1, "movement": [0.5, 1.0]}]}),
        ),
        envelope(
            "interaction:request:v1:requested",
            "0",
            json!({"kind": "pickup", "target": 3}),
        ),
        envelope(
            "environment:edit:v1:requested",
            "0",
            json!({"op": "edit_terrain", "center": [0, 0], "radius": 2, "delta": 1}),
        ),
        envelope(
            "physics:object_update:v1:requested",
            "0",
            json!({"id": 1, "position": [1, 2, 3]}),
        ),
        envelope("session:ack:v1:requested", "0", json!({"tick": 3})),
        envelope(
            "physics:action:v1:requested",
            "0",
            json!({"action": "wave", "args": {"x": 1}}),
        ),
    ];
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut sent = 0;
    for round in 0..600 {
        let seed = seeds[round % seeds.len()].to_string().into_bytes();
        let mut bytes = seed.clone();
        for _ in 0..(next() % 6 + 1) {
            if bytes.is_empty() {
                bytes.push(b'{');
            }
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => bytes[at] = next() as u8,
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, b"{}[],:\"0-e.\\"[(next() % 12) as usize]),
                _ => bytes.truncate(at.max(1)),
            }
        }
        let message = match String::from_utf8(bytes) {
            Ok(text) => Message::text(text),
            Err(err) => Message::binary(err.into_bytes()),
        };
        if fuzzer.ws.send(message).await.is_err() {
            break;
        }
        sent += 1;
        if round % 50 == 0 {
            // Drain what came back so the fuzzer itself is never a slow consumer.
            fuzzer.round_trip("0", round as u64).await;
        }
    }
    assert_eq!(sent, 600);
    fuzzer.round_trip("0", 10_000).await;
    bystander.round_trip("0", 10_001).await;
    let metrics = gateway.metrics();
    assert_eq!(metrics.task_panics, 0);
    assert!(metrics.errors_sent > 100, "{metrics:?}");
}
