//! A WebSocket transport (tokio-tungstenite) driving a [`ClientSession`], with optional network
//! emulation on send and receive.
//!
//! How it works: [`connect_with`] opens the socket (offering the encoding's subprotocol), sends
//! the join and runs until the welcome. [`Client::run_until`] then loops: frames due from the
//! receive delay line go into the session, the session updates at the frame rate, its frames go
//! through the send delay line to the socket; between those it waits on the socket, the next frame
//! time and the next due emulated delivery. With perfect links the delay lines pass everything
//! straight through.
//!
//! With [`Transport::WebRtc`] and a server whose welcome offers it, the client also opens WebRTC
//! data channels ([`crate::webrtc`], PROTOCOL.md section 11): states then arrive on the `state`
//! channel into the same session, inputs and acks leave on the `input` channel, and the
//! WebSocket carries everything else. Until the channel opens, and after the server (or the
//! client, [`Client::close_data_channel`]) closes it, everything is on the WebSocket again. The
//! emulated links apply to the WebSocket only.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_protocol::{SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, names};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::session::WebRtcSignal;
use crate::stats::{Fallback, TransportStats};
use crate::webrtc::{DataChannels, PeerCounters, PeerEvent};

/// The WebSocket settings of a client connection. The read buffer is 4 KiB instead of
/// tungstenite's 128 KiB: it zero-fills up to that much free space before every read, so with
/// the default a client receiving 20 small states a second spent most of its time clearing
/// memory (states and events are mostly under 4 KiB; larger messages take a few reads and still
/// arrive whole).
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}
use crate::netem::{DelayLine, LinkConditions};
use crate::session::{ClientSession, Controls, Phase, SessionConfig, SessionEvent};
use crate::wire::{Encoding, Frame};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Second byte of a binary input frame (PROTOCOL.md, "Binary client frames").
const BINARY_KIND_INPUTS: u8 = 0x81;
/// Without the server's `open` this long after an offer, the client gives up on it (the server's
/// own limit is 5 s after its answer).
const WEBRTC_OPEN_TIMEOUT: f64 = 10.0;
/// After closing the channels, the peer is kept this long for the server's `closed`.
const WEBRTC_CLOSE_WAIT: f64 = 5.0;
/// Applied states remembered for [`Client::recent_states`].
const RECENT_STATES: usize = 2048;

/// What carries the state stream and the inputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Everything on the WebSocket.
    #[default]
    WebSocket,
    /// WebRTC data channels beside the WebSocket when the server's welcome offers them; the
    /// WebSocket otherwise, and whenever the channels are not open.
    WebRtc,
}

impl Transport {
    /// `websocket` or `webrtc`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::WebRtc => "webrtc",
        }
    }
}

/// Which transport a state message came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The WebSocket.
    WebSocket,
    /// The `state` data channel.
    WebRtc,
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The session (campaign, token, encoding, ...).
    pub session: SessionConfig,
    /// Time allowed to connect and be welcomed (default 10 s).
    pub join_timeout: Duration,
    /// Emulated conditions of frames sent (loss applies to input frames only).
    pub send_link: LinkConditions,
    /// Emulated conditions of frames received (loss applies to state messages only).
    pub receive_link: LinkConditions,
    /// Seed of the emulation's randomness.
    pub seed: u64,
    /// Session updates per second while running (default 60).
    pub frame_rate: f64,
    /// Acknowledge each received state at once rather than with the next update (default
    /// false). Bots running at a low frame rate use it to keep acks as prompt as a real client's.
    pub immediate_acks: bool,
    /// TLS settings for `wss://` URLs, e.g. from [`tls_trusting`]; `wss://` needs them.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The state stream and inputs on WebRTC data channels when the server offers them
    /// (default: the WebSocket).
    pub transport: Transport,
}

