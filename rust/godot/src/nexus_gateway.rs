use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use godot::classes::{Engine, INode, Node, Os, ProjectSettings};
use godot::prelude::*;
use nexus_gateway::{CampaignLink, EventSender, Gateway, GatewayConfig, GatewayHandle, Target};
use nexus_protocol::Envelope;

use crate::convert::{dictionary_to_json, to_variant};
use crate::failure;

/// Starts the background WebSocket gateway (a tokio thread) that clients connect to at
/// `ws://bind_address:port/ws`, with `/metrics` and `/health` beside it. Several
/// `PhysicsWorldServer` nodes (campaigns) share one gateway; each names it in its `gateway`
/// property.
///
/// Authentication: with a `secret` (or `secret_file`) only signed tokens are accepted; with
/// `development_mode` any non-empty token is accepted as the player's name. With neither the
/// gateway refuses to start. On the command line (after `--`) `--port=N`, `--bind=ADDR`,
/// `--secret-file=FILE`, `--previous-secret-file=FILE`, `--dev`, `--tls-cert=FILE`, `--tls-key=FILE`, `--max-connections=N`,
/// `--max-connections-per-address=N`, `--idle-timeout=SECONDS`, `--io-niceness=N`, `--web-root=DIR`,
/// `--webrtc-port=N` (or `off`) and `--public-ip=ADDR` override the
/// properties when
/// `allow_command_line` is on, as
/// do the `NEXUS_SECRET` and `NEXUS_PREVIOUS_SECRET` environment variables.
#[derive(GodotClass)]
#[class(init, tool, base = Node)]
pub struct NexusGateway {
    /// TCP port to listen on; 0 picks a free port (see `get_port`).
    #[export(range = (0.0, 65535.0, 1.0))]
    #[init(val = 9090)]
    port: i32,
    /// Address to listen on: 127.0.0.1 for this machine only, 0.0.0.0 for every interface.
    #[export]
    #[init(val = GString::from("127.0.0.1"))]
    bind_address: GString,
    /// Path of the WebSocket endpoint.
    #[export]
    #[init(val = GString::from("/ws"))]
    endpoint_path: GString,
    /// Accept any non-empty token as the player's name (admin role). For development only.
    #[export]
    development_mode: bool,
    /// Secret that signs tokens (at least 16 bytes). Prefer `secret_file` in shipped scenes.
    #[export]
    secret: GString,
    /// File holding the token secret.
    #[export(global_file)]
    secret_file: GString,
    /// During a key rotation, a file holding the secret being retired: tokens it signed are
    /// still accepted (new ones come from `secret`/`secret_file`). Clear it once the old tokens
    /// have expired (the `nexus_gateway_auth_previous_secret` metric stops growing).
    #[export(global_file)]
    previous_secret_file: GString,
    /// PEM certificate chain: with `tls_key_file` the port serves `wss://` and `https://` (TLS)
    /// instead of `ws://` and `http://`.
    #[export(global_file = "*.pem,*.crt")]
    tls_certificate_file: GString,
    /// PEM private key of `tls_certificate_file`.
    #[export(global_file = "*.pem,*.key")]
    tls_key_file: GString,
    /// Directory of a built web client (`scripts/build-web`) served at `/` on the same port; empty
    /// serves none. A `res://` or `user://` path is resolved to the file system: the files are
    /// read from disk, not from an exported pack.
    #[export(global_dir)]
    web_root: GString,
    /// Most open connections in total.
    #[export(range = (1.0, 100000.0, 1.0, or_greater))]
    #[init(val = 10_000)]
    max_connections: i32,
    /// Most open connections from one IP address.
    #[export(range = (1.0, 100000.0, 1.0, or_greater))]
    #[init(val = 64)]
    max_connections_per_address: i32,
    /// Seconds a session whose connection was lost (no close from the client) waits for the
    /// client to come back with its resume token, keeping its avatar; 0 ends it at once.
    #[export(range = (0.0, 600.0, 0.5, or_greater))]
    #[init(val = 20.0)]
    resume_grace_seconds: f64,
    /// Seconds without any frame from a client (not even a pong to the server's pings) after
    /// which its connection is closed with `idle_timeout`: this is what ends half-open
    /// connections and clients that stopped reading and answering.
    #[export(range = (1.0, 3600.0, 1.0, or_greater))]
    #[init(val = 30)]
    idle_timeout_seconds: i32,
    /// Serve WebRTC data channels (the state stream and inputs over UDP, beside the WebSocket;
    /// PROTOCOL.md section 11). Clients that never offer one are not affected.
    #[export]
    #[init(val = true)]
    webrtc_enabled: bool,
    /// UDP port of the WebRTC data channels; 0 uses the WebSocket's port number (9090/udp by
    /// default; a free port when `port` is 0 too).
    #[export(range = (0.0, 65535.0, 1.0))]
    webrtc_port: i32,
    /// The address clients reach this server on when it is behind a 1:1 NAT (the WebRTC
    /// candidate); empty uses the address each client's WebSocket connected to.
    #[export]
    public_ip: GString,
    /// Niceness added to the gateway's network threads (Linux): when the machine is short of
    /// CPU the simulation's tick gets it first, and the gateway sends fewer states instead.
    /// 0 runs them at the game's own priority.
    #[export(range = (0.0, 19.0, 1.0))]
    #[init(val = 10)]
    io_niceness: i32,
    /// Start when the node enters the tree (outside the editor).
    #[export]
    #[init(val = true)]
    autostart: bool,
    /// Quit the game cleanly (saving, closing connections) on SIGTERM or SIGINT; a second signal
    /// terminates at once.
    #[export]
    #[init(val = true)]
    quit_on_termination_signal: bool,
    /// In a headless server, quit with exit code 1 when the gateway cannot start at ready (no
    /// secret and no development mode, a port in use), so a supervisor sees the failed start.
    #[export]
    #[init(val = true)]
    quit_on_failure: bool,
    /// Let `--port=`, `--bind=`, `--secret-file=`, `--previous-secret-file=`, `--dev`, `--tls-cert=`, `--tls-key=`,
    /// `--max-connections=`, `--max-connections-per-address=`, `--idle-timeout=`, `--io-niceness=`, `--web-root=`,
    /// `--webrtc-port=`, `--public-ip=` after `--` override the properties.
    #[export]
    #[init(val = true)]
    allow_command_line: bool,
    handle: Option<GatewayHandle>,
    senders: HashMap<String, EventSender>,
    base: Base<Node>,
}

