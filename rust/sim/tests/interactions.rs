//! Every interaction, every validation rule and failure path, the veto hook and custom handlers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use nexus_sim::*;
use serde_json::{Value, json};

/// Ground, player 1 at the origin facing -Z, player 2 three metres to the right.
fn scene() -> World {
    let mut world = world_with_ground();
    world.spawn_player(1, "one", Some([0.0, 1.0, 0.0])).unwrap();
    world.spawn_player(2, "two", Some([3.0, 1.0, 0.0])).unwrap();
    run(&mut world, 20);
    world.drain_events();
    world
}

fn req(kind: InteractionKind, target: Option<ObjectId>) -> InteractionRequest {
    InteractionRequest {
        request_id: 42,
        kind,
        target,
        build: None,
        args: Default::default(),
    }
}

/// Sends one request, steps once, returns its result.
fn ask(world: &mut World, client: ClientId, request: InteractionRequest) -> InteractionResult {
    world.drain_events();
    world.request_interaction(client, request);
    world.step();
    let mut got = results(world);
    assert_eq!(got.len(), 1, "exactly one result per request");
    let result = got.pop().unwrap();
    assert_eq!(result.client_id, client);
    assert_eq!(result.request_id, 42);
    result
}

fn assert_fails(result: &InteractionResult, code: &str) {
    assert!(!result.success, "expected {code}, got success {result:?}");
    assert_eq!(result.code, code, "{result:?}");
    assert!(!result.message.is_empty());
}

fn box_near(world: &mut World) -> ObjectId {
    world.add_object(crate_at([0.0, 0.25, -1.5], 0.25)).unwrap()
}

fn with_props(mut desc: ObjectDesc, props: Value) -> ObjectDesc {
    desc.properties = props.as_object().unwrap().clone();
    desc
}

// ── no avatar ────────────────────────────────────────────────────────────

#[test]
fn every_kind_needs_an_avatar() {
    let mut world = scene();
    let b = box_near(&mut world);
    for kind in [
        InteractionKind::Pickup,
        InteractionKind::Drop,
        InteractionKind::Use,
        InteractionKind::Build,
        InteractionKind::Destroy,
        InteractionKind::Custom("x".into()),
    ] {
        let r = ask(&mut world, 99, req(kind, Some(b)));
        assert_fails(&r, "no_avatar");
    }
}

// ── pickup ───────────────────────────────────────────────────────────────

#[test]
fn pickup_success_carries_the_object_in_front_of_the_holder() {
    let mut world = scene();
    let b = box_near(&mut world);
    let r = ask(&mut world, 1, req(InteractionKind::Pickup, Some(b)));
    assert!(r.success, "{r:?}");
    assert_eq!(r.code, "ok");
    assert_eq!(r.target, Some(b));
    assert_eq!(world.held_by(1), Some(b));
    assert_eq!(world.holder_of(b), Some(1));
    let state = world.object_state(b).unwrap();
    assert_eq!(state.properties.get("held_by"), Some(&json!(1)));
    // Walk 2 m along -Z: the box follows, hold_distance in front.
    let batch: Vec<_> = (1..=30).map(|s| input(s, [0.0, 1.0])).collect();
    world.queue_inputs(1, &batch);
    run(&mut world, 32);
    let me = world.character_of(1).unwrap().position;
    let held = world.object_state(b).unwrap().position;
    let hold = world.config().interaction.hold_distance;
    assert!(me[2] < -1.5, "walked: {me:?}");
    assert!(
        (held[2] - (me[2] - hold)).abs() < 0.05,
        "held {held:?} me {me:?}"
    );
    assert!((held[0] - me[0]).abs() < 0.05);
}

#[test]
fn pickup_needs_a_target_that_exists() {
    let mut world = scene();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Pickup, None)),
        "missing_target",
    );
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Pickup, Some(9999))),
        "unknown_object",
    );
}

#[test]
fn pickup_refuses_static_kinematic_avatars_and_flagged_objects() {
    let mut world = scene();
    let mut fixed = crate_at([0.0, 0.25, -1.5], 0.25);
    fixed.kind = BodyKind::Static;
    let fixed = world.add_object(fixed).unwrap();
    let mut kin = crate_at([1.0, 0.25, -1.5], 0.25);
    kin.kind = BodyKind::Kinematic;
    let kin = world.add_object(kin).unwrap();
    let flagged = world
        .add_object(with_props(
            crate_at([-1.0, 0.25, -1.5], 0.25),
            json!({"pickupable": false}),
        ))
        .unwrap();
    let other_avatar = world.avatar_of(2).unwrap();
    for target in [fixed, kin, flagged, other_avatar] {
        assert_fails(
            &ask(&mut world, 1, req(InteractionKind::Pickup, Some(target))),
            "not_pickupable",
        );
    }
}

