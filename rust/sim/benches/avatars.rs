//! Cost of player avatars: `nexus_sim::World` step time with 100, 500 and 1,000 walking avatars on
//! the demo's terrain (a 65 x 65 heightfield, 120 m square, hills around a flat arena) and on a
//! flat box floor, next to the baseline: the same avatars driven by rapier's own
//! `KinematicCharacterController` (the same capsule, skin, slopes, steps and snapping) in a bare
//! rapier world with the same ground, measured in turns in one process. Both on one thread (a
//! world moves its avatars in parallel on rayon's pool; rapier's controller has no such mode).
//! Prints a table; asserts nothing.
//!
//! Run: `cargo bench -p nexus-sim --bench avatars` (`NEXUS_BENCH_QUICK=1` for a short run).

mod common;

use std::time::{Duration, Instant};

use nexus_sim::{
    BodyKind, MovementSettings, ObjectDesc, PlayerInput, Properties, Shape, World, WorldConfig,
    build_shape, identity_rotation, shapes::rolling_hills,
};
use rapier3d::control::{CharacterAutostep, CharacterLength, KinematicCharacterController};
use rapier3d::prelude::{
    Capsule, ColliderBuilder, PhysicsWorld, Pose, QueryFilter, RigidBodyBuilder, RigidBodyHandle,
    Vector,
};

/// The demo scene's `EnvironmentManager` terrain (its default properties).
fn demo_terrain() -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Static,
        shape: rolling_hills(65, [120.0, 120.0], 4.0, 25.0),
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

/// Spawn spots: a grid 3 m apart (hills included), 6 m up.
fn spawn_spot(i: usize, avatars: usize) -> [f32; 3] {
    let side = (avatars as f32).sqrt().ceil() as usize;
    let x = (i % side) as f32 * 3.0 - side as f32 * 1.5;
    let z = (i / side) as f32 * 3.0 - side as f32 * 1.5;
    [x, 6.0, z]
}

/// A world with `ground` and `avatars` players.
fn world_with(ground: ObjectDesc, avatars: usize) -> World {
    let mut world = World::new(WorldConfig::default());
    world.add_object(ground).expect("ground");
    for i in 0..avatars {
        world
            .spawn_player(i as u32 + 1, "bot", Some(spawn_spot(i, avatars)))
            .expect("spawn");
    }
    world
}

/// Avatar `i`'s input for `seq`: walking (every third running), turning slowly, each in its own
/// direction, jumping now and then, like the load benchmark's bots.
fn bot_input(i: usize, seq: u32) -> PlayerInput {
    let angle = i as f32 * 0.7 + seq as f32 * 0.01;
    PlayerInput {
        seq,
        tick: None,
        movement: [0.0, 1.0],
        look: [angle.sin(), 0.0, -angle.cos()],
        jump: (seq as usize + i * 13).is_multiple_of(180),
        run: i.is_multiple_of(3),
    }
}

/// The baseline: a bare rapier world with the same ground, whose avatars are kinematic capsules
/// moved by rapier's character controller configured like ours.
struct RapierAvatars {
    world: PhysicsWorld,
    avatars: Vec<RapierAvatar>,
    controller: KinematicCharacterController,
    settings: MovementSettings,
}

struct RapierAvatar {
    body: RigidBodyHandle,
    vertical_speed: f32,
    grounded: bool,
}

impl RapierAvatars {
    fn new(ground: &ObjectDesc, avatars: usize) -> Self {
        let settings = MovementSettings::default();
        let mut world = PhysicsWorld::new();
        world.integration_parameters.dt = 1.0 / 60.0;
        let shape = build_shape(&ground.shape).expect("ground shape").shape;
        world.insert(
            RigidBodyBuilder::fixed().translation(Vector::from_array(ground.position)),
            ColliderBuilder::new(shape).friction(ground.friction),
        );
        let avatars = (0..avatars)
            .map(|i| {
                let (body, _) = world.insert(
                    RigidBodyBuilder::kinematic_position_based()
                        .translation(Vector::from_array(spawn_spot(i, avatars))),
                    ColliderBuilder::capsule_y(
                        settings.capsule_half_height,
                        settings.capsule_radius,
                    ),
                );
                RapierAvatar {
                    body,
                    vertical_speed: 0.0,
                    grounded: false,
                }
            })
            .collect();
        let controller = KinematicCharacterController {
            offset: CharacterLength::Absolute(nexus_sim::movement::SKIN),
            autostep: Some(CharacterAutostep {
                max_height: CharacterLength::Absolute(settings.step_height),
                min_width: CharacterLength::Absolute(settings.step_min_width),
                include_dynamic_bodies: false,
            }),
            max_slope_climb_angle: settings.max_slope_degrees.to_radians(),
            min_slope_slide_angle: settings.slide_slope_degrees.to_radians(),
            snap_to_ground: Some(CharacterLength::Absolute(settings.snap_distance)),
            ..KinematicCharacterController::default()
        };
        RapierAvatars {
            world,
            avatars,
            controller,
            settings,
        }
    }

