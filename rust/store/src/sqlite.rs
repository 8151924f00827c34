//! The default backend: one SQLite file per campaign under a data directory.
//!
//! # Layout
//!
//! ```text
//! DATA_DIR/campaigns/<campaign id>.sqlite3        the campaign (plus -wal and -shm while open)
//! DATA_DIR/campaigns/<campaign id>.lock           held (flock) by the process saving it
//! ```
//!
//! # Why a file per campaign
//!
//! Campaigns must be independent. SQLite allows one writer per database file, so with one shared
//! file every campaign's saver would queue behind the others' transactions, a long import would
//! stall every running campaign, and damage to the file would take every campaign down with it.
//! A file per campaign gives each saver its own write lock and its own WAL, makes moving or
//! deleting one campaign a file operation, and lets the operating system's file lock say which
//! process owns which campaign. The cost (a directory scan to list campaigns) is small.
//!
//! # Schema
//!
//! Version in `PRAGMA user_version`, our mark in `PRAGMA application_id`. [`MIGRATIONS`] step
//! from one version to the next, each in its own transaction; creating a new file is the step
//! from 0 to 1, so the hook runs on every new store. A file with a newer version is refused
//! untouched ([`StoreError::SchemaTooNew`]). Rows hold JSON of the shared `nexus_sim` types, so
//! fields the simulation adds later with serde defaults need no migration.

use std::collections::{HashMap, HashSet};
use std::fs::{OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::StoreError;
use crate::record::{CampaignChange, CampaignRecord, validate_campaign_id};
use crate::rows::{
    decode_environment, decode_object, decode_player, decode_world, encode_object, sql_int,
    to_json, unix_now,
};
use crate::store::{CampaignLock, CampaignStore, CampaignSummary, SaveStats};

/// Newest schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// `PRAGMA application_id` of our files ("NXSP"), so that another program's SQLite file is
/// recognised and left alone.
pub const APPLICATION_ID: i32 = 0x4E58_5350;

/// File name extension of a campaign database.
pub const CAMPAIGN_FILE_EXTENSION: &str = "sqlite3";

/// How long a write waits for another connection's transaction (an export, a tool) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One schema step: `MIGRATIONS[v]` turns version `v` into `v + 1` inside the transaction it is
/// given (the caller then sets `user_version`).
pub type Migration = fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>;

/// The schema history. To change the schema, append a step and bump [`SCHEMA_VERSION`].
pub const MIGRATIONS: &[Migration] = &[create_schema_v1];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

fn create_schema_v1(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE campaign (
             singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
             campaign_id    TEXT    NOT NULL,
             tick           INTEGER NOT NULL,
             next_object_id INTEGER NOT NULL,
             environment    TEXT    NOT NULL, -- JSON EnvironmentState
             world          TEXT    NOT NULL, -- JSON object, opaque
             revision       INTEGER NOT NULL, -- number of saves
             created_unix   REAL    NOT NULL,
             saved_unix     REAL    NOT NULL
         );
         CREATE TABLE objects (
             id             INTEGER PRIMARY KEY,
             kind           TEXT    NOT NULL,
             description    TEXT    NOT NULL, -- JSON ObjectDesc
             state          TEXT    NOT NULL, -- JSON ObjectState
             saved_revision INTEGER NOT NULL  -- revision of the save that last wrote the row
         );
         CREATE TABLE players (
             name           TEXT    PRIMARY KEY,
             record         TEXT    NOT NULL, -- JSON PlayerRecord
             saved_revision INTEGER NOT NULL
         );",
    )
}

/// Campaigns stored as SQLite files under a data directory.
///
/// Cheap to create: connections are opened on first use of each campaign and kept.
pub struct SqliteStore {
    data_dir: PathBuf,
    campaigns_dir: PathBuf,
    connections: HashMap<String, Connection>,
    /// Campaigns whose connection was closed after a failure: reopening them never creates a
    /// file (see [`CampaignStore::close_campaign`]).
    reopening: HashSet<String>,
}

/// Opens (creating if needed) the default store under `data_dir`.
pub fn open(data_dir: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(data_dir)
}

impl SqliteStore {
    /// Opens the store under `data_dir`, creating the directories if needed.
    pub fn open(data_dir: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let campaigns_dir = data_dir.join("campaigns");
        std::fs::create_dir_all(&campaigns_dir)
            .map_err(|e| StoreError::io("create the data directory", &campaigns_dir, e))?;
        Ok(SqliteStore {
            data_dir,
            campaigns_dir,
            connections: HashMap::new(),
            reopening: HashSet::new(),
        })
    }

