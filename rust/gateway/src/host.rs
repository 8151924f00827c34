//! [`CampaignHost`]: the glue that runs one campaign — a [`World`] plus its [`CampaignLink`].
//!
//! How one [`CampaignHost::tick`] runs, on the caller's (tick) thread, never waiting on the network:
//! 1. poll the link and apply every client event to the world: spawn avatars for joins (answered
//!    with a welcome carrying a full state), remove them for leaves, queue inputs (refusals go back
//!    as a `session:ack` listing them), queue interactions, apply environment edits (admin only),
//!    answer environment state requests, apply object updates (admins, or owners of the object),
//!    and keep actions for the embedding code ([`CampaignHost::drain_actions`]);
//! 2. `world.step()`;
//! 3. publish the world's events (reliable);
//! 4. every `tick_rate / state_rate` ticks, publish one snapshot with each client's input ack;
//! 5. report the tick's duration for `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use nexus_protocol::server as events;
use nexus_sim::state::{BodyKind, ClientId, ObjectId, Tick};
use nexus_sim::{World, WorldEvent};

use crate::auth::Role;
use crate::link::{CampaignLink, HostEvent, Target};
use crate::wire::{ActionRequest, ObjectUpdateRequest, codes};

/// Most actions kept for the embedding code; older ones are dropped when nobody drains them.
const MAX_PENDING_ACTIONS: usize = 1024;

/// How a campaign host runs.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignHostConfig {
    /// State messages per second (at most the world's tick rate). Default 20.
    pub state_rate: u32,
    /// Where avatars appear; `None` lets the world pick a free spot near its spawn point.
    pub spawn_position: Option<[f32; 3]>,
    /// Whether a player may update objects it owns (admins may update any object). Default true.
    pub owners_may_update_objects: bool,
}

impl Default for CampaignHostConfig {
    fn default() -> Self {
        CampaignHostConfig {
            state_rate: 20,
            spawn_position: None,
            owners_may_update_objects: true,
        }
    }
}

/// What one tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickStats {
    /// The world's tick after the step.
    pub tick: Tick,
    /// Client events applied.
    pub host_events: usize,
    /// World events published.
    pub world_events: usize,
    /// Whether a snapshot was published this tick.
    pub snapshot_published: bool,
    /// Clients in the campaign.
    pub clients: usize,
    /// Time spent in `world.step()`.
    pub step_time: Duration,
    /// Time spent in the whole tick.
    pub total_time: Duration,
}

#[derive(Clone, Debug)]
struct HostClient {
    role: Role,
}

/// What happened in the campaign since the last [`CampaignHost::take_notices`], for an embedding
/// host that reports it (the Godot node turns it into signals). Collected only after the first
/// call, so hosts that never ask pay nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostNotices {
    /// Clients welcomed: id, name, avatar.
    pub joined: Vec<(ClientId, String, ObjectId)>,
    /// Clients gone.
    pub left: Vec<ClientId>,
    /// World events published (the same that clients receive).
    pub events: Vec<WorldEvent>,
}

/// One campaign: its world and its link to the gateway.
pub struct CampaignHost {
    world: World,
    link: CampaignLink,
    config: CampaignHostConfig,
    clients: BTreeMap<ClientId, HostClient>,
    /// Ticks between snapshots.
    snapshot_interval: u64,
    ticks_since_snapshot: u64,
    actions: VecDeque<(ClientId, ActionRequest)>,
    notices: Option<HostNotices>,
    /// Where returning players (by name) reappear, e.g. from a persisted campaign.
    returning: BTreeMap<String, [f32; 3]>,
}

impl CampaignHost {
    /// Runs `world` for the clients of `link`'s campaign.
    pub fn new(world: World, link: CampaignLink, config: CampaignHostConfig) -> Self {
        let tick_rate = world.config().tick_rate.max(1);
        let state_rate = config.state_rate.clamp(1, tick_rate);
        link.set_state_rate(state_rate);
        CampaignHost {
            snapshot_interval: u64::from(tick_rate / state_rate).max(1),
            // Publish on the very first tick, so fresh clients see the stream start at once.
            ticks_since_snapshot: u64::MAX / 2,
            world,
            link,
            config,
            clients: BTreeMap::new(),
            actions: VecDeque::new(),
            notices: None,
            returning: BTreeMap::new(),
        }
    }

