//! An in-process server and network on a simulated clock, for deterministic tests of the client.
//!
//! The server is the real simulation (`nexus_sim::World`) with the real wire code
//! (`nexus_protocol`: client frame decoding, welcome and event builders, the per-client
//! `StateEncoder`), glued as the gateway's campaign host glues them: inputs are queued, the world
//! steps at its tick rate, a snapshot goes to every client `tick_rate / state_rate` ticks with its
//! input ack. The network is one `DelayLine` per direction and client. Nothing sleeps: time is a
//! number the test advances.

#![allow(dead_code)]

use std::collections::BTreeMap;

use nexus_client::netem::{DelayLine, LinkConditions};
use nexus_client::transport::is_state_frame;
use nexus_client::{ClientSession, Controls, Frame, SessionConfig};
use nexus_protocol::server::{self as events, Welcome};
use nexus_protocol::{
    ClientMessage, Encoding, Limits, Snapshot, StateEncoder, StatePayload, StreamSettings,
    decode_client_binary, decode_client_text,
};
use nexus_sim::state::{BodyKind, ClientId, ObjectDesc, ObjectId, Shape};
use nexus_sim::{World, WorldConfig};

/// Server clock = simulated time + this (so timestamps look like Unix time).
pub const SERVER_EPOCH: f64 = 1.7e9;

/// A world with a 100 m ground slab whose top is at y = 0.
pub fn flat_world() -> World {
    flat_world_with(WorldConfig::default())
}

/// [`flat_world`] with a given configuration.
pub fn flat_world_with(config: WorldConfig) -> World {
    let mut world = World::new(config);
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
    world.drain_events();
    world
}

struct ServerClient {
    encoder: Option<StateEncoder>,
    avatar: Option<ObjectId>,
    encoding: Encoding,
}

/// The server side.
pub struct SimServer {
    pub world: World,
    campaign: String,
    clients: BTreeMap<ClientId, ServerClient>,
    state_interval: u64,
    ticks_since_state: u64,
    state_rate: u32,
    /// Where avatars spawn, one after the other along X (at rest on the ground: see
    /// [`resting_height`]).
    pub spawn: [f32; 3],
}

/// The height at which an avatar rests on the flat world's ground: where idle steps leave it.
/// Spawning there means the server's idle steps before the first input change nothing.
pub fn resting_height() -> f32 {
    let mut world = flat_world();
    world
        .spawn_player(99, "probe", Some([0.0, 1.0, 0.0]))
        .expect("spawn");
    for _ in 0..120 {
        world.step();
    }
    world.character_of(99).expect("probe").position[1]
}

impl SimServer {
    pub fn new(world: World, state_rate: u32) -> Self {
        let tick_rate = world.config().tick_rate;
        SimServer {
            world,
            campaign: "test".into(),
            clients: BTreeMap::new(),
            state_interval: u64::from(tick_rate / state_rate).max(1),
            ticks_since_state: 0,
            state_rate,
            spawn: [0.0, resting_height(), 0.0],
        }
    }

    fn server_time(now: f64) -> f64 {
        SERVER_EPOCH + now
    }

