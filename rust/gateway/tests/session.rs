//! Sessions over real sockets: join, welcome, the state stream, inputs, campaigns, auth, roles.

mod common;

use std::time::Duration;

use common::*;
use nexus_gateway::{
    CampaignHostConfig, Claims, HostEvent, MetricsSnapshot, Role, Target, mint_token,
};
use nexus_sim::command::EnvironmentCommand;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn join_gets_a_welcome_with_ids_tick_rate_and_full_state() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    client.join("0", "Ada").await;

    let HostEvent::ClientJoined {
        client_id,
        name,
        role,
        client_type,
        ..
    } = wait_event(&link, |e| matches!(e, HostEvent::ClientJoined { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(name, "Ada");
    assert_eq!(
        role,
        Role::Admin,
        "development tokens are admins by default"
    );
    assert_eq!(client_type.as_deref(), Some("test"));

    link.welcome(client_id, 7, world_state(3, 4, 0.0));
    let welcome = client.next_of("session:welcome:v1:stream").await;
    let payload = &welcome["payload"];
    assert_eq!(payload["client_id"], client_id);
    assert_eq!(payload["avatar_id"], 7);
    assert_eq!(payload["tick_rate"], 60);
    assert_eq!(payload["world_state"]["tick"], 3);
    assert_eq!(
        payload["world_state"]["objects"].as_array().unwrap().len(),
        4
    );
    assert_eq!(welcome["metadata"]["campaign_id"], "0");
    wait_metrics(&gateway, "one client in campaign 0", |m| {
        m.campaigns
            .iter()
            .any(|c| c.campaign_id == "0" && c.clients == 1)
    })
    .await;
}

#[tokio::test]
async fn published_state_reaches_the_client_with_its_input_ack() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("s").unwrap();
    let mut client = connect(&gateway).await;
    let client_id = join_fake(&mut client, &link, "s", "Ada").await;

    link.publish_state(world_state(10, 3, 0.0), vec![(client_id, 42)]);
    let state = client.next_of("physics:world_state:v1:stream").await;
    assert_eq!(state["payload"]["tick"], 10);
    assert_eq!(state["payload"]["full"], true);
    assert_eq!(state["payload"]["last_input_seq"], 42);
    assert_eq!(state["payload"]["objects"].as_array().unwrap().len(), 3);

    // Acknowledge it: the next message is a delta against tick 10 listing only what changed.
    client
        .send_json(&envelope(
            "session:ack:v1:requested",
            "s",
            json!({"tick": 10}),
        ))
        .await;
    client.round_trip("s", 1).await; // the ack is processed before the next state is encoded
    let mut next = world_state(11, 3, 0.0);
    next.objects[1].position[1] += 2.0;
    link.publish_state(next, vec![]);
    let delta = client.next_of("physics:world_state:v1:stream").await;
    assert_eq!(delta["payload"]["full"], false);
    assert_eq!(delta["payload"]["baseline"], 10);
    let listed: Vec<_> = delta["payload"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [2]);
}

#[tokio::test]
async fn inputs_reach_the_host_and_move_the_avatar() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("w").unwrap();
    let _host = HostThread::spawn(
        test_world(),
        link,
        CampaignHostConfig::default(),
        Duration::from_millis(2),
    );
    let mut client = connect(&gateway).await;
    client.join("w", "Runner").await;
    let welcome = client.next_of("session:welcome:v1:stream").await;
    let avatar = welcome["payload"]["avatar_id"].as_u64().unwrap();
    let start = welcome["payload"]["world_state"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == avatar)
        .map(|o| o["position"][2].as_f64().unwrap())
        .expect("the avatar is in the welcome state");

    // Walk forward; wait until the stream shows the avatar moved and acks our inputs.
    let inputs: Vec<_> = (1..=30)
        .map(|seq| json!({"seq": seq, "movement": [0.0, 1.0], "look": [0.0, 0.0, 1.0]}))
        .collect();
    client
        .send_json(&envelope(
            "physics:client_input:v1:requested",
            "w",
            json!({"inputs": inputs}),
        ))
        .await;
    loop {
        let state = client.next_of("physics:world_state:v1:stream").await;
        let acked = state["payload"]["last_input_seq"].as_u64();
        if let Some(position) = position_in_state(&state, avatar)
            && acked == Some(30)
        {
            assert!(
                (position[2] - start).abs() > 0.5,
                "30 inputs forward moved the avatar from z={start} to {position:?}"
            );
            break;
        }
    }
}

