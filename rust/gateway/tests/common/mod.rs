//! Helpers shared by the integration tests: real gateways on 127.0.0.1 (port 0), real
//! tokio-tungstenite clients, a fake host driven by the test, and a real host on a thread.
//!
//! Every wait is bounded (a stuck test fails with a message instead of hanging); no test asserts
//! on time.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nexus_gateway::{
    CampaignHost, CampaignHostConfig, CampaignLink, Gateway, GatewayConfig, GatewayHandle,
    HostEvent,
};
use nexus_sim::state::{
    BodyKind, EnvironmentState, ObjectState, PhysicsInfo, WeatherKind, WeatherState, WorldState,
};
use nexus_sim::{ObjectDesc, Shape, World, WorldConfig};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound of any single wait in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub const SECRET: &[u8] = b"integration-test-secret-0123456789";

/// A development-mode config on an ephemeral loopback port.
///
/// Lost connections end their session at once here (no resume grace): the tests of resuming
/// (`resume.rs`) set their own.
pub fn dev_config() -> GatewayConfig {
    let mut config = GatewayConfig::development();
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.session.resume_grace = Duration::ZERO;
    config
}

/// A signed-mode config on an ephemeral loopback port.
/// (No resume grace either, as [`dev_config`].)
pub fn signed_config() -> GatewayConfig {
    let mut config = GatewayConfig::signed(SECRET.to_vec());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.session.resume_grace = Duration::ZERO;
    config
}

pub fn start(config: GatewayConfig) -> GatewayHandle {
    Gateway::start(config).expect("gateway starts")
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A test client.
pub struct Client {
    pub ws: Ws,
    /// Subprotocol the server chose.
    pub subprotocol: Option<String>,
}

pub async fn connect(gateway: &GatewayHandle) -> Client {
    connect_with(gateway, &[]).await
}

pub async fn connect_with(gateway: &GatewayHandle, subprotocols: &[&str]) -> Client {
    let mut request = gateway.url().into_client_request().unwrap();
    if !subprotocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&subprotocols.join(", ")).unwrap(),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("connect");
    let subprotocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string());
    Client { ws, subprotocol }
}

