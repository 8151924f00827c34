//! WebRTC data channels (PROTOCOL.md section 11) against a real gateway and host on 127.0.0.1:
//! a str0m peer as the client (the other side of the same library, as the Rust client uses it),
//! real UDP and WebSocket sockets.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use nexus_gateway::{CampaignHostConfig, GatewayConfig, GatewayHandle, WebRtcConfig};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId, Reliability};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

fn webrtc_config(open_timeout: Duration) -> GatewayConfig {
    let mut config = dev_config();
    config.webrtc = Some(WebRtcConfig {
        open_timeout,
        ..WebRtcConfig::default()
    });
    config
}

/// Campaign "0" of `gateway`, on the test world, ticking on its own thread until dropped.
fn host_campaign(gateway: &GatewayHandle) -> HostThread {
    let link = gateway.open_campaign("0").unwrap();
    HostThread::spawn(
        test_world(),
        link,
        CampaignHostConfig::default(),
        Duration::from_millis(5),
    )
}

/// The client side of one peer connection: a str0m `Rtc` on its own UDP socket.
struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    state: ChannelId,
    input: ChannelId,
    state_open: bool,
    input_open: bool,
    /// Messages received on the `state` channel.
    states: Vec<Vec<u8>>,
    next_timeout: Instant,
}

fn unreliable(label: &str) -> ChannelConfig {
    ChannelConfig {
        label: label.into(),
        ordered: false,
        reliability: Reliability::MaxRetransmits { retransmits: 0 },
        ..ChannelConfig::default()
    }
}

impl Peer {
    async fn new() -> (Peer, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut changes = rtc.sdp_api();
        let state = changes.add_channel_with_config(unreliable("state"));
        let input = changes.add_channel_with_config(unreliable("input"));
        let (offer, pending) = changes.apply().unwrap();
        let peer = Peer {
            rtc,
            socket,
            local,
            pending: Some(pending),
            state,
            input,
            state_open: false,
            input_open: false,
            states: Vec::new(),
            next_timeout: Instant::now(),
        };
        (peer, offer.to_sdp_string())
    }

    fn accept(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).unwrap();
        let pending = self.pending.take().unwrap();
        self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
    }

    fn flush(&mut self) {
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(at) => {
                    self.next_timeout = at;
                    return;
                }
                Output::Transmit(t) => {
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => match event {
                    Event::ChannelOpen(id, _) if id == self.state => self.state_open = true,
                    Event::ChannelOpen(id, _) if id == self.input => self.input_open = true,
                    Event::ChannelData(data) if data.id == self.state => {
                        self.states.push(data.data);
                    }
                    Event::ChannelClose(id) if id == self.state => self.state_open = false,
                    _ => {}
                },
            }
        }
    }

    /// Runs the peer for up to `for_at_most`, or until `done` holds.
    async fn run(&mut self, for_at_most: Duration, done: impl Fn(&Peer) -> bool) {
        let end = Instant::now() + for_at_most;
        let mut buf = vec![0u8; 2048];
        self.flush();
        while Instant::now() < end && !done(self) {
            let wake = self.next_timeout.min(end);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let (n, source) = received.unwrap();
                    if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                        self.rtc.handle_input(Input::Receive(Instant::now(), receive)).unwrap();
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    self.rtc.handle_input(Input::Timeout(Instant::now())).unwrap();
                }
            }
            self.flush();
        }
    }

    fn send_input_frame(&mut self, frame: &[u8]) {
        let mut channel = self.rtc.channel(self.input).expect("input channel");
        channel.write(true, frame).unwrap();
        self.flush();
    }

    fn close_state_channel(&mut self) {
        self.rtc.direct_api().close_data_channel(self.state);
        self.flush();
    }
}

