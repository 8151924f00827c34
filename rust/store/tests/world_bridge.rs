//! A live `nexus_sim::World` persisted incrementally: full records, changes from the world's
//! change tracking, rebuilt worlds, through the SQLite store and the saver.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ScratchDir;
use nexus_sim::state::{
    BodyKind, ObjectDesc, ObjectId, ObjectState, Properties, Shape, WeatherKind, identity_rotation,
};
use nexus_sim::{
    EnvironmentCommand, InteractionKind, InteractionRequest, PlayerInput, World, WorldConfig,
};
use nexus_store::world_bridge::{
    ENVIRONMENT_MARKER, change_since, is_environment_record, object_record, player_record,
    player_records, record_from_world, restore_world,
};
use nexus_store::{
    CampaignRecord, CampaignStore, PlayerRecord, Saver, SaverConfig, SqliteStore, StoreError,
};
use serde_json::json;

const CAMPAIGN: &str = "bridge";

fn desc(kind: BodyKind, shape: Shape, position: [f32; 3]) -> ObjectDesc {
    ObjectDesc {
        kind,
        shape,
        position,
        rotation: identity_rotation(),
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

fn cube(position: [f32; 3], half: f32) -> ObjectDesc {
    desc(
        BodyKind::Dynamic,
        Shape::Box {
            half_extents: [half; 3],
        },
        position,
    )
}

fn properties(value: serde_json::Value) -> Properties {
    value.as_object().unwrap().clone()
}

fn step(world: &mut World, ticks: usize) {
    for _ in 0..ticks {
        world.step();
    }
}

fn walk(world: &mut World, client: u32, first_seq: u32, inputs: u32) {
    let batch: Vec<PlayerInput> = (first_seq..first_seq + inputs)
        .map(|seq| PlayerInput {
            seq,
            tick: None,
            movement: [0.3, 1.0],
            look: [0.0, 0.0, -1.0],
            jump: false,
            run: false,
        })
        .collect();
    assert!(world.queue_inputs(client, &batch).is_empty());
}

fn pickup(world: &mut World, client: u32, target: ObjectId) {
    world.request_interaction(
        client,
        InteractionRequest {
            request_id: 1,
            kind: InteractionKind::Pickup,
            target: Some(target),
            build: None,
            args: Default::default(),
        },
    );
}

struct Scene {
    world: World,
    terrain: ObjectId,
    boxes: Vec<ObjectId>,
    held: ObjectId,
}

/// Ground, an edited terrain with a ball on it, an environment rock, a row of boxes (one of
/// them heavy, rotated, with properties), a kinematic platform, a player holding a box, a
/// weather transition under way.
fn scene() -> Scene {
    let mut world = World::new(WorldConfig::default());
    world
        .add_object(desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [30.0, 0.5, 30.0],
            },
            [0.0, -0.5, 0.0],
        ))
        .unwrap();
    let terrain = world
        .add_environment_object(desc(
            BodyKind::Static,
            Shape::Heightfield {
                rows: 17,
                cols: 17,
                heights: vec![0.0; 17 * 17],
                size: [32.0, 1.0, 32.0],
            },
            [0.0, 0.0, 80.0],
        ))
        .unwrap();
    world
        .add_object(desc(
            BodyKind::Dynamic,
            Shape::Sphere { radius: 0.5 },
            [4.0, 0.5, 84.0],
        ))
        .unwrap();
    world
        .add_environment_object(desc(
            BodyKind::Static,
            Shape::Cylinder {
                half_height: 1.0,
                radius: 0.4,
            },
            [-8.0, 1.0, -8.0],
        ))
        .unwrap();
    let mut boxes = Vec::new();
    for i in 0..12 {
        let mut object = cube([i as f32 * 1.5 - 9.0, 0.25, 6.0], 0.25);
        if i == 3 {
            object.mass = Some(3.7);
            object.restitution = 0.25;
            object.rotation = [0.0, 0.382_683_43, 0.0, 0.923_879_5];
            object.properties = properties(json!({"color": "red", "environment": "desert"}));
        }
        boxes.push(world.add_object(object).unwrap());
    }
    world
        .add_object(desc(
            BodyKind::Kinematic,
            Shape::Box {
                half_extents: [1.0, 0.1, 1.0],
            },
            [10.0, 1.0, 0.0],
        ))
        .unwrap();
    let held = world.add_object(cube([0.0, 0.25, -1.5], 0.25)).unwrap();
    world.spawn_player(1, "ana", Some([0.0, 1.0, 0.0])).unwrap();
    step(&mut world, 200);
    pickup(&mut world, 1, held);
    world.edit_terrain([4.0, 84.0], 3.0, 1.5).unwrap();
    world
        .apply_environment(EnvironmentCommand::SetWeather {
            kind: WeatherKind::Rain,
            transition_seconds: 20.0,
        })
        .unwrap();
    step(&mut world, 10);
    assert_eq!(world.held_by(1), Some(held));
    world.drain_events();
    Scene {
        world,
        terrain,
        boxes,
        held,
    }
}

