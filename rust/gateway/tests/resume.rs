//! Resuming a session after a lost connection: the same client id and avatar on a new
//! connection, inputs replayed once, expiry after the grace period, and who may resume.

mod common;

use std::time::Duration;

use common::*;
use nexus_gateway::{CampaignHost, CampaignHostConfig, GatewayConfig, GatewayHandle};
use serde_json::{Value, json};

fn config_with_grace(mut config: GatewayConfig, grace: Duration) -> GatewayConfig {
    config.session.resume_grace = grace;
    config
}

/// Ticks `host` until `client` receives a message of `type`.
async fn tick_until(host: &mut CampaignHost, client: &mut Client, r#type: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        host.tick();
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(5), client.next()).await
            && message["type"] == r#type
        {
            return message;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {type} in time");
    }
}

/// Ticks `host` (every 5 ms) until `done` holds.
async fn tick_while_not(host: &mut CampaignHost, what: &str, done: impl Fn(&CampaignHost) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(host) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen in time"
        );
        host.tick();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn join_with(client: &mut Client, token: &str, resume_token: Option<&str>) {
    let mut payload = json!({"token": token});
    if let Some(resume) = resume_token {
        payload["resume_token"] = json!(resume);
    }
    client
        .send_json(&envelope("session:join:v1:requested", "0", payload))
        .await;
}

async fn send_inputs(client: &mut Client, seqs: std::ops::RangeInclusive<u32>) {
    let inputs: Vec<Value> = seqs
        .map(|seq| json!({"seq": seq, "movement": [0.0, 1.0], "look": [0.0, 0.0, -1.0]}))
        .collect();
    client
        .send_json(&envelope(
            "physics:client_input:v1:requested",
            "0",
            json!({"inputs": inputs}),
        ))
        .await;
}

fn new_host(gateway: &GatewayHandle) -> CampaignHost {
    let link = gateway.open_campaign("0").unwrap();
    CampaignHost::new(test_world(), link, CampaignHostConfig::default())
}

fn resume_token(welcome: &Value) -> String {
    welcome["payload"]["resume_token"]
        .as_str()
        .expect("the welcome offers a resume token")
        .to_string()
}

#[tokio::test]
async fn a_lost_connection_resumes_with_the_same_avatar_and_inputs_are_applied_once() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_secs(10)));
    let mut host = new_host(&gateway);
    let mut first = connect(&gateway).await;
    join_with(&mut first, "Ada", None).await;
    let welcome = tick_until(&mut host, &mut first, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["resumed"], false);
    assert_eq!(welcome["payload"]["resume_grace_secs"], 10.0);
    let client_id = welcome["payload"]["client_id"].as_u64().unwrap() as u32;
    let avatar = welcome["payload"]["avatar_id"].clone();
    let token = resume_token(&welcome);
    assert!(token.len() >= 22, "128 random bits: {token}");

    send_inputs(&mut first, 1..=10).await;
    tick_while_not(&mut host, "inputs 1..=10 processed", |h| {
        h.world().last_processed_input(client_id) == Some(10)
    })
    .await;

    // The connection vanishes without a close handshake (a dropped network).
    drop(first);
    for _ in 0..40 {
        host.tick();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        host.clients(),
        vec![client_id],
        "the avatar waits for its client"
    );

    let mut second = connect(&gateway).await;
    join_with(&mut second, "Ada", Some(&token)).await;
    let welcome = tick_until(&mut host, &mut second, "session:welcome:v1:stream").await;
    let payload = &welcome["payload"];
    assert_eq!(payload["resumed"], true, "{payload}");
    assert_eq!(payload["client_id"], client_id);
    assert_eq!(payload["avatar_id"], avatar);
    assert!(payload["world_state"]["objects"].as_array().unwrap().len() >= 2);
    assert_ne!(
        resume_token(&welcome),
        token,
        "each welcome offers a new token"
    );

    // The client resends what it does not know was applied (5..=10) and goes on (11..=15).
    send_inputs(&mut second, 5..=15).await;
    tick_while_not(&mut host, "inputs up to 15 processed", |h| {
        h.world().last_processed_input(client_id) == Some(15)
    })
    .await;
    let stats = host.world().input_stats(client_id).unwrap();
    assert_eq!(
        stats.processed, 15,
        "every input applied exactly once: {stats:?}"
    );
    assert_eq!(stats.duplicates + stats.stale, 6, "{stats:?}");
    let metrics = gateway.metrics();
    assert_eq!((metrics.resumes, metrics.resumes_refused), (1, 0));

    // The state stream resumes on the new connection.
    let state = tick_until(&mut host, &mut second, "physics:world_state:v1:stream").await;
    assert!(position_in_state(&state, avatar.as_u64().unwrap()).is_some());
}

