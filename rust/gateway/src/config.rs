//! Gateway configuration and errors.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthMode, Role};
use crate::wire::{InterestSettings, Limits};

/// Default address: loopback only, port 9090 (events.md).
pub const DEFAULT_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9090);
/// Default WebSocket path (events.md).
pub const DEFAULT_PATH: &str = "/ws";

/// Everything the gateway needs to start.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Address to listen on; port 0 picks a free port (see [`crate::GatewayHandle::local_addr`]).
    pub bind: SocketAddr,
    /// Path of the WebSocket endpoint (`/ws`). `/metrics` and `/health` are served beside it.
    pub path: String,
    /// Signed tokens or development mode. There is deliberately no default that lets anyone in:
    /// see [`GatewayConfig::development`] and [`GatewayConfig::signed`].
    pub auth: AuthMode,
    /// Limits shared with the protocol decoder (frame size, rates, connections, idle timeout).
    pub limits: Limits,
    /// Session mechanics (timeouts, queue sizes).
    pub session: SessionConfig,
    /// Interest management and level of detail for the state stream.
    pub interest: InterestSettings,
    /// Worker threads of the gateway's tokio runtime.
    pub worker_threads: usize,
    /// Niceness added to the worker threads (Linux; 0 to 19, default 10): when the machine is
    /// short of CPU, the host's tick threads get it first (measured with 1,000 clients on two
    /// cores: tick p99 about 15 ms at 10, 19-20 ms at 5). States are latest-wins and lagging
    /// clients are paced, so a gateway that gets less CPU sends fewer states; a tick that gets
    /// less CPU runs late for everybody.
    pub io_niceness: i32,
    /// More routes served on the same port (static files, small JSON APIs), merged into the
    /// gateway's own; a path of theirs may not be one of the gateway's (`path`, `/metrics`,
    /// `/health`), nor may it set a fallback.
    pub extra_routes: Option<axum::Router>,
    /// A directory of static files (a built web client) served for every path the other routes
    /// do not take, with `index.html` for `/`; files outside it are never served. It must exist
    /// and hold an `index.html`.
    pub web_root: Option<PathBuf>,
    /// For WebSocket conformance testing only (`scripts/conformance`): a path where every text or
    /// binary message is sent straight back, over the same listener, upgrade settings, size caps
    /// and close handling as `path`, without joins, campaigns or rate limits. Off by default;
    /// never set it on a server that players use.
    pub echo_path: Option<String>,
    /// PEM certificate chain: with [`GatewayConfig::tls_key`], the port serves `wss://` and
    /// `https://` (TLS via rustls) instead of `ws://` and `http://`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of [`GatewayConfig::tls_cert`].
    pub tls_key: Option<PathBuf>,
    /// WebRTC data channels for the state stream and inputs beside the WebSocket (PROTOCOL.md
    /// section 11), on one UDP port of the bind address. Off (`None`) by default.
    pub webrtc: Option<crate::webrtc::WebRtcConfig>,
}

/// Timeouts and queue sizes of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionConfig {
    /// Frames above `limits.max_frame_bytes` get a `frame_too_large` error and are skipped; frames
    /// above this hard cap cannot be skipped safely and close the connection (code 1009).
    pub hard_max_frame_bytes: usize,
    /// A WebSocket ping is sent this often; the client's pong (or any frame) keeps it alive.
    pub ping_interval: Duration,
    /// A client must be welcomed into a campaign within this time of connecting.
    pub join_timeout: Duration,
    /// Time allowed to send the HTTP request head and finish the WebSocket handshake.
    pub handshake_timeout: Duration,
    /// After the server sends a close frame: time left to the client to read it and answer.
    pub close_grace: Duration,
    /// Reliable events waiting for one client; one more and the client is disconnected
    /// (`slow_consumer`).
    pub reliable_queue_capacity: usize,
    /// Client events waiting for one campaign's host; when full, clients get `server_busy`.
    pub host_queue_capacity: usize,
    /// Refused (rate-limited) messages tolerated, refilled at half the message rate; past them
    /// the client is closed for flooding.
    pub flood_tolerance: u32,
    /// Sockets beyond `limits.max_connections` still answered with a close reason (not just
    /// dropped) at the same time.
    pub refusal_budget: usize,
    /// How long a session whose connection was lost (not left) waits for its client to resume it
    /// with the welcome's `resume_token`: its avatar stays, and the host hears of the departure
    /// only when this runs out. Zero disables resuming.
    pub resume_grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            hard_max_frame_bytes: 1024 * 1024,
            ping_interval: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            close_grace: Duration::from_secs(2),
            reliable_queue_capacity: 4096,
            host_queue_capacity: 65_536,
            flood_tolerance: 240,
            refusal_budget: 128,
            resume_grace: Duration::from_secs(20),
        }
    }
}

