//! The listener: accepts sockets, routes each request head to a plain HTTP answer or to a WebSocket
//! session, and enforces the connection limits.
//!
//! How it works (after mini-redis): [`run`] is the accept loop, with back-off on accept errors
//! (e.g. out of file descriptors) and a [`CancellationToken`] for shutdown; each socket gets its own
//! task, tracked by a [`TaskTracker`] so shutdown can wait for every connection to say goodbye.
//! Limits are checked once the head says "WebSocket": a refused client still gets a proper close
//! frame with a reason, within a small refusal budget beyond which sockets are just dropped.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::campaign::Campaign;
use crate::config::GatewayConfig;
use crate::http::{self, HeadError, PrefixedStream};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::session;
use crate::wire::{self, codes};

/// Read buffer of a connection (see where it is used).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// State shared by every task of one gateway. Cheap to clone (`Arc`).
pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub metrics: Metrics,
    /// Read on every join, written when a campaign opens or closes: a `RwLock` keeps joins
    /// concurrent; never held across an `.await`.
    campaigns: RwLock<HashMap<Arc<str>, Arc<Campaign>>>,
    connections: Mutex<ConnectionCounts>,
    /// Sockets open in any state (head, refusal, session); bounded by limits + refusal budget.
    sockets: AtomicUsize,
    next_client_id: AtomicU32,
}

#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Shared {
    pub fn new(config: GatewayConfig) -> Self {
        Shared {
            config,
            metrics: Metrics::default(),
            campaigns: RwLock::default(),
            connections: Mutex::default(),
            sockets: AtomicUsize::new(0),
            next_client_id: AtomicU32::new(1),
        }
    }

    pub fn campaign(&self, id: &str) -> Option<Arc<Campaign>> {
        let campaigns = self
            .campaigns
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        campaigns.get(id).cloned()
    }

    /// Registers a campaign; false if the id is taken.
    pub fn insert_campaign(&self, campaign: Arc<Campaign>) -> bool {
        let mut campaigns = self
            .campaigns
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if campaigns.contains_key(&campaign.id) {
            return false;
        }
        campaigns.insert(campaign.id.clone(), campaign);
        true
    }

    /// Unregisters `campaign` (only this very campaign, not a newer one with the same id).
    pub fn remove_campaign(&self, campaign: &Arc<Campaign>) {
        let mut campaigns = self
            .campaigns
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if campaigns
            .get(&campaign.id)
            .is_some_and(|c| Arc::ptr_eq(c, campaign))
        {
            campaigns.remove(&campaign.id);
        }
    }

    pub fn next_client_id(&self) -> u32 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut campaigns: Vec<_> = {
            let campaigns = self
                .campaigns
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            campaigns
                .values()
                .map(|c| c.metrics.snapshot(&c.id))
                .collect()
        };
        campaigns.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        self.metrics.snapshot(campaigns)
    }

    /// Reserves a WebSocket connection slot for `ip`, or says which limit refuses it.
    fn reserve_connection(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        let limits = &self.config.limits;
        let mut counts = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counts.total >= limits.max_connections {
            Metrics::inc(&self.metrics.rejected_too_many);
            return Err("the server has too many connections");
        }
        let from_address = counts.per_address.entry(ip).or_insert(0);
        if *from_address >= limits.max_connections_per_address {
            Metrics::inc(&self.metrics.rejected_per_address);
            return Err("too many connections from your address");
        }
        *from_address += 1;
        counts.total += 1;
        Metrics::inc(&self.metrics.connections_open);
        Metrics::inc(&self.metrics.connections_accepted);
        Ok(ConnectionSlot {
            shared: self.clone(),
            ip,
        })
    }
}

/// A reserved WebSocket connection; released on drop.
pub(crate) struct ConnectionSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.ip);
            }
        }
        Metrics::dec(&self.shared.metrics.connections_open);
    }
}

/// One socket counted against the socket budget; released on drop.
struct SocketSlot(Arc<Shared>);