fn tick_of_json_state(message: &[u8]) -> u64 {
    let value: Value = serde_json::from_slice(message).expect("a JSON state on the channel");
    assert_eq!(value["type"], "physics:world_state:v1:stream");
    value["payload"]["tick"].as_u64().expect("a tick")
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A binary ack frame (PROTOCOL.md section 7).
fn ack_frame(tick: u64) -> Vec<u8> {
    let mut frame = vec![1, 0x82];
    varint(tick, &mut frame);
    frame
}

/// A binary input batch: `seqs` all walking forward (+z).
fn input_frame(seqs: std::ops::RangeInclusive<u32>, ack: Option<u64>) -> Vec<u8> {
    let mut frame = vec![1, 0x81];
    varint(ack.map_or(0, |t| t + 1), &mut frame);
    varint(seqs.clone().count() as u64, &mut frame);
    for seq in seqs {
        varint(u64::from(seq), &mut frame);
        frame.push(0); // flags: no tick, no look
        frame.push(0); // movement x
        frame.push(127); // movement z
    }
    frame
}

/// A joined JSON client with its welcome.
async fn joined(gateway: &GatewayHandle, name: &str) -> (Client, Value) {
    let mut client = connect(gateway).await;
    client.join("0", name).await;
    let welcome = client.next_of("session:welcome:v1:stream").await;
    (client, welcome)
}

/// Sends the offer and hands the server's answer to the peer.
async fn negotiate(client: &mut Client, peer: &mut Peer, offer: &str) {
    client
        .send_json(&envelope(
            "session:webrtc_offer:v1:requested",
            "0",
            json!({ "sdp": offer }),
        ))
        .await;
    let answer = client.next_of("session:webrtc_answer:v1:stream").await;
    let sdp = answer["payload"]["sdp"].as_str().expect("an SDP answer");
    assert!(sdp.contains("a=ice-lite"), "the server is ICE-lite:\n{sdp}");
    assert!(
        sdp.contains("127.0.0.1"),
        "the candidate is the address the WebSocket reached:\n{sdp}"
    );
    peer.accept(sdp);
}

/// WebSocket messages until `until` (ticks of states, other events by type).
async fn drain_ws(client: &mut Client, until: Instant) -> (Vec<u64>, Vec<Value>) {
    let mut ticks = Vec::new();
    let mut events = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout_at(tokio::time::Instant::from_std(until), client.ws.next()).await
    {
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "physics:world_state:v1:stream" {
                ticks.push(value["payload"]["tick"].as_u64().unwrap());
            } else {
                events.push(value);
            }
        }
    }
    (ticks, events)
}

