//! The addon as a Godot user gets it: a brand-new project (nothing from `godot/`), the zip that
//! `scripts/package-addon` writes unzipped into it, a scene of our nodes, exported with the
//! project's own preset, started from another folder; a real WebSocket client joins, sees the
//! bodies, walks and interacts. Servers that cannot serve exit non-zero and say why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nexus_e2e::{Client, Server, free_port, fresh_dir, named, position_of, repo_root, run_to_exit};
use serde_json::json;

const CAMPAIGN: &str = "arena";

const PROJECT: &str = r#"config_version=5

[application]

config/name="Addon User Game"
run/main_scene="res://main.tscn"
config/features=PackedStringArray("4.6")
run/flush_stdout_on_print=true
"#;

const MAIN_SCENE: &str = r#"[gd_scene format=3]

[node name="Game" type="Node3D"]

[node name="Gateway" type="NexusGateway" parent="."]

[node name="World" type="PhysicsWorldServer" parent="." node_paths=PackedStringArray("gateway")]
campaign_id = "arena"
gateway = NodePath("../Gateway")

[node name="Rules" type="InteractionSystem" parent="World"]

[node name="Floor" type="NetworkedBody" parent="World"]
transform = Transform3D(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, -0.5, 0)
body_type = 2
size = Vector3(60, 1, 60)

[node name="Crate" type="NetworkedBody" parent="World"]
transform = Transform3D(1, 0, 0, 0, 1, 0, 0, 0, 1, 1.2, 0.5, 0)
size = Vector3(0.8, 0.8, 0.8)
pickupable = true

[node name="Barrel" type="NetworkedBody" parent="World"]
transform = Transform3D(1, 0, 0, 0, 1, 0, 0, 0, 1, -6, 0.5, 5)
shape = 3
"#;

/// The same scene with a typo in the gateway's path.
const WRONG_GATEWAY_SCENE: &str = r#"[gd_scene format=3]

[node name="Game" type="Node3D"]

[node name="Gateway" type="NexusGateway" parent="."]

[node name="World" type="PhysicsWorldServer" parent="." node_paths=PackedStringArray("gateway")]
gateway = NodePath("../Gatewey")
"#;

const EXPORT_PRESETS: &str = r#"[preset.0]

name="Game Server"
platform="Linux"
runnable=true
dedicated_server=true
custom_features=""
export_filter="all_resources"
include_filter=""
exclude_filter=""
export_path=""
script_export_mode=2

[preset.0.options]

binary_format/embed_pck=false
binary_format/architecture="x86_64"
"#;

fn godot(project: &Path) -> Command {
    let mut command = Command::new(repo_root().join("scripts/godot"));
    command.arg("--headless").arg("--path").arg(project);
    command
}

fn run(mut command: Command, what: &str) {
    let (code, log) = run_to_exit(
        {
            command.env_remove("NEXUS_SECRET");
            command
        },
        Duration::from_secs(600),
    );
    assert_eq!(code, Some(0), "{what} failed:\n{log}");
}