impl SocketSlot {
    fn try_new(shared: &Arc<Shared>) -> Option<SocketSlot> {
        let budget = shared.config.limits.max_connections + shared.config.session.refusal_budget;
        let open = shared.sockets.fetch_add(1, Ordering::AcqRel);
        if open >= budget {
            shared.sockets.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SocketSlot(shared.clone()))
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a task, counting a panic instead of losing it silently; the task's own resources are
/// released by unwinding, and every other connection carries on.
pub(crate) async fn supervised(shared: Arc<Shared>, task: impl Future<Output = ()>) {
    if AssertUnwindSafe(task).catch_unwind().await.is_err() {
        Metrics::inc(&shared.metrics.task_panics);
    }
}

/// The accept loop. Returns once `shutdown` fires and every connection task has finished (or
/// the grace period ran out); the listening socket is closed before waiting.
pub(crate) async fn run(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
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
                    continue;
                };
                let task = handle_socket(
                    stream,
                    peer,
                    shared.clone(),
                    shutdown.clone(),
                    tracker.clone(),
                    slot,
                );
                tracker.spawn(supervised(shared.clone(), task));
            }
            Err(_) => {
                // Typically EMFILE/ENFILE: wait for sockets to close instead of spinning.
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    tracker.close();
    // Connections close themselves on the same token within the close grace; the bound only
    // guards against a task stuck somewhere unexpected.
    let bound = shared.config.session.close_grace * 3 + Duration::from_secs(1);
    let _ = tokio::time::timeout(bound, tracker.wait()).await;
}

async fn handle_socket(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _socket: SocketSlot,
) {
    // State messages are latency-sensitive and already batched per tick.
    let _ = stream.set_nodelay(true);
    let session_config = &shared.config.session;
    let head = tokio::select! {
        _ = shutdown.cancelled() => return,
        head = tokio::time::timeout(session_config.handshake_timeout, http::read_head(&mut stream)) => head,
    };
    let (head, bytes) = match head {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(HeadError::Malformed(why))) => {
            Metrics::inc(&shared.metrics.http_requests);
            let _ = http::respond(
                &mut stream,
                400,
                "text/plain",
                &format!("bad request: {why}\n"),
            )
            .await;
            return;
        }
        Ok(Err(HeadError::TooLarge)) => {
            Metrics::inc(&shared.metrics.http_requests);
            let _ = http::respond(&mut stream, 431, "text/plain", "request head too large\n").await;
            return;
        }
        // The peer went away or was too slow: nobody to answer.
        Ok(Err(HeadError::Eof | HeadError::Io)) | Err(_) => return,
    };

    let is_ws_path = head.path == shared.config.path;
    if head.method != "GET" {
        Metrics::inc(&shared.metrics.http_requests);
        let _ = http::respond(&mut stream, 405, "text/plain", "only GET is served\n").await;
        return;
    }
    if !head.websocket || !is_ws_path {
        Metrics::inc(&shared.metrics.http_requests);
        let (status, content_type, body) = match head.path.as_str() {
            "/metrics" => (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                shared.metrics_snapshot().to_prometheus(),
            ),
            "/health" => (200, "application/json", health_json(&shared)),
            _ if is_ws_path => (
                426,
                "text/plain",
                format!(
                    "{} is a WebSocket endpoint: connect with a WebSocket client\n",
                    shared.config.path
                ),
            ),
            _ => (
                404,
                "text/plain",
                "not found: try /ws, /metrics or /health\n".to_string(),
            ),
        };
        let _ = http::respond(&mut stream, status, content_type, &body).await;
        return;
    }

    let (subprotocol, encoding) = wire::negotiate(&head.subprotocols);
    let slot = shared.reserve_connection(peer.ip());
    let hard = session_config.hard_max_frame_bytes;
    // tungstenite zero-fills the read buffer's free space before every read: its default 128 KiB
    // cost more than the rest of reading a client's small input frames (larger frames still
    // arrive whole, the buffer grows for them).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard));
    // The signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = move |_request: &Request, mut response: Response| {
        if let Some(name) = subprotocol {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
        }
        Ok(response)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        PrefixedStream::new(bytes, stream),
        callback,
        Some(ws_config),
    );
    let mut ws = tokio::select! {
        _ = shutdown.cancelled() => return,
        ws = tokio::time::timeout(session_config.handshake_timeout, handshake) => match ws {
            Ok(Ok(ws)) => ws,
            _ => return, // a broken handshake: tungstenite answered it if it could
        },
    };
    match slot {
        Ok(slot) => {
            session::run(ws, encoding, shared, shutdown, tracker, slot).await;
        }
        Err(why) => {
            // Refused: say why in the close frame, then give the client a moment to read it.
            let frame = CloseFrame {
                code: CloseCode::Again,
                reason: format!("{}: {why}", codes::TOO_MANY_CONNECTIONS).into(),
            };
            let grace = session_config.close_grace;
            let _ = tokio::time::timeout(grace, ws.send(Message::Close(Some(frame)))).await;
            let _ = tokio::time::timeout(grace, async { while ws.next().await.is_some() {} }).await;
        }
    }
}

fn health_json(shared: &Shared) -> String {
    let metrics = shared.metrics_snapshot();
    serde_json::json!({
        "status": "ok",
        "auth_mode": if shared.config.auth.is_development() { "development" } else { "signed" },
        "connections": metrics.connections_open,
        "campaigns": metrics.campaigns.iter().map(|c| {
            serde_json::json!({"id": c.campaign_id, "clients": c.clients, "ticks": c.ticks})
        }).collect::<Vec<_>>(),
    })
    .to_string()
        + "\n"
}
