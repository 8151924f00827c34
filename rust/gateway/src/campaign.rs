//! A campaign as the gateway sees it: its members (connected clients) and its router thread, which
//! turns the host's commands into messages in the members' outboxes.
//!
//! How it works:
//! - The router is a plain thread blocked on the crossbeam command channel (the host side must never
//!   wait, and a tokio task cannot wait on crossbeam). It runs until the host drops its
//!   [`CampaignLink`](crate::CampaignLink) or the gateway stops.
//! - Broadcast events are encoded once and the encoded buffer is shared by every member's outbox.
//!   A snapshot is wrapped once in an `Arc`; each client's writer encodes it for that client.
//! - Members are in a `std` mutex: taken by the router for one fan-out and by sessions to join or
//!   leave, never across an `.await`. Lock order is members → outbox, never the reverse.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;

use axum::extract::ws::{Utf8Bytes, close_code};
use crossbeam_channel::{Receiver, Sender};
use nexus_sim::state::ClientId;

use crate::config::GatewayConfig;
use crate::link::{HostCommand, HostEvent, Target};
use crate::metrics::CampaignMetricsSnapshot;
use crate::metrics::{CampaignMetrics, Metrics};
use crate::outbox::{
    CloseRequest, JoinPhase, Outbox, Reliable, ReliablePush, StateItem, StatePush,
};
use crate::wire::{self, MemberInfo, SharedState, codes};

/// A member: its outbox, what its welcome needs, and whether it was welcomed.
struct Member {
    outbox: Arc<Outbox>,
    info: MemberInfo,
    welcomed: bool,
    /// Its connection is gone; it waits (grace period) for the client to resume it.
    parked: bool,
    /// The next welcome tells the client it resumed its session.
    resuming: bool,
}

/// A session taken back by [`Campaign::resume_member`].
pub(crate) struct Resumed {
    pub client_id: ClientId,
    /// The connection that still held the session (the client noticed the loss first): to close.
    pub replaced: Option<Arc<Outbox>>,
}

/// Why a client event could not be queued for the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HostSendError {
    /// The host's queue is full (it is not keeping up).
    Busy,
    /// The campaign has closed.
    Closed,
}

/// One open campaign.
pub(crate) struct Campaign {
    pub id: Arc<str>,
    /// Client events to the host (bounded; connection tasks `try_send`).
    pub to_host: Sender<HostEvent>,
    pub metrics: Arc<CampaignMetrics>,
    members: Mutex<HashMap<ClientId, Member>>,
    closed: Arc<AtomicBool>,
    /// Client events queued for the host and not yet polled (shared with the link, which
    /// decrements it): the channel is unbounded so that joins and leaves are never lost, and this
    /// count bounds everything else.
    queued: Arc<AtomicUsize>,
    queue_capacity: usize,
    /// Tick of the newest published snapshot (for pongs).
    latest_tick: AtomicU64,
    /// State messages per second the host publishes (told to clients in the welcome).
    state_rate: AtomicU32,
}

impl Campaign {
    pub fn new(
        id: Arc<str>,
        to_host: Sender<HostEvent>,
        closed: Arc<AtomicBool>,
        queued: Arc<AtomicUsize>,
        queue_capacity: usize,
    ) -> Self {
        Campaign {
            id,
            to_host,
            metrics: Arc::default(),
            members: Mutex::default(),
            closed,
            queued,
            queue_capacity,
            latest_tick: AtomicU64::new(0),
            state_rate: AtomicU32::new(0),
        }
    }

