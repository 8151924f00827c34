//! Tick-thread cost of persisting a live world: `change_since` for the objects changed in one
//! save interval against `record_from_world` of the whole world (what a snapshot would cost),
//! measured in the same process on the same world; and `restore_world` of the whole record.
//!
//! `cargo bench -p nexus-store --bench world_bridge`; `NEXUS_BENCH_OBJECTS`,
//! `NEXUS_BENCH_CHANGED` and `NEXUS_BENCH_ROUNDS` change the sizes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nexus_sim::state::{BodyKind, ObjectDesc, ObjectId, Properties, Shape, identity_rotation};
use nexus_sim::{World, WorldConfig};
use nexus_store::world_bridge::{change_since, record_from_world, restore_world};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median and minimum, in milliseconds.
fn summary(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(samples[samples.len() / 2]), ms(samples[0]))
}

fn object(kind: BodyKind, half_extents: [f32; 3], position: [f32; 3]) -> ObjectDesc {
    ObjectDesc {
        kind,
        shape: Shape::Box { half_extents },
        position,
        rotation: identity_rotation(),
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

fn main() {
    let objects = env_or("NEXUS_BENCH_OBJECTS", 10_000);
    let changed = env_or("NEXUS_BENCH_CHANGED", 100).min(objects);
    let rounds = env_or("NEXUS_BENCH_ROUNDS", 9).max(1);

    // Boxes resting apart on a ground, then left to fall asleep: a settled campaign.
    let mut world = World::new(WorldConfig::default());
    let side = (objects as f32).sqrt().ceil() as usize;
    let half_extent = side as f32 * 1.5;
    world
        .add_object(object(
            BodyKind::Static,
            [half_extent + 5.0, 0.5, half_extent + 5.0],
            [0.0, -0.5, 0.0],
        ))
        .unwrap();
    let boxes: Vec<ObjectId> = (0..objects)
        .map(|i| {
            let (x, z) = ((i % side) as f32 * 3.0, (i / side) as f32 * 3.0);
            let position = [x - half_extent, 0.25, z - half_extent];
            world
                .add_object(object(BodyKind::Dynamic, [0.25; 3], position))
                .unwrap()
        })
        .collect();
    for _ in 0..120 {
        world.step();
    }
    let players = BTreeMap::new();

    let mut full = Vec::new();
    let mut incremental = Vec::new();
    let mut rows = 0;
    for round in 0..rounds {
        let started = Instant::now();
        let record = record_from_world("bench", &world, &players);
        full.push(started.elapsed());
        assert_eq!(record.objects.len(), objects + 1);

        // One save interval: `changed` objects edited, one tick stepped.
        let since = world.tick();
        for i in 0..changed {
            let id = boxes[(round * changed + i) % objects];
            world
                .set_properties(id, json!({"round": round}).as_object().unwrap().clone())
                .unwrap();
        }
        world.step();
        let started = Instant::now();
        let change = change_since(&world, since, &players);
        incremental.push(started.elapsed());
        rows = change.upserted_objects.len();
        assert!(rows >= changed);
    }

    let record = record_from_world("bench", &world, &players);
    let mut restores = Vec::new();
    for _ in 0..rounds.min(3) {
        let started = Instant::now();
        let restored = restore_world(&record, WorldConfig::default()).unwrap();
        restores.push(started.elapsed());
        assert_eq!(restored.object_count(), objects + 1);
    }

    let (full_median, full_min) = summary(&mut full);
    let (inc_median, inc_min) = summary(&mut incremental);
    let (restore_median, restore_min) = summary(&mut restores);
    println!(
        "nexus-store world bridge benchmark: {objects} resting boxes, {changed} changed per save"
    );
    println!();
    println!(
        "{:<46} {:>10} {:>10}",
        "operation (tick thread)", "median ms", "min ms"
    );
    println!(
        "{:<46} {:>10.3} {:>10.3}",
        format!("record_from_world ({} objects)", objects + 1),
        full_median,
        full_min
    );
    println!(
        "{:<46} {:>10.3} {:>10.3}",
        format!("change_since ({rows} changed objects)"),
        inc_median,
        inc_min
    );
    println!(
        "{:<46} {:>10.3} {:>10.3}",
        format!("restore_world ({} objects)", objects + 1),
        restore_median,
        restore_min
    );
    println!();
    println!(
        "ratio record_from_world / change_since (median): {:.1}x",
        full_median / inc_median
    );
}