/// A new project folder with the packaged addon unzipped at its root.
fn new_project_with_addon(base: &Path) -> PathBuf {
    let zip = base.join("nexus_physics-addon.zip");
    let mut package = Command::new(repo_root().join("scripts/package-addon"));
    package.arg(&zip).current_dir(repo_root());
    run(package, "scripts/package-addon");
    let project = base.join("game");
    std::fs::create_dir_all(&project).unwrap();
    let mut unzip = Command::new("python3");
    unzip.args(["-m", "zipfile", "-e"]).arg(&zip).arg(&project);
    run(unzip, "unzipping the addon");
    let addon = project.join("addons/nexus_physics");
    for file in [
        "nexus_physics.gdextension",
        "plugin.cfg",
        "README.md",
        "LICENSE",
        "icons/PhysicsWorldServer.svg",
        "bin/libnexus_physics.linux.debug.x86_64.so",
        "bin/libnexus_physics.linux.release.x86_64.so",
    ] {
        let path = addon.join(file);
        assert!(
            path.is_file(),
            "the zip carries addons/nexus_physics/{file}"
        );
        assert!(
            !path.is_symlink(),
            "{file} is a file, not a link into this repository"
        );
    }
    std::fs::write(project.join("project.godot"), PROJECT).unwrap();
    std::fs::write(project.join("main.tscn"), MAIN_SCENE).unwrap();
    std::fs::write(project.join("wrong_gateway.tscn"), WRONG_GATEWAY_SCENE).unwrap();
    std::fs::write(project.join("export_presets.cfg"), EXPORT_PRESETS).unwrap();
    // What the editor writes when it first sees the addon; without it a first headless import of
    // a project with an extension loads no extension (and may crash: godotengine/godot#111048).
    std::fs::create_dir_all(project.join(".godot")).unwrap();
    std::fs::write(
        project.join(".godot/extension_list.cfg"),
        "res://addons/nexus_physics/nexus_physics.gdextension\n",
    )
    .unwrap();
    let mut import = godot(&project);
    import.arg("--import");
    run(import, "importing the new project");
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_with_the_addon_exports_a_server_that_serves_clients() {
    let base = fresh_dir("addon-project");
    let project = new_project_with_addon(&base);

    let built = base.join("export");
    std::fs::create_dir_all(&built).unwrap();
    let mut export = godot(&project);
    export
        .arg("--export-release")
        .arg("Game Server")
        .arg(built.join("game-server.x86_64"));
    run(export, "exporting the new project");
    assert!(
        built
            .join("libnexus_physics.linux.release.x86_64.so")
            .is_file(),
        "the export carries the release library"
    );
    // Started from another folder than the one it was exported to.
    let moved = base.join("deployed");
    std::fs::rename(&built, &moved).unwrap();
    let data = base.join("user-data");
    let port = free_port();
    let mut command = Command::new(moved.join("game-server.x86_64"));
    command
        .current_dir(&base)
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &data)
        .env("XDG_CACHE_HOME", &data)
        .args(["--headless", "--", "--dev"])
        .arg(format!("--port={port}"));
    let mut server = Server::start(command, port);

    let mut client = Client::connect(&server.url()).await;
    let welcome = client.join(CAMPAIGN, "addon-user").await;
    let objects = &welcome["world_state"]["objects"];
    let crate_id = named(objects, "Crate").expect("the crate is served")["id"]
        .as_u64()
        .unwrap();
    assert!(named(objects, "Barrel").is_some(), "the barrel is served");
    assert!(named(objects, "Floor").is_some(), "the floor is served");
    let avatar = welcome["avatar_id"].as_u64().expect("an avatar");

    // The crate beside the spawn point is pickupable; the scene's InteractionSystem decides.
    client
        .send(
            "interaction:pickup:v1:requested",
            CAMPAIGN,
            json!({"target": crate_id, "request_id": 1}),
        )
        .await;
    let result = client
        .next_matching(
            |e| e["type"] == "interaction:result:v1:stream" && e["payload"]["request_id"] == 1,
            Duration::from_secs(5),
        )
        .await
        .expect("a result for the pickup");
    assert_eq!(result["payload"]["success"], true, "{result}");

    // Walk along -z for a second: the avatar moves.
    let first = client
        .next_matching(
            |e| {
                e["type"] == "physics:world_state:v1:stream"
                    && position_of(&e["payload"]["objects"], avatar).is_some()
            },
            Duration::from_secs(5),
        )
        .await
        .and_then(|e| position_of(&e["payload"]["objects"], avatar))
        .expect("a state with the avatar");
    for seq in 1..=30u32 {
        client
            .send(
                "physics:client_input:v1:requested",
                CAMPAIGN,
                json!({"inputs": [{"seq": seq, "movement": [0.0, 1.0], "look": [0.0, 0.0, -1.0]}]}),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(33)).await;
    }
    let mut moved_by = 0.0;
    for _ in 0..40 {
        let Some(now) = client
            .next_matching(
                |e| {
                    e["type"] == "physics:world_state:v1:stream"
                        && position_of(&e["payload"]["objects"], avatar).is_some()
                },
                Duration::from_secs(2),
            )
            .await
            .and_then(|e| position_of(&e["payload"]["objects"], avatar))
        else {
            continue;
        };
        moved_by = ((now[0] - first[0]).powi(2) + (now[2] - first[2]).powi(2)).sqrt();
        if moved_by > 1.0 {
            break;
        }
    }
    assert!(moved_by > 1.0, "the avatar walked (moved {moved_by:.2} m)");

    assert_eq!(server.terminate(Duration::from_secs(10)), Some(0));

    // The same export without a secret and without --dev: nobody could join, so it says how to
    // fix that and exits non-zero.
    let mut command = Command::new(moved.join("game-server.x86_64"));
    command
        .env_remove("NEXUS_SECRET")
        .env("XDG_DATA_HOME", &data)
        .env("XDG_CONFIG_HOME", &data)
        .env("XDG_CACHE_HOME", &data)
        .args(["--headless", "--"])
        .arg(format!("--port={}", free_port()));
    let (code, log) = run_to_exit(command, Duration::from_secs(30));
    assert_eq!(code, Some(1), "no secret, no --dev: exit code 1\n{log}");
    for option in ["--secret-file", "NEXUS_SECRET", "--dev"] {
        assert!(log.contains(option), "the error names {option}:\n{log}");
    }

    // A scene whose gateway path is wrong fails, naming that path.
    let mut command = godot(&project);
    command
        .arg("res://wrong_gateway.tscn")
        .args(["--", "--dev"])
        .arg(format!("--port={}", free_port()));
    let (code, log) = run_to_exit(command, Duration::from_secs(30));
    assert_eq!(code, Some(1), "a wrong gateway path: exit code 1\n{log}");
    assert!(
        log.contains("../Gatewey"),
        "the error names the wrong path:\n{log}"
    );
}