#[godot_api]
impl INode for NexusGateway {
    fn ready(&mut self) {
        if Engine::singleton().is_editor_hint() {
            return;
        }
        if self.quit_on_termination_signal {
            match termination_flag() {
                Ok(_) => self.base_mut().set_process(true),
                Err(error) => godot_warn!("NexusGateway: cannot watch for SIGTERM: {error}"),
            }
        }
        if self.autostart && self.handle.is_none() && !self.start() {
            let message = format!(
                "NexusGateway {}: the gateway did not start (see the error above)",
                self.base().get_path()
            );
            failure::cannot_serve(&self.base().clone(), &message, self.quit_on_failure);
        }
    }

    // Only watches the termination flag (set from the signal handler).
    fn process(&mut self, _delta: f64) {
        // A tool class is processed in the editor too: the editor's signals are not ours to watch.
        if Engine::singleton().is_editor_hint() {
            self.base_mut().set_process(false);
            return;
        }
        if termination_flag().is_ok_and(|flag| flag.load(Ordering::Relaxed)) {
            godot_print!("NexusGateway: termination signal received, shutting down cleanly");
            self.base_mut().set_process(false);
            self.base().get_tree().quit();
        }
    }

    fn exit_tree(&mut self) {
        self.stop();
    }
}

#[godot_api]
impl NexusGateway {
    /// Emitted when the gateway listens: the bound port and whether it runs in development mode.
    #[signal]
    fn started(port: i64, development_mode: bool);
    /// Emitted after the gateway has stopped and freed its port.
    #[signal]
    fn stopped();
    /// A client event of a campaign that the world does not interpret itself (an action), as an
    /// envelope Dictionary (`type`, `payload`, `metadata`, plus `client_id`). Emitted after the
    /// tick, while someone listens.
    #[signal]
    fn event_received(campaign_id: GString, event: VarDictionary);