#[tokio::test]
async fn two_clients_see_each_other_move() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("duo").unwrap();
    let _host = HostThread::spawn(
        test_world(),
        link,
        CampaignHostConfig::default(),
        Duration::from_millis(2),
    );
    let mut alice = connect(&gateway).await;
    alice.join("duo", "Alice").await;
    let alice_avatar = alice.next_of("session:welcome:v1:stream").await["payload"]["avatar_id"]
        .as_u64()
        .unwrap();
    let mut bob = connect(&gateway).await;
    bob.join("duo", "Bob").await;
    let bob_avatar = bob.next_of("session:welcome:v1:stream").await["payload"]["avatar_id"]
        .as_u64()
        .unwrap();
    assert_ne!(alice_avatar, bob_avatar);

    // Alice learns of Bob's avatar as an added object.
    loop {
        let added = alice.next_of("physics:object_added:v1:stream").await;
        if added["payload"]["object"]["id"] == bob_avatar {
            break;
        }
    }

    // Bob walks sideways; Alice sees Bob's avatar move in her stream; and vice versa.
    watch_move(&mut bob, &mut alice, bob_avatar).await;
    watch_move(&mut alice, &mut bob, alice_avatar).await;
}

/// `mover` walks sideways until `watcher`'s stream shows `avatar` 0.5 m away from where it was.
async fn watch_move(mover: &mut Client, watcher: &mut Client, avatar: u64) {
    let inputs: Vec<_> = (1..=40)
        .map(|seq| json!({"seq": seq, "movement": [1.0, 0.0]}))
        .collect();
    mover
        .send_json(&envelope(
            "physics:client_input:v1:requested",
            "duo",
            json!({"inputs": inputs}),
        ))
        .await;
    let mut first = None;
    loop {
        let state = watcher.next_of("physics:world_state:v1:stream").await;
        // Keep the watcher's baseline fresh so it receives deltas.
        let tick = state["payload"]["tick"].as_u64().unwrap();
        watcher
            .send_json(&envelope(
                "session:ack:v1:requested",
                "duo",
                json!({"tick": tick}),
            ))
            .await;
        if let Some(position) = position_in_state(&state, avatar) {
            let first = *first.get_or_insert(position);
            let moved =
                ((position[0] - first[0]).powi(2) + (position[2] - first[2]).powi(2)).sqrt();
            if moved > 0.5 {
                return;
            }
        }
    }
}

#[tokio::test]
async fn campaigns_are_isolated() {
    let gateway = start(dev_config());
    let red = gateway.open_campaign("red").unwrap();
    let blue = gateway.open_campaign("blue").unwrap();
    let mut r = connect(&gateway).await;
    let r_id = join_fake(&mut r, &red, "red", "R").await;
    let mut b = connect(&gateway).await;
    let b_id = join_fake(&mut b, &blue, "blue", "B").await;
    assert_ne!(r_id, b_id);

    // Events and states published in red never reach blue, and vice versa.
    red.send_event(
        Target::All,
        nexus_protocol::server::custom("red", "red_only", json!({"n": 1})),
    );
    red.publish_state(world_state(5, 2, 0.0), vec![]);
    blue.send_event(
        Target::All,
        nexus_protocol::server::custom("blue", "blue_only", json!({"n": 2})),
    );
    blue.publish_state(world_state(9, 1, 100.0), vec![]);

    for (client, campaign, name, tick) in [
        (&mut r, "red", "red_only", 5),
        (&mut b, "blue", "blue_only", 9),
    ] {
        let custom = client.next_of("system:custom:v1:stream").await;
        assert_eq!(custom["payload"]["name"], name);
        assert_eq!(custom["metadata"]["campaign_id"], campaign);
        let state = client.next_of("physics:world_state:v1:stream").await;
        assert_eq!(state["payload"]["tick"], tick);
        // Nothing else is queued for this client: a ping comes straight back.
        client
            .send_json(&envelope(
                "session:ping:v1:requested",
                campaign,
                json!({"nonce": 77}),
            ))
            .await;
        let next = client.next().await;
        assert_eq!(next["type"], "session:pong:v1:stream", "unexpected {next}");
    }
    // Inputs go to the campaign of the sender only.
    r.send_json(&envelope(
        "physics:movement:v1:requested",
        "red",
        json!({"seq": 1, "movement": [0.0, 1.0]}),
    ))
    .await;
    let event = wait_event(&red, |e| matches!(e, HostEvent::Inputs { .. })).await;
    assert_eq!(event.client_id(), r_id);
    assert!(
        blue.poll()
            .iter()
            .all(|e| !matches!(e, HostEvent::Inputs { .. }))
    );

    // A client may not address another campaign once joined.
    r.send_json(&envelope(
        "environment:state:v1:requested",
        "blue",
        json!({}),
    ))
    .await;
    assert_eq!(r.next_error().await["code"], "campaign_mismatch");
}

