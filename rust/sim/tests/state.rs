//! World state, delta tracking (`changed_since`) and interest (`objects_within`), each checked
//! against a brute-force reference.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use nexus_sim::*;

/// A pile of boxes (some falling, some resting) plus a couple of players walking about.
fn busy_world() -> World {
    let mut world = world_with_ground();
    let mut rng = particles::SplitMix64::new(7);
    for i in 0..120 {
        let x = rng.next_f32() * 60.0 - 30.0;
        let z = rng.next_f32() * 60.0 - 30.0;
        // Half on the ground (they sleep soon), half dropped from a height at staggered times.
        let y = if i % 2 == 0 {
            0.5
        } else {
            2.0 + rng.next_f32() * 10.0
        };
        world
            .add_object(crate_at([x, y, z], 0.25 + 0.25 * rng.next_f32()))
            .unwrap();
    }
    world.spawn_player(1, "a", Some([0.0, 1.0, 0.0])).unwrap();
    world.spawn_player(2, "b", Some([10.0, 1.0, 10.0])).unwrap();
    world
}

fn states(world: &World) -> BTreeMap<ObjectId, ObjectState> {
    world
        .snapshot(false)
        .objects
        .into_iter()
        .map(|o| (o.id, o))
        .collect()
}

#[test]
fn snapshot_has_the_design_shape() {
    let mut world = busy_world();
    run(&mut world, 3);
    assert_eq!(
        world.snapshot(false).timestamp,
        0.0,
        "no clock read by the world itself"
    );
    world.set_wall_clock(1_700_000_123.25);
    world.set_wall_clock(f64::NAN);
    world.set_wall_clock(-1.0);
    let snap = world.snapshot(true);
    assert_eq!(snap.tick, 3);
    assert_eq!(
        snap.timestamp, 1_700_000_123.25,
        "the host's time, bad ones ignored"
    );
    assert_eq!(snap.objects.len(), world.object_count());
    assert_eq!(snap.physics.body_count as usize, world.object_count());
    assert_eq!(snap.physics.tick_rate, 60);
    assert!(snap.objects.iter().all(|o| o.shape.is_some()));
    assert!(
        world
            .snapshot(false)
            .objects
            .iter()
            .all(|o| o.shape.is_none())
    );
    let json = serde_json::to_value(&snap).unwrap();
    for key in ["timestamp", "tick", "objects", "physics", "environment"] {
        assert!(json.get(key).is_some(), "{key}");
    }
    let first = &json["objects"][0];
    for key in [
        "id",
        "position",
        "rotation",
        "velocity",
        "angular_velocity",
        "properties",
    ] {
        assert!(first.get(key).is_some(), "{key}");
    }
}

#[test]
fn changed_since_matches_a_brute_force_reference() {
    let mut world = busy_world();
    let mut history: Vec<BTreeMap<ObjectId, ObjectState>> = vec![states(&world)];
    // Whether an object was awake (or existed freshly) at each tick.
    let mut awake: Vec<BTreeSet<ObjectId>> = vec![states(&world).keys().copied().collect()];
    for tick in 1..=240u32 {
        if tick % 40 == 0 {
            let batch: Vec<_> = (tick..tick + 20).map(|s| input(s, [0.5, 1.0])).collect();
            world.queue_inputs(1, &batch);
        }
        if tick == 100 {
            let id = world.object_ids()[5];
            world.apply_impulse(id, [0.0, 5.0, 0.0]).unwrap();
        }
        if tick == 150 {
            let id = world.object_ids()[9];
            let mut props = Properties::new();
            props.insert("color".into(), "red".into());
            world.set_properties(id, props).unwrap();
        }
        if tick == 170 {
            world.add_object(crate_at([40.0, 3.0, 40.0], 0.5)).unwrap();
        }
        world.step();
        let now = states(&world);
        awake.push(now.values().filter(|o| !o.sleeping).map(|o| o.id).collect());
        history.push(now);
    }
    let now = history.last().unwrap().clone();
    for since in [0u64, 1, 50, 99, 100, 149, 150, 169, 170, 200, 239, 240] {
        let then = &history[since as usize];
        let changed: BTreeSet<ObjectId> = world.changed_since(since).into_iter().collect();
        let reported = world.changed_since(since);
        assert_eq!(reported.len(), changed.len(), "no duplicates since {since}");
        // Everything that differs now from then must be reported.
        for (id, state) in &now {
            let differs = then.get(id) != Some(state);
            if differs {
                assert!(
                    changed.contains(id),
                    "object {id} changed since {since} but not reported"
                );
            }
        }
        // And nothing that was asleep and untouched the whole time is reported.
        for id in &changed {
            let was_awake = (since as usize + 1..history.len()).any(|t| awake[t].contains(id));
            let differs = then.get(id) != now.get(id);
            assert!(
                was_awake || differs,
                "object {id} reported since {since} although it slept unchanged"
            );
        }
        // Every reported id's last change is after `since`.
        assert!(
            changed
                .iter()
                .all(|id| world.last_changed(*id).unwrap() > since)
        );
    }
    assert!(world.changed_since(world.tick()).is_empty());
}

