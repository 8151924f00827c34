//! Player movement: on flat ground every step covers its distance and the avatar stays grounded at
//! one resting height; how inputs are grouped into ticks (catch-up after a late batch) does not
//! change where it ends up; over hills it follows the terrain; avatars do not walk into each
//! other.

mod common;

use common::*;
use nexus_sim::movement::{CharacterState, MovementSettings, step_character};
use nexus_sim::*;
use rapier3d::prelude::{
    ColliderBuilder, PhysicsWorld, Pose, QueryFilter, Ray, RigidBodyBuilder, Vector,
};

/// A flat heightfield of 256 m x 256 m (129 x 129 samples) whose surface is at y = 0.
fn flat_terrain() -> ObjectDesc {
    let side = 129u32;
    ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Heightfield {
            rows: side,
            cols: side,
            heights: vec![0.0; (side * side) as usize],
            size: [256.0, 1.0, 256.0],
        },
        position: [0.0; 3],
        rotation: identity_rotation(),
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

/// A bare collision world holding one static ground, as a predicting client has it.
fn ground_only(desc: &ObjectDesc) -> PhysicsWorld {
    let mut physics = PhysicsWorld::new();
    let shape = nexus_sim::shapes::build_shape(&desc.shape)
        .expect("valid shape")
        .shape;
    let body = physics
        .bodies
        .insert(RigidBodyBuilder::fixed().translation(Vector::from_array(desc.position)));
    physics
        .colliders
        .insert_with_parent(ColliderBuilder::new(shape), body, &mut physics.bodies);
    // One step puts the collider into the broad phase that queries use.
    physics.step();
    physics
}

/// A walk with every kind of horizontal input: turning, strafing, running and walking.
fn wander(seq: u32) -> PlayerInput {
    let yaw = seq as f32 * 0.011;
    PlayerInput {
        seq,
        tick: None,
        movement: match (seq / 97) % 4 {
            0 => [0.0, 1.0],
            1 => [0.7, 0.7],
            2 => [-1.0, 0.0],
            _ => [0.3, -1.0],
        },
        look: [yaw.sin(), -0.2, -yaw.cos()],
        jump: false,
        run: (seq / 150) % 2 == 1,
    }
}

/// Horizontal distance the input asks for in one step.
fn commanded(settings: &MovementSettings, input: &PlayerInput, dt: f32) -> f32 {
    let [x, z] = input.movement;
    let len = (x * x + z * z).sqrt().min(1.0);
    let speed = if input.run {
        settings.run_speed
    } else {
        settings.walk_speed
    };
    len * speed * dt
}

#[test]
fn every_flat_ground_step_covers_the_commanded_distance_and_stays_grounded() {
    let settings = MovementSettings::default();
    let dt = 1.0 / 60.0;
    let gravity = -9.81;
    let box_floor = ObjectDesc {
        shape: Shape::Box {
            half_extents: [128.0, 0.5, 128.0],
        },
        position: [0.0, -0.5, 0.0],
        ..ground()
    };
    for (name, floor) in [("heightfield", flat_terrain()), ("box", box_floor)] {
        let physics = ground_only(&floor);
        let query = physics.broad_phase.as_query_pipeline(
            physics.narrow_phase.query_dispatcher(),
            &physics.bodies,
            &physics.colliders,
            QueryFilter::default(),
        );
        let mut state = CharacterState::new([0.3, 1.2, -0.7]);
        let still = PlayerInput {
            movement: [0.0, 0.0],
            ..wander(0)
        };
        let mut collisions = Vec::new();
        for _ in 0..60 {
            state = step_character(
                &settings,
                gravity,
                dt,
                &state,
                &still,
                &query,
                &mut collisions,
            );
        }
        assert!(state.grounded, "{name}: settled on the floor: {state:?}");
        let resting = state.position[1];
        let bottom = resting - settings.capsule_half_height - settings.capsule_radius;
        assert!(
            bottom > 0.0 && bottom < 0.03,
            "{name}: rests just above the floor, got a gap of {bottom}"
        );
        // About 330 m: thousands of chances for the floor to block a step.
        let mut short_steps = Vec::new();
        for seq in 1..=4000 {
            let input = wander(seq);
            collisions.clear();
            let next = step_character(
                &settings,
                gravity,
                dt,
                &state,
                &input,
                &query,
                &mut collisions,
            );
            let moved = ((next.position[0] - state.position[0]).powi(2)
                + (next.position[2] - state.position[2]).powi(2))
            .sqrt();
            let wanted = commanded(&settings, &input, dt);
            if (moved - wanted).abs() > 1.0e-4 {
                short_steps.push((seq, moved, wanted));
            }
            assert!(
                next.grounded,
                "{name}: step {seq} left the ground: {next:?}"
            );
            assert!(
                (next.position[1] - resting).abs() < 1.0e-4,
                "{name}: step {seq} changed the height from {resting} to {}",
                next.position[1]
            );
            state = next;
        }
        assert!(
            short_steps.is_empty(),
            "{name}: {} of 4000 steps did not cover their distance (seq, moved, wanted): {:?}",
            short_steps.len(),
            &short_steps[..short_steps.len().min(8)]
        );
        // Still on the floor, far from the start.
        assert!(state.position[0].abs() < 120.0 && state.position[2].abs() < 120.0);
    }
}

/// A world with a floor (`terrain` or a box) and one avatar that walked for a second.
fn walked_world(terrain: bool) -> (World, u32) {
    let mut world = if terrain {
        let mut world = World::new(WorldConfig::default());
        world.add_environment_object(flat_terrain()).unwrap();
        world
    } else {
        world_with_ground()
    };
    world
        .spawn_player(1, "late", Some([2.0, 1.0, 3.0]))
        .unwrap();
    let mut seq = 0;
    for _ in 0..60 {
        seq += 1;
        world.queue_inputs(1, &[wander(seq)]);
        world.step();
    }
    (world, seq)
}

#[test]
fn inputs_applied_several_per_tick_end_where_one_per_tick_ends() {
    for terrain in [false, true] {
        // On time: one input per tick.
        let (mut on_time, last) = walked_world(terrain);
        let inputs: Vec<_> = (last + 1..=last + 90).map(wander).collect();
        for input in &inputs {
            on_time.queue_inputs(1, std::slice::from_ref(input));
            on_time.step();
        }
        let expected = on_time.character_of(1).unwrap();

        let max_per_tick = on_time.config().input.max_per_tick;
        let idle_after = on_time.config().input.idle_after_ticks as usize;
        // Late by a few ticks (no idle steps) and by more than the idle wait (the server moves
        // the silent avatar with idle steps first); then the batch catches up, several inputs
        // per tick.
        for late_ticks in [4, idle_after + 20] {
            let (mut late, _) = walked_world(terrain);
            run(&mut late, late_ticks);
            late.queue_inputs(1, &inputs);
            let mut ticks = 0;
            while late.last_processed_input(1) != Some(last + 90) {
                late.step();
                ticks += 1;
                assert!(ticks <= 90, "the batch drains");
            }
            assert!(
                ticks <= 90_usize.div_ceil(max_per_tick),
                "several inputs per tick: {ticks} ticks"
            );
            let got = late.character_of(1).unwrap();
            assert!(
                got.grounded,
                "terrain {terrain}, late {late_ticks}: {got:?}"
            );
            assert!(
                dist(got.position, expected.position) < 1.0e-3,
                "terrain {terrain}, late {late_ticks}: caught up at {:?}, one per tick at {:?}",
                got.position,
                expected.position
            );
            if late_ticks < idle_after {
                // Without idle steps the very same inputs ran from the very same state.
                assert_eq!(got, expected, "terrain {terrain}: bit-identical");
            }
        }
    }
}

/// Rolling hills up to 24° steep: the demo's terrain with twice its height and hills right up to
/// the centre (a flat radius of -15 m puts the whole 15 m rise behind the centre).
fn hills() -> ObjectDesc {
    ObjectDesc {
        shape: nexus_sim::shapes::rolling_hills(65, [120.0, 120.0], 8.0, -15.0),
        ..flat_terrain()
    }
}

#[test]
fn walking_over_hills_follows_the_terrain() {
    let mut world = World::new(WorldConfig::default());
    world.add_environment_object(hills()).unwrap();
    // The collision surface itself (triangles, not the bilinear `terrain_height`), by ray.
    let surface = nexus_sim::shapes::build_shape(&hills().shape)
        .unwrap()
        .shape;
    let surface_height = |x: f32, z: f32| {
        let ray = Ray::new(Vector::new(x, 100.0, z), -Vector::Y);
        let toi = surface
            .cast_ray(&Pose::identity(), &ray, 200.0, true)
            .expect("still over the terrain");
        100.0 - toi
    };
    let settings = world.config().movement.clone();
    let feet_offset = settings.capsule_half_height + settings.capsule_radius;
    let ground = surface_height(0.0, 0.0);
    world
        .spawn_player(1, "hiker", Some([0.0, ground + feet_offset + 0.5, 0.0]))
        .unwrap();
    run(&mut world, 30);
    let dt = world.dt();
    let (mut climbed, mut descended) = (0.0f32, 0.0f32);
    let mut before = world.character_of(1).unwrap();
    assert!(before.grounded, "landed: {before:?}");
    for seq in 1..=3000 {
        let input = wander(seq);
        world.queue_inputs(1, std::slice::from_ref(&input));
        world.step();
        let now = world.character_of(1).unwrap();
        let [x, y, z] = now.position;
        let below = surface_height(x, z);
        // Standing on it: the feet are above the surface below (by the skin, more on a slope
        // where the capsule's round bottom touches the ground beside its lowest point).
        let feet = y - feet_offset - below;
        assert!(
            now.grounded && (0.0..0.1).contains(&feet),
            "step {seq}: feet {feet} m above the terrain, {now:?}"
        );
        // Slopes slow the walk (the move follows the slope), but never stop it.
        let moved = ((x - before.position[0]).powi(2) + (z - before.position[2]).powi(2)).sqrt();
        let wanted = commanded(&settings, &input, dt);
        assert!(
            moved >= 0.75 * wanted && moved <= wanted * 1.0001,
            "step {seq}: moved {moved} of {wanted}"
        );
        let rise = y - before.position[1];
        climbed = climbed.max(rise);
        descended = descended.min(rise);
        before = now;
    }
    // The walk went up and down real slopes.
    assert!(climbed > 0.02 && descended < -0.02, "{climbed} {descended}");
}

#[test]
fn avatars_walking_into_each_other_do_not_overlap() {
    let mut world = world_with_ground();
    let settings = world.config().movement.clone();
    // Twelve avatars on a circle, all walking to its centre, then on through it.
    let count = 12u32;
    for c in 0..count {
        let angle = c as f32 / count as f32 * std::f32::consts::TAU;
        world
            .spawn_player(
                c + 1,
                "p",
                Some([6.0 * angle.cos(), 1.0, 6.0 * angle.sin()]),
            )
            .unwrap();
    }
    run(&mut world, 20);
    for seq in 1..=240 {
        for c in 0..count {
            let p = world.character_of(c + 1).unwrap().position;
            let input = PlayerInput {
                look: [-p[0], 0.0, -p[2]],
                ..input(seq, [0.0, 1.0])
            };
            world.queue_inputs(c + 1, &[input]);
        }
        world.step();
        let positions: Vec<_> = (1..=count)
            .map(|c| world.character_of(c).unwrap().position)
            .collect();
        for (i, p) in positions.iter().enumerate() {
            for q in &positions[i + 1..] {
                let across = ((p[0] - q[0]).powi(2) + (p[2] - q[2]).powi(2)).sqrt();
                let vertical = (p[1] - q[1]).abs();
                // Side by side they keep two radii apart; one standing on another is fine.
                assert!(
                    across >= 2.0 * settings.capsule_radius - 1.0e-3
                        || vertical
                            >= 2.0 * (settings.capsule_half_height + settings.capsule_radius)
                                - 0.05,
                    "tick {seq}: {p:?} and {q:?} overlap"
                );
            }
        }
    }
}