#[tokio::test]
async fn unknown_campaign_is_an_error_and_the_client_may_retry() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("real").unwrap();
    let mut client = connect(&gateway).await;
    client.join("nope", "Ada").await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "unknown_campaign");
    assert!(error["message"].as_str().unwrap().contains("nope"));
    join_fake(&mut client, &link, "real", "Ada").await;
}

#[tokio::test]
async fn messages_before_joining_are_refused() {
    let gateway = start(dev_config());
    let _link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    client
        .send_json(&envelope(
            "physics:movement:v1:requested",
            "0",
            json!({"seq": 1, "movement": [0.0, 1.0]}),
        ))
        .await;
    assert_eq!(client.next_error().await["code"], "not_joined");
    // Pings work before joining (clock sync while connecting).
    client.round_trip("", 5).await;
}

#[tokio::test]
async fn a_second_join_is_refused() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "0", "Ada").await;
    client.join("0", "Ada").await;
    assert_eq!(client.next_error().await["code"], "already_joined");
}

#[tokio::test]
async fn host_refusing_a_join_lets_the_client_retry() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    client.join("0", "Ada").await;
    let joined = wait_event(&link, |e| matches!(e, HostEvent::ClientJoined { .. })).await;
    link.reject(
        joined.client_id(),
        "world_full",
        "no room for another avatar",
    );
    let error = client.next_error().await;
    assert_eq!(error["code"], "world_full");
    assert_eq!(error["message"], "no room for another avatar");
    join_fake(&mut client, &link, "0", "Ada").await;
}

