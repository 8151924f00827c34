//! Fan-out benchmark: time from a snapshot being published on the link to the last client
//! receiving its state message, for 1 (the baseline), 100, 500 and 1,000 clients over real
//! WebSockets on 127.0.0.1, JSON and binary encodings.
//!
//! Each client joins, acknowledges every state it receives (so the stream is deltas, as in real
//! play) and records the arrival time of each tick. The scene: 50 objects, all moving every tick
//! and all within every client's interest (the worst case for a scene of that size).
//!
//! Run: `cargo bench -p nexus-gateway --bench fanout`. Environment:
//! `NEXUS_FANOUT_CLIENTS=100,500,1000` (client counts), `NEXUS_FANOUT_SAMPLES=30` (snapshots
//! measured per run), `NEXUS_FANOUT_OBJECTS=50`.
//!
//! Clients and gateway share the machine's cores, so the figures include the clients' own work
//! (parsing, acking); they are an upper bound of the gateway's share.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nexus_gateway::{
    CampaignLink, Gateway, GatewayConfig, GatewayHandle, HostEvent, InterestSettings,
};
use nexus_sim::state::{
    BodyKind, EnvironmentState, ObjectState, PhysicsInfo, WeatherKind, WeatherState, WorldState,
};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const WARMUP: u64 = 3;

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raises the soft open-file limit to the hard one (each client costs two descriptors here).
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur
    }
}

fn world_state(tick: u64, objects: usize) -> WorldState {
    let t = tick as f32 / 60.0;
    WorldState {
        timestamp: 0.0,
        tick,
        objects: (0..objects)
            .map(|i| {
                let phase = i as f32 * 0.37;
                ObjectState {
                    id: i as u32 + 1,
                    kind: BodyKind::Dynamic,
                    position: [
                        (i % 10) as f32 * 2.0 + (t + phase).sin(),
                        1.0 + (t * 2.0 + phase).cos().abs(),
                        (i / 10) as f32 * 2.0 + (t + phase).cos(),
                    ],
                    rotation: [0.0, (t + phase).sin() * 0.5, 0.0, 1.0],
                    velocity: [(t + phase).cos(), 0.5, -(t + phase).sin()],
                    angular_velocity: [0.0, 1.0, 0.0],
                    sleeping: false,
                    shape: None,
                    properties: Default::default(),
                }
            })
            .collect(),
        physics: PhysicsInfo {
            gravity: [0.0, -9.81, 0.0],
            tick_rate: 60,
            body_count: objects as u32,
            awake_count: objects as u32,
        },
        environment: EnvironmentState {
            weather: WeatherState {
                kind: WeatherKind::Clear,
                intensity: 0.0,
                wind: [0.0; 3],
                transition_to: None,
                transition_remaining: 0.0,
            },
            time_of_day: 12.0,
            day_length: 600.0,
            terrain_id: None,
            terrain_revision: 0,
        },
    }
}

/// Arrival bookkeeping for the tick being measured.
struct Arrivals {
    state: Mutex<(u64, usize, Option<Instant>)>,
    all_in: Condvar,
    expected: usize,
}

impl Arrivals {
    fn record(&self, tick: u64) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state.0 == tick {
            state.1 += 1;
            state.2 = Some(now);
            if state.1 == self.expected {
                self.all_in.notify_all();
            }
        }
    }

    fn expect(&self, tick: u64) {
        *self.state.lock().unwrap() = (tick, 0, None);
    }

    /// When the last client received `tick` (None if not all did within the bound).
    fn wait_all(&self, bound: Duration) -> Option<Instant> {
        let state = self.state.lock().unwrap();
        let (state, _) = self
            .all_in
            .wait_timeout_while(state, bound, |s| s.1 < self.expected)
            .unwrap();
        (state.1 == self.expected).then_some(state.2).flatten()
    }
}

/// Tick of a state message, read from its first bytes only (clients stay cheap).
fn state_tick(message: &Message) -> Option<u64> {
    match message {
        Message::Text(text) => {
            let text = text.as_str();
            if !text.starts_with("{\"type\":\"physics:world_state:v1:stream\"") {
                return None;
            }
            let rest = &text[text.find("\"tick\":")? + 7..];
            let end = rest.find(|c: char| !c.is_ascii_digit())?;
            rest[..end].parse().ok()
        }
        Message::Binary(bytes) if bytes.len() > 3 && bytes[1] == 0x01 => {
            let mut value = 0u64;
            for (i, byte) in bytes[3..].iter().take(10).enumerate() {
                value |= u64::from(byte & 0x7f) << (7 * i);
                if byte & 0x80 == 0 {
                    return Some(value);
                }
            }
            None
        }
        _ => None,
    }
}

async fn client(
    url: String,
    binary: bool,
    arrivals: Arc<Arrivals>,
    gate: Arc<Semaphore>,
    index: usize,
) {
    let mut request = url.into_client_request().unwrap();
    if binary {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("nexus.binary.v1"),
        );
    }
    let (mut ws, _) = {
        // Connect in waves: a thousand simultaneous handshakes only measure the SYN queue.
        let _permit = gate.acquire().await.unwrap();
        tokio_tungstenite::connect_async(request)
            .await
            .expect("connect")
    };
    let join = serde_json::json!({
        "type": "session:join:v1:requested",
        "payload": {"token": format!("bench-{index}")},
        "metadata": {"campaign_id": "bench"},
    });
    ws.send(Message::text(join.to_string())).await.unwrap();
    while let Some(Ok(message)) = ws.next().await {
        let Some(tick) = state_tick(&message) else {
            continue;
        };
        arrivals.record(tick);
        let ack = if binary {
            Message::binary(nexus_protocol::encode_client_ack(tick))
        } else {
            Message::text(format!(
                "{{\"type\":\"session:ack:v1:requested\",\"payload\":{{\"tick\":{tick}}}}}"
            ))
        };
        if ws.send(ack).await.is_err() {
            break;
        }
    }
}

