//! Periodic, incremental, off-thread saving of one campaign.
//!
//! # How it works
//!
//! 1. [`Saver::start`] locks the campaign (one saver per campaign, across processes), loads it
//!    and hands the loaded record back to the host, then spawns the saver thread.
//! 2. The tick thread feeds it through a bounded crossbeam channel, never blocking: either full
//!    snapshots ([`Saver::submit_snapshot`], typically when [`Saver::is_due`]) or changes it
//!    tracked itself ([`Saver::submit_change`], e.g. every tick).
//! 3. **Coalescing when it falls behind.** If the channel is full, the submission is folded into
//!    a single overflow slot on the caller's side: a newer snapshot replaces an older one, a
//!    change is merged into what is there ([`CampaignChange::merge`]). The saver thread folds
//!    whatever queued up the same way before each write. So a slow disk costs memory for at most
//!    `queue_capacity + 1` updates and delays saves, but never drops a change and never blocks the
//!    tick.
//! 4. The host submits once per interval (default 1 s, [`Saver::is_due`]) and the thread writes
//!    what arrives at once, at most four times per interval (bursts are folded): a snapshot is
//!    diffed against the last saved state it keeps in memory ([`CampaignChange::between`]), so
//!    only changed rows reach the database, in one transaction. A failed write keeps its data
//!    pending and is retried at the next interval.
//! 5. [`Saver::shutdown`] (or dropping the saver) delivers what is left and makes a final save
//!    before joining the thread.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError, bounded,
};
use nexus_sim::state::Tick;

use crate::error::StoreError;
use crate::record::{CampaignChange, CampaignRecord, validate_campaign_id};
use crate::store::{CampaignLock, CampaignStore, Lease, SaveStats};

/// While writes keep failing, a warning every this many attempts (about a minute at 1 s).
const FAILURE_LOG_EVERY: u64 = 60;

/// Settings of a [`Saver`].
#[derive(Clone, Debug, PartialEq)]
pub struct SaverConfig {
    /// Shortest time between two writes, and what [`Saver::is_due`] measures (default 1 s).
    /// At most this much is lost when the process is killed.
    pub interval: Duration,
    /// Updates queued between the tick thread and the saver thread before coalescing on the
    /// caller's side (default 4).
    pub queue_capacity: usize,
    /// Events kept for [`Saver::poll_events`] before older ones are dropped (default 64).
    pub event_capacity: usize,
    /// Extra attempts of the final save when it fails (default 3, 100 ms apart).
    pub final_save_retries: u32,
}

impl Default for SaverConfig {
    fn default() -> Self {
        SaverConfig {
            interval: Duration::from_secs(1),
            queue_capacity: 4,
            event_capacity: 64,
            final_save_retries: 3,
        }
    }
}

/// What happened to a submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Queued for the saver thread.
    Queued,
    /// The queue was full: folded into the pending overflow, to be delivered with the next
    /// submission or at shutdown.
    Coalesced,
}

/// Something the saver did, for the host to report (Godot signals, logs).
#[derive(Clone, Debug, PartialEq)]
pub enum SaverEvent {
    /// A save completed.
    Saved(SaveStats),
    /// A save failed; its data stays pending and is retried.
    Failed {
        /// Stable code of the error ([`StoreError::code`]).
        code: &'static str,
        /// The error's message.
        message: String,
    },
    /// Rows left out of a save because they could not be stored (e.g. a non-finite position);
    /// the rest of the save went through.
    Rejected {
        /// One line per problem.
        problems: Vec<String>,
    },
}

/// Counters and last results of a saver.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SaverStatus {
    /// Submissions made by the host.
    pub submissions: u64,
    /// Submissions that found the queue full and were coalesced on the caller's side.
    pub coalesced: u64,
    /// Completed saves.
    pub saves: u64,
    /// Failed save attempts.
    pub failures: u64,
    /// Tick of the last completed save.
    pub last_saved_tick: Option<Tick>,
    /// Statistics of the last completed save.
    pub last_save: Option<SaveStats>,
    /// Message of the last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// Events dropped because nobody polled them.
    pub events_dropped: u64,
}

