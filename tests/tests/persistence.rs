//! Campaign state survives a crash: change the world through a client, `kill -9` the headless
//! server, start it again on the same data directory, and compare what a new client sees.

use std::time::Duration;

use nexus_e2e::{
    Client, LoopDisk, Server, SmallDisk, campaign_persistence, free_port, fresh_dir, health, named,
    wait_health,
};
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

/// The world keeps running: states keep coming with later ticks.
async fn assert_the_world_runs_on(client: &mut Client) {
    let tick_of = |e: &serde_json::Value| e["payload"]["tick"].as_u64();
    let first = client
        .next_matching(
            |e| e["type"] == "physics:world_state:v1:stream",
            Duration::from_secs(5),
        )
        .await
        .and_then(|e| tick_of(&e))
        .expect("states during the outage");
    let later = client
        .next_matching(
            |e| {
                e["type"] == "physics:world_state:v1:stream"
                    && e["payload"]["tick"].as_u64().unwrap_or(0) > first + 60
            },
            Duration::from_secs(10),
        )
        .await;
    assert!(later.is_some(), "the world ran on for a second of ticks");
}

async fn add_named_box(admin: &mut Client, name: &str, x: f64) {
    let object = json!({"kind": "static", "shape": {"type": "box", "half_extents": [0.5, 0.5, 0.5]},
        "position": [x, 1.0, -20.0], "properties": {"name": name}});
    admin
        .send(
            "environment:edit:v1:requested",
            CAMPAIGN,
            json!({"op": "add_object", "object": object}),
        )
        .await;
    admin
        .next_matching(
            |e| {
                (e["type"] == "environment:object_added:v1:stream"
                    || e["type"] == "physics:object_added:v1:stream")
                    && e["payload"]["object"]["properties"]["name"] == name
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|| panic!("{name} is announced"));
}

/// The data directory's disk fills up while clients play: saves fail, `/health` says so, the
/// world keeps running; when space comes back saving resumes, and after a crash nothing built
/// during the outage is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_degrades_health_keeps_the_world_running_and_loses_nothing() {
    let disk = match SmallDisk::mount("full-disk", 16) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: this test mounts a small tmpfs, which needs root: {why}");
            return;
        }
    };
    let data_arg = format!("--data-dir={}", disk.path.display());
    let port = free_port();
    let mut server = Server::start_scene("res://scenes/demo.tscn", port, &[&data_arg]);
    let mut admin = Client::connect(&server.url()).await;
    admin.join(CAMPAIGN, "admin").await;
    add_named_box(&mut admin, "before-the-outage", 0.0).await;
    let (saved, report) = wait_health(port, Duration::from_secs(15), |r| {
        campaign_persistence(r, CAMPAIGN)["saves"]
            .as_u64()
            .unwrap_or(0)
            >= 1
            && r["status"] == "ok"
    })
    .await;
    assert!(saved, "a first save is reported on /health: {report}");

    let filled = disk.fill();
    assert!(filled > 0, "the filler took the free space");
    add_named_box(&mut admin, "built-while-the-disk-was-full", 2.0).await;
    let (degraded, report) =
        wait_health(port, Duration::from_secs(20), |r| r["status"] == "degraded").await;
    assert!(degraded, "a failing save degrades /health: {report}");
    let problem = report["problems"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        problem.contains("saves fail") && problem.to_lowercase().contains("full"),
        "the problem says what fails and why: {problem}"
    );
    server.wait_for_line("save failed", Duration::from_secs(5));

    assert_the_world_runs_on(&mut admin).await;
    let failures = campaign_persistence(&health(port), CAMPAIGN)["failures"]
        .as_u64()
        .unwrap_or(0);
    assert!(failures >= 1, "failed attempts are counted");

    disk.free();
    let (recovered, report) = wait_health(port, Duration::from_secs(20), |r| {
        r["status"] == "ok" && campaign_persistence(r, CAMPAIGN)["last_error"].is_null()
    })
    .await;
    assert!(recovered, "saving resumes when space comes back: {report}");
    server.wait_for_line("saving resumed", Duration::from_secs(5));
    // One more save interval, then a crash: what was built during the outage must be on disk.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    let log = server.log.join("\n");
    let failure_lines = log.matches("save failed").count();
    assert!(
        failure_lines <= 2,
        "an outage is logged when it starts, not once a second ({failure_lines} lines):\n{log}"
    );
    drop(admin);

    let server = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&data_arg]);
    let mut visitor = Client::connect(&server.url()).await;
    let welcome = visitor.join(CAMPAIGN, "visitor").await;
    let objects = &welcome["world_state"]["objects"];
    for name in ["before-the-outage", "built-while-the-disk-was-full"] {
        assert!(
            named(objects, name).is_some(),
            "{name} survived the outage and the crash"
        );
    }
}

