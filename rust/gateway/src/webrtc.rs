//! WebRTC data channels beside the WebSocket (PROTOCOL.md section 11): the state stream and the
//! inputs on unordered, unreliable channels, so a lost packet never holds back a newer state.
//!
//! How it works:
//! - One UDP socket serves every peer. [`WebRtcServer`] owns it in one task (the *driver*) with a
//!   [`str0m`] `Rtc` per peer (sans-I/O: the driver feeds it datagrams and timeouts, and sends
//!   what it outputs). The server is ICE-lite with one host candidate: the address the client's
//!   WebSocket reached, or the configured public address.
//! - Signalling rides on the session: the reader turns an offer into an answer
//!   ([`WebRtcServer::answer`]) and hands the peer to the driver.
//! - Each session has a [`SessionRtc`], shared by its reader, its writer and the driver: the
//!   driver marks it open when the client's `state` channel opens and forwards the `input`
//!   channel's frames to the reader; the writer then hands its state messages to the driver
//!   instead of the socket ([`SessionRtc::send_state`]), and falls back to the WebSocket by
//!   itself when the client stops acknowledging them. Nothing here ever waits on the tick, and a
//!   full queue means the WebSocket carries that state.
//! - Anything str0m refuses, panics on or times out closes that one peer; the session goes on
//!   over the WebSocket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::ws::Utf8Bytes;
use str0m::change::SdpOffer;
use str0m::channel::{ChannelData, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, WebRtcMetrics};
use crate::outbox::{Outbox, Reliable};
use crate::wire;

/// Label of the server → client state channel.
pub(crate) const STATE_CHANNEL: &str = "state";
/// Label of the client → server input channel.
pub(crate) const INPUT_CHANNEL: &str = "input";
/// State messages above this go on the WebSocket: a lost fragment would lose the whole message.
pub(crate) const MAX_STATE_MESSAGE_BYTES: usize = 16 * 1024;
/// Offers one connection may make.
pub(crate) const MAX_OFFERS_PER_CONNECTION: u32 = 8;
/// A client that acknowledges states but none of those sent on the channel for this long has
/// lost the channel.
pub(crate) const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(1);
/// Nothing received from a peer for this long: it is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// Largest datagram taken (the MTU of any path a WebRTC stack uses is below it).
const MAX_DATAGRAM_BYTES: usize = 1500;
/// Commands waiting for the driver; when full, states go on the WebSocket.
const COMMAND_QUEUE: usize = 8192;
/// Input frames waiting for one session's reader.
pub(crate) const INPUT_QUEUE: usize = 256;

/// Where the gateway takes WebRTC peers.
#[derive(Clone, Debug, PartialEq)]
pub struct WebRtcConfig {
    /// UDP port (on the gateway's bind address); 0 picks a free one
    /// ([`crate::GatewayHandle::webrtc_addr`]).
    pub port: u16,
    /// The address clients reach the server on, when it is behind a 1:1 NAT. Without it the
    /// candidate is the address each client's WebSocket connected to.
    pub public_ip: Option<IpAddr>,
    /// The state channel must open within this time of the answer (default 10 s: on a lossy
    /// link the DTLS and SCTP handshakes retransmit after 1 s and more).
    pub open_timeout: Duration,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        WebRtcConfig {
            port: 0,
            public_ip: None,
            open_timeout: Duration::from_secs(10),
        }
    }
}

type PeerId = u64;

enum Command {
    Add {
        id: PeerId,
        rtc: Box<Rtc>,
        /// The server's ICE username fragment in the answer: STUN from a new address names it.
        ufrag: String,
        session: Arc<SessionRtc>,
    },
    Candidate {
        id: PeerId,
        candidate: Candidate,
    },
    Close {
        id: PeerId,
    },
    State {
        id: PeerId,
        binary: bool,
        data: Bytes,
    },
}

