//! The client against the real gateway and campaign host, over real sockets on 127.0.0.1 (no
//! Godot): join, send inputs, see the avatar move and the acknowledgements advance.

mod real_server;

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use nexus_client::{ClientSession, Controls, Encoding, Phase, transport};
use nexus_gateway::GatewayConfig;
use nexus_sim::state::BodyKind;
use real_server::Server;

fn horizontal(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

#[test]
fn a_client_joins_moves_and_is_acknowledged_over_real_sockets() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start("it");
    for encoding in [Encoding::Binary, Encoding::Json] {
        runtime.block_on(async {
            let token = format!("alice-{}", encoding.name());
            let mut client = transport::connect(&server.url, "it", &token, encoding)
                .await
                .expect("joins");
            assert_eq!(client.session().phase(), Phase::Active);
            assert!(client.session().avatar_id().is_some());

            // Stand a moment (the avatar settles on the ground), then walk.
            client
                .step(&Controls::default(), Duration::from_millis(600))
                .await
                .unwrap();
            let start = client.session().server_avatar().expect("streamed").position;
            let acked_before = client.session().predictor().unwrap().confirmed_seq();
            let walk = Controls {
                movement: [0.0, 1.0],
                look: [0.0, 0.0, -1.0],
                ..Controls::default()
            };
            client
                .step(&walk, Duration::from_millis(1500))
                .await
                .unwrap();
            client
                .step(&Controls::default(), Duration::from_millis(600))
                .await
                .unwrap();

            let session = client.session();
            let stats = session.stats();
            let end = session.server_avatar().unwrap().position;
            // The server moved the avatar (by the client's inputs), a good part of 1.5 s at 4 m/s.
            assert!(
                horizontal(start, end) > 2.0,
                "{encoding:?}: moved {} m ({start:?} -> {end:?})",
                horizontal(start, end)
            );
            assert!(end[2] < start[2], "{encoding:?}: moved forward (-Z)");
            // Acknowledgements advanced, and every acknowledged state was compared.
            let acked_after = session.predictor().unwrap().confirmed_seq();
            assert!(
                acked_after > acked_before,
                "{acked_before:?} -> {acked_after:?}"
            );
            assert!(stats.reconciliations > 20, "{encoding:?}: {stats:?}");
            assert!(stats.states_applied > 20, "{encoding:?}: {stats:?}");
            assert_eq!(stats.malformed_frames, 0, "{encoding:?}: {stats:?}");
            // The prediction ended where the server has the avatar.
            let predicted = session.avatar().unwrap().predicted;
            assert!(
                horizontal(predicted, end) < 0.01,
                "{encoding:?}: predicted {predicted:?}, server {end:?}"
            );
            client.close().await;
        });
    }
    drop(server);
}

/// A bot-like client of `campaign` (binary, no prediction, no playback buffers, immediate acks,
/// `decode_states` as given) that joins and idles for 1.5 s; `check` inspects its session.
fn idle_light_client(campaign: &str, decode_states: bool, check: impl FnOnce(&ClientSession)) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start(campaign);
    runtime.block_on(async {
        let mut config = nexus_client::SessionConfig::new(campaign, "bot-1");
        config.encoding = Encoding::Binary;
        config.predict = false;
        config.interpolate = false;
        config.decode_states = decode_states;
        let mut options = transport::ConnectOptions::new(config);
        options.immediate_acks = true;
        options.frame_rate = 10.0;
        let mut client = transport::connect_with(&server.url, options)
            .await
            .expect("joins");
        client
            .step(&Controls::default(), Duration::from_millis(1500))
            .await
            .unwrap();
        check(client.session());
        client.close().await;
    });
}

#[test]
fn a_light_client_decodes_and_acknowledges_without_buffering_anything() {
    idle_light_client("light", true, |session| {
        let stats = session.stats();
        assert!(stats.states_applied > 15, "{stats:?}");
        assert_eq!(stats.malformed_frames, 0, "{stats:?}");
        // The ground is known (decoded and applied), but nothing is kept for playback.
        assert!(
            session
                .objects()
                .values()
                .any(|o| o.kind == BodyKind::Static),
            "the ground is known"
        );
        assert!(session.remote_objects().is_empty(), "nothing buffered");
        // Acks reached the server: after the first full state the stream is deltas, which for a
        // resting world are a few bytes each.
        let per_state = stats.bytes_received as f64 / stats.states_applied as f64;
        assert!(per_state < 400.0, "{per_state} bytes per state");
    });
}

#[test]
fn a_client_reading_only_state_heads_is_acknowledged_like_a_decoding_one() {
    idle_light_client("heads", false, |session| {
        let stats = session.stats();
        // Every state counted, timed and acknowledged, none decoded into objects.
        assert!(stats.states_applied > 15, "{stats:?}");
        assert_eq!(stats.malformed_frames, 0, "{stats:?}");
        assert!(stats.state_age.count() > 15, "{stats:?}");
        assert!(session.remote_objects().is_empty());
        // The acks reached the server: after the first full state the stream is small deltas.
        let per_state = stats.bytes_received as f64 / stats.states_applied as f64;
        assert!(per_state < 400.0, "{per_state} bytes per state");
    });
}