/// The data directory's disk turns read-only under the running server (ext4 after an I/O
/// error): `/health` says so, the world keeps running; the disk is unmounted, repaired and
/// mounted again, saving resumes by itself, and after a crash nothing built meanwhile is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_turning_read_only_degrades_health_and_saving_resumes_after_repair() {
    let disk = match LoopDisk::mount("read-only-disk", 32) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("SKIPPED: this test mounts an ext4 image, which needs root: {why}");
            return;
        }
    };
    let data_arg = format!("--data-dir={}", disk.path.display());
    let port = free_port();
    let mut server = Server::start_scene("res://scenes/demo.tscn", port, &[&data_arg]);
    let mut admin = Client::connect(&server.url()).await;
    admin.join(CAMPAIGN, "admin").await;
    add_named_box(&mut admin, "before-the-failure", 0.0).await;
    let (saved, report) = wait_health(port, Duration::from_secs(15), |r| {
        campaign_persistence(r, CAMPAIGN)["saves"]
            .as_u64()
            .unwrap_or(0)
            >= 1
            && r["status"] == "ok"
    })
    .await;
    assert!(saved, "a first save is reported on /health: {report}");

    disk.abort();
    add_named_box(&mut admin, "built-while-read-only", 2.0).await;
    let (degraded, report) =
        wait_health(port, Duration::from_secs(20), |r| r["status"] == "degraded").await;
    assert!(degraded, "a failing save degrades /health: {report}");
    let problem = report["problems"][0].as_str().unwrap_or_default();
    assert!(
        problem.contains("saves fail") && problem.contains("Read-only file system"),
        "the problem says what fails and why: {problem}"
    );
    server.wait_for_line("save failed", Duration::from_secs(5));
    assert_the_world_runs_on(&mut admin).await;

    disk.repair();
    add_named_box(&mut admin, "built-after-the-repair", 4.0).await;
    let (recovered, report) = wait_health(port, Duration::from_secs(20), |r| {
        r["status"] == "ok" && campaign_persistence(r, CAMPAIGN)["last_error"].is_null()
    })
    .await;
    assert!(recovered, "saving resumes on the repaired disk: {report}");
    server.wait_for_line("saving resumed", Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    drop(admin);

    let server = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&data_arg]);
    let mut visitor = Client::connect(&server.url()).await;
    let welcome = visitor.join(CAMPAIGN, "visitor").await;
    let objects = &welcome["world_state"]["objects"];
    for name in [
        "before-the-failure",
        "built-while-read-only",
        "built-after-the-repair",
    ] {
        assert!(
            named(objects, name).is_some(),
            "{name} survived the failure, the repair and the crash"
        );
    }
}

