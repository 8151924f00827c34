//! State shared by every task of one gateway, and the slots that count connections against the
//! limits (released on drop, so every exit path gives them back).

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;

use crate::campaign::{Campaign, Campaigns};
use crate::config::GatewayConfig;
use crate::metrics::{Metrics, MetricsSnapshot};

/// State shared by every task of one gateway. Cheap to clone (`Arc`).
pub(crate) struct Shared {
    /// Also held by the campaign routers (hence the `Arc`s), which see no more of this.
    pub config: Arc<GatewayConfig>,
    /// Set when the port serves TLS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub metrics: Arc<Metrics>,
    pub campaigns: Arc<Campaigns>,
    connections: Mutex<ConnectionCounts>,
    /// Sockets open in any state (head, refusal, session); bounded by limits + refusal budget.
    sockets: AtomicUsize,
    next_client_id: AtomicU32,
    /// The WebRTC data channels, when configured.
    pub webrtc: Option<Arc<crate::webrtc::WebRtcServer>>,
}

#[derive(Default)]
struct ConnectionCounts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl Shared {
    pub fn new(
        config: GatewayConfig,
        tls: Option<tokio_rustls::TlsAcceptor>,
        metrics: Arc<Metrics>,
        webrtc: Option<Arc<crate::webrtc::WebRtcServer>>,
    ) -> Self {
        Shared {
            config: Arc::new(config),
            tls,
            webrtc,
            metrics,
            campaigns: Arc::default(),
            connections: Mutex::default(),
            sockets: AtomicUsize::new(0),
            next_client_id: AtomicU32::new(1),
        }
    }

    pub fn campaign(&self, id: &str) -> Option<Arc<Campaign>> {
        self.campaigns.get(id)
    }

    /// Registers a campaign; false if the id is taken.
    pub fn insert_campaign(&self, campaign: Arc<Campaign>) -> bool {
        self.campaigns.insert(campaign)
    }

    /// Unregisters `campaign` (only this very campaign, not a newer one with the same id).
    pub fn remove_campaign(&self, campaign: &Arc<Campaign>) {
        self.campaigns.remove(campaign);
    }

    pub fn next_client_id(&self) -> u32 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.metrics.snapshot(self.campaigns.metrics())
    }

    /// `/metrics`' body.
    pub fn metrics_text(&self) -> String {
        self.metrics_snapshot().to_prometheus()
    }

    /// Reserves a WebSocket connection slot for `ip`, or says which limit refuses it.
    pub fn reserve_connection(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> Result<ConnectionSlot, &'static str> {
        let limits = &self.config.limits;
        let mut counts = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if counts.total >= limits.max_connections {
            Metrics::inc(&self.metrics.rejected_too_many);
            tracing::debug!(%ip, limit = limits.max_connections, "connection refused: the server is full");
            return Err("the server has too many connections");
        }
        let from_address = counts.per_address.entry(ip).or_insert(0);
        if *from_address >= limits.max_connections_per_address {
            Metrics::inc(&self.metrics.rejected_per_address);
            tracing::debug!(%ip, limit = limits.max_connections_per_address, "connection refused: too many from this address");
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
pub(crate) struct SocketSlot(Arc<Shared>);

impl SocketSlot {
    pub fn try_new(shared: &Arc<Shared>) -> Option<SocketSlot> {
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
    if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
        Metrics::inc(&shared.metrics.task_panics);
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(not a string)");
        tracing::error!(
            panic = what,
            "a connection task panicked (a bug); other connections carry on"
        );
    }
}
