//! The WebSocket gateway of Nexus Physics: a tokio thread bridged to the simulation by crossbeam
//! channels.
//!
//! # How it works
//! - [`Gateway::start`] binds the port and starts a background thread that owns a tokio runtime.
//!   One port serves the WebSocket endpoint (`/ws`), `/metrics` (Prometheus text) and `/health`,
//!   on axum/hyper, plus any routes the embedder adds ([`GatewayConfig::extra_routes`]).
//! - A host (the Godot tick thread, or [`CampaignHost`]) opens a campaign with
//!   [`GatewayHandle::open_campaign`] and gets a [`CampaignLink`]: it polls client events
//!   ([`HostEvent`]) and publishes welcomes, snapshots and events. Every link call returns at once;
//!   the link talks to the gateway only through crossbeam channels.
//! - A client connects, sends `session:join:v1:requested` with `metadata.campaign_id` and
//!   `payload.token`, is authenticated ([`AuthMode`]: signed HMAC tokens, or an explicit
//!   development mode), and is welcomed once the host has spawned its avatar. Then it receives the
//!   state stream (per-client deltas, interest, level of detail; JSON or binary by subprotocol)
//!   and reliable events.
//! - Each client has a bounded outbox: state is latest-wins (a slow client gets the newest state;
//!   every replaced one is counted), reliable events are never dropped — a client that cannot keep
//!   up with them is disconnected with `slow_consumer`.
//! - Limits (frame size, message and input rates, connections in total and per address, idle and
//!   join timeouts) answer with an error event, or a close frame with a reason when the client
//!   must go. Nothing a client sends can panic the server.
//! - [`GatewayHandle::shutdown`] (or dropping the handle) closes every connection with a reason,
//!   joins every thread and frees the port.
//!
//! ```no_run
//! use nexus_gateway::{CampaignHost, CampaignHostConfig, Gateway, GatewayConfig};
//! use nexus_sim::{World, WorldConfig};
//!
//! let gateway = Gateway::start(GatewayConfig::development())?;
//! println!("{} ({})", gateway.url(), gateway.auth_mode().describe());
//! let link = gateway.open_campaign("0")?;
//! let mut host = CampaignHost::new(World::new(WorldConfig::default()), link, CampaignHostConfig::default());
//! loop {
//!     host.tick();
//!     std::thread::sleep(std::time::Duration::from_millis(16));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod auth;
mod campaign;
mod config;
mod conformance;
mod gateway;
mod host;
mod link;
mod metrics;
mod outbox;
mod ratelimit;
mod routes;
mod server;
mod session;
mod shared;
mod tls;
mod webrtc;
mod wire;

/// The HTTP framework the gateway serves with, for [`GatewayConfig::extra_routes`].
pub use axum;

pub use auth::{AuthError, AuthMode, Claims, Role, mint_token, verify_token};
pub use config::{DEFAULT_BIND, DEFAULT_PATH, GatewayConfig, GatewayError, SessionConfig};
pub use gateway::{Gateway, GatewayHandle, MAX_CAMPAIGN_ID_LEN};
pub use host::{CampaignHost, CampaignHostConfig, HostNotices, TickStats};
pub use link::{CampaignLink, EventSender, HostEvent, Target};
pub use metrics::{
    CampaignMetricsSnapshot, LeaseHealth, MetricsSnapshot, PersistenceHealth, WebRtcMetricsSnapshot,
};
pub use webrtc::WebRtcConfig;
pub use wire::{ActionRequest, InterestSettings, ObjectUpdateRequest, codes};
