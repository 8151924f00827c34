//! The client's WebRTC data channels (PROTOCOL.md section 11) against the real gateway and
//! campaign host over real sockets on 127.0.0.1 (UDP and TCP): states on the `state` channel,
//! inputs on the `input` channel, the fallback to the WebSocket, and a server without WebRTC.

mod real_server;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use nexus_client::transport::{self, Client, ConnectOptions, Transport, Via};
use nexus_client::{Controls, Encoding, SessionConfig};
use nexus_gateway::{GatewayConfig, WebRtcConfig};
use real_server::Server;

/// A real server on free loopback ports, with WebRTC when asked.
fn start(campaign: &str, webrtc: bool) -> Server {
    let mut config = GatewayConfig::development();
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    if webrtc {
        config.webrtc = Some(WebRtcConfig::default());
    }
    let server = Server::start_with(campaign, config);
    let gateway = server.gateway.as_ref().expect("running");
    assert_eq!(gateway.webrtc_addr().is_some(), webrtc);
    server
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(server: &Server, campaign: &str, token: &str, encoding: Encoding) -> Client {
    let mut session = SessionConfig::new(campaign, token);
    session.encoding = encoding;
    let mut options = ConnectOptions::new(session);
    options.transport = Transport::WebRtc;
    transport::connect_with(&server.url, options)
        .await
        .expect("joins")
}

/// Runs idle until the state stream is on the data channel (at most 5 s).
async fn until_open(client: &mut Client) {
    for _ in 0..100 {
        if client.webrtc_active() && client.webrtc_inputs_active() {
            return;
        }
        client
            .step(&Controls::default(), Duration::from_millis(50))
            .await
            .unwrap();
    }
    panic!(
        "the data channels did not open: {:?}",
        client.transport_stats()
    );
}

fn horizontal(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

const WALK: Controls = Controls {
    movement: [0.0, 1.0],
    look: [0.0, 0.0, -1.0],
    jump: false,
    run: false,
};

#[test]
fn states_arrive_and_inputs_leave_on_the_data_channels() {
    let runtime = runtime();
    let server = start("rtc", true);
    for encoding in [Encoding::Binary, Encoding::Json] {
        runtime.block_on(async {
            let token = format!("alice-{}", encoding.name());
            let mut client = connect(&server, "rtc", &token, encoding).await;
            assert_eq!(client.transport(), Transport::WebRtc);
            assert!(client.session().server_offers_webrtc());
            until_open(&mut client).await;
            let opened = client.transport_stats();
            let open_s = opened.channel_open_seconds.expect("open time");
            assert!(open_s < 2.0, "{encoding:?}: opened after {open_s} s");

            // Stand, then walk: every input from now on leaves on the `input` channel.
            client
                .step(&Controls::default(), Duration::from_millis(500))
                .await
                .unwrap();
            let before = client.transport_stats();
            let start = client.session().server_avatar().expect("streamed").position;
            client
                .step(&WALK, Duration::from_millis(1500))
                .await
                .unwrap();
            client
                .step(&Controls::default(), Duration::from_millis(500))
                .await
                .unwrap();
            let stats = client.transport_stats();
            let session = client.session();
            let end = session.server_avatar().unwrap().position;
            assert!(
                horizontal(start, end) > 2.0,
                "{encoding:?}: inputs on the channel moved the avatar {} m",
                horizontal(start, end)
            );
            assert!(
                stats.input_frames_webrtc > before.input_frames_webrtc + 60,
                "{encoding:?}: {stats:?}"
            );
            assert_eq!(
                stats.input_frames_websocket, before.input_frames_websocket,
                "{encoding:?}: no input on the WebSocket while the channel is open"
            );
            // States: on the channel since it opened, and only there (loopback loses nothing).
            let on_channel = stats.states_webrtc - before.states_webrtc;
            assert!(on_channel > 35, "{encoding:?}: {stats:?}"); // 20 per second for 2.5 s
            assert_eq!(
                stats.states_websocket, before.states_websocket,
                "{encoding:?}: {stats:?}"
            );
            assert!(
                stats.webrtc_active && stats.fallbacks.is_empty(),
                "{stats:?}"
            );
            assert!(stats.datagrams_received > on_channel, "{stats:?}");
            assert_eq!(session.stats().malformed_frames, 0, "{encoding:?}");
            // Inputs sent on the channel are acknowledged by states: their latency is measured
            // (a loopback round trip plus the inputs' lead and the state interval: under 1 s).
            let acks = &session.stats().input_ack_latency;
            assert!(
                acks.count() > 30 && acks.quantile(0.5) > 0.0 && acks.quantile(0.5) < 1.0,
                "{encoding:?}: input ack latency {acks:?}"
            );
            // The prediction agrees with the server (inputs quantised alike on both paths).
            let predicted = session.avatar().unwrap().predicted;
            assert!(
                horizontal(predicted, end) < 0.01,
                "{encoding:?}: predicted {predicted:?}, server {end:?}"
            );
            println!(
                "{encoding:?}: open after {:.0} ms, {} states on the channel ({} before it opened \
                 on the WebSocket), {} input datagrams, largest tick gap {}",
                open_s * 1e3,
                stats.states_webrtc,
                stats.states_websocket,
                stats.input_frames_webrtc,
                stats.max_tick_gap
            );
            client.close().await;
        });
    }
}

/// Largest tick gap between successive applied states in `states[range]`.
fn largest_gap(states: &[(u64, Via)]) -> u64 {
    states
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or(0)
}

#[test]
fn closing_the_data_channel_falls_back_to_the_websocket_without_a_tick_gap() {
    let runtime = runtime();
    let server = start("fallback", true);
    runtime.block_on(async {
        let mut client = connect(&server, "fallback", "bob", Encoding::Binary).await;
        until_open(&mut client).await;
        client
            .step(&WALK, Duration::from_millis(1500))
            .await
            .unwrap();
        assert!(client.close_data_channel(), "there were channels to close");
        assert!(
            !client.webrtc_inputs_active(),
            "inputs go on the WebSocket at once"
        );
        let inputs_before = client.transport_stats().input_frames_websocket;
        let start = client.session().server_avatar().unwrap().position;
        client
            .step(&WALK, Duration::from_millis(1500))
            .await
            .unwrap();

        let stats = client.transport_stats();
        assert!(!stats.webrtc_active, "{stats:?}");
        let [fallback] = &stats.fallbacks[..] else {
            panic!("one fallback: {stats:?}");
        };
        assert_eq!(fallback.reason, "closed_by_client");
        assert_eq!(fallback.server_reason.as_deref(), Some("channel_closed"));
        // The session went on: states on the WebSocket, inputs too, the avatar walking on.
        let end = client.session().server_avatar().unwrap().position;
        assert!(
            horizontal(start, end) > 2.0,
            "walked on: {start:?} -> {end:?}"
        );
        assert!(
            stats.input_frames_websocket > inputs_before + 60,
            "{stats:?}"
        );

        let states: Vec<(u64, Via)> = client.recent_states().collect();
        let switch = states
            .windows(2)
            .position(|w| w[0].1 == Via::WebRtc && w[1].1 == Via::WebSocket)
            .expect("a switch from the channel to the WebSocket")
            + 1;
        assert!(
            states[switch..].iter().all(|s| s.1 == Via::WebSocket),
            "nothing on the channel after the switch"
        );
        let first_rtc = states.iter().position(|s| s.1 == Via::WebRtc).unwrap();
        let on_channel = largest_gap(&states[first_rtc..switch]);
        let on_socket = largest_gap(&states[switch..]);
        let at_switch = states[switch].0 - states[switch - 1].0;
        println!(
            "tick gaps: channel max {on_channel}, at the switch {at_switch}, WebSocket max \
             {on_socket} (recorded {:?}); {} states on the channel, {} on the WebSocket",
            fallback.tick_gap, stats.states_webrtc, stats.states_websocket
        );
        assert_eq!(fallback.tick_gap, Some(at_switch));
        let normal = on_channel.max(on_socket);
        assert!(
            at_switch <= normal,
            "no missing tick range at the switch: {at_switch} vs {normal}"
        );
        assert_eq!(client.session().stats().malformed_frames, 0);

        // A new offer brings the channels back.
        client.offer_data_channels().expect("offers again");
        until_open(&mut client).await;
        assert_eq!(client.transport_stats().offers, 2);
        client.close().await;
    });
    drop(server);
}

#[test]
fn a_server_without_webrtc_keeps_the_client_on_the_websocket() {
    let runtime = runtime();
    let server = start("plain", false);
    runtime.block_on(async {
        let mut client = connect(&server, "plain", "carol", Encoding::Binary).await;
        assert!(!client.session().server_offers_webrtc());
        client
            .step(&WALK, Duration::from_millis(1000))
            .await
            .unwrap();
        let stats = client.transport_stats();
        assert_eq!(
            stats.webrtc_unavailable.as_deref(),
            Some("the server's welcome does not offer WebRTC"),
            "{stats:?}"
        );
        assert_eq!((stats.offers, stats.states_webrtc), (0, 0), "{stats:?}");
        assert!(stats.states_websocket > 10, "{stats:?}");
        assert!(stats.input_frames_websocket > 20, "{stats:?}");
        assert!(!client.close_data_channel());
        assert_eq!(
            client.offer_data_channels().unwrap_err().code,
            "webrtc_unavailable"
        );
        client.close().await;
    });
}

#[test]
fn bots_report_what_each_transport_carried() {
    let server = start("0", true);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_nexus-bots"))
        .args(["--url", &server.url, "--count", "2", "--duration", "3"])
        .args(["--transport", "webrtc", "--quiet", "--ramp-ms", "0"])
        .output()
        .expect("nexus-bots runs");
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("NEXUS_BOTS_SUMMARY "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("a summary line in:\n{stdout}"));
    assert_eq!(summary["transport"], "webrtc", "{summary}");
    let transports = &summary["transports"];
    assert_eq!(transports["clients_opened"], 2, "{summary}");
    assert!(
        transports["states_webrtc"].as_u64().unwrap() > 60,
        "{summary}"
    );
    assert!(
        transports["input_frames_webrtc"].as_u64().unwrap() > 60,
        "{summary}"
    );
    assert!(
        stdout.contains("data channels      2 of 2 clients"),
        "{stdout}"
    );

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_nexus-bots"))
        .args(["--transport", "carrier-pigeon"])
        .output()
        .expect("nexus-bots runs");
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--transport") && stderr.contains("websocket, webrtc"),
        "{stderr}"
    );
}