    /// Starts listening; returns false (and reports the reason) when it cannot.
    #[func]
    pub fn start(&mut self) -> bool {
        if self.handle.is_some() {
            return true;
        }
        let config = match self.config() {
            Ok(config) => config,
            Err(message) => {
                godot_error!("NexusGateway: {message}");
                return false;
            }
        };
        let development = config.auth.is_development();
        let has_web_client = config.web_root.is_some();
        let rotating_keys = config.auth.has_previous_secret();
        ignore_broken_pipes();
        match Gateway::start(config) {
            Ok(handle) => {
                let addr = handle.local_addr();
                if development {
                    godot_warn!(
                        "NexusGateway: DEVELOPMENT MODE: any token is accepted as a player name (with the admin role). \
                         Set a secret for production."
                    );
                }
                let http = if handle.is_tls() { "https" } else { "http" };
                godot_print!(
                    "NexusGateway: listening on {} ({} mode); metrics at {http}://{addr}/metrics",
                    handle.url(),
                    if development {
                        "development"
                    } else {
                        "signed-token"
                    }
                );
                if let Some(udp) = handle.webrtc_addr() {
                    godot_print!("NexusGateway: WebRTC data channels on udp://{udp}");
                }
                if has_web_client {
                    godot_print!("NexusGateway: web client at {http}://{addr}/");
                }
                if rotating_keys {
                    godot_print!(
                        "NexusGateway: key rotation: tokens signed with the previous secret are accepted too"
                    );
                }
                self.handle = Some(handle);
                self.signals()
                    .started()
                    .emit(i64::from(addr.port()), development);
                true
            }
            Err(error) => {
                godot_error!("NexusGateway: could not start: {error}");
                false
            }
        }
    }

    /// Stops the gateway: closes every connection, joins its threads and frees the port.
    #[func]
    pub fn stop(&mut self) {
        self.senders.clear();
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
            self.signals().stopped().emit();
        }
    }

    /// Whether the gateway is listening.
    #[func]
    pub fn is_running(&self) -> bool {
        self.handle.is_some()
    }

    /// The port actually bound (useful with `port = 0`), or -1 when stopped.
    #[func]
    pub fn get_bound_port(&self) -> i64 {
        self.handle
            .as_ref()
            .map_or(-1, |h| i64::from(h.local_addr().port()))
    }

    /// The UDP port of the WebRTC data channels, or -1 when stopped or without WebRTC.
    #[func]
    pub fn get_bound_webrtc_port(&self) -> i64 {
        self.handle
            .as_ref()
            .and_then(|h| h.webrtc_addr())
            .map_or(-1, |a| i64::from(a.port()))
    }

    /// The WebSocket URL clients connect to, or "" when stopped.
    #[func]
    pub fn get_url(&self) -> GString {
        self.handle
            .as_ref()
            .map_or(GString::new(), |h| h.url().as_str().into())
    }

    /// Sends an event (a Dictionary with `type`, `payload` and optional `metadata`) to every
    /// client of a campaign, as the design's NexusClient does. Returns false on a bad event or an
    /// unknown campaign.
    #[func]
    pub fn send_event(&mut self, campaign_id: GString, event: VarDictionary) -> bool {
        let envelope = match envelope_from_dictionary(&event) {
            Ok(envelope) => envelope,
            Err(message) => {
                godot_error!("NexusGateway.send_event: {message}");
                return false;
            }
        };
        let campaign = campaign_id.to_string();
        match self.senders.get(&campaign) {
            Some(sender) if sender.send_event(Target::All, envelope) => true,
            _ => {
                godot_error!(
                    "NexusGateway.send_event: campaign {campaign:?} is not open on this gateway"
                );
                false
            }
        }
    }

    /// Counters of the gateway (clients per campaign, bytes and messages out, drops, rejections).
    #[func]
    pub fn get_metrics(&self) -> VarDictionary {
        self.handle
            .as_ref()
            .map_or_else(VarDictionary::new, |h| to_variant(&h.metrics()).to())
    }

    /// The names of the open campaigns.
    #[func]
    pub fn get_campaigns(&self) -> PackedStringArray {
        let mut names = PackedStringArray::new();
        if let Some(handle) = &self.handle {
            for name in handle.campaigns() {
                names.push(name.as_str());
            }
        }
        names
    }
}

impl NexusGateway {
    /// Opens a campaign on the running gateway (starting it first when needed).
    pub fn open_campaign(&mut self, campaign_id: &str) -> Result<CampaignLink, String> {
        if self.handle.is_none() && !self.start() {
            return Err("the gateway could not start".into());
        }
        let handle = self.handle.as_ref().ok_or("the gateway is not running")?;
        let link = handle
            .open_campaign(campaign_id)
            .map_err(|e| e.to_string())?;
        self.senders
            .insert(campaign_id.to_string(), link.event_sender());
        Ok(link)
    }