    /// Opens the store under an existing `data_dir`, creating nothing: for tools that read, so
    /// that a mistyped path is an error rather than a new empty store.
    pub fn open_existing(data_dir: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        let metadata = std::fs::metadata(&data_dir)
            .map_err(|e| StoreError::io("open the data directory", &data_dir, e))?;
        if !metadata.is_dir() {
            return Err(StoreError::io(
                "open the data directory",
                &data_dir,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        Ok(SqliteStore {
            campaigns_dir: data_dir.join("campaigns"),
            data_dir,
            connections: HashMap::new(),
            reopening: HashSet::new(),
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The database file of a campaign (which may not exist yet).
    pub fn campaign_path(&self, campaign_id: &str) -> PathBuf {
        self.campaigns_dir
            .join(format!("{campaign_id}.{CAMPAIGN_FILE_EXTENSION}"))
    }

    /// Closes every open connection (SQLite checkpoints the WAL into the database on close).
    pub fn close(&mut self) {
        self.connections.clear();
    }

    fn lock_path(&self, campaign_id: &str) -> PathBuf {
        self.campaigns_dir.join(format!("{campaign_id}.lock"))
    }

    /// The open connection of a campaign; `None` when its file does not exist and `create` is
    /// false (reads never create files).
    fn connection(
        &mut self,
        campaign_id: &str,
        create: bool,
    ) -> Result<Option<&mut Connection>, StoreError> {
        validate_campaign_id(campaign_id)?;
        if !self.connections.contains_key(campaign_id) {
            let path = self.campaign_path(campaign_id);
            if self.reopening.contains(campaign_id) && !path.exists() {
                if create {
                    return Err(StoreError::SavedCampaignMissing {
                        campaign: campaign_id.to_string(),
                    });
                }
                return Ok(None);
            }
            if !create && !path.exists() {
                return Ok(None);
            }
            if create {
                std::fs::create_dir_all(&self.campaigns_dir).map_err(|e| {
                    StoreError::io("create the data directory", &self.campaigns_dir, e)
                })?;
            }
            let connection = open_connection(&path)?;
            self.reopening.remove(campaign_id);
            self.connections.insert(campaign_id.to_string(), connection);
        }
        Ok(self.connections.get_mut(campaign_id))
    }

    /// SQLite reports a write to a read-only or failed filesystem as a bare "disk I/O error" or
    /// "readonly database": say whether the data directory itself refuses writes.
    fn explain_write_failure(&self, error: StoreError) -> StoreError {
        let StoreError::Database { path, message } = error else {
            return error;
        };
        let probe = self
            .campaigns_dir
            .join(format!(".write-check-{}", std::process::id()));
        let message = match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                message
            }
            Err(e) => format!("{message} (the data directory refuses writes: {e})"),
        };
        StoreError::Database { path, message }
    }

    fn write(
        &mut self,
        campaign_id: &str,
        change: &CampaignChange,
        replace_all: bool,
    ) -> Result<SaveStats, StoreError> {
        let started = Instant::now();
        let path = self.campaign_path(campaign_id);
        let connection = self.connection(campaign_id, true)?.ok_or_else(|| {
            StoreError::io(
                "create",
                &path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "the database was not created"),
            )
        })?;
        let mut stats = write_change(connection, &path, campaign_id, change, replace_all)
            .map_err(|error| self.explain_write_failure(error))?;
        stats.duration = started.elapsed();
        Ok(stats)
    }
}

impl CampaignStore for SqliteStore {
    fn list_campaigns(&mut self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.campaigns_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("list", &self.campaigns_dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.campaigns_dir, e))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(CAMPAIGN_FILE_EXTENSION) {
                continue;
            }
            if let Some(id) = path.file_stem().and_then(|s| s.to_str())
                && validate_campaign_id(id).is_ok()
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn campaign_summary(
        &mut self,
        campaign_id: &str,
    ) -> Result<Option<CampaignSummary>, StoreError> {
        let path = self.campaign_path(campaign_id);
        let Some(connection) = self.connection(campaign_id, false)? else {
            return Ok(None);
        };
        let row = connection
            .query_row(
                "SELECT campaign_id, tick, revision, saved_unix,
                        (SELECT count(*) FROM objects), (SELECT count(*) FROM players)
                 FROM campaign WHERE singleton = 1",
                [],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, f64>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, i64>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| database_error(&path, "read the campaign summary", e))?;
        let Some((found, tick, revision, saved_at_unix, objects, players)) = row else {
            return Ok(None);
        };
        check_campaign_id(&path, campaign_id, &found)?;
        Ok(Some(CampaignSummary {
            campaign_id: found,
            tick: tick as u64,
            revision: revision as u64,
            object_count: objects as u64,
            player_count: players as u64,
            saved_at_unix,
        }))
    }

    fn load_campaign(&mut self, campaign_id: &str) -> Result<Option<CampaignRecord>, StoreError> {
        let path = self.campaign_path(campaign_id);
        let Some(connection) = self.connection(campaign_id, false)? else {
            return Ok(None);
        };
        read_campaign(connection, &path, campaign_id)
    }

    fn save_change(
        &mut self,
        campaign_id: &str,
        change: &CampaignChange,
    ) -> Result<SaveStats, StoreError> {
        change.check_writable(campaign_id)?;
        self.write(campaign_id, change, false)
    }

    fn replace_campaign(&mut self, record: &CampaignRecord) -> Result<SaveStats, StoreError> {
        record.validate()?;
        let change = CampaignChange::between(None, record);
        self.write(&record.campaign_id, &change, true)
    }

    fn close_campaign(&mut self, campaign_id: &str) {
        if self.connections.remove(campaign_id).is_some() {
            self.reopening.insert(campaign_id.to_string());
        }
    }

    fn lock_campaign(&mut self, campaign_id: &str) -> Result<CampaignLock, StoreError> {
        validate_campaign_id(campaign_id)?;
        std::fs::create_dir_all(&self.campaigns_dir)
            .map_err(|e| StoreError::io("create the data directory", &self.campaigns_dir, e))?;
        let path = self.lock_path(campaign_id);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open the lock file", &path, e))?;
        // An advisory lock on a separate file rather than on the database: SQLite's own locks
        // are per transaction, and this one must last as long as the saver, while the
        // operating system still drops it when the process dies.
        match file.try_lock() {
            Ok(()) => Ok(CampaignLock::new(campaign_id, Box::new(file))),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
                campaign: campaign_id.to_string(),
                path,
            }),
            Err(TryLockError::Error(e)) => Err(StoreError::io("lock", &path, e)),
        }
    }
}

/// Opens a campaign file and brings its schema up to date.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection =
        Connection::open_with_flags(path, flags).map_err(|e| database_error(path, "open", e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| database_error(path, "configure", e))?;
    check_file_identity(&connection, path)?;

    // WAL: a commit appends to the log and never rewrites the database in place, so a process
    // killed mid-write leaves at worst an incomplete tail in the log, which SQLite discards on
    // the next open (every WAL frame is checksummed). Readers (exports) never block the saver.
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| database_error(path, "enable WAL", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database {
            path: path.to_path_buf(),
            message: format!("cannot enable write-ahead logging (journal mode stays {mode:?})"),
        });
    }
    // synchronous=FULL: every commit fsyncs the WAL before returning. For `kill -9` alone
    // NORMAL would do (written pages sit in the OS cache, which outlives the process), but
    // NORMAL may roll back the last commits on power loss or a kernel crash. Saves happen about
    // once a second, so FULL costs about one fsync a second, and in exchange "a completed save
    // is never lost" holds for every kind of crash, not only the process's. Neither setting can
    // corrupt the database; FULL only adds durability.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| database_error(path, "set synchronous", e))?;
    run_migrations(&mut connection, MIGRATIONS, path)?;
    Ok(connection)
}

