//! Client costs, against the server's in the same process: one predicted movement step, the
//! replay of a reconciliation, and decoding + applying a state message, next to one server tick
//! of the same world. `NEXUS_BENCH_SCALE=10` runs ten times longer.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use nexus_client::{ClientSession, CollisionWorld, Encoding, Frame, SessionConfig};
use nexus_protocol::{Snapshot, StateEncoder, StatePayload, StreamSettings};
use nexus_sim::PlayerInput;
use nexus_sim::movement::{CharacterState, MovementSettings};
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};

fn boxes(world: &mut nexus_sim::World, count: usize) {
    for i in 0..count {
        let (row, col) = ((i / 20) as f32, (i % 20) as f32);
        world
            .add_object(ObjectDesc {
                kind: BodyKind::Dynamic,
                shape: Shape::Box {
                    half_extents: [0.3, 0.3, 0.3],
                },
                position: [col * 2.0 - 20.0, 0.3, row * 2.0 - 20.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
                mass: Some(10.0),
                friction: 0.5,
                restitution: 0.0,
                properties: Default::default(),
            })
            .expect("box");
    }
}

fn input(seq: u32) -> PlayerInput {
    let yaw = seq as f32 * 0.01;
    PlayerInput {
        seq,
        tick: None,
        movement: [0.0, 1.0],
        look: [yaw.sin(), 0.0, -yaw.cos()],
        jump: false,
        run: false,
    }
}

fn time<T>(iterations: u32, mut f: impl FnMut(u32) -> T) -> f64 {
    let started = Instant::now();
    for i in 0..iterations {
        black_box(f(i));
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}

fn main() {
    let scale: u32 = std::env::var("NEXUS_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    println!("{:<44} {:>12} {:>10}", "operation", "µs", "ratio");
    for count in [0usize, 200] {
        // Server baseline: one tick of a world with one walking avatar and `count` boxes.
        let mut world = common::flat_world();
        boxes(&mut world, count);
        world
            .spawn_player(1, "bench", Some([0.0, 1.0, 25.0]))
            .unwrap();
        for _ in 0..60 {
            world.step();
        }
        let mut seq = 0;
        let server_tick = time(600 * scale, |_| {
            seq += 1;
            world.queue_inputs(1, &[input(seq)]);
            world.step();
        });

        // Client: the same world's copy, one predicted step.
        let mut copy = CollisionWorld::new(25.0);
        for state in world.snapshot(true).objects {
            if state.kind != BodyKind::Player
                && let Some(shape) = &state.shape
            {
                copy.insert(state.id, state.kind, shape, state.position, state.rotation)
                    .unwrap();
            }
        }
        let settings = MovementSettings::default();
        let mut character = CharacterState::new([0.0, 0.92, 25.0]);
        copy.prepare(character.position);
        let predict = time(6000 * scale, |i| {
            character = copy.step_character(&settings, -9.81, 1.0 / 60.0, &character, &input(i));
            character.position
        });
        // A reconciliation at 200 ms round trip replays about 12 inputs.
        let replay = time(600 * scale, |i| {
            let mut state = character;
            for k in 0..12 {
                state = copy.step_character(&settings, -9.81, 1.0 / 60.0, &state, &input(i + k));
            }
            state.position
        });
        println!(
            "{:<44} {:>12.2} {:>10}",
            format!("server tick, 1 avatar, {count} boxes"),
            server_tick,
            "1.00"
        );
        println!(
            "{:<44} {:>12.2} {:>10.3}",
            "client predicted step",
            predict,
            predict / server_tick
        );
        println!(
            "{:<44} {:>12.2} {:>10.3}",
            "client replay of 12 inputs",
            replay,
            replay / server_tick
        );

        // Decoding and applying state messages (deltas of a moving crowd of boxes).
        for encoding in [Encoding::Binary, Encoding::Json] {
            let mut server = common::SimServer::new(common::flat_world(), 20);
            boxes(&mut server.world, count);
            server.connect(1, encoding);
            let mut config = SessionConfig::new("test", "bench");
            config.encoding = encoding;
            let mut session = ClientSession::new(config);
            session.start(0.0);
            for frame in session.drain_outgoing() {
                for (_, reply) in server.handle(0.0, 1, &frame) {
                    let _ = session.receive(0.0, &reply);
                }
            }
            // Messages of a world where every box moves: the worst case of a delta.
            let mut encoder = StateEncoder::new("test", encoding, StreamSettings::everything());
            let mut frames = Vec::new();
            for tick in 0..(60 * scale) {
                let mut state = server.world.snapshot(false);
                state.tick = u64::from(tick) + 1;
                state.timestamp = common::SERVER_EPOCH + f64::from(tick) / 20.0;
                for (i, object) in state.objects.iter_mut().enumerate() {
                    object.position[1] += 0.01 * (tick as f32 + i as f32).sin();
                    object.velocity = [0.1, 0.0, 0.0];
                }
                let snapshot = Snapshot::new(state);
                let encoded = encoder.encode(&snapshot, None, None).expect("newer tick");
                encoder.acknowledge(encoded.tick);
                frames.push(match encoded.payload {
                    StatePayload::Text(text) => Frame::Text(text),
                    StatePayload::Binary(bytes) => Frame::Binary(bytes),
                });
            }
            let bytes: usize = frames.iter().map(Frame::len).sum();
            let apply = time(frames.len() as u32, |i| {
                let now = f64::from(i) / 20.0;
                session.receive(now, &frames[i as usize]).is_ok()
            });
            println!(
                "{:<44} {:>12.2} {:>10.3}   ({} B/message)",
                format!("client applies a {} state, {count} boxes", encoding.name()),
                apply,
                apply / server_tick,
                bytes / frames.len().max(1)
            );
        }
    }
}
