//! The bridge between a campaign's host (the simulation tick thread) and the gateway.
//!
//! How it works:
//! - Client → host: the gateway's connection tasks send [`HostEvent`]s into a crossbeam channel;
//!   the host drains it with [`CampaignLink::poll`] at the start of a tick. Joins and leaves always
//!   go in (an avatar must never be left behind); other events are refused with `server_busy` once
//!   the host is `host_queue_capacity` events behind, so the network never waits for the tick and
//!   memory stays bounded.
//! - Host → clients: every [`CampaignLink`] method sends one command into an unbounded crossbeam
//!   channel and returns at once, so the tick never blocks on the network. The campaign's router
//!   thread ([`crate::campaign`]) receives them and fans them out to the clients' outboxes; the
//!   per-client encoding then happens on the gateway's tokio workers.
//! - Dropping the link closes the campaign: its clients get `shutting_down` and are disconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use nexus_sim::command::{EnvironmentCommand, InteractionRequest, PlayerInput};
use nexus_sim::event::WorldEvent;
use nexus_sim::state::{ClientId, ObjectId, WorldState};

use crate::auth::Role;
use crate::wire::{ActionRequest, Envelope, ObjectUpdateRequest};

/// Something a client did, for the host to apply at its next tick.
#[derive(Clone, Debug, PartialEq)]
pub enum HostEvent {
    /// A client authenticated and asks to join: spawn its avatar, then answer with
    /// [`CampaignLink::welcome`] (or refuse with [`CampaignLink::reject`]).
    ClientJoined {
        /// Gateway-assigned id of this connection (unique per gateway run).
        client_id: ClientId,
        /// Stable account id from the token (the name in development mode).
        user_id: String,
        /// Display name.
        name: String,
        /// Role from the token.
        role: Role,
        /// Interest radius the client asked for, metres (the gateway clamps it).
        interest_radius: Option<f32>,
        /// `metadata.client_type` of the join (`web`, `godot`...), if given.
        client_type: Option<String>,
    },
    /// A client whose connection was lost took its session back on a new connection (same
    /// client id, same avatar): answer with [`CampaignLink::welcome`] again, with its avatar.
    ClientResumed {
        /// The client.
        client_id: ClientId,
    },
    /// A joined (or joining) client left or was disconnected: remove its avatar.
    ClientLeft {
        /// The client.
        client_id: ClientId,
        /// Why, for logs (`left`, `disconnected`, `slow_consumer`, ...).
        reason: String,
    },
    /// Movement inputs, in the order sent (already rate-limited and shape-checked).
    Inputs {
        /// The client.
        client_id: ClientId,
        /// The inputs.
        inputs: Vec<PlayerInput>,
    },
    /// An interaction request; its result goes out as a world event.
    Interaction {
        /// The client.
        client_id: ClientId,
        /// The request.
        request: InteractionRequest,
    },
    /// An environment edit. The gateway already refused it to non-admins; `role` is passed so the
    /// host can check again (defence in depth, and hosts may feed events from elsewhere).
    EnvironmentEdit {
        /// The client.
        client_id: ClientId,
        /// The client's role.
        role: Role,
        /// The edit.
        command: EnvironmentCommand,
    },
    /// The client asks for the environment state; answer with [`CampaignLink::send_event`].
    EnvironmentStateRequest {
        /// The client.
        client_id: ClientId,
    },
    /// The client asks to change an object (the host decides whether it may).
    ObjectUpdate {
        /// The client.
        client_id: ClientId,
        /// The client's role.
        role: Role,
        /// The change.
        request: ObjectUpdateRequest,
    },
    /// A named gameplay action for the host to interpret.
    Action {
        /// The client.
        client_id: ClientId,
        /// The action.
        request: ActionRequest,
    },
}

impl HostEvent {
    /// The client this event is about.
    pub fn client_id(&self) -> ClientId {
        match self {
            HostEvent::ClientJoined { client_id, .. }
            | HostEvent::ClientResumed { client_id }
            | HostEvent::ClientLeft { client_id, .. }
            | HostEvent::Inputs { client_id, .. }
            | HostEvent::Interaction { client_id, .. }
            | HostEvent::EnvironmentEdit { client_id, .. }
            | HostEvent::EnvironmentStateRequest { client_id }
            | HostEvent::ObjectUpdate { client_id, .. }
            | HostEvent::Action { client_id, .. } => *client_id,
        }
    }
}

/// Who receives an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every welcomed client of the campaign.
    All,
    /// One client.
    Client(ClientId),
    /// Every welcomed client but one (e.g. the one that caused it).
    AllExcept(ClientId),
}

/// What the host asks of the gateway (link → router thread).
#[derive(Debug)]
pub(crate) enum HostCommand {
    Welcome {
        client_id: ClientId,
        avatar_id: ObjectId,
        world_state: Arc<WorldState>,
    },
    State {
        snapshot: Box<WorldState>,
        acks: Vec<(ClientId, u32)>,
    },
    Events(Vec<WorldEvent>),
    Send {
        target: Target,
        envelope: Box<Envelope>,
    },
    Reject {
        client_id: ClientId,
        code: String,
        message: String,
    },
    Kick {
        client_id: ClientId,
        code: String,
        message: String,
    },
    TickTime(Duration),
    StateRate(u32),
    Persistence(crate::metrics::PersistenceHealth),
}