#[tokio::test]
async fn an_unresumed_session_expires_and_a_late_resume_joins_afresh() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_millis(300)));
    let mut host = new_host(&gateway);
    let mut first = connect(&gateway).await;
    join_with(&mut first, "Ada", None).await;
    let welcome = tick_until(&mut host, &mut first, "session:welcome:v1:stream").await;
    let client_id = welcome["payload"]["client_id"].as_u64().unwrap() as u32;
    let token = resume_token(&welcome);
    drop(first);
    tick_while_not(&mut host, "the lost session expiring", |h| {
        h.clients().is_empty()
    })
    .await;
    assert_eq!(gateway.metrics().resumes_expired, 1);

    let mut late = connect(&gateway).await;
    join_with(&mut late, "Ada", Some(&token)).await;
    let welcome = tick_until(&mut host, &mut late, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["resumed"], false);
    assert_ne!(welcome["payload"]["client_id"], client_id, "a new session");
    assert_eq!(gateway.metrics().resumes_refused, 1);
}

#[tokio::test]
async fn another_account_cannot_take_a_session_with_its_resume_token() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_secs(10)));
    let mut host = new_host(&gateway);
    let mut ada = connect(&gateway).await;
    join_with(&mut ada, "Ada", None).await;
    let welcome = tick_until(&mut host, &mut ada, "session:welcome:v1:stream").await;
    let ada_id = welcome["payload"]["client_id"].clone();
    let token = resume_token(&welcome);
    drop(ada);

    let mut mallory = connect(&gateway).await;
    join_with(&mut mallory, "Mallory", Some(&token)).await;
    let welcome = tick_until(&mut host, &mut mallory, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["resumed"], false);
    assert_ne!(welcome["payload"]["client_id"], ada_id);

    // Ada's session is still there for Ada.
    let mut ada = connect(&gateway).await;
    join_with(&mut ada, "Ada", Some(&token)).await;
    let welcome = tick_until(&mut host, &mut ada, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["resumed"], true);
    assert_eq!(welcome["payload"]["client_id"], ada_id);
}

#[tokio::test]
async fn resuming_takes_over_a_connection_the_server_still_thinks_open() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_secs(10)));
    let mut host = new_host(&gateway);
    let mut old = connect(&gateway).await;
    join_with(&mut old, "Ada", None).await;
    let welcome = tick_until(&mut host, &mut old, "session:welcome:v1:stream").await;
    let client_id = welcome["payload"]["client_id"].as_u64().unwrap() as u32;
    let token = resume_token(&welcome);

    // The client gave up on `old` (it saw no traffic) before the server noticed anything.
    let mut new = connect(&gateway).await;
    join_with(&mut new, "Ada", Some(&token)).await;
    let welcome = tick_until(&mut host, &mut new, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["resumed"], true);
    let close = old.expect_close().await;
    assert!(
        close.reason.starts_with("session_resumed"),
        "the old connection is told why: {}",
        close.reason
    );
    for _ in 0..40 {
        host.tick();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        host.clients(),
        vec![client_id],
        "the old connection's end does not end the session it lost"
    );
}

#[tokio::test]
async fn leaving_ends_the_session_at_once_and_resuming_can_be_turned_off() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_secs(10)));
    let mut host = new_host(&gateway);
    let mut client = connect(&gateway).await;
    join_with(&mut client, "Ada", None).await;
    tick_until(&mut host, &mut client, "session:welcome:v1:stream").await;
    client
        .send_json(&envelope("session:leave:v1:requested", "0", json!({})))
        .await;
    tick_while_not(&mut host, "the leave", |h| h.clients().is_empty()).await;

    let gateway = start(config_with_grace(dev_config(), Duration::ZERO));
    let mut host = new_host(&gateway);
    let mut client = connect(&gateway).await;
    join_with(&mut client, "Ada", None).await;
    let welcome = tick_until(&mut host, &mut client, "session:welcome:v1:stream").await;
    assert!(
        welcome["payload"].get("resume_token").is_none(),
        "no offer when off"
    );
    drop(client);
    tick_while_not(&mut host, "the departure", |h| h.clients().is_empty()).await;
}

#[tokio::test]
async fn a_client_that_closes_its_websocket_has_left() {
    let gateway = start(config_with_grace(dev_config(), Duration::from_secs(10)));
    let mut host = new_host(&gateway);
    let mut client = connect(&gateway).await;
    join_with(&mut client, "Ada", None).await;
    tick_until(&mut host, &mut client, "session:welcome:v1:stream").await;
    client.ws.close(None).await.unwrap();
    tick_while_not(&mut host, "the departure", |h| h.clients().is_empty()).await;
    assert_eq!(gateway.metrics().resumes_expired, 0, "left, not expired");
}
