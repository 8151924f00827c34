//! Step time of `nexus_sim::World` with 1k, 4k and 10k awake dynamic boxes, next to a bare
//! rapier3d pipeline stepping the same scene in the same process (same builders, same order),
//! plus memory per body. Prints a table; asserts nothing.
//!
//! Run: `cargo bench -p nexus-sim --bench world_step` (`NEXUS_BENCH_QUICK=1` for a short run).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use nexus_sim::{BodyKind, ObjectDesc, Properties, Shape, World, WorldConfig, identity_rotation};
use rapier3d::prelude::{ColliderBuilder, PhysicsWorld, RigidBodyBuilder, Vector};

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

/// Box positions: a loose grid of columns of 4 boxes dropped from staggered heights (1 to 6 m),
/// so that during the measured second every box is awake: falling, landing, tumbling, stacking.
/// The table prints the smallest awake count seen while measuring to show it.
fn layout(n: usize) -> Vec<[f32; 3]> {
    let side = (n as f32 / 4.0).sqrt().ceil() as usize;
    (0..n)
        .map(|i| {
            let column = i / 4;
            let level = i % 4;
            let x = (column % side) as f32 * 1.5 - side as f32 * 0.75;
            let z = (column / side) as f32 * 1.5 - side as f32 * 0.75;
            let y = 1.0 + level as f32 * 1.2 + ((column * 7) % 5) as f32 * 0.3;
            [x, y, z]
        })
        .collect()
}

fn ground_extent(n: usize) -> f32 {
    (n as f32 / 4.0).sqrt() * 1.5 + 10.0
}

fn ours(n: usize) -> World {
    let mut world = World::new(WorldConfig::default());
    let g = ground_extent(n);
    world
        .add_object(ObjectDesc {
            kind: BodyKind::Static,
            shape: Shape::Box {
                half_extents: [g, 0.5, g],
            },
            position: [0.0, -0.5, 0.0],
            rotation: identity_rotation(),
            mass: None,
            friction: 0.5,
            restitution: 0.0,
            properties: Properties::new(),
        })
        .unwrap();
    for p in layout(n) {
        world
            .add_object(ObjectDesc {
                kind: BodyKind::Dynamic,
                shape: Shape::Box {
                    half_extents: [0.5, 0.5, 0.5],
                },
                position: p,
                rotation: identity_rotation(),
                mass: None,
                friction: 0.5,
                restitution: 0.0,
                properties: Properties::new(),
            })
            .unwrap();
    }
    world
}

fn bare(n: usize) -> PhysicsWorld {
    let mut world = PhysicsWorld::new();
    world.integration_parameters.dt = 1.0 / 60.0;
    let g = ground_extent(n);
    world.insert(
        RigidBodyBuilder::fixed().translation(Vector::new(0.0, -0.5, 0.0)),
        ColliderBuilder::cuboid(g, 0.5, g).friction(0.5),
    );
    for p in layout(n) {
        world.insert(
            RigidBodyBuilder::dynamic().translation(Vector::from_array(p)),
            ColliderBuilder::cuboid(0.5, 0.5, 0.5).friction(0.5),
        );
    }
    world
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// One measured contestant: a boxed step function and its step times.
struct Runner<'a> {
    step: Box<dyn FnMut() + 'a>,
    times: Vec<Duration>,
}

fn main() {
    let quick = common::quick();
    let sizes: &[(usize, usize)] = if quick {
        &[(1000, 30), (4000, 30)]
    } else {
        &[(1000, 60), (4000, 60), (10_000, 60)]
    };
    println!(
        "world_step: nexus_sim::World vs bare rapier3d PhysicsWorld, same scene, same process"
    );
    println!(
        "threads: rayon {} (rapier built without its parallel feature)",
        rayon::current_num_threads()
    );
    println!();
    println!(
        "{:>7} {:>6} {:>9} {:>10} {:>7} {:>9} {:>10} {:>12} {:>14}",
        "boxes",
        "steps",
        "ours ms",
        "rapier ms",
        "ratio",
        "control",
        "min awake",
        "ours B/body",
        "rapier B/body"
    );
    for &(n, steps) in sizes {
        let before = common::live_bytes();
        let mut ours_world = ours(n);
        // Creation events are transient output, not per-body state.
        drop(ours_world.drain_events());
        let ours_bytes = common::live_bytes() - before;
        let before = common::live_bytes();
        let mut bare_world = bare(n);
        let bare_bytes = common::live_bytes() - before;
        // A second bare world: the ratio between two identical pipelines shows the noise floor.
        let mut control_world = bare(n);
        for _ in 0..5 {
            ours_world.step();
            bare_world.step();
            control_world.step();
        }
        let mut min_awake = u32::MAX;
        let (ma, mb, mc) = {
            let awake = &mut min_awake;
            let mut runners = [
                Runner {
                    step: Box::new(|| {
                        *awake = (*awake).min(ours_world.physics_info().awake_count);
                        ours_world.step();
                        black_box(ours_world.drain_events());
                    }),
                    times: Vec::with_capacity(steps),
                },
                Runner {
                    step: Box::new(|| bare_world.step()),
                    times: Vec::with_capacity(steps),
                },
                Runner {
                    step: Box::new(|| control_world.step()),
                    times: Vec::with_capacity(steps),
                },
            ];
            // Interleaved, rotating which goes first, so that machine noise and cache effects hit
            // all three alike.
            for i in 0..steps {
                for k in 0..3 {
                    let runner = &mut runners[(i + k) % 3];
                    let t = Instant::now();
                    (runner.step)();
                    runner.times.push(t.elapsed());
                }
            }
            let [a, b, c] = &mut runners;
            (
                median_ms(&mut a.times),
                median_ms(&mut b.times),
                median_ms(&mut c.times),
            )
        };
        println!(
            "{:>7} {:>6} {:>9.3} {:>10.3} {:>6.3}x {:>8.3}x {:>10} {:>12} {:>14}",
            n,
            steps,
            ma,
            mb,
            ma / mb,
            mc / mb,
            min_awake,
            ours_bytes / (n + 1),
            bare_bytes / (n + 1)
        );
    }
    println!();
    println!(
        "ms = median step time; ratio = ours / bare rapier (target <= 1.2x); control = a second,"
    );
    println!(
        "identical bare rapier world / the first (the noise floor of this machine right now);"
    );
    println!("B/body = heap bytes right after creation, divided by body count");
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