pub fn envelope(r#type: &str, campaign: &str, payload: Value) -> Value {
    json!({"type": r#type, "payload": payload, "metadata": {"campaign_id": campaign, "client_type": "test"}})
}

impl Client {
    pub async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    pub async fn join(&mut self, campaign: &str, token: &str) {
        self.send_json(&envelope(
            "session:join:v1:requested",
            campaign,
            json!({"token": token}),
        ))
        .await;
    }

    /// The next data message (text parsed as JSON; binary as `{"binary": len}`), skipping
    /// pings/pongs. Panics on close or after [`WAIT`].
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("JSON from server");
                }
                Message::Binary(bytes) => {
                    return json!({"binary": bytes.len(), "bytes": bytes.to_vec()});
                }
                Message::Close(frame) => panic!("unexpected close: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// The next message of `type`, skipping others (state stream, other events).
    pub async fn next_of(&mut self, r#type: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == r#type {
                return message;
            }
        }
    }

    /// The next `system:error:v1:stream`, skipping other messages.
    pub async fn next_error(&mut self) -> Value {
        self.next_of("system:error:v1:stream").await["payload"].clone()
    }

    /// Reads until the server's close frame; returns it (skipping any data before it). Like any
    /// well-behaved client, keeps polling until the close handshake completes.
    pub async fn expect_close(&mut self) -> CloseFrame {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a close in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    // Flushes tungstenite's automatic close reply; ends when the server hangs up.
                    let _ = tokio::time::timeout(WAIT, async {
                        while self.ws.next().await.is_some() {}
                    })
                    .await;
                    return frame;
                }
                Some(Ok(Message::Close(None))) => panic!("close without a reason"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("connection error before a close frame: {err}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }

    /// Sends a session ping and waits for its pong: proof the connection still works.
    pub async fn round_trip(&mut self, campaign: &str, nonce: u64) {
        self.send_json(&envelope(
            "session:ping:v1:requested",
            campaign,
            json!({"nonce": nonce}),
        ))
        .await;
        loop {
            let pong = self.next_of("session:pong:v1:stream").await;
            if pong["payload"]["nonce"] == nonce {
                return;
            }
        }
    }
}

/// Polls `link` until an event matching `pred` arrives; returns it (others are discarded).
pub async fn wait_event(link: &CampaignLink, pred: impl Fn(&HostEvent) -> bool) -> HostEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for event in link.poll() {
            if pred(&event) {
                return event;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching host event in time"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits until `check` holds on the gateway's metrics.
pub async fn wait_metrics(
    gateway: &GatewayHandle,
    what: &str,
    check: impl Fn(&nexus_gateway::MetricsSnapshot) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(&gateway.metrics()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed {what}: {:?}",
            gateway.metrics()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A small world state for fake hosts: `objects` cubes, the first at x = `offset`.
pub fn world_state(tick: u64, objects: usize, offset: f32) -> WorldState {
    WorldState {
        timestamp: 0.0,
        tick,
        objects: (0..objects)
            .map(|i| ObjectState {
                id: i as u32 + 1,
                kind: BodyKind::Dynamic,
                position: [offset + i as f32 * 0.5, 1.0, (i % 7) as f32],
                rotation: [0.0, 0.0, 0.0, 1.0],
                velocity: [0.1, 0.0, 0.0],
                angular_velocity: [0.0, 0.0, 0.0],
                sleeping: false,
                shape: None,
                properties: Default::default(),
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

/// Joins `client` through a fake host: waits for the join event, welcomes it with avatar 1.
pub async fn join_fake(
    client: &mut Client,
    link: &CampaignLink,
    campaign: &str,
    name: &str,
) -> u32 {
    client.join(campaign, name).await;
    let HostEvent::ClientJoined { client_id, .. } =
        wait_event(link, |e| matches!(e, HostEvent::ClientJoined { .. })).await
    else {
        unreachable!()
    };
    link.welcome(client_id, 1, world_state(0, 1, 0.0));
    let welcome = client.next_of("session:welcome:v1:stream").await;
    assert_eq!(welcome["payload"]["client_id"], client_id);
    client_id
}

/// A world with a ground plane, for real hosts.
pub fn test_world() -> World {
    let mut world = World::new(WorldConfig::default());
    world
        .add_object(ObjectDesc {
            kind: BodyKind::Static,
            shape: Shape::Box {
                half_extents: [50.0, 0.5, 50.0],
            },
            position: [0.0, -0.5, 0.0],
            rotation: [0.0, 0.0, 0.0, 1.0],
            mass: None,
            friction: 0.5,
            restitution: 0.0,
            properties: Default::default(),
        })
        .expect("ground");
    world
}

/// A [`CampaignHost`] ticking on its own thread (as fast as every `period`) until dropped.
pub struct HostThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostThread {
    pub fn spawn(
        world: World,
        link: CampaignLink,
        config: CampaignHostConfig,
        period: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut host = CampaignHost::new(world, link, config);
                while !stop.load(Ordering::Relaxed) {
                    host.tick();
                    std::thread::sleep(period);
                }
            })
        };
        HostThread {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HostThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Position of object `id` in a JSON state message (`None` if not listed).
pub fn position_in_state(state: &Value, id: u64) -> Option<[f64; 3]> {
    let objects = state["payload"]["objects"].as_array()?;
    let object = objects.iter().find(|o| o["id"] == id)?;
    let p = object["position"].as_array()?;
    Some([p[0].as_f64()?, p[1].as_f64()?, p[2].as_f64()?])
}

/// A client whose socket receive buffer is tiny, so that not reading quickly backs up the
/// server's sends (a slow consumer).
pub async fn connect_slow(gateway: &GatewayHandle) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gateway.local_addr()).await.unwrap();
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(gateway.url(), MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    Client {
        ws,
        subprotocol: None,
    }
}

/// Sends a raw HTTP/1.1 request over TCP and returns the whole response (the server closes).
pub async fn http_get(gateway: &GatewayHandle, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(gateway.local_addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .expect("a UTF-8 response");
    response
}