/// Changes of every kind: moves, removals (an avatar's too), additions, environment objects,
/// properties, a terrain edit, the clock, a walking player. (No wind: it wakes every light body.)
fn change_things(scene: &mut Scene, round: u32) {
    let world = &mut scene.world;
    let index = round as usize;
    world
        .set_object_pose(
            scene.boxes[index],
            [-9.0 + round as f32, 3.0, -6.0],
            [0.0, 0.0, 0.382_683_43, 0.923_879_5],
        )
        .unwrap();
    world.remove_object(scene.boxes[index + 6]).unwrap();
    let added = world
        .add_object(cube([round as f32 * 2.0, 2.0, -10.0], 0.3))
        .unwrap();
    world
        .set_properties(added, properties(json!({"round": round})))
        .unwrap();
    world
        .add_environment_object(desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [0.5, 0.5, 0.5],
            },
            [20.0, 0.5, round as f32 * 2.0],
        ))
        .unwrap();
    world
        .edit_terrain([-4.0 + round as f32, 76.0], 2.0, 0.5)
        .unwrap();
    world
        .apply_environment(EnvironmentCommand::SetTimeOfDay {
            hours: 6.0 + round as f32,
        })
        .unwrap();
    walk(world, 1, 1 + round * 20, 20);
    // A visitor comes and goes.
    let visitor = 10 + round;
    world
        .spawn_player(visitor, "visitor", Some([12.0, 1.0, 12.0]))
        .unwrap();
    step(world, 15);
    world.remove_player(visitor);
    step(world, 15);
}

/// The players' records, as a host keeps them.
fn host_players(world: &World) -> BTreeMap<String, PlayerRecord> {
    player_records(world)
}

#[test]
fn a_record_restores_to_a_world_that_records_the_same() {
    let scene = scene();
    let players = host_players(&scene.world);
    let record = record_from_world(CAMPAIGN, &scene.world, &players);
    record.validate().unwrap();
    assert_eq!(record.tick, scene.world.tick());
    assert_eq!(record.next_object_id, scene.world.next_object_id());
    assert_eq!(record.environment, scene.world.environment_state());
    let avatar = scene.world.avatar_of(1).unwrap();
    assert_eq!(record.objects.len(), scene.world.object_count() - 1);
    assert!(
        !record.objects.contains_key(&avatar),
        "avatars are players' business"
    );
    assert_eq!(record.players["ana"].held_items, vec![scene.held]);

    let restored = restore_world(&record, WorldConfig::default()).unwrap();
    assert_eq!(
        record_from_world(CAMPAIGN, &restored, &players),
        record,
        "full record -> restore -> record"
    );
    assert_eq!(
        restored.avatar_of(1),
        None,
        "players join again by themselves"
    );
    assert_eq!(restored.environment_state().terrain_id, Some(scene.terrain));
    assert_eq!(
        restored.terrain_height(4.0, 84.0),
        scene.world.terrain_height(4.0, 84.0)
    );
    // Through JSON (as the store keeps it) too.
    let text = serde_json::to_string(&record).unwrap();
    let decoded: CampaignRecord = serde_json::from_str(&text).unwrap();
    let restored = restore_world(&decoded, WorldConfig::default()).unwrap();
    assert_eq!(record_from_world(CAMPAIGN, &restored, &players), record);
}