/// Refuses files that are not ours or are newer than this build, before anything is written.
fn check_file_identity(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let read_header = || -> rusqlite::Result<(i32, i64, i64)> {
        let application_id: i32 =
            connection.pragma_query_value(None, "application_id", |row| row.get(0))?;
        let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let tables: i64 =
            connection.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
        Ok((application_id, version, tables))
    };
    let (application_id, version, tables) = match read_header() {
        Ok(header) => header,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(StoreError::NotACampaignStore {
                path: path.to_path_buf(),
                detail: "it is not an SQLite database".to_string(),
            });
        }
        Err(e) => return Err(database_error(path, "read the header", e)),
    };
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(StoreError::NotACampaignStore {
            path: path.to_path_buf(),
            detail: format!("its application id is {application_id:#x}"),
        });
    }
    if version == 0 && tables > 0 {
        return Err(StoreError::NotACampaignStore {
            path: path.to_path_buf(),
            detail: "it holds tables but no schema version".to_string(),
        });
    }
    if version > i64::from(SCHEMA_VERSION) || version < 0 {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies `migrations[found..]`, one transaction per step, re-reading the version inside each
/// transaction so that two processes opening a new file at once do not both migrate it.
pub(crate) fn run_migrations(
    connection: &mut Connection,
    migrations: &[Migration],
    path: &Path,
) -> Result<(), StoreError> {
    loop {
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| database_error(path, "begin a migration", e))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| database_error(path, "read the schema version", e))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > migrations.len() {
            return Err(StoreError::SchemaTooNew {
                path: path.to_path_buf(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: migrations.len() as u32,
            });
        }
        if version == migrations.len() {
            return Ok(());
        }
        migrations[version](&tx).map_err(|e| {
            database_error(
                path,
                &format!("migrate the schema from version {version}"),
                e,
            )
        })?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)
            .and_then(|()| tx.pragma_update(None, "application_id", APPLICATION_ID))
            .and_then(|()| tx.commit())
            .map_err(|e| database_error(path, "record the schema version", e))?;
        // Version 0 is a new file: only upgrades of existing data are worth an info line.
        if version == 0 {
            tracing::debug!(path = %path.display(), "campaign schema created");
        } else {
            tracing::info!(
                path = %path.display(),
                "campaign schema migrated from version {version} to {}",
                version + 1
            );
        }
    }
}