    /// Queues a client event for the host. Lifecycle events (joins, leaves) always go in; others
    /// are refused when the host is `queue_capacity` events behind.
    pub fn send_to_host(&self, event: HostEvent, lifecycle: bool) -> Result<(), HostSendError> {
        if self.is_closed() {
            return Err(HostSendError::Closed);
        }
        if !lifecycle && self.queued.load(Ordering::Acquire) >= self.queue_capacity {
            return Err(HostSendError::Busy);
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.to_host.send(event).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            HostSendError::Closed
        })
    }

    pub fn latest_tick(&self) -> u64 {
        self.latest_tick.load(Ordering::Relaxed)
    }

    fn members(&self) -> MutexGuard<'_, HashMap<ClientId, Member>> {
        // Map operations cannot be left half-done by a panic elsewhere; keep serving.
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Adds a joining client; false if the campaign has closed meanwhile.
    pub fn add_member(&self, client_id: ClientId, outbox: Arc<Outbox>, info: MemberInfo) -> bool {
        let mut members = self.members();
        // Checked under the lock: `close` also takes it, so no member can slip in after it.
        if self.is_closed() {
            return false;
        }
        members.insert(
            client_id,
            Member {
                outbox,
                info,
                welcomed: false,
                parked: false,
                resuming: false,
            },
        );
        true
    }

    /// Keeps the session of a client whose connection `outbox` is gone, for it to resume; false
    /// when that connection no longer holds the session (another took it over, or it is gone).
    pub fn park_member(&self, client_id: ClientId, outbox: &Arc<Outbox>) -> bool {
        let mut members = self.members();
        let Some(member) = members.get_mut(&client_id) else {
            return false;
        };
        // A client not welcomed yet has nothing to resume.
        if !Arc::ptr_eq(&member.outbox, outbox) || member.parked || !member.welcomed {
            return false;
        }
        if member.welcomed {
            Metrics::dec(&self.metrics.clients);
        }
        member.welcomed = false;
        member.parked = true;
        true
    }

    /// Hands the session holding `token` (parked, or still on a connection the server has not seen
    /// drop) to a new connection of the same account, with a new token in `info`.
    pub fn resume_member(
        &self,
        token: &str,
        user_id: &str,
        outbox: Arc<Outbox>,
        info: MemberInfo,
    ) -> Option<Resumed> {
        let mut members = self.members();
        let (client_id, member) = members.iter_mut().find(|(_, m)| {
            m.info.resume_token.as_deref() == Some(token) && m.info.user_id == user_id
        })?;
        if member.welcomed {
            Metrics::dec(&self.metrics.clients);
        }
        let old = std::mem::replace(&mut member.outbox, outbox);
        let replaced = (!member.parked).then_some(old);
        member.info = info;
        member.welcomed = false;
        member.parked = false;
        member.resuming = true;
        Some(Resumed {
            client_id: *client_id,
            replaced,
        })
    }

    /// Ends a parked session whose grace period ran out; true if it was still parked (the host
    /// must then hear that the client left).
    pub fn expire_parked(&self, client_id: ClientId, outbox: &Arc<Outbox>) -> bool {
        let mut members = self.members();
        let still_parked = members
            .get(&client_id)
            .is_some_and(|m| m.parked && Arc::ptr_eq(&m.outbox, outbox));
        if still_parked {
            members.remove(&client_id);
        }
        still_parked
    }

    /// Removes the client if `outbox`'s connection holds its session; true if it did.
    pub fn remove_member_of(&self, client_id: ClientId, outbox: &Arc<Outbox>) -> bool {
        let mut members = self.members();
        if !members
            .get(&client_id)
            .is_some_and(|m| Arc::ptr_eq(&m.outbox, outbox))
        {
            return false;
        }
        if members.remove(&client_id).is_some_and(|m| m.welcomed) {
            Metrics::dec(&self.metrics.clients);
        }
        true
    }

    /// Removes a client; true if it was a member.
    pub fn remove_member(&self, client_id: ClientId) -> bool {
        match self.members().remove(&client_id) {
            Some(member) => {
                if member.welcomed {
                    Metrics::dec(&self.metrics.clients);
                }
                true
            }
            None => false,
        }
    }
}

/// The open campaigns by id. Read on every join, written when a campaign opens or closes: a
/// `RwLock` keeps joins concurrent; never held across an `.await`.
#[derive(Default)]
pub(crate) struct Campaigns(RwLock<HashMap<Arc<str>, Arc<Campaign>>>);

impl Campaigns {
    pub fn get(&self, id: &str) -> Option<Arc<Campaign>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Registers a campaign; false if the id is taken.
    pub fn insert(&self, campaign: Arc<Campaign>) -> bool {
        let mut campaigns = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if campaigns.contains_key(&campaign.id) {
            return false;
        }
        campaigns.insert(campaign.id.clone(), campaign);
        true
    }

    /// Unregisters `campaign` (only this very campaign, not a newer one with the same id).
    pub fn remove(&self, campaign: &Arc<Campaign>) {
        let mut campaigns = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if campaigns
            .get(&campaign.id)
            .is_some_and(|c| Arc::ptr_eq(c, campaign))
        {
            campaigns.remove(&campaign.id);
        }
    }

    /// Every campaign's figures, sorted by id.
    pub fn metrics(&self) -> Vec<CampaignMetricsSnapshot> {
        let mut all: Vec<_> = {
            let campaigns = self.0.read().unwrap_or_else(PoisonError::into_inner);
            campaigns
                .values()
                .map(|c| c.metrics.snapshot(&c.id))
                .collect()
        };
        all.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
        all
    }
}

/// What a campaign's router works with: the gateway's configuration and figures, and the
/// registry it leaves when it closes.
pub(crate) struct RouterContext {
    pub config: Arc<GatewayConfig>,
    pub metrics: Arc<Metrics>,
    pub campaigns: Arc<Campaigns>,
}

