//! Shared state stream benchmark: the gateway's encoding work for a crowd.
//!
//! `N` avatars walk about a square (each changing direction now and then) and each avatar's
//! player is a client whose view follows it: the load benchmark's situation without sockets. Every
//! publication (every 3rd tick at 60 Hz), every client is served (or, in the "lagging" rows, each
//! client only with a probability, as a gateway that falls behind serves them), and acknowledges
//! its message two publications later. Printed per row: distinct messages encoded per publication
//! (groups), CPU time of encoding per publication and per second of play, and bytes per client
//! per publication. The "paced" row serves every client the baseline grid's publications only
//! (every 4th), as the gateway serves clients that lag: the same share of states as the 25 % row,
//! but the same ones for everybody.
//!
//! Baseline in the same run: the per-client encoder (`StateEncoder`, one encoding per client)
//! over the first clients of the same crowd, scaled to all clients.
//!
//! Run: `cargo bench -p nexus-protocol --bench shared_stream`. Environment:
//! `NEXUS_SHARED_CLIENTS=1000` (avatars = clients), `NEXUS_SHARED_PUBLICATIONS=120`,
//! `NEXUS_BENCH_QUICK=1` (200 clients, 40 publications).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nexus_protocol::{
    Encoding, SharedStateEncoder, SharedStreamSettings, SharedTimeline, Snapshot, StateEncoder,
    StatePayload, StreamSettings,
};
use nexus_sim::state::{BodyKind, ObjectState, PhysicsInfo, Tick, WorldState};
use nexus_sim::{World, WorldConfig};

/// Side of the square the crowd walks in, metres (the demo terrain's size).
const AREA: f32 = 256.0;
const RADIUS: f32 = 120.0;
const TICKS_PER_PUBLICATION: u64 = 3;
const ACK_DELAY: usize = 2;
/// Publications measured after this many warm-up ones.
const WARMUP: usize = 20;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Crowd {
    /// A new world's state: its physics facts and environment.
    empty: WorldState,
    positions: Vec<[f32; 3]>,
    headings: Vec<f32>,
    rng: Rng,
}

impl Crowd {
    fn new(count: usize, seed: u64) -> Crowd {
        let mut rng = Rng(seed);
        let positions = (0..count)
            .map(|_| {
                [
                    rng.unit() * AREA - AREA / 2.0,
                    1.0,
                    rng.unit() * AREA - AREA / 2.0,
                ]
            })
            .collect();
        let headings = (0..count)
            .map(|_| rng.unit() * std::f32::consts::TAU)
            .collect();
        Crowd {
            empty: World::new(WorldConfig::default()).snapshot(false),
            positions,
            headings,
            rng,
        }
    }

    /// Walks everyone for `ticks` ticks at 4 m/s, turning now and then, bouncing off the edges.
    fn walk(&mut self, ticks: u64) {
        let step = 4.0 / 60.0 * ticks as f32;
        for (position, heading) in self.positions.iter_mut().zip(&mut self.headings) {
            if self.rng.unit() < 0.02 {
                *heading = self.rng.unit() * std::f32::consts::TAU;
            }
            let (s, c) = heading.sin_cos();
            position[0] += c * step;
            position[2] += s * step;
            for axis in [0, 2] {
                if position[axis].abs() > AREA / 2.0 {
                    position[axis] = position[axis].clamp(-AREA / 2.0, AREA / 2.0);
                    *heading += std::f32::consts::PI;
                }
            }
        }
    }

    fn state(&self, tick: Tick) -> WorldState {
        WorldState {
            timestamp: tick as f64 / 60.0,
            tick,
            objects: self
                .positions
                .iter()
                .zip(&self.headings)
                .enumerate()
                .map(|(i, (position, heading))| ObjectState {
                    id: i as u32 + 1,
                    kind: BodyKind::Kinematic,
                    position: *position,
                    rotation: [0.0, (heading * 0.5).sin(), 0.0, (heading * 0.5).cos()],
                    velocity: [heading.cos() * 4.0, 0.0, heading.sin() * 4.0],
                    angular_velocity: [0.0; 3],
                    sleeping: false,
                    shape: None,
                    properties: Default::default(),
                })
                .collect(),
            physics: PhysicsInfo {
                body_count: self.positions.len() as u32,
                awake_count: self.positions.len() as u32,
                ..self.empty.physics.clone()
            },
            environment: self.empty.environment.clone(),
        }
    }
}

fn payload_len(payload: &StatePayload) -> usize {
    match payload {
        StatePayload::Text(text) => text.len(),
        StatePayload::Binary(bytes) => bytes.len(),
    }
}

/// The acks of `pending` due by `publication`, oldest first.
fn due_acks(pending: &mut VecDeque<(usize, Tick)>, publication: usize) -> Vec<Tick> {
    let due = pending.partition_point(|&(at, _)| at <= publication);
    pending.drain(..due).map(|(_, tick)| tick).collect()
}

struct Row {
    groups_per_publication: f64,
    per_publication: Duration,
    bytes_per_client: f64,
}