    /// Handles one frame from `client` at time `now`; returns the frames to send back.
    pub fn handle(&mut self, now: f64, client: ClientId, frame: &Frame) -> Vec<(ClientId, Frame)> {
        let decoded = match frame {
            Frame::Text(text) => decode_client_text(text),
            Frame::Binary(bytes) => decode_client_binary(bytes),
        };
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(err) => {
                let envelope = events::error_envelope(&self.campaign, &err);
                return vec![(client, Frame::Text(envelope.to_json()))];
            }
        };
        let mut out = Vec::new();
        match decoded.message {
            ClientMessage::Join(join) => {
                let position = [
                    self.spawn[0] + 3.0 * client as f32,
                    self.spawn[1],
                    self.spawn[2],
                ];
                let avatar = self
                    .world
                    .spawn_player(client, &join.token, Some(position))
                    .expect("spawn");
                let events_now = self.world.drain_events();
                let state = {
                    let mut state = self.world.snapshot(true);
                    state.timestamp = Self::server_time(now);
                    state
                };
                let limits = Limits::default();
                let encoding = self
                    .clients
                    .get(&client)
                    .map_or(Encoding::Json, |c| c.encoding);
                let welcome = events::welcome(
                    &self.campaign,
                    &Welcome {
                        client_id: client,
                        avatar_id: Some(avatar),
                        tick_rate: self.world.config().tick_rate,
                        state_rate: self.state_rate,
                        world_state: &state,
                        name: &join.token,
                        role: "player",
                        encoding,
                        interest_radius: 120.0,
                        limits: &limits,
                        server_time: Self::server_time(now),
                        resume: None,
                        resumed: false,
                        webrtc: false,
                    },
                );
                // Others learn about the new avatar; the newcomer has it in its welcome.
                for event in &events_now {
                    let text = events::world_event(&self.campaign, event).to_json();
                    for (&other, c) in &self.clients {
                        if other != client && c.encoder.is_some() {
                            out.push((other, Frame::Text(text.clone())));
                        }
                    }
                }
                out.push((client, Frame::Text(welcome.to_json())));
                let entry = self.clients.entry(client).or_insert(ServerClient {
                    encoder: None,
                    avatar: None,
                    encoding,
                });
                entry.encoder = Some(StateEncoder::new(
                    &self.campaign,
                    encoding,
                    StreamSettings::default(),
                ));
                entry.avatar = Some(avatar);
            }
            ClientMessage::Inputs { inputs, ack } => {
                if let (Some(tick), Some(c)) = (ack, self.clients.get_mut(&client))
                    && let Some(encoder) = &mut c.encoder
                {
                    encoder.acknowledge(tick);
                }
                let rejected = self.world.queue_inputs(client, &inputs);
                if !rejected.is_empty() {
                    let ack = events::input_ack(
                        &self.campaign,
                        self.world.last_processed_input(client),
                        self.world.tick(),
                        &rejected,
                    );
                    out.push((client, Frame::Text(ack.to_json())));
                }
            }
            ClientMessage::Ack { tick, resync } => {
                if let Some(c) = self.clients.get_mut(&client)
                    && let Some(encoder) = &mut c.encoder
                {
                    if resync {
                        encoder.resync();
                    }
                    if let Some(tick) = tick {
                        encoder.acknowledge(tick);
                    }
                }
            }
            ClientMessage::Ping { nonce, client_time } => {
                let pong = events::pong(
                    &self.campaign,
                    nonce,
                    client_time,
                    Self::server_time(now),
                    self.world.tick(),
                );
                out.push((client, Frame::Text(pong.to_json())));
            }
            ClientMessage::Interaction(request) => self.world.request_interaction(client, request),
            _ => {}
        }
        out
    }

    /// Declares the stream encoding of a client before it joins (the subprotocol).
    pub fn connect(&mut self, client: ClientId, encoding: Encoding) {
        self.clients.insert(
            client,
            ServerClient {
                encoder: None,
                avatar: None,
                encoding,
            },
        );
    }

    /// One tick at time `now`; returns the frames to send.
    pub fn tick(&mut self, now: f64) -> Vec<(ClientId, Frame)> {
        self.world.step();
        let mut out = Vec::new();
        for event in self.world.drain_events() {
            let text = events::world_event(&self.campaign, &event).to_json();
            for (&client, c) in &self.clients {
                if c.encoder.is_some() {
                    out.push((client, Frame::Text(text.clone())));
                }
            }
        }
        self.ticks_since_state += 1;
        if self.ticks_since_state >= self.state_interval {
            self.ticks_since_state = 0;
            let mut state = self.world.snapshot(false);
            state.timestamp = Self::server_time(now);
            let snapshot = Snapshot::new(state);
            for (&client, c) in &mut self.clients {
                let (Some(encoder), Some(avatar)) = (&mut c.encoder, c.avatar) else {
                    continue;
                };
                let viewer = snapshot.position_of(avatar);
                let ack = self.world.last_processed_input(client);
                if let Some(encoded) = encoder.encode(&snapshot, viewer, ack) {
                    let frame = match encoded.payload {
                        StatePayload::Text(text) => Frame::Text(text),
                        StatePayload::Binary(bytes) => Frame::Binary(bytes),
                    };
                    out.push((client, frame));
                }
            }
        }
        out
    }
}