/// A submission, as it travels and as it is folded.
enum Update {
    Snapshot(Box<CampaignRecord>),
    Change(CampaignChange),
}

impl Update {
    /// `self` followed by `later`, as one update.
    fn then(self, later: Update) -> Update {
        match (self, later) {
            (_, Update::Snapshot(snapshot)) => Update::Snapshot(snapshot),
            (Update::Snapshot(mut snapshot), Update::Change(change)) => {
                snapshot.apply(&change);
                Update::Snapshot(snapshot)
            }
            (Update::Change(mut earlier), Update::Change(change)) => {
                earlier.merge(change);
                Update::Change(earlier)
            }
        }
    }
}

fn fold(pending: &mut Option<Update>, later: Update) {
    *pending = Some(match pending.take() {
        Some(earlier) => earlier.then(later),
        None => later,
    });
}

enum Message {
    Update(Update),
    SetInterval(Duration),
    /// Save now; completes flush number `n`.
    Flush(u64),
    Shutdown,
}

/// State shared by the handle and the thread.
struct Shared {
    state: Mutex<SharedState>,
    flushed: Condvar,
}

#[derive(Default)]
struct SharedState {
    status: SaverStatus,
    /// Highest flush request completed, with its outcome.
    flushed: u64,
    flush_error: Option<String>,
    /// Outcome of the final save, once the thread ends.
    final_error: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SharedState> {
        // A panic elsewhere while holding the lock leaves plain counters behind: still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Saves one campaign on its own thread; owned by the tick thread.
///
/// ```no_run
/// # use nexus_store::{Saver, SaverConfig, SqliteStore, CampaignRecord, StoreError};
/// # fn host(world_to_record: impl Fn() -> CampaignRecord) -> Result<(), StoreError> {
/// let store = SqliteStore::open("data")?;
/// let (mut saver, loaded) = Saver::start(Box::new(store), "arena", SaverConfig::default())?;
/// // ... restore the world from `loaded`, or build a new one ...
/// loop {
///     // each tick:
///     if saver.is_due() {
///         saver.submit_snapshot(world_to_record())?;
///     }
///     for event in saver.poll_events() { /* report */ }
/// #   break;
/// }
/// saver.shutdown()?; // final save
/// # Ok(())
/// # }
/// ```
pub struct Saver {
    campaign_id: String,
    interval: Duration,
    sender: Option<Sender<Message>>,
    /// Folded submissions waiting for room in the queue.
    overflow: Option<Update>,
    events: Receiver<SaverEvent>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    last_submit: Option<Instant>,
    submissions: u64,
    coalesced: u64,
    flush_requests: u64,
    lease: Option<Arc<Lease>>,
}

impl Saver {
    /// Locks and loads the campaign, then starts its saver thread. Returns the saver and the
    /// loaded state (`None` for a campaign never saved: the first submission creates it).
    ///
    /// Fails without starting anything if the campaign is locked by another saver or cannot be
    /// loaded (e.g. [`StoreError::SchemaTooNew`]): a campaign that cannot be read must not be
    /// overwritten.
    pub fn start(
        mut store: Box<dyn CampaignStore>,
        campaign_id: &str,
        config: SaverConfig,
    ) -> Result<(Saver, Option<CampaignRecord>), StoreError> {
        validate_campaign_id(campaign_id)?;
        let lock = store.lock_campaign(campaign_id)?;
        let lease = lock.lease().cloned();
        let loaded = store.load_campaign(campaign_id)?;
        let (sender, receiver) = bounded(config.queue_capacity.max(1));
        let (event_sender, events) = bounded(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            state: Mutex::new(SharedState {
                status: SaverStatus {
                    last_saved_tick: loaded.as_ref().map(|r| r.tick),
                    ..SaverStatus::default()
                },
                ..SharedState::default()
            }),
            flushed: Condvar::new(),
        });
        let worker = Worker {
            store,
            campaign_id: campaign_id.to_string(),
            interval: config.interval,
            final_save_retries: config.final_save_retries,
            saved: loaded.clone(),
            pending: None,
            last_write: None,
            failing_streak: 0,
            shared: Arc::clone(&shared),
            events: event_sender,
            lock: Some(lock),
            reconnect: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("nexus-saver-{campaign_id}"))
            .spawn(move || worker.run(receiver))
            .map_err(|e| StoreError::io("start the saver thread for", campaign_id, e))?;
        Ok((
            Saver {
                campaign_id: campaign_id.to_string(),
                interval: config.interval,
                sender: Some(sender),
                overflow: None,
                events,
                shared,
                thread: Some(thread),
                last_submit: None,
                submissions: 0,
                coalesced: 0,
                flush_requests: 0,
                lease,
            },
            loaded,
        ))
    }

    /// The campaign saved.
    pub fn campaign_id(&self) -> &str {
        &self.campaign_id
    }

    /// The campaign's lease, for stores shared by many servers (PostgreSQL): the host must stop
    /// simulating when [`Lease::may_simulate`] turns false. `None` for a local store.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// The save interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Changes the save interval (takes effect after the next write).
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
        self.enqueue(Message::SetInterval(interval));
    }