/// The shared encoder: every client served with probability `served`, or (`paced`) every client
/// served the baseline grid's publications only, as the gateway paces lagging clients.
fn shared_run(clients: usize, publications: usize, served: f32, paced: bool) -> Row {
    let settings = SharedStreamSettings::default();
    let timeline = SharedTimeline::new("bench", settings.clone());
    let mut crowd = Crowd::new(clients, 7);
    let mut rng = Rng(99);
    let mut encoders: Vec<SharedStateEncoder> = (0..clients)
        .map(|_| {
            let mut encoder = SharedStateEncoder::new(Encoding::Binary, RADIUS);
            encoder.set_baseline_interval(settings.baseline_interval);
            encoder
        })
        .collect();
    let mut acks: Vec<VecDeque<(usize, Tick)>> = vec![VecDeque::new(); clients];
    let (mut groups, mut bytes, mut elapsed) = (0usize, 0usize, Duration::ZERO);
    for publication in 0..WARMUP + publications {
        let tick = (publication as u64 + 1) * TICKS_PER_PUBLICATION;
        crowd.walk(TICKS_PER_PUBLICATION);
        let current = timeline.publish(crowd.state(tick));
        let measured = publication >= WARMUP;
        let started = Instant::now();
        for (client, encoder) in encoders.iter_mut().enumerate() {
            for acked in due_acks(&mut acks[client], publication) {
                encoder.acknowledge(acked);
            }
            if served < 1.0 && rng.unit() >= served {
                continue;
            }
            if paced
                && !current
                    .sequence()
                    .is_multiple_of(settings.baseline_interval)
            {
                continue;
            }
            let viewer = crowd.positions[client];
            if let Some(encoded) = encoder.encode(&timeline, &current, Some(viewer), Some(1)) {
                if measured {
                    bytes += payload_len(&encoded.payload);
                    groups += usize::from(encoded.encoded_here);
                }
                acks[client].push_back((publication + ACK_DELAY, tick));
            }
        }
        if measured {
            elapsed += started.elapsed();
        }
    }
    Row {
        groups_per_publication: groups as f64 / publications as f64,
        per_publication: elapsed / publications as u32,
        bytes_per_client: bytes as f64 / publications as f64 / clients as f64,
    }
}

/// The per-client encoder for the first `sample` clients, scaled to `clients`.
fn per_client_run(clients: usize, sample: usize, publications: usize) -> Row {
    let mut crowd = Crowd::new(clients, 7);
    let settings = StreamSettings {
        interest_radius: RADIUS,
        ..StreamSettings::default()
    };
    let mut encoders: Vec<StateEncoder> = (0..sample)
        .map(|_| StateEncoder::new("bench", Encoding::Binary, settings.clone()))
        .collect();
    let mut acks: Vec<VecDeque<(usize, Tick)>> = vec![VecDeque::new(); sample];
    let (mut bytes, mut elapsed) = (0usize, Duration::ZERO);
    for publication in 0..WARMUP + publications {
        let tick = (publication as u64 + 1) * TICKS_PER_PUBLICATION;
        crowd.walk(TICKS_PER_PUBLICATION);
        let snapshot = Snapshot::new(crowd.state(tick));
        let measured = publication >= WARMUP;
        let started = Instant::now();
        for (client, encoder) in encoders.iter_mut().enumerate() {
            for acked in due_acks(&mut acks[client], publication) {
                encoder.acknowledge(acked);
            }
            let viewer = crowd.positions[client];
            if let Some(encoded) = encoder.encode(&snapshot, Some(viewer), Some(1)) {
                if measured {
                    bytes += payload_len(&encoded.payload);
                }
                acks[client].push_back((publication + ACK_DELAY, tick));
            }
        }
        if measured {
            elapsed += started.elapsed();
        }
    }
    let scale = clients as f64 / sample as f64;
    Row {
        groups_per_publication: clients as f64,
        per_publication: elapsed.mul_f64(scale) / publications as u32,
        bytes_per_client: bytes as f64 / publications as f64 / sample as f64,
    }
}

fn main() {
    let quick = std::env::var_os("NEXUS_BENCH_QUICK").is_some();
    let clients = env_number("NEXUS_SHARED_CLIENTS", if quick { 200 } else { 1000 });
    let publications = env_number("NEXUS_SHARED_PUBLICATIONS", if quick { 40 } else { 120 });
    let publications_per_second = 60.0 / TICKS_PER_PUBLICATION as f64;
    println!(
        "shared_stream: {clients} walking avatars in a {AREA} m square, one client per avatar \
         (view around it, radius {RADIUS} m, binary), {publications} publications at \
         {publications_per_second} per second, acks {ACK_DELAY} publications later"
    );
    println!();
    println!(
        "{:<34} {:>8} {:>10} {:>12} {:>10} {:>8}",
        "encoder", "groups", "ms/pub", "CPU ms/s", "B/client", "ratio"
    );
    let baseline = per_client_run(clients, (clients / 10).clamp(10, 100), publications / 4);
    let rows = [
        ("per-client (baseline)", baseline),
        (
            "shared, every client served",
            shared_run(clients, publications, 1.0, false),
        ),
        (
            "shared, lagging (60% served)",
            shared_run(clients, publications, 0.6, false),
        ),
        (
            "shared, lagging (25% served)",
            shared_run(clients, publications, 0.25, false),
        ),
        (
            "shared, paced (grid states: 25%)",
            shared_run(clients, publications, 1.0, true),
        ),
    ];
    let base_ms = rows[0].1.per_publication.as_secs_f64() * 1e3;
    for (name, row) in &rows {
        let ms = row.per_publication.as_secs_f64() * 1e3;
        println!(
            "{:<34} {:>8.1} {:>10.2} {:>12.0} {:>10.0} {:>7.1}x",
            name,
            row.groups_per_publication,
            ms,
            ms * publications_per_second,
            row.bytes_per_client,
            base_ms / ms.max(1e-9),
        );
    }
    println!();
    println!(
        "groups = distinct messages encoded per publication; ms/pub = encoding time of one \
         publication for all clients (one thread); CPU ms/s = that at {publications_per_second} \
         publications per second; ratio = per-client time / this row's time; the per-client \
         baseline runs {} clients and is scaled",
        (clients / 10).clamp(10, 100)
    );
}
