//! Input processing rules: validation, duplicates, stale and future inputs, acks, history, and
//! that a client drives only its own avatar.

mod common;

use common::*;
use nexus_sim::*;

fn world_with_player(client: ClientId) -> World {
    let mut world = world_with_ground();
    world
        .spawn_player(client, "p", Some([0.0, 1.0, 0.0]))
        .unwrap();
    run(&mut world, 30); // settle on the ground
    world
}

#[test]
fn non_finite_and_out_of_range_inputs_are_rejected_with_a_reason() {
    let mut world = world_with_player(1);
    let mut nan_move = input(1, [f32::NAN, 0.0]);
    nan_move.seq = 1;
    let mut inf_look = input(2, [0.0, 1.0]);
    inf_look.look = [f32::INFINITY, 0.0, 0.0];
    let too_fast = input(3, [0.0, 1.5]);
    let mut huge_look = input(4, [0.0, 0.0]);
    huge_look.look = [1.0e9, 0.0, 0.0];
    let fine = input(5, [0.0, 1.0]);
    let rejected = world.queue_inputs(1, &[nan_move, inf_look, too_fast, huge_look, fine]);
    let codes: Vec<(u32, &str)> = rejected.iter().map(|r| (r.seq, r.code.as_str())).collect();
    assert_eq!(
        codes,
        vec![
            (1, "non_finite"),
            (2, "non_finite"),
            (3, "out_of_range"),
            (4, "out_of_range")
        ]
    );
    assert!(rejected.iter().all(|r| !r.message.is_empty()));
    assert_eq!(
        world.pending_input_count(1),
        1,
        "the valid input of the batch stays"
    );
    assert_eq!(world.input_stats(1).unwrap().rejected, 4);
}

#[test]
fn inputs_for_a_client_without_avatar_are_rejected() {
    let mut world = world_with_ground();
    let rejected = world.queue_inputs(9, &[input(1, [0.0, 1.0]), input(2, [0.0, 1.0])]);
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|r| r.code == "no_avatar"));
}

#[test]
fn duplicates_and_stale_inputs_are_ignored_and_not_applied_twice() {
    let mut world = world_with_player(1);
    let batch: Vec<_> = (1..=10).map(|s| input(s, [0.0, 1.0])).collect();
    assert!(world.queue_inputs(1, &batch).is_empty());
    // The same batch again while queued: all duplicates.
    assert!(world.queue_inputs(1, &batch).is_empty());
    assert_eq!(world.pending_input_count(1), 10);
    run(&mut world, 12);
    assert_eq!(world.last_processed_input(1), Some(10));
    let z_after = world.character_of(1).unwrap().position[2];
    // Resent after processing: in the history -> duplicates; older than the ack -> stale.
    assert!(world.queue_inputs(1, &batch).is_empty());
    let stats = world.input_stats(1).unwrap();
    assert_eq!(stats.accepted, 10);
    assert_eq!(stats.processed, 10);
    assert_eq!(stats.duplicates, 20);
    assert_eq!(world.pending_input_count(1), 0);
    run(&mut world, 5);
    assert_eq!(
        world.character_of(1).unwrap().position[2],
        z_after,
        "nothing replayed"
    );
}

#[test]
fn inputs_older_than_the_ack_but_not_in_history_are_stale() {
    let mut config = WorldConfig::default();
    config.input.history = 2;
    let mut world = World::new(config);
    world.add_object(ground()).unwrap();
    world.spawn_player(1, "p", Some([0.0, 1.0, 0.0])).unwrap();
    let batch: Vec<_> = (1..=5).map(|s| input(s, [0.0, 1.0])).collect();
    world.queue_inputs(1, &batch);
    run(&mut world, 3);
    assert!(world.queue_inputs(1, &[input(1, [0.0, 1.0])]).is_empty());
    assert_eq!(world.input_stats(1).unwrap().stale, 1);
}

#[test]
fn inputs_targeting_a_long_past_tick_are_stale() {
    let mut world = world_with_player(1);
    run(&mut world, 100);
    let mut late = input(1, [0.0, 1.0]);
    late.tick = Some(10);
    assert!(world.queue_inputs(1, &[late]).is_empty());
    assert_eq!(world.input_stats(1).unwrap().stale, 1);
    assert_eq!(world.pending_input_count(1), 0);
    // A slightly late one is still used.
    let mut slightly = input(2, [0.0, 1.0]);
    slightly.tick = Some(world.tick() - 5);
    world.queue_inputs(1, &[slightly]);
    world.step();
    assert_eq!(world.last_processed_input(1), Some(2));
}