    /// True when a snapshot should be submitted: nothing was submitted yet, or the interval
    /// has passed since the last submission. Lets the tick thread build snapshots only when
    /// they will be used.
    pub fn is_due(&self) -> bool {
        self.last_submit
            .is_none_or(|last| last.elapsed() >= self.interval)
    }

    /// Submits the whole current state; the saver writes only what differs from the last save.
    /// Never blocks.
    pub fn submit_snapshot(&mut self, record: CampaignRecord) -> Result<Submitted, StoreError> {
        if record.campaign_id != self.campaign_id {
            return Err(StoreError::InvalidRecord {
                campaign: self.campaign_id.clone(),
                problems: vec![format!(
                    "a snapshot of campaign {:?} was submitted to this campaign's saver",
                    record.campaign_id
                )],
            });
        }
        self.submit(Update::Snapshot(Box::new(record)))
    }

    /// Submits changes tracked by the host (they accumulate until the next write). Never blocks.
    pub fn submit_change(&mut self, change: CampaignChange) -> Result<Submitted, StoreError> {
        self.submit(Update::Change(change))
    }

    fn submit(&mut self, update: Update) -> Result<Submitted, StoreError> {
        self.last_submit = Some(Instant::now());
        self.submissions += 1;
        self.deliver_overflow()?;
        if self.overflow.is_some() {
            // Still full: keep order by folding behind what is already waiting.
            fold(&mut self.overflow, update);
            self.coalesced += 1;
            return Ok(Submitted::Coalesced);
        }
        match self.try_deliver(update)? {
            None => Ok(Submitted::Queued),
            Some(update) => {
                self.overflow = Some(update);
                self.coalesced += 1;
                Ok(Submitted::Coalesced)
            }
        }
    }

    /// Tries to hand the overflow to the thread, without blocking.
    fn deliver_overflow(&mut self) -> Result<(), StoreError> {
        if let Some(update) = self.overflow.take() {
            self.overflow = self.try_deliver(update)?;
        }
        Ok(())
    }