fn database_error(path: &Path, action: &str, error: rusqlite::Error) -> StoreError {
    StoreError::Database {
        path: path.to_path_buf(),
        message: format!("cannot {action}: {error}"),
    }
}

fn check_campaign_id(path: &Path, expected: &str, found: &str) -> Result<(), StoreError> {
    if expected == found {
        Ok(())
    } else {
        Err(StoreError::CampaignMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found: found.to_string(),
        })
    }
}

/// Writes a change in one IMMEDIATE transaction (the write lock is taken up front, so the
/// transaction cannot fail half-way on a lock upgrade).
fn write_change(
    connection: &mut Connection,
    path: &Path,
    campaign_id: &str,
    change: &CampaignChange,
    replace_all: bool,
) -> Result<SaveStats, StoreError> {
    let db = |action: &'static str| move |e| database_error(path, action, e);
    let changes_before = connection.total_changes();
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db("begin a save"))?;
    let existing: Option<(String, i64)> = tx
        .query_row(
            "SELECT campaign_id, revision FROM campaign WHERE singleton = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(db("read the campaign row"))?;
    let mut stats = SaveStats {
        tick: change.tick,
        ..SaveStats::default()
    };
    let tick = sql_int(change.tick, campaign_id, "tick")?;
    let now = unix_now();
    let environment = change
        .environment
        .as_ref()
        .map(|e| to_json(e, campaign_id, "environment"))
        .transpose()?;
    let world = change
        .world
        .as_ref()
        .map(|w| to_json(w, campaign_id, "world data"))
        .transpose()?;
    stats.environment_written = environment.is_some();
    stats.bytes_written += environment.as_ref().map_or(0, |e| e.len() as u64);
    stats.bytes_written += world.as_ref().map_or(0, |w| w.len() as u64);

    let revision = match existing {
        None => {
            let Some(environment) = environment else {
                return Err(StoreError::NoBase {
                    campaign: campaign_id.to_string(),
                });
            };
            tx.execute(
                "INSERT INTO campaign (singleton, campaign_id, tick, next_object_id, environment,
                                       world, revision, created_unix, saved_unix)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                params![
                    campaign_id,
                    tick,
                    change.next_object_id,
                    environment,
                    world.unwrap_or_else(|| "{}".to_string()),
                    now
                ],
            )
            .map_err(db("create the campaign row"))?;
            1
        }
        Some((found, revision)) => {
            check_campaign_id(path, campaign_id, &found)?;
            let revision = revision + 1;
            tx.execute(
                "UPDATE campaign SET tick = ?1, next_object_id = ?2, revision = ?3,
                        saved_unix = ?4, environment = COALESCE(?5, environment),
                        world = COALESCE(?6, world)
                 WHERE singleton = 1",
                params![
                    tick,
                    change.next_object_id,
                    revision,
                    now,
                    environment,
                    world
                ],
            )
            .map_err(db("update the campaign row"))?;
            revision
        }
    };
    stats.revision = revision as u64;

    if replace_all {
        stats.objects_removed += tx
            .execute("DELETE FROM objects", [])
            .map_err(db("clear the objects"))?;
        stats.players_removed += tx
            .execute("DELETE FROM players", [])
            .map_err(db("clear the players"))?;
    }
    {
        let mut delete = tx
            .prepare_cached("DELETE FROM objects WHERE id = ?1")
            .map_err(db("prepare object removal"))?;
        for id in &change.removed_objects {
            stats.objects_removed += delete.execute([id]).map_err(db("remove an object"))?;
        }
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO objects (id, kind, description, state, saved_revision)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind,
                     description = excluded.description, state = excluded.state,
                     saved_revision = excluded.saved_revision",
            )
            .map_err(db("prepare object writes"))?;
        for (id, object) in &change.upserted_objects {
            let (kind, description, state) = encode_object(object, campaign_id)?;
            stats.bytes_written += (description.len() + state.len()) as u64;
            upsert
                .execute(params![id, kind, description, state, revision])
                .map_err(db("write an object"))?;
            stats.objects_written += 1;
        }
        let mut delete = tx
            .prepare_cached("DELETE FROM players WHERE name = ?1")
            .map_err(db("prepare player removal"))?;
        for name in &change.removed_players {
            stats.players_removed += delete.execute([name]).map_err(db("remove a player"))?;
        }
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO players (name, record, saved_revision) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET record = excluded.record,
                     saved_revision = excluded.saved_revision",
            )
            .map_err(db("prepare player writes"))?;
        for (name, player) in &change.upserted_players {
            let record = to_json(player, campaign_id, &format!("player {name:?}"))?;
            stats.bytes_written += record.len() as u64;
            upsert
                .execute(params![name, record, revision])
                .map_err(db("write a player"))?;
            stats.players_written += 1;
        }
    }
    tx.commit().map_err(db("commit the save"))?;
    stats.rows_changed = connection.total_changes() - changes_before;
    Ok(stats)
}