#[test]
fn environment_objects_are_marked_in_the_description_only() {
    let scene = scene();
    let world = &scene.world;
    let terrain = object_record(world, scene.terrain).unwrap();
    assert!(is_environment_record(&terrain));
    assert_eq!(terrain.desc.properties[ENVIRONMENT_MARKER], json!(true));
    assert!(!terrain.state.properties.contains_key(ENVIRONMENT_MARKER));
    // A game property of the same name stays the game's.
    let heavy = object_record(world, scene.boxes[3]).unwrap();
    assert!(!is_environment_record(&heavy));
    assert!(!heavy.desc.properties.contains_key(ENVIRONMENT_MARKER));
    assert_eq!(heavy.state.properties["environment"], json!("desert"));
    assert_eq!(heavy.desc.mass, Some(3.7));
    // A held object is recorded free.
    let held = object_record(world, scene.held).unwrap();
    assert!(
        world
            .object_state(scene.held)
            .unwrap()
            .properties
            .contains_key("held_by")
    );
    assert!(!held.state.properties.contains_key("held_by"));
    assert!(!held.desc.properties.contains_key("held_by"));
    assert_eq!(object_record(world, world.avatar_of(1).unwrap()), None);

    let record = record_from_world(CAMPAIGN, world, &BTreeMap::new());
    let restored = restore_world(&record, WorldConfig::default()).unwrap();
    assert!(restored.is_environment_object(scene.terrain));
    assert!(!restored.is_environment_object(scene.boxes[3]));
    let heavy = restored.object_state(scene.boxes[3]).unwrap();
    assert_eq!(heavy.properties["environment"], json!("desert"));
    assert_eq!(heavy.properties["color"], json!("red"));
}

#[test]
fn applying_changes_gives_the_full_record_round_after_round() {
    let mut scene = scene();
    let mut players = host_players(&scene.world);
    let mut saved = record_from_world(CAMPAIGN, &scene.world, &players);
    for round in 0..4 {
        let since = saved.tick;
        change_things(&mut scene, round);
        let now = host_players(&scene.world);
        let players_changed: BTreeMap<String, PlayerRecord> = now
            .iter()
            .filter(|(name, record)| players.get(*name) != Some(*record))
            .map(|(name, record)| (name.clone(), record.clone()))
            .collect();
        players = now;
        let change = change_since(&scene.world, since, &players_changed);
        assert!(change.problems().is_empty(), "{:?}", change.problems());
        let fresh = record_from_world(CAMPAIGN, &scene.world, &players);
        // Only what changed: the sleeping boxes untouched this round are not in it.
        let untouched = scene.boxes[11];
        assert!(!change.upserted_objects.contains_key(&untouched));
        assert!(change.upserted_objects.len() < fresh.objects.len());
        assert!(
            change
                .removed_objects
                .contains(&scene.boxes[round as usize + 6])
        );
        saved.apply(&change);
        assert_eq!(saved, fresh, "round {round}");
    }
}

/// Hosts apply interactions and edits between two steps, after taking the change of the step
/// before: what they do then still carries that step's tick, and the next change must hold it.
#[test]
fn edits_after_a_change_was_taken_at_the_same_tick_are_in_the_next_change() {
    let mut scene = scene();
    let players = host_players(&scene.world);
    let mut saved = record_from_world(CAMPAIGN, &scene.world, &players);
    step(&mut scene.world, 5);
    let first = change_since(&scene.world, saved.tick, &BTreeMap::new());
    saved.apply(&first);
    let taken_at = scene.world.tick();

    // No step in between: the same tick.
    let removed = scene.boxes[11];
    scene.world.remove_object(removed).unwrap();
    let built = scene
        .world
        .add_object(cube([30.0, 0.5, 30.0], 0.5))
        .unwrap();
    assert_eq!(scene.world.tick(), taken_at);

    let next = change_since(&scene.world, taken_at, &BTreeMap::new());
    assert!(
        next.removed_objects.contains(&removed),
        "the removal is saved"
    );
    assert!(
        next.upserted_objects.contains_key(&built),
        "the new object is saved"
    );
    saved.apply(&next);
    assert_eq!(saved, record_from_world(CAMPAIGN, &scene.world, &players));
}

