//! Starting and stopping the gateway: its thread, its runtime, its campaigns.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::auth::AuthMode;
use crate::campaign::{Campaign, RouterContext, spawn_router};
use crate::config::{GatewayConfig, GatewayError};
use crate::link::CampaignLink;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::server;
use crate::shared::Shared;
use crate::tls;
use crate::webrtc::WebRtcServer;

/// Longest campaign id accepted.
pub const MAX_CAMPAIGN_ID_LEN: usize = 64;

/// Makes the calling thread `niceness` steps nicer (Linux; elsewhere nothing). Best effort: a
/// thread that cannot be reniced runs at the process's priority.
fn lower_thread_priority(niceness: i32) {
    #[cfg(target_os = "linux")]
    if niceness > 0 {
        // SAFETY: plain system calls on the calling thread's id; no memory is shared with them.
        // On Linux, PRIO_PROCESS with a thread id sets that one thread's niceness.
        unsafe {
            let thread = libc::gettid() as libc::id_t;
            let current = libc::getpriority(libc::PRIO_PROCESS, thread);
            libc::setpriority(libc::PRIO_PROCESS, thread, (current + niceness).min(19));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}

/// Entry point: see [`Gateway::start`].
pub struct Gateway;

impl Gateway {
    /// Binds `config.bind`, then serves on a background thread that owns a tokio runtime. Returns
    /// once the port is bound (so [`GatewayHandle::local_addr`] is final), or the reason it could
    /// not be.
    pub fn start(config: GatewayConfig) -> Result<GatewayHandle, GatewayError> {
        config.validate()?;
        // Before binding: a bad certificate is a configuration mistake, reported as such.
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        let niceness = config.io_niceness;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads)
            .thread_name("nexus-gw-io")
            .on_thread_start(move || lower_thread_priority(niceness))
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            // Registering the socket needs the runtime's reactor.
            let _entered = runtime.enter();
            bind(config.bind)?
        };
        let local_addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let webrtc = match &config.webrtc {
            None => None,
            Some(webrtc) => {
                let _entered = runtime.enter();
                let (server, driver) = WebRtcServer::bind(
                    webrtc.clone(),
                    local_addr.ip(),
                    metrics.clone(),
                    shutdown.clone(),
                )?;
                runtime.spawn(driver);
                Some(server)
            }
        };
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        tracing::info!(
            url = %format!("{scheme}://{local_addr}{}", config.path),
            auth = %config.auth.describe(),
            "gateway listening"
        );
        let shared = Arc::new(Shared::new(config, tls, metrics, webrtc));
        let (stop_routers, routers_stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = {
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("nexus-gateway".into())
                .spawn(move || {
                    runtime.block_on(server::run(listener, shared, shutdown));
                    // Every connection task has finished (or was given up on); anything left is
                    // cut off here so the thread, and with it the runtime, always ends.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?
        };
        Ok(GatewayHandle {
            local_addr,
            shared,
            shutdown,
            thread: Some(thread),
            stop_routers: Some(stop_routers),
            routers_stopped,
            routers: Mutex::default(),
        })
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets a restarted server bind while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    // A deep backlog: hundreds of clients connect at once when a server (re)starts.
    socket.listen(1024)
}

/// The running gateway. Dropping it shuts the gateway down, like [`GatewayHandle::shutdown`].
pub struct GatewayHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<()>>,
    /// Dropped to stop every router thread.
    stop_routers: Option<Sender<()>>,
    routers_stopped: crossbeam_channel::Receiver<()>,
    routers: Mutex<Vec<JoinHandle<()>>>,
}

impl GatewayHandle {
    /// The address actually bound (with the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The UDP address of the WebRTC data channels, when configured.
    pub fn webrtc_addr(&self) -> Option<SocketAddr> {
        self.shared.webrtc.as_ref().map(|w| w.local_addr())
    }

    /// The WebSocket URL clients connect to, e.g. `ws://127.0.0.1:9090/ws` (`wss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.local_addr, self.shared.config.path)
    }

    /// True when the port serves TLS (`wss://`, `https://`).
    pub fn is_tls(&self) -> bool {
        self.shared.tls.is_some()
    }

    /// How joins are authenticated.
    pub fn auth_mode(&self) -> &AuthMode {
        &self.shared.config.auth
    }

    /// True in development mode (any token accepted): announce it loudly.
    pub fn is_development_mode(&self) -> bool {
        self.shared.config.auth.is_development()
    }

    /// The configuration the gateway runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    /// Opens a campaign: clients can join it with `metadata.campaign_id == campaign_id` until the
    /// returned link is dropped.
    pub fn open_campaign(&self, campaign_id: &str) -> Result<CampaignLink, GatewayError> {
        if self.shutdown.is_cancelled() {
            return Err(GatewayError::ShutDown);
        }
        check_campaign_id(campaign_id)?;
        let id: Arc<str> = Arc::from(campaign_id);
        let (to_host, events) = crossbeam_channel::unbounded();
        let (commands, from_host) = crossbeam_channel::unbounded();
        let closed = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicUsize::new(0));
        let campaign = Arc::new(Campaign::new(
            id.clone(),
            to_host,
            closed.clone(),
            queued.clone(),
            self.shared.config.session.host_queue_capacity,
        ));
        if !self.shared.insert_campaign(campaign.clone()) {
            return Err(GatewayError::CampaignExists(campaign_id.to_string()));
        }
        let context = RouterContext {
            config: self.shared.config.clone(),
            metrics: self.shared.metrics.clone(),
            campaigns: self.shared.campaigns.clone(),
        };
        let router = spawn_router(
            context,
            campaign.clone(),
            from_host,
            self.routers_stopped.clone(),
        );
        match router {
            Ok(handle) => {
                let mut routers = self.routers.lock().unwrap_or_else(PoisonError::into_inner);
                // Reap routers of campaigns closed meanwhile, so a long-lived server that opens
                // and closes campaigns does not accumulate handles.
                let (finished, running): (Vec<_>, Vec<_>) =
                    routers.drain(..).partition(|h| h.is_finished());
                for handle in finished {
                    let _ = handle.join();
                }
                *routers = running;
                routers.push(handle);
            }
            Err(err) => {
                self.shared.remove_campaign(&campaign);
                return Err(GatewayError::Io(err));
            }
        }
        Ok(CampaignLink::new(id, events, commands, closed, queued))
    }

    /// Ids of the open campaigns, sorted.
    pub fn campaigns(&self) -> Vec<String> {
        self.shared
            .metrics_snapshot()
            .campaigns
            .into_iter()
            .map(|c| c.campaign_id)
            .collect()
    }

    /// The gateway's figures (what `/metrics` shows).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// Stops accepting, closes every connection with `shutting_down`, stops every thread and frees
    /// the port. Returns when all of that is done (bounded by the close grace period).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.cancel();
        // `shutdown` then `drop` both come here; say it once.
        let was_running = self.thread.is_some();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.stop_routers.take();
        let routers =
            std::mem::take(&mut *self.routers.lock().unwrap_or_else(PoisonError::into_inner));
        for router in routers {
            let _ = router.join();
        }
        if was_running {
            tracing::info!(addr = %self.local_addr, "gateway stopped");
        }
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for GatewayHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayHandle")
            .field("local_addr", &self.local_addr)
            .field("auth", &self.shared.config.auth)
            .finish_non_exhaustive()
    }
}