    /// Sends without blocking; gives the update back when the queue is full.
    fn try_deliver(&self, update: Update) -> Result<Option<Update>, StoreError> {
        match self.sender()?.try_send(Message::Update(update)) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(Message::Update(update))) => Ok(Some(update)),
            Err(_) => Err(self.stopped()),
        }
    }

    /// Asks for a save as soon as possible, without waiting for it. Returns false when the
    /// queue is full (the saver is busy and will save what is queued anyway).
    pub fn request_save(&mut self) -> Result<bool, StoreError> {
        self.deliver_overflow()?;
        if self.overflow.is_some() {
            return Ok(false);
        }
        self.flush_requests += 1;
        match self.sender()?.try_send(Message::Flush(self.flush_requests)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    /// Saves everything submitted so far and waits for it, at most `timeout`. Blocks: meant for
    /// an explicit "save now" outside the tick loop, tests and tools.
    pub fn flush(&mut self, timeout: Duration) -> Result<SaverStatus, StoreError> {
        let deadline = Instant::now() + timeout;
        let timed_out = StoreError::FlushTimeout {
            campaign: self.campaign_id.clone(),
            waited_ms: timeout.as_millis() as u64,
        };
        let sender = self.sender()?.clone();
        if let Some(update) = self.overflow.take() {
            match sender.send_deadline(Message::Update(update), deadline) {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(Message::Update(update))) => {
                    self.overflow = Some(update);
                    return Err(timed_out);
                }
                Err(_) => return Err(self.stopped()),
            }
        }
        self.flush_requests += 1;
        let request = self.flush_requests;
        match sender.send_deadline(Message::Flush(request), deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => return Err(timed_out),
            Err(SendTimeoutError::Disconnected(_)) => return Err(self.stopped()),
        }
        let mut state = self.shared.lock();
        while state.flushed < request {
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out);
            }
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return Err(self.stopped());
            }
            // Wake up now and then to notice a thread that died without completing.
            let wait = (deadline - now).min(Duration::from_millis(100));
            state = self
                .shared
                .flushed
                .wait_timeout(state, wait)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        if let Some(message) = state.flush_error.clone() {
            return Err(StoreError::SaveFailed {
                campaign: self.campaign_id.clone(),
                message,
            });
        }
        let mut status = state.status.clone();
        drop(state);
        self.add_local_counters(&mut status);
        Ok(status)
    }

    /// Events since the last call (saves, failures, rejected rows). Never blocks.
    pub fn poll_events(&self) -> Vec<SaverEvent> {
        self.events.try_iter().collect()
    }

    /// Counters and last results. Never blocks for long (a short lock the thread holds only
    /// to update counters).
    pub fn status(&self) -> SaverStatus {
        let mut status = self.shared.lock().status.clone();
        self.add_local_counters(&mut status);
        status
    }

    fn add_local_counters(&self, status: &mut SaverStatus) {
        status.submissions = self.submissions;
        status.coalesced = self.coalesced;
    }

    /// Delivers what is pending, makes the final save and stops the thread. Blocks until done.
    /// Returns the final status, or the error of the final save (its data is then lost: the
    /// error says why).
    pub fn shutdown(mut self) -> Result<SaverStatus, StoreError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<SaverStatus, StoreError> {
        if let Some(sender) = self.sender.take() {
            // Blocking sends are fine here: shutdown is allowed to wait for the disk.
            if let Some(update) = self.overflow.take() {
                let _ = sender.send(Message::Update(update));
            }
            let _ = sender.send(Message::Shutdown);
        }
        let panicked = match self.thread.take() {
            Some(thread) => thread.join().is_err(),
            None => false,
        };
        let state = self.shared.lock();
        let mut status = state.status.clone();
        let final_error = state.final_error.clone();
        drop(state);
        self.add_local_counters(&mut status);
        if panicked {
            return Err(self.stopped());
        }
        match final_error {
            Some(message) => Err(StoreError::SaveFailed {
                campaign: self.campaign_id.clone(),
                message: format!("final save: {message}"),
            }),
            None => Ok(status),
        }
    }

    fn enqueue(&mut self, message: Message) {
        if let Some(sender) = &self.sender {
            // Settings are best effort: with a full queue the old interval simply stays a
            // little longer (the next `set_interval` or restart applies it).
            let _ = sender.try_send(message);
        }
    }

    fn sender(&self) -> Result<&Sender<Message>, StoreError> {
        self.sender.as_ref().ok_or_else(|| self.stopped())
    }

    fn stopped(&self) -> StoreError {
        StoreError::SaverStopped {
            campaign: self.campaign_id.clone(),
        }
    }
}

