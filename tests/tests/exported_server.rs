//! `scripts/export-server` produces a headless dedicated server that runs and serves clients.

use std::process::Command;
use std::time::Duration;

use nexus_e2e::{Client, Server, free_port, repo_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_server_runs_and_serves_a_client() {
    let root = repo_root();
    let dir = root.join("target/e2e-exported-server");
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new(root.join("scripts/export-server"))
        .arg(&dir)
        .current_dir(&root)
        .status()
        .expect("export-server runs");
    assert!(status.success(), "scripts/export-server failed");
    for file in [
        "nexus-server.x86_64",
        "nexus-server.pck",
        "libnexus_physics.so",
        "run-server",
    ] {
        assert!(dir.join(file).exists(), "the export has {file}");
    }

    let mut server = Server::start_exported(&dir, free_port(), &[]);
    let mut client = Client::connect(&server.url()).await;
    let welcome = client.join("0", "exported-tester").await;
    let objects = welcome["world_state"]["objects"]
        .as_array()
        .expect("objects");
    assert!(
        objects
            .iter()
            .any(|o| o["properties"]["name"] == "LockedCrate"),
        "the exported demo scene's objects are served"
    );
    client
        .expect("physics:world_state:v1:stream", Duration::from_secs(5))
        .await;
    assert_eq!(
        server.terminate(Duration::from_secs(10)),
        Some(0),
        "a clean exit on SIGTERM"
    );
}
