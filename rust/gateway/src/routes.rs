//! What the port serves, as an axum [`Router`]: the WebSocket endpoint (`/ws`), `/metrics`,
//! `/health`, the web client's files when a web root is configured, a 404 for the rest, and
//! whatever extra routes the embedder merged in
//! ([`GatewayConfig::extra_routes`](crate::GatewayConfig::extra_routes)).
//!
//! How it works: the listener ([`crate::server`]) puts a [`Connection`] into every request's
//! extensions; the WebSocket handler needs it for the per-address limit, the socket budget and
//! shutdown tracking. The upgrade is axum's; once upgraded, the connection is a session
//! ([`crate::session`]) or, past a connection limit, a close frame with the reason.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::ExtensionRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::shared::{ConnectionSlot, Shared, SocketSlot, supervised};
use crate::wire::{self, Encoding, codes};
use crate::{conformance, metrics, session};

/// Read buffer of a connection. tungstenite zero-fills the read buffer's free space before every
/// read: its default 128 KiB cost more than the rest of reading a client's small input frames
/// (larger frames still arrive whole, the buffer grows for them).
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// What the listener knows about the connection a request arrived on.
#[derive(Clone)]
pub(crate) struct Connection {
    pub peer: SocketAddr,
    /// The server's address the client reached (the candidate of its WebRTC peer).
    pub local: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    /// Upgraded sessions run in tasks axum spawns: a token of this tracker keeps shutdown waiting
    /// for them.
    pub tracker: TaskTracker,
    /// The socket's place in the socket budget, held until the socket closes (an upgraded one
    /// outlives the HTTP exchange).
    pub socket: Arc<SocketSlot>,
}

/// The gateway's routes. `extra` (the embedder's routes) is merged in; overlapping paths are a
/// configuration error, checked by [`GatewayConfig::validate`](crate::GatewayConfig::validate).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let path = shared.config.path.clone();
    let extra = shared.config.extra_routes.clone();
    let web_root = shared.config.web_root.clone();
    let echo_path = shared.config.echo_path.clone();
    let routes = Router::new()
        .route(&path, get(websocket))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .with_state(shared.clone());
    let routes = match echo_path {
        Some(echo) => routes.route(&echo, get(echo_websocket).with_state(shared)),
        None => routes,
    };
    let routes = match extra {
        Some(extra) => routes.merge(extra),
        None => routes,
    };
    match web_root {
        Some(root) => routes.fallback_service(web_client_files(root)),
        None => routes.fallback(not_found),
    }
}

/// The built web client under `root`. `ServeDir` resolves paths inside `root` only (`..` and
/// absolute segments are refused), serves `index.html` for directories and a `.gz` sibling when
/// the browser accepts gzip; a miss is the gateway's 404.
fn web_client_files(
    root: std::path::PathBuf,
) -> impl tower::Service<
    axum::extract::Request,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    let files = tower_http::services::ServeDir::new(root)
        .append_index_html_on_directories(true)
        .precompressed_gzip()
        .fallback(tower::service_fn(|_| async {
            Ok::<_, std::convert::Infallible>(not_found().await)
        }));
    tower::ServiceBuilder::new()
        .map_response(|response: axum::http::Response<_>| {
            let mut response = response.map(axum::body::Body::new);
            // Revalidated on every load: a rebuilt page shows on the next reload.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        })
        .service(files)
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: try /ws, /metrics or /health\n".into(),
    )
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        shared.metrics_text(),
    )
        .into_response()
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let metrics = shared.metrics_snapshot();
    // Failing saves degrade the server without taking it out of service: the worlds keep running
    // and their changes stay pending until the disk or database comes back.
    let problems: Vec<String> = metrics
        .campaigns
        .iter()
        .flat_map(|c| {
            let persistence = c.persistence.as_ref();
            let saves = persistence
                .and_then(|p| p.last_error.as_ref())
                .map(|error| format!("campaign {:?}: saves fail: {error}", c.campaign_id));
            // A cluster lease not held: the world is paused (or stopped, once lost).
            let lease = persistence
                .and_then(|p| p.lease.as_ref())
                .filter(|l| l.state != "held" || !l.simulating)
                .map(|l| {
                    format!(
                        "campaign {:?}: lease {} ({}), world {}",
                        c.campaign_id,
                        l.state,
                        l.error.as_deref().unwrap_or("no error"),
                        if l.simulating { "running" } else { "paused" }
                    )
                });
            saves.into_iter().chain(lease)
        })
        .collect();
    let body = serde_json::json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "auth_mode": if shared.config.auth.is_development() { "development" } else { "signed" },
        "connections": metrics.connections_open,
        "campaigns": metrics.campaigns.iter().map(|c| {
            serde_json::json!({"id": c.campaign_id, "clients": c.clients, "ticks": c.ticks,
                "persistence": c.persistence})
        }).collect::<Vec<_>>(),
    })
    .to_string()
        + "\n";
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn websocket(
    State(shared): State<Arc<Shared>>,
    connection: Result<Extension<Connection>, ExtensionRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(Extension(connection)), Ok(mut upgrade)) = (connection, upgrade) else {
        // A plain GET (or a router served by something else than the gateway's listener).
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            format!(
                "{} is a WebSocket endpoint: connect with a WebSocket client\n",
                shared.config.path
            ),
        );
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    };
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let (subprotocol, encoding) = wire::negotiate(&offered);
    if let Some(name) = subprotocol {
        upgrade.set_selected_protocol(HeaderValue::from_static(name));
    }
    let slot = shared.reserve_connection(connection.peer.ip());
    let token = connection.tracker.token();
    configured(upgrade, &shared).on_upgrade(move |ws| async move {
        let _tracked = token;
        let task = upgraded(ws, encoding, shared.clone(), connection, slot);
        supervised(shared, task).await;
    })
}