#[tokio::test]
async fn signed_tokens_carry_name_id_and_role() {
    let gateway = start(signed_config());
    assert!(!gateway.is_development_mode());
    let link = gateway.open_campaign("0").unwrap();
    let token = mint_token(
        SECRET,
        &Claims {
            user_id: "acct-9".into(),
            name: "Grace".into(),
            role: Role::Player,
            expires_at: nexus_gateway::auth::unix_now() + 3600,
            campaign: None,
        },
    );
    let mut client = connect(&gateway).await;
    client.join("0", &token).await;
    let HostEvent::ClientJoined {
        user_id,
        name,
        role,
        ..
    } = wait_event(&link, |e| matches!(e, HostEvent::ClientJoined { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(
        (user_id.as_str(), name.as_str(), role),
        ("acct-9", "Grace", Role::Player)
    );
}

async fn expect_token_refused(token: &str, message_part: &str) {
    let gateway = start(signed_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    client.join("0", token).await;
    let error = client.next_error().await;
    assert_eq!(error["code"], "invalid_token");
    assert!(
        error["message"].as_str().unwrap().contains(message_part),
        "{error}"
    );
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Policy);
    assert!(
        close.reason.starts_with("invalid_token"),
        "{}",
        close.reason
    );
    assert!(
        link.poll().is_empty(),
        "a refused client never reaches the host"
    );
    assert_eq!(gateway.metrics().auth_failures, 1);
}

#[tokio::test]
async fn plain_name_in_signed_mode_is_refused_and_closed() {
    expect_token_refused("Mallory", "malformed").await;
}

#[tokio::test]
async fn token_signed_with_another_secret_is_refused_and_closed() {
    let token = mint_token(
        b"some-other-secret-0123456789",
        &Claims {
            user_id: "x".into(),
            name: "x".into(),
            role: Role::Admin,
            expires_at: u64::MAX,
            campaign: None,
        },
    );
    expect_token_refused(&token, "signature").await;
}

#[tokio::test]
async fn expired_token_is_refused_and_closed() {
    let token = mint_token(
        SECRET,
        &Claims {
            user_id: "x".into(),
            name: "x".into(),
            role: Role::Player,
            expires_at: 1,
            campaign: None,
        },
    );
    expect_token_refused(&token, "expired").await;
}

fn player_token(secret: &[u8], name: &str, campaign: Option<&str>) -> String {
    mint_token(
        secret,
        &Claims {
            user_id: name.into(),
            name: name.into(),
            role: Role::Player,
            expires_at: nexus_gateway::auth::unix_now() + 3600,
            campaign: campaign.map(str::to_string),
        },
    )
}

async fn joined_name(link: &nexus_gateway::CampaignLink) -> String {
    let HostEvent::ClientJoined { name, .. } =
        wait_event(link, |e| matches!(e, HostEvent::ClientJoined { .. })).await
    else {
        unreachable!()
    };
    name
}

#[tokio::test]
async fn a_token_bound_to_one_campaign_cannot_join_another() {
    let gateway = start(signed_config());
    let arena = gateway.open_campaign("arena").unwrap();
    let lobby = gateway.open_campaign("lobby").unwrap();
    let token = player_token(SECRET, "Ada", Some("arena"));

    let mut intruder = connect(&gateway).await;
    intruder.join("lobby", &token).await;
    let error = intruder.next_error().await;
    assert_eq!(error["code"], "invalid_token");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(r#"campaign "arena", not "lobby""#),
        "{message}"
    );
    assert_eq!(intruder.expect_close().await.code, CloseCode::Policy);
    assert!(
        lobby.poll().is_empty(),
        "the refused client never reaches lobby's host"
    );
    assert_eq!(gateway.metrics().auth_failures, 1);

    // The same token joins its own campaign, and an unbound token joins either.
    let mut player = connect(&gateway).await;
    player.join("arena", &token).await;
    assert_eq!(joined_name(&arena).await, "Ada");
    let mut roamer = connect(&gateway).await;
    roamer
        .join("lobby", &player_token(SECRET, "Bo", None))
        .await;
    assert_eq!(joined_name(&lobby).await, "Bo");
    assert_eq!(gateway.metrics().auth_failures, 1);
}

#[tokio::test]
async fn during_a_key_rotation_tokens_of_both_secrets_join_and_the_old_ones_are_counted() {
    const NEW_SECRET: &[u8] = b"the-rotated-in-secret-0123456789";
    let mut config = signed_config();
    config.auth = nexus_gateway::AuthMode::signed(NEW_SECRET);
    config.auth.set_previous_secret(Some(SECRET.to_vec()));
    let gateway = start(config);
    let link = gateway.open_campaign("0").unwrap();

    let mut old = connect(&gateway).await;
    old.join("0", &player_token(SECRET, "Old", None)).await;
    assert_eq!(joined_name(&link).await, "Old");
    let mut new = connect(&gateway).await;
    new.join("0", &player_token(NEW_SECRET, "New", None)).await;
    assert_eq!(joined_name(&link).await, "New");
    let metrics = gateway.metrics();
    assert_eq!(
        (metrics.auth_previous_secret, metrics.auth_failures),
        (1, 0)
    );
    assert!(
        http_get(&gateway, "/metrics")
            .await
            .contains("nexus_gateway_auth_previous_secret_total 1"),
        "the counter is exported"
    );

    // A token of neither secret is still refused.
    let mut stranger = connect(&gateway).await;
    stranger
        .join("0", &player_token(b"neither-secret-0123456789", "X", None))
        .await;
    assert_eq!(stranger.next_error().await["code"], "invalid_token");
    assert_eq!(gateway.metrics().auth_failures, 1);
}

#[tokio::test]
async fn environment_edits_need_the_admin_role() {
    let gateway = start(signed_config());
    let link = gateway.open_campaign("0").unwrap();
    let token = |role| {
        mint_token(
            SECRET,
            &Claims {
                user_id: format!("{role:?}"),
                name: format!("{role:?}"),
                role,
                expires_at: u64::MAX,
                campaign: None,
            },
        )
    };
    let edit = envelope(
        "environment:edit:v1:requested",
        "0",
        json!({"op": "set_time_of_day", "hours": 18.0}),
    );

    let mut player = connect(&gateway).await;
    join_fake(&mut player, &link, "0", &token(Role::Player)).await;
    player.send_json(&edit).await;
    let error = player.next_error().await;
    assert_eq!(error["code"], "forbidden");

    let mut admin = connect(&gateway).await;
    let admin_id = join_fake(&mut admin, &link, "0", &token(Role::Admin)).await;
    admin.send_json(&edit).await;
    let HostEvent::EnvironmentEdit {
        client_id,
        role,
        command,
    } = wait_event(&link, |e| matches!(e, HostEvent::EnvironmentEdit { .. })).await
    else {
        unreachable!()
    };
    assert_eq!((client_id, role), (admin_id, Role::Admin));
    assert_eq!(command, EnvironmentCommand::SetTimeOfDay { hours: 18.0 });
    // The player's edit never reached the host.
    assert!(link.poll().is_empty());
}

#[tokio::test]
async fn real_host_answers_environment_requests_and_applies_admin_edits() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("env").unwrap();
    let _host = HostThread::spawn(
        test_world(),
        link,
        CampaignHostConfig::default(),
        Duration::from_millis(2),
    );
    let mut admin = connect(&gateway).await;
    admin.join("env", "Admin").await;
    admin.next_of("session:welcome:v1:stream").await;
    admin
        .send_json(&envelope(
            "environment:edit:v1:requested",
            "env",
            json!({"op": "set_weather", "kind": "rain", "transition_seconds": 0.0}),
        ))
        .await;
    let weather = admin.next_of("environment:weather:v1:stream").await;
    assert_eq!(weather["payload"]["weather"]["kind"], "rain");
    admin
        .send_json(&envelope(
            "environment:state:v1:requested",
            "env",
            json!({}),
        ))
        .await;
    let state = admin.next_of("environment:state:v1:stream").await;
    assert_eq!(state["payload"]["weather"]["kind"], "rain");
    // A value the world refuses comes back as an error with the world's code.
    admin
        .send_json(&envelope(
            "environment:edit:v1:requested",
            "env",
            json!({"op": "set_time_of_day", "hours": 99.0}),
        ))
        .await;
    let error = admin.next_error().await;
    assert_eq!(error["code"], "invalid_argument");
}

#[tokio::test]
async fn leaving_tells_the_host_and_closes_normally() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    let client_id = join_fake(&mut client, &link, "0", "Ada").await;
    client
        .send_json(&envelope("session:leave:v1:requested", "0", json!({})))
        .await;
    let left = wait_event(&link, |e| matches!(e, HostEvent::ClientLeft { .. })).await;
    assert_eq!(left.client_id(), client_id);
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Normal);
    wait_metrics(&gateway, "no clients left", |m: &MetricsSnapshot| {
        m.campaigns.iter().all(|c| c.clients == 0) && m.connections_open == 0
    })
    .await;
}