#[test]
fn pickup_refuses_held_objects_full_hands_heavy_and_far_objects() {
    let mut world = scene();
    let b = box_near(&mut world);
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))),
        "already_held",
    );
    assert_fails(
        &ask(&mut world, 2, req(InteractionKind::Pickup, Some(b))),
        "held_by_other",
    );
    let second = world.add_object(crate_at([-1.0, 0.25, 0.5], 0.25)).unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Pickup, Some(second))),
        "hands_full",
    );
    let mut heavy = crate_at([3.0, 0.25, -1.5], 0.25);
    heavy.mass = Some(5000.0);
    let heavy = world.add_object(heavy).unwrap();
    assert_fails(
        &ask(&mut world, 2, req(InteractionKind::Pickup, Some(heavy))),
        "too_heavy",
    );
    let far = world
        .add_object(crate_at([3.0, 0.25, -20.0], 0.25))
        .unwrap();
    assert_fails(
        &ask(&mut world, 2, req(InteractionKind::Pickup, Some(far))),
        "out_of_reach",
    );
}

// ── drop ────────────────────────────────────────────────────────────────

#[test]
fn drop_failure_paths() {
    let mut world = scene();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Drop, None)),
        "nothing_held",
    );
    let b = box_near(&mut world);
    let other = world.add_object(crate_at([-1.0, 0.25, 0.5], 0.25)).unwrap();
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Drop, Some(other))),
        "not_held",
    );
    for bad in [
        json!("fast"),
        json!([1.0, 2.0]),
        json!([1.0, "x", 0.0]),
        json!([100.0, 0.0, 0.0]),
    ] {
        let mut r = req(InteractionKind::Drop, None);
        r.args.insert("velocity".into(), bad);
        assert_fails(&ask(&mut world, 1, r), "invalid_args");
    }
    assert_eq!(world.held_by(1), Some(b), "still held after failed drops");
}

#[test]
fn drop_with_a_throw_velocity_releases_a_dynamic_body() {
    let mut world = scene();
    let b = box_near(&mut world);
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    run(&mut world, 5);
    let mut r = req(InteractionKind::Drop, Some(b));
    r.args.insert("velocity".into(), json!([0.0, 3.0, -6.0]));
    let result = ask(&mut world, 1, r);
    assert!(result.success, "{result:?}");
    assert_eq!(world.held_by(1), None);
    assert_eq!(world.holder_of(b), None);
    let state = world.object_state(b).unwrap();
    assert!(state.properties.get("held_by").is_none());
    assert!(state.velocity[2] < -5.0, "thrown: {state:?}");
    run(&mut world, 120);
    let landed = world.object_state(b).unwrap();
    assert!(
        landed.position[2] < -4.0,
        "flew forward and fell: {landed:?}"
    );
    assert!(landed.position[1] < 0.5);
}

// ── use ─────────────────────────────────────────────────────────────────

#[test]
fn use_toggles_active_and_validates() {
    let mut world = scene();
    let b = box_near(&mut world);
    let r = ask(&mut world, 1, req(InteractionKind::Use, Some(b)));
    assert!(r.success);
    assert_eq!(r.data.get("active"), Some(&json!(true)));
    assert_eq!(
        world.object_state(b).unwrap().properties.get("active"),
        Some(&json!(true))
    );
    let r = ask(&mut world, 1, req(InteractionKind::Use, Some(b)));
    assert_eq!(r.data.get("active"), Some(&json!(false)));

    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, None)),
        "missing_target",
    );
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, Some(777))),
        "unknown_object",
    );
    let locked = world
        .add_object(with_props(
            crate_at([-1.0, 0.25, -1.0], 0.25),
            json!({"usable": false}),
        ))
        .unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, Some(locked))),
        "not_usable",
    );
    let avatar2 = world.avatar_of(2).unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, Some(avatar2))),
        "not_usable",
    );
    let far = world
        .add_object(crate_at([0.0, 0.25, -30.0], 0.25))
        .unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, Some(far))),
        "out_of_reach",
    );
    let shared = world.add_object(crate_at([1.5, 0.25, -1.0], 0.25)).unwrap();
    assert!(ask(&mut world, 2, req(InteractionKind::Pickup, Some(shared))).success);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Use, Some(shared))),
        "held_by_other",
    );
}

