//! Objects, ticks, sleeping, players and movement.

mod common;

use common::*;
use nexus_sim::*;

#[test]
fn a_box_falls_lands_and_sleeps() {
    let mut world = world_with_ground();
    let id = world.add_object(crate_at([0.0, 3.0, 0.0], 0.5)).unwrap();
    assert_eq!(world.tick(), 0);
    run(&mut world, 240);
    assert_eq!(world.tick(), 240);
    let state = world.object_state(id).unwrap();
    assert!(
        (state.position[1] - 0.5).abs() < 0.05,
        "rests on the ground: {state:?}"
    );
    assert!(state.sleeping, "at rest it sleeps: {state:?}");
    assert_eq!(world.physics_info().awake_count, 0);
    // Sleeping bodies cost nothing: a step touches no object and emits nothing.
    let before = world.tick();
    world.drain_events();
    run(&mut world, 5);
    assert!(world.changed_since(before).is_empty());
    assert!(world.drain_events().is_empty());
    assert_eq!(world.object_state(id).unwrap(), state);
}

#[test]
fn a_player_walks_forward() {
    for solver in SOLVERS {
        let mut world = world_with_ground_moved_by(solver);
        let avatar = world.spawn_player(7, "ana", Some([0.0, 1.0, 0.0])).unwrap();
        assert_eq!(world.avatar_of(7), Some(avatar));
        let inputs: Vec<_> = (1..=60).map(|s| input(s, [0.0, 1.0])).collect();
        assert!(world.queue_inputs(7, &inputs).is_empty());
        run(&mut world, 80);
        let c = world.character_of(7).unwrap();
        assert!(c.grounded, "{c:?}");
        // 60 inputs at 4 m/s, 1/60 s each: 4 m towards -Z.
        assert!((c.position[2] + 4.0).abs() < 0.1, "{c:?}");
        assert_eq!(world.last_processed_input(7), Some(60));
        let state = world.object_state(avatar).unwrap();
        assert!((state.position[2] - c.position[2]).abs() < 1e-4);
    }
}

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

#[test]
fn every_shape_and_body_kind_can_be_added_and_ids_are_never_reused() {
    let mut world = world_with_ground();
    let hull = Shape::ConvexHull {
        points: vec![
            [0.0, 0.5, 0.0],
            [0.5, -0.5, 0.5],
            [-0.5, -0.5, 0.5],
            [0.0, -0.5, -0.5],
        ],
    };
    let mesh = Shape::TriangleMesh {
        vertices: vec![[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [0.0, 0.0, 1.0]],
        indices: vec![[0, 1, 2]],
    };
    let field = Shape::Heightfield {
        rows: 2,
        cols: 2,
        heights: vec![0.0; 4],
        size: [4.0, 1.0, 4.0],
    };
    let cases = [
        (
            BodyKind::Dynamic,
            Shape::Box {
                half_extents: [0.5, 0.5, 0.5],
            },
        ),
        (BodyKind::Dynamic, Shape::Sphere { radius: 0.5 }),
        (
            BodyKind::Dynamic,
            Shape::Capsule {
                half_height: 0.5,
                radius: 0.3,
            },
        ),
        (
            BodyKind::Dynamic,
            Shape::Cylinder {
                half_height: 0.5,
                radius: 0.3,
            },
        ),
        (BodyKind::Dynamic, hull),
        (BodyKind::Static, mesh.clone()),
        (BodyKind::Kinematic, mesh),
        (BodyKind::Static, field),
        (
            BodyKind::Kinematic,
            Shape::Box {
                half_extents: [1.0, 0.1, 1.0],
            },
        ),
    ];
    let mut ids = Vec::new();
    for (i, (kind, shape)) in cases.into_iter().enumerate() {
        let id = world
            .add_object(desc(kind, shape.clone(), [i as f32 * 5.0, 3.0, 0.0]))
            .unwrap_or_else(|e| panic!("{kind:?} {shape:?}: {e}"));
        let state = world.object_state_with_shape(id, true).unwrap();
        assert_eq!(state.kind, kind);
        assert_eq!(state.shape, Some(shape));
        ids.push(id);
    }
    let added = world
        .drain_events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                WorldEvent::ObjectAdded {
                    environment: false,
                    ..
                }
            )
        })
        .count();
    assert_eq!(added, ids.len() + 1, "ground + each object");
    world.remove_object(ids[0]).unwrap();
    let next = world.add_object(crate_at([0.0, 9.0, 0.0], 0.5)).unwrap();
    assert!(next > *ids.last().unwrap(), "a removed id is never reused");
    assert!(matches!(
        world.drain_events()[0],
        WorldEvent::ObjectRemoved { id, ref reason } if id == ids[0] && reason == "removed"
    ));
    run(&mut world, 60);
    // The dynamic ones fell; static and kinematic stayed.
    assert!(world.object_state(ids[1]).unwrap().position[1] < 1.0);
    assert_eq!(world.object_state(ids[5]).unwrap().position[1], 3.0);
    assert_eq!(world.object_state(ids[8]).unwrap().position[1], 3.0);
}