impl GatewayConfig {
    fn with_auth(auth: AuthMode) -> Self {
        GatewayConfig {
            bind: DEFAULT_BIND,
            path: DEFAULT_PATH.to_string(),
            auth,
            limits: Limits::default(),
            session: SessionConfig::default(),
            interest: InterestSettings::default(),
            worker_threads: 2,
            io_niceness: 10,
            extra_routes: None,
            web_root: None,
            echo_path: None,
            tls_cert: None,
            tls_key: None,
            webrtc: None,
        }
    }

    /// Development mode: any non-empty token is accepted as the client's name, with the admin role
    /// (so every tool works locally; change `auth` for another role). Announce it loudly.
    pub fn development() -> Self {
        Self::with_auth(AuthMode::Development {
            secret: None,
            previous_secret: None,
            role: Role::Admin,
        })
    }

    /// Production mode: only tokens signed with `secret` (at least 16 bytes) are accepted.
    pub fn signed(secret: impl Into<Vec<u8>>) -> Self {
        Self::with_auth(AuthMode::signed(secret))
    }

    /// A configuration from the environment, for servers started by scripts:
    /// - `NEXUS_GATEWAY_BIND`: address, default `127.0.0.1:9090`;
    /// - `NEXUS_GATEWAY_SECRET` or `NEXUS_GATEWAY_SECRET_FILE`: the token secret (signed mode);
    /// - `NEXUS_GATEWAY_PREVIOUS_SECRET` or `…_FILE`: during a key rotation, the retiring secret,
    ///   whose tokens are still accepted;
    /// - `NEXUS_GATEWAY_DEV=1`: development mode (a secret, if also set, is still honoured);
    /// - `NEXUS_GATEWAY_TLS_CERT` and `NEXUS_GATEWAY_TLS_KEY`: PEM files to serve `wss://`.
    ///
    /// With neither a secret nor development mode it refuses: nobody could join.
    pub fn from_env() -> Result<Self, GatewayError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`GatewayConfig::from_env`] with the variables read through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, GatewayError> {
        let secret_from = |variable: &str| -> Result<Option<Vec<u8>>, GatewayError> {
            let file_variable = format!("{variable}_FILE");
            Ok(match (lookup(variable), lookup(&file_variable)) {
                (Some(secret), _) if !secret.is_empty() => Some(secret.into_bytes()),
                (_, Some(path)) if !path.is_empty() => {
                    let mut bytes = std::fs::read(&path).map_err(|e| {
                        GatewayError::Config(format!("{file_variable} {path}: {e}"))
                    })?;
                    // Editors and `echo` end files with a newline that is not part of the secret.
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    Some(bytes)
                }
                _ => None,
            })
        };
        let secret = secret_from("NEXUS_GATEWAY_SECRET")?;
        let previous_secret = secret_from("NEXUS_GATEWAY_PREVIOUS_SECRET")?;
        let development = lookup("NEXUS_GATEWAY_DEV")
            .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes" | "on"));
        let mut config = match (secret, development) {
            (secret, true) => Self::with_auth(AuthMode::Development {
                secret,
                previous_secret: None,
                role: Role::Admin,
            }),
            (Some(secret), false) => Self::signed(secret),
            (None, false) => {
                return Err(GatewayError::Config(
                    "no token secret: set NEXUS_GATEWAY_SECRET (or NEXUS_GATEWAY_SECRET_FILE) for signed tokens, or NEXUS_GATEWAY_DEV=1 for development mode".into(),
                ));
            }
        };
        config.auth.set_previous_secret(previous_secret);
        if let Some(bind) = lookup("NEXUS_GATEWAY_BIND").filter(|b| !b.is_empty()) {
            config.bind = bind.parse().map_err(|_| {
                GatewayError::Config(format!(
                    "NEXUS_GATEWAY_BIND {bind:?} is not an address like 127.0.0.1:9090"
                ))
            })?;
        }
        config.tls_cert = lookup("NEXUS_GATEWAY_TLS_CERT")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        config.tls_key = lookup("NEXUS_GATEWAY_TLS_KEY")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        config.validate()?;
        Ok(config)
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.limits.idle_timeout_secs.max(1)))
    }

    /// Checks the configuration is usable; the message says what to fix.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let fail = |message: String| Err(GatewayError::Config(message));
        self.auth.validate().map_err(GatewayError::Config)?;
        if !self.path.starts_with('/') || self.path == "/metrics" || self.path == "/health" {
            return fail(format!(
                "path {:?} must start with '/' and differ from /metrics and /health",
                self.path
            ));
        }
        if self.limits.max_frame_bytes == 0
            || self.session.hard_max_frame_bytes < self.limits.max_frame_bytes
        {
            return fail(format!(
                "limits.max_frame_bytes ({}) must be positive and at most session.hard_max_frame_bytes ({})",
                self.limits.max_frame_bytes, self.session.hard_max_frame_bytes
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_address == 0 {
            return fail("connection limits must be positive".into());
        }
        if self.limits.max_messages_per_second == 0 || self.limits.max_inputs_per_second == 0 {
            return fail("rate limits must be positive".into());
        }
        if self.session.ping_interval.is_zero()
            || self.session.join_timeout.is_zero()
            || self.session.handshake_timeout.is_zero()
        {
            return fail("session timeouts and the ping interval must be positive".into());
        }
        if self.session.reliable_queue_capacity == 0 || self.session.host_queue_capacity == 0 {
            return fail("queue capacities must be positive".into());
        }
        if self.worker_threads == 0 {
            return fail("worker_threads must be at least 1".into());
        }
        if !(0..=19).contains(&self.io_niceness) {
            return fail(format!(
                "io_niceness must be within 0..=19, got {}",
                self.io_niceness
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return fail("tls_cert and tls_key go together: set both (TLS) or neither".into());
        }
        if let Some(echo) = &self.echo_path
            && (!echo.starts_with('/')
                || [self.path.as_str(), "/metrics", "/health"].contains(&echo.as_str()))
        {
            return fail(format!(
                "echo_path {echo:?} must start with '/' and differ from {}, /metrics and /health",
                self.path
            ));
        }
        if let Some(root) = &self.web_root
            && !root.join("index.html").is_file()
        {
            return fail(format!(
                "web_root {} is not a directory with an index.html (build the web client first: scripts/build-web)",
                root.display()
            ));
        }
        if let Some(extra) = &self.extra_routes {
            // axum refuses overlapping routes by panicking when they are merged: try the merge
            // here, where a mistake can still be a clear error instead of a crash at start.
            let ours = axum::Router::new()
                .route(&self.path, axum::routing::get(|| async {}))
                .route("/metrics", axum::routing::get(|| async {}))
                .route("/health", axum::routing::get(|| async {}))
                .fallback(|| async {});
            let ours = match &self.echo_path {
                Some(echo) => ours.route(echo, axum::routing::get(|| async {})),
                None => ours,
            };
            let extra = extra.clone();
            let merged =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || ours.merge(extra)));
            if merged.is_err() {
                return fail(format!(
                    "extra_routes overlap the gateway's routes ({}, /metrics, /health) or set a fallback",
                    self.path
                ));
            }
        }
        Ok(())
    }
}

/// Errors of the gateway's control API (not of clients: those get error events).
#[derive(Debug)]
pub enum GatewayError {
    /// The configuration is unusable.
    Config(String),
    /// Binding the address or starting a thread failed.
    Io(std::io::Error),
    /// A campaign with this id is already open.
    CampaignExists(String),
    /// The campaign id is empty, too long or has control characters.
    InvalidCampaignId(String),
    /// The gateway has shut down.
    ShutDown,
    /// The TLS certificate or key is unreadable, not PEM, or they do not go together.
    Tls(String),
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Config(message) => write!(f, "invalid gateway configuration: {message}"),
            GatewayError::Io(err) => write!(f, "gateway I/O error: {err}"),
            GatewayError::CampaignExists(id) => write!(f, "campaign {id:?} is already open"),
            GatewayError::InvalidCampaignId(why) => write!(f, "invalid campaign id: {why}"),
            GatewayError::ShutDown => write!(f, "the gateway has shut down"),
            GatewayError::Tls(why) => write!(f, "TLS setup failed: {why}"),
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<std::io::Error> for GatewayError {
    fn from(err: std::io::Error) -> Self {
        GatewayError::Io(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_signed_needs_a_real_secret() {
        GatewayConfig::development().validate().unwrap();
        GatewayConfig::signed(b"0123456789abcdef".to_vec())
            .validate()
            .unwrap();
        let err = GatewayConfig::signed(b"short".to_vec())
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }

    #[test]
    fn environment_selects_the_mode_and_address() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let err = GatewayConfig::from_lookup(env(&[])).unwrap_err();
        assert!(err.to_string().contains("NEXUS_GATEWAY_DEV=1"), "{err}");

        let dev = GatewayConfig::from_lookup(env(&[("NEXUS_GATEWAY_DEV", "1")])).unwrap();
        assert!(dev.auth.is_development());
        assert_eq!(dev.bind, DEFAULT_BIND);

        let signed = GatewayConfig::from_lookup(env(&[
            ("NEXUS_GATEWAY_SECRET", "0123456789abcdef0123"),
            ("NEXUS_GATEWAY_BIND", "0.0.0.0:7000"),
        ]))
        .unwrap();
        assert!(!signed.auth.is_development());
        assert_eq!(signed.bind.port(), 7000);

        let bad = GatewayConfig::from_lookup(env(&[
            ("NEXUS_GATEWAY_DEV", "1"),
            ("NEXUS_GATEWAY_BIND", "nowhere"),
        ]));
        assert!(bad.unwrap_err().to_string().contains("NEXUS_GATEWAY_BIND"));
        let short = GatewayConfig::from_lookup(env(&[("NEXUS_GATEWAY_SECRET", "short")]));
        assert!(short.unwrap_err().to_string().contains("at least 16"));
    }

    #[test]
    fn environment_sets_the_previous_secret_of_a_key_rotation() {
        use crate::auth::{Claims, Role, mint_token};
        let old_file =
            std::env::temp_dir().join(format!("nexus-old-secret-{}", std::process::id()));
        std::fs::write(&old_file, "the-old-secret-0123456789\n").unwrap();
        let path = old_file.to_str().unwrap().to_string();
        let lookup = |name: &str| match name {
            "NEXUS_GATEWAY_SECRET" => Some("the-new-secret-0123456789".to_string()),
            "NEXUS_GATEWAY_PREVIOUS_SECRET_FILE" => Some(path.clone()),
            _ => None,
        };
        let config = GatewayConfig::from_lookup(lookup).unwrap();
        std::fs::remove_file(&old_file).unwrap();
        let claims = Claims {
            user_id: "a".into(),
            name: "a".into(),
            role: Role::Player,
            expires_at: u64::MAX,
            campaign: None,
        };
        let old_token = mint_token(b"the-old-secret-0123456789", &claims);
        let joined = config.auth.authenticate(&old_token, "0", 0).unwrap();
        assert!(
            joined.with_previous_secret,
            "the file's newline is not part of the secret"
        );

        let missing = GatewayConfig::from_lookup(|name: &str| match name {
            "NEXUS_GATEWAY_SECRET" => Some("the-new-secret-0123456789".to_string()),
            "NEXUS_GATEWAY_PREVIOUS_SECRET_FILE" => Some("/no/such/secret".to_string()),
            _ => None,
        });
        let err = missing.unwrap_err().to_string();
        assert!(
            err.contains("NEXUS_GATEWAY_PREVIOUS_SECRET_FILE /no/such/secret"),
            "{err}"
        );
        let lonely = GatewayConfig::from_lookup(|name: &str| match name {
            "NEXUS_GATEWAY_DEV" => Some("1".to_string()),
            "NEXUS_GATEWAY_PREVIOUS_SECRET" => Some("the-old-secret-0123456789".to_string()),
            _ => None,
        });
        assert!(
            lonely
                .unwrap_err()
                .to_string()
                .contains("without a current one")
        );
    }

    #[test]
    fn inconsistent_limits_are_refused() {
        let mut config = GatewayConfig::development();
        config.session.hard_max_frame_bytes = config.limits.max_frame_bytes - 1;
        assert!(config.validate().is_err());
        let mut config = GatewayConfig::development();
        config.path = "/metrics".into();
        assert!(config.validate().is_err());
    }
}
