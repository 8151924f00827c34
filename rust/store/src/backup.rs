//! Backups: a campaign as one JSON file, to keep or to move to another server.
//!
//! ```json
//! { "format": "nexus-campaign-backup", "version": 1, "exported_at_unix": 1764000000.0,
//!   "campaign": { "campaign_id": "arena", "tick": 1200, "next_object_id": 42,
//!                 "environment": { ... }, "objects": { "1": { "desc": {...}, "state": {...} } },
//!                 "players": { "ann": { "position": [0, 1, 0], ... } }, "world": {} } }
//! ```
//!
//! Floats are written in shortest round-trip form, so export then import gives back the very
//! same bits. An import is validated in full before anything is written, and written in one
//! transaction.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::record::{CampaignRecord, validate_campaign_id};
use crate::store::{CampaignStore, SaveStats};

/// The `format` field of every backup file.
pub const BACKUP_FORMAT: &str = "nexus-campaign-backup";
/// Newest backup layout this build writes and reads.
pub const BACKUP_VERSION: u32 = 1;

/// A campaign as written to a backup file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignBackup {
    /// Always [`BACKUP_FORMAT`]: tells a backup from any other JSON file.
    pub format: String,
    /// Layout version ([`BACKUP_VERSION`]).
    pub version: u32,
    /// Unix time (seconds) of the export.
    pub exported_at_unix: f64,
    /// The campaign.
    pub campaign: CampaignRecord,
}

impl CampaignBackup {
    /// Wraps a record, stamped with the current time.
    pub fn new(campaign: CampaignRecord) -> CampaignBackup {
        CampaignBackup {
            format: BACKUP_FORMAT.to_string(),
            version: BACKUP_VERSION,
            exported_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            campaign,
        }
    }

    /// Parses and validates backup text; `source` names it in errors (a file path).
    pub fn from_json(text: &str, source: &Path) -> Result<CampaignBackup, StoreError> {
        let invalid = |message: String| StoreError::InvalidBackup {
            path: source.to_path_buf(),
            message,
        };
        // Look at the header first, so that a newer or foreign file gets a precise message
        // rather than a complaint about some field deep inside.
        let header: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let Some(object) = header.as_object() else {
            return Err(invalid("the top level is not a JSON object".to_string()));
        };
        match object.get("format").and_then(|f| f.as_str()) {
            Some(BACKUP_FORMAT) => {}
            Some(other) => {
                return Err(invalid(format!(
                    "format is {other:?}, expected {BACKUP_FORMAT:?}"
                )));
            }
            None => {
                return Err(invalid(format!(
                    "no \"format\": {BACKUP_FORMAT:?} field: not a campaign backup"
                )));
            }
        }
        match object.get("version").and_then(|v| v.as_u64()) {
            Some(version) if version > u64::from(BACKUP_VERSION) => {
                return Err(invalid(format!(
                    "backup version {version} is newer than the {BACKUP_VERSION} this tool \
                     supports: use a newer server"
                )));
            }
            Some(0) | None => {
                return Err(invalid("missing or invalid \"version\"".to_string()));
            }
            Some(_) => {}
        }
        let backup: CampaignBackup = serde_json::from_value(header)
            .map_err(|e| invalid(format!("does not describe a campaign: {e}")))?;
        backup
            .campaign
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        Ok(backup)
    }

    /// Pretty JSON text of the backup.
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string_pretty(self).map_err(|e| StoreError::InvalidRecord {
            campaign: self.campaign.campaign_id.clone(),
            problems: vec![format!("cannot be encoded as JSON: {e}")],
        })
    }
}

/// Reads a campaign from the store as a backup.
pub fn export_campaign(
    store: &mut dyn CampaignStore,
    campaign_id: &str,
) -> Result<CampaignBackup, StoreError> {
    validate_campaign_id(campaign_id)?;
    let record = store
        .load_campaign(campaign_id)?
        .ok_or_else(|| StoreError::NotFound {
            campaign: campaign_id.to_string(),
        })?;
    Ok(CampaignBackup::new(record))
}

/// Writes a backup file atomically: to a temporary file beside it, synced, then renamed, so a
/// crash never leaves half a backup under the final name. Refuses to replace an existing file
/// unless `overwrite`.
pub fn write_backup_file(
    backup: &CampaignBackup,
    path: &Path,
    overwrite: bool,
) -> Result<(), StoreError> {
    if !overwrite && path.exists() {
        return Err(StoreError::io(
            "write the backup",
            path,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the file exists (pass --force to replace it)",
            ),
        ));
    }
    let text = backup.to_json()?;
    let file_name = path.file_name().ok_or_else(|| {
        StoreError::io(
            "write the backup",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        StoreError::io("write the backup", path, e)
    })
}

/// Reads and validates a backup file.
pub fn read_backup_file(path: &Path) -> Result<CampaignBackup, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::io("read", path, e))?;
    CampaignBackup::from_json(&text, path)
}

/// What an import did.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportOutcome {
    /// The campaign written.
    pub campaign_id: String,
    /// Whether an existing campaign was replaced.
    pub replaced: bool,
    /// What the write did.
    pub stats: SaveStats,
}

/// Writes a backup into the store, as `rename_to` if given. Refuses to replace an existing
/// campaign unless `force`, and refuses a campaign that a running saver holds (whatever
/// `force` says: the server would overwrite the import with its own state).
pub fn import_campaign(
    store: &mut dyn CampaignStore,
    backup: CampaignBackup,
    rename_to: Option<&str>,
    force: bool,
) -> Result<ImportOutcome, StoreError> {
    let mut record = backup.campaign;
    if let Some(id) = rename_to {
        validate_campaign_id(id)?;
        record.campaign_id = id.to_string();
    }
    record.validate()?;
    let _lock = store.lock_campaign(&record.campaign_id)?;
    let exists = store.campaign_summary(&record.campaign_id)?.is_some();
    if exists && !force {
        return Err(StoreError::AlreadyExists {
            campaign: record.campaign_id,
        });
    }
    let stats = store.replace_campaign(&record)?;
    Ok(ImportOutcome {
        campaign_id: record.campaign_id,
        replaced: exists,
        stats,
    })
}
