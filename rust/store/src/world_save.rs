//! Carrying the simulation's exact save (`nexus_sim::WorldSave`) inside a campaign record.
//!
//! Two ways for a host to persist a `World`:
//!
//! - **Structured** (incremental): fill [`CampaignRecord::objects`] from the world's objects and
//!   save snapshots or changes; only changed rows are written. The
//!   [`world_bridge`](crate::world_bridge) module does both ways: records and changes from a
//!   world, a world rebuilt under the saved ids from a record.
//! - **Exact** (this module): put `World::save()` under [`WORLD_SAVE_KEY`] of
//!   [`CampaignRecord::world`], and `World::restore` it on load: bit-identical continuation,
//!   but the whole save is rewritten whenever anything changed. Fine for small campaigns, and it
//!   works with the world's API as it is.
//!
//! Both can be combined: rows for tools and backups, the exact save for the restore.

use nexus_sim::WorldSave;

use crate::error::StoreError;
use crate::record::CampaignRecord;

/// Key of [`CampaignRecord::world`] under which the exact world save is kept.
pub const WORLD_SAVE_KEY: &str = "world_save";

/// Stores `save` in the record (replacing a previous one) and sets the record's tick to the
/// save's tick, so that both always describe the same moment.
pub fn attach_world_save(record: &mut CampaignRecord, save: &WorldSave) -> Result<(), StoreError> {
    let value = serde_json::to_value(save).map_err(|e| StoreError::InvalidRecord {
        campaign: record.campaign_id.clone(),
        problems: vec![format!("the world save cannot be encoded: {e}")],
    })?;
    record.tick = save.tick;
    record.world.insert(WORLD_SAVE_KEY.to_string(), value);
    Ok(())
}

/// The exact world save kept in the record, if any.
pub fn world_save_of(record: &CampaignRecord) -> Result<Option<WorldSave>, StoreError> {
    let Some(value) = record.world.get(WORLD_SAVE_KEY) else {
        return Ok(None);
    };
    let save: WorldSave =
        serde_json::from_value(value.clone()).map_err(|e| StoreError::CorruptRecord {
            campaign: record.campaign_id.clone(),
            what: "world save".to_string(),
            message: e.to_string(),
        })?;
    Ok(Some(save))
}
