mod common;
use common::{flat_world, resting_height};
use nexus_client::CollisionWorld;
use nexus_sim::PlayerInput;
use nexus_sim::movement::{CharacterState, MovementSettings};
use nexus_sim::state::{BodyKind, Shape};

#[test]
fn idle_then_walk_is_exact() {
    let y = resting_height();
    for idle_ticks in [0u32, 5, 12, 20] {
        let mut world = flat_world();
        world.spawn_player(1, "a", Some([3.0, y, 0.0])).unwrap();
        for _ in 0..(10 + idle_ticks) {
            world.step();
        }
        let mut copy = CollisionWorld::new(30.0);
        copy.insert(
            1,
            BodyKind::Static,
            &Shape::Box {
                half_extents: [100.0, 0.5, 100.0],
            },
            [0.0, -0.5, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        )
        .unwrap();
        copy.prepare([3.0, y, 0.0]);
        let s = MovementSettings::default();
        let mut c = CharacterState::new([3.0, y, 0.0]);
        for _ in 0..idle_ticks.saturating_sub(0) {
            let idle = PlayerInput {
                seq: 0,
                tick: None,
                movement: [0.0, 0.0],
                look: c.look,
                jump: false,
                run: false,
            };
            c = copy.step_character(&s, -9.81, 1.0 / 60.0, &c, &idle);
        }
        let server0 = world.character_of(1).unwrap();
        let mut first_diff = None;
        for seq in 1..=200u32 {
            let yaw = seq as f32 * 0.01;
            let input = PlayerInput {
                seq,
                tick: None,
                movement: [0.0, 1.0],
                look: [yaw.sin(), 0.0, -yaw.cos()],
                jump: false,
                run: false,
            };
            world.queue_inputs(1, &[input.clone()]);
            world.step();
            c = copy.step_character(&s, -9.81, 1.0 / 60.0, &c, &input);
            let srv = world.character_of(1).unwrap();
            if srv.position != c.position && first_diff.is_none() {
                first_diff = Some((seq, srv.position, c.position));
            }
        }
        println!(
            "idle {idle_ticks}: start server {:?} client? first diff {:?}",
            server0.position, first_diff
        );
    }
}

#[test]
fn stutter() {
    let mut world = flat_world();
    world.spawn_player(1, "a", Some([0.0, 1.0, 0.0])).unwrap();
    for _ in 0..120 {
        world.step();
    }
    let mut blocked = 0;
    for seq in 1..=600u32 {
        let before = world.character_of(1).unwrap().position;
        let yaw = seq as f32 * 0.01;
        world.queue_inputs(
            1,
            &[PlayerInput {
                seq,
                tick: None,
                movement: [0.0, 1.0],
                look: [yaw.sin(), 0.0, -yaw.cos()],
                jump: false,
                run: false,
            }],
        );
        world.step();
        let after = world.character_of(1).unwrap().position;
        let d = ((after[0] - before[0]).powi(2) + (after[2] - before[2]).powi(2)).sqrt();
        if d < 0.06 {
            blocked += 1;
        }
    }
    println!("blocked {blocked} of 600");
}

#[test]
fn batched_inputs_are_exact() {
    let y = resting_height();
    let mut world = flat_world();
    world.spawn_player(1, "a", Some([3.0, y, 0.0])).unwrap();
    let mut copy = CollisionWorld::new(30.0);
    copy.insert(
        1,
        BodyKind::Static,
        &Shape::Box {
            half_extents: [100.0, 0.5, 100.0],
        },
        [0.0, -0.5, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    )
    .unwrap();
    copy.prepare([3.0, y, 0.0]);
    let s = MovementSettings::default();
    let mut c = CharacterState::new([3.0, y, 0.0]);
    let mut first = None;
    let mut seq = 0u32;
    for round in 0..100 {
        let n = if round % 2 == 0 { 3 } else { 1 };
        let mut batch = Vec::new();
        for _ in 0..n {
            seq += 1;
            let yaw = seq as f32 * 0.01;
            batch.push(PlayerInput {
                seq,
                tick: None,
                movement: [0.0, 1.0],
                look: [yaw.sin(), 0.0, -yaw.cos()],
                jump: false,
                run: false,
            });
        }
        world.queue_inputs(1, &batch);
        for i in &batch {
            c = copy.step_character(&s, -9.81, 1.0 / 60.0, &c, i);
        }
        world.step();
        let srv = world.character_of(1).unwrap();
        if srv.position != c.position && first.is_none() {
            first = Some((seq, srv, c));
        }
    }
    println!("batched first diff {first:?}");
}