/// The gateway's WebRTC side: its socket's address and the driver's queue.
pub(crate) struct WebRtcServer {
    config: WebRtcConfig,
    local_addr: SocketAddr,
    commands: mpsc::Sender<Command>,
    next_peer: AtomicU64,
    /// One certificate for every peer: generating one per offer would cost milliseconds each.
    rtc_config: Mutex<RtcConfig>,
    metrics: Arc<Metrics>,
}

/// What a session needs from the driver and the writer.
pub(crate) struct SessionRtc {
    server: Arc<WebRtcServer>,
    outbox: Arc<Outbox>,
    inputs: mpsc::Sender<Bytes>,
    state: Mutex<SessionPeer>,
    /// The peer whose state channel is open (0: none): the writer's check on every state.
    open_peer: AtomicU64,
}

#[derive(Default)]
struct SessionPeer {
    current: PeerId,
    campaign_id: Arc<str>,
    offers: u32,
}

impl WebRtcServer {
    /// Binds the UDP socket (so a taken port is a start-up error) and returns the server with
    /// its driver, to be spawned on the gateway's runtime.
    pub(crate) fn bind(
        config: WebRtcConfig,
        bind_ip: IpAddr,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> std::io::Result<(Arc<Self>, impl Future<Output = ()> + Send + 'static)> {
        let addr = SocketAddr::new(bind_ip, config.port);
        let socket = std::net::UdpSocket::bind(addr).map_err(|err| {
            std::io::Error::new(err.kind(), format!("the WebRTC UDP port {addr}: {err}"))
        })?;
        socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(socket)?;
        let local_addr = socket.local_addr()?;
        let provider = Arc::new(str0m::crypto::from_feature_flags());
        let cert = provider
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| std::io::Error::other("no DTLS certificate could be generated"))?;
        let rtc_config = Rtc::builder()
            .set_crypto_provider(provider)
            .set_dtls_cert(cert)
            .set_ice_lite(true)
            .clear_codecs();
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let server = Arc::new(WebRtcServer {
            config,
            local_addr,
            commands,
            next_peer: AtomicU64::new(1),
            rtc_config: Mutex::new(rtc_config),
            metrics: metrics.clone(),
        });
        tracing::debug!(%local_addr, "WebRTC data channels on UDP");
        let driver = Driver {
            socket,
            local_addr,
            open_timeout: server.config.open_timeout,
            peers: HashMap::new(),
            by_address: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BinaryHeap::new(),
            metrics,
        };
        Ok((server, driver.run(queue, shutdown)))
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A fresh per-session handle, with the receiver of its `input` channel's frames.
    pub(crate) fn session(
        self: &Arc<Self>,
        outbox: Arc<Outbox>,
    ) -> (Arc<SessionRtc>, mpsc::Receiver<Bytes>) {
        let (inputs, received) = mpsc::channel(INPUT_QUEUE);
        let session = Arc::new(SessionRtc {
            server: self.clone(),
            outbox,
            inputs,
            state: Mutex::default(),
            open_peer: AtomicU64::new(0),
        });
        (session, received)
    }

    fn metrics(&self) -> &WebRtcMetrics {
        &self.metrics.webrtc
    }
}

impl SessionRtc {
    fn peer(&self) -> std::sync::MutexGuard<'_, SessionPeer> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers a client's offer: a new peer (replacing the session's previous one), handed to the
    /// driver. `reached` is the local address of the client's WebSocket: the candidate's IP.
    pub(crate) fn offer(
        self: &Arc<Self>,
        campaign_id: &Arc<str>,
        sdp: &str,
        reached: IpAddr,
    ) -> Result<String, (&'static str, String)> {
        let server = &self.server;
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|err| (wire::codes::INVALID_PAYLOAD, format!("payload.sdp: {err}")))?;
        if !offers_channel(sdp) {
            return Err((
                wire::codes::INVALID_PAYLOAD,
                "payload.sdp: the offer has no data channel (create the `state` and `input` channels before the offer)".into(),
            ));
        }
        {
            let mut peer = self.peer();
            if peer.offers >= MAX_OFFERS_PER_CONNECTION {
                return Err((
                    wire::codes::LIMIT_EXCEEDED,
                    format!("at most {MAX_OFFERS_PER_CONNECTION} WebRTC offers per connection"),
                ));
            }
            peer.offers += 1;
        }
        let ip = server.config.public_ip.unwrap_or(reached);
        let candidate_addr = SocketAddr::new(ip, server.local_addr.port());
        let mut rtc = server
            .rtc_config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .build(Instant::now());
        let candidate = Candidate::host(candidate_addr, "udp").map_err(|err| {
            (
                wire::codes::INTERNAL_ERROR,
                format!("no host candidate: {err}"),
            )
        })?;
        rtc.add_local_candidate(candidate);
        let answer =
            std::panic::catch_unwind(AssertUnwindSafe(|| rtc.sdp_api().accept_offer(offer)))
                .map_err(|_| {
                    (
                        wire::codes::INVALID_PAYLOAD,
                        "payload.sdp: an offer the server cannot take".to_string(),
                    )
                })?
                .map_err(|err| (wire::codes::INVALID_PAYLOAD, format!("payload.sdp: {err}")))?;
        let id = server.next_peer.fetch_add(1, Ordering::Relaxed);
        let replaced = {
            let mut peer = self.peer();
            peer.campaign_id = campaign_id.clone();
            peer.current
        };
        if replaced != 0 {
            self.fall_back(replaced, "replaced");
            let _ = server.commands.try_send(Command::Close { id: replaced });
        }
        self.peer().current = id;
        Metrics::inc(&server.metrics().offers);
        let answer = answer.to_sdp_string();
        let ufrag = answer
            .lines()
            .find_map(|line| line.strip_prefix("a=ice-ufrag:"))
            .unwrap_or_default()
            .trim()
            .to_string();
        // The driver's queue is full only when it is far behind; the client then stays on the
        // WebSocket (its channel times out).
        let _ = server.commands.try_send(Command::Add {
            id,
            rtc: Box::new(rtc),
            ufrag,
            session: self.clone(),
        });
        Ok(answer)
    }