/// The upgrade settings every WebSocket of the port gets: the game endpoint's, and the
/// conformance echo's, which must be tested with exactly the same.
fn configured(upgrade: WebSocketUpgrade, shared: &Shared) -> WebSocketUpgrade {
    let hard = shared.config.session.hard_max_frame_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(hard)
        .max_frame_size(hard)
}

/// The conformance echo ([`GatewayConfig::echo_path`](crate::GatewayConfig::echo_path)): the same
/// listener, connection limits and upgrade as the game endpoint, then [`conformance::echo`].
async fn echo_websocket(
    State(shared): State<Arc<Shared>>,
    connection: Result<Extension<Connection>, ExtensionRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(Extension(connection)), Ok(upgrade)) = (connection, upgrade) else {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "a WebSocket echo endpoint: connect with a WebSocket client\n".into(),
        );
    };
    let slot = shared.reserve_connection(connection.peer.ip());
    let token = connection.tracker.token();
    configured(upgrade, &shared).on_upgrade(move |ws| async move {
        let _tracked = token;
        let supervisor = shared.clone();
        let task = async move {
            match slot {
                // The slot and the socket's budget place are held until the echo ends.
                Ok(_slot) => {
                    let Connection {
                        shutdown,
                        socket: _socket,
                        ..
                    } = connection;
                    conformance::echo(ws, &shared, shutdown).await;
                }
                Err(why) => refuse(ws, &shared, why).await,
            }
        };
        supervised(supervisor, task).await;
    })
}

async fn upgraded(
    ws: WebSocket,
    encoding: Encoding,
    shared: Arc<Shared>,
    connection: Connection,
    slot: Result<ConnectionSlot, &'static str>,
) {
    match slot {
        Ok(slot) => {
            // `_socket` holds the socket's place in the budget until the session ends.
            let Connection {
                shutdown,
                tracker,
                socket: _socket,
                local,
                ..
            } = connection;
            let reached = local.map(|a| a.ip());
            session::run(ws, encoding, shared, shutdown, tracker, slot, reached).await;
        }
        Err(why) => refuse(ws, &shared, why).await,
    }
}

/// Past a connection limit: say why in the close frame, then give the client a moment to read it.
async fn refuse(mut ws: WebSocket, shared: &Shared, why: &str) {
    let frame = CloseFrame {
        code: close_code::AGAIN,
        reason: format!("{}: {why}", codes::TOO_MANY_CONNECTIONS).into(),
    };
    let grace = shared.config.session.close_grace;
    let _ = tokio::time::timeout(grace, ws.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(grace, async { while ws.next().await.is_some() {} }).await;
}