#[test]
fn invalid_descriptions_are_refused_with_a_code() {
    let mut world = World::new(WorldConfig::default());
    let b = |h: [f32; 3]| Shape::Box { half_extents: h };
    let cube = || crate_at([0.0; 3], 0.5);
    let cases: Vec<(ObjectDesc, &str)> = vec![
        (
            desc(BodyKind::Dynamic, b([0.0, 1.0, 1.0]), [0.0; 3]),
            "invalid_shape",
        ),
        (
            desc(BodyKind::Dynamic, b([f32::NAN, 1.0, 1.0]), [0.0; 3]),
            "invalid_shape",
        ),
        (
            desc(BodyKind::Dynamic, Shape::Sphere { radius: -1.0 }, [0.0; 3]),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Dynamic,
                Shape::Capsule {
                    half_height: 1.0,
                    radius: f32::INFINITY,
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Dynamic,
                Shape::ConvexHull {
                    points: vec![[0.0; 3]; 3],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Dynamic,
                Shape::ConvexHull {
                    points: vec![[0.0; 3]; 6],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Static,
                Shape::TriangleMesh {
                    vertices: vec![[0.0; 3]; 3],
                    indices: vec![[0, 1, 7]],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Dynamic,
                Shape::TriangleMesh {
                    vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                    indices: vec![[0, 1, 2]],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Static,
                Shape::Heightfield {
                    rows: 2,
                    cols: 2,
                    heights: vec![0.0; 3],
                    size: [1.0; 3],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Static,
                Shape::Heightfield {
                    rows: 1,
                    cols: 2,
                    heights: vec![0.0; 2],
                    size: [1.0; 3],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(
                BodyKind::Static,
                Shape::Heightfield {
                    rows: 2,
                    cols: 2,
                    heights: vec![0.0, f32::NAN, 0.0, 0.0],
                    size: [1.0; 3],
                },
                [0.0; 3],
            ),
            "invalid_shape",
        ),
        (
            desc(BodyKind::Player, b([1.0; 3]), [0.0; 3]),
            "invalid_kind",
        ),
        (
            ObjectDesc {
                position: [f32::NAN, 0.0, 0.0],
                ..cube()
            },
            "invalid_position",
        ),
        (
            ObjectDesc {
                position: [1.0e9, 0.0, 0.0],
                ..cube()
            },
            "invalid_position",
        ),
        (
            ObjectDesc {
                rotation: [0.0; 4],
                ..cube()
            },
            "invalid_rotation",
        ),
        (
            ObjectDesc {
                mass: Some(0.0),
                ..cube()
            },
            "invalid_mass",
        ),
        (
            ObjectDesc {
                mass: Some(f32::NAN),
                ..cube()
            },
            "invalid_mass",
        ),
        (
            ObjectDesc {
                friction: -1.0,
                ..cube()
            },
            "invalid_material",
        ),
        (
            ObjectDesc {
                restitution: 2.0,
                ..cube()
            },
            "invalid_material",
        ),
    ];
    for (bad, code) in cases {
        let err = world.add_object(bad.clone()).unwrap_err();
        assert_eq!(err.code, code, "{bad:?}: {err}");
        assert!(!err.message.is_empty());
    }
    assert_eq!(world.object_count(), 0);
    assert!(world.drain_events().is_empty());
}

#[test]
fn impulses_and_poses_are_validated() {
    let mut world = world_with_ground();
    let ground = world.object_ids()[0];
    let b = world.add_object(crate_at([0.0, 0.5, 0.0], 0.5)).unwrap();
    assert_eq!(
        world.apply_impulse(999, [1.0, 0.0, 0.0]).unwrap_err().code,
        "unknown_object"
    );
    assert_eq!(
        world
            .apply_impulse(b, [f32::NAN, 0.0, 0.0])
            .unwrap_err()
            .code,
        "non_finite"
    );
    assert_eq!(
        world
            .apply_impulse(ground, [1.0, 0.0, 0.0])
            .unwrap_err()
            .code,
        "not_dynamic"
    );
    world.apply_impulse(b, [0.0, 10.0, 0.0]).unwrap();
    world.step();
    assert!(world.object_state(b).unwrap().velocity[1] > 5.0);
    world
        .set_object_pose(b, [3.0, 4.0, 5.0], [0.0, 0.0, 0.0, 2.0])
        .unwrap();
    let s = world.object_state(b).unwrap();
    assert_eq!(s.position, [3.0, 4.0, 5.0]);
    assert_eq!(s.rotation, [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(
        world
            .set_object_pose(b, [f32::NAN; 3], [0.0, 0.0, 0.0, 1.0])
            .unwrap_err()
            .code,
        "invalid_position"
    );
    let avatar = world.spawn_player(1, "p", None).unwrap();
    assert_eq!(
        world
            .set_object_pose(avatar, [0.0; 3], [0.0, 0.0, 0.0, 1.0])
            .unwrap_err()
            .code,
        "is_avatar"
    );
    assert_eq!(world.remove_object(avatar).unwrap_err().code, "is_avatar");
}

#[test]
fn players_spawn_once_apart_and_leave_cleanly() {
    let mut world = world_with_ground();
    let a = world.spawn_player(1, "ana", None).unwrap();
    let b = world.spawn_player(2, "bob", None).unwrap();
    assert_eq!(
        world.spawn_player(1, "ana", None).unwrap_err().code,
        "already_spawned"
    );
    assert_eq!(
        world
            .spawn_player(3, "x", Some([f32::INFINITY, 0.0, 0.0]))
            .unwrap_err()
            .code,
        "invalid_position"
    );
    let pa = world.object_state(a).unwrap().position;
    let pb = world.object_state(b).unwrap().position;
    assert!(
        dist(pa, pb) > 0.7,
        "the second avatar spawned beside the first: {pa:?} {pb:?}"
    );
    let props = world.object_state(a).unwrap().properties;
    assert_eq!(props.get("name"), Some(&serde_json::json!("ana")));
    assert_eq!(props.get("client_id"), Some(&serde_json::json!(1)));
    assert_eq!(world.owner_of(a), Some(1));
    assert_eq!(world.clients(), vec![1, 2]);
    world.remove_player(1);
    world.remove_player(1); // no-op
    assert_eq!(world.avatar_of(1), None);
    assert!(world.object_state(a).is_none());
    assert_eq!(world.last_processed_input(1), None);
    assert_eq!(world.clients(), vec![2]);
}

#[test]
fn hundreds_of_players_joining_at_once_get_their_own_spots() {
    let mut world = world_with_ground();
    // All in one tick, before any step: none of them is in the broad phase yet.
    let avatars: Vec<_> = (0..300)
        .map(|c| world.spawn_player(c, &format!("p{c}"), None).unwrap())
        .collect();
    let positions: Vec<[f32; 3]> = avatars
        .iter()
        .map(|&a| world.object_state(a).unwrap().position)
        .collect();
    // No two capsules (radius 0.35 m on the default settings) overlap.
    let mut closest = f32::INFINITY;
    for (i, p) in positions.iter().enumerate() {
        for q in &positions[i + 1..] {
            closest = closest.min(dist(*p, *q));
        }
    }
    assert!(closest > 0.7, "two avatars spawned {closest} m apart");
}

/// A player at `start` that walks along -Z for `ticks` ticks with `make` building each input.
fn walk(world: &mut World, client: ClientId, ticks: u32, make: impl Fn(u32) -> PlayerInput) {
    let batch: Vec<_> = (1..=ticks).map(make).collect();
    for chunk in batch.chunks(60) {
        world.queue_inputs(client, chunk);
        run(world, chunk.len());
    }
}

#[test]
fn running_is_faster_than_walking_and_jumping_lifts_off() {
    for solver in SOLVERS {
        let mut world = world_with_ground_moved_by(solver);
        world.spawn_player(1, "w", Some([0.0, 1.0, 0.0])).unwrap();
        world.spawn_player(2, "r", Some([5.0, 1.0, 0.0])).unwrap();
        run(&mut world, 20);
        walk(&mut world, 1, 60, |s| input(s, [0.0, 1.0]));
        walk(&mut world, 2, 60, |s| PlayerInput {
            run: true,
            ..input(s, [0.0, 1.0])
        });
        let w = world.character_of(1).unwrap().position[2];
        let r = world.character_of(2).unwrap().position[2];
        assert!(
            (w + 4.0).abs() < 0.1 && (r + 7.5).abs() < 0.15,
            "walk {w}, run {r}"
        );

        let ground_y = world.character_of(1).unwrap().position[1];
        let mut peak = ground_y;
        let jump = PlayerInput {
            jump: true,
            ..input(61, [0.0, 0.0])
        };
        world.queue_inputs(1, &[jump]);
        for s in 62..142 {
            world.queue_inputs(1, &[input(s, [0.0, 0.0])]);
            world.step();
            peak = peak.max(world.character_of(1).unwrap().position[1]);
        }
        // v²/2g = 5.5² / 19.62 ≈ 1.54 m.
        assert!(
            (peak - ground_y - 1.54).abs() < 0.1,
            "jump height {}",
            peak - ground_y
        );
        let c = world.character_of(1).unwrap();
        assert!(
            c.grounded && (c.position[1] - ground_y).abs() < 0.02,
            "landed: {c:?}"
        );
    }
}

#[test]
fn an_avatar_falls_when_it_has_no_ground() {
    let mut world = World::new(WorldConfig::default());
    world.spawn_player(1, "f", Some([0.0, 10.0, 0.0])).unwrap();
    // No input at all: idle steps still apply gravity after a short grace period.
    run(&mut world, 60);
    let c = world.character_of(1).unwrap();
    assert!(c.position[1] < 7.0 && !c.grounded, "{c:?}");
}

fn ramp(angle_deg: f32, z_center: f32) -> ObjectDesc {
    let half = [2.0, 0.1, 4.0];
    let a = angle_deg.to_radians() * 0.5;
    // Rotated about X so that it rises towards -Z.
    let rotation = [a.sin(), 0.0, 0.0, a.cos()];
    let rise = 4.0 * angle_deg.to_radians().sin();
    ObjectDesc {
        rotation,
        ..desc(
            BodyKind::Static,
            Shape::Box { half_extents: half },
            [0.0, rise - 0.1, z_center],
        )
    }
}

#[test]
fn slopes_up_to_the_limit_are_climbed_steeper_ones_are_not() {
    for solver in SOLVERS {
        for (angle, climbs) in [(25.0, true), (60.0, false)] {
            let mut world = world_with_ground_moved_by(solver);
            world.add_object(ramp(angle, -5.0)).unwrap();
            world.spawn_player(1, "c", Some([0.0, 1.0, 0.0])).unwrap();
            run(&mut world, 20);
            let mut highest = 0.0f32;
            for s in 1..=150 {
                world.queue_inputs(1, &[input(s, [0.0, 1.0])]);
                world.step();
                highest = highest.max(world.character_of(1).unwrap().position[1]);
            }
            if climbs {
                assert!(highest > 2.5, "{angle}° climbed: {highest}");
            } else {
                assert!(highest < 1.5, "{angle}° is too steep: {highest}");
            }
        }
    }
}

#[test]
fn small_steps_are_stepped_onto_tall_ones_block() {
    for solver in SOLVERS {
        for (height, steps) in [(0.25, true), (0.7, false)] {
            let mut world = world_with_ground_moved_by(solver);
            let block = desc(
                BodyKind::Static,
                Shape::Box {
                    half_extents: [3.0, height / 2.0, 3.0],
                },
                [0.0, height / 2.0, -4.0],
            );
            world.add_object(block).unwrap();
            world.spawn_player(1, "s", Some([0.0, 1.0, 0.0])).unwrap();
            run(&mut world, 20);
            walk(&mut world, 1, 90, |s| input(s, [0.0, 1.0]));
            let p = world.character_of(1).unwrap().position;
            if steps {
                assert!(
                    p[2] < -2.0 && p[1] > 0.9 + height - 0.05,
                    "stepped onto {height}: {p:?}"
                );
            } else {
                assert!(p[2] > -1.2, "blocked by {height}: {p:?}");
            }
        }
    }
}

#[test]
fn walking_into_a_box_pushes_it() {
    for solver in SOLVERS {
        let mut world = world_with_ground_moved_by(solver);
        let mut light = crate_at([0.0, 0.3, -2.0], 0.3);
        light.friction = 0.2;
        let b = world.add_object(light).unwrap();
        world.spawn_player(1, "p", Some([0.0, 1.0, 0.0])).unwrap();
        run(&mut world, 20);
        walk(&mut world, 1, 120, |s| input(s, [0.0, 1.0]));
        let moved = world.object_state(b).unwrap().position;
        assert!(moved[2] < -3.0, "pushed along -Z: {moved:?}");
    }
}

#[test]
fn the_look_direction_turns_the_avatar_and_its_movement() {
    let mut world = world_with_ground();
    let avatar = world.spawn_player(1, "l", Some([0.0, 1.0, 0.0])).unwrap();
    run(&mut world, 20);
    // Look along +X: forward input now moves +X, and the avatar's yaw is -90°.
    walk(&mut world, 1, 30, |s| PlayerInput {
        look: [1.0, -0.3, 0.0],
        ..input(s, [0.0, 1.0])
    });
    let c = world.character_of(1).unwrap();
    assert!(c.position[0] > 1.8 && c.position[2].abs() < 0.05, "{c:?}");
    let q = world.object_state(avatar).unwrap().rotation;
    let expected = (-std::f32::consts::FRAC_PI_4).sin_cos();
    assert!(
        (q[1] - expected.0).abs() < 1e-3 && (q[3] - expected.1).abs() < 1e-3,
        "{q:?}"
    );
    // A zero look keeps the facing.
    walk(&mut world, 1, 10, |s| PlayerInput {
        look: [0.0; 3],
        ..input(s + 30, [0.0, 1.0])
    });
    assert!(world.character_of(1).unwrap().position[0] > c.position[0] + 0.5);
}

#[test]
fn the_world_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<World>();
    assert_send_sync::<WorldSave>();
}

#[test]
fn a_kinematic_platform_moves_smoothly_and_pushes_boxes() {
    let mut world = world_with_ground();
    let mut wall = desc(
        BodyKind::Kinematic,
        Shape::Box {
            half_extents: [0.2, 1.0, 2.0],
        },
        [-2.0, 1.0, 0.0],
    );
    wall.friction = 0.0;
    let wall = world.add_object(wall).unwrap();
    let b = world.add_object(crate_at([0.0, 0.5, 0.0], 0.5)).unwrap();
    run(&mut world, 30);
    for t in 1..=90 {
        let x = -2.0 + t as f32 * (3.0 / 90.0);
        world
            .move_kinematic(wall, [x, 1.0, 0.0], identity_rotation())
            .unwrap();
        world.step();
    }
    let w = world.object_state(wall).unwrap();
    assert!((w.position[0] - 1.0).abs() < 1e-4, "{w:?}");
    assert!(
        world.object_state(b).unwrap().position[0] > 1.0,
        "the box was pushed"
    );
    assert_eq!(
        world
            .move_kinematic(b, [0.0; 3], identity_rotation())
            .unwrap_err()
            .code,
        "not_kinematic"
    );
    assert_eq!(
        world
            .move_kinematic(999, [0.0; 3], identity_rotation())
            .unwrap_err()
            .code,
        "unknown_object"
    );
    assert_eq!(
        world
            .move_kinematic(wall, [0.0; 3], [f32::NAN; 4])
            .unwrap_err()
            .code,
        "invalid_rotation"
    );
}