fn largest_gap(ticks: &[u64]) -> u64 {
    ticks
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_move_to_the_data_channel_inputs_come_over_it_and_closing_it_falls_back() {
    let gateway = start(webrtc_config(Duration::from_secs(5)));
    assert!(gateway.webrtc_addr().is_some());
    let _host = host_campaign(&gateway);
    let (mut client, welcome) = joined(&gateway, "rtc").await;
    assert_eq!(
        welcome["payload"]["webrtc"], true,
        "the welcome offers WebRTC"
    );
    let avatar = welcome["payload"]["avatar_id"].as_u64().unwrap();

    let (mut peer, offer) = Peer::new().await;
    negotiate(&mut client, &mut peer, &offer).await;
    peer.run(WAIT, |p| {
        p.state_open && p.input_open && p.states.len() >= 5
    })
    .await;
    assert!(peer.state_open && peer.input_open, "both channels open");
    let ws_open = client.next_of("session:webrtc_state:v1:stream").await;
    assert_eq!(ws_open["payload"]["state"], "open");

    // Play a while on the channel: acks and inputs (each repeating the last four) over it.
    let mut seq = 0u32;
    let mut channel_ticks = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let before = peer.states.len();
        peer.run(Duration::from_millis(50), |p| p.states.len() > before)
            .await;
        let ack = peer.states.last().map(|m| tick_of_json_state(m));
        seq += 1;
        peer.send_input_frame(&input_frame(seq.saturating_sub(3).max(1)..=seq, ack));
        if let Some(ack) = ack {
            peer.send_input_frame(&ack_frame(ack));
        }
    }
    for message in &peer.states {
        channel_ticks.push(tick_of_json_state(message));
    }
    let (ws_ticks, _) = drain_ws(&mut client, Instant::now() + Duration::from_millis(100)).await;
    assert!(
        channel_ticks.len() >= 20,
        "states arrive on the data channel: {} in 2 s",
        channel_ticks.len()
    );
    assert!(
        ws_ticks.len() <= 2,
        "no states on the WebSocket while the channel is open (a race at the switch aside): {ws_ticks:?}"
    );

    // The inputs moved the avatar: its position in the newest state, against the welcome's.
    let newest: Value = serde_json::from_slice(peer.states.last().unwrap()).unwrap();
    let start_z = welcome["payload"]["world_state"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == avatar)
        .map(|o| o["position"][2].as_f64().unwrap())
        .unwrap();
    let metrics = gateway.metrics();
    assert!(metrics.webrtc.input_frames >= 40, "{:?}", metrics.webrtc);
    assert_eq!(metrics.webrtc.clients, 1);
    let mut tick_before_close = *channel_ticks.iter().max().unwrap();
    if let Some(z) = position_in_state(&newest, avatar).map(|p| p[2]) {
        assert!(
            (z - start_z).abs() > 1.0,
            "inputs over the channel move the avatar: z {start_z} -> {z}"
        );
    }

    // Close the state channel from the client: the stream goes back to the WebSocket at once.
    // (First take what is in flight: the test did not read the socket meanwhile.)
    peer.run(Duration::from_millis(60), |_| false).await;
    for message in &peer.states {
        tick_before_close = tick_before_close.max(tick_of_json_state(message));
    }
    peer.close_state_channel();
    let closed_at = Instant::now();
    peer.run(Duration::from_millis(300), |_| false).await;
    for message in &peer.states {
        tick_before_close = tick_before_close.max(tick_of_json_state(message));
    }
    let (ws_ticks, events) = drain_ws(&mut client, closed_at + Duration::from_secs(2)).await;
    let closed = events
        .iter()
        .find(|e| e["type"] == "session:webrtc_state:v1:stream")
        .expect("the server says the channel is closed");
    assert_eq!(closed["payload"]["state"], "closed");
    assert_eq!(closed["payload"]["reason"], "channel_closed");
    assert!(
        ws_ticks.len() >= 20,
        "states continue on the WebSocket: {ws_ticks:?}"
    );
    let first_after = ws_ticks[0];
    let normal_gap = largest_gap(&channel_ticks).max(largest_gap(&ws_ticks));
    // The client saw states up to `tick_before_close` on the channel; the WebSocket carries on
    // from there within the gaps the stream has anyway (states are every 3 ticks at 20/s).
    assert!(
        first_after <= tick_before_close + normal_gap.max(3) * 4,
        "no gap at the switch: channel up to {tick_before_close}, WebSocket from {first_after} (normal gap {normal_gap})"
    );
    let metrics = gateway.metrics();
    assert_eq!(metrics.webrtc.clients, 0);
    assert!(
        metrics
            .webrtc
            .fallbacks
            .iter()
            .any(|(r, n)| r == "channel_closed" && *n == 1),
        "{:?}",
        metrics.webrtc
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_never_opens_times_out_and_the_stream_stays_on_the_websocket() {
    let gateway = start(webrtc_config(Duration::from_millis(600)));
    let _host = host_campaign(&gateway);
    let (mut client, _) = joined(&gateway, "silent").await;
    let (mut peer, offer) = Peer::new().await;
    negotiate(&mut client, &mut peer, &offer).await;
    // The peer never runs: no connectivity checks, no DTLS.
    let (ticks, events) = drain_ws(&mut client, Instant::now() + Duration::from_secs(2)).await;
    let closed = events
        .iter()
        .find(|e| e["type"] == "session:webrtc_state:v1:stream")
        .expect("a webrtc_state event");
    assert_eq!(
        closed["payload"],
        json!({"state": "closed", "reason": "timeout"})
    );
    assert!(
        ticks.len() >= 20,
        "states on the WebSocket all along: {}",
        ticks.len()
    );
    // (A loaded machine may pace the stream to every 4th state: 12 ticks apart.)
    let gap = largest_gap(&ticks);
    assert!(
        gap <= 24,
        "no hole in the WebSocket stream: largest gap {gap} ticks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_errors_are_answered_and_the_session_goes_on() {
    // Without WebRTC: no `webrtc` in the welcome, offers are refused.
    let plain = start(dev_config());
    let _host = host_campaign(&plain);
    let (mut client, welcome) = joined(&plain, "plain").await;
    assert!(welcome["payload"].get("webrtc").is_none());
    let (_, offer) = Peer::new().await;
    client
        .send_json(&envelope(
            "session:webrtc_offer:v1:requested",
            "0",
            json!({"sdp": offer}),
        ))
        .await;
    assert_eq!(client.next_error().await["code"], "webrtc_unavailable");

    // With WebRTC: bad SDP, an offer without data channels, a bad candidate, too many offers.
    let gateway = start(webrtc_config(Duration::from_secs(5)));
    let _host2 = host_campaign(&gateway);
    let mut early = connect(&gateway).await;
    early
        .send_json(&envelope(
            "session:webrtc_offer:v1:requested",
            "0",
            json!({"sdp": "v=0"}),
        ))
        .await;
    assert_eq!(early.next_error().await["code"], "not_joined");
    let (mut client, _) = joined(&gateway, "errors").await;
    for (payload, code) in [
        (json!({"sdp": "not an sdp"}), "invalid_payload"),
        (json!({"sdp": ""}), "invalid_payload"),
        (json!({"sdp": 5}), "invalid_payload"),
        (json!({"sdp": "x".repeat(20_000)}), "limit_exceeded"),
    ] {
        client
            .send_json(&envelope(
                "session:webrtc_offer:v1:requested",
                "0",
                payload.clone(),
            ))
            .await;
        let error = client.next_error().await;
        let shown: String = payload.to_string().chars().take(60).collect();
        assert_eq!(error["code"], code, "{shown}: {error}");
    }
    client
        .send_json(&envelope(
            "session:webrtc_candidate:v1:requested",
            "0",
            json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}),
        ))
        .await;
    assert_eq!(
        client.next_error().await["code"],
        "invalid_payload",
        "a candidate before an offer"
    );
    let mut answers = 0;
    let mut refused = None;
    for _ in 0..9 {
        let (_, offer) = Peer::new().await;
        client
            .send_json(&envelope(
                "session:webrtc_offer:v1:requested",
                "0",
                json!({"sdp": offer}),
            ))
            .await;
        loop {
            let message = client.next().await;
            match message["type"].as_str() {
                Some("session:webrtc_answer:v1:stream") => {
                    answers += 1;
                    break;
                }
                Some("system:error:v1:stream") => {
                    refused = Some(message["payload"]["code"].clone());
                    break;
                }
                _ => {}
            }
        }
    }
    assert_eq!(answers, 8);
    assert_eq!(refused, Some(json!("limit_exceeded")));
    // The session is fine: pings are answered, states flow.
    client.round_trip("0", 7).await;
    let metrics = gateway.metrics();
    assert!(
        metrics
            .webrtc
            .fallbacks
            .iter()
            .any(|(r, n)| r == "replaced" && *n == 7),
        "each new offer replaced the previous peer: {:?}",
        metrics.webrtc
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_udp_port_is_dropped_and_counted_and_a_live_peer_carries_on() {
    let gateway = start(webrtc_config(Duration::from_secs(5)));
    let udp = gateway.webrtc_addr().unwrap();
    let _host = host_campaign(&gateway);
    let (mut client, _) = joined(&gateway, "victim").await;
    let (mut peer, offer) = Peer::new().await;
    negotiate(&mut client, &mut peer, &offer).await;
    peer.run(WAIT, |p| p.state_open && p.states.len() >= 3)
        .await;
    assert!(peer.state_open);

    // From a stranger: random bytes, STUN-, DTLS- and RTP-looking junk, oversized datagrams.
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let mut junk: Vec<Vec<u8>> = Vec::new();
    for len in [0usize, 1, 2, 19, 20, 100, 1200, 1500] {
        junk.push(random(len));
    }
    // STUN binding request header (magic cookie) with garbage attributes and a bogus length.
    let mut stun = vec![0x00, 0x01, 0x00, 0x40, 0x21, 0x12, 0xa4, 0x42];
    stun.extend(random(12));
    stun.extend(random(64));
    junk.push(stun.clone());
    stun[3] = 0xff;
    junk.push(stun);
    // DTLS record headers (content type 22, version DTLS 1.2) with garbage bodies.
    for body in [16usize, 200, 1400] {
        let mut dtls = vec![22, 0xfe, 0xfd];
        dtls.extend(random(body));
        junk.push(dtls);
    }
    // RTP-looking (version 2).
    let mut rtp = vec![0x80, 0x60];
    rtp.extend(random(100));
    junk.push(rtp);
    junk.push(random(4000));
    junk.push(random(65_000));
    for datagram in &junk {
        for _ in 0..20 {
            let _ = stranger.send_to(datagram, udp);
        }
    }
    // From the live peer's own address too (its 5-tuple): junk into an established association.
    for datagram in junk.iter().take(14) {
        let _ = peer.socket.try_send_to(datagram, udp);
    }

    // The peer keeps receiving states on the channel.
    let before = peer.states.len();
    peer.run(Duration::from_secs(3), |p| p.states.len() >= before + 20)
        .await;
    assert!(
        peer.state_open && peer.states.len() >= before + 20,
        "the live peer carries on: {} states after the junk",
        peer.states.len() - before
    );
    let metrics = gateway.metrics();
    let dropped: u64 = metrics.webrtc.dropped.iter().map(|(_, n)| n).sum();
    assert!(
        dropped >= junk.len() as u64 * 20 / 2,
        "junk is dropped and counted: {:?}",
        metrics.webrtc.dropped
    );
    assert_eq!(metrics.task_panics, 0);
    let text = http_get(&gateway, "/metrics").await;
    assert!(
        text.contains("nexus_gateway_webrtc_dropped_total{reason=\"oversized\"}"),
        "{text}"
    );
    assert!(
        text.contains("nexus_gateway_clients_by_transport{transport=\"webrtc\"} 1"),
        "{text}"
    );
    // And the WebSocket session is untouched.
    client.round_trip("0", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_dies_silently_falls_back_once_acks_stop() {
    let gateway = start(webrtc_config(Duration::from_secs(5)));
    let _host = host_campaign(&gateway);
    let (mut client, _) = joined(&gateway, "vanishing").await;
    let (mut peer, offer) = Peer::new().await;
    negotiate(&mut client, &mut peer, &offer).await;
    peer.run(WAIT, |p| {
        p.state_open && p.input_open && p.states.len() >= 3
    })
    .await;
    // Ack on the channel for a second: the server learns this client acknowledges.
    let start = Instant::now();
    let mut last_ack = 0;
    while start.elapsed() < Duration::from_secs(1) {
        let before = peer.states.len();
        peer.run(Duration::from_millis(50), |p| p.states.len() > before)
            .await;
        if let Some(message) = peer.states.last() {
            last_ack = tick_of_json_state(message);
            peer.send_input_frame(&ack_frame(last_ack));
        }
    }
    // Then the path dies without a word: the peer is never run again (no acks, no DTLS, no
    // SCTP). The WebSocket stays up.
    let died = Instant::now();
    let closed = loop {
        let event = client.next_of("session:webrtc_state:v1:stream").await;
        if event["payload"]["state"] == "closed" {
            break event;
        }
    };
    let noticed = died.elapsed();
    assert_eq!(
        closed["payload"],
        json!({"state": "closed", "reason": "unresponsive"})
    );
    assert!(
        noticed >= Duration::from_millis(900) && noticed < Duration::from_millis(1800),
        "the server gives up on the channel about a second after the last ack: {noticed:?}"
    );
    let (ticks, _) = drain_ws(&mut client, Instant::now() + Duration::from_secs(1)).await;
    assert!(
        ticks.len() >= 10 && ticks[0] > last_ack,
        "states come on the WebSocket after it: {ticks:?}"
    );
    drop(peer);
}
