//! Particle throughput with collisions (terrain heightfield, static and dynamic boxes): particle
//! steps per second at 500K, 1M and 2M particles, on all of rayon's threads and on one, plus
//! memory per particle. Prints a table; asserts nothing.
//!
//! Run: `cargo bench -p nexus-sim --bench particles` (`NEXUS_BENCH_QUICK=1` for a short run).
//! By default it measures the second second of the fountains (most particles in the air, some
//! hitting pillars and crates); `NEXUS_PARTICLE_WARMUP=240` measures later, when most particles
//! lie on the terrain and touch it every step.

mod common;

use std::time::{Duration, Instant};

use nexus_sim::{
    BodyKind, EmissionParams, ObjectDesc, Properties, Shape, World, WorldConfig, identity_rotation,
};

#[global_allocator]
static ALLOC: common::Counting = common::Counting;

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

/// A 256 m terrain (129x129 samples, rolling hills), 100 static pillars, 100 dynamic crates, and
/// `n` particles thrown up from 16 fountains so that they rain on all of it.
fn scene(n: usize) -> World {
    let mut config = WorldConfig::default();
    config.particles.max_particles = n;
    let mut world = World::new(config);
    let side = 129u32;
    let heights = (0..side * side)
        .map(|i| ((i % side) as f32 * 0.15).sin() * 2.0 + ((i / side) as f32 * 0.11).cos() * 1.5)
        .collect();
    world
        .add_environment_object(desc(
            BodyKind::Static,
            Shape::Heightfield {
                rows: side,
                cols: side,
                heights,
                size: [256.0, 1.0, 256.0],
            },
            [0.0, 0.0, 0.0],
        ))
        .unwrap();
    for i in 0..100 {
        let x = (i % 10) as f32 * 20.0 - 90.0;
        let z = (i / 10) as f32 * 20.0 - 90.0;
        world
            .add_object(desc(
                BodyKind::Static,
                Shape::Box {
                    half_extents: [1.5, 6.0, 1.5],
                },
                [x, 4.0, z],
            ))
            .unwrap();
        world
            .add_object(desc(
                BodyKind::Dynamic,
                Shape::Box {
                    half_extents: [0.5; 3],
                },
                [x + 5.0, 8.0, z + 5.0],
            ))
            .unwrap();
    }
    let params = EmissionParams {
        direction: [0.0, 1.0, 0.0],
        speed: 18.0,
        speed_jitter: 0.5,
        spread: 1.2,
        lifetime: 1000.0,
        lifetime_jitter: 0.0,
    };
    let per = n / 16;
    for f in 0..16 {
        let origin = [
            (f % 4) as f32 * 50.0 - 75.0,
            10.0,
            (f / 4) as f32 * 50.0 - 75.0,
        ];
        let mut left = per + if f == 15 { n - per * 16 } else { 0 };
        while left > 0 {
            let count = left.min(1_000_000);
            world
                .emit_particles(origin, count as u32, params.clone())
                .unwrap();
            left -= count;
        }
    }
    world
}

/// Mean wall time and mean process CPU time (all threads) per step.
fn measure(world: &mut World, steps: usize) -> (Duration, f64) {
    let cpu = common::cpu_seconds();
    let start = Instant::now();
    for _ in 0..steps {
        world.step();
        world.drain_events();
    }
    (
        start.elapsed() / steps as u32,
        (common::cpu_seconds() - cpu) / steps as f64,
    )
}

fn main() {
    let quick = common::quick();
    let threads = rayon::current_num_threads();
    let sizes: &[usize] = if quick {
        &[500_000]
    } else {
        &[500_000, 1_000_000, 2_000_000]
    };
    let (warmup, steps) = if quick { (10, 30) } else { (60, 60) };
    let warmup = std::env::var("NEXUS_PARTICLE_WARMUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(warmup);
    println!(
        "particles: World::step with N live particles colliding with a 129x129 heightfield, after {warmup} steps,"
    );
    println!(
        "100 static pillars and 100 dynamic crates (physics of 201 bodies included in the step)"
    );
    println!();
    println!(
        "{:>9} {:>8} {:>10} {:>10} {:>14} {:>14} {:>12} {:>10} {:>8}",
        "particles",
        "threads",
        "wall ms",
        "cpu ms",
        "particle-st/s",
        "per cpu-sec",
        "60 Hz budget",
        "B/particle",
        "alive"
    );
    // The same scene without particles: what the step costs besides them.
    let mut empty = scene(0);
    let _ = measure(&mut empty, 10);
    let (base, base_cpu) = measure(&mut empty, steps);
    for &n in sizes {
        let mut world = scene(n);
        // Particles fly up and spread first; measure once most are falling onto things.
        let _ = measure(&mut world, warmup);
        let bytes_per = world.particles().memory_bytes() as f64 / n as f64;
        // Every thread count starts from the very same state (a restored save).
        let checkpoint = world.save();
        drop(world);
        for pool_threads in [threads, 1] {
            let mut world = World::restore(&checkpoint).unwrap();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(pool_threads)
                .build()
                .unwrap();
            let (per_step, cpu) = pool.install(|| measure(&mut world, steps));
            let particle_time = per_step.saturating_sub(base).as_secs_f64();
            let rate = n as f64 / particle_time.max(1e-9);
            let cpu_rate = n as f64 / (cpu - base_cpu).max(1e-9);
            println!(
                "{:>9} {:>8} {:>10.2} {:>10.2} {:>14.3e} {:>14.3e} {:>11.0}% {:>10.1} {:>8}",
                n,
                pool_threads,
                per_step.as_secs_f64() * 1000.0,
                cpu * 1000.0,
                rate,
                cpu_rate,
                per_step.as_secs_f64() * 60.0 * 100.0,
                bytes_per,
                world.particles().live_count()
            );
            if pool_threads == 1 && threads == 1 {
                break;
            }
        }
    }
    println!();
    println!(
        "baseline step without particles: {:.3} ms (subtracted for particle-steps/s); target: 2M at 60 Hz = 1.2e8 particle-steps/s",
        base.as_secs_f64() * 1000.0
    );
    println!(
        "60 Hz budget = share of a 16.7 ms tick the whole step takes (wall); per cpu-sec = particle"
    );
    println!(
        "steps per second of CPU time of this process (the machine is shared; wall time includes waiting)"
    );
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
