//! The listener: accepts sockets, serves HTTP/1.1 on each (hyper, with the axum router of
//! [`crate::routes`]) and keeps the socket budget.
//!
//! How it works (after mini-redis): [`run`] is the accept loop, with back-off on accept errors
//! (e.g. out of file descriptors) and a [`CancellationToken`] for shutdown; each socket gets its own
//! task, tracked by a [`TaskTracker`] so shutdown can wait for every connection to say goodbye.
//! Every socket counts against a budget (connection limit + refusal budget) until it closes:
//! sockets beyond it are dropped unanswered, those within it get an answer, a refused WebSocket a
//! close frame with the reason.
//!
//! Each connection serves one request (`Connection: close`), as before the move to hyper: an idle
//! keep-alive socket would hold a place in the budget for nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::routes::{self, Connection};
use crate::shared::{Shared, SocketSlot, supervised};

/// Longest request head accepted (hyper answers 431 beyond; its minimum is 8 KiB).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The accept loop. Returns once `shutdown` fires and every connection task has finished (or
/// the grace period ran out); the listening socket is closed before waiting.
pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let app = routes::router(shared.clone());
    let mut backoff = Duration::from_millis(1);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(1);
                let Some(slot) = SocketSlot::try_new(&shared) else {
                    // Past the refusal budget: answering would cost what we lack. Drop it.
                    Metrics::inc(&shared.metrics.rejected_overload);
                    tracing::debug!(%peer, "socket dropped: past the connection and refusal budget");
                    continue;
                };
                let connection = Connection {
                    peer,
                    local: stream.local_addr().ok(),
                    shutdown: shutdown.clone(),
                    tracker: tracker.clone(),
                    socket: Arc::new(slot),
                };
                let task = serve_socket(stream, connection, shared.clone(), app.clone())
                    .instrument(tracing::debug_span!("connection", %peer));
                tracker.spawn(supervised(shared.clone(), task));
            }
            Err(error) => {
                // Typically EMFILE/ENFILE: wait for sockets to close instead of spinning.
                tracing::warn!(%error, retry_in = ?backoff, "accepting a connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    tracing::debug!(
        connections = tracker.len(),
        "stopped accepting; closing connections"
    );
    tracker.close();
    // Connections close themselves on the same token within the close grace; the bound only
    // guards against a task stuck somewhere unexpected.
    let bound = shared.config.session.close_grace * 3 + Duration::from_secs(1);
    let _ = tokio::time::timeout(bound, tracker.wait()).await;
}

async fn serve_socket(stream: TcpStream, connection: Connection, shared: Arc<Shared>, app: Router) {
    // State messages are latency-sensitive and already batched per tick.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = shared.tls.clone() else {
        return serve_http(TokioIo::new(stream), connection, shared, app).await;
    };
    // The TLS handshake counts against the handshake time like the request head does.
    let handshake = tokio::select! {
        _ = connection.shutdown.cancelled() => return,
        handshake = tokio::time::timeout(
            shared.config.session.handshake_timeout,
            acceptor.accept(stream),
        ) => handshake,
    };
    match handshake {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), connection, shared, app).await,
        Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Serves the one HTTP exchange of a socket; an upgraded WebSocket carries on in its own task.
pub(crate) async fn serve_http<I>(io: I, connection: Connection, shared: Arc<Shared>, app: Router)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let session_config = &shared.config.session;
    let shutdown = connection.shutdown.clone();
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(connection.clone());
            let response = app.clone().oneshot(request.map(Body::new));
            let shared = shared.clone();
            async move {
                let response = response.await?;
                if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                    Metrics::inc(&shared.metrics.http_requests);
                }
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(session_config.handshake_timeout)
        .keep_alive(false)
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    // The whole exchange (head, answer, handshake) is bounded like the head alone was: a peer
    // that does not read its answer does not keep the socket.
    let bound = session_config.handshake_timeout + session_config.close_grace;
    let result = tokio::select! {
        result = tokio::time::timeout(bound, conn.as_mut()) => result,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(session_config.close_grace, conn.as_mut()).await
        }
    };
    match result {
        Ok(Err(err)) if err.is_parse() || err.is_parse_too_large() => {
            // hyper answered a request it could not parse (400, or 431 for a huge head) itself.
            Metrics::inc(&shared.metrics.http_requests);
            tracing::debug!(%err, "unparsable HTTP request");
        }
        Ok(Err(err)) => tracing::trace!(%err, "HTTP connection ended"),
        Ok(Ok(())) => {}
        Err(_) => tracing::debug!("HTTP exchange timed out"),
    }
}
