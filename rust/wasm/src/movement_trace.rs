//! A reproducible walk of one avatar with the prediction's movement code, for checking that the
//! WebAssembly build moves exactly as the native one (the server's): the same function runs in
//! both (`examples/movement_trace.rs` natively, `web/client/test/parity.test.ts` in Node).
//!
//! The scene is built without trigonometry (only integer hashing and `+ - * /`, which IEEE 754
//! makes identical everywhere), so any difference comes from the movement code itself.

use nexus_client::CollisionWorld;
use nexus_client::netem::Rng;
use nexus_sim::PlayerInput;
use nexus_sim::movement::{CharacterState, MovementSettings};
use nexus_sim::state::{BodyKind, Shape};
use wasm_bindgen::prelude::*;

const TERRAIN_CELLS: u32 = 33;

/// Positions (`x, y, z` per tick, `ticks * 3` numbers) of an avatar walking, running, turning and
/// jumping over a bumpy heightfield among boxes and balls for `ticks` ticks of 1/60 s, driven by
/// a deterministic input script from `seed`.
#[wasm_bindgen]
pub fn movement_trace(ticks: u32, seed: u32) -> Vec<f32> {
    let mut world = CollisionWorld::new(1.0e6);
    let mut rng = Rng::new(u64::from(seed));
    let heights = (0..TERRAIN_CELLS * TERRAIN_CELLS)
        .map(|_| (rng.next_u64() % 1000) as f32 / 1000.0)
        .collect();
    let terrain = Shape::Heightfield {
        rows: TERRAIN_CELLS,
        cols: TERRAIN_CELLS,
        heights,
        size: [64.0, 0.6, 64.0],
    };
    // The scene is valid by construction; an error here is a bug in this function.
    world
        .insert(
            1,
            BodyKind::Static,
            &terrain,
            [0.0; 3],
            [0.0, 0.0, 0.0, 1.0],
        )
        .expect("terrain");
    for id in 2..14u32 {
        let x = (rng.next_u64() % 40) as f32 - 20.0;
        let z = (rng.next_u64() % 40) as f32 - 20.0;
        let shape = if id % 3 == 0 {
            Shape::Sphere { radius: 0.8 }
        } else {
            Shape::Box {
                half_extents: [1.0, 0.5 + (id % 4) as f32 * 0.25, 1.5],
            }
        };
        let rotation = [0.0, 0.6, 0.0, 0.8];
        world
            .insert(id, BodyKind::Static, &shape, [x, 0.8, z], rotation)
            .expect("obstacle");
    }
    let settings = MovementSettings::default();
    let mut state = CharacterState::new([0.0, 2.0, 0.0]);
    let mut input = PlayerInput {
        seq: 0,
        tick: None,
        movement: [0.0, 0.0],
        look: [0.0, 0.0, 1.0],
        jump: false,
        run: false,
    };
    let mut positions = Vec::with_capacity(ticks as usize * 3);
    for tick in 0..ticks {
        if tick % 30 == 0 {
            let pick = |rng: &mut Rng| (rng.next_u64() % 3) as f32 - 1.0;
            input.movement = [pick(&mut rng), pick(&mut rng)];
            input.look = [pick(&mut rng), 0.0, pick(&mut rng) + 0.5];
            input.run = rng.next_u64().is_multiple_of(2);
        }
        input.jump = rng.next_u64().is_multiple_of(90);
        input.seq = tick;
        world.prepare(state.position);
        state = world.step_character(&settings, -9.81, 1.0 / 60.0, &state, &input);
        positions.extend(state.position);
    }
    positions
}
