//! The storage interface every backend implements.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nexus_sim::state::Tick;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::record::{CampaignChange, CampaignRecord};

/// Persistence of campaigns, independent of the database behind it.
///
/// The embedded SQLite backend ([`SqliteStore`](crate::SqliteStore)) is the default; a server
/// database could serve a fleet of servers by implementing the same trait. Contract:
///
/// - each write ([`save_change`], [`replace_campaign`]) is atomic: after a crash the campaign is
///   either as before or as after it, and once it returns `Ok` it survives a crash of the process;
/// - nothing invalid is written (see [`CampaignRecord::validate`]); the error lists why;
/// - campaigns are independent: a write to one never touches, locks or slows another;
/// - reads see a consistent state even while another process writes.
///
/// Methods take `&mut self` so that a backend may cache connections without locks; a store
/// belongs to one thread at a time (the saver thread, or a tool).
///
/// [`save_change`]: CampaignStore::save_change
/// [`replace_campaign`]: CampaignStore::replace_campaign
pub trait CampaignStore: Send {
    /// Ids of the campaigns in the store, sorted.
    fn list_campaigns(&mut self) -> Result<Vec<String>, StoreError>;

    /// A short description of a campaign, `None` if it has never been saved.
    fn campaign_summary(
        &mut self,
        campaign_id: &str,
    ) -> Result<Option<CampaignSummary>, StoreError>;

    /// The saved state of a campaign, `None` if it has never been saved.
    fn load_campaign(&mut self, campaign_id: &str) -> Result<Option<CampaignRecord>, StoreError>;

    /// Writes only what changed, in one transaction. The first save of a campaign must carry the
    /// environment (as `CampaignChange::between(None, ..)` does); later ones may carry just rows.
    fn save_change(
        &mut self,
        campaign_id: &str,
        change: &CampaignChange,
    ) -> Result<SaveStats, StoreError>;

    /// Replaces the whole campaign (creating it if needed) in one transaction: rows not in
    /// `record` are deleted. Used by imports.
    fn replace_campaign(&mut self, record: &CampaignRecord) -> Result<SaveStats, StoreError>;

    /// Takes the campaign for this process: while the returned lock lives, another
    /// `lock_campaign` of the same campaign (from any process) fails with
    /// [`StoreError::Locked`]. The operating system releases it when the process dies, even by
    /// `kill -9`, so a crash never leaves a campaign locked.
    fn lock_campaign(&mut self, campaign_id: &str) -> Result<CampaignLock, StoreError>;

    /// Forgets any open handle on the campaign after a failed write, so that the next call opens
    /// it again (its disk may have been remounted or repaired meanwhile). A campaign reopened
    /// this way is never created anew: if its file is gone, reads say it does not exist and
    /// writes fail. Stores without open handles do nothing.
    fn close_campaign(&mut self, _campaign_id: &str) {}

    /// Whether a [`CampaignLock`] stays valid across [`close_campaign`]: a lease kept by its own
    /// connection does, so a saver that lost its database connection keeps the campaign instead
    /// of releasing it to another server. A file lock on a failed disk does not.
    ///
    /// [`close_campaign`]: CampaignStore::close_campaign
    fn lock_survives_reconnect(&self) -> bool {
        false
    }
}

/// Proof that this process holds a campaign; dropping it releases the campaign.
pub struct CampaignLock {
    campaign_id: String,
    lease: Option<Arc<Lease>>,
    _guard: Box<dyn std::any::Any + Send>,
}

impl CampaignLock {
    /// Wraps a backend's guard (a locked file, a database session, ...).
    pub fn new(campaign_id: &str, guard: Box<dyn std::any::Any + Send>) -> CampaignLock {
        CampaignLock {
            campaign_id: campaign_id.to_string(),
            lease: None,
            _guard: guard,
        }
    }

    /// A lock that expires unless renewed (a database lease): `lease` says how it stands.
    pub fn with_lease(
        campaign_id: &str,
        lease: Arc<Lease>,
        guard: Box<dyn std::any::Any + Send>,
    ) -> CampaignLock {
        CampaignLock {
            campaign_id: campaign_id.to_string(),
            lease: Some(lease),
            _guard: guard,
        }
    }

    /// The lease behind this lock; `None` for locks that last as long as the process (files).
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
    }

    /// The campaign held.
    pub fn campaign_id(&self) -> &str {
        &self.campaign_id
    }
}

impl std::fmt::Debug for CampaignLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignLock")
            .field("campaign_id", &self.campaign_id)
            .finish_non_exhaustive()
    }
}

/// What one save wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveStats {
    /// Number of saves of this campaign so far, this one included.
    pub revision: u64,
    /// Tick of the saved state.
    pub tick: Tick,
    /// Object rows inserted or updated.
    pub objects_written: usize,
    /// Object rows deleted.
    pub objects_removed: usize,
    /// Player rows inserted or updated.
    pub players_written: usize,
    /// Player rows deleted.
    pub players_removed: usize,
    /// Whether the environment was rewritten.
    pub environment_written: bool,
    /// Rows the database engine reports as changed by the transaction (campaign row included).
    pub rows_changed: u64,
    /// Bytes of encoded rows written.
    pub bytes_written: u64,
    /// Wall time of the transaction, encoding and commit included.
    pub duration: Duration,
}

/// A short description of a stored campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    /// The campaign.
    pub campaign_id: String,
    /// Tick of the saved state.
    pub tick: Tick,
    /// Number of saves so far.
    pub revision: u64,
    /// Number of objects.
    pub object_count: u64,
    /// Number of player records.
    pub player_count: u64,
    /// Unix time (seconds) of the last save.
    pub saved_at_unix: f64,
}

