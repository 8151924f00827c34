//! Cost of player avatars: `nexus_sim::World` step time with 100, 500 and 1,000 walking avatars on
//! the demo's terrain (a 65 x 65 heightfield, 120 m square, hills around a flat arena), next to
//! the same avatars on a flat box floor and the same worlds without avatars, in one process.
//! Prints a table; asserts nothing.
//!
//! Run: `cargo bench -p nexus-sim --bench avatars` (`NEXUS_BENCH_QUICK=1` for a short run).

mod common;

use std::time::{Duration, Instant};

use nexus_sim::{
    BodyKind, ObjectDesc, PlayerInput, Properties, Shape, World, WorldConfig, identity_rotation,
};

/// The demo scene's `EnvironmentManager` terrain (same formula, same defaults).
fn demo_terrain() -> ObjectDesc {
    let n = 65u32;
    let size = 120.0f32;
    let mut heights = Vec::with_capacity((n * n) as usize);
    for row in 0..n {
        for col in 0..n {
            let x = (col as f32 / (n - 1) as f32 - 0.5) * size;
            let z = (row as f32 / (n - 1) as f32 - 0.5) * size;
            let distance = (x * x + z * z).sqrt();
            let ramp = ((distance - 25.0) / 15.0).clamp(0.0, 1.0);
            let hills = (x * 0.11).sin() * (z * 0.09).cos() * 0.5 + 0.5;
            heights.push(4.0 * hills * ramp * ramp);
        }
    }
    ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Heightfield {
            rows: n,
            cols: n,
            heights,
            size: [size, 1.0, size],
        },
        position: [0.0; 3],
        rotation: identity_rotation(),
        mass: None,
        friction: 0.8,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

fn flat_floor() -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Box {
            half_extents: [60.0, 0.5, 60.0],
        },
        position: [0.0, -0.5, 0.0],
        rotation: identity_rotation(),
        mass: None,
        friction: 0.8,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

/// A world with `ground` and `avatars` players spread over a grid (3 m apart, hills included).
fn world_with(ground: ObjectDesc, avatars: usize) -> World {
    let mut world = World::new(WorldConfig::default());
    world.add_object(ground).expect("ground");
    let side = (avatars as f32).sqrt().ceil() as usize;
    for i in 0..avatars {
        let x = (i % side) as f32 * 3.0 - side as f32 * 1.5;
        let z = (i / side) as f32 * 3.0 - side as f32 * 1.5;
        world
            .spawn_player(i as u32 + 1, "bot", Some([x, 6.0, z]))
            .expect("spawn");
    }
    world
}

/// One input per avatar per tick: walking (every third running), turning slowly, each in its own
/// direction, jumping now and then, like the load benchmark's bots.
fn drive(world: &mut World, avatars: usize, seq: u32) {
    let tick = world.tick();
    for i in 0..avatars {
        let angle = i as f32 * 0.7 + seq as f32 * 0.01;
        let input = PlayerInput {
            seq,
            tick: None,
            movement: [0.0, 1.0],
            look: [angle.sin(), 0.0, -angle.cos()],
            jump: (seq as usize + i * 13).is_multiple_of(180),
            run: i % 3 == 0,
        };
        let refused = world.queue_inputs(i as u32 + 1, &[input]);
        assert!(refused.is_empty(), "tick {tick}: {refused:?}");
    }
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// A world and its driven avatar count, measured in turns with the others.
struct Contestant {
    world: World,
    avatars: usize,
    times: Vec<Duration>,
}

fn main() {
    let quick = common::quick();
    let (sizes, steps): (&[usize], usize) = if quick {
        (&[100, 500], 60)
    } else {
        (&[100, 500, 1000], 180)
    };
    println!("avatars: World step time with walking avatars, terrain vs flat floor, same process");
    println!();
    println!(
        "{:>7} {:>6} {:>12} {:>11} {:>12} {:>11} {:>9} {:>8}",
        "avatars", "steps", "terrain ms", "us/avatar", "floor ms", "us/avatar", "empty ms", "ratio"
    );
    for &n in sizes {
        let mut contestants = [
            Contestant {
                world: world_with(demo_terrain(), n),
                avatars: n,
                times: Vec::new(),
            },
            Contestant {
                world: world_with(flat_floor(), n),
                avatars: n,
                times: Vec::new(),
            },
            Contestant {
                world: world_with(demo_terrain(), 0),
                avatars: 0,
                times: Vec::new(),
            },
        ];
        // Land everyone first: the measured steps are walking, not falling from the spawn height.
        let mut seq = 0u32;
        for _ in 0..90 {
            seq += 1;
            for c in &mut contestants {
                drive(&mut c.world, c.avatars, seq);
                c.world.step();
                drop(c.world.drain_events());
            }
        }
        for i in 0..steps {
            seq += 1;
            for k in 0..contestants.len() {
                let c = &mut contestants[(i + k) % 3];
                drive(&mut c.world, c.avatars, seq);
                let t = Instant::now();
                c.world.step();
                c.times.push(t.elapsed());
                drop(c.world.drain_events());
            }
        }
        let [terrain, floor, empty] = &mut contestants;
        let (t, f, e) = (
            median_ms(&mut terrain.times),
            median_ms(&mut floor.times),
            median_ms(&mut empty.times),
        );
        let per = |ms: f64| (ms - e) * 1000.0 / n as f64;
        println!(
            "{:>7} {:>6} {:>12.3} {:>11.1} {:>12.3} {:>11.1} {:>9.3} {:>7.2}x",
            n,
            steps,
            t,
            per(t),
            f,
            per(f),
            e,
            t / f
        );
    }
    println!();
    println!(
        "ms = median step time (input queueing not included); us/avatar = (step - empty world) / \
         avatars; ratio = terrain / flat floor."
    );
}