#[test]
fn a_change_touches_only_the_rows_that_changed() {
    let dir = ScratchDir::new("bridge-rows");
    let mut world = World::new(WorldConfig::default());
    world
        .add_object(desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [60.0, 0.5, 60.0],
            },
            [0.0, -0.5, 0.0],
        ))
        .unwrap();
    let boxes: Vec<ObjectId> = (0..200)
        .map(|i| {
            let (x, z) = ((i % 20) as f32 * 2.5 - 25.0, (i / 20) as f32 * 2.5 - 25.0);
            world.add_object(cube([x, 0.25, z], 0.25)).unwrap()
        })
        .collect();
    world
        .spawn_player(1, "ana", Some([40.0, 1.0, 40.0]))
        .unwrap();
    step(&mut world, 200);
    assert!(
        boxes
            .iter()
            .all(|id| world.object_state(*id).unwrap().sleeping)
    );
    let mut store = SqliteStore::open(dir.path()).unwrap();
    let full = record_from_world(CAMPAIGN, &world, &BTreeMap::new());
    store.replace_campaign(&full).unwrap();

    let since = world.tick();
    world
        .set_object_pose(boxes[5], [0.0, 5.0, 40.0], identity_rotation())
        .unwrap();
    world.remove_object(boxes[77]).unwrap();
    let added = world.add_object(cube([-40.0, 3.0, 40.0], 0.5)).unwrap();
    walk(&mut world, 1, 1, 30); // the avatar moves every tick: not a campaign row
    step(&mut world, 5);
    world.remove_player(1);
    let change = change_since(&world, since, &BTreeMap::new());
    assert_eq!(
        change.upserted_objects.keys().copied().collect::<Vec<_>>(),
        vec![boxes[5], added]
    );
    assert_eq!(
        change.removed_objects.iter().copied().collect::<Vec<_>>(),
        vec![boxes[77]],
        "the avatar that left is not a removed object"
    );
    assert_eq!(change.row_count(), 3);
    let stats = store.save_change(CAMPAIGN, &change).unwrap();
    assert_eq!(
        (stats.objects_written, stats.objects_removed),
        (2, 1),
        "{stats:?}"
    );
    let loaded = store.load_campaign(CAMPAIGN).unwrap().unwrap();
    assert_eq!(
        loaded,
        record_from_world(CAMPAIGN, &world, &BTreeMap::new())
    );
}

#[test]
fn changes_saved_through_the_saver_load_into_the_same_world() {
    let dir = ScratchDir::new("bridge-saver");
    let mut scene = scene();
    let open = || Box::new(SqliteStore::open(dir.path()).unwrap());
    let config = SaverConfig {
        interval: Duration::from_millis(5),
        ..SaverConfig::default()
    };
    let (mut saver, loaded) = Saver::start(open(), CAMPAIGN, config).unwrap();
    assert!(loaded.is_none());
    let mut players = host_players(&scene.world);
    saver
        .submit_snapshot(record_from_world(CAMPAIGN, &scene.world, &players))
        .unwrap();
    let mut since = scene.world.tick();
    for round in 0..4 {
        change_things(&mut scene, round);
        // The player leaves in the last round: the host remembers it by name.
        if round == 3 {
            players.insert("ana".into(), player_record(&scene.world, 1).unwrap());
            scene.world.remove_player(1);
            step(&mut scene.world, 2);
        } else {
            players = host_players(&scene.world);
        }
        saver
            .submit_change(change_since(&scene.world, since, &players))
            .unwrap();
        since = scene.world.tick();
        if round == 1 {
            saver.flush(Duration::from_secs(10)).unwrap();
        }
    }
    saver.shutdown().unwrap();

    let loaded = SqliteStore::open(dir.path())
        .unwrap()
        .load_campaign(CAMPAIGN)
        .unwrap()
        .expect("saved");
    let expected = record_from_world(CAMPAIGN, &scene.world, &players);
    assert_eq!(loaded, expected);
    let restored = restore_world(&loaded, WorldConfig::default()).unwrap();
    assert_eq!(record_from_world(CAMPAIGN, &restored, &players), expected);
    let restorable = |state: ObjectState| ObjectState {
        sleeping: false,
        ..state
    };
    let original: Vec<ObjectState> = scene
        .world
        .snapshot(true)
        .objects
        .into_iter()
        .map(restorable)
        .collect();
    assert_eq!(restored.snapshot(true).objects, original);
    assert_eq!(
        restored.environment_state(),
        scene.world.environment_state()
    );
    assert_eq!(restored.tick(), scene.world.tick());
    // The player who left is remembered where it stood, holding what it held.
    let ana = &loaded.players["ana"];
    assert_eq!(ana.held_items, vec![scene.held]);
    assert!(restored.object_state(scene.held).is_some());
}