#[tokio::test]
async fn disconnecting_tells_the_host() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut client = connect(&gateway).await;
    let client_id = join_fake(&mut client, &link, "0", "Ada").await;
    drop(client);
    let left = wait_event(&link, |e| matches!(e, HostEvent::ClientLeft { .. })).await;
    assert_eq!(left.client_id(), client_id);
}

#[tokio::test]
async fn binary_subprotocol_is_negotiated_and_streams_binary_state() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("bin").unwrap();
    let mut client = connect_with(&gateway, &["nexus.binary.v1", "nexus.json.v1"]).await;
    assert_eq!(client.subprotocol.as_deref(), Some("nexus.binary.v1"));
    let client_id = join_fake(&mut client, &link, "bin", "Ada").await;
    link.publish_state(world_state(4, 5, 0.0), vec![(client_id, 3)]);
    let message = client.next().await;
    let bytes: Vec<u8> = serde_json::from_value(message["bytes"].clone()).expect("a binary frame");
    let mut decoder = nexus_protocol::StateDecoder::default();
    let decoded = decoder.decode(&bytes).expect("a valid binary state");
    assert_eq!(decoded.tick, 4);
    assert_eq!(decoded.objects.len(), 5);
    // Other events stay JSON text.
    link.send_event(
        Target::Client(client_id),
        nexus_protocol::server::custom("bin", "hello", json!({})),
    );
    assert_eq!(client.next().await["type"], "system:custom:v1:stream");
}

#[tokio::test]
async fn closing_the_campaign_sends_its_clients_away() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("short").unwrap();
    let mut client = connect(&gateway).await;
    join_fake(&mut client, &link, "short", "Ada").await;
    drop(link);
    assert_eq!(client.next_error().await["code"], "shutting_down");
    let close = client.expect_close().await;
    assert_eq!(close.code, CloseCode::Away);
    assert!(gateway.campaigns().is_empty());
    // The id can be opened again.
    let _again = gateway.open_campaign("short").unwrap();
}