    fn step(&mut self, seq: u32) {
        let dt = 1.0 / 60.0;
        let capsule = Capsule::new_y(
            self.settings.capsule_half_height,
            self.settings.capsule_radius,
        );
        let world = &mut self.world;
        for (i, avatar) in self.avatars.iter_mut().enumerate() {
            let input = bot_input(i, seq);
            let look = Vector::from_array(input.look).normalize();
            let speed = if input.run {
                self.settings.run_speed
            } else {
                self.settings.walk_speed
            };
            if avatar.grounded {
                avatar.vertical_speed = if input.jump {
                    self.settings.jump_speed
                } else {
                    0.0
                };
            }
            avatar.vertical_speed -= 9.81 * dt;
            let desired = Vector::new(look.x * speed, avatar.vertical_speed, look.z * speed) * dt;
            let position = world.bodies[avatar.body].translation();
            let queries = world.broad_phase.as_query_pipeline(
                world.narrow_phase.query_dispatcher(),
                &world.bodies,
                &world.colliders,
                QueryFilter::default().exclude_rigid_body(avatar.body),
            );
            let moved = self.controller.move_shape(
                dt,
                &queries,
                &capsule,
                &Pose::from_translation(position),
                desired,
                |_| {},
            );
            avatar.grounded = moved.grounded;
            world.bodies[avatar.body].set_next_kinematic_translation(position + moved.translation);
        }
        world.step();
    }
}

fn median_ms(times: &mut [Duration]) -> f64 {
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1000.0
}

/// One contestant: a step function and its step times.
struct Runner<'a> {
    step: Box<dyn FnMut(u32) + 'a>,
    times: Vec<Duration>,
}

/// Ours, on one thread like the baseline (with more, its avatars move in parallel).
fn ours_runner<'a>(
    world: &'a mut World,
    avatars: usize,
    pool: &'a rayon::ThreadPool,
) -> Runner<'a> {
    Runner {
        step: Box::new(move |seq| {
            pool.install(|| {
                for i in 0..avatars {
                    let refused = world.queue_inputs(i as u32 + 1, &[bot_input(i, seq)]);
                    assert!(refused.is_empty(), "{refused:?}");
                }
                world.step();
                drop(world.drain_events());
            })
        }),
        times: Vec::new(),
    }
}

fn main() {
    let quick = common::quick();
    let (sizes, steps): (&[usize], usize) = if quick {
        (&[100, 500], 60)
    } else {
        (&[100, 500, 1000], 180)
    };
    println!(
        "avatars: World step time with walking avatars vs rapier's KinematicCharacterController \
         driving the same avatars in a bare rapier world; same ground, same process"
    );
    println!();
    println!(
        "{:>7} {:>8} {:>9} {:>10} {:>7} {:>9} {:>10} {:>7} {:>10}",
        "avatars",
        "ground",
        "ours ms",
        "rapier ms",
        "ratio",
        "ours us",
        "rapier us",
        "control",
        "on ground"
    );
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    for &n in sizes {
        for (name, ground) in [("terrain", demo_terrain()), ("floor", flat_floor())] {
            let mut ours = world_with(ground.clone(), n);
            let mut control = world_with(ground.clone(), n);
            let mut rapier = RapierAvatars::new(&ground, n);
            let mut runners = [
                ours_runner(&mut ours, n, &one_thread),
                Runner {
                    step: Box::new(|seq| rapier.step(seq)),
                    times: Vec::new(),
                },
                ours_runner(&mut control, n, &one_thread),
            ];
            // Land everyone first: the measured steps are walking, not falling from the spawn
            // height.
            let mut seq = 0u32;
            for _ in 0..90 {
                seq += 1;
                for runner in &mut runners {
                    (runner.step)(seq);
                }
            }
            // Interleaved, rotating which goes first, so that machine noise hits all alike.
            for i in 0..steps {
                seq += 1;
                for k in 0..runners.len() {
                    let runner = &mut runners[(i + k) % 3];
                    let t = Instant::now();
                    (runner.step)(seq);
                    runner.times.push(t.elapsed());
                }
            }
            let [a, b, c] = &mut runners;
            let (ours_ms, rapier_ms, control_ms) = (
                median_ms(&mut a.times),
                median_ms(&mut b.times),
                median_ms(&mut c.times),
            );
            drop(runners);
            let grounded = (0..n)
                .filter(|&i| ours.character_of(i as u32 + 1).is_some_and(|c| c.grounded))
                .count();
            println!(
                "{:>7} {:>8} {:>9.3} {:>10.3} {:>6.2}x {:>9.1} {:>10.1} {:>6.2}x {:>10}",
                n,
                name,
                ours_ms,
                rapier_ms,
                rapier_ms / ours_ms,
                ours_ms * 1000.0 / n as f64,
                rapier_ms * 1000.0 / n as f64,
                control_ms / ours_ms,
                format!("{grounded}/{n}")
            );
        }
    }
    println!();
    println!(
        "ms = median step time, inputs included; ratio = rapier / ours (how many times faster \
         ours is); us = per avatar; control = a second identical World (the noise floor); \
         on ground = our avatars standing at the end (the others are mid-jump: each jumps every 3 s)."
    );
}
