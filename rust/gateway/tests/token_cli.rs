//! The `nexus-token` command: mints tokens the gateway accepts, refuses bad input clearly.

use std::process::Command;

use nexus_gateway::{Role, verify_token};

const SECRET: &str = "cli-test-secret-0123456789";

fn nexus_token(args: &[&str], secret: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-token"));
    command.args(args).env_remove("NEXUS_GATEWAY_SECRET");
    if let Some(secret) = secret {
        command.env("NEXUS_GATEWAY_SECRET", secret);
    }
    command.output().expect("nexus-token runs")
}

#[test]
fn mints_a_token_the_gateway_verifies() {
    let output = nexus_token(
        &[
            "--name", "Ada", "--id", "acct-1", "--role", "admin", "--ttl", "60",
        ],
        Some(SECRET),
    );
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let now = nexus_gateway::auth::unix_now();
    let claims = verify_token(SECRET.as_bytes(), token.trim(), now).expect("a valid token");
    assert_eq!(claims.name, "Ada");
    assert_eq!(claims.user_id, "acct-1");
    assert_eq!(claims.role, Role::Admin);
    assert!(claims.expires_at > now && claims.expires_at <= now + 61);
}

#[test]
fn binds_a_token_to_a_campaign() {
    let output = nexus_token(&["--name", "Ada", "--campaign", "arena"], Some(SECRET));
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let claims = verify_token(SECRET.as_bytes(), token.trim(), 0).unwrap();
    assert_eq!(claims.campaign.as_deref(), Some("arena"));
    let unbound = nexus_token(&["--name", "Ada"], Some(SECRET));
    let token = String::from_utf8(unbound.stdout).unwrap();
    let claims = verify_token(SECRET.as_bytes(), token.trim(), 0).unwrap();
    assert_eq!(claims.campaign, None, "no --campaign: any campaign");

    let bad = nexus_token(&["--name", "Ada", "--campaign", "a\nb"], Some(SECRET));
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("--campaign")
    );
}

#[test]
fn reads_the_secret_from_a_file() {
    let path = std::env::temp_dir().join(format!("nexus-token-test-{}", std::process::id()));
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let output = nexus_token(
        &["--name", "Bo", "--secret-file", path.to_str().unwrap()],
        None,
    );
    std::fs::remove_file(&path).unwrap();
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap();
    let claims = verify_token(SECRET.as_bytes(), token.trim(), 0).unwrap();
    assert_eq!((claims.name.as_str(), claims.role), ("Bo", Role::Player));
}

#[test]
fn refuses_missing_or_bad_arguments_with_a_message() {
    for (args, secret, expected) in [
        (&["--name", "Ada"][..], None, "no secret"),
        (&["--name", "Ada"][..], Some("short"), "at least 16"),
        (&[][..], Some(SECRET), "--name <NAME>"),
        (
            &["--name", "Ada", "--role", "god"][..],
            Some(SECRET),
            "player or admin",
        ),
        (&["--name", "Ada", "--ttl", "-5"][..], Some(SECRET), "--ttl"),
        (&["--frobnicate"][..], Some(SECRET), "unexpected argument"),
    ] {
        let output = nexus_token(args, secret);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let help = nexus_token(&["--help"], None);
    assert!(help.status.success());
    assert!(
        String::from_utf8(help.stdout)
            .unwrap()
            .contains("Usage: nexus-token")
    );
}

#[test]
fn logs_go_to_standard_error_filtered_by_rust_log() {
    let run = |filter: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-token"));
        command
            .args(["--name", "Ada"])
            .env("NEXUS_GATEWAY_SECRET", SECRET)
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1");
        command.output().expect("nexus-token runs")
    };
    let debug = run("debug");
    assert!(debug.status.success(), "{debug:?}");
    let stderr = String::from_utf8_lossy(&debug.stderr);
    assert!(stderr.contains("token minted"), "{stderr}");
    // Standard output still carries the token alone.
    let token = String::from_utf8(debug.stdout).unwrap();
    assert_eq!(token.lines().count(), 1, "{token}");
    assert!(
        verify_token(
            SECRET.as_bytes(),
            token.trim(),
            nexus_gateway::auth::unix_now()
        )
        .is_ok()
    );
    let quiet = run("warn");
    assert!(quiet.status.success());
    assert!(quiet.stderr.is_empty(), "{quiet:?}");
}