fn check_campaign_id(id: &str) -> Result<(), GatewayError> {
    let why = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_CAMPAIGN_ID_LEN {
        "it is longer than 64 bytes"
    } else if id.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(GatewayError::InvalidCampaignId(format!("{id:?}: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_cross_threads() {
        // The Godot node keeps the handle; the tick thread owns links.
        fn send_sync<T: Send + Sync>() {}
        send_sync::<GatewayHandle>();
        send_sync::<CampaignLink>();
        send_sync::<crate::CampaignHost>();
    }

    #[test]
    fn campaign_ids_are_checked() {
        assert!(check_campaign_id("0").is_ok());
        assert!(check_campaign_id("").is_err());
        assert!(check_campaign_id(&"x".repeat(65)).is_err());
        assert!(check_campaign_id("a\nb").is_err());
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let first = Gateway::start(GatewayConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..GatewayConfig::development()
        })
        .unwrap();
        let err = Gateway::start(GatewayConfig {
            bind: first.local_addr(),
            ..GatewayConfig::development()
        })
        .unwrap_err();
        assert!(matches!(err, GatewayError::Io(_)), "{err}");
        assert!(matches!(
            first.open_campaign("a").and(first.open_campaign("a")),
            Err(GatewayError::CampaignExists(_))
        ));
    }

    /// Niceness of this process's threads named `name`, from /proc.
    #[cfg(target_os = "linux")]
    fn niceness_of_threads(name: &str) -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis: state is field 3, nice field 19.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            found.push(after.split(' ').nth(16).unwrap().parse().unwrap());
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn io_threads_run_nicer_than_the_tick() {
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let gateway = Gateway::start(GatewayConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            worker_threads: 2,
            io_niceness: 3,
            ..GatewayConfig::development()
        })
        .unwrap();
        // Other tests' gateways run beside this one (at the default niceness, 10): count the
        // workers at this one's. Wait for both to have started.
        let expected = (ours + 3).min(19);
        let ours_running = || {
            niceness_of_threads("nexus-gw-io")
                .into_iter()
                .filter(|&nice| nice == expected)
                .count()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ours_running() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            ours_running() >= 2,
            "two network threads at niceness {expected}: {:?}",
            niceness_of_threads("nexus-gw-io")
        );
        assert_eq!(
            unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) },
            ours,
            "the calling thread keeps its priority"
        );
        drop(gateway);
        let invalid = Gateway::start(GatewayConfig {
            io_niceness: 20,
            ..GatewayConfig::development()
        });
        assert!(matches!(invalid, Err(GatewayError::Config(_))));
    }
}