/// One simulated client: its session and its two link directions.
pub struct SimClient {
    pub id: ClientId,
    pub session: ClientSession,
    pub up: DelayLine<Frame>,
    pub down: DelayLine<Frame>,
    pub controls: Controls,
    /// Drop input frames on the way up with this link's loss (state loss applies down).
    pub lose_inputs: bool,
}

/// Conditions of one direction for a round trip of `rtt` seconds.
pub fn link(rtt: f64, jitter: f64, loss: f64) -> LinkConditions {
    LinkConditions {
        latency: rtt / 2.0,
        jitter,
        loss,
    }
}

/// Server, clients and network on one simulated clock.
pub struct SimNet {
    pub server: SimServer,
    pub clients: Vec<SimClient>,
    pub now: f64,
    next_server_tick: f64,
    next_frame: f64,
    /// Client update period, seconds.
    pub frame_dt: f64,
    tick_dt: f64,
}

impl SimNet {
    pub fn new(server: SimServer, frame_rate: f64) -> Self {
        let tick_dt = 1.0 / f64::from(server.world.config().tick_rate);
        SimNet {
            server,
            clients: Vec::new(),
            now: 0.0,
            next_server_tick: tick_dt,
            next_frame: 0.0,
            frame_dt: 1.0 / frame_rate,
            tick_dt,
        }
    }

    /// Adds a client (it joins at once); returns its index.
    pub fn add_client(
        &mut self,
        config: SessionConfig,
        up: LinkConditions,
        down: LinkConditions,
        seed: u64,
    ) -> usize {
        let id = self.clients.len() as ClientId + 1;
        self.server.connect(id, config.encoding);
        let mut session = ClientSession::new(config);
        session.start(self.now);
        let mut client = SimClient {
            id,
            session,
            up: DelayLine::new(up, seed),
            down: DelayLine::new(down, seed.wrapping_mul(31).wrapping_add(7)),
            controls: Controls::default(),
            lose_inputs: false,
        };
        for frame in client.session.drain_outgoing() {
            client.up.push(self.now, frame, false);
        }
        self.clients.push(client);
        self.clients.len() - 1
    }

    /// Advances time to `until`, calling `on_frame(net, client index)` after each client update.
    pub fn run_until(&mut self, until: f64, mut on_frame: impl FnMut(&mut SimNet, usize)) {
        const STEP: f64 = 0.0005;
        while self.now + STEP <= until + 1e-12 {
            self.now += STEP;
            let now = self.now;
            // Up: client frames reaching the server.
            for index in 0..self.clients.len() {
                while let Some(frame) = self.clients[index].up.pop_due(now) {
                    let id = self.clients[index].id;
                    for (target, reply) in self.server.handle(now, id, &frame) {
                        self.send_down(target, reply);
                    }
                }
            }
            if now >= self.next_server_tick {
                self.next_server_tick += self.tick_dt;
                for (target, frame) in self.server.tick(now) {
                    self.send_down(target, frame);
                }
            }
            // Down: server frames reaching clients.
            for client in &mut self.clients {
                while let Some(frame) = client.down.pop_due(now) {
                    let _ = client.session.receive(now, &frame);
                }
            }
            if now >= self.next_frame {
                self.next_frame += self.frame_dt;
                for index in 0..self.clients.len() {
                    let client = &mut self.clients[index];
                    let controls = client.controls;
                    client.session.update(now, &controls);
                    for frame in client.session.drain_outgoing() {
                        let droppable =
                            client.lose_inputs && nexus_client::transport::is_input_frame(&frame);
                        client.up.push(now, frame, droppable);
                    }
                    on_frame(self, index);
                }
            }
        }
    }

    fn send_down(&mut self, target: ClientId, frame: Frame) {
        if let Some(client) = self.clients.iter_mut().find(|c| c.id == target) {
            let droppable = is_state_frame(&frame);
            let len = frame.len();
            if !client.down.push(self.now, frame, droppable) {
                client.session.note_lost_frame(len);
            }
        }
    }
}