/// The host's end of a campaign: owned by the tick thread. Every method returns immediately.
///
/// Sending never fails from the host's point of view: if the gateway is gone, commands are
/// silently dropped (there is nobody left to receive them) and [`CampaignLink::is_open`] says so.
#[derive(Debug)]
pub struct CampaignLink {
    campaign_id: Arc<str>,
    events: Receiver<HostEvent>,
    commands: Sender<HostCommand>,
    /// Set by the router thread when it stops (gateway shutdown).
    closed: Arc<AtomicBool>,
    /// Events queued and not yet polled (see `Campaign::send_to_host`).
    queued: Arc<AtomicUsize>,
}

impl CampaignLink {
    pub(crate) fn new(
        campaign_id: Arc<str>,
        events: Receiver<HostEvent>,
        commands: Sender<HostCommand>,
        closed: Arc<AtomicBool>,
        queued: Arc<AtomicUsize>,
    ) -> Self {
        CampaignLink {
            campaign_id,
            events,
            commands,
            closed,
            queued,
        }
    }

    /// The campaign's id.
    pub fn campaign_id(&self) -> &str {
        &self.campaign_id
    }

    /// Whether the gateway still serves this campaign (false after the gateway shut down).
    pub fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Every client event waiting, oldest first.
    pub fn poll(&self) -> Vec<HostEvent> {
        let events: Vec<HostEvent> = self.events.try_iter().collect();
        if !events.is_empty() {
            self.queued.fetch_sub(events.len(), Ordering::AcqRel);
        }
        events
    }

    /// Answers a [`HostEvent::ClientJoined`]: the client is in, drives `avatar_id`, and receives
    /// `world_state` (a full state, with shapes) in its `session:welcome`.
    pub fn welcome(&self, client_id: ClientId, avatar_id: ObjectId, world_state: WorldState) {
        self.welcome_shared(client_id, avatar_id, Arc::new(world_state));
    }

    /// [`CampaignLink::welcome`] with a state shared by several joins: clients welcomed with the
    /// same `Arc` share one serialisation of it too (a join storm costs one state, not one per
    /// client).
    pub fn welcome_shared(
        &self,
        client_id: ClientId,
        avatar_id: ObjectId,
        world_state: Arc<WorldState>,
    ) {
        self.send(HostCommand::Welcome {
            client_id,
            avatar_id,
            world_state,
        });
    }

    /// Publishes one snapshot for every welcomed client (shared, encoded per client off this
    /// thread), with each client's last processed input sequence number.
    pub fn publish_state(&self, snapshot: WorldState, acks: Vec<(ClientId, u32)>) {
        self.send(HostCommand::State {
            snapshot: Box::new(snapshot),
            acks,
        });
    }

    /// Publishes world events to every welcomed client, reliably and in order.
    pub fn publish_events(&self, events: Vec<WorldEvent>) {
        if !events.is_empty() {
            self.send(HostCommand::Events(events));
        }
    }

    /// Sends one envelope (reliable) to `target`.
    pub fn send_event(&self, target: Target, envelope: Envelope) {
        self.send(HostCommand::Send {
            target,
            envelope: Box::new(envelope),
        });
    }

    /// Refuses something the client asked: it gets a `system:error:v1:stream` with `code` and
    /// `message`. Refusing a join that was not welcomed yet cancels the join (the client may try
    /// again); the connection stays open.
    pub fn reject(&self, client_id: ClientId, code: &str, message: &str) {
        self.send(HostCommand::Reject {
            client_id,
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    /// Disconnects a client: an error event, then a close frame with `code: message` as reason.
    pub fn kick(&self, client_id: ClientId, code: &str, message: &str) {
        self.send(HostCommand::Kick {
            client_id,
            code: code.to_string(),
            message: message.to_string(),
        });
    }

    /// Tells the gateway how many state messages per second the host publishes (announced in
    /// welcomes as `state_rate`; defaults to the world's tick rate).
    pub fn set_state_rate(&self, per_second: u32) {
        self.send(HostCommand::StateRate(per_second));
    }

    /// Reports how long the last tick took (shown on `/metrics`).
    pub fn report_tick_time(&self, duration: Duration) {
        self.send(HostCommand::TickTime(duration));
    }

    /// Reports how the campaign's saving goes (shown on `/health` and `/metrics`); call it when
    /// that changes, e.g. after each save or failed save.
    pub fn report_persistence(&self, health: crate::metrics::PersistenceHealth) {
        self.send(HostCommand::Persistence(health));
    }

    /// A cloneable handle that sends events to this campaign's clients from anywhere (another
    /// node, another thread) while the link itself stays with the tick.
    pub fn event_sender(&self) -> EventSender {
        EventSender {
            commands: self.commands.clone(),
        }
    }

    fn send(&self, command: HostCommand) {
        // Unbounded: never blocks. An error only means the gateway is gone.
        let _ = self.commands.send(command);
    }
}

/// Sends reliable events to one campaign's clients (see [`CampaignLink::event_sender`]).
#[derive(Clone, Debug)]
pub struct EventSender {
    commands: Sender<HostCommand>,
}

impl EventSender {
    /// Sends one envelope (reliable) to `target`; false when the campaign is closed.
    pub fn send_event(&self, target: Target, envelope: Envelope) -> bool {
        self.commands
            .send(HostCommand::Send {
                target,
                envelope: Box::new(envelope),
            })
            .is_ok()
    }
}
