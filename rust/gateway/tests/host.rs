//! `CampaignHost` driven tick by tick by the test, with real clients: object updates and their
//! permissions, actions for the embedding code, refused joins, the snapshot rate.

mod common;

use std::time::Duration;

use common::*;
use nexus_gateway::{CampaignHost, CampaignHostConfig, Claims, Role, mint_token};
use nexus_sim::{BodyKind, ObjectDesc, Shape};
use serde_json::{Value, json};

fn token(name: &str, role: Role) -> String {
    mint_token(
        SECRET,
        &Claims {
            user_id: name.into(),
            name: name.into(),
            role,
            expires_at: u64::MAX,
            campaign: None,
        },
    )
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

fn crate_desc() -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Dynamic,
        shape: Shape::Box {
            half_extents: [0.5, 0.5, 0.5],
        },
        position: [5.0, 0.5, 5.0],
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: Some(10.0),
        friction: 0.5,
        restitution: 0.0,
        properties: Default::default(),
    }
}

#[tokio::test]
async fn object_updates_need_an_admin_and_reach_everyone() {
    let gateway = start(signed_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut world = test_world();
    let crate_id = world.add_object(crate_desc()).unwrap();
    let mut host = CampaignHost::new(world, link, CampaignHostConfig::default());

    let mut player = connect(&gateway).await;
    player.join("0", &token("Pat", Role::Player)).await;
    tick_until(&mut host, &mut player, "session:welcome:v1:stream").await;
    let mut admin = connect(&gateway).await;
    admin.join("0", &token("Ann", Role::Admin)).await;
    tick_until(&mut host, &mut admin, "session:welcome:v1:stream").await;

    let update = envelope(
        "physics:object_update:v1:requested",
        "0",
        json!({"id": crate_id, "position": [7.0, 0.5, 5.0], "properties": {"color": "red"}}),
    );
    player.send_json(&update).await;
    let error = tick_until(&mut host, &mut player, "system:error:v1:stream").await;
    assert_eq!(error["payload"]["code"], "forbidden");

    admin.send_json(&update).await;
    // Everyone sees the update, the player included.
    for client in [&mut admin, &mut player] {
        let updated = tick_until(&mut host, client, "physics:object_update:v1:stream").await;
        let object = &updated["payload"]["object"];
        assert_eq!(object["id"], crate_id);
        assert_eq!(object["properties"]["color"], "red");
        assert!((object["position"][0].as_f64().unwrap() - 7.0).abs() < 0.01);
    }
    assert_eq!(
        host.world().object_state(crate_id).unwrap().properties["color"],
        "red"
    );
}

#[tokio::test]
async fn actions_are_kept_for_the_embedding_code() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let mut host = CampaignHost::new(test_world(), link, CampaignHostConfig::default());
    let mut client = connect(&gateway).await;
    client.join("0", "Ada").await;
    let welcome = tick_until(&mut host, &mut client, "session:welcome:v1:stream").await;
    let client_id = welcome["payload"]["client_id"].as_u64().unwrap() as u32;
    client
        .send_json(&envelope(
            "physics:action:v1:requested",
            "0",
            json!({"action": "wave", "args": {"hand": "left"}}),
        ))
        .await;
    client.round_trip("0", 1).await; // the action was read before the pong was sent
    let deadline = tokio::time::Instant::now() + WAIT;
    let actions = loop {
        host.tick();
        let actions = host.drain_actions();
        if !actions.is_empty() {
            break actions;
        }
        assert!(tokio::time::Instant::now() < deadline, "no action in time");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(actions.len(), 1);
    let (from, action) = &actions[0];
    assert_eq!(*from, client_id);
    assert_eq!(action.action, "wave");
    assert_eq!(action.args["hand"], "left");
}

#[tokio::test]
async fn a_join_the_world_refuses_comes_back_as_an_error() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let config = CampaignHostConfig {
        spawn_position: Some([f32::NAN, 0.0, 0.0]),
        ..CampaignHostConfig::default()
    };
    let mut host = CampaignHost::new(test_world(), link, config);
    let mut client = connect(&gateway).await;
    client.join("0", "Ada").await;
    let error = tick_until(&mut host, &mut client, "system:error:v1:stream").await;
    assert_eq!(error["payload"]["code"], "invalid_position");
    assert!(host.clients().is_empty());
}

#[tokio::test]
async fn snapshots_follow_the_state_rate_and_tick_time_is_reported() {
    let gateway = start(dev_config());
    let link = gateway.open_campaign("0").unwrap();
    let config = CampaignHostConfig {
        state_rate: 20,
        ..CampaignHostConfig::default()
    };
    let mut host = CampaignHost::new(test_world(), link, config);
    // 60 Hz world, 20 states per second: one snapshot every third tick, from the first.
    let published: Vec<bool> = (0..9).map(|_| host.tick().snapshot_published).collect();
    assert_eq!(
        published,
        [true, false, false, true, false, false, true, false, false]
    );
    wait_metrics(&gateway, "9 ticks and 3 snapshots", |m| {
        m.campaigns[0].ticks == 9 && m.campaigns[0].snapshots_published == 3
    })
    .await;
    // The welcome tells clients the rate.
    let mut client = connect(&gateway).await;
    client.join("0", "Ada").await;
    let welcome = tick_until(&mut host, &mut client, "session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["state_rate"], 20);
    assert_eq!(welcome["payload"]["tick_rate"], 60);
}