/// Starts the router thread of `campaign`.
pub(crate) fn spawn_router(
    shared: RouterContext,
    campaign: Arc<Campaign>,
    commands: Receiver<HostCommand>,
    stop: Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("nexus-gw-{}", short(&campaign.id)))
        .spawn(move || {
            tracing::info!(campaign = %campaign.id, "campaign opened");
            let timeline = Arc::new(wire::timeline(&campaign.id, &shared.config.interest));
            let router = Router {
                shared,
                campaign,
                timeline,
                welcome_state: std::cell::RefCell::new(None),
            };
            loop {
                crossbeam_channel::select! {
                    recv(commands) -> command => match command {
                        Ok(command) => router.handle(command),
                        Err(_) => break, // the host dropped its link
                    },
                    recv(stop) -> _ => break, // the gateway is stopping (sender dropped)
                }
            }
            router.close();
        })
}

/// Thread names are limited to 15 bytes on Linux; keep the campaign's prefix.
fn short(id: &str) -> &str {
    let mut end = id.len().min(8);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

struct Router {
    shared: RouterContext,
    campaign: Arc<Campaign>,
    /// The published states every client's shared encoder reads.
    timeline: Arc<nexus_protocol::SharedTimeline>,
    /// The newest welcome state and its JSON.
    welcome_state: std::cell::RefCell<Option<(Arc<nexus_sim::state::WorldState>, Arc<str>)>>,
}

impl Router {
    fn handle(&self, command: HostCommand) {
        match command {
            HostCommand::Welcome {
                client_id,
                avatar_id,
                world_state,
            } => self.welcome(client_id, avatar_id, &world_state),
            HostCommand::State { snapshot, acks } => self.state(*snapshot, acks),
            HostCommand::Events(events) => {
                for event in &events {
                    if let Some(text) = wire::world_event_text(event, &self.campaign.id) {
                        self.broadcast(Target::All, Utf8Bytes::from(text));
                    }
                }
            }
            HostCommand::Send { target, envelope } => {
                self.broadcast(target, Utf8Bytes::from(envelope.to_json()));
            }
            HostCommand::Reject {
                client_id,
                code,
                message,
            } => self.reject(client_id, &code, &message),
            HostCommand::Kick {
                client_id,
                code,
                message,
            } => self.kick(client_id, code, message),
            HostCommand::StateRate(rate) => self.campaign.state_rate.store(rate, Ordering::Relaxed),
            HostCommand::TickTime(duration) => {
                let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                self.campaign.metrics.record_tick(nanos);
            }
            HostCommand::Persistence(health) => {
                *self
                    .campaign
                    .metrics
                    .persistence
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(health);
            }
        }
    }

    fn welcome(
        &self,
        client_id: ClientId,
        avatar_id: nexus_sim::state::ObjectId,
        world_state: &Arc<nexus_sim::state::WorldState>,
    ) {
        let mut members = self.campaign.members();
        // The client may have left while the host was spawning it: nothing to do.
        let Some(member) = members.get_mut(&client_id) else {
            return;
        };
        if member.welcomed {
            return;
        }
        let state_rate = match self.campaign.state_rate.load(Ordering::Relaxed) {
            0 => world_state.physics.tick_rate,
            rate => rate,
        };
        let world_state_json = self.world_state_json(world_state);
        let resumed = std::mem::take(&mut member.resuming);
        let text = wire::welcome_text(
            &self.campaign.id,
            client_id,
            avatar_id,
            world_state,
            &world_state_json,
            state_rate,
            &member.info,
            &self.shared.config.limits,
            self.shared.config.session.resume_grace.as_secs_f64(),
            resumed,
        );
        member.welcomed = true;
        Metrics::inc(&self.campaign.metrics.clients);
        member.outbox.push_reliable(Reliable::Welcome {
            avatar_id,
            campaign_id: self.campaign.id.clone(),
            text: Utf8Bytes::from(text),
            metrics: self.campaign.metrics.clone(),
        });
        member.outbox.set_phase(JoinPhase::Welcomed);
    }

    /// The JSON of a welcome's world state, serialised once for every client welcomed with it.
    fn world_state_json(&self, world_state: &Arc<nexus_sim::state::WorldState>) -> Arc<str> {
        let mut cache = self.welcome_state.borrow_mut();
        if let Some((state, json)) = cache.as_ref()
            && Arc::ptr_eq(state, world_state)
        {
            return json.clone();
        }
        let json: Arc<str> = serde_json::to_string(world_state.as_ref())
            .unwrap_or_else(|_| "null".to_owned())
            .into();
        *cache = Some((world_state.clone(), json.clone()));
        json
    }

    fn state(&self, snapshot: nexus_sim::state::WorldState, acks: Vec<(ClientId, u32)>) {
        Metrics::inc(&self.campaign.metrics.snapshots_published);
        self.campaign
            .latest_tick
            .store(snapshot.tick, Ordering::Relaxed);
        // Prepared once (e.g. the spatial grid), shared by every client's encoder.
        let shared_state = Arc::new(SharedState::publish(snapshot, &self.timeline));
        let on_grid = shared_state.on_baseline_grid();
        let acks: HashMap<ClientId, u32> = acks.into_iter().collect();
        let members = self.campaign.members();
        let mut dropped = 0;
        for (client_id, member) in members.iter().filter(|(_, m)| m.welcomed) {
            let item = StateItem {
                snapshot: shared_state.clone(),
                input_ack: acks.get(client_id).copied(),
                on_grid,
            };
            if let StatePush::Accepted { dropped: n } = member.outbox.push_state(item) {
                dropped += u64::from(n);
            }
        }
        drop(members);
        if dropped > 0 {
            Metrics::add(&self.shared.metrics.state_dropped, dropped);
            Metrics::add(&self.campaign.metrics.state_dropped, dropped);
        }
    }

    fn broadcast(&self, target: Target, text: Utf8Bytes) {
        let members = self.campaign.members();
        let push = |outbox: &Outbox| {
            if outbox.push_reliable(Reliable::Text(text.clone())) == ReliablePush::Overflow {
                Metrics::inc(&self.shared.metrics.disconnect_slow);
                tracing::debug!(campaign = %self.campaign.id, "a client is too slow for its reliable events: closing it");
            }
        };
        match target {
            Target::Client(client_id) => {
                if let Some(member) = members.get(&client_id) {
                    push(&member.outbox);
                }
            }
            Target::All | Target::AllExcept(_) => {
                for (client_id, member) in members.iter() {
                    if member.welcomed && target != Target::AllExcept(*client_id) {
                        push(&member.outbox);
                    }
                }
            }
        }
    }

    fn reject(&self, client_id: ClientId, code: &str, message: &str) {
        let text = wire::error_text(&self.campaign.id, code, message);
        Metrics::inc(&self.shared.metrics.inputs_rejected);
        Metrics::inc(&self.campaign.metrics.inputs_rejected);
        let mut members = self.campaign.members();
        let Some(member) = members.get(&client_id) else {
            return;
        };
        Metrics::inc(&self.shared.metrics.errors_sent);
        member
            .outbox
            .push_reliable(Reliable::Text(Utf8Bytes::from(text)));
        // A parked session has no connection to refuse; it waits for its client or its expiry.
        if !member.welcomed && !member.parked {
            // A refused join: the client is no member any more and may try again.
            member.outbox.set_phase(JoinPhase::Refused);
            let resuming = member.resuming;
            members.remove(&client_id);
            drop(members);
            if resuming {
                // The host may still hold an avatar for it: it must not outlive the session.
                let _ = self.campaign.send_to_host(
                    HostEvent::ClientLeft {
                        client_id,
                        reason: "resume_refused".into(),
                    },
                    true,
                );
            }
        }
    }

    fn kick(&self, client_id: ClientId, code: String, message: String) {
        let members = self.campaign.members();
        let Some(member) = members.get(&client_id) else {
            return;
        };
        Metrics::inc(&self.shared.metrics.errors_sent);
        member
            .outbox
            .push_reliable(Reliable::Text(Utf8Bytes::from(wire::error_text(
                &self.campaign.id,
                &code,
                &message,
            ))));
        member.outbox.request_close(CloseRequest {
            code: close_code::POLICY,
            reason_code: code,
            message,
            discard_pending: false,
        });
    }

    /// The campaign ends: unregister it and send its clients away politely.
    fn close(&self) {
        let members = {
            let mut members = self.campaign.members();
            self.campaign.closed.store(true, Ordering::Release);
            std::mem::take(&mut *members)
        };
        self.shared.campaigns.remove(&self.campaign);
        tracing::info!(
            campaign = %self.campaign.id,
            clients = members.len(),
            "campaign closed"
        );
        self.campaign
            .metrics
            .clients
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let message = "the campaign was closed";
        let text = Utf8Bytes::from(wire::error_text(
            &self.campaign.id,
            codes::SHUTTING_DOWN,
            message,
        ));
        for member in members.into_values() {
            member.outbox.push_reliable(Reliable::Text(text.clone()));
            member.outbox.request_close(CloseRequest {
                code: close_code::AWAY,
                reason_code: codes::SHUTTING_DOWN.to_string(),
                message: message.to_string(),
                discard_pending: false,
            });
        }
    }
}