/// Welcomes every join until `expected` clients are in.
fn welcome_all(link: &CampaignLink, expected: usize, objects: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut welcomed = 0;
    let state = world_state(0, objects);
    while welcomed < expected {
        assert!(
            Instant::now() < deadline,
            "only {welcomed} of {expected} clients joined"
        );
        for event in link.poll() {
            if let HostEvent::ClientJoined { client_id, .. } = event {
                // Avatar 0 is not in the scene: the client's interest is everything.
                link.welcome(client_id, 0, state.clone());
                welcomed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct RunResult {
    median: Duration,
    p90: Duration,
    max: Duration,
    missed: usize,
    bytes_per_snapshot: u64,
    encode_us_per_message: f64,
}

fn run(clients: usize, binary: bool, shared: bool, samples: u64, objects: usize) -> RunResult {
    let mut config = GatewayConfig::development();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.limits.max_connections = clients + 16;
    config.limits.max_connections_per_address = clients + 16;
    config.interest = InterestSettings::everything();
    if !shared {
        // The per-client encoders: the baseline the shared stream is measured against.
        config.interest.shared = None;
    }
    let gateway: GatewayHandle = Gateway::start(config).expect("gateway");
    let link = gateway.open_campaign("bench").unwrap();
    let arrivals = Arc::new(Arrivals {
        state: Mutex::new((u64::MAX, 0, None)),
        all_in: Condvar::new(),
        expected: clients,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(64));
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            runtime.spawn(client(
                gateway.url(),
                binary,
                arrivals.clone(),
                gate.clone(),
                i,
            ))
        })
        .collect();
    welcome_all(&link, clients, objects);

    let mut latencies = Vec::new();
    let mut missed = 0;
    let mut bytes_before = 0;
    for tick in 1..=WARMUP + samples {
        if tick == WARMUP + 1 {
            // Every warm-up message has been counted: the 20 ms pause below followed the last.
            bytes_before = gateway.metrics().bytes_out;
        }
        arrivals.expect(tick);
        let published = Instant::now();
        link.publish_state(world_state(tick, objects), vec![]);
        match arrivals.wait_all(Duration::from_secs(10)) {
            Some(last) if tick > WARMUP => latencies.push(last - published),
            Some(_) => {}
            None => missed += 1,
        }
        // Let acks land, as between snapshots in a real stream.
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = gateway.metrics();
    let bytes_measured = metrics.bytes_out - bytes_before;
    let encode_us_per_message =
        metrics.state_encode_seconds * 1e6 / metrics.states_encoded.max(1) as f64;
    drop(link);
    gateway.shutdown();
    for task in tasks {
        task.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(2));

    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    RunResult {
        median: pick(0.5),
        p90: pick(0.9),
        max: latencies.last().copied().unwrap_or_default(),
        missed,
        bytes_per_snapshot: bytes_measured / samples.max(1),
        encode_us_per_message,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let counts = env_list("NEXUS_FANOUT_CLIENTS", &[100, 500, 1000]);
    let samples = env_number("NEXUS_FANOUT_SAMPLES", 30) as u64;
    let objects = env_number("NEXUS_FANOUT_OBJECTS", 50);
    let fd_limit = raise_fd_limit();
    let needed = counts.iter().max().copied().unwrap_or(0) as u64 * 2 + 64;
    println!(
        "fan-out: publish -> last client received; {objects} moving objects, deltas (clients ack), {samples} snapshots per run, open-file limit {fd_limit}"
    );
    if fd_limit < needed {
        println!("warning: {needed} descriptors needed; larger runs will fail to connect");
    }
    println!();
    println!(
        "| clients | encoding | stream | median ms | p90 ms | max ms | vs 1 client (median) | vs per-client (median) | µs per client | encode µs per message | KiB out per snapshot | missed |"
    );
    println!("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut baselines: HashMap<bool, Duration> = HashMap::new();
    for binary in [false, true] {
        let encoding = if binary { "binary" } else { "json" };
        let base = run(1, binary, true, samples, objects);
        baselines.insert(binary, base.median);
        print_row(1, encoding, "shared", &base, base.median, None);
        for &clients in &counts {
            let per_client = run(clients, binary, false, samples, objects);
            print_row(
                clients,
                encoding,
                "per-client",
                &per_client,
                baselines[&binary],
                None,
            );
            let shared = run(clients, binary, true, samples, objects);
            print_row(
                clients,
                encoding,
                "shared",
                &shared,
                baselines[&binary],
                Some(per_client.median),
            );
        }
    }
    println!();
    println!(
        "encode µs per message: encoding time over messages sent (a shared encoding is counted once, however many clients it serves)"
    );
}

fn print_row(
    clients: usize,
    encoding: &str,
    stream: &str,
    result: &RunResult,
    baseline: Duration,
    per_client: Option<Duration>,
) {
    let ratio = result.median.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    let versus = per_client.map_or("".to_owned(), |p| {
        format!(
            "{:.2}x",
            result.median.as_secs_f64() / p.as_secs_f64().max(1e-9)
        )
    });
    println!(
        "| {clients} | {encoding} | {stream} | {} | {} | {} | {ratio:.1}x | {versus} | {:.1} | {:.1} | {:.1} | {} |",
        ms(result.median),
        ms(result.p90),
        ms(result.max),
        result.median.as_secs_f64() * 1e6 / clients as f64,
        result.encode_us_per_message,
        result.bytes_per_snapshot as f64 / 1024.0,
        result.missed,
    );
}
