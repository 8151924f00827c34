//! The gateway reports what happens through `tracing` (its own test binary: the subscriber that
//! captures the events is process-wide, as the gateway logs from its own threads).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn lifecycle_and_refusals_are_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_env_filter("nexus_gateway=debug")
        .with_ansi(false)
        .init();

    let gateway = start(signed_config());
    let link = gateway.open_campaign("alpha").unwrap();
    let mut client = connect(&gateway).await;
    client.join("alpha", "not-a-signed-token").await;
    let close = client.expect_close().await;
    assert!(
        close.reason.starts_with("invalid_token"),
        "{}",
        close.reason
    );
    drop(link);
    gateway.shutdown();

    let logs = captured.text();
    for needle in [
        "gateway listening",
        "campaign opened",
        "join refused: bad token",
        "reason=\"invalid_token\"",
        "campaign closed",
        "gateway stopped",
    ] {
        assert!(logs.contains(needle), "missing {needle:?} in\n{logs}");
    }
    assert!(logs.contains("INFO") && logs.contains("DEBUG"), "{logs}");
}
