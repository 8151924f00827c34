//! WebRTC data channels beside the WebSocket (PROTOCOL.md section 11): the client's peer.
//!
//! [`DataChannels`] is the one entry point. It owns a UDP socket and a str0m peer (sans-IO:
//! nothing happens unless this module feeds it datagrams and timeouts), creates the `state` and
//! `input` channels (unordered, no retransmits) and the offer; the transport sends the offer on
//! the WebSocket, hands the answer back ([`DataChannels::accept_answer`]), waits on
//! [`DataChannels::receive`] beside its socket, calls [`DataChannels::handle_timeout`] when
//! [`DataChannels::wake_at`] passes and takes the [`PeerEvent`]s. The server is ICE-lite and
//! does not trickle: its candidate comes in the answer, ours in the offer.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::error::ClientError;
use crate::wire::Frame;

/// Label of the server → client channel of state messages.
pub const STATE_LABEL: &str = "state";
/// Label of the client → server channel of binary input and ack frames.
pub const INPUT_LABEL: &str = "input";
/// Largest datagram read (the server drops anything above 1,500 bytes; room for more anyway).
const RECEIVE_BUFFER: usize = 2048;

/// One of the two channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelKind {
    /// `state`: server → client.
    State,
    /// `input`: client → server.
    Input,
}

/// What happened on the peer.
#[derive(Clone, Debug, PartialEq)]
pub enum PeerEvent {
    /// ICE and DTLS are up.
    Connected,
    /// A channel opened.
    Open(ChannelKind),
    /// A message on the `state` channel, as the WebSocket would have carried it.
    State(Frame),
    /// A channel closed (either side).
    Closed(ChannelKind),
    /// ICE lost the server (it may come back) or found it again.
    Reachable(bool),
    /// The peer is unusable (socket or protocol failure); drop it.
    Failed(String),
}

/// Counters of one peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Datagrams received.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// UDP payload bytes received.
    pub bytes_received: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// Datagrams dropped on arrival (not STUN/DTLS, or from nowhere the peer knows).
    pub datagrams_dropped: u64,
    /// Datagrams the socket refused to send (UDP: lost, like on the wire).
    pub send_errors: u64,
    /// Messages received on the `input` channel or undecodable on `state` (ignored).
    pub messages_ignored: u64,
}

/// The client's WebRTC peer: see the module documentation.
pub struct DataChannels {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    candidate: String,
    pending: Option<SdpPendingOffer>,
    state: ChannelId,
    input: ChannelId,
    state_open: bool,
    input_open: bool,
    reachable: bool,
    wake: Instant,
    events: VecDeque<PeerEvent>,
    failed: bool,
    buf: Vec<u8>,
    counters: PeerCounters,
}