// ── build ───────────────────────────────────────────────────────────────

fn build_req(desc: ObjectDesc) -> InteractionRequest {
    let mut r = req(InteractionKind::Build, None);
    r.build = Some(desc);
    r
}

#[test]
fn build_creates_an_owned_object() {
    let mut world = scene();
    world.drain_events();
    world.request_interaction(1, build_req(crate_at([0.0, 0.5, -3.0], 0.5)));
    world.step();
    let events = world.drain_events();
    let added = events
        .iter()
        .find_map(|e| match e {
            WorldEvent::ObjectAdded { object, .. } => Some(object.id),
            _ => None,
        })
        .expect("object_added event");
    let result = events
        .iter()
        .find_map(|e| match e {
            WorldEvent::InteractionResult(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(result.success, "{result:?}");
    assert_eq!(result.data.get("object_id"), Some(&json!(added)));
    assert_eq!(result.target, Some(added));
    assert_eq!(world.owner_of(added), Some(1));
    assert_eq!(
        world.object_state(added).unwrap().properties.get("owner"),
        Some(&json!(1))
    );
}

#[test]
fn build_failure_paths() {
    let mut config = WorldConfig::default();
    config.interaction.max_built_per_client = 1;
    let mut world = World::new(config);
    world.add_object(ground()).unwrap();
    world.spawn_player(1, "one", Some([0.0, 1.0, 0.0])).unwrap();
    run(&mut world, 10);

    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Build, None)),
        "missing_build",
    );
    let mut player_kind = crate_at([0.0, 0.5, -3.0], 0.5);
    player_kind.kind = BodyKind::Player;
    assert_fails(
        &ask(&mut world, 1, build_req(player_kind)),
        "invalid_object",
    );
    let mut kinematic = crate_at([0.0, 0.5, -3.0], 0.5);
    kinematic.kind = BodyKind::Kinematic;
    assert_fails(&ask(&mut world, 1, build_req(kinematic)), "invalid_object");
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([0.0, 0.5, -3.0], -1.0))),
        "invalid_object",
    );
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([0.0, 0.5, -50.0], 0.5))),
        "out_of_reach",
    );
    // Overlapping the ground.
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([0.0, 0.0, -3.0], 0.5))),
        "overlaps",
    );
    // Overlapping the builder.
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([0.0, 1.0, 0.0], 0.3))),
        "overlaps",
    );
    // Resting exactly on the ground is not an overlap.
    assert!(ask(&mut world, 1, build_req(crate_at([0.0, 0.5, -3.0], 0.5))).success);
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([3.0, 0.6, -3.0], 0.5))),
        "limit_reached",
    );
}

// ── destroy ─────────────────────────────────────────────────────────────

#[test]
fn destroy_permissions() {
    let mut world = scene();
    let foreign = box_near(&mut world);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(foreign))),
        "forbidden",
    );
    let avatar2 = world.avatar_of(2).unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(avatar2))),
        "forbidden",
    );
    world.set_admin(1, true);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(avatar2))),
        "forbidden",
    );
    world.set_admin(1, false);

    // Destructible objects: anyone near enough.
    let crate_ = world
        .add_object(with_props(
            crate_at([1.0, 0.25, -1.0], 0.25),
            json!({"destructible": true}),
        ))
        .unwrap();
    let r = ask(&mut world, 1, req(InteractionKind::Destroy, Some(crate_)));
    assert!(r.success, "{r:?}");
    assert!(world.object_state(crate_).is_none());

    // The owner may destroy what it built.
    let r = ask(&mut world, 1, build_req(crate_at([0.0, 0.6, -2.5], 0.4)));
    let built = r.data["object_id"].as_u64().unwrap() as ObjectId;
    assert_fails(
        &ask(&mut world, 2, req(InteractionKind::Destroy, Some(built))),
        "forbidden",
    );
    let r = ask(&mut world, 1, req(InteractionKind::Destroy, Some(built)));
    assert!(r.success);

    // Admins destroy anything but avatars and the terrain, from anywhere.
    let far = world
        .add_object(crate_at([0.0, 0.25, -40.0], 0.25))
        .unwrap();
    world.set_admin(2, true);
    assert!(world.is_admin(2));
    let r = ask(&mut world, 2, req(InteractionKind::Destroy, Some(far)));
    assert!(r.success, "{r:?}");
    let events_removed = world.removed_since(0);
    assert!(events_removed.contains(&far));
}

