//! A real gateway and campaign host on 127.0.0.1 for the client's integration tests (no Godot).

// Each test file uses a part of it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use nexus_gateway::{CampaignHost, CampaignHostConfig, Gateway, GatewayConfig};
use nexus_sim::state::{BodyKind, ObjectDesc, Shape};
use nexus_sim::{World, WorldConfig};

/// A gateway (`config`, or development mode on a free loopback port) with one campaign on a
/// 100 m ground slab, ticking at 60 Hz on its own thread; stopped on drop.
pub struct Server {
    pub url: String,
    stop: Arc<AtomicBool>,
    host: Option<thread::JoinHandle<()>>,
    pub gateway: Option<nexus_gateway::GatewayHandle>,
}

impl Server {
    pub fn start(campaign: &str) -> Server {
        let mut config = GatewayConfig::development();
        config.bind = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Server::start_with(campaign, config)
    }

    pub fn start_with(campaign: &str, config: GatewayConfig) -> Server {
        let gateway = Gateway::start(config).expect("gateway starts");
        let link = gateway.open_campaign(campaign).expect("campaign opens");
        let mut world = World::new(WorldConfig::default());
        world
            .add_object(ObjectDesc {
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
            })
            .expect("ground");
        let stop = Arc::new(AtomicBool::new(false));
        let running = stop.clone();
        let host = thread::spawn(move || {
            let mut host = CampaignHost::new(world, link, CampaignHostConfig::default());
            while !running.load(Ordering::Relaxed) {
                host.tick();
                thread::sleep(Duration::from_millis(16));
            }
        });
        Server {
            url: gateway.url(),
            stop,
            host: Some(host),
            gateway: Some(gateway),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(host) = self.host.take() {
            let _ = host.join();
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown();
        }
    }
}
