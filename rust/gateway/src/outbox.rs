//! One client's outbound queue: a latest-wins slot for the state stream and a bounded FIFO for
//! reliable events.
//!
//! How it works:
//! - Producers (the campaign router thread, the connection's own reader) push without waiting:
//!   a state replaces any state the writer has not taken yet (the replaced one is a counted drop),
//!   a reliable event is appended unless the queue is full, in which case the client is too slow to
//!   be served correctly and the outbox turns into "closing, discard the rest".
//! - The connection's writer task is the only consumer. It sleeps on a [`Notify`] (which keeps a
//!   permit, so a push between its check and its sleep is never lost) and always drains reliable
//!   events before the state, so an `object_added` reaches the client before a state using it.
//! - The lock is a plain `std` mutex: critical sections are a few pointer moves, producers include a
//!   non-async thread, and nobody holds it across an `.await`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseCode, Utf8Bytes, close_code};
use nexus_sim::state::{ObjectId, Tick};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::CampaignMetrics;
use crate::wire::{SharedState, codes};

/// A reliable outgoing message.
#[derive(Clone, Debug)]
pub(crate) enum Reliable {
    /// An encoded event; broadcast events share one buffer among all clients.
    Text(Utf8Bytes),
    /// The welcome; it also tells the writer which avatar centres the client's interest.
    Welcome {
        avatar_id: ObjectId,
        campaign_id: Arc<str>,
        text: Utf8Bytes,
        /// The campaign's counters, which the writer feeds from then on.
        metrics: Arc<CampaignMetrics>,
    },
}

/// One state stream item: the shared snapshot plus what is specific to this client.
#[derive(Clone, Debug)]
pub(crate) struct StateItem {
    pub snapshot: Arc<SharedState>,
    /// Last input sequence number of this client the simulation processed.
    pub input_ack: Option<u32>,
    /// The state is on the shared stream's baseline grid (see [`Outbox::push_state`]).
    pub on_grid: bool,
}

/// Why and how the server closes a connection.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CloseRequest {
    pub code: CloseCode,
    /// Stable snake_case code, first word of the close reason.
    pub reason_code: String,
    pub message: String,
    /// Drop everything still queued (the client is too slow, or the server is going away).
    pub discard_pending: bool,
}

impl CloseRequest {
    /// The close frame's reason: `code: message`, cut to the 123 bytes a close frame allows.
    pub fn reason(&self) -> String {
        let mut reason = format!("{}: {}", self.reason_code, self.message);
        if reason.len() > 123 {
            let mut cut = 123;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        reason
    }
}

/// Outcome of pushing a reliable event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReliablePush {
    Queued,
    /// The queue was full: the outbox is now closing with `slow_consumer`.
    Overflow,
    /// The connection is closing; the event was not queued.
    Closed,
}

/// Outcome of pushing a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatePush {
    /// Queued, or held back for a paced client; `dropped` older states, queued or held back
    /// until now, will never be sent (each a counted dropped update).
    Accepted {
        dropped: u32,
    },
    Closed,
}

/// Where the client is in joining its campaign (written by the router, read by the reader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum JoinPhase {
    None = 0,
    Pending = 1,
    Welcomed = 2,
    /// The host refused the join; the client may try again.
    Refused = 3,
}

#[derive(Default)]
struct Inner {
    reliable: VecDeque<Reliable>,
    state: Option<StateItem>,
    close: Option<CloseRequest>,
    /// Publications left during which only grid states are queued (the client lagged).
    paced_for: u32,
    /// The newest state held back by pacing, and since when states are held back: sent if
    /// nothing is queued within [`HELD_BACK_AT_MOST`] of that (the world paused, or publishes
    /// slowly), so that the newest state always reaches the client.
    held_back: Option<(StateItem, Instant)>,
}

/// How long a held-back state waits for a newer one: longer than the gap between two grid states
/// at 20 states per second (200 ms).
pub(crate) const HELD_BACK_AT_MOST: Duration = Duration::from_millis(250);

/// How long a client that lagged is paced, in publications (two seconds at 20 per second): it
/// must keep up for that long before it gets every state again.
const PACE_PUBLICATIONS: u32 = 40;

/// See the module documentation.
/// Acks kept between two messages of a client (more than a client sends in that time).
const MAX_RECENT_ACKS: usize = 64;

