//! The state stream and inputs over the WebSocket vs over WebRTC data channels, on a 100 ms round
//! trip with 0, 2 and 5 % packet loss each way, side by side in one run (PROTOCOL.md section 11).
//!
//! The link is real: the gateway and its campaign run inside a network namespace reached through
//! `nexus-netem` (TUN devices and a userspace forwarder that delays and drops packets), so TCP's
//! retransmissions and head-of-line blocking happen in the kernel as on a real network, and the
//! data channel's datagrams are lost as they would be. Half the clients use each transport, in
//! the same run over the same link. Needs root (it skips with a message otherwise).
//!
//! Figures per transport: state age on arrival (the server's timestamp against the client's
//! estimate of the server clock), and input-to-acknowledgement latency (an input's send to the
//! first applied state whose `last_input_seq` covers it). `NEXUS_BENCH_QUICK=1` measures less.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nexus_client::session::{Controls, SessionConfig};
use nexus_client::stats::Histogram;
use nexus_client::transport::{self, Client, ConnectOptions, Transport};
use nexus_client::wire::Encoding;
use nexus_gateway::{CampaignHost, CampaignHostConfig, Gateway, GatewayConfig, WebRtcConfig};
use nexus_netem::{Conditions, Netem, NetemConfig, NetemError};
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};
use nexus_sim::{World, WorldConfig};

const ONE_WAY: Duration = Duration::from_millis(50);
const LOSSES: [f64; 3] = [0.0, 0.02, 0.05];

/// The server inside the namespace: a gateway with WebRTC and a campaign of boxes at 60 Hz.
struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    host: Option<std::thread::JoinHandle<()>>,
    _gateway: nexus_gateway::GatewayHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(host) = self.host.take() {
            let _ = host.join();
        }
    }
}

fn start_server(ip: IpAddr) -> Result<Server, String> {
    let mut config = GatewayConfig::development();
    config.bind = SocketAddr::new(ip, 0);
    config.limits.max_connections_per_address = 10_000;
    config.webrtc = Some(WebRtcConfig::default());
    let gateway = Gateway::start(config).map_err(|e| e.to_string())?;
    let link = gateway.open_campaign("0").map_err(|e| e.to_string())?;
    let mut world = World::new(WorldConfig::default());
    let ground = ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Box {
            half_extents: [100.0, 0.5, 100.0],
        },
        position: [0.0, -0.5, 0.0],
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Default::default(),
    };
    world.add_object(ground).map_err(|e| e.to_string())?;
    for i in 0..64 {
        let (row, col) = ((i / 8) as f32, (i % 8) as f32);
        world
            .add_object(ObjectDesc {
                kind: BodyKind::Dynamic,
                shape: Shape::Box {
                    half_extents: [0.4, 0.4, 0.4],
                },
                position: [col * 3.0 - 12.0, 0.4 + row * 0.01, row * 3.0 - 12.0],
                rotation: [0.0, 0.0, 0.0, 1.0],
                mass: Some(5.0),
                friction: 0.5,
                restitution: 0.0,
                properties: Default::default(),
            })
            .map_err(|e| e.to_string())?;
    }
    let url = gateway.url();
    let stop = Arc::new(AtomicBool::new(false));
    let host = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut host = CampaignHost::new(world, link, CampaignHostConfig::default());
            let tick = Duration::from_secs_f64(1.0 / 60.0);
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                host.tick();
                next += tick;
                match next.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => next = Instant::now(),
                }
            }
        })
    };
    Ok(Server {
        url,
        stop,
        host: Some(host),
        _gateway: gateway,
    })
}

/// One transport's figures over the measuring window.
#[derive(Default)]
struct Figures {
    state_age: Histogram,
    input_ack: Histogram,
    states: u64,
    on_channel: u64,
    fallbacks: Vec<String>,
    clients: usize,
}

/// Walks in a circle (each client its own phase), so the avatar's state changes every tick.
fn controls(phase: f32, now: f64) -> Controls {
    let angle = phase + now as f32 * 0.8;
    Controls {
        movement: [0.0, 1.0],
        look: [angle.cos(), 0.0, angle.sin()],
        jump: false,
        run: false,
    }
}

async fn play(
    url: String,
    index: usize,
    transport: Transport,
    warmup: Duration,
    measure: Duration,
) -> Result<(Histogram, Histogram, u64, u64, Vec<String>), String> {
    let mut session = SessionConfig::new("0", &format!("bench-{}-{index}", transport.name()));
    session.encoding = Encoding::Binary;
    let mut options = ConnectOptions::new(session);
    options.transport = transport;
    options.seed = index as u64 + 1;
    let mut client: Client = transport::connect_with(&url, options)
        .await
        .map_err(|e| e.to_string())?;
    let phase = index as f32 * 0.7;
    let warm_until = tokio::time::Instant::now() + warmup;
    client
        .run_until(warm_until, move |_, now| controls(phase, now))
        .await
        .map_err(|e| e.to_string())?;
    let before = client.session().stats().clone();
    let transports_before = client.transport_stats();
    client
        .run_until(warm_until + measure, move |_, now| controls(phase, now))
        .await
        .map_err(|e| e.to_string())?;
    let after = client.session().stats();
    let transports = client.transport_stats();
    let result = (
        after.state_age.since(&before.state_age),
        after.input_ack_latency.since(&before.input_ack_latency),
        after.states_applied - before.states_applied,
        transports.states_webrtc - transports_before.states_webrtc,
        transports
            .fallbacks
            .iter()
            .map(|f| match &f.server_reason {
                Some(server) => format!("{} (server: {server})", f.reason),
                None => f.reason.clone(),
            })
            .collect(),
    );
    client.close().await;
    Ok(result)
}