    /// Re-emits a client event for scripts (deferred, so handlers may call into the world).
    pub fn notify_event(&mut self, campaign_id: &GString, event: VarDictionary) {
        crate::convert::emit_deferred(
            &mut self.base_mut(),
            "event_received",
            &[campaign_id.to_variant(), event.to_variant()],
        );
    }

    fn config(&self) -> Result<GatewayConfig, String> {
        let mut port = self.port;
        let mut bind = self.bind_address.to_string();
        let mut secret_file = self.secret_file.to_string();
        let mut previous_secret_file = self.previous_secret_file.to_string();
        let mut development = self.development_mode;
        let mut max_connections = self.max_connections;
        let mut max_per_address = self.max_connections_per_address;
        let mut io_niceness = self.io_niceness;
        let mut idle_timeout = self.idle_timeout_seconds;
        let mut tls_cert = self.tls_certificate_file.to_string();
        let mut tls_key = self.tls_key_file.to_string();
        let mut web_root = self.web_root.to_string();
        let mut webrtc = self.webrtc_enabled;
        let mut webrtc_port = self.webrtc_port;
        let mut public_ip = self.public_ip.to_string();
        let count = |flag: &str, value: &str| -> Result<i32, String> {
            value
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{flag}={value} is not a positive number"))
        };
        if self.allow_command_line {
            for arg in Os::singleton().get_cmdline_user_args().as_slice() {
                let arg = arg.to_string();
                if let Some(value) = arg.strip_prefix("--port=") {
                    port = value
                        .parse()
                        .map_err(|_| format!("--port={value} is not a port number"))?;
                } else if let Some(value) = arg.strip_prefix("--bind=") {
                    bind = value.to_string();
                } else if let Some(value) = arg.strip_prefix("--secret-file=") {
                    secret_file = value.to_string();
                    development = false;
                } else if let Some(value) = arg.strip_prefix("--previous-secret-file=") {
                    previous_secret_file = value.to_string();
                } else if let Some(value) = arg.strip_prefix("--tls-cert=") {
                    tls_cert = value.to_string();
                } else if let Some(value) = arg.strip_prefix("--tls-key=") {
                    tls_key = value.to_string();
                } else if let Some(value) = arg.strip_prefix("--web-root=") {
                    web_root = value.to_string();
                } else if arg == "--webrtc-port=off" {
                    webrtc = false;
                } else if let Some(value) = arg.strip_prefix("--webrtc-port=") {
                    webrtc = true;
                    webrtc_port = value.parse().map_err(|_| {
                        format!("--webrtc-port={value} is not a UDP port number (or `off`)")
                    })?;
                } else if let Some(value) = arg.strip_prefix("--public-ip=") {
                    public_ip = value.to_string();
                } else if arg == "--dev" {
                    development = true;
                } else if let Some(value) = arg.strip_prefix("--max-connections=") {
                    max_connections = count("--max-connections", value)?;
                } else if let Some(value) = arg.strip_prefix("--max-connections-per-address=") {
                    max_per_address = count("--max-connections-per-address", value)?;
                } else if let Some(value) = arg.strip_prefix("--idle-timeout=") {
                    idle_timeout = count("--idle-timeout", value)?;
                } else if let Some(value) = arg.strip_prefix("--io-niceness=") {
                    // Checked with the rest of the configuration (0..=19).
                    io_niceness = value
                        .parse()
                        .map_err(|_| format!("--io-niceness={value} is not a number"))?;
                }
            }
        }
        let port = u16::try_from(port).map_err(|_| format!("port {port} is outside 0..=65535"))?;
        let ip: IpAddr = bind
            .parse()
            .map_err(|_| format!("bind address {bind:?} is not an IP address"))?;
        let env_secret = std::env::var("NEXUS_SECRET")
            .ok()
            .filter(|s| self.allow_command_line && !s.is_empty());
        if env_secret.is_some() && secret_file.is_empty() {
            development = false;
        }
        let read_secret = |what: &str, path: &str| -> Result<Vec<u8>, String> {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the {what} file {path:?}: {e}"))?;
            Ok(text.trim().as_bytes().to_vec())
        };
        let previous_secret = if !previous_secret_file.is_empty() {
            Some(read_secret("previous secret", &previous_secret_file)?)
        } else {
            std::env::var("NEXUS_PREVIOUS_SECRET")
                .ok()
                .filter(|s| self.allow_command_line && !s.is_empty())
                .map(String::into_bytes)
        };
        let secret = if !secret_file.is_empty() {
            Some(read_secret("secret", &secret_file)?)
        } else if let Some(secret) = env_secret {
            Some(secret.into_bytes())
        } else if !self.secret.is_empty() {
            Some(self.secret.to_string().into_bytes())
        } else {
            None
        };
        let mut config = match (secret, development) {
            (Some(secret), false) => GatewayConfig::signed(secret),
            (_, true) => GatewayConfig::development(),
            (None, false) => {
                return Err(
                    "no token secret is set and development mode is off, so no client could join. \
                     For signed tokens pass --secret-file=FILE or set NEXUS_SECRET in the environment; \
                     for development (any token accepted) pass --dev. In the scene: `secret_file`, \
                     `secret` or `development_mode`."
                        .into(),
                );
            }
        };
        config.auth.set_previous_secret(previous_secret);
        config.bind = SocketAddr::new(ip, port);
        config.limits.max_connections = max_connections.max(1) as usize;
        config.limits.max_connections_per_address = max_per_address.max(1) as usize;
        config.io_niceness = io_niceness;
        config.limits.idle_timeout_secs = idle_timeout.max(1).try_into().unwrap_or(u32::MAX);
        // Pings at least three times per idle timeout, so a client that only answers them stays.
        config.session.ping_interval = config.session.ping_interval.min(config.idle_timeout() / 3);
        if !self.resume_grace_seconds.is_finite() || self.resume_grace_seconds < 0.0 {
            return Err(format!(
                "resume_grace_seconds must be 0 or more, got {}",
                self.resume_grace_seconds
            ));
        }
        config.session.resume_grace =
            std::time::Duration::from_secs_f64(self.resume_grace_seconds.min(86_400.0));
        config.path = self.endpoint_path.to_string();
        config.tls_cert = (!tls_cert.is_empty()).then(|| tls_cert.into());
        config.tls_key = (!tls_key.is_empty()).then(|| tls_key.into());
        if webrtc {
            let udp_port = match webrtc_port {
                0 => port,
                n => {
                    u16::try_from(n).map_err(|_| format!("webrtc_port {n} is outside 0..=65535"))?
                }
            };
            let public_ip = match public_ip.trim() {
                "" => None,
                text => Some(
                    text.parse::<IpAddr>()
                        .map_err(|_| format!("public_ip {text:?} is not an IP address"))?,
                ),
            };
            config.webrtc = Some(nexus_gateway::WebRtcConfig {
                port: udp_port,
                public_ip,
                ..Default::default()
            });
        }
        config.web_root = (!web_root.is_empty()).then(|| {
            ProjectSettings::singleton()
                .globalize_path(&web_root)
                .to_string()
                .into()
        });
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// An event Dictionary as a protocol envelope.
pub fn envelope_from_dictionary(event: &VarDictionary) -> Result<Envelope, String> {
    let json = serde_json::Value::Object(dictionary_to_json(event)?);
    serde_json::from_value(json)
        .map_err(|e| format!("not an event envelope ({{type, payload, metadata}}): {e}"))
}

/// A peer that closes its end must not end the server: a write to such a socket raises SIGPIPE,
/// whose default action kills the process. Rust binaries ignore it from `main`; inside Godot no one
/// does, so the gateway does, once, unless the host installed a handler of its own.
fn ignore_broken_pipes() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: reading and setting a signal disposition; SIG_IGN involves no handler code.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
        }
    });
}

/// Set when SIGTERM or SIGINT arrives; registered once per process. The first signal only sets
/// the flag (the node then quits the tree cleanly); a second one terminates at once, so a stuck
/// shutdown can still be interrupted.
fn termination_flag() -> Result<&'static Arc<AtomicBool>, String> {
    static FLAG: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())
                .map_err(|e| e.to_string())?;
            signal_hook::flag::register(signal, flag.clone()).map_err(|e| e.to_string())?;
        }
        Ok(flag)
    })
    .as_ref()
    .map_err(Clone::clone)
}