#[test]
fn removals_are_reported_by_removed_since() {
    let mut world = busy_world();
    run(&mut world, 5);
    let id = world.object_ids()[3];
    let before = world.tick();
    world.remove_object(id).unwrap();
    assert_eq!(world.removed_since(before), vec![id]);
    assert!(!world.changed_since(0).contains(&id));
    world.step();
    assert!(world.removed_since(world.tick()).is_empty());
    assert_eq!(world.remove_object(id).unwrap_err().code, "unknown_object");
}

#[test]
fn mutations_between_steps_belong_to_the_next_tick() {
    let mut world = busy_world();
    run(&mut world, 300);
    let baseline = world.tick();
    let id = world.object_ids()[0];
    world.set_properties(id, Properties::new()).unwrap();
    assert!(
        world.changed_since(baseline).contains(&id),
        "a client at the baseline sees it"
    );
    assert_eq!(world.last_changed(id), Some(baseline + 1));
}

fn bounding_radius(shape: &Shape) -> f32 {
    match shape {
        Shape::Box {
            half_extents: [x, y, z],
        } => (x * x + y * y + z * z).sqrt(),
        Shape::Capsule {
            half_height,
            radius,
        } => half_height + radius,
        other => panic!("unexpected shape {other:?}"),
    }
}

#[test]
fn objects_within_matches_a_brute_force_reference() {
    let mut world = busy_world();
    let batch: Vec<_> = (1..=120).map(|s| input(s, [1.0, 1.0])).collect();
    world.queue_inputs(2, &batch);
    let mut rng = particles::SplitMix64::new(99);
    for round in 0..6 {
        run(&mut world, 30);
        let snap = world.snapshot(true);
        for _ in 0..40 {
            let center = [
                rng.next_f32() * 80.0 - 40.0,
                rng.next_f32() * 10.0 - 2.0,
                rng.next_f32() * 80.0 - 40.0,
            ];
            let radius = rng.next_f32() * 25.0 * (round as f32 + 1.0);
            let expected: Vec<ObjectId> = snap
                .objects
                .iter()
                .filter(|o| {
                    let r = bounding_radius(o.shape.as_ref().unwrap());
                    let d2 = (0..3)
                        .map(|i| (o.position[i] - center[i]).powi(2))
                        .sum::<f32>();
                    let reach = radius + r;
                    d2 <= reach * reach
                })
                .map(|o| o.id)
                .collect();
            assert_eq!(
                world.objects_within(center, radius),
                expected,
                "{center:?} r={radius}"
            );
        }
    }
    // The ground (100 m wide) is larger than a grid cell: still found from its edge.
    let ground_id = world.object_ids()[0];
    assert!(
        world
            .objects_within([48.0, 0.0, 48.0], 1.0)
            .contains(&ground_id)
    );
    assert!(world.objects_within([0.0; 3], f32::NAN).is_empty());
    assert!(world.objects_within([0.0; 3], -1.0).is_empty());
}
