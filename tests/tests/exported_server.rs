//! `scripts/export-server` produces a headless dedicated server that runs on its own: copied to
//! another folder, with this repository's Godot runtime (`.runtime/`) out of sight, it starts and
//! serves clients.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nexus_e2e::{Client, Server, free_port, fresh_dir, repo_root, run_to_exit};

/// Copies `from` to `to` as `cp -a` does (links, modes, times).
fn copy_folder(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying the export");
}

/// Whether this machine lets us hide a folder in a private mount namespace (root, util-linux).
fn can_hide_folders() -> bool {
    Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_server_runs_on_its_own_from_another_folder() {
    let root = repo_root();
    let base = fresh_dir("exported-server");
    let built = base.join("built");
    let status = Command::new(root.join("scripts/export-server"))
        .arg(&built)
        .current_dir(&root)
        .status()
        .expect("export-server runs");
    assert!(status.success(), "scripts/export-server failed");
    for file in [
        "nexus-server.x86_64",
        "nexus-server.pck",
        "libnexus_physics.linux.release.x86_64.so",
        "run-server",
        "lib/ld-linux-x86-64.so.2",
        "lib/libc.so.6",
    ] {
        assert!(built.join(file).exists(), "the export has {file}");
    }

    // Another folder, as a user deploying it would.
    let deployed = base.join("deployed");
    copy_folder(&built, &deployed);
    std::fs::remove_dir_all(&built).unwrap();

    // Nothing it loads comes from this repository (the loader lists what it would map).
    let runtime = root.join(".runtime");
    let listed = Command::new(deployed.join("lib/ld-linux-x86-64.so.2"))
        .arg("--list")
        .arg(deployed.join("nexus-server.x86_64"))
        .output()
        .expect("the bundled loader lists the libraries");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("libc.so.6"), "a listing: {listed}");
    assert!(
        !listed.contains(runtime.to_str().unwrap()),
        "the export loads nothing from the repository's Godot runtime:\n{listed}"
    );
    assert!(
        listed
            .lines()
            .filter(|l| l.contains("=>"))
            .all(|l| l.contains(deployed.to_str().unwrap())),
        "every library comes from the deployed folder:\n{listed}"
    );

    // Run it with the repository's Godot runtime hidden when the machine allows it (a private
    // mount namespace with an empty folder over .runtime), else as it is.
    let port = free_port();
    let mut command;
    if can_hide_folders() {
        let empty = base.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        command = Command::new("unshare");
        command.args(["--mount", "sh", "-c"]).arg(format!(
            "mount --bind '{}' '{}' && exec '{}' --dev --port={port}",
            empty.display(),
            runtime.display(),
            deployed.join("run-server").display()
        ));
    } else {
        eprintln!("unshare --mount is not allowed here: running without hiding .runtime/");
        command = Command::new(deployed.join("run-server"));
        command.arg("--dev").arg(format!("--port={port}"));
    }
    command.current_dir(&base).env_remove("NEXUS_SECRET");
    let mut server = Server::start(command, port);
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
    assert!(
        deployed.join("data/godot/app_userdata").is_dir(),
        "its user data stays in its folder"
    );
    assert_eq!(
        server.terminate(Duration::from_secs(10)),
        Some(0),
        "a clean exit on SIGTERM"
    );

    // Without a secret and without --dev nobody could join: it says how to fix it and exits 1.
    let mut command = Command::new(deployed.join("run-server"));
    command
        .env_remove("NEXUS_SECRET")
        .arg(format!("--port={}", free_port()));
    let (code, log) = run_to_exit(command, Duration::from_secs(30));
    assert_eq!(code, Some(1), "no secret, no --dev: exit code 1\n{log}");
    for option in ["--secret-file", "NEXUS_SECRET", "--dev"] {
        assert!(log.contains(option), "the error names {option}:\n{log}");
    }
}
