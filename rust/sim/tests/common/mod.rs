//! Helpers shared by the integration tests.
#![allow(dead_code)]

use nexus_sim::*;

/// A static ground box whose top is at y = 0.
pub fn ground() -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Box {
            half_extents: [50.0, 0.5, 50.0],
        },
        position: [0.0, -0.5, 0.0],
        rotation: identity_rotation(),
        mass: None,
        friction: 0.8,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

/// A dynamic box of half size `h` at `position`.
pub fn crate_at(position: [f32; 3], h: f32) -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Dynamic,
        shape: Shape::Box {
            half_extents: [h, h, h],
        },
        position,
        rotation: identity_rotation(),
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

/// A world with a ground.
pub fn world_with_ground() -> World {
    world_with_ground_moved_by(MovementSolver::default())
}

/// Both movement solvers: the player rules hold for each.
pub const SOLVERS: [MovementSolver; 2] =
    [MovementSolver::ClosedForm, MovementSolver::RapierController];

/// A world with a ground whose avatars move with `solver`.
pub fn world_with_ground_moved_by(solver: MovementSolver) -> World {
    let mut config = WorldConfig::default();
    config.movement.solver = solver;
    let mut world = World::new(config);
    world.add_object(ground()).expect("ground");
    world
}

/// An input moving forward (or as given).
pub fn input(seq: u32, movement: [f32; 2]) -> PlayerInput {
    PlayerInput {
        seq,
        tick: None,
        movement,
        look: [0.0, 0.0, -1.0],
        jump: false,
        run: false,
    }
}

/// Steps `n` ticks.
pub fn run(world: &mut World, n: usize) {
    for _ in 0..n {
        world.step();
    }
}

/// Drains events and keeps the interaction results.
pub fn results(world: &mut World) -> Vec<InteractionResult> {
    world
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            WorldEvent::InteractionResult(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Distance between two points.
pub fn dist(a: [f32; 3], b: [f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}
