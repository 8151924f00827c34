//! The conformance echo (`GatewayConfig::echo_path`) that `scripts/conformance` runs the
//! Autobahn cases against: it echoes, keeps the game endpoint's size cap and close codes, and
//! exists only when configured.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn echo_config() -> nexus_gateway::GatewayConfig {
    let mut config = dev_config();
    config.echo_path = Some("/echo".into());
    config.session.hard_max_frame_bytes = 64 * 1024;
    config.limits.max_frame_bytes = 32 * 1024;
    config
}

async fn connect_echo(gateway: &nexus_gateway::GatewayHandle) -> Ws {
    let url = format!("ws://{}/echo", gateway.local_addr());
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

async fn next_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a message in time")
        .expect("the connection is open")
        .expect("a valid frame")
}

#[tokio::test]
async fn text_and_binary_messages_come_back_unchanged() {
    let gateway = start(echo_config());
    let mut ws = connect_echo(&gateway).await;
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("héllo"));
    // Above the game endpoint's soft frame limit but within the hard cap: still echoed (the soft
    // limit is a session rule, not the WebSocket stack's).
    let big = vec![7u8; 40 * 1024];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::binary(big));
    ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    assert_eq!(
        next_message(&mut ws).await,
        Message::Pong(b"p".to_vec().into())
    );
    ws.close(None).await.unwrap();
    // The server answers the close and the connection ends.
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(_))) => continue,
            Some(Ok(other)) => panic!("after close: {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
}

#[tokio::test]
async fn a_frame_above_the_hard_cap_is_closed_with_1009_like_the_game_endpoint() {
    let gateway = start(echo_config());
    let mut ws = connect_echo(&gateway).await;
    let _ = ws.send(Message::binary(vec![0u8; 100 * 1024])).await;
    match next_message(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1009);
            assert!(
                frame.reason.starts_with("frame_too_large: "),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // Others are not affected.
    let mut other = connect_echo(&gateway).await;
    other.send(Message::text("still here")).await.unwrap();
    assert_eq!(next_message(&mut other).await, Message::text("still here"));
}

#[tokio::test]
async fn there_is_no_echo_unless_configured() {
    let gateway = start(dev_config());
    let response = http_get(&gateway, "/echo").await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

#[test]
fn an_echo_path_that_takes_a_gateway_route_is_a_configuration_error() {
    for path in ["/ws", "/metrics", "/health", "echo"] {
        let mut config = dev_config();
        config.echo_path = Some(path.into());
        let err = nexus_gateway::Gateway::start(config).unwrap_err();
        assert!(err.to_string().contains("echo_path"), "{path}: {err}");
    }
}
