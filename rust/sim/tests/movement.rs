//! Player movement on flat ground: every step covers its distance, the avatar stays grounded at
//! one resting height, and how inputs are grouped into ticks (catch-up after a late batch) does
//! not change where it ends up.

mod common;

use common::*;
use nexus_sim::movement::{CharacterState, MovementSettings, step_character};
use nexus_sim::*;
use rapier3d::prelude::{ColliderBuilder, PhysicsWorld, QueryFilter, RigidBodyBuilder, Vector};

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
