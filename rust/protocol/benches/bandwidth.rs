//! Bandwidth per client on Glenn Fiedler's "Snapshot Compression" scenario: 901 cubes — a 30×30
//! grid of small cubes settling, plus one big cube pushed around through them — 60 state messages
//! per second, acks arriving after a 100 ms round trip (6 messages later).
//!
//! Streams compared (same world, same run):
//! - full JSON: the whole world state every message (`server::world_state_full`);
//! - delta JSON: `StateEncoder` (JSON) against the acked baseline, no interest limit;
//! - binary delta: `StateEncoder` (binary) against the acked baseline, no interest limit;
//! - binary delta + interest/LOD: the default stream settings, viewer on the big cube.
//!
//! Fiedler's published result for this scenario is under 256 kbit/s. Figures are payload bits (the
//! `+WS frames` column adds the 2–4 byte WebSocket frame headers). "all" averages the whole run,
//! including the first seconds when all 900 cubes fall and settle at once; "≥3 s" is the steady
//! state with the big cube ploughing through the settled grid. Run with
//! `cargo bench -p nexus-protocol --bench bandwidth` (60 s of simulated time, about 15 s of wall
//! time); `NEXUS_BENCH_SECONDS=N` for another length.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nexus_protocol::{
    Encoding, SharedStateEncoder, SharedStreamSettings, SharedTimeline, Snapshot, StateDecoder,
    StateEncoder, StatePayload, StreamSettings, server,
};
use nexus_sim::World;
use nexus_sim::config::WorldConfig;
use nexus_sim::state::{BodyKind, ObjectDesc, ObjectId, Properties, Shape};

const FIEDLER_KBPS: f64 = 256.0;
const RATE: usize = 60;
const ACK_DELAY_MESSAGES: usize = 6; // 100 ms round trip at 60 messages per second
/// The cubes are dropped at the start; after this many seconds they have settled (the steady
/// state is the big cube ploughing through them).
const SETTLE_SECONDS: usize = 3;

struct Stream {
    name: &'static str,
    encoder: Option<StateEncoder>,
    /// The gateway's default stream: encoded once per group of clients (here, one client).
    shared: Option<(SharedTimeline, SharedStateEncoder)>,
    decoder: Option<StateDecoder>,
    acks: VecDeque<(usize, u64)>,
    bytes: Vec<usize>,
    encode_time: Duration,
    listed: usize,
}

impl Stream {
    fn new(name: &'static str, encoder: Option<StateEncoder>) -> Stream {
        let decoder = encoder
            .as_ref()
            .filter(|e| e.encoding() == Encoding::Binary)
            .map(|_| StateDecoder::default());
        Stream {
            name,
            encoder,
            shared: None,
            decoder,
            acks: VecDeque::new(),
            bytes: Vec::new(),
            encode_time: Duration::ZERO,
            listed: 0,
        }
    }
}

