//! Slow clients: the state stream is latest-wins (drops counted, the newest state delivered);
//! reliable events are never dropped, so a client that cannot keep up is disconnected with a
//! reason — and nobody else suffers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use nexus_gateway::{HostEvent, InterestSettings, Target};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_the_newest_state_and_drops_are_counted() {
    let mut config = dev_config();
    config.interest = InterestSettings::everything();
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut slow = connect_slow(&gateway).await;
    join_fake(&mut slow, &link, "0", "Slow").await;

    // ~300 KB per state, never acknowledged: every message is a full state. The client does not
    // read, so its socket fills up and states pile into its latest-wins slot.
    let mut published = 0u64;
    while gateway.metrics().state_updates_dropped < 10 {
        assert!(published < 5_000, "no state was ever dropped");
        published += 1;
        link.publish_state(world_state(published, 2_000, 0.0), vec![]);
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let last = published + 1_000_000; // unmistakable
    published += 1;
    link.publish_state(world_state(last, 2_000, 0.0), vec![]);

    // Now read everything: the stream ends with the newest state, and every published state was
    // either delivered or counted as dropped.
    let mut received = 0u64;
    loop {
        let state = slow.next_of("physics:world_state:v1:stream").await;
        received += 1;
        if state["payload"]["tick"] == last {
            break;
        }
    }
    let dropped = gateway.metrics().state_updates_dropped;
    assert_eq!(
        received + dropped,
        published,
        "received {received}, dropped {dropped}"
    );
    assert!(received < published);
    let campaign = &gateway.metrics().campaigns[0];
    assert_eq!(campaign.state_updates_dropped, dropped);
    // Still connected and served.
    slow.round_trip("0", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cannot_keep_up_with_reliable_events_is_disconnected_with_a_reason() {
    let mut config = dev_config();
    config.session.reliable_queue_capacity = 64;
    // Long enough for the test to read up to the close frame whatever the machine's speed.
    config.session.close_grace = std::time::Duration::from_secs(60);
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();
    let mut slow = connect_slow(&gateway).await;
    let slow_id = join_fake(&mut slow, &link, "0", "Slow").await;
    let mut healthy = connect(&gateway).await;
    join_fake(&mut healthy, &link, "0", "Healthy").await;

    // The healthy client reads everything and reports how far it got.
    const EVENTS: usize = 400;
    const BATCH: usize = 32;
    let progress = Arc::new(AtomicUsize::new(0));
    let reader = {
        let progress = progress.clone();
        tokio::spawn(async move {
            for _ in 0..EVENTS {
                healthy.next_of("system:custom:v1:stream").await;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            healthy.round_trip("0", 2).await;
        })
    };
    // Events in batches smaller than the queue, each once the healthy client has caught up: only
    // a client that stopped reading can fall 64 events behind.
    let blob = "z".repeat(64 * 1024);
    for n in 0..EVENTS {
        if n % BATCH == 0 {
            while progress.load(Ordering::Relaxed) < n {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        link.send_event(
            Target::All,
            nexus_protocol::server::custom("0", "blob", json!({"n": n, "blob": blob})),
        );
    }
    wait_metrics(&gateway, "a slow-consumer disconnect", |m| {
        m.disconnects_slow_consumer >= 1
    })
    .await;
    let close = slow.expect_close().await;
    assert_eq!(close.code, CloseCode::Again);
    assert!(
        close.reason.starts_with("slow_consumer"),
        "{}",
        close.reason
    );
    // The host is told (the healthy client, done reading, may leave too: skip it).
    let left = wait_event(
        &link,
        |e| matches!(e, HostEvent::ClientLeft { client_id, .. } if *client_id == slow_id),
    )
    .await;
    assert!(matches!(left, HostEvent::ClientLeft { .. }));
    // The healthy client received every event and is still served.
    reader.await.unwrap();
    assert_eq!(gateway.metrics().disconnects_slow_consumer, 1);
}