#[test]
fn future_inputs_are_held_until_their_tick() {
    let mut world = world_with_player(1);
    let target = world.tick() + 10;
    let mut future = input(1, [0.0, 1.0]);
    future.tick = Some(target);
    assert!(world.queue_inputs(1, &[future]).is_empty());
    while world.tick() + 1 < target {
        world.step();
        assert_eq!(
            world.last_processed_input(1),
            None,
            "held at tick {}",
            world.tick()
        );
    }
    world.step();
    assert_eq!(world.tick(), target);
    assert_eq!(world.last_processed_input(1), Some(1));
}

#[test]
fn too_far_ahead_and_queue_full_are_rejected() {
    let mut world = world_with_player(1);
    let mut far = input(1, [0.0, 0.0]);
    far.tick = Some(world.tick() + 10_000);
    let rejected = world.queue_inputs(1, &[far]);
    assert_eq!(rejected[0].code, "too_far_ahead");
    let max = world.config().input.max_queued as u32;
    let batch: Vec<_> = (10..10 + max + 3).map(|s| input(s, [0.0, 0.0])).collect();
    let rejected = world.queue_inputs(1, &batch);
    assert_eq!(rejected.len(), 3);
    assert!(rejected.iter().all(|r| r.code == "queue_full"));
}

#[test]
fn history_keeps_the_last_sixty_for_inputs_since() {
    let mut world = world_with_player(1);
    let batch: Vec<_> = (1..=100).map(|s| input(s, [0.0, 0.5])).collect();
    world.queue_inputs(1, &batch);
    run(&mut world, 100);
    assert_eq!(world.last_processed_input(1), Some(100));
    let all = world.inputs_since(1, 0);
    assert_eq!(all.len(), 60);
    assert_eq!(all.first().unwrap().seq, 41);
    let since: Vec<u32> = world.inputs_since(1, 95).iter().map(|i| i.seq).collect();
    assert_eq!(since, vec![96, 97, 98, 99, 100]);
    assert!(world.inputs_since(2, 0).is_empty());
}

#[test]
fn a_batch_is_processed_in_sequence_order_up_to_the_per_tick_limit() {
    let mut world = world_with_player(1);
    let batch = vec![
        input(3, [0.0, 1.0]),
        input(1, [0.0, 1.0]),
        input(2, [0.0, 1.0]),
    ];
    world.queue_inputs(1, &batch);
    world.step();
    let processed: Vec<u32> = world.inputs_since(1, 0).iter().map(|i| i.seq).collect();
    assert_eq!(processed, vec![1, 2, 3]);
    let max = world.config().input.max_per_tick;
    let batch: Vec<_> = (4..4 + 2 * max as u32)
        .map(|s| input(s, [0.0, 1.0]))
        .collect();
    world.queue_inputs(1, &batch);
    world.step();
    assert_eq!(world.last_processed_input(1), Some(3 + max as u32));
}

#[test]
fn a_client_drives_only_its_own_avatar() {
    let mut world = world_with_ground();
    world.spawn_player(1, "a", Some([0.0, 1.0, 0.0])).unwrap();
    world.spawn_player(2, "b", Some([5.0, 1.0, 0.0])).unwrap();
    run(&mut world, 30);
    let b_before = world.character_of(2).unwrap().position;
    let batch: Vec<_> = (1..=30).map(|s| input(s, [1.0, 0.0])).collect();
    world.queue_inputs(1, &batch);
    run(&mut world, 30);
    let a = world.character_of(1).unwrap().position;
    let b = world.character_of(2).unwrap().position;
    assert!(a[0] > 1.5, "client 1 moved right: {a:?}");
    // Idle avatars still get gravity steps; they may settle by micrometres, never walk.
    assert!(
        dist(b, b_before) < 1.0e-3,
        "client 2 did not move: {b:?} vs {b_before:?}"
    );
    assert_eq!(world.last_processed_input(2), None);
}