/// A cluster's database (PostgreSQL) instead of the data directory: the campaign survives
/// `kill -9` there too; a second server cannot take a campaign a live server holds; a restart
/// right after the crash waits out the dead server's lease and takes the campaign back; and when
/// the database goes away the world pauses (health says why) and resumes with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_in_postgres_survives_a_crash_is_held_by_one_server_and_waits_out_an_outage() {
    let postgres = nexus_e2e::Postgres::start("server");
    let database = format!("--database={}", postgres.url());
    let mut first = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&database]);
    let mut admin = Client::connect(&first.url()).await;
    admin.join(CAMPAIGN, "admin").await;
    add_named_box(&mut admin, "built-before-the-crash", 3.0).await;
    let (held, report) = wait_health(first.port, Duration::from_secs(5), |r| {
        campaign_persistence(r, CAMPAIGN)["lease"]["state"] == "held"
            && campaign_persistence(r, CAMPAIGN)["saves"]
                .as_u64()
                .unwrap_or(0)
                >= 2
    })
    .await;
    assert!(held, "the lease is shown as held, saves go on: {report}");
    let epoch = campaign_persistence(&report, CAMPAIGN)["lease"]["epoch"]
        .as_u64()
        .unwrap();

    // A second server on the same campaign: refused with the owner's name, exit code 1.
    let second = nexus_e2e::scene_command("res://scenes/demo.tscn", free_port(), &[&database]);
    let (code, log) = nexus_e2e::run_to_exit(second, Duration::from_secs(90));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("is owned by server"), "{log}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    first.kill9();
    drop(admin);
    let killed = std::time::Instant::now();
    let server = Server::start_scene("res://scenes/demo.tscn", free_port(), &[&database]);
    println!(
        "NEXUS_FIGURE postgres restart after kill -9: campaign open again in {} ms",
        killed.elapsed().as_millis()
    );
    assert!(
        server
            .log
            .iter()
            .any(|l| l.contains("waiting in case that server is gone")),
        "the dead server's lease was waited out"
    );
    let mut admin = Client::connect(&server.url()).await;
    let welcome = admin.join(CAMPAIGN, "admin").await;
    assert!(
        named(&welcome["world_state"]["objects"], "built-before-the-crash").is_some(),
        "the box built before the crash is back"
    );
    let report = health(server.port);
    assert!(
        campaign_persistence(&report, CAMPAIGN)["lease"]["epoch"]
            .as_u64()
            .unwrap()
            > epoch,
        "a new owner, a new epoch: {report}"
    );

    // The database goes away: the lease cannot be renewed, the world pauses in time.
    add_named_box(&mut admin, "built-before-the-outage", 5.0).await;
    postgres.stop();
    let (paused, report) = wait_health(server.port, Duration::from_secs(10), |r| {
        r["status"] == "degraded"
            && campaign_persistence(r, CAMPAIGN)["lease"]["simulating"] == false
    })
    .await;
    assert!(paused, "health shows the paused world: {report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("lease") && problems.contains("paused"),
        "{problems}"
    );
    // No state advances while paused: read what was sent before the pause (the client did not
    // read while polling /health), then nothing newer may come.
    let tick_of = |e: &serde_json::Value| e["payload"]["tick"].as_u64();
    let mut paused_tick = 0;
    while let Some(state) = admin
        .next_matching(
            |e| e["type"] == "physics:world_state:v1:stream",
            Duration::from_millis(500),
        )
        .await
    {
        paused_tick = paused_tick.max(tick_of(&state).unwrap_or(0));
    }
    let still = admin
        .next_matching(
            |e| {
                e["type"] == "physics:world_state:v1:stream"
                    && tick_of(e).unwrap_or(0) > paused_tick
            },
            Duration::from_secs(1),
        )
        .await;
    assert!(still.is_none(), "the world did not step while paused");

    // The database comes back before anyone else took the campaign: the same lease is renewed
    // and the world resumes, its objects all there, and saves go on.
    postgres.restart();
    let (resumed, report) = wait_health(server.port, Duration::from_secs(15), |r| {
        r["status"] == "ok" && campaign_persistence(r, CAMPAIGN)["lease"]["simulating"] == true
    })
    .await;
    assert!(
        resumed,
        "the world resumes when the database is back: {report}"
    );
    assert_the_world_runs_on(&mut admin).await;
    let saves = campaign_persistence(&report, CAMPAIGN)["saves"]
        .as_u64()
        .unwrap_or(0);
    let (saving, report) = wait_health(server.port, Duration::from_secs(5), |r| {
        campaign_persistence(r, CAMPAIGN)["saves"]
            .as_u64()
            .unwrap_or(0)
            > saves
    })
    .await;
    assert!(saving, "saves resume: {report}");
    let mut visitor = Client::connect(&server.url()).await;
    let welcome = visitor.join(CAMPAIGN, "visitor").await;
    for name in ["built-before-the-crash", "built-before-the-outage"] {
        assert!(
            named(&welcome["world_state"]["objects"], name).is_some(),
            "{name} is still in the world"
        );
    }
}

/// A database URL that cannot work stops the server at start, with the reason.
#[test]
fn a_bad_database_url_stops_the_start_with_the_reason() {
    for (url, reason) in [
        ("postgres://nexus@127.0.0.1:1/nexus", "cannot connect"),
        (
            "postgres://nexus@127.0.0.1:notaport/nexus",
            "invalid database URL",
        ),
    ] {
        let database = format!("--database={url}");
        let command = nexus_e2e::scene_command("res://scenes/demo.tscn", free_port(), &[&database]);
        let (code, log) = nexus_e2e::run_to_exit(command, Duration::from_secs(90));
        assert_eq!(code, Some(1), "{url}: {log}");
        assert!(log.contains(reason), "{url}: {log}");
    }
}