pub(crate) struct Outbox {
    inner: Mutex<Inner>,
    wake: Notify,
    /// Fires on any close request (the reader switches to draining).
    closing: CancellationToken,
    /// Fires on a discarding close request (the writer abandons a send stuck on a slow socket).
    abort: CancellationToken,
    reliable_capacity: usize,
    phase: AtomicU8,
    /// Every ack since the writer last looked, oldest first (bounded): the shared stream picks
    /// its baselines among them.
    recent_acks: Mutex<VecDeque<Tick>>,
    /// The client lost its baselines and asked for a full state.
    resync: AtomicBool,
    /// Interest radius of the client (f32 bits), set at join.
    interest_radius: AtomicU32,
}

impl Outbox {
    pub fn new(reliable_capacity: usize) -> Self {
        Outbox {
            inner: Mutex::default(),
            wake: Notify::new(),
            closing: CancellationToken::new(),
            abort: CancellationToken::new(),
            reliable_capacity: reliable_capacity.max(1),
            phase: AtomicU8::new(JoinPhase::None as u8),
            recent_acks: Mutex::default(),
            resync: AtomicBool::new(false),
            interest_radius: AtomicU32::new(0f32.to_bits()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent (single moves), so a
        // poisoned lock is still usable; never cascade a panic into other tasks.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push_reliable(&self, message: Reliable) -> ReliablePush {
        let outcome = {
            let mut inner = self.lock();
            if inner.close.is_some() {
                return ReliablePush::Closed;
            }
            if inner.reliable.len() >= self.reliable_capacity {
                inner.reliable.clear();
                inner.state = None;
                inner.held_back = None;
                inner.close = Some(CloseRequest {
                    code: close_code::AGAIN,
                    reason_code: codes::SLOW_CONSUMER.to_string(),
                    message: format!(
                        "more than {} reliable events waiting; reconnect",
                        self.reliable_capacity
                    ),
                    discard_pending: true,
                });
                ReliablePush::Overflow
            } else {
                inner.reliable.push_back(message);
                ReliablePush::Queued
            }
        };
        if outcome == ReliablePush::Overflow {
            self.closing.cancel();
            self.abort.cancel();
        }
        self.wake.notify_one();
        outcome
    }

    /// Queues `item` in place of any state the writer has not taken yet.
    ///
    /// A client whose writer had not taken the previous state is lagging (its socket, or the
    /// gateway's encoders, cannot keep up). For a while it is then paced: only states on the
    /// shared stream's baseline grid are queued for it. Lagging clients then all get (and
    /// acknowledge) the same states, so their baselines stay on the grid and they keep sharing
    /// encoded messages; served whichever state happened to be newest, each would soon have a
    /// baseline of its own, every message would be encoded for it alone, and the gateway would
    /// fall further behind.
    pub fn push_state(&self, item: StateItem) -> StatePush {
        let (outcome, wake) = {
            let mut inner = self.lock();
            if inner.close.is_some() {
                return StatePush::Closed;
            }
            inner.paced_for = if inner.state.is_some() {
                PACE_PUBLICATIONS
            } else {
                inner.paced_for.saturating_sub(1)
            };
            let mut wake = true;
            let dropped = if inner.paced_for > 0 && !item.on_grid {
                match inner.held_back.as_mut() {
                    // Newer, due when the first held back was: the writer's timer stands.
                    Some((held, _)) => {
                        *held = item;
                        wake = false;
                        1
                    }
                    // The writer sets its timer for it.
                    None => {
                        inner.held_back = Some((item, Instant::now()));
                        0
                    }
                }
            } else {
                u32::from(inner.held_back.take().is_some())
                    + u32::from(inner.state.replace(item).is_some())
            };
            (StatePush::Accepted { dropped }, wake)
        };
        if wake {
            self.wake.notify_one();
        }
        outcome
    }

    /// Asks the writer to close the connection. The first request wins; a later discarding one
    /// still makes the writer abandon what is queued.
    pub fn request_close(&self, request: CloseRequest) {
        let discard = request.discard_pending;
        {
            let mut inner = self.lock();
            if discard {
                inner.reliable.clear();
                inner.state = None;
                inner.held_back = None;
            }
            if inner.close.is_none() {
                inner.close = Some(request);
            } else if discard && let Some(close) = inner.close.as_mut() {
                close.discard_pending = true;
            }
        }
        self.closing.cancel();
        if discard {
            self.abort.cancel();
        }
        self.wake.notify_one();
    }

    pub fn pop_reliable(&self) -> Option<Reliable> {
        self.lock().reliable.pop_front()
    }

    pub fn take_state(&self) -> Option<StateItem> {
        self.lock().state.take()
    }

    /// When the held-back state is due (see [`Inner::held_back`]), if there is one.
    pub fn held_back_due(&self) -> Option<Instant> {
        self.lock()
            .held_back
            .as_ref()
            .map(|(_, since)| *since + HELD_BACK_AT_MOST)
    }

    /// The held-back state, once due and while nothing newer is queued.
    pub fn take_held_back(&self, now: Instant) -> Option<StateItem> {
        let mut inner = self.lock();
        let due = inner
            .held_back
            .as_ref()
            .is_some_and(|(_, since)| now >= *since + HELD_BACK_AT_MOST);
        if due && inner.state.is_none() {
            inner.held_back.take().map(|(item, _)| item)
        } else {
            None
        }
    }

    /// The reason code of the close requested so far, if any.
    pub fn close_reason_code(&self) -> Option<String> {
        self.lock().close.as_ref().map(|c| c.reason_code.clone())
    }

    /// The close request, once nothing that must precede it is queued.
    pub fn due_close(&self) -> Option<CloseRequest> {
        let inner = self.lock();
        match &inner.close {
            Some(close) if close.discard_pending || inner.reliable.is_empty() => {
                Some(close.clone())
            }
            _ => None,
        }
    }

    pub async fn wait(&self) {
        self.wake.notified().await;
    }

    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }

    pub fn abort(&self) -> &CancellationToken {
        &self.abort
    }

    pub fn phase(&self) -> JoinPhase {
        match self.phase.load(Ordering::Acquire) {
            1 => JoinPhase::Pending,
            2 => JoinPhase::Welcomed,
            3 => JoinPhase::Refused,
            _ => JoinPhase::None,
        }
    }

    pub fn set_phase(&self, phase: JoinPhase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    /// Records an ack (in arrival order; the encoders ignore stale ones).
    pub fn acknowledge_tick(&self, tick: Tick) {
        let mut recent = self
            .recent_acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= MAX_RECENT_ACKS {
            recent.pop_front();
        }
        recent.push_back(tick);
    }

    /// Forgets the acknowledged baseline and asks the writer for a full state.
    pub fn request_resync(&self) {
        self.resync.store(true, Ordering::Release);
    }

    pub fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::AcqRel)
    }