#[test]
fn a_change_after_forgotten_removals_still_gives_the_full_record() {
    let mut scene = scene();
    let saved = record_from_world(CAMPAIGN, &scene.world, &BTreeMap::new());
    let since = saved.tick;
    scene.world.remove_object(scene.boxes[0]).unwrap();
    // Removals are remembered for a minute of ticks (3600 at 60 Hz); a later one expires it.
    step(&mut scene.world, 3700);
    scene.world.remove_object(scene.boxes[1]).unwrap();
    step(&mut scene.world, 1);
    assert!(!scene.world.removals_complete_since(since));
    let change = change_since(&scene.world, since, &BTreeMap::new());
    assert!(change.removed_objects.contains(&scene.boxes[0]));
    assert!(change.removed_objects.contains(&scene.boxes[1]));
    let mut applied = saved.clone();
    applied.apply(&change);
    assert_eq!(
        applied,
        record_from_world(CAMPAIGN, &scene.world, &BTreeMap::new())
    );
}

#[test]
fn a_record_the_world_refuses_is_reported_with_every_problem() {
    let scene = scene();
    let record = record_from_world(CAMPAIGN, &scene.world, &BTreeMap::new());

    // A heightfield cannot be dynamic: valid for the store, refused by the world.
    let mut bad = record.clone();
    for id in [scene.terrain, scene.boxes[2]] {
        let object = bad.objects.get_mut(&id).unwrap();
        object.desc.kind = BodyKind::Dynamic;
        object.state.kind = BodyKind::Dynamic;
        object.desc.shape = Shape::Heightfield {
            rows: 2,
            cols: 2,
            heights: vec![0.0; 4],
            size: [1.0, 1.0, 1.0],
        };
    }
    bad.environment.terrain_id = None;
    let error = restore_world(&bad, WorldConfig::default()).unwrap_err();
    let StoreError::InvalidRecord { campaign, problems } = &error else {
        panic!("{error}");
    };
    assert_eq!(campaign, CAMPAIGN);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains(&format!("object {}", scene.terrain)));
    assert!(problems.iter().all(|p| p.contains("invalid_shape")));

    // What the store itself refuses is refused before building anything.
    let mut reused = record.clone();
    reused.next_object_id = 2;
    let error = restore_world(&reused, WorldConfig::default()).unwrap_err();
    assert_eq!(error.code(), "invalid_record");
    assert!(error.to_string().contains("next_object_id"), "{error}");

    // Weather the store accepts but the world does not (wind faster than it allows).
    let mut stormy = record;
    stormy.environment.weather.wind = [500.0, 0.0, 0.0];
    let error = restore_world(&stormy, WorldConfig::default()).unwrap_err();
    assert!(
        error.to_string().contains("environment: invalid_argument"),
        "{error}"
    );
}

#[test]
fn a_player_record_remembers_position_rotation_and_held_item() {
    let mut world = World::new(WorldConfig::default());
    world
        .add_object(desc(
            BodyKind::Static,
            Shape::Box {
                half_extents: [20.0, 0.5, 20.0],
            },
            [0.0, -0.5, 0.0],
        ))
        .unwrap();
    let crate_id = world.add_object(cube([0.0, 0.25, -1.5], 0.25)).unwrap();
    world.spawn_player(4, "bo", Some([0.0, 1.0, 0.0])).unwrap();
    world.spawn_player(5, "cy", Some([5.0, 1.0, 5.0])).unwrap();
    step(&mut world, 30);
    pickup(&mut world, 4, crate_id);
    walk(&mut world, 4, 1, 20);
    step(&mut world, 25);
    let bo = player_record(&world, 4).unwrap();
    let character = world.character_of(4).unwrap();
    assert_eq!(bo.position, character.position);
    assert_eq!(bo.rotation, character.rotation());
    assert!(bo.position[2] < -0.5, "walked: {bo:?}");
    assert_eq!(bo.held_items, vec![crate_id]);
    assert_eq!(bo.last_seen_tick, world.tick());
    assert_eq!(player_record(&world, 99), None);
    let all = player_records(&world);
    assert_eq!(all.keys().collect::<Vec<_>>(), vec!["bo", "cy"]);
    assert_eq!(all["bo"], bo);
    assert!(all["cy"].held_items.is_empty());
}