    /// A trickled candidate of the client, for the current peer.
    pub(crate) fn candidate(&self, candidate: &str) -> Result<(), String> {
        let candidate = candidate.trim();
        let candidate = candidate.strip_prefix("a=").unwrap_or(candidate);
        if candidate.is_empty() {
            return Ok(()); // end of candidates
        }
        let id = self.peer().current;
        if id == 0 {
            return Err("a candidate before any offer".into());
        }
        let parsed = Candidate::from_sdp_string(candidate).map_err(|err| err.to_string())?;
        let _ = self.server.commands.try_send(Command::Candidate {
            id,
            candidate: parsed,
        });
        Ok(())
    }

    /// The peer whose state channel is open, if any.
    pub(crate) fn open_peer(&self) -> Option<PeerId> {
        match self.open_peer.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Hands one state message to the driver; false when it must go on the WebSocket instead.
    pub(crate) fn send_state(&self, id: PeerId, binary: bool, data: Bytes) -> bool {
        if data.len() > MAX_STATE_MESSAGE_BYTES {
            return false;
        }
        self.server
            .commands
            .try_send(Command::State { id, binary, data })
            .is_ok()
    }

    /// The writer found the channel dead: back to the WebSocket, and the peer closed.
    pub(crate) fn abandon(&self, id: PeerId, reason: &str) {
        if self.fall_back(id, reason) {
            let _ = self.server.commands.try_send(Command::Close { id });
        }
    }

    /// Ends the session's peer (the connection is closing).
    pub(crate) fn close(&self) {
        let id = std::mem::take(&mut self.peer().current);
        if id != 0 {
            if self.open_peer.swap(0, Ordering::AcqRel) == id {
                Metrics::dec(&self.server.metrics().clients);
            }
            let _ = self.server.commands.try_send(Command::Close { id });
        }
    }

    fn opened(&self, id: PeerId) {
        let campaign_id = {
            let peer = self.peer();
            if peer.current != id {
                return;
            }
            peer.campaign_id.clone()
        };
        if self.open_peer.swap(id, Ordering::AcqRel) != id {
            let metrics = self.server.metrics();
            Metrics::inc(&metrics.opened);
            Metrics::inc(&metrics.clients);
            self.say(&campaign_id, true, None);
        }
    }

    /// Moves the stream back to the WebSocket if `id` is still the session's peer; true if it was.
    fn fall_back(&self, id: PeerId, reason: &str) -> bool {
        let campaign_id = {
            let mut peer = self.peer();
            if peer.current != id {
                return false;
            }
            peer.current = 0;
            peer.campaign_id.clone()
        };
        let metrics = self.server.metrics();
        if self
            .open_peer
            .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            Metrics::dec(&metrics.clients);
        }
        metrics.fallback(reason);
        tracing::debug!(peer = id, reason, "state stream back on the WebSocket");
        self.say(&campaign_id, false, Some(reason));
        true
    }