/// WebSocket server frame header size for a payload of `len` bytes (no mask from the server).
fn ws_header(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

fn cube(half: f32, position: [f32; 3], rotation: [f32; 4], mass: Option<f32>) -> ObjectDesc {
    ObjectDesc {
        kind: BodyKind::Dynamic,
        shape: Shape::Box {
            half_extents: [half; 3],
        },
        position,
        rotation,
        mass,
        friction: 0.6,
        restitution: 0.0,
        properties: Properties::new(),
    }
}

fn build_world() -> (World, ObjectId) {
    let mut world = World::new(WorldConfig {
        seed: 901,
        ..WorldConfig::default()
    });
    world
        .add_object(ObjectDesc {
            kind: BodyKind::Static,
            shape: Shape::Box {
                half_extents: [150.0, 0.5, 150.0],
            },
            position: [0.0, -0.5, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            mass: None,
            friction: 0.8,
            restitution: 0.0,
            properties: Properties::new(),
        })
        .expect("ground");
    // 30×30 small cubes, 1.5 m apart, dropped from a little height with a slight tilt so they
    // tumble and settle.
    for row in 0..30 {
        for col in 0..30 {
            let x = (col as f32 - 14.5) * 1.5;
            let z = (row as f32 - 14.5) * 1.5;
            let tilt = 0.05 * (((row * 31 + col * 17) % 13) as f32 - 6.0) / 6.0;
            let half_angle = tilt * 0.5;
            let rotation = [half_angle.sin(), 0.0, 0.0, half_angle.cos()];
            world
                .add_object(cube(
                    0.5,
                    [x, 0.5 + 0.3 + (row % 3) as f32 * 0.2, z],
                    rotation,
                    None,
                ))
                .expect("small cube");
        }
    }
    let big = world
        .add_object(cube(
            1.5,
            [-30.0, 1.6, -30.0],
            [0.0, 0.0, 0.0, 1.0],
            Some(200.0),
        ))
        .expect("big cube");
    (world, big)
}

/// Pushes the big cube towards a target moving on a Lissajous path over the grid.
fn push(world: &mut World, big: ObjectId, tick: usize) {
    let t = tick as f32 / RATE as f32;
    let target = [24.0 * (0.31 * t).sin(), 24.0 * (0.47 * t).sin()];
    let Some(state) = world.object_state(big) else {
        return;
    };
    let to = [target[0] - state.position[0], target[1] - state.position[2]];
    let distance = (to[0] * to[0] + to[1] * to[1]).sqrt().max(0.1);
    let speed = 7.0;
    let desired = [to[0] / distance * speed, to[1] / distance * speed];
    let gain = 200.0 * 0.15; // mass × fraction of the velocity error corrected per tick
    let impulse = [
        (desired[0] - state.velocity[0]) * gain,
        0.0,
        (desired[1] - state.velocity[2]) * gain,
    ];
    let _ = world.apply_impulse(big, impulse);
}

fn main() {
    let seconds: usize = std::env::var("NEXUS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
        .max(SETTLE_SECONDS + 1);
    let messages = seconds * RATE;
    let (mut world, big) = build_world();

    let mut streams = vec![
        Stream::new("full JSON (every object)", None),
        Stream::new(
            "delta JSON",
            Some(StateEncoder::new(
                "0",
                Encoding::Json,
                StreamSettings::everything(),
            )),
        ),
        Stream::new(
            "binary delta",
            Some(StateEncoder::new(
                "0",
                Encoding::Binary,
                StreamSettings::everything(),
            )),
        ),
        Stream::new(
            "binary delta + interest/LOD",
            Some(StateEncoder::new(
                "0",
                Encoding::Binary,
                StreamSettings::default(),
            )),
        ),
        {
            let mut stream = Stream::new("binary shared (incl. prep)", None);
            stream.shared = Some((
                SharedTimeline::new("0", SharedStreamSettings::default()),
                SharedStateEncoder::new(Encoding::Binary, f32::INFINITY),
            ));
            stream.decoder = Some(StateDecoder::default());
            stream
        },
    ];

    let started = Instant::now();
    let mut sim_time = Duration::ZERO;
    let mut snapshot_time = Duration::ZERO;
    let mut awake_total = 0usize;
    for message in 0..messages {
        let t = Instant::now();
        push(&mut world, big, message);
        world.step();
        let state = world.snapshot(false);
        sim_time += t.elapsed();
        awake_total += state.physics.awake_count as usize;
        let viewer = world.object_state(big).map(|o| o.position);

        // Full JSON: what a naive server sends.
        let t = Instant::now();
        let full = server::world_state_full("0", &state).to_json();
        streams[0].encode_time += t.elapsed();
        streams[0].bytes.push(full.len());
        streams[0].listed += state.objects.len();

        // The shared stream publishes its own copy (its timeline prepares it).
        let shared_stream = &mut streams[4];
        if let Some((timeline, encoder)) = shared_stream.shared.as_mut() {
            while shared_stream
                .acks
                .front()
                .is_some_and(|(due, _)| *due <= message)
            {
                let (_, tick) = shared_stream.acks.pop_front().expect("ack");
                encoder.acknowledge(tick);
            }
            let t = Instant::now();
            let current = timeline.publish(state.clone());
            let encoded = encoder
                .encode(timeline, &current, None, Some(message as u32))
                .expect("ticks increase");
            shared_stream.encode_time += t.elapsed();
            shared_stream.bytes.push(encoded.payload.len());
            if let (Some(decoder), StatePayload::Binary(bytes)) =
                (&mut shared_stream.decoder, &encoded.payload)
            {
                let decoded = decoder.decode(bytes).expect("the stream decodes");
                shared_stream.listed += decoded.updated.len();
            }
            let tick = current.tick();
            shared_stream
                .acks
                .push_back((message + ACK_DELAY_MESSAGES, tick));
        }

        let t = Instant::now();
        let snapshot = Snapshot::new(state);
        snapshot_time += t.elapsed();
        for (n, stream) in streams.iter_mut().enumerate().skip(1) {
            let Some(encoder) = stream.encoder.as_mut() else {
                continue;
            };
            while stream.acks.front().is_some_and(|(due, _)| *due <= message) {
                let (_, tick) = stream.acks.pop_front().expect("ack");
                encoder.acknowledge(tick);
            }
            let viewer = if n == 3 { viewer } else { None };
            let t = Instant::now();
            let encoded = encoder
                .encode(&snapshot, viewer, Some(message as u32))
                .expect("ticks increase");
            stream.encode_time += t.elapsed();
            stream.bytes.push(encoded.payload.len());
            stream.listed += encoded.listed;
            if let (Some(decoder), StatePayload::Binary(bytes)) =
                (&mut stream.decoder, &encoded.payload)
            {
                let decoded = decoder.decode(bytes).expect("the stream decodes");
                assert_eq!(decoded.objects.len(), encoded.in_view);
            }
            stream
                .acks
                .push_back((message + ACK_DELAY_MESSAGES, encoded.tick));
        }
    }
    let wall = started.elapsed();

    println!(
        "\nFiedler's scenario (his published target and result: under {FIEDLER_KBPS} kbit/s): {} objects, {} s at {RATE} messages/s, acks after {} messages (100 ms RTT)",
        world.object_count(),
        seconds,
        ACK_DELAY_MESSAGES
    );
    println!(
        "average awake bodies: {:.0}; simulation {:.2} ms/tick, snapshot preparation {:.3} ms/tick (once for all clients)\n",
        awake_total as f64 / messages as f64,
        sim_time.as_secs_f64() * 1e3 / messages as f64,
        snapshot_time.as_secs_f64() * 1e3 / messages as f64,
    );
    println!(
        "{:<30} {:>9} {:>11} {:>13} {:>11} {:>11} {:>13} {:>13} {:>10}",
        "stream",
        "bytes/msg",
        "kbit/s all",
        "kbit/s ≥3 s",
        "+WS frames",
        "peak 1 s",
        "all/256 kb/s",
        "vs full JSON",
        "µs/msg"
    );
    let full_kbps = kbps(&streams[0].bytes, false);
    for stream in &streams {
        let avg = kbps(&stream.bytes, false);
        let settled = kbps(
            &stream.bytes[(SETTLE_SECONDS * RATE).min(stream.bytes.len() - 1)..],
            false,
        );
        let framed = kbps(&stream.bytes, true);
        let peak = stream
            .bytes
            .chunks(RATE)
            .map(|second| {
                second.iter().sum::<usize>() as f64 * 8.0 / 1000.0 * RATE as f64
                    / second.len() as f64
            })
            .fold(0.0, f64::max);
        println!(
            "{:<30} {:>9.0} {:>11.1} {:>13.1} {:>11.1} {:>11.1} {:>12.3}x {:>12.4}x {:>10.1}",
            stream.name,
            stream.bytes.iter().sum::<usize>() as f64 / stream.bytes.len() as f64,
            avg,
            settled,
            framed,
            peak,
            avg / FIEDLER_KBPS,
            avg / full_kbps,
            stream.encode_time.as_secs_f64() * 1e6 / messages as f64,
        );
    }
    println!(
        "\n(avg objects listed per message: {})",
        streams
            .iter()
            .map(|s| format!("{} {:.0}", s.name, s.listed as f64 / messages as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let profile: Vec<String> = streams[2]
        .bytes
        .chunks(RATE)
        .map(|second| format!("{:.0}", second.iter().sum::<usize>() as f64 * 8.0 / 1000.0))
        .collect();
    println!("binary delta, kbit/s in each second: {}", profile.join(" "));
    println!("wall time {:.1} s", wall.as_secs_f64());
}

fn kbps(bytes: &[usize], with_frames: bool) -> f64 {
    let total: usize = bytes
        .iter()
        .map(|b| b + if with_frames { ws_header(*b) } else { 0 })
        .sum();
    total as f64 * 8.0 / 1000.0 / (bytes.len() as f64 / RATE as f64)
}
