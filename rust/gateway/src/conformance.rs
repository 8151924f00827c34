//! The WebSocket conformance echo ([`GatewayConfig::echo_path`](crate::GatewayConfig::echo_path)),
//! so the Autobahn cases (`scripts/conformance`) test the stack the game endpoint runs on:
//! this module only adds "send every message back" to what the game endpoint's session does at the
//! WebSocket level: pings answered by tungstenite, the close handshake answered and drained for
//! `close_grace`, protocol violations closed with the same codes as a session
//! ([`session::violation`]).

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::outbox::CloseRequest;
use crate::session;
use crate::shared::Shared;
use crate::wire::codes;

/// Echoes `ws` until the peer closes, breaks the protocol or the gateway shuts down.
pub(crate) async fn echo(mut ws: WebSocket, shared: &Shared, shutdown: CancellationToken) {
    let grace = shared.config.session.close_grace;
    let hard_max_frame_bytes = shared.config.session.hard_max_frame_bytes;
    loop {
        let message = tokio::select! {
            message = ws.next() => message,
            _ = shutdown.cancelled() => {
                let shutting_down = CloseRequest {
                    code: close_code::AWAY,
                    reason_code: codes::SHUTTING_DOWN.into(),
                    message: "the server is shutting down".into(),
                    discard_pending: true,
                };
                close(&mut ws, &shutting_down, grace).await;
                return;
            }
        };
        let echoed = match message {
            None => return,
            Some(Ok(Message::Text(text))) => Message::Text(text),
            Some(Ok(Message::Binary(bytes))) => Message::Binary(bytes),
            // tungstenite answers pings by itself and ignores pongs.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) => {
                // tungstenite queued the answer: keep reading so it is flushed, and so the peer
                // (who closes the TCP connection first, as RFC 6455 wants) is waited for.
                drain(&mut ws, grace).await;
                return;
            }
            Some(Err(err)) => {
                if let Some((code, reason_code, message)) =
                    session::violation(&err, hard_max_frame_bytes)
                {
                    let violated = CloseRequest {
                        code,
                        reason_code: reason_code.into(),
                        message,
                        discard_pending: true,
                    };
                    close(&mut ws, &violated, grace).await;
                }
                return;
            }
        };
        if ws.send(echoed).await.is_err() {
            return;
        }
    }
}

/// Sends the close frame a session would, then waits for the peer's answer.
async fn close(ws: &mut WebSocket, request: &CloseRequest, grace: std::time::Duration) {
    let frame = CloseFrame {
        code: request.code,
        reason: request.reason().into(),
    };
    if tokio::time::timeout(grace, ws.send(Message::Close(Some(frame))))
        .await
        .is_ok_and(|sent| sent.is_ok())
    {
        drain(ws, grace).await;
    }
}

/// Reads until the peer closes the connection, for at most `grace`.
async fn drain(ws: &mut WebSocket, grace: std::time::Duration) {
    let _ = tokio::time::timeout(grace, async { while ws.next().await.is_some() {} }).await;
}