/// Ownership of a campaign that expires unless renewed: the lock of a store shared by many
/// server processes. Every write carries the lease's `epoch`, and the database refuses a write
/// under an older epoch, so a server that lost its lease can never overwrite the new owner's
/// saves. A host must also stop simulating before its lease can expire
/// ([`LeaseStatus::may_simulate`]): another server may load the campaign right after.
#[derive(Debug)]
pub struct Lease {
    campaign_id: String,
    owner: String,
    epoch: u64,
    ttl: Duration,
    state: Mutex<LeaseState>,
}

#[derive(Debug)]
struct LeaseState {
    /// When the last successful renewal was sent: the database set its expiry at or after this
    /// moment plus the time to live, so the lease lasts at least until `renewed_at + ttl`.
    renewed_at: Instant,
    last_error: Option<String>,
    lost: Option<String>,
    counts: LeaseCounts,
}

/// Renewals of a [`Lease`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Successful renewals.
    pub renewals: u64,
    /// Failed renewals.
    pub failures: u64,
}

/// How a [`Lease`] stands now.
#[derive(Clone, Debug, PartialEq)]
pub enum LeaseStatus {
    /// Renewed in time.
    Held {
        /// Time left before the lease could expire if no further renewal succeeds.
        expires_in: Duration,
    },
    /// The last renewal failed (the database is unreachable?); still ours for `expires_in`.
    Renewing {
        /// Time left before the lease could expire.
        expires_in: Duration,
        /// Why the renewal failed.
        error: String,
    },
    /// Not renewed in time: another server may own the campaign by now.
    Expired {
        /// Why the renewals failed.
        error: String,
    },
    /// Another server took the campaign, or the lease was released: gone for good.
    Lost {
        /// What happened.
        reason: String,
    },
}

impl LeaseStatus {
    /// `held`, `renewing`, `expired` or `lost`, for reports.
    pub fn name(&self) -> &'static str {
        match self {
            LeaseStatus::Held { .. } => "held",
            LeaseStatus::Renewing { .. } => "renewing",
            LeaseStatus::Expired { .. } => "expired",
            LeaseStatus::Lost { .. } => "lost",
        }
    }

    /// Why the lease is not simply held; `None` when it is.
    pub fn problem(&self) -> Option<&str> {
        match self {
            LeaseStatus::Held { .. } => None,
            LeaseStatus::Renewing { error, .. } | LeaseStatus::Expired { error } => Some(error),
            LeaseStatus::Lost { reason } => Some(reason),
        }
    }

    /// Whether the host may go on simulating: the lease is safely ahead of its expiry (by a
    /// quarter of its time to live, so that a world stops before another server can claim it).
    pub fn may_simulate(&self, ttl: Duration) -> bool {
        match self {
            LeaseStatus::Held { expires_in } | LeaseStatus::Renewing { expires_in, .. } => {
                *expires_in > ttl / 4
            }
            LeaseStatus::Expired { .. } | LeaseStatus::Lost { .. } => false,
        }
    }
}

impl Lease {
    /// A lease just granted (or renewed) at `granted_at`.
    pub fn new(
        campaign_id: &str,
        owner: &str,
        epoch: u64,
        ttl: Duration,
        granted_at: Instant,
    ) -> Lease {
        Lease {
            campaign_id: campaign_id.to_string(),
            owner: owner.to_string(),
            epoch,
            ttl,
            state: Mutex::new(LeaseState {
                renewed_at: granted_at,
                last_error: None,
                lost: None,
                counts: LeaseCounts::default(),
            }),
        }
    }

    /// The campaign leased.
    pub fn campaign_id(&self) -> &str {
        &self.campaign_id
    }

    /// The server holding it.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The fencing epoch: grows by one each time the campaign changes hands.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How long a renewal keeps the lease.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How the lease stands now.
    pub fn status(&self) -> LeaseStatus {
        let state = self.lock();
        if let Some(reason) = &state.lost {
            return LeaseStatus::Lost {
                reason: reason.clone(),
            };
        }
        let expires_in = (state.renewed_at + self.ttl).saturating_duration_since(Instant::now());
        match (&state.last_error, expires_in.is_zero()) {
            (None, false) => LeaseStatus::Held { expires_in },
            (Some(error), false) => LeaseStatus::Renewing {
                expires_in,
                error: error.clone(),
            },
            (error, true) => LeaseStatus::Expired {
                error: error
                    .clone()
                    .unwrap_or_else(|| "not renewed in time".to_string()),
            },
        }
    }

    /// Whether the host may go on simulating (see [`LeaseStatus::may_simulate`]).
    pub fn may_simulate(&self) -> bool {
        self.status().may_simulate(self.ttl)
    }

    /// A renewal sent at `sent_at` succeeded.
    pub fn renewed(&self, sent_at: Instant) {
        let mut state = self.lock();
        if state.lost.is_none() {
            state.renewed_at = state.renewed_at.max(sent_at);
            state.last_error = None;
            state.counts.renewals += 1;
        }
    }

    /// Renewals so far.
    pub fn counts(&self) -> LeaseCounts {
        self.lock().counts
    }

    /// A renewal failed for a reason that may pass (a lost connection).
    pub fn renewal_failed(&self, error: String) {
        let mut state = self.lock();
        state.last_error = Some(error);
        state.counts.failures += 1;
    }

    /// The lease is gone for good.
    pub fn lose(&self, reason: String) {
        let mut state = self.lock();
        if state.lost.is_none() {
            state.lost = Some(reason);
        }
    }
}