/// Reads a campaign from a copy of its database file held in memory (the bytes of a
/// `campaigns/ID.sqlite3`), with the identity checks, migrations and decoding of a load from disk;
/// no file is read or written. Any bytes give a campaign, `None` or an error, never a panic: the
/// loader is fuzzed through this (`rust/fuzz`).
pub fn load_campaign_image(
    bytes: &[u8],
    campaign_id: &str,
) -> Result<Option<CampaignRecord>, StoreError> {
    validate_campaign_id(campaign_id)?;
    let path = PathBuf::from(format!("(in-memory image of campaign {campaign_id})"));
    let mut connection =
        Connection::open_in_memory().map_err(|e| database_error(&path, "open", e))?;
    if !bytes.is_empty() {
        let mut image = bytes.to_vec();
        // Saved files are in WAL mode, which SQLite refuses for an in-memory database; without its
        // -wal file a copy is a plain rollback-journal database (header bytes 18-19: 1, not 2).
        if image.len() >= 20 && image[18] == 2 && image[19] == 2 {
            image[18] = 1;
            image[19] = 1;
        }
        connection
            .deserialize_read_exact(rusqlite::MAIN_DB, image.as_slice(), image.len(), false)
            .map_err(|e| database_error(&path, "load the image", e))?;
    }
    check_file_identity(&connection, &path)?;
    run_migrations(&mut connection, MIGRATIONS, &path)?;
    read_campaign(&mut connection, &path, campaign_id)
}