/// TLS settings trusting the PEM certificates in `pem_file` (e.g. a gateway's self-signed
/// certificate, or a private CA), and nothing else.
pub fn tls_trusting(pem_file: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let fail =
        |why: String| ClientError::new("invalid_tls", format!("{}: {why}", pem_file.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pem_file).map_err(|e| fail(e.to_string()))? {
        roots
            .add(cert.map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl ConnectOptions {
    /// Defaults for `session`: perfect links, 60 updates per second.
    pub fn new(session: SessionConfig) -> Self {
        ConnectOptions {
            session,
            join_timeout: Duration::from_secs(10),
            send_link: LinkConditions::PERFECT,
            receive_link: LinkConditions::PERFECT,
            seed: 1,
            frame_rate: 60.0,
            immediate_acks: false,
            tls: None,
            transport: Transport::WebSocket,
        }
    }
}

/// A connected, welcomed client.
pub struct Client {
    socket: Socket,
    session: ClientSession,
    origin: Instant,
    send_line: DelayLine<Frame>,
    receive_line: DelayLine<Frame>,
    frame_interval: Duration,
    immediate_acks: bool,
    closed: bool,
    /// The interface the WebSocket goes out of: the UDP socket binds it.
    local_ip: Option<IpAddr>,
    webrtc: WebRtcLink,
    transport_stats: TransportStats,
    last_applied: Option<u64>,
    recent_states: VecDeque<(u64, Via)>,
}

/// Where the data channels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RtcPhase {
    /// Not asked for, not offered by the server, or given up.
    Off,
    /// To offer once welcomed.
    Wanted,
    /// Offer sent; the stream is on the WebSocket until the server's `open`.
    Offered,
    /// The server streams on the channel.
    Open,
    /// The client closed the channels; waiting for the server's `closed`.
    Closing,
}

/// What the next applied state's tick gap is recorded as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GapWatch {
    None,
    /// The first state on the channel after the server's `open`.
    Open,
    /// The first state on the WebSocket after this fallback.
    Fallback(usize),
}

struct WebRtcLink {
    requested: Transport,
    phase: RtcPhase,
    /// When the phase began (client clock).
    since: f64,
    peer: Option<DataChannels>,
    /// The fallback recorded for the current offer (the server's reason may follow).
    fallback: Option<usize>,
    /// `closed: replaced` signals still due for offers this client replaced.
    replaced: u32,
    gap: GapWatch,
    /// Counters of the peers dropped so far.
    retired: PeerCounters,
}

/// Connects to `url`, joins `campaign` with `token` and waits for the welcome (default options).
pub async fn connect(
    url: &str,
    campaign: &str,
    token: &str,
    encoding: Encoding,
) -> Result<Client, ClientError> {
    let mut config = SessionConfig::new(campaign, token);
    config.encoding = encoding;
    connect_with(url, ConnectOptions::new(config)).await
}

/// Connects to `url` with `options` and waits for the welcome.
pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Client, ClientError> {
    options
        .send_link
        .validate()
        .and(options.receive_link.validate())
        .map_err(|m| ClientError::new("invalid_config", m))?;
    if !(options.frame_rate.is_finite() && options.frame_rate >= 1.0) {
        return Err(ClientError::new(
            "invalid_config",
            format!("frame rate must be at least 1, got {}", options.frame_rate),
        ));
    }
    let mut request = url
        .into_client_request()
        .map_err(|e| ClientError::new("invalid_url", format!("{url}: {e}")))?;
    let subprotocol = match options.session.encoding {
        Encoding::Binary => SUBPROTOCOL_BINARY,
        Encoding::Json => SUBPROTOCOL_JSON,
    };
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(subprotocol),
    );
    let deadline = Instant::now() + options.join_timeout;
    let connector = match (request.uri().scheme_str(), &options.tls) {
        (Some("wss"), Some(tls)) => Some(Connector::Rustls(tls.clone())),
        (Some("wss"), None) => {
            return Err(ClientError::new(
                "invalid_config",
                format!("{url}: wss:// needs ConnectOptions::tls (the certificates to trust)"),
            ));
        }
        _ => None,
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(websocket_config()),
        true,
        connector,
    );
    let (socket, response) = tokio::time::timeout_at(deadline, connecting)
        .await
        .map_err(|_| ClientError::new("timeout", format!("connecting to {url} timed out")))?
        .map_err(|e| ClientError::new("connect_failed", format!("{url}: {e}")))?;
    let mut session_config = options.session;
    // The server answers with the subprotocol it accepted; without one the stream is JSON.
    let accepted = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::from_subprotocol);
    session_config.encoding = accepted.unwrap_or(Encoding::Json);
    if options.transport == Transport::WebRtc {
        // The input channel takes binary frames only: quantise inputs alike on both transports.
        session_config.binary_client_frames = true;
    }
    tracing::debug!(url, encoding = session_config.encoding.name(), "connected");
    let local_ip = local_ip(&socket);
    let mut client = Client {
        socket,
        session: ClientSession::new(session_config),
        origin: Instant::now(),
        send_line: DelayLine::new(options.send_link, options.seed),
        receive_line: DelayLine::new(options.receive_link, options.seed ^ 0x5EED),
        frame_interval: Duration::from_secs_f64(1.0 / options.frame_rate),
        immediate_acks: options.immediate_acks,
        closed: false,
        local_ip,
        webrtc: WebRtcLink {
            requested: options.transport,
            since: 0.0,
            phase: match options.transport {
                Transport::WebSocket => RtcPhase::Off,
                Transport::WebRtc => RtcPhase::Wanted,
            },
            peer: None,
            fallback: None,
            replaced: 0,
            gap: GapWatch::None,
            retired: PeerCounters::default(),
        },
        transport_stats: TransportStats::default(),
        last_applied: None,
        recent_states: VecDeque::new(),
    };
    let now = client.now();
    client.session.start(now);
    let still = Controls::default();
    loop {
        if client.session.phase() == Phase::Active {
            // The offer goes out with the first frames after the welcome.
            let now = client.now();
            client.webrtc_step(now);
            return Ok(client);
        }
        let refusal = client
            .session
            .poll_events()
            .into_iter()
            .find_map(|e| match e {
                SessionEvent::ServerError { code, message } => Some(format!("{code}: {message}")),
                SessionEvent::Closed { reason } => Some(reason),
                _ => None,
            });
        if let Some(reason) = refusal {
            tracing::debug!(url, "join refused: {reason}");
            return Err(ClientError::new("join_refused", reason));
        }
        if Instant::now() >= deadline {
            return Err(ClientError::new(
                "timeout",
                format!("no welcome from {url} within {:?}", options.join_timeout),
            ));
        }
        let step_until = (Instant::now() + client.frame_interval).min(deadline);
        client.run_until(step_until, |_, _| still).await?;
    }
}