async fn round(
    url: &str,
    per_transport: usize,
    warmup: Duration,
    measure: Duration,
) -> [Figures; 2] {
    let mut tasks = Vec::new();
    for index in 0..per_transport * 2 {
        let transport = if index % 2 == 0 {
            Transport::WebSocket
        } else {
            Transport::WebRtc
        };
        let url = url.to_string();
        tasks.push((
            transport,
            tokio::spawn(play(url, index, transport, warmup, measure)),
        ));
    }
    let mut figures = [Figures::default(), Figures::default()];
    for (transport, task) in tasks {
        let slot = &mut figures[usize::from(transport == Transport::WebRtc)];
        match task.await {
            Ok(Ok((age, ack, states, on_channel, fallbacks))) => {
                slot.state_age.merge(&age);
                slot.input_ack.merge(&ack);
                slot.states += states;
                slot.on_channel += on_channel;
                slot.fallbacks.extend(fallbacks);
                slot.clients += 1;
            }
            Ok(Err(error)) => {
                eprintln!("transports: a {} client failed: {error}", transport.name())
            }
            Err(error) => eprintln!("transports: a client task failed: {error}"),
        }
    }
    figures
}

fn ms(seconds: f64) -> f64 {
    seconds * 1e3
}

fn main() {
    let quick = std::env::var_os("NEXUS_BENCH_QUICK").is_some();
    let per_transport = if quick { 4 } else { 8 };
    let (warmup, measure) = if quick {
        (Duration::from_secs(3), Duration::from_secs(8))
    } else {
        (Duration::from_secs(4), Duration::from_secs(25))
    };
    let mut config = NetemConfig::new(nexus_netem::unique_namespace_name());
    config.delay_one_way = ONE_WAY;
    let netem = match Netem::start(config) {
        Ok(netem) => netem,
        Err(error @ (NetemError::NotRoot | NetemError::TunUnavailable { .. })) => {
            println!("transports: skipped ({error}); run as root for the emulated link");
            return;
        }
        Err(error) => {
            eprintln!("transports: the emulated link could not start: {error}");
            std::process::exit(1);
        }
    };
    let far = IpAddr::V4(netem.far_addr());
    let server = match netem.enter(move || start_server(far)) {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => {
            eprintln!("transports: the server could not start: {error}");
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("transports: could not enter the namespace: {error}");
            std::process::exit(1);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "transports: {per_transport} WebSocket and {per_transport} WebRTC clients at once, binary states at 20/s, \
         {} ms round trip, {} s measured per loss rate (after {} s)",
        ONE_WAY.as_millis() * 2,
        measure.as_secs(),
        warmup.as_secs()
    );
    println!(
        "{:>5}  {:<9}  {:>13}  {:>13}  {:>16}  {:>16}  {:>9}  {:>9}",
        "loss",
        "transport",
        "age p50 ms",
        "age p99 ms",
        "input ack p50",
        "input ack p99",
        "states/s",
        "fallbacks"
    );
    let mut at_five = None;
    for loss in LOSSES {
        let conditions = Conditions {
            delay_one_way: ONE_WAY,
            loss,
            jitter: Duration::ZERO,
        };
        if let Err(error) = netem.set_conditions(conditions) {
            eprintln!("transports: {error}");
            std::process::exit(1);
        }
        let figures = runtime.block_on(round(&server.url, per_transport, warmup, measure));
        for (name, f) in ["websocket", "webrtc"].iter().zip(&figures) {
            let clients = f.clients.max(1) as f64;
            println!(
                "{:>4.0}%  {:<9}  {:>13.0}  {:>13.0}  {:>16.0}  {:>16.0}  {:>9.1}  {:>9}",
                loss * 100.0,
                name,
                ms(f.state_age.quantile(0.5)),
                ms(f.state_age.quantile(0.99)),
                ms(f.input_ack.quantile(0.5)),
                ms(f.input_ack.quantile(0.99)),
                f.states as f64 / clients / measure.as_secs_f64(),
                f.fallbacks.len(),
            );
            if !f.fallbacks.is_empty() {
                println!("       ({name} fallbacks: {})", f.fallbacks.join(", "));
            }
        }
        let share = figures[1].on_channel as f64 / figures[1].states.max(1) as f64;
        println!(
            "       (webrtc clients: {:.1} % of their states came on the data channel)",
            share * 100.0
        );
        if loss == 0.05 {
            at_five = Some((
                figures[1].state_age.quantile(0.99) / figures[0].state_age.quantile(0.99).max(1e-9),
                figures[1].input_ack.quantile(0.99) / figures[0].input_ack.quantile(0.99).max(1e-9),
            ));
        }
    }
    if let Some((age, ack)) = at_five {
        println!(
            "transports: at 5 % loss, WebRTC / WebSocket p99: state age {age:.2}x (goal: at most 0.5x), input ack {ack:.2}x"
        );
    }
    let stats = netem.stats();
    println!(
        "transports: link packets to the server {} ({} dropped), back {} ({} dropped)",
        stats.to_far.received,
        stats.to_far.dropped_loss,
        stats.to_near.received,
        stats.to_near.dropped_loss
    );
    drop(server);
}