    fn say(&self, campaign_id: &str, open: bool, reason: Option<&str>) {
        let text = wire::webrtc_state_text(campaign_id, open, reason);
        // Overflow closes the connection as for any reliable event (`slow_consumer`).
        let _ = self
            .outbox
            .push_reliable(Reliable::Text(Utf8Bytes::from(text)));
    }
}

/// Whether the SDP negotiates SCTP data channels at all.
fn offers_channel(sdp: &str) -> bool {
    sdp.lines()
        .any(|line| line.starts_with("m=application") && line.contains("SCTP"))
}

struct Peer {
    rtc: Box<Rtc>,
    ufrag: String,
    session: Arc<SessionRtc>,
    state_channel: Option<ChannelId>,
    input_channel: Option<ChannelId>,
    added: Instant,
    last_received: Instant,
    next_timeout: Instant,
    /// The earliest entry of this peer in the driver's timer heap.
    scheduled: Option<Instant>,
    remotes: Vec<SocketAddr>,
}

struct Driver {
    socket: UdpSocket,
    local_addr: SocketAddr,
    open_timeout: Duration,
    peers: HashMap<PeerId, Peer>,
    /// Remote addresses peers received from: the fast path of the demultiplexing.
    by_address: HashMap<SocketAddr, PeerId>,
    /// Peers by the ICE username fragment of their answer: how STUN from a new address is
    /// routed, without asking every peer.
    by_ufrag: HashMap<String, PeerId>,
    /// When each peer wants its next timeout (entries may be stale: checked when due).
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    metrics: Arc<Metrics>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sweep = tokio::time::interval(Duration::from_millis(250));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self
                .timers
                .peek()
                .map_or_else(|| Instant::now() + Duration::from_secs(1), |t| t.0.0);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, source)) => self.on_datagram(&buf[..n], source),
                    Err(error) => {
                        // ICMP errors of earlier sends surface here; nothing to do with them.
                        tracing::trace!(%error, "WebRTC socket receive failed");
                    }
                },
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                    self.on_timers(Instant::now());
                }
                _ = sweep.tick() => self.sweep(),
            }
        }
        for (_, peer) in self.peers.drain() {
            peer.session.close();
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Add {
                id,
                rtc,
                ufrag,
                session,
            } => {
                let now = Instant::now();
                if !ufrag.is_empty() {
                    self.by_ufrag.insert(ufrag.clone(), id);
                }
                self.peers.insert(
                    id,
                    Peer {
                        rtc,
                        ufrag,
                        session,
                        state_channel: None,
                        input_channel: None,
                        added: now,
                        last_received: now,
                        next_timeout: now,
                        scheduled: None,
                        remotes: Vec::new(),
                    },
                );
                self.drive(id, None);
            }
            Command::Candidate { id, candidate } => {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.rtc.add_remote_candidate(candidate);
                    self.drive(id, None);
                }
            }
            Command::Close { id } => self.remove(id, None),
            Command::State { id, binary, data } => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let Some(channel) = peer.state_channel else {
                    return;
                };
                let written = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    peer.rtc
                        .channel(channel)
                        .map(|mut c| c.write(binary, &data))
                }));
                match written {
                    Ok(Some(Ok(_))) => {
                        let metrics = &self.metrics.webrtc;
                        Metrics::inc(&metrics.states_sent);
                        Metrics::add(&metrics.state_bytes_sent, data.len() as u64);
                        self.drive(id, None);
                    }
                    Ok(_) => {} // the channel is closing: its close event moves the stream
                    Err(_) => self.remove(id, Some("failed")),
                }
            }
        }
    }

    fn on_datagram(&mut self, datagram: &[u8], source: SocketAddr) {
        let metrics = &self.metrics.webrtc;
        if datagram.len() > MAX_DATAGRAM_BYTES {
            Metrics::inc(&metrics.dropped_oversized);
            return;
        }
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local_addr, datagram) else {
            Metrics::inc(&metrics.dropped_malformed);
            return;
        };
        let input = Input::Receive(Instant::now(), receive);
        // A known address, or STUN naming a peer's username fragment; nothing else is tried.
        let candidate = self
            .by_address
            .get(&source)
            .or_else(|| stun_username_fragment(datagram).and_then(|u| self.by_ufrag.get(u)))
            .copied();
        let id = candidate.filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let Some(id) = id else {
            Metrics::inc(&metrics.dropped_unknown_peer);
            return;
        };
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.last_received = Instant::now();
            if !peer.remotes.contains(&source) && peer.remotes.len() < 8 {
                peer.remotes.push(source);
                self.by_address.insert(source, id);
            }
        }
        self.drive(id, Some(input));
    }

    /// Feeds `input` (if any) to peer `id`, then carries out everything it outputs until it
    /// asks for a timeout. A peer that fails (or panics) is removed.
    fn drive(&mut self, id: PeerId, input: Option<Input<'_>>) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Happened>, ()> {
            if let Some(input) = input
                && let Err(err) = peer.rtc.handle_input(input)
            {
                // A bad datagram (or a spoofed one) is dropped; it does not end the peer.
                tracing::debug!(peer = id, %err, "WebRTC input refused");
                Metrics::inc(&self.metrics.webrtc.dropped_malformed);
            }
            let mut happened = Vec::new();
            loop {
                match peer.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => {
                        peer.next_timeout = at;
                        if peer.scheduled.is_none_or(|s| at < s) {
                            peer.scheduled = Some(at);
                            self.timers.push(Reverse((at, id)));
                        }
                        break;
                    }
                    Ok(Output::Transmit(transmit)) => {
                        // UDP: a datagram the kernel cannot take now is as good as lost.
                        let _ = self
                            .socket
                            .try_send_to(&transmit.contents, transmit.destination);
                    }
                    Ok(Output::Event(event)) => happened.push(Happened::from(event)),
                    Err(err) => {
                        tracing::debug!(peer = id, %err, "WebRTC peer failed");
                        return Err(());
                    }
                }
            }
            Ok(happened)
        }));
        match result {
            Ok(Ok(happened)) => {
                for event in happened {
                    self.on_event(id, event);
                }
                if self.peers.get(&id).is_some_and(|p| !p.rtc.is_alive()) {
                    self.remove(id, Some("channel_closed"));
                }
            }
            Ok(Err(())) => self.remove(id, Some("failed")),
            Err(_) => {
                tracing::warn!(peer = id, "the WebRTC stack panicked on a peer; closing it");
                Metrics::inc(&self.metrics.task_panics);
                self.remove(id, Some("failed"));
            }
        }
    }

    fn on_event(&mut self, id: PeerId, event: Happened) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let metrics = &self.metrics.webrtc;
        match event {
            Happened::Open(channel, label) => match label.as_str() {
                STATE_CHANNEL => {
                    peer.state_channel = Some(channel);
                    peer.session.opened(id);
                }
                INPUT_CHANNEL => peer.input_channel = Some(channel),
                _ => Metrics::inc(&metrics.dropped_channel_message),
            },
            Happened::Data(data) => {
                if Some(data.id) == peer.input_channel && data.binary {
                    Metrics::inc(&metrics.input_frames);
                    let frame = Bytes::from(data.data);
                    if peer.session.inputs.try_send(frame).is_err() {
                        // The reader is behind: an unreliable channel may lose this one too.
                        Metrics::inc(&metrics.dropped_channel_message);
                    }
                } else {
                    Metrics::inc(&metrics.dropped_channel_message);
                }
            }
            Happened::Closed(channel) => {
                if Some(channel) == peer.state_channel {
                    self.remove(id, Some("channel_closed"));
                } else if Some(channel) == peer.input_channel {
                    peer.input_channel = None;
                }
            }
            Happened::Disconnected => self.remove(id, Some("unresponsive")),
            Happened::Other => {}
        }
    }

    /// Drives every peer whose timeout is due.
    fn on_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.scheduled == Some(at) {
                peer.scheduled = None;
            }
            if peer.next_timeout <= now {
                self.drive(id, Some(Input::Timeout(now)));
            } else if peer.scheduled.is_none() {
                let next = peer.next_timeout;
                peer.scheduled = Some(next);
                self.timers.push(Reverse((next, id)));
            }
        }
    }

    /// Peers whose channel did not open in time, or that fell silent.
    fn sweep(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for (id, peer) in &self.peers {
            if peer.state_channel.is_none() && now.duration_since(peer.added) > self.open_timeout {
                expired.push((*id, "timeout"));
            } else if now.duration_since(peer.last_received) > SILENCE_LIMIT {
                expired.push((*id, "unresponsive"));
            }
        }
        for (id, reason) in expired {
            self.remove(id, Some(reason));
        }
    }

    /// Closes and forgets a peer; with a reason, its session hears that the stream is back on
    /// the WebSocket.
    fn remove(&mut self, id: PeerId, reason: Option<&str>) {
        let Some(mut peer) = self.peers.remove(&id) else {
            return;
        };
        if self.by_ufrag.get(&peer.ufrag) == Some(&id) {
            self.by_ufrag.remove(&peer.ufrag);
        }
        for remote in &peer.remotes {
            if self.by_address.get(remote) == Some(&id) {
                self.by_address.remove(remote);
            }
        }
        if let Some(reason) = reason {
            peer.session.fall_back(id, reason);
        }
        // Say goodbye (DTLS close_notify, SCTP abort) as far as one poll goes; best effort.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _ = peer.rtc.close();
            while let Ok(Output::Transmit(transmit)) = peer.rtc.poll_output() {
                let _ = self
                    .socket
                    .try_send_to(&transmit.contents, transmit.destination);
            }
        }));
    }
}

/// The server's username fragment named by a STUN message (`USERNAME` is `server:client` in
/// the requests a client sends to the server), without parsing anything else.
fn stun_username_fragment(datagram: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
    const USERNAME: u16 = 0x0006;
    if datagram.len() < 20 || datagram[0] & 0xc0 != 0 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let mut rest = &datagram[20..];
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        // Attributes are padded to four bytes.
        rest = rest.get(4 + len.div_ceil(4) * 4..)?;
    }
    None
}

/// The events of a peer the driver acts on, taken out of str0m's borrow.
enum Happened {
    Open(ChannelId, String),
    Data(ChannelData),
    Closed(ChannelId),
    Disconnected,
    Other,
}

impl From<Event> for Happened {
    fn from(event: Event) -> Self {
        match event {
            Event::ChannelOpen(id, label) => Happened::Open(id, label),
            Event::ChannelData(data) => Happened::Data(data),
            Event::ChannelClose(id) => Happened::Closed(id),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                Happened::Disconnected
            }
            _ => Happened::Other,
        }
    }
}