#[test]
fn destroy_failure_paths() {
    let mut world = scene();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, None)),
        "missing_target",
    );
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(5000))),
        "unknown_object",
    );
    let far = world
        .add_object(with_props(
            crate_at([0.0, 0.25, -40.0], 0.25),
            json!({"destructible": true}),
        ))
        .unwrap();
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(far))),
        "out_of_reach",
    );
    let held = world
        .add_object(with_props(
            crate_at([3.0, 0.25, -1.5], 0.25),
            json!({"destructible": true}),
        ))
        .unwrap();
    assert!(ask(&mut world, 2, req(InteractionKind::Pickup, Some(held))).success);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(held))),
        "held_by_other",
    );
    // Terrain cannot be destroyed, even by an admin.
    let terrain = world
        .add_environment_object(ObjectDesc {
            kind: BodyKind::Static,
            shape: Shape::Heightfield {
                rows: 3,
                cols: 3,
                heights: vec![0.0; 9],
                size: [4.0, 1.0, 4.0],
            },
            position: [0.0, -0.2, -2.0],
            rotation: identity_rotation(),
            mass: None,
            friction: 0.5,
            restitution: 0.0,
            properties: Default::default(),
        })
        .unwrap();
    world.set_admin(1, true);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Destroy, Some(terrain))),
        "forbidden",
    );
}

// ── holder leaves, removal while held ───────────────────────────────────

#[test]
fn a_held_object_drops_when_its_holder_leaves() {
    let mut world = scene();
    let b = box_near(&mut world);
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    run(&mut world, 5);
    let lifted = world.object_state(b).unwrap().position;
    assert!(lifted[1] > 0.5, "carried up: {lifted:?}");
    world.remove_player(1);
    assert_eq!(world.avatar_of(1), None);
    assert_eq!(world.holder_of(b), None);
    run(&mut world, 120);
    let fallen = world.object_state(b).unwrap();
    assert!(fallen.position[1] < 0.3, "fell after release: {fallen:?}");
    assert!(fallen.properties.get("held_by").is_none());
    let avatar_left = world
        .drain_events()
        .into_iter()
        .any(|e| matches!(e, WorldEvent::ObjectRemoved { reason, .. } if reason == "player_left"));
    assert!(avatar_left, "the avatar's removal is an event");
}

#[test]
fn removing_a_held_object_empties_the_holders_hands() {
    let mut world = scene();
    let b = box_near(&mut world);
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    world.remove_object(b).unwrap();
    assert_eq!(world.held_by(1), None);
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Drop, None)),
        "nothing_held",
    );
}

// ── veto ────────────────────────────────────────────────────────────────

#[test]
fn the_veto_hook_sees_only_valid_requests_and_can_refuse_them() {
    let mut world = scene();
    let b = box_near(&mut world);
    let locked = world
        .add_object(with_props(
            crate_at([-0.8, 0.25, -1.2], 0.25),
            json!({"locked": true}),
        ))
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    world.set_interaction_veto(Some(Box::new(move |w: &World, _client, request| {
        seen.fetch_add(1, Ordering::SeqCst);
        let locked = request
            .target
            .and_then(|t| w.object_state(t))
            .is_some_and(|s| s.properties.get("locked") == Some(&json!(true)));
        locked.then(|| "this object is locked by the game".to_string())
    })));
    let r = ask(&mut world, 1, req(InteractionKind::Pickup, Some(locked)));
    assert_fails(&r, "vetoed");
    assert_eq!(r.message, "this object is locked by the game");
    assert_eq!(
        world.holder_of(locked),
        None,
        "a vetoed pickup changes nothing"
    );
    assert_fails(
        &ask(&mut world, 1, req(InteractionKind::Pickup, Some(999))),
        "unknown_object",
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "invalid requests never reach the veto"
    );
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(b))).success);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    world.set_interaction_veto(None);
    world.remove_player(1);
    world
        .spawn_player(1, "again", Some([0.0, 1.0, 0.0]))
        .unwrap();
    run(&mut world, 5);
    assert!(ask(&mut world, 1, req(InteractionKind::Pickup, Some(locked))).success);
}

// ── custom handlers ─────────────────────────────────────────────────────