impl Drop for Saver {
    /// Dropping the saver is a clean shutdown: final save, thread joined.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// The saver thread.
struct Worker {
    store: Box<dyn CampaignStore>,
    campaign_id: String,
    interval: Duration,
    final_save_retries: u32,
    /// What the store holds, as far as this saver knows (it holds the lock, so it knows).
    saved: Option<CampaignRecord>,
    pending: Option<Update>,
    last_write: Option<Instant>,
    /// Failed writes in a row: an outage is logged when it starts and when it ends (and now and
    /// then in between), not at every retry.
    failing_streak: u64,
    shared: Arc<Shared>,
    events: Sender<SaverEvent>,
    /// `None` only between a failed write and the reconnect that takes the lock again.
    lock: Option<CampaignLock>,
    /// A write failed: the next one first reopens the campaign and takes its lock again, for a
    /// disk that was remounted or repaired meanwhile (the old file handles point at the
    /// filesystem that failed, possibly no longer mounted).
    reconnect: bool,
}

/// Control requests found while draining the queue.
#[derive(Default)]
struct Requests {
    flushes: Vec<u64>,
    shutdown: bool,
}

impl Worker {
    fn run(mut self, receiver: Receiver<Message>) {
        loop {
            let mut requests = Requests::default();
            let first = if self.pending.is_some() {
                match self.next_write_time() {
                    Some(due) => match receiver.recv_deadline(due) {
                        Ok(message) => Some(message),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => {
                            requests.shutdown = true;
                            None
                        }
                    },
                    None => None,
                }
            } else {
                match receiver.recv() {
                    Ok(message) => Some(message),
                    Err(_) => {
                        requests.shutdown = true;
                        None
                    }
                }
            };
            if let Some(message) = first {
                self.handle(message, &mut requests);
            }
            // Fold everything already queued into one write: this is how a saver that fell
            // behind catches up.
            while !requests.shutdown {
                match receiver.try_recv() {
                    Ok(message) => self.handle(message, &mut requests),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => requests.shutdown = true,
                }
            }
            if requests.shutdown {
                let error = self.final_save();
                self.complete_flushes(&requests.flushes, error);
                return;
            }
            let due = self.next_write_time().is_none();
            if !requests.flushes.is_empty() || (self.pending.is_some() && due) {
                let error = self.save().err();
                self.complete_flushes(&requests.flushes, error);
            }
        }
    }

    /// When the next write may happen; `None` means now.
    ///
    /// Hosts already submit once per interval (`is_due`); waiting a whole interval here too
    /// would put the two clocks in series, and a save could lag its submission by up to an
    /// interval (after a slow write or an outage shifted the phase), so up to two intervals of
    /// play could be lost in a crash. A quarter of it still folds bursts into one write;
    /// retries after a failure wait the whole interval.
    fn next_write_time(&self) -> Option<Instant> {
        let gap = if self.failing_streak > 0 {
            self.interval
        } else {
            self.interval / 4
        };
        let due = self.last_write? + gap;
        (due > Instant::now()).then_some(due)
    }

    fn handle(&mut self, message: Message, requests: &mut Requests) {
        match message {
            Message::Update(update) => fold(&mut self.pending, update),
            Message::SetInterval(interval) => self.interval = interval,
            Message::Flush(request) => requests.flushes.push(request),
            Message::Shutdown => requests.shutdown = true,
        }
    }

    fn complete_flushes(&self, flushes: &[u64], error: Option<String>) {
        let Some(last) = flushes.iter().max() else {
            return;
        };
        let mut state = self.shared.lock();
        state.flushed = state.flushed.max(*last);
        state.flush_error = error;
        drop(state);
        self.shared.flushed.notify_all();
    }

    fn final_save(&mut self) -> Option<String> {
        let mut result = self.save();
        for _ in 0..self.final_save_retries {
            if result.is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            result = self.save();
        }
        let error = result.err();
        if let Some(error) = &error {
            tracing::error!(campaign = %self.campaign_id, "final save failed: {error}");
        }
        self.shared.lock().final_error = error.clone();
        error
    }

    /// After a failed write: reopens the campaign's file and takes its lock again before anything
    /// is written. A campaign saved before must still be there: if its file is gone (the data
    /// directory's disk not mounted, or another disk in its place), this fails instead of
    /// starting a new, empty file that would shadow the real one.
    fn reconnect_if_needed(&mut self) -> Result<(), StoreError> {
        if !self.reconnect {
            return Ok(());
        }
        let exists = self.store.campaign_summary(&self.campaign_id)?.is_some();
        if self.saved.is_some() && !exists {
            return Err(StoreError::SavedCampaignMissing {
                campaign: self.campaign_id.clone(),
            });
        }
        // Take the campaign again before writing (failing with `Locked` if another process took
        // it meanwhile).
        if self.lock.is_none() {
            self.lock = Some(self.store.lock_campaign(&self.campaign_id)?);
        }
        self.reconnect = false;
        Ok(())
    }