    pub fn set_interest_radius(&self, radius: f32) {
        self.interest_radius
            .store(radius.to_bits(), Ordering::Release);
    }

    pub fn interest_radius(&self) -> f32 {
        f32::from_bits(self.interest_radius.load(Ordering::Acquire))
    }

    /// The acks received since the last call, oldest first.
    pub fn take_recent_acks(&self) -> Vec<Tick> {
        let mut recent = self
            .recent_acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Reliable {
        Reliable::Text(Utf8Bytes::from(s.to_string()))
    }

    fn state(tick: Tick) -> StateItem {
        StateItem {
            snapshot: Arc::new(SharedState::for_tests(tick)),
            input_ack: None,
            on_grid: true,
        }
    }

    fn off_grid(tick: Tick) -> StateItem {
        StateItem {
            on_grid: false,
            ..state(tick)
        }
    }

    fn accepted(dropped: u32) -> StatePush {
        StatePush::Accepted { dropped }
    }

    #[test]
    fn a_lagging_client_is_paced_to_grid_states_until_it_keeps_up() {
        let outbox = Outbox::new(4);
        // Keeping up: every state is queued.
        for tick in 1..=3 {
            assert_eq!(outbox.push_state(off_grid(tick)), accepted(0));
            assert_eq!(outbox.take_state().unwrap().snapshot.tick(), tick);
        }
        // The writer falls behind: the waiting state is replaced, and from then on off-grid
        // states are held back (the newest only) while grid states are queued.
        assert_eq!(outbox.push_state(off_grid(4)), accepted(0));
        assert_eq!(outbox.push_state(state(5)), accepted(1));
        assert_eq!(outbox.take_state().unwrap().snapshot.tick(), 5);
        assert_eq!(outbox.push_state(off_grid(6)), accepted(0));
        assert!(outbox.take_state().is_none());
        assert!(
            outbox.take_held_back(Instant::now()).is_none(),
            "not due yet"
        );
        assert_eq!(
            outbox.push_state(off_grid(7)),
            accepted(1),
            "6 is superseded"
        );
        assert_eq!(outbox.push_state(state(8)), accepted(1), "so is 7");
        assert_eq!(outbox.take_state().unwrap().snapshot.tick(), 8);
        assert!(outbox.held_back_due().is_none());
        // Kept up for the whole pacing period since it lagged at tick 5 (every publication found
        // the slot empty): every state again.
        let mut tick = 9;
        loop {
            let held_before = outbox.held_back_due().is_some();
            assert_eq!(
                outbox.push_state(off_grid(tick)),
                accepted(u32::from(held_before))
            );
            if let Some(item) = outbox.take_state() {
                assert_eq!(item.snapshot.tick(), tick);
                break;
            }
            tick += 1;
            assert!(
                tick <= 5 + u64::from(PACE_PUBLICATIONS),
                "still paced at {tick}"
            );
        }
        assert_eq!(tick, 5 + u64::from(PACE_PUBLICATIONS));
    }

    #[test]
    fn a_held_back_state_is_sent_when_nothing_newer_comes() {
        let outbox = Outbox::new(4);
        outbox.push_state(off_grid(1));
        outbox.push_state(state(2)); // lagging: paced from now on
        assert_eq!(outbox.take_state().unwrap().snapshot.tick(), 2);
        outbox.push_state(off_grid(3));
        let due = outbox.held_back_due().expect("held back");
        // A newer one replaces it, due when the first was.
        assert_eq!(outbox.push_state(off_grid(4)), accepted(1));
        assert_eq!(outbox.held_back_due(), Some(due));
        assert!(
            outbox
                .take_held_back(due - Duration::from_millis(1))
                .is_none()
        );
        assert_eq!(outbox.take_held_back(due).unwrap().snapshot.tick(), 4);
        assert!(outbox.held_back_due().is_none() && outbox.take_state().is_none());
    }

    #[test]
    fn reliable_overflow_closes_with_slow_consumer_and_discards() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.push_reliable(text("a")), ReliablePush::Queued);
        assert_eq!(outbox.push_reliable(text("b")), ReliablePush::Queued);
        assert_eq!(outbox.push_reliable(text("c")), ReliablePush::Overflow);
        assert!(outbox.closing().is_cancelled() && outbox.abort().is_cancelled());
        let close = outbox.due_close().unwrap();
        assert_eq!(
            (close.code, close.reason_code.as_str()),
            (close_code::AGAIN, "slow_consumer")
        );
        assert!(outbox.pop_reliable().is_none());
        assert_eq!(outbox.push_reliable(text("d")), ReliablePush::Closed);
        assert_eq!(outbox.push_state(state(1)), StatePush::Closed);
    }

    #[test]
    fn a_polite_close_waits_for_queued_events() {
        let outbox = Outbox::new(8);
        outbox.push_reliable(text("error"));
        outbox.request_close(CloseRequest {
            code: close_code::POLICY,
            reason_code: "invalid_token".into(),
            message: "no".into(),
            discard_pending: false,
        });
        assert!(outbox.due_close().is_none());
        assert!(outbox.pop_reliable().is_some());
        assert_eq!(outbox.due_close().unwrap().reason_code, "invalid_token");
        assert!(!outbox.abort().is_cancelled());
    }

    #[test]
    fn close_reason_fits_a_close_frame() {
        let close = CloseRequest {
            code: close_code::POLICY,
            reason_code: "x".into(),
            message: "é".repeat(200),
            discard_pending: false,
        };
        let reason = close.reason();
        assert!(reason.len() <= 123 && reason.starts_with("x: "));
    }

    #[test]
    fn acks_are_handed_over_in_order_once_and_bounded() {
        let outbox = Outbox::new(1);
        assert!(outbox.take_recent_acks().is_empty());
        outbox.acknowledge_tick(5);
        outbox.acknowledge_tick(3);
        assert_eq!(outbox.take_recent_acks(), vec![5, 3]);
        assert!(outbox.take_recent_acks().is_empty());
        for tick in 0..(MAX_RECENT_ACKS as u64 + 10) {
            outbox.acknowledge_tick(tick);
        }
        let kept = outbox.take_recent_acks();
        assert_eq!(kept.len(), MAX_RECENT_ACKS);
        assert_eq!(
            kept.last(),
            Some(&(MAX_RECENT_ACKS as u64 + 9)),
            "the newest are kept"
        );
    }
}