    /// The world.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, to change it between ticks (add objects, register interactions...).
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// The link to the gateway (e.g. to send custom events).
    pub fn link(&self) -> &CampaignLink {
        &self.link
    }

    /// Clients currently in the campaign (with an avatar), ascending.
    pub fn clients(&self) -> Vec<ClientId> {
        self.clients.keys().copied().collect()
    }

    /// Actions clients sent since the last call (oldest first), for the embedding code to
    /// interpret.
    pub fn drain_actions(&mut self) -> Vec<(ClientId, ActionRequest)> {
        self.actions.drain(..).collect()
    }

    /// Players who were here before (a persisted campaign): each reappears at its position when
    /// it joins again under the same name.
    pub fn set_returning_players(&mut self, positions: BTreeMap<String, [f32; 3]>) {
        self.returning = positions;
    }

    /// Joins, leaves and world events since the previous call (see [`HostNotices`]).
    pub fn take_notices(&mut self) -> HostNotices {
        self.notices
            .replace(HostNotices::default())
            .unwrap_or_default()
    }

    /// Runs one tick (see the module documentation).
    pub fn tick(&mut self) -> TickStats {
        let started = Instant::now();
        // The states' timestamps: the world itself reads no clock.
        self.world.set_wall_clock(crate::auth::unix_now_f64());
        let host_events = self.apply_client_events();

        let step_started = Instant::now();
        self.world.step();
        let step_time = step_started.elapsed();

        let world_events = self.world.drain_events();
        let world_event_count = world_events.len();
        if let Some(notices) = self.notices.as_mut() {
            notices.events.extend(world_events.iter().cloned());
        }
        self.link.publish_events(world_events);

        self.ticks_since_snapshot = self.ticks_since_snapshot.saturating_add(1);
        let snapshot_published = self.ticks_since_snapshot >= self.snapshot_interval;
        if snapshot_published {
            self.ticks_since_snapshot = 0;
            let acks = self
                .clients
                .keys()
                .filter_map(|&c| self.world.last_processed_input(c).map(|seq| (c, seq)))
                .collect();
            self.link.publish_state(self.world.snapshot(false), acks);
        }

        let total_time = started.elapsed();
        self.link.report_tick_time(total_time);
        TickStats {
            tick: self.world.tick(),
            host_events,
            world_events: world_event_count,
            snapshot_published,
            clients: self.clients.len(),
            step_time,
            total_time,
        }
    }

