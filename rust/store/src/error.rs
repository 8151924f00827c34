//! The one error type of the store, with a stable code per kind of failure.

use std::path::PathBuf;

/// Everything that can go wrong while storing, loading, exporting or importing a campaign.
///
/// Every variant says which campaign or file it is about, so that a log line or a command-line
/// message is enough to act on it. `code()` gives a stable snake_case name for programs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A campaign id that cannot name a campaign (empty, too long, or with characters that are
    /// unsafe in a file name).
    #[error("invalid campaign id {id:?}: {reason}")]
    InvalidCampaignId {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What the store was doing ("create the data directory", "read", ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The database engine reported an error.
    #[error("database error on {}: {message}", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// The engine's message, prefixed with what the store was doing.
        message: String,
    },
    /// The store was written by a newer server, whose schema this server does not know.
    #[error(
        "{} has schema version {found}, newer than the {supported} this server supports: \
         upgrade the server (or restore a backup made by this version)",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// The file is a database, but not one of ours.
    #[error("{} is not a Nexus campaign store ({detail})", path.display())]
    NotACampaignStore {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        detail: String,
    },
    /// A stored row could not be decoded (written by hand or damaged).
    #[error("campaign {campaign:?}: stored {what} cannot be decoded: {message}")]
    CorruptRecord {
        /// The campaign.
        campaign: String,
        /// Which row ("object 12", "player \"ann\"", "environment").
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// A record or change breaks an invariant (non-finite number, dangling id, ...); nothing was
    /// written.
    #[error("campaign {campaign:?}: invalid data: {}", problems.join("; "))]
    InvalidRecord {
        /// The campaign.
        campaign: String,
        /// One line per problem found.
        problems: Vec<String>,
    },
    /// The campaign has no saved state.
    #[error("campaign {campaign:?} does not exist")]
    NotFound {
        /// The campaign.
        campaign: String,
    },
    /// An incremental change needs a saved base, and there is none.
    #[error(
        "campaign {campaign:?} has no saved state yet: its first save must carry the environment \
         (save a full record first)"
    )]
    NoBase {
        /// The campaign.
        campaign: String,
    },
    /// A campaign saved before has no database file any more, typically because the data
    /// directory's disk is not mounted: a new, empty file is not started in its place.
    #[error(
        "campaign {campaign:?} was saved before, but its database file is gone from the data \
         directory (is its disk mounted?): not starting a new file in its place"
    )]
    SavedCampaignMissing {
        /// The campaign.
        campaign: String,
    },
    /// Import refused to replace an existing campaign.
    #[error("campaign {campaign:?} already exists: pass --force to replace it")]
    AlreadyExists {
        /// The campaign.
        campaign: String,
    },
    /// Another process (or saver) holds the campaign.
    #[error(
        "campaign {campaign:?} is in use by another server or saver (lock {} is held): stop it first",
        path.display()
    )]
    Locked {
        /// The campaign.
        campaign: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A database server (PostgreSQL) failed or cannot be reached.
    #[error("database {database}: {message}")]
    Server {
        /// The database (its URL without the password).
        database: String,
        /// The server's or the connection's message, prefixed with what the store was doing.
        message: String,
    },
    /// Another server holds the campaign's lease.
    #[error(
        "campaign {campaign:?} is owned by server {owner:?} (its lease runs for another {expires_in_ms} ms): \
         stop that server, or wait for its lease to expire"
    )]
    LeaseHeld {
        /// The campaign.
        campaign: String,
        /// The server holding it.
        owner: String,
        /// Time left on its lease.
        expires_in_ms: u64,
    },
    /// The database refused a write made under a lease that is no longer this server's (the
    /// fencing epoch moved on): another server owns the campaign now.
    #[error("campaign {campaign:?}: this server no longer owns the campaign: {message}")]
    Fenced {
        /// The campaign.
        campaign: String,
        /// The database's message (epochs and owner).
        message: String,
    },
    /// The database refused a write because the campaign's lease expired (not renewed in
    /// time); nobody else holds it yet, so a renewal may still bring it back. Retried.
    #[error("campaign {campaign:?}: the lease expired before this save: {message}")]
    LeaseExpired {
        /// The campaign.
        campaign: String,
        /// The database's message.
        message: String,
    },
    /// A write to a campaign this store holds no lease on.
    #[error("campaign {campaign:?} is not leased by this server: lock it before writing")]
    NotLeased {
        /// The campaign.
        campaign: String,
    },
    /// The database file of a campaign holds another campaign (renamed by hand).
    #[error(
        "{} holds campaign {found:?}, not {expected:?}: rename campaigns with export and import",
        path.display()
    )]
    CampaignMismatch {
        /// The database file.
        path: PathBuf,
        /// The campaign asked for.
        expected: String,
        /// The campaign the file holds.
        found: String,
    },
    /// A backup file is not valid.
    #[error("invalid backup {}: {message}", path.display())]
    InvalidBackup {
        /// The backup file.
        path: PathBuf,
        /// What is wrong, with line and column for syntax errors.
        message: String,
    },
    /// The saver thread is gone (it panicked or was shut down).
    #[error("the saver of campaign {campaign:?} has stopped")]
    SaverStopped {
        /// The campaign.
        campaign: String,
    },
    /// A save requested through the saver failed (its data stays pending).
    #[error("saving campaign {campaign:?} failed: {message}")]
    SaveFailed {
        /// The campaign.
        campaign: String,
        /// The store's error message.
        message: String,
    },
    /// A blocking flush did not complete in time.
    #[error("the saver of campaign {campaign:?} did not complete a save within {waited_ms} ms")]
    FlushTimeout {
        /// The campaign.
        campaign: String,
        /// How long the caller waited.
        waited_ms: u64,
    },
}

impl StoreError {
    /// A stable snake_case name of the kind of error, for programs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::InvalidCampaignId { .. } => "invalid_campaign_id",
            StoreError::Io { .. } => "io",
            StoreError::Database { .. } => "database",
            StoreError::SchemaTooNew { .. } => "schema_too_new",
            StoreError::NotACampaignStore { .. } => "not_a_campaign_store",
            StoreError::CorruptRecord { .. } => "corrupt_record",
            StoreError::InvalidRecord { .. } => "invalid_record",
            StoreError::NotFound { .. } => "not_found",
            StoreError::NoBase { .. } => "no_base",
            StoreError::SavedCampaignMissing { .. } => "saved_campaign_missing",
            StoreError::AlreadyExists { .. } => "already_exists",
            StoreError::Locked { .. } => "locked",
            StoreError::CampaignMismatch { .. } => "campaign_mismatch",
            StoreError::Server { .. } => "database",
            StoreError::LeaseHeld { .. } => "locked",
            StoreError::Fenced { .. } => "fenced",
            StoreError::LeaseExpired { .. } => "lease_expired",
            StoreError::NotLeased { .. } => "not_leased",
            StoreError::InvalidBackup { .. } => "invalid_backup",
            StoreError::SaverStopped { .. } => "saver_stopped",
            StoreError::SaveFailed { .. } => "save_failed",
            StoreError::FlushTimeout { .. } => "flush_timeout",
        }
    }

    /// Whether the storage itself failed (a file, the disk, the database engine), as opposed to
    /// the data or the caller: after such a failure the saver reopens the campaign.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Io { .. }
                | StoreError::Database { .. }
                | StoreError::Server { .. }
                | StoreError::SavedCampaignMissing { .. }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
