//! The storage interface every backend implements.

use std::time::Duration;

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
}

/// Proof that this process holds a campaign; dropping it releases the campaign.
pub struct CampaignLock {
    campaign_id: String,
    _guard: Box<dyn std::any::Any + Send>,
}

impl CampaignLock {
    /// Wraps a backend's guard (a locked file, a database session, ...).
    pub fn new(campaign_id: &str, guard: Box<dyn std::any::Any + Send>) -> CampaignLock {
        CampaignLock {
            campaign_id: campaign_id.to_string(),
            _guard: guard,
        }
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