    fn apply_client_events(&mut self) -> usize {
        let events = self.link.poll();
        let count = events.len();
        let mut joined = Vec::new();
        for event in events {
            match event {
                HostEvent::ClientJoined {
                    client_id,
                    name,
                    role,
                    ..
                } => {
                    let position = self
                        .returning
                        .get(&name)
                        .copied()
                        .or(self.config.spawn_position);
                    match self.world.spawn_player(client_id, &name, position) {
                        Ok(avatar) => {
                            self.world.set_admin(client_id, role == Role::Admin);
                            self.clients.insert(client_id, HostClient { role });
                            if let Some(notices) = self.notices.as_mut() {
                                notices.joined.push((client_id, name.clone(), avatar));
                            }
                            joined.push((client_id, avatar));
                        }
                        Err(err) => self.link.reject(client_id, err.code, &err.message),
                    }
                }
                HostEvent::ClientResumed { client_id } => match self.world.avatar_of(client_id) {
                    Some(avatar) => joined.push((client_id, avatar)),
                    None => self.link.reject(
                        client_id,
                        codes::UNKNOWN_CAMPAIGN,
                        "the session's avatar is gone; join again without resume_token",
                    ),
                },
                HostEvent::ClientLeft { client_id, .. } => {
                    self.world.remove_player(client_id);
                    if self.clients.remove(&client_id).is_some()
                        && let Some(notices) = self.notices.as_mut()
                    {
                        notices.left.push(client_id);
                    }
                    joined.retain(|(c, _)| *c != client_id);
                }
                HostEvent::Inputs { client_id, inputs } => {
                    let rejected = self.world.queue_inputs(client_id, &inputs);
                    if !rejected.is_empty() {
                        let ack = events::input_ack(
                            self.link.campaign_id(),
                            self.world.last_processed_input(client_id),
                            self.world.tick(),
                            &rejected,
                        );
                        self.link.send_event(Target::Client(client_id), ack);
                    }
                }
                HostEvent::Interaction { client_id, request } => {
                    self.world.request_interaction(client_id, request);
                }
                HostEvent::EnvironmentEdit {
                    client_id,
                    role,
                    command,
                } => {
                    // Checked by the gateway already; hosts may be fed from elsewhere too.
                    if role != Role::Admin || !self.is_admin(client_id) {
                        self.link.reject(
                            client_id,
                            codes::FORBIDDEN,
                            "environment edits need the admin role",
                        );
                    } else if let Err(err) = self.world.apply_environment(command) {
                        self.link.reject(client_id, err.code, &err.message);
                    }
                }
                HostEvent::EnvironmentStateRequest { client_id } => {
                    let envelope = events::environment_state(
                        self.link.campaign_id(),
                        &self.world.environment_state(),
                    );
                    self.link.send_event(Target::Client(client_id), envelope);
                }
                HostEvent::ObjectUpdate {
                    client_id, request, ..
                } => self.update_object(client_id, request),
                HostEvent::Action { client_id, request } => {
                    if self.actions.len() >= MAX_PENDING_ACTIONS {
                        self.actions.pop_front();
                    }
                    self.actions.push_back((client_id, request));
                }
            }
        }
        if !joined.is_empty() {
            // One full state (with shapes) for everyone who joined this tick.
            let state = std::sync::Arc::new(self.world.snapshot(true));
            for (client_id, avatar) in joined {
                self.link.welcome_shared(client_id, avatar, state.clone());
            }
        }
        count
    }

    fn is_admin(&self, client_id: ClientId) -> bool {
        self.clients
            .get(&client_id)
            .is_some_and(|c| c.role == Role::Admin)
    }

    fn update_object(&mut self, client_id: ClientId, request: ObjectUpdateRequest) {
        let id = request.id;
        let Some(current) = self.world.object_state(id) else {
            return self.link.reject(
                client_id,
                "unknown_object",
                &format!("no object with id {id}"),
            );
        };
        let owns = self.world.owner_of(id) == Some(client_id);
        let allowed = self.is_admin(client_id)
            || (self.config.owners_may_update_objects && owns && current.kind != BodyKind::Player);
        if !allowed {
            return self.link.reject(
                client_id,
                codes::FORBIDDEN,
                &format!("object {id} may only be updated by an admin or its owner"),
            );
        }
        if request.velocity.is_some() || request.angular_velocity.is_some() {
            return self.link.reject(
                client_id,
                codes::INVALID_PAYLOAD,
                "payload.velocity: setting velocities is not supported; use an interaction",
            );
        }
        if request.position.is_some() || request.rotation.is_some() {
            let position = request.position.unwrap_or(current.position);
            let rotation = request.rotation.unwrap_or(current.rotation);
            if let Err(err) = self.world.set_object_pose(id, position, rotation) {
                return self.link.reject(client_id, err.code, &err.message);
            }
        }
        if let Some(changes) = request.properties {
            let mut properties = current.properties.clone();
            for (key, value) in changes {
                if value.is_null() {
                    properties.remove(&key);
                } else {
                    properties.insert(key, value);
                }
            }
            if let Err(err) = self.world.set_properties(id, properties) {
                return self.link.reject(client_id, err.code, &err.message);
            }
        }
        if let Some(updated) = self.world.object_state(id) {
            let envelope = events::object_update(self.link.campaign_id(), &updated);
            self.link.send_event(Target::All, envelope);
        }
    }
}