    /// Writes the pending update. On failure the data stays pending.
    fn save(&mut self) -> Result<(), String> {
        let Some(update) = self.pending.take() else {
            return Ok(());
        };
        let (mut change, snapshot) = match update {
            Update::Snapshot(snapshot) => (
                CampaignChange::between(self.saved.as_ref(), &snapshot),
                Some(snapshot),
            ),
            Update::Change(change) => (change, None),
        };
        let rejected = change.take_invalid();
        if !rejected.is_empty() {
            tracing::warn!(
                campaign = %self.campaign_id,
                "rows left out of a save: {}",
                rejected.join("; ")
            );
            self.emit(SaverEvent::Rejected { problems: rejected });
        }
        let unchanged = self.saved.as_ref().is_some_and(|saved| {
            change.is_empty()
                && change.tick == saved.tick
                && change.next_object_id == saved.next_object_id
        });
        if unchanged {
            return Ok(());
        }
        self.last_write = Some(Instant::now());
        let written = self
            .reconnect_if_needed()
            .and_then(|()| self.store.save_change(&self.campaign_id, &change));
        match written {
            Ok(stats) => {
                match &mut self.saved {
                    Some(saved) => saved.apply(&change),
                    None => {
                        self.saved = CampaignRecord::from_full_change(&self.campaign_id, &change)
                    }
                }
                let mut state = self.shared.lock();
                state.status.saves += 1;
                state.status.last_saved_tick = Some(stats.tick);
                state.status.last_save = Some(stats.clone());
                state.status.last_error = None;
                drop(state);
                if self.failing_streak > 0 {
                    tracing::info!(
                        campaign = %self.campaign_id,
                        tick = stats.tick,
                        failed_attempts = self.failing_streak,
                        "saving resumed; the pending changes are saved"
                    );
                    self.failing_streak = 0;
                }
                tracing::debug!(
                    campaign = %self.campaign_id,
                    tick = stats.tick,
                    objects_written = stats.objects_written,
                    objects_removed = stats.objects_removed,
                    players_written = stats.players_written,
                    players_removed = stats.players_removed,
                    "saved"
                );
                self.emit(SaverEvent::Saved(stats));
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                if error.is_storage_failure() {
                    // Let go of every handle on the failed disk (database and lock), so that it
                    // can be unmounted and repaired while the world runs on. A lease is kept:
                    // releasing it would hand the campaign to another server while this one
                    // still holds the newer world.
                    self.store.close_campaign(&self.campaign_id);
                    if !self.store.lock_survives_reconnect() {
                        self.lock = None;
                    }
                    self.reconnect = true;
                }
                // Keep the data: a snapshot is diffed again next time, a change is retried.
                self.pending = Some(match snapshot {
                    Some(snapshot) => Update::Snapshot(snapshot),
                    None => Update::Change(change),
                });
                let mut state = self.shared.lock();
                state.status.failures += 1;
                state.status.last_error = Some(message.clone());
                drop(state);
                // The data stays pending and the next save retries it: a warning, not an error.
                if self.failing_streak.is_multiple_of(FAILURE_LOG_EVERY) {
                    tracing::warn!(
                        campaign = %self.campaign_id,
                        code = error.code(),
                        failed_attempts = self.failing_streak + 1,
                        "save failed, retrying: {message}"
                    );
                } else {
                    tracing::debug!(campaign = %self.campaign_id, code = error.code(), "save failed again: {message}");
                }
                self.failing_streak += 1;
                self.emit(SaverEvent::Failed {
                    code: error.code(),
                    message: message.clone(),
                });
                Err(message)
            }
        }
    }

    fn emit(&self, event: SaverEvent) {
        if self.events.try_send(event).is_err() {
            self.shared.lock().status.events_dropped += 1;
        }
    }
}
