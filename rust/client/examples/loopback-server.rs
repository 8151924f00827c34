//! A pure-Rust server for trying the bots without Godot: the gateway plus one campaign host on
//! 127.0.0.1, with a ground and some boxes to pick up. Stops by itself after `--duration`.
//!
//! ```text
//! cargo run -p nexus-client --release --example loopback-server -- --port 9191 --duration 60
//! cargo run -p nexus-client --release --bin nexus-bots -- --url ws://127.0.0.1:9191/ws --count 50
//! ```
//!
//! `--webrtc-port N` also serves WebRTC data channels on UDP port N (0: any free port; the port
//! is printed).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use nexus_gateway::{CampaignHost, CampaignHostConfig, Gateway, GatewayConfig};
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};
use nexus_sim::{World, WorldConfig};

fn value(args: &[String], flag: &str, default: f64) -> Result<f64, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{flag} needs a non-negative number")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = value(&args, "--port", 9191.0)? as u16;
    let boxes = (value(&args, "--boxes", 200.0)? as usize).min(10_000);
    let duration = Duration::from_secs_f64(value(&args, "--duration", 60.0)?.min(3600.0));
    let campaign = args
        .iter()
        .position(|a| a == "--campaign")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "0".into());

    let mut config = GatewayConfig::development();
    config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    // Every bot connects from 127.0.0.1.
    config.limits.max_connections_per_address = 10_000;
    if args.iter().any(|a| a == "--webrtc-port") {
        let port = value(&args, "--webrtc-port", 0.0)?;
        if port > f64::from(u16::MAX) || port.fract() != 0.0 {
            return Err(format!("--webrtc-port {port} is not a UDP port").into());
        }
        config.webrtc = Some(nexus_gateway::WebRtcConfig {
            port: port as u16,
            ..Default::default()
        });
    }
    let gateway = Gateway::start(config)?;
    if let Some(addr) = gateway.webrtc_addr() {
        println!("WebRTC data channels on udp://{addr}");
    }
    let link = gateway.open_campaign(&campaign)?;
    let mut world = World::new(WorldConfig::default());
    let ground = ObjectDesc {
        kind: BodyKind::Static,
        shape: Shape::Box {
            half_extents: [200.0, 0.5, 200.0],
        },
        position: [0.0, -0.5, 0.0],
        rotation: [0.0, 0.0, 0.0, 1.0],
        mass: None,
        friction: 0.5,
        restitution: 0.0,
        properties: Default::default(),
    };
    world.add_object(ground)?;
    for i in 0..boxes {
        let mut properties = nexus_sim::state::Properties::new();
        properties.insert("pickupable".into(), true.into());
        let (row, col) = ((i / 20) as f32, (i % 20) as f32);
        world.add_object(ObjectDesc {
            kind: BodyKind::Dynamic,
            shape: Shape::Box {
                half_extents: [0.3, 0.3, 0.3],
            },
            position: [col * 3.0 - 30.0, 0.3, row * 3.0 - 30.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            mass: Some(10.0),
            friction: 0.5,
            restitution: 0.0,
            properties,
        })?;
    }
    println!(
        "serving {} campaign {campaign:?} ({}) for {duration:?}",
        gateway.url(),
        gateway.auth_mode().describe()
    );
    let mut host = CampaignHost::new(world, link, CampaignHostConfig::default());
    let started = Instant::now();
    let tick = Duration::from_secs_f64(1.0 / 60.0);
    let mut next = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < duration {
        let stats = host.tick();
        slowest = slowest.max(stats.total_time);
        next += tick;
        match next.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => next = Instant::now(),
        }
    }
    println!("slowest tick {slowest:?}; {}", format_metrics(&gateway));
    gateway.shutdown();
    Ok(())
}

fn format_metrics(gateway: &nexus_gateway::GatewayHandle) -> String {
    format!("{:?}", gateway.metrics())
        .chars()
        .take(400)
        .collect()
}