impl DataChannels {
    /// A peer on a new UDP socket of `local_ip` (the interface the WebSocket goes out of, so that
    /// the candidate is reachable from where the server is), with both channels, and its offer's
    /// SDP text. Needs a tokio runtime.
    pub fn offer(local_ip: IpAddr) -> Result<(DataChannels, String), ClientError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            ClientError::new("webrtc_failed", format!("{what}: {e}"))
        };
        if local_ip.is_unspecified() {
            return Err(ClientError::new(
                "webrtc_failed",
                "no local address to offer as a candidate",
            ));
        }
        let std_socket =
            std::net::UdpSocket::bind((local_ip, 0)).map_err(|e| fail("UDP bind", &e))?;
        std_socket
            .set_nonblocking(true)
            .map_err(|e| fail("UDP socket", &e))?;
        let socket = UdpSocket::from_std(std_socket).map_err(|e| fail("UDP socket", &e))?;
        let local = socket.local_addr().map_err(|e| fail("UDP socket", &e))?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
            .build(now);
        let candidate = Candidate::host(local, "udp").map_err(|e| fail("candidate", &e))?;
        let candidate = rtc
            .add_local_candidate(candidate)
            .map(|c| c.to_sdp_string())
            .ok_or_else(|| ClientError::new("webrtc_failed", "the candidate was refused"))?;
        let mut api = rtc.sdp_api();
        let unreliable = |label: &str| ChannelConfig {
            label: label.to_owned(),
            ordered: false,
            reliability: Reliability::MaxRetransmits { retransmits: 0 },
            negotiated: None,
            protocol: String::new(),
        };
        let state = api.add_channel_with_config(unreliable(STATE_LABEL));
        let input = api.add_channel_with_config(unreliable(INPUT_LABEL));
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| ClientError::new("webrtc_failed", "no offer from the peer"))?;
        let peer = DataChannels {
            rtc,
            socket,
            local,
            candidate,
            pending: Some(pending),
            state,
            input,
            state_open: false,
            input_open: false,
            reachable: true,
            wake: now,
            events: VecDeque::new(),
            failed: false,
            buf: vec![0; RECEIVE_BUFFER],
            counters: PeerCounters::default(),
        };
        Ok((peer, offer.to_sdp_string()))
    }

    /// The UDP address of the local candidate.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The local candidate as the `candidate:…` attribute (it is in the offer too).
    pub fn candidate(&self) -> &str {
        &self.candidate
    }

    /// Takes the server's answer (SDP text); connectivity checks start.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), ClientError> {
        let pending = self.pending.take().ok_or_else(|| {
            ClientError::new("webrtc_failed", "an answer without an offer pending")
        })?;
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| ClientError::new("webrtc_failed", format!("answer: {e}")))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| ClientError::new("webrtc_failed", format!("answer: {e}")))?;
        self.drive(Instant::now());
        Ok(())
    }

    /// Whether the `input` channel is open and ICE has the server.
    pub fn input_ready(&self) -> bool {
        self.input_open && self.reachable && !self.failed
    }

    /// Whether the `state` channel is open.
    pub fn state_open(&self) -> bool {
        self.state_open && !self.failed
    }

    /// Sends one binary client frame on the `input` channel. False when it could not be sent
    /// (channel not open, send buffer full): the caller sends it another way.
    pub fn send_input(&mut self, frame: &[u8]) -> bool {
        if !self.input_ready() {
            return false;
        }
        let written = match self.rtc.channel(self.input) {
            Some(mut channel) => channel.write(true, frame).unwrap_or(false),
            None => false,
        };
        self.drive(Instant::now());
        written
    }

    /// Closes both channels from this side (SCTP stream reset): the server notices
    /// (`channel_closed`) and streams on the WebSocket again.
    pub fn close(&mut self) {
        for id in [self.state, self.input] {
            self.rtc.direct_api().close_data_channel(id);
        }
        self.state_open = false;
        self.input_open = false;
        self.drive(Instant::now());
    }

    /// When [`DataChannels::handle_timeout`] is due next.
    pub fn wake_at(&self) -> Instant {
        self.wake
    }

    /// Runs the peer's timers (retransmits, keep-alive checks) up to now.
    pub fn handle_timeout(&mut self) {
        let now = Instant::now();
        if now >= self.wake {
            self.drive(now);
        }
    }

    /// Waits for the next datagram and feeds it to the peer. Cancel-safe (the wait is a
    /// `recv_from`; everything after it is synchronous).
    pub async fn receive(&mut self) {
        if self.failed {
            return std::future::pending().await;
        }
        match self.socket.recv_from(&mut self.buf).await {
            Ok((len, source)) => self.on_datagram(source, len),
            // ICMP port unreachable from an earlier send shows up here on some systems.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => self.fail(format!("UDP receive: {e}")),
        }
    }

    fn on_datagram(&mut self, source: SocketAddr, len: usize) {
        self.counters.datagrams_received += 1;
        self.counters.bytes_received += len as u64;
        let now = Instant::now();
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &self.buf[..len]) else {
            self.counters.datagrams_dropped += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            self.counters.datagrams_dropped += 1;
            return;
        }
        if let Err(e) = self.rtc.handle_input(input) {
            self.fail(format!("peer: {e}"));
            return;
        }
        self.drive(now);
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Counters since the offer.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// Whether the peer failed (a [`PeerEvent::Failed`] was emitted).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn fail(&mut self, reason: String) {
        if !self.failed {
            tracing::debug!("webrtc peer failed: {reason}");
            self.failed = true;
            self.rtc.disconnect();
            self.events.push_back(PeerEvent::Failed(reason));
        }
    }

    /// Advances the peer to `now` and runs its output: datagrams out, events queued, next wake.
    fn drive(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.fail(format!("peer: {e}"));
            return;
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    // A dead peer answers "never"; cap it so a wake is still cheap and bounded.
                    self.wake = at.min(now + Duration::from_secs(1));
                    return;
                }
                Ok(Output::Transmit(transmit)) => {
                    match self
                        .socket
                        .try_send_to(&transmit.contents, transmit.destination)
                    {
                        Ok(sent) => {
                            self.counters.datagrams_sent += 1;
                            self.counters.bytes_sent += sent as u64;
                        }
                        // A full socket buffer loses the datagram, as the network could.
                        Err(_) => self.counters.send_errors += 1,
                    }
                }
                Ok(Output::Event(event)) => self.on_event(event),
                Err(e) => {
                    self.fail(format!("peer: {e}"));
                    return;
                }
            }
            if !self.rtc.is_alive() {
                self.fail("the peer connection closed".into());
                return;
            }
        }
    }

    fn kind_of(&self, id: ChannelId) -> Option<ChannelKind> {
        if id == self.state {
            Some(ChannelKind::State)
        } else if id == self.input {
            Some(ChannelKind::Input)
        } else {
            None
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => self.events.push_back(PeerEvent::Connected),
            Event::IceConnectionStateChange(state) => {
                let reachable = !matches!(state, IceConnectionState::Disconnected);
                if reachable != self.reachable {
                    self.reachable = reachable;
                    self.events.push_back(PeerEvent::Reachable(reachable));
                }
            }
            Event::ChannelOpen(id, _) => match self.kind_of(id) {
                Some(ChannelKind::State) => {
                    self.state_open = true;
                    self.events.push_back(PeerEvent::Open(ChannelKind::State));
                }
                Some(ChannelKind::Input) => {
                    self.input_open = true;
                    self.events.push_back(PeerEvent::Open(ChannelKind::Input));
                }
                // The server opens no channels; one it did would carry nothing we read.
                None => {}
            },
            Event::ChannelData(data) => {
                if self.kind_of(data.id) != Some(ChannelKind::State) {
                    self.counters.messages_ignored += 1;
                    return;
                }
                let frame = if data.binary {
                    Frame::Binary(data.data)
                } else {
                    match String::from_utf8(data.data) {
                        Ok(text) => Frame::Text(text),
                        Err(_) => {
                            self.counters.messages_ignored += 1;
                            return;
                        }
                    }
                };
                self.events.push_back(PeerEvent::State(frame));
            }
            Event::ChannelClose(id) => {
                if let Some(kind) = self.kind_of(id) {
                    match kind {
                        ChannelKind::State => self.state_open = false,
                        ChannelKind::Input => self.input_open = false,
                    }
                    self.events.push_back(PeerEvent::Closed(kind));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use str0m::change::SdpOffer;

    use super::*;

    /// A minimal ICE-lite answerer on a real loopback socket, like the server's: accepts the
    /// offer, echoes each `input` message back on `state`, and records what it saw.
    struct Answerer {
        rtc: Rtc,
        socket: UdpSocket,
        local: SocketAddr,
        buf: Vec<u8>,
        wake: Instant,
        channels: Vec<(ChannelId, String, Option<ChannelConfig>)>,
        received: Vec<Vec<u8>>,
        closed: Vec<ChannelId>,
    }

    impl Answerer {
        async fn answer(offer_sdp: &str) -> (Answerer, String) {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let local = socket.local_addr().unwrap();
            let now = Instant::now();
            let mut rtc = Rtc::builder()
                .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
                .set_ice_lite(true)
                .build(now);
            rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
            let offer = SdpOffer::from_sdp_string(offer_sdp).unwrap();
            let answer = rtc.sdp_api().accept_offer(offer).unwrap();
            let answerer = Answerer {
                rtc,
                socket,
                local,
                buf: vec![0; 2048],
                wake: now,
                channels: Vec::new(),
                received: Vec::new(),
                closed: Vec::new(),
            };
            (answerer, answer.to_sdp_string())
        }

        fn drive(&mut self) {
            let now = Instant::now();
            self.rtc.handle_input(Input::Timeout(now)).unwrap();
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(at) => {
                        self.wake = at;
                        return;
                    }
                    Output::Transmit(t) => {
                        let _ = self.socket.try_send_to(&t.contents, t.destination);
                    }
                    Output::Event(Event::ChannelOpen(id, label)) => {
                        let config = self.rtc.channel(id).and_then(|c| c.config().cloned());
                        self.channels.push((id, label, config));
                    }
                    Output::Event(Event::ChannelData(data)) => {
                        self.received.push(data.data.clone());
                        let state = self
                            .channels
                            .iter()
                            .find(|(_, label, _)| label == STATE_LABEL)
                            .map(|(id, _, _)| *id);
                        if let Some(mut channel) = state.and_then(|id| self.rtc.channel(id)) {
                            let _ = channel.write(true, &data.data);
                        }
                    }
                    Output::Event(Event::ChannelClose(id)) => self.closed.push(id),
                    Output::Event(_) => {}
                }
            }
        }

        async fn receive(&mut self) {
            if let Ok((len, source)) = self.socket.recv_from(&mut self.buf).await {
                let receive =
                    Receive::new(Protocol::Udp, source, self.local, &self.buf[..len]).unwrap();
                self.rtc
                    .handle_input(Input::Receive(Instant::now(), receive))
                    .unwrap();
            }
            self.drive();
        }
    }

    /// Runs both peers until `done` or 5 s, collecting the client's events.
    async fn run(
        client: &mut DataChannels,
        server: &mut Answerer,
        events: &mut Vec<PeerEvent>,
        mut done: impl FnMut(&DataChannels, &Answerer, &[PeerEvent]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done(client, server, events) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out: {events:?}"
            );
            let wake = tokio::time::Instant::from_std(client.wake_at().min(server.wake))
                .min(tokio::time::Instant::now() + Duration::from_millis(50));
            tokio::select! {
                _ = client.receive() => {}
                _ = server.receive() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            client.handle_timeout();
            if Instant::now() >= server.wake {
                server.drive();
            }
            while let Some(event) = client.poll_event() {
                events.push(event);
            }
        }
    }

    #[tokio::test]
    async fn channels_open_unordered_without_retransmits_carry_frames_and_close() {
        let (mut client, offer) = DataChannels::offer(Ipv4Addr::LOCALHOST.into()).unwrap();
        // The offer carries the host candidate of the client's socket (no trickling needed).
        let port = client.local_addr().port();
        assert!(
            offer.contains("a=candidate:") && offer.contains(&format!(" {port} typ host")),
            "{offer}"
        );
        assert!(offer.contains("webrtc-datachannel"), "{offer}");
        let (mut server, answer) = Answerer::answer(&offer).await;
        client.accept_answer(&answer).unwrap();
        assert!(
            client.accept_answer(&answer).is_err(),
            "one answer per offer"
        );

        let mut events = Vec::new();
        run(&mut client, &mut server, &mut events, |c, s, _| {
            c.input_ready() && c.state_open() && s.channels.len() == 2
        })
        .await;
        assert!(events.contains(&PeerEvent::Connected), "{events:?}");
        let mut labels: Vec<&str> = server.channels.iter().map(|c| c.1.as_str()).collect();
        labels.sort_unstable();
        assert_eq!(labels, [INPUT_LABEL, STATE_LABEL]);
        for (_, label, config) in &server.channels {
            let config = config
                .as_ref()
                .expect("in-band: the config came with the open");
            assert!(!config.ordered, "{label}: unordered");
            assert_eq!(
                config.reliability,
                Reliability::MaxRetransmits { retransmits: 0 },
                "{label}"
            );
        }

        // An input frame reaches the server; the echo on `state` comes back as a binary frame.
        let frame = nexus_protocol::encode_client_ack(42);
        assert!(client.send_input(&frame));
        run(&mut client, &mut server, &mut events, |_, _, e| {
            e.iter().any(|e| matches!(e, PeerEvent::State(_)))
        })
        .await;
        assert_eq!(server.received, std::slice::from_ref(&frame));
        assert!(events.contains(&PeerEvent::State(Frame::Binary(frame))));
        assert!(client.counters().datagrams_received > 0);

        // Closing from the client side reaches the server.
        client.close();
        assert!(!client.input_ready() && !client.send_input(&[1, 0x82, 0]));
        run(&mut client, &mut server, &mut events, |_, s, _| {
            s.closed.len() == 2
        })
        .await;
    }

    #[test]
    fn an_unspecified_address_is_no_candidate() {
        let error = DataChannels::offer(Ipv4Addr::UNSPECIFIED.into())
            .err()
            .expect("refused");
        assert_eq!(error.code, "webrtc_failed");
    }
}