#[test]
fn a_client_joins_over_wss_trusting_the_gateways_own_certificate() {
    // A self-signed certificate, made here, trusted by this client alone.
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = std::env::temp_dir().join(format!("nexus-client-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut config = GatewayConfig::development();
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.tls_cert = Some(cert.clone());
    config.tls_key = Some(key);
    let server = Server::start_with("tls", config);
    assert!(server.url.starts_with("wss://"), "{}", server.url);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let session = || nexus_client::SessionConfig::new("tls", "alice");
        // wss:// without saying what to trust is a clear error, not a panic.
        let refused =
            transport::connect_with(&server.url, transport::ConnectOptions::new(session()))
                .await
                .err()
                .expect("refused");
        assert_eq!(refused.code, "invalid_config", "{refused:?}");
        let missing = transport::tls_trusting(&dir.join("missing.pem")).unwrap_err();
        assert_eq!(missing.code, "invalid_tls");

        let mut options = transport::ConnectOptions::new(session());
        options.tls = Some(transport::tls_trusting(&cert).expect("the certificate loads"));
        let mut client = transport::connect_with(&server.url, options)
            .await
            .expect("joins over wss://");
        assert_eq!(client.session().phase(), Phase::Active);
        client
            .step(&Controls::default(), Duration::from_millis(500))
            .await
            .unwrap();
        assert!(client.session().stats().states_applied > 5);
        client.close().await;
    });
    drop(server);
}

#[test]
fn a_client_whose_connection_drops_resumes_its_session_and_replays_its_inputs() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut config = GatewayConfig::development();
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    config.session.resume_grace = Duration::from_secs(10);
    let server = Server::start_with("resume", config);
    runtime.block_on(async {
        let walk = Controls {
            movement: [0.0, 1.0],
            look: [0.0, 0.0, -1.0],
            ..Controls::default()
        };
        let mut first = transport::connect(&server.url, "resume", "ada", Encoding::Binary)
            .await
            .expect("joins");
        first.step(&walk, Duration::from_millis(800)).await.unwrap();
        let client_id = first.session().client_id().unwrap();
        let avatar_id = first.session().avatar_id();
        let before = first.session().server_avatar().unwrap().position;
        let ticket = first
            .session()
            .resume_ticket()
            .expect("the server offers a resume");
        assert_eq!(ticket.client_id, client_id);
        // The network goes away: no leave, no close frame.
        drop(first);

        let mut session = nexus_client::SessionConfig::new("resume", "ada");
        session.encoding = Encoding::Binary;
        session.resume = Some(ticket.clone());
        let mut second =
            transport::connect_with(&server.url, transport::ConnectOptions::new(session))
                .await
                .expect("joins again");
        let welcomed =
            second
                .session_mut()
                .poll_events()
                .into_iter()
                .find_map(|event| match event {
                    nexus_client::SessionEvent::Welcomed { resumed, .. } => Some(resumed),
                    _ => None,
                });
        assert_eq!(welcomed, Some(true), "the welcome resumed the session");
        assert_eq!(second.session().client_id(), Some(client_id));
        assert_eq!(second.session().avatar_id(), avatar_id, "the same avatar");
        let resumed_at = second
            .session()
            .objects()
            .keys()
            .copied()
            .find(|id| Some(*id) == avatar_id);
        assert!(resumed_at.is_some());
        assert_eq!(
            second.session().stats().inputs_replayed as usize,
            ticket.unacknowledged.len()
        );
        second
            .step(&walk, Duration::from_millis(800))
            .await
            .unwrap();
        let after = second.session().server_avatar().unwrap().position;
        // It walked on from where it was (a new avatar would start at the spawn point again).
        assert!(
            after[2] < before[2] - 1.0,
            "walked on from {before:?} to {after:?}"
        );
        let ack = second
            .session()
            .predictor()
            .unwrap()
            .confirmed_seq()
            .unwrap();
        assert!(
            ack >= ticket.next_seq,
            "sequence numbers went on: {ack} vs {}",
            ticket.next_seq
        );
        second.close().await;
    });
    drop(server);
}

#[test]
fn bots_reconnect_by_themselves_after_the_server_restarts() {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port");
    let config = || {
        let mut config = GatewayConfig::development();
        config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        config
    };
    let server = Server::start_with("0", config());
    let bots = std::process::Command::new(env!("CARGO_BIN_EXE_nexus-bots"))
        .args([
            "--url",
            &server.url,
            "--count",
            "3",
            "--duration",
            "10",
            "--quiet",
        ])
        .args(["--ramp-ms", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nexus-bots starts");
    thread::sleep(Duration::from_millis(1500));
    drop(server); // the server goes away (its shutdown takes a moment)...
    let server = Server::start_with("0", config()); // ...and comes back on the same port
    let output = bots.wait_with_output().expect("nexus-bots ends");
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .find_map(|line| line.strip_prefix("NEXUS_BOTS_SUMMARY "))
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("a summary line in:\n{stdout}"));
    assert_eq!(summary["connected"], 3, "{summary}");
    assert!(
        summary["reconnects"].as_u64().unwrap() >= 3,
        "every bot reconnected: {summary}"
    );
    // A restarted server knows none of the old sessions: they joined afresh, and play on.
    assert_eq!(summary["resumed"], 0, "{summary}");
    assert!(
        summary["states_per_sec_per_client"].as_f64().unwrap() > 5.0,
        "states flow again: {summary}"
    );
}