impl Client {
    /// Seconds since the connection opened (the session's clock).
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// The session.
    pub fn session(&self) -> &ClientSession {
        &self.session
    }

    /// The session, to interact or leave.
    pub fn session_mut(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Whether the connection closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Runs for `duration` with fixed `controls`.
    pub async fn step(
        &mut self,
        controls: &Controls,
        duration: Duration,
    ) -> Result<(), ClientError> {
        let controls = *controls;
        self.run_until(Instant::now() + duration, move |_, _| controls)
            .await
    }

    /// Runs until `deadline`; `controls(session, now)` gives the controls of each update.
    /// Returns early (Ok) when the connection closes.
    pub async fn run_until(
        &mut self,
        deadline: Instant,
        mut controls: impl FnMut(&ClientSession, f64) -> Controls,
    ) -> Result<(), ClientError> {
        let mut next_frame = Instant::now();
        while !self.closed {
            let now = self.now();
            while let Some(frame) = self.receive_line.pop_due(now) {
                self.deliver(now, &frame, Via::WebSocket);
            }
            self.webrtc_step(now);
            if self.immediate_acks {
                self.session.acknowledge_now();
            }
            if Instant::now() >= next_frame {
                let wanted = controls(&self.session, now);
                self.session.update(now, &wanted);
                next_frame += self.frame_interval;
                if next_frame < Instant::now() {
                    next_frame = Instant::now() + self.frame_interval;
                }
            }
            for frame in self.session.drain_outgoing() {
                let droppable = is_input_frame(&frame);
                if droppable {
                    self.transport_stats.input_frames_websocket += 1;
                }
                self.send_line.push(now, frame, droppable);
            }
            self.send_datagrams(now);
            // Everything due goes out in one write (an ack and an input batch together).
            let mut fed = false;
            while let Some(frame) = self.send_line.pop_due(self.now()) {
                self.feed_frame(frame).await?;
                fed = true;
            }
            if fed {
                self.flush().await?;
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            let mut wake = next_frame.min(deadline);
            for due in [self.receive_line.next_due(), self.send_line.next_due()]
                .into_iter()
                .flatten()
            {
                wake = wake.min(self.origin + Duration::from_secs_f64(due.max(0.0)));
            }
            if let Some(peer) = &self.webrtc.peer {
                wake = wake.min(Instant::from_std(peer.wake_at()));
            }
            tokio::select! {
                message = self.socket.next() => self.on_message(message),
                _ = receive_datagram(&mut self.webrtc.peer) => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
        Ok(())
    }

    /// The transport asked for ([`ConnectOptions::transport`]).
    pub fn transport(&self) -> Transport {
        self.webrtc.requested
    }

    /// Whether states come on the data channel now (the server said `open`).
    pub fn webrtc_active(&self) -> bool {
        self.webrtc.phase == RtcPhase::Open
    }

    /// Whether inputs and acks leave on the `input` channel now.
    pub fn webrtc_inputs_active(&self) -> bool {
        self.session.datagram_inputs()
    }

    /// Which transport carried what, so far.
    pub fn transport_stats(&self) -> TransportStats {
        let mut stats = self.transport_stats.clone();
        let mut counters = self.webrtc.retired;
        if let Some(peer) = &self.webrtc.peer {
            add_counters(&mut counters, &peer.counters());
        }
        stats.datagrams_sent = counters.datagrams_sent;
        stats.datagrams_received = counters.datagrams_received;
        stats.udp_bytes_sent = counters.bytes_sent;
        stats.udp_bytes_received = counters.bytes_received;
        stats.webrtc_active = self.webrtc_active();
        stats
    }

    /// The newest applied states (up to 2,048), oldest first: tick and transport.
    pub fn recent_states(&self) -> impl Iterator<Item = (u64, Via)> + '_ {
        self.recent_states.iter().copied()
    }

    /// Closes the data channels from the client side (as a browser closing them would): inputs
    /// go back on the WebSocket at once, states once the server notices (`channel_closed`).
    /// Returns whether there were channels to close.
    pub fn close_data_channel(&mut self) -> bool {
        let Some(peer) = &mut self.webrtc.peer else {
            return false;
        };
        peer.close();
        self.set_phase(RtcPhase::Closing);
        self.fall_back("closed_by_client".into());
        true
    }

    /// Offers data channels again (after a fallback; a second offer replaces the first). Needs
    /// a welcome that offered WebRTC.
    pub fn offer_data_channels(&mut self) -> Result<(), ClientError> {
        if !self.session.server_offers_webrtc() {
            return Err(ClientError::new(
                "webrtc_unavailable",
                "the server's welcome does not offer WebRTC",
            ));
        }
        if matches!(self.webrtc.phase, RtcPhase::Offered | RtcPhase::Open) {
            self.webrtc.replaced += 1;
            self.fall_back("replaced".into());
        }
        self.drop_peer();
        self.set_phase(RtcPhase::Wanted);
        let now = self.now();
        self.offer(now)
    }

    /// Hands a received frame to the session and records which transport applied states came
    /// on, and the tick gaps around switches.
    fn deliver(&mut self, now: f64, frame: &Frame, via: Via) {
        let applied = self.session.stats().states_applied;
        // Undecodable frames are counted by the session; the stream goes on.
        let _ = self.session.receive(now, frame);
        if self.session.stats().states_applied == applied {
            return;
        }
        let Some(tick) = self.session.last_state_tick() else {
            return;
        };
        match via {
            Via::WebSocket => self.transport_stats.states_websocket += 1,
            Via::WebRtc => self.transport_stats.states_webrtc += 1,
        }
        if let Some(previous) = self.last_applied {
            let gap = tick.saturating_sub(previous);
            self.transport_stats.max_tick_gap = self.transport_stats.max_tick_gap.max(gap);
            match (self.webrtc.gap, via) {
                (GapWatch::Open, Via::WebRtc) => {
                    self.transport_stats.open_tick_gap = Some(gap);
                    self.webrtc.gap = GapWatch::None;
                }
                (GapWatch::Fallback(index), Via::WebSocket) => {
                    if let Some(fallback) = self.transport_stats.fallbacks.get_mut(index) {
                        fallback.tick_gap = Some(gap);
                    }
                    self.webrtc.gap = GapWatch::None;
                }
                _ => {}
            }
        }
        self.last_applied = Some(tick);
        if self.recent_states.len() >= RECENT_STATES {
            self.recent_states.pop_front();
        }
        self.recent_states.push_back((tick, via));
    }

    /// Runs the data channels: the offer once welcomed, the peer's timers and events, the
    /// server's signals, the client's own time limit.
    fn webrtc_step(&mut self, now: f64) {
        if self.webrtc.phase == RtcPhase::Off && self.webrtc.peer.is_none() {
            // Signals may still come (an error for an offer given up on); nothing to do.
            if self.transport_stats.offers > 0 {
                self.take_signals(now);
            }
            return;
        }
        if self.webrtc.phase == RtcPhase::Wanted {
            if self.session.phase() != Phase::Active {
                return;
            }
            if !self.session.server_offers_webrtc() {
                self.set_phase(RtcPhase::Off);
                self.transport_stats.webrtc_unavailable =
                    Some("the server's welcome does not offer WebRTC".into());
                tracing::debug!("staying on the WebSocket: the server offers no WebRTC");
                return;
            }
            if let Err(err) = self.offer(now) {
                self.set_phase(RtcPhase::Off);
                self.transport_stats.webrtc_unavailable = Some(err.to_string());
                tracing::debug!("staying on the WebSocket: {err}");
                return;
            }
        }
        if let Some(peer) = &mut self.webrtc.peer {
            peer.handle_timeout();
        }
        while let Some(event) = self.webrtc.peer.as_mut().and_then(DataChannels::poll_event) {
            self.on_peer_event(now, event);
        }
        self.take_signals(now);
        let waited = now - self.webrtc.since;
        match self.webrtc.phase {
            RtcPhase::Offered if waited > WEBRTC_OPEN_TIMEOUT => {
                self.fall_back("open_timeout".into());
                self.drop_peer();
                self.set_phase(RtcPhase::Off);
            }
            // The server did not confirm the close: nothing of the peer is used any more.
            RtcPhase::Closing if waited > WEBRTC_CLOSE_WAIT => {
                self.drop_peer();
                self.set_phase(RtcPhase::Off);
            }
            _ => {}
        }
        // Inputs on the channel only while it is open and ICE has the server.
        let ready = self
            .webrtc
            .peer
            .as_ref()
            .is_some_and(DataChannels::input_ready)
            && matches!(self.webrtc.phase, RtcPhase::Offered | RtcPhase::Open);
        if ready != self.session.datagram_inputs() {
            self.session.set_datagram_inputs(ready);
        }
    }

    fn offer(&mut self, now: f64) -> Result<(), ClientError> {
        let ip = self
            .local_ip
            .ok_or_else(|| ClientError::new("webrtc_failed", "no local address"))?;
        let (peer, sdp) = DataChannels::offer(ip)?;
        self.session.offer_webrtc(&sdp);
        // Also trickled (optional: the offer has it), then the end of candidates.
        self.session.send_webrtc_candidate(peer.candidate());
        self.session.send_webrtc_candidate("");
        tracing::debug!(local = %peer.local_addr(), "webrtc offer sent");
        self.webrtc.peer = Some(peer);
        self.set_phase(RtcPhase::Offered);
        self.webrtc.fallback = None;
        self.transport_stats.offers += 1;
        self.transport_stats.offered_at = Some(now);
        self.transport_stats.channel_open_seconds = None;
        Ok(())
    }

    fn on_peer_event(&mut self, now: f64, event: PeerEvent) {
        match event {
            PeerEvent::State(frame) => {
                self.transport_stats.webrtc_messages_received += 1;
                self.deliver(now, &frame, Via::WebRtc);
            }
            PeerEvent::Connected => tracing::debug!("webrtc connected"),
            PeerEvent::Open(kind) => tracing::debug!(?kind, "webrtc channel open"),
            PeerEvent::Reachable(reachable) => tracing::debug!(reachable, "webrtc ICE"),
            PeerEvent::Closed(kind) => {
                tracing::debug!(?kind, "webrtc channel closed");
                if self.webrtc.phase != RtcPhase::Closing {
                    // The server's `closed` (with its reason) normally follows.
                    self.fall_back("channel_closed_remotely".into());
                    self.set_phase(RtcPhase::Closing);
                }
            }
            PeerEvent::Failed(reason) => {
                self.fall_back(format!("peer_failed: {reason}"));
                self.drop_peer();
                self.set_phase(RtcPhase::Off);
            }
        }
    }

    fn take_signals(&mut self, now: f64) {
        for signal in self.session.poll_webrtc_signals() {
            match signal {
                WebRtcSignal::Answer(sdp) => {
                    let Some(peer) = &mut self.webrtc.peer else {
                        continue;
                    };
                    if let Err(err) = peer.accept_answer(&sdp) {
                        self.fall_back(format!("answer_rejected: {}", err.message));
                        self.drop_peer();
                        self.set_phase(RtcPhase::Off);
                    }
                }
                WebRtcSignal::Open => {
                    if self.webrtc.phase != RtcPhase::Offered {
                        continue;
                    }
                    self.set_phase(RtcPhase::Open);
                    self.webrtc.gap = GapWatch::Open;
                    self.transport_stats.channel_open_seconds =
                        self.transport_stats.offered_at.map(|at| now - at);
                    tracing::debug!(
                        after_s = self.transport_stats.channel_open_seconds,
                        "states on the data channel"
                    );
                }
                WebRtcSignal::Closed(reason) => {
                    if reason == "replaced" && self.webrtc.replaced > 0 {
                        // An earlier offer of ours, replaced on purpose: the current one lives.
                        self.webrtc.replaced -= 1;
                        continue;
                    }
                    tracing::debug!(reason, "states back on the WebSocket");
                    self.fall_back(reason);
                    self.drop_peer();
                    self.set_phase(RtcPhase::Off);
                }
                WebRtcSignal::Refused { code, message } => {
                    self.fall_back(format!("refused: {code}: {message}"));
                    self.drop_peer();
                    self.set_phase(RtcPhase::Off);
                }
            }
        }
    }

    /// Records a return to the WebSocket (once per offer: a later server reason is added to
    /// it) and moves the inputs back at once.
    fn fall_back(&mut self, reason: String) {
        self.session.set_datagram_inputs(false);
        let server_reasons = [
            "timeout",
            "channel_closed",
            "unresponsive",
            "replaced",
            "failed",
        ];
        match self.webrtc.fallback {
            Some(index) => {
                if let Some(fallback) = self.transport_stats.fallbacks.get_mut(index)
                    && fallback.server_reason.is_none()
                    && server_reasons.contains(&reason.as_str())
                {
                    fallback.server_reason = Some(reason);
                }
            }
            None => {
                let index = self.transport_stats.fallbacks.len();
                self.transport_stats.fallbacks.push(Fallback {
                    at: self.now(),
                    reason,
                    server_reason: None,
                    tick_gap: None,
                });
                self.webrtc.fallback = Some(index);
                self.webrtc.gap = GapWatch::Fallback(index);
            }
        }
    }

    fn set_phase(&mut self, phase: RtcPhase) {
        self.webrtc.phase = phase;
        self.webrtc.since = self.now();
    }

    fn drop_peer(&mut self) {
        if let Some(peer) = self.webrtc.peer.take() {
            add_counters(&mut self.webrtc.retired, &peer.counters());
        }
        self.session.set_datagram_inputs(false);
    }

    /// Datagrams from the session go on the `input` channel; one that cannot (the channel
    /// closed meanwhile) goes on the WebSocket (binary frames are valid there too).
    fn send_datagrams(&mut self, now: f64) {
        for datagram in self.session.drain_datagrams() {
            let inputs = datagram.get(1) == Some(&BINARY_KIND_INPUTS);
            let sent = self
                .webrtc
                .peer
                .as_mut()
                .is_some_and(|peer| peer.send_input(&datagram));
            if sent {
                if inputs {
                    self.transport_stats.input_frames_webrtc += 1;
                } else {
                    self.transport_stats.acks_webrtc += 1;
                }
            } else {
                if inputs {
                    self.transport_stats.input_frames_websocket += 1;
                }
                self.send_line.push(now, Frame::Binary(datagram), inputs);
            }
        }
    }

    fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        let now = self.now();
        let frame = match message {
            Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
            Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
            Some(Ok(Message::Close(close))) => {
                let reason = close.map_or_else(
                    || "closed by the server".to_owned(),
                    |c| c.reason.as_str().to_owned(),
                );
                self.close_with(&reason);
                return;
            }
            Some(Ok(_)) => return, // pings are answered by tungstenite
            Some(Err(err)) => {
                self.close_with(&format!("connection failed: {err}"));
                return;
            }
            None => {
                self.close_with("connection closed");
                return;
            }
        };
        let droppable = is_state_frame(&frame);
        let len = frame.len();
        if !self.receive_line.push(now, frame, droppable) {
            self.session.note_lost_frame(len);
        }
    }

    fn close_with(&mut self, reason: &str) {
        tracing::debug!("connection closed: {reason}");
        self.closed = true;
        self.session.on_closed(reason);
    }

    /// Queues a frame on the socket; [`Self::flush`] writes it out.
    async fn feed_frame(&mut self, frame: Frame) -> Result<(), ClientError> {
        let message = match frame {
            Frame::Text(text) => Message::Text(Utf8Bytes::from(text)),
            Frame::Binary(bytes) => Message::Binary(Bytes::from(bytes)),
        };
        let fed = self.socket.feed(message).await;
        self.send_result(fed)
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        let flushed = self.socket.flush().await;
        self.send_result(flushed)
    }

    fn send_result(
        &mut self,
        result: Result<(), tokio_tungstenite::tungstenite::Error>,
    ) -> Result<(), ClientError> {
        result.map_err(|err| {
            self.close_with(&format!("send failed: {err}"));
            ClientError::new("closed", format!("send failed: {err}"))
        })
    }

    /// Leaves the campaign and closes the connection politely.
    pub async fn close(mut self) {
        self.drop_peer();
        self.session.leave();
        for frame in self.session.drain_outgoing() {
            if self.feed_frame(frame).await.is_err() {
                return;
            }
        }
        if self.flush().await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
    }
}

/// Waits for the next datagram of the peer, if there is one (forever otherwise).
async fn receive_datagram(peer: &mut Option<DataChannels>) {
    match peer {
        Some(peer) => peer.receive().await,
        None => std::future::pending().await,
    }
}

fn add_counters(total: &mut PeerCounters, more: &PeerCounters) {
    total.datagrams_received += more.datagrams_received;
    total.datagrams_sent += more.datagrams_sent;
    total.bytes_received += more.bytes_received;
    total.bytes_sent += more.bytes_sent;
    total.datagrams_dropped += more.datagrams_dropped;
    total.send_errors += more.send_errors;
    total.messages_ignored += more.messages_ignored;
}

/// The local address of the WebSocket's TCP connection: the interface that reaches the server.
fn local_ip(socket: &Socket) -> Option<IpAddr> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(tcp) => tcp.local_addr().ok().map(|a| a.ip()),
        MaybeTlsStream::Rustls(tls) => tls.get_ref().0.local_addr().ok().map(|a| a.ip()),
        _ => None,
    }
}

/// Whether a received frame belongs to the (latest-wins, losable) state stream.
pub fn is_state_frame(frame: &Frame) -> bool {
    match frame {
        Frame::Binary(_) => true,
        // The type leads every envelope the server writes; a bounded look avoids scanning state.
        Frame::Text(text) => {
            let head = &text.as_bytes()[..text.len().min(64)];
            let needle = names::WORLD_STATE.as_bytes();
            head.windows(needle.len()).any(|w| w == needle)
        }
    }
}

/// Whether a sent frame carries inputs (the only frames send-loss emulation may drop).
pub fn is_input_frame(frame: &Frame) -> bool {
    match frame {
        Frame::Binary(bytes) => bytes.get(1) == Some(&BINARY_KIND_INPUTS),
        Frame::Text(text) => text.contains(names::CLIENT_INPUT),
    }
}