/// Reads a whole campaign inside one read transaction: a consistent state even while the saver
/// of a running server commits (WAL readers see the last commit before they started).
fn read_campaign(
    connection: &mut Connection,
    path: &Path,
    campaign_id: &str,
) -> Result<Option<CampaignRecord>, StoreError> {
    let read = |action: &str, e: rusqlite::Error| database_error(path, action, e);
    let corrupt = |what: String, message: String| StoreError::CorruptRecord {
        campaign: campaign_id.to_string(),
        what,
        message,
    };
    let tx = connection
        .transaction()
        .map_err(|e| read("begin a read", e))?;
    let row = tx
        .query_row(
            "SELECT campaign_id, tick, next_object_id, environment, world
             FROM campaign WHERE singleton = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            },
        )
        .optional()
        .map_err(|e| read("read the campaign row", e))?;
    let Some((found, tick, next_object_id, environment, world)) = row else {
        return Ok(None);
    };
    check_campaign_id(path, campaign_id, &found)?;
    let environment = decode_environment(campaign_id, &environment)?;
    let mut record = CampaignRecord::new(campaign_id, environment);
    record.tick = u64::try_from(tick).map_err(|_| corrupt("tick".into(), tick.to_string()))?;
    record.next_object_id = u32::try_from(next_object_id)
        .map_err(|_| corrupt("next_object_id".into(), next_object_id.to_string()))?;
    record.world = decode_world(campaign_id, &world)?;

    let mut objects = tx
        .prepare("SELECT id, description, state FROM objects ORDER BY id")
        .map_err(|e| read("read the objects", e))?;
    let mut rows = objects.query([]).map_err(|e| read("read the objects", e))?;
    while let Some(row) = rows.next().map_err(|e| read("read the objects", e))? {
        let id: i64 = row.get(0).map_err(|e| read("read an object", e))?;
        let description: String = row.get(1).map_err(|e| read("read an object", e))?;
        let state: String = row.get(2).map_err(|e| read("read an object", e))?;
        let object = decode_object(campaign_id, id, &description, &state)?;
        record.objects.insert(object.state.id, object);
    }
    drop(rows);
    drop(objects);

    let mut players = tx
        .prepare("SELECT name, record FROM players ORDER BY name")
        .map_err(|e| read("read the players", e))?;
    let mut rows = players.query([]).map_err(|e| read("read the players", e))?;
    while let Some(row) = rows.next().map_err(|e| read("read the players", e))? {
        let name: String = row.get(0).map_err(|e| read("read a player", e))?;
        let json: String = row.get(1).map_err(|e| read("read a player", e))?;
        let player = decode_player(campaign_id, &name, &json)?;
        record.players.insert(name, player);
    }
    drop(rows);
    drop(players);
    tx.commit().map_err(|e| read("end a read", e))?;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch database, its directory removed on drop.
    struct TempDb {
        dir: PathBuf,
        path: PathBuf,
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn temp_db(name: &str) -> (TempDb, Connection) {
        let dir =
            std::env::temp_dir().join(format!("nexus-store-unit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite3");
        let connection = Connection::open(&path).unwrap();
        (TempDb { dir, path }, connection)
    }

    fn user_version(connection: &Connection) -> i64 {
        connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    fn step_one(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
    }
    fn step_two(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 2;")
    }
    fn failing_step(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE half_done (x); SELECT * FROM no_such_table;")
    }

    #[test]
    fn migrations_run_in_order_from_the_stored_version() {
        let (db, mut connection) = temp_db("order");
        run_migrations(&mut connection, &[step_one], &db.path).unwrap();
        assert_eq!(user_version(&connection), 1);
        // An older store (version 1) meets a newer build (2 steps): only step two runs.
        run_migrations(&mut connection, &[step_one, step_two], &db.path).unwrap();
        assert_eq!(user_version(&connection), 2);
        let (a, b): (i64, i64) = connection
            .query_row("SELECT a, b FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((a, b), (1, 2));
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "step one must not run twice");
    }

    #[test]
    fn a_failing_migration_rolls_back_and_keeps_the_version() {
        let (db, mut connection) = temp_db("failing");
        run_migrations(&mut connection, &[step_one], &db.path).unwrap();
        let error =
            run_migrations(&mut connection, &[step_one, failing_step], &db.path).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("migrate the schema from version 1"),
            "{error}"
        );
        assert_eq!(user_version(&connection), 1);
        let half_done: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(half_done, 0, "a failed step must leave nothing behind");
    }

    #[test]
    fn a_store_newer_than_the_migrations_is_refused() {
        let (db, mut connection) = temp_db("newer");
        run_migrations(&mut connection, &[step_one, step_two], &db.path).unwrap();
        let error = run_migrations(&mut connection, &[step_one], &db.path).unwrap_err();
        assert!(
            matches!(
                error,
                StoreError::SchemaTooNew {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{error}"
        );
    }
}
