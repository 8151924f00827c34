//! Campaign state survives a crash: change the world through a client, `kill -9` the headless
//! server, start it again on the same data directory, and compare what a new client sees.

use std::time::Duration;

use nexus_e2e::{Client, Server, free_port, fresh_dir, named};
use serde_json::json;

const CAMPAIGN: &str = "0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_survives_kill_9() {
    let data = fresh_dir("kill9");
    let data_arg = format!("--data-dir={}", data.display());

    let mut server = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&data_arg]);
    let mut admin = Client::connect(&server.url()).await;
    let welcome = admin.join(CAMPAIGN, "admin").await;
    let first_objects = welcome["world_state"]["objects"].clone();
    let box_id = named(&first_objects, "Box2_5").expect("the demo has Box2_5")["id"].clone();

    // Change the world: an admin adds a monument, turns on a storm and raises the terrain.
    let monument = json!({"kind": "static", "shape": {"type": "box", "half_extents": [1.0, 2.0, 1.0]},
        "position": [15.0, 2.0, 15.0], "properties": {"name": "monument"}});
    admin
        .send(
            "environment:edit:v1:requested",
            CAMPAIGN,
            json!({"op": "add_object", "object": monument}),
        )
        .await;
    admin
        .send(
            "environment:edit:v1:requested",
            CAMPAIGN,
            json!({"op": "set_weather", "kind": "storm"}),
        )
        .await;
    admin
        .send(
            "environment:edit:v1:requested",
            CAMPAIGN,
            json!({"op": "edit_terrain", "center": [30.0, 30.0], "radius": 4.0, "delta": 3.0}),
        )
        .await;
    admin
        .next_matching(
            |e| {
                e["type"] == "environment:object_added:v1:stream"
                    || e["type"] == "physics:object_added:v1:stream"
            },
            Duration::from_secs(5),
        )
        .await
        .expect("the monument is announced");
    let weather = admin
        .next_matching(
            |e| {
                e["type"] == "environment:weather:v1:stream"
                    && e["payload"]["weather"]["kind"] == "storm"
            },
            Duration::from_secs(5),
        )
        .await;
    assert!(
        weather.is_some(),
        "the storm is announced; received {:?}",
        admin.types()
    );
    // Let at least two save intervals (1 s each) pass, then crash.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    drop(admin);

    let server = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&data_arg]);
    let mut visitor = Client::connect(&server.url()).await;
    let welcome = visitor.join(CAMPAIGN, "visitor").await;
    let state = &welcome["world_state"];
    let objects = &state["objects"];
    let restored = named(objects, "monument").expect("the monument survived the crash");
    let p = &restored["position"];
    assert!(
        (p[0].as_f64().unwrap() - 15.0).abs() < 1e-3
            && (p[2].as_f64().unwrap() - 15.0).abs() < 1e-3,
        "{restored}"
    );
    assert_eq!(
        state["environment"]["weather"]["kind"], "storm",
        "the weather survived: {}",
        state["environment"]
    );
    assert!(
        state["environment"]["terrain_revision"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the terrain edit survived"
    );
    assert!(
        objects
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == box_id && o["properties"]["name"] == "Box2_5"),
        "the scene's objects keep their ids across the restart"
    );
    assert!(
        state["tick"].as_u64().unwrap() > 60,
        "the world resumed from its saved tick, not from zero"
    );
}

#[test]
fn the_stores_log_events_reach_godots_output_filtered_by_rust_log() {
    let root = nexus_e2e::repo_root();
    let data = fresh_dir("tracing-route");
    let port = free_port();
    let mut command = std::process::Command::new(root.join("scripts/godot"));
    command
        .current_dir(&root)
        .env("RUST_LOG", "info,nexus_store=debug")
        .args([
            "--headless",
            "--path",
            "godot",
            "res://scenes/demo.tscn",
            "--",
            "--dev",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--data-dir={}", data.display()));
    let mut server = Server::start(command, port);
    // The saver's debug event, printed through Godot with its target and fields.
    let line = server.wait_for_line("[nexus_store::saver] saved", Duration::from_secs(10));
    assert!(
        line.contains("tick="),
        "the event's fields are printed: {line}"
    );
}