#[test]
fn custom_interactions_run_registered_handlers_with_world_access() {
    let mut world = scene();
    let b = box_near(&mut world);
    assert_fails(
        &ask(
            &mut world,
            1,
            req(InteractionKind::Custom("kick".into()), Some(b)),
        ),
        "unknown_interaction",
    );
    world
        .register_interaction(
            "kick",
            Box::new(|w: &mut World, _client, request: &InteractionRequest| {
                let Some(target) = request.target else {
                    return InteractionReply::fail("missing_target", "kick what?");
                };
                match w.apply_impulse(target, [0.0, 0.0, -5.0]) {
                    Ok(()) => {
                        let mut data = serde_json::Map::new();
                        data.insert("kicked".into(), json!(target));
                        InteractionReply::ok(data)
                    }
                    Err(e) => InteractionReply::fail(e.code, e.message),
                }
            }),
        )
        .unwrap();
    assert_eq!(world.custom_interactions(), vec!["kick".to_string()]);
    let r = ask(
        &mut world,
        1,
        req(InteractionKind::Custom("kick".into()), Some(b)),
    );
    assert!(r.success, "{r:?}");
    assert_eq!(r.data.get("kicked"), Some(&json!(b)));
    assert!(world.object_state(b).unwrap().velocity[2] < -1.0);
    let r = ask(
        &mut world,
        1,
        req(InteractionKind::Custom("kick".into()), None),
    );
    assert_fails(&r, "missing_target");

    // The veto applies to custom kinds too.
    world.set_interaction_veto(Some(Box::new(|_, _, _| Some("no kicking".into()))));
    assert_fails(
        &ask(
            &mut world,
            1,
            req(InteractionKind::Custom("kick".into()), Some(b)),
        ),
        "vetoed",
    );
    assert!(world.unregister_interaction("kick"));
    assert!(!world.unregister_interaction("kick"));
}

#[test]
fn custom_names_must_not_shadow_built_ins() {
    let mut world = scene();
    let handler =
        || -> InteractionHandler { Box::new(|_, _, _| InteractionReply::ok(Default::default())) };
    let err = world.register_interaction("pickup", handler()).unwrap_err();
    assert_eq!(err.code, "reserved_name");
    let err = world.register_interaction("  ", handler()).unwrap_err();
    assert_eq!(err.code, "invalid_argument");
}

#[test]
fn every_request_of_a_tick_gets_one_result_in_order() {
    let mut world = scene();
    let b = box_near(&mut world);
    for (i, kind) in [
        InteractionKind::Pickup,
        InteractionKind::Drop,
        InteractionKind::Use,
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = req(kind, Some(b));
        r.request_id = i as u32;
        world.request_interaction(1, r);
    }
    world.step();
    let got = results(&mut world);
    let ids: Vec<u32> = got.iter().map(|r| r.request_id).collect();
    assert_eq!(ids, vec![0, 1, 2]);
    assert!(got.iter().all(|r| r.success), "{got:?}");
}

#[test]
fn building_on_a_heightfield_terrain_allows_touching_but_not_sinking() {
    let mut world = World::new(WorldConfig::default());
    world
        .add_environment_object(ObjectDesc {
            kind: BodyKind::Static,
            shape: Shape::Heightfield {
                rows: 9,
                cols: 9,
                heights: vec![0.0; 81],
                size: [40.0, 1.0, 40.0],
            },
            position: [0.0, 0.0, 0.0],
            rotation: identity_rotation(),
            mass: None,
            friction: 0.5,
            restitution: 0.0,
            properties: Default::default(),
        })
        .unwrap();
    world.spawn_player(1, "one", Some([0.0, 1.0, 0.0])).unwrap();
    run(&mut world, 10);
    assert_fails(
        &ask(&mut world, 1, build_req(crate_at([0.0, 0.3, -3.0], 0.5))),
        "overlaps",
    );
    assert!(ask(&mut world, 1, build_req(crate_at([0.0, 0.5, -3.0], 0.5))).success);
}

#[test]
fn a_flood_of_requests_is_cut_off_with_a_reason() {
    let mut world = scene();
    let b = box_near(&mut world);
    for i in 0..(MAX_PENDING_INTERACTIONS as u32 + 5) {
        let mut r = req(InteractionKind::Use, Some(b));
        r.request_id = i;
        world.request_interaction(1, r);
    }
    // The overflow is answered at once, before any step.
    let refused = results(&mut world);
    assert_eq!(refused.len(), 5);
    assert!(
        refused
            .iter()
            .all(|r| r.code == "too_many_requests" && !r.success)
    );
    // Another client is not affected.
    world.request_interaction(2, req(InteractionKind::Use, Some(b)));
    world.step();
    let done = results(&mut world);
    assert_eq!(done.len(), MAX_PENDING_INTERACTIONS + 1);
    assert!(done.iter().filter(|r| r.client_id == 1).all(|r| r.success));
    assert_eq!(done.iter().filter(|r| r.client_id == 2).count(), 1);
}
