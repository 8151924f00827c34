//! The demo scene served by the real headless Godot server (as `scripts/serve` runs it), with
//! independent raw WebSocket clients over 127.0.0.1.

use std::time::Duration;

use nexus_e2e::{Client, Server, free_port, fresh_dir, http_get, named, position_of, repo_root};
use serde_json::{Value, json};

const CAMPAIGN: &str = "0";

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// Sends `count` forward inputs looking along `look`, one message of two inputs every 33 ms.
async fn walk(client: &mut Client, seq: &mut u32, look: [f64; 3], count: u32) {
    for _ in 0..count / 2 {
        let inputs: Vec<Value> = (0..2)
            .map(|_| {
                *seq += 1;
                json!({"seq": *seq, "movement": [0.0, 1.0], "look": look})
            })
            .collect();
        client
            .send(
                "physics:client_input:v1:requested",
                CAMPAIGN,
                json!({"inputs": inputs}),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
}

/// Niceness of the threads of process `pid` named `name`, from /proc.
fn niceness_of_threads(pid: u32, name: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc");
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state is field 3, nice field 19.
        let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
        found.push(
            after
                .split(' ')
                .nth(16)
                .expect("19 fields")
                .parse()
                .expect("a number"),
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_join_the_demo_and_see_each_other_move() {
    let data = fresh_dir("two-clients");
    let server = Server::start_scene(
        "res://scenes/demo.tscn",
        free_port(),
        &[&format!("--data-dir={}", data.display()), "--io-niceness=9"],
    );
    // The command line sets the niceness of the gateway's network threads (default 10).
    let io_threads = niceness_of_threads(server.pid(), "nexus-gw-io");
    assert!(
        !io_threads.is_empty() && io_threads.iter().all(|&n| n == 9),
        "nexus-gw-io niceness: {io_threads:?}"
    );
    let mut alice = Client::connect(&server.url()).await;
    let mut bob = Client::connect(&server.url()).await;
    let welcome_a = alice.join(CAMPAIGN, "alice").await;
    let welcome_b = bob.join(CAMPAIGN, "bob").await;

    assert_eq!(welcome_a["tick_rate"], 60, "welcome: {welcome_a}");
    assert_ne!(welcome_a["client_id"], welcome_b["client_id"]);
    let objects = &welcome_b["world_state"]["objects"];
    for name in [
        "Ramp1",
        "Box1_1",
        "Box3_5",
        "Ball1",
        "LockedCrate",
        "terrain",
    ] {
        assert!(
            named(objects, name).is_some(),
            "the demo's {name} is in the full state"
        );
    }
    assert_eq!(
        named(objects, "terrain").unwrap()["shape"]["type"],
        "heightfield"
    );
    assert_eq!(
        named(objects, "LockedCrate").unwrap()["properties"]["locked"],
        true
    );
    for key in ["timestamp", "tick", "objects", "physics", "environment"] {
        assert!(
            welcome_b["world_state"].get(key).is_some(),
            "world state has {key}"
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let stamped = welcome_b["world_state"]["timestamp"]
        .as_f64()
        .unwrap_or(0.0);
    assert!(
        (stamped - now).abs() < 10.0,
        "the state carries the server's Unix time: {stamped} vs {now}"
    );

    let alice_avatar = welcome_a["avatar_id"].as_u64().expect("avatar id");
    let start = position_of(&welcome_b["world_state"]["objects"], alice_avatar)
        .expect("bob sees alice's avatar");
    let mut seq = 0;
    walk(&mut alice, &mut seq, [1.0, 0.0, 0.0], 60).await;
    let seen = bob
        .next_matching(
            |e| {
                e["type"] == "physics:world_state:v1:stream"
                    && position_of(&e["payload"]["objects"], alice_avatar)
                        .is_some_and(|p| distance(p, start) > 1.0)
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(
        seen.is_some(),
        "bob sees alice's avatar move more than 1 m; bob received {:?}",
        bob.types()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_scripts_rules_apply_to_network_interactions() {
    let data = fresh_dir("interactions");
    let server = Server::start_scene(
        "res://scenes/demo.tscn",
        free_port(),
        &[&format!("--data-dir={}", data.display())],
    );
    let mut carol = Client::connect(&server.url()).await;
    let welcome = carol.join(CAMPAIGN, "carol").await;
    let avatar = welcome["avatar_id"].as_u64().unwrap();
    let crate_id = named(&welcome["world_state"]["objects"], "LockedCrate").unwrap()["id"]
        .as_u64()
        .unwrap();
    let crate_position = position_of(&welcome["world_state"]["objects"], crate_id).unwrap();

    // The scene script's custom interaction.
    carol
        .send(
            "interaction:request:v1:requested",
            CAMPAIGN,
            json!({"kind": "wave", "request_id": 7}),
        )
        .await;
    let result = carol
        .next_matching(
            |e| e["type"] == "interaction:result:v1:stream" && e["payload"]["request_id"] == 7,
            Duration::from_secs(5),
        )
        .await
        .expect("a result for the wave");
    assert_eq!(result["payload"]["success"], true, "{result}");
    assert_eq!(result["payload"]["data"]["emote"], "wave", "{result}");

    // Walk to the locked crate, then try to pick it up: the world allows it, the script vetoes.
    let mut seq = 0;
    let mut near = false;
    for _ in 0..40 {
        let here = carol
            .next_matching(
                |e| {
                    e["type"] == "physics:world_state:v1:stream"
                        && position_of(&e["payload"]["objects"], avatar).is_some()
                },
                Duration::from_secs(3),
            )
            .await
            .and_then(|e| position_of(&e["payload"]["objects"], avatar));
        let Some(here) = here else { continue };
        let to_crate = [
            crate_position[0] - here[0],
            0.0,
            crate_position[2] - here[2],
        ];
        let flat = (to_crate[0].powi(2) + to_crate[2].powi(2)).sqrt();
        if flat < 1.8 {
            near = true;
            break;
        }
        walk(
            &mut carol,
            &mut seq,
            [to_crate[0] / flat, 0.0, to_crate[2] / flat],
            4,
        )
        .await;
    }
    assert!(near, "carol reached the crate");
    carol
        .send(
            "interaction:pickup:v1:requested",
            CAMPAIGN,
            json!({"target": crate_id, "request_id": 8}),
        )
        .await;
    let result = carol
        .next_matching(
            |e| e["type"] == "interaction:result:v1:stream" && e["payload"]["request_id"] == 8,
            Duration::from_secs(5),
        )
        .await
        .expect("a result for the pickup");
    assert_eq!(result["payload"]["success"], false, "{result}");
    assert_eq!(result["payload"]["code"], "vetoed", "{result}");
    assert_eq!(
        result["payload"]["message"], "this item is locked",
        "{result}"
    );
}

/// The headless Godot server (its `NexusGateway` with WebRTC on by default, on the WebSocket's
/// port number over UDP) serves the state stream and inputs on data channels to `nexus-bots
/// --transport webrtc`; the page-less server's metrics count them per transport.
#[test]
fn bots_play_over_webrtc_data_channels_on_the_godot_server() {
    let data = fresh_dir("webrtc-bots");
    let port = free_port();
    let mut server = Server::start_scene(
        "res://scenes/demo.tscn",
        port,
        &[&format!("--data-dir={}", data.display())],
    );
    server.wait_for_line("WebRTC data channels on udp://", Duration::from_secs(30));
    let bots = repo_root().join("target/debug/nexus-bots");
    assert!(
        bots.exists(),
        "{} is missing: cargo build -p nexus-client --bin nexus-bots",
        bots.display()
    );
    let output = std::process::Command::new(&bots)
        .args(["--url", &format!("ws://127.0.0.1:{port}/ws")])
        .args(["--count", "3", "--duration", "6", "--quiet"])
        .args(["--transport", "webrtc", "--encoding", "binary"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("nexus-bots runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "nexus-bots failed:\n{stdout}");
    let summary: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("NEXUS_BOTS_SUMMARY "))
        .map(|l| serde_json::from_str(l).expect("JSON summary"))
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    let transports = &summary["transports"];
    assert_eq!(
        transports["clients_opened"], 3,
        "every bot opened its channels: {transports}"
    );
    let on_channel = transports["states_webrtc"].as_u64().unwrap();
    let on_socket = transports["states_websocket"].as_u64().unwrap();
    assert!(
        on_channel > 3 * 60 && on_channel > on_socket * 10,
        "states come on the data channel: {on_channel} vs {on_socket} on the WebSocket"
    );
    assert!(
        transports["input_frames_webrtc"].as_u64().unwrap() > 3 * 100,
        "inputs go on the input channel: {transports}"
    );
    let (_, metrics) = http_get(port, "/metrics").expect("metrics");
    assert!(
        metrics.contains("nexus_gateway_webrtc_opened_total 3"),
        "the server counts the channels: {}",
        metrics
            .lines()
            .filter(|l| l.contains("webrtc"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
