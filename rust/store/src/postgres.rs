//! The cluster backend: every campaign of many server processes in one PostgreSQL database,
//! each owned by one server at a time through a lease with a fencing epoch.
//!
//! # Tables (prefixed `nexus_`, so the database may hold other things too)
//!
//! ```text
//! nexus_schema     the schema version (migrations below, serialised by an advisory lock)
//! nexus_leases     campaign -> owner, epoch, expires_at: who may write it
//! nexus_campaigns  one row per campaign: tick, id counter, environment, world data, revision,
//!                  and the owner and epoch of the lease it was last written under
//! nexus_objects    (campaign, object id) -> kind, description, state   (JSON, as in SQLite)
//! nexus_players    (campaign, name) -> record
//! ```
//!
//! # Leases and fencing
//!
//! [`CampaignStore::lock_campaign`] takes the campaign's lease row if it is free or expired,
//! raising its epoch by one, and starts a keeper thread that renews it (on its own connection)
//! every quarter of its time to live. A host reads [`Lease::may_simulate`] every tick and stops
//! before the lease can expire, so a server cut off from the database stops on its own before
//! another one may take its campaigns.
//!
//! A trigger on `nexus_campaigns` refuses any write whose epoch is not the lease's current one,
//! or whose lease has expired, and every save updates that row first, in the same transaction
//! as its objects, holding the lease row (`FOR SHARE`) until it commits. So the database itself
//! guarantees that a stale owner — paused, partitioned, or not yet aware it lost its lease —
//! never writes after another server took the campaign: its save fails with
//! [`StoreError::Fenced`] and the lease turns [`LeaseStatus::Lost`](crate::LeaseStatus::Lost).
//! A save under an expired lease that nobody took yet fails with [`StoreError::LeaseExpired`]
//! and is retried: the keeper may still renew the lease when the database answers again.
//!
//! Saves are one transaction each (durable on commit with PostgreSQL's default
//! `synchronous_commit`), and the rows of a save travel as arrays in one statement per table,
//! so a save costs a handful of round trips whatever its size.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};

use crate::error::StoreError;
use crate::record::{CampaignChange, CampaignRecord, validate_campaign_id};
use crate::rows::{
    decode_environment, decode_object, decode_player, decode_world, encode_object, sql_int,
    to_json, unix_now,
};
use crate::store::{CampaignLock, CampaignStore, CampaignSummary, Lease, LeaseStatus, SaveStats};

/// Newest schema version of the PostgreSQL store.
pub const POSTGRES_SCHEMA_VERSION: u32 = 1;

/// The schema history: `POSTGRES_MIGRATIONS[v]` turns version `v` into `v + 1`. To change the
/// schema, append a step and bump [`POSTGRES_SCHEMA_VERSION`].
pub const POSTGRES_MIGRATIONS: &[&str] = &[SCHEMA_V1];

const _: () = assert!(POSTGRES_MIGRATIONS.len() == POSTGRES_SCHEMA_VERSION as usize);

/// SQLSTATE the fencing trigger raises for a write under an old epoch ("NX" for Nexus; not a
/// code PostgreSQL uses).
const FENCED_SQLSTATE: &str = "NX001";

/// SQLSTATE of a write under the current epoch whose lease has expired: refused, but the lease
/// may still be renewed if no other server took it.
const EXPIRED_SQLSTATE: &str = "NX002";

/// Advisory lock key that serialises migrations between servers starting at once ("NXSP").
const MIGRATION_LOCK_KEY: i64 = 0x4E58_5350;

/// Default time to live of a lease: a killed server's campaigns are free this long after its
/// last renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);

const SCHEMA_V1: &str = "
CREATE TABLE nexus_leases (
    campaign_id text PRIMARY KEY,
    owner       text        NOT NULL,
    epoch       bigint      NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
);
CREATE TABLE nexus_campaigns (
    campaign_id    text PRIMARY KEY,
    tick           bigint           NOT NULL,
    next_object_id bigint           NOT NULL,
    environment    text             NOT NULL, -- JSON EnvironmentState
    world          text             NOT NULL, -- JSON object, opaque
    revision       bigint           NOT NULL, -- number of saves
    created_unix   double precision NOT NULL,
    saved_unix     double precision NOT NULL,
    owner          text             NOT NULL, -- the lease this row was last written under
    epoch          bigint           NOT NULL
);
CREATE TABLE nexus_objects (
    campaign_id    text   NOT NULL REFERENCES nexus_campaigns ON DELETE CASCADE,
    id             bigint NOT NULL,
    kind           text   NOT NULL,
    description    text   NOT NULL, -- JSON ObjectDesc
    state          text   NOT NULL, -- JSON ObjectState
    saved_revision bigint NOT NULL,
    PRIMARY KEY (campaign_id, id)
);
CREATE TABLE nexus_players (
    campaign_id    text   NOT NULL REFERENCES nexus_campaigns ON DELETE CASCADE,
    name           text   NOT NULL,
    record         text   NOT NULL, -- JSON PlayerRecord
    saved_revision bigint NOT NULL,
    PRIMARY KEY (campaign_id, name)
);
-- The fence: a campaign row is written only under the campaign's current, unexpired lease.
-- FOR SHARE keeps the lease row as it is until the writing transaction ends, so a takeover
-- waits for a save in flight, and every save after the takeover sees the new epoch.
CREATE FUNCTION nexus_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held nexus_leases%ROWTYPE;
BEGIN
    SELECT * INTO held FROM nexus_leases WHERE campaign_id = NEW.campaign_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'NX001',
            MESSAGE = format('campaign %s has no lease: written under epoch %s by %s',
                             NEW.campaign_id, NEW.epoch, NEW.owner);
    END IF;
    IF held.epoch <> NEW.epoch OR held.owner <> NEW.owner THEN
        RAISE EXCEPTION USING ERRCODE = 'NX001',
            MESSAGE = format('stale write refused: written under epoch %s by %s, the lease is at epoch %s held by %s',
                             NEW.epoch, NEW.owner, held.epoch, held.owner);
    END IF;
    IF held.expires_at <= clock_timestamp() THEN
        RAISE EXCEPTION USING ERRCODE = 'NX002',
            MESSAGE = format('write refused: the lease (epoch %s) expired at %s',
                             held.epoch, held.expires_at);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER nexus_campaigns_fence BEFORE INSERT OR UPDATE ON nexus_campaigns
    FOR EACH ROW EXECUTE FUNCTION nexus_fence();
";

/// Settings of a [`PostgresStore`].
#[derive(Clone, Debug, PartialEq)]
pub struct PostgresOptions {
    /// Who holds the leases this store takes: unique per server process (default: host name,
    /// process id and start time).
    pub owner: String,
    /// How long a lease lasts without renewal (default [`DEFAULT_LEASE_TTL`]); renewed every
    /// quarter of it.
    pub lease_ttl: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            owner: default_owner(),
            lease_ttl: DEFAULT_LEASE_TTL,
        }
    }
}

/// A name for this process that no other process of the cluster has, now or later.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{host}:{}:{started:x}", std::process::id())
}

/// Whether `location` names a PostgreSQL database rather than a data directory.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Campaigns in a PostgreSQL database shared by the servers of a cluster.
pub struct PostgresStore {
    config: Config,
    /// The URL without its password, for messages.
    database: String,
    options: PostgresOptions,
    client: Option<Client>,
    /// Leases taken through this store: every write carries its campaign's epoch.
    leases: HashMap<String, Weak<Lease>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.database)
            .field("owner", &self.options.owner)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/database`) and
    /// brings its schema up to date. An unreachable server, bad credentials or a schema newer
    /// than this build are errors here, with the reason.
    pub fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| StoreError::Server {
            database: "(the database URL)".to_string(),
            message: format!("invalid database URL: {e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A server that vanishes without closing the connection (a cut cable) must turn into
        // an error, not a hang: keepalives and a bound on unacknowledged data.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .tcp_user_timeout(Duration::from_secs(10));
        if config.get_application_name().is_none() {
            config.application_name("nexus-physics");
        }
        if options.lease_ttl < Duration::from_millis(200) {
            return Err(StoreError::Server {
                database: describe_config(&config),
                message: format!(
                    "a lease time to live of {:?} is too short (at least 200 ms)",
                    options.lease_ttl
                ),
            });
        }
        let mut store = PostgresStore {
            database: describe_config(&config),
            config,
            options,
            client: None,
            leases: HashMap::new(),
        };
        store.client()?;
        Ok(store)
    }

    /// The database, as `postgres://user@host:port/name` (no password).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Who holds the leases this store takes.
    pub fn owner(&self) -> &str {
        &self.options.owner
    }

    /// The connection, opened (and the schema migrated) on first use or after a failure.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut client = connect(&self.config, &self.database)?;
            run_migrations(&mut client, POSTGRES_MIGRATIONS, &self.database)?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn error(&self, action: &str, campaign_id: Option<&str>, error: postgres::Error) -> StoreError {
        map_error(&self.database, action, campaign_id, error)
    }

    /// The lease this store holds on a campaign, refused when it is gone.
    fn held_lease(&self, campaign_id: &str) -> Result<Arc<Lease>, StoreError> {
        let lease = self
            .leases
            .get(campaign_id)
            .and_then(Weak::upgrade)
            .ok_or_else(|| StoreError::NotLeased {
                campaign: campaign_id.to_string(),
            })?;
        if let LeaseStatus::Lost { reason } = lease.status() {
            return Err(StoreError::Fenced {
                campaign: campaign_id.to_string(),
                message: reason,
            });
        }
        Ok(lease)
    }

    fn write(
        &mut self,
        campaign_id: &str,
        change: &CampaignChange,
        replace_all: bool,
    ) -> Result<SaveStats, StoreError> {
        let started = Instant::now();
        let lease = self.held_lease(campaign_id)?;
        let rows = EncodedRows::new(campaign_id, change)?;
        let database = self.database.clone();
        let client = self.client()?;
        let result = write_change(client, campaign_id, &lease, change, &rows, replace_all);
        let mut stats = result
            .map_err(|e| map_error(&database, "save", Some(campaign_id), e))
            .and_then(|written| written)
            .inspect_err(|error| {
                if let StoreError::Fenced { message, .. } = error {
                    lease.lose(message.clone());
                }
            })?;
        stats.bytes_written = rows.bytes;
        stats.duration = started.elapsed();
        Ok(stats)
    }
}

impl CampaignStore for PostgresStore {
    fn list_campaigns(&mut self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()?
            .query(
                "SELECT campaign_id FROM nexus_campaigns ORDER BY campaign_id",
                &[],
            )
            .map_err(|e| self.error("list the campaigns", None, e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn campaign_summary(
        &mut self,
        campaign_id: &str,
    ) -> Result<Option<CampaignSummary>, StoreError> {
        validate_campaign_id(campaign_id)?;
        let row = self
            .client()?
            .query_opt(
                "SELECT tick, revision, saved_unix,
                        (SELECT count(*) FROM nexus_objects WHERE campaign_id = $1),
                        (SELECT count(*) FROM nexus_players WHERE campaign_id = $1)
                 FROM nexus_campaigns WHERE campaign_id = $1",
                &[&campaign_id],
            )
            .map_err(|e| self.error("read the campaign summary", Some(campaign_id), e))?;
        Ok(row.map(|row| CampaignSummary {
            campaign_id: campaign_id.to_string(),
            tick: row.get::<_, i64>(0) as u64,
            revision: row.get::<_, i64>(1) as u64,
            saved_at_unix: row.get(2),
            object_count: row.get::<_, i64>(3) as u64,
            player_count: row.get::<_, i64>(4) as u64,
        }))
    }

    fn load_campaign(&mut self, campaign_id: &str) -> Result<Option<CampaignRecord>, StoreError> {
        validate_campaign_id(campaign_id)?;
        let database = self.database.clone();
        let client = self.client()?;
        read_campaign(client, campaign_id)
            .map_err(|e| map_error(&database, "load", Some(campaign_id), e))?
            .transpose()
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

    fn lock_campaign(&mut self, campaign_id: &str) -> Result<CampaignLock, StoreError> {
        validate_campaign_id(campaign_id)?;
        let owner = self.options.owner.clone();
        let ttl = self.options.lease_ttl;
        let ttl_ms = ttl.as_millis() as i64;
        let sent_at = Instant::now();
        let granted = self
            .client()?
            .query_opt(
                "INSERT INTO nexus_leases AS l (campaign_id, owner, epoch, expires_at, acquired_at)
                 VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond',
                         clock_timestamp())
                 ON CONFLICT (campaign_id) DO UPDATE
                     SET owner = EXCLUDED.owner, epoch = l.epoch + 1,
                         expires_at = EXCLUDED.expires_at, acquired_at = EXCLUDED.acquired_at
                     WHERE l.expires_at <= clock_timestamp()
                 RETURNING epoch",
                &[&campaign_id, &owner, &ttl_ms],
            )
            .map_err(|e| self.error("take the campaign's lease", Some(campaign_id), e))?;
        let Some(granted) = granted else {
            let holder = self
                .client()?
                .query_opt(
                    "SELECT owner, greatest(0, extract(epoch FROM expires_at - clock_timestamp())
                                               * 1000)::bigint
                     FROM nexus_leases WHERE campaign_id = $1",
                    &[&campaign_id],
                )
                .map_err(|e| self.error("read the campaign's lease", Some(campaign_id), e))?;
            let (owner, expires_in_ms) = holder
                .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
                .unwrap_or_default();
            return Err(StoreError::LeaseHeld {
                campaign: campaign_id.to_string(),
                owner,
                expires_in_ms: expires_in_ms.max(0) as u64,
            });
        };
        let epoch = granted.get::<_, i64>(0) as u64;
        let lease = Arc::new(Lease::new(campaign_id, &owner, epoch, ttl, sent_at));
        self.leases
            .insert(campaign_id.to_string(), Arc::downgrade(&lease));
        let keeper = LeaseKeeper::start(self.config.clone(), self.database.clone(), &lease)?;
        tracing::debug!(campaign = campaign_id, epoch, owner = %owner, "lease taken");
        Ok(CampaignLock::with_lease(
            campaign_id,
            lease,
            Box::new(keeper),
        ))
    }

    fn close_campaign(&mut self, _campaign_id: &str) {
        // The connection failed: the next call opens a new one. The lease has its own.
        self.client = None;
    }

    fn lock_survives_reconnect(&self) -> bool {
        true
    }
}

/// The rows of a change, encoded before the transaction starts (no JSON work while it holds
/// locks).
struct EncodedRows {
    object_ids: Vec<i64>,
    kinds: Vec<String>,
    descriptions: Vec<String>,
    states: Vec<String>,
    removed_objects: Vec<i64>,
    player_names: Vec<String>,
    player_records: Vec<String>,
    removed_players: Vec<String>,
    environment: Option<String>,
    world: Option<String>,
    tick: i64,
    bytes: u64,
}

impl EncodedRows {
    fn new(campaign_id: &str, change: &CampaignChange) -> Result<EncodedRows, StoreError> {
        let mut rows = EncodedRows {
            object_ids: Vec::with_capacity(change.upserted_objects.len()),
            kinds: Vec::with_capacity(change.upserted_objects.len()),
            descriptions: Vec::with_capacity(change.upserted_objects.len()),
            states: Vec::with_capacity(change.upserted_objects.len()),
            removed_objects: change
                .removed_objects
                .iter()
                .map(|&id| i64::from(id))
                .collect(),
            player_names: Vec::with_capacity(change.upserted_players.len()),
            player_records: Vec::with_capacity(change.upserted_players.len()),
            removed_players: change.removed_players.iter().cloned().collect(),
            environment: change
                .environment
                .as_ref()
                .map(|e| to_json(e, campaign_id, "environment"))
                .transpose()?,
            world: change
                .world
                .as_ref()
                .map(|w| to_json(w, campaign_id, "world data"))
                .transpose()?,
            tick: sql_int(change.tick, campaign_id, "tick")?,
            bytes: 0,
        };
        for (id, object) in &change.upserted_objects {
            let (kind, description, state) = encode_object(object, campaign_id)?;
            rows.bytes += (description.len() + state.len()) as u64;
            rows.object_ids.push(i64::from(*id));
            rows.kinds.push(kind);
            rows.descriptions.push(description);
            rows.states.push(state);
        }
        for (name, player) in &change.upserted_players {
            let record = to_json(player, campaign_id, &format!("player {name:?}"))?;
            rows.bytes += record.len() as u64;
            rows.player_names.push(name.clone());
            rows.player_records.push(record);
        }
        rows.bytes += rows.environment.as_ref().map_or(0, |e| e.len() as u64);
        rows.bytes += rows.world.as_ref().map_or(0, |w| w.len() as u64);
        Ok(rows)
    }
}

/// One save in one transaction; the campaign row first, so the fence is checked (and the lease
/// row held) before anything else is written.
fn write_change(
    client: &mut Client,
    campaign_id: &str,
    lease: &Lease,
    change: &CampaignChange,
    rows: &EncodedRows,
    replace_all: bool,
) -> Result<Result<SaveStats, StoreError>, postgres::Error> {
    let epoch = lease.epoch() as i64;
    let owner = lease.owner();
    let next_object_id = i64::from(change.next_object_id);
    let now = unix_now();
    let mut tx = client.transaction()?;
    let existing = tx.query_opt(
        "SELECT revision FROM nexus_campaigns WHERE campaign_id = $1 FOR UPDATE",
        &[&campaign_id],
    )?;
    let mut stats = SaveStats {
        tick: change.tick,
        environment_written: rows.environment.is_some(),
        ..SaveStats::default()
    };
    let revision = match existing {
        None => {
            let Some(environment) = &rows.environment else {
                return Ok(Err(StoreError::NoBase {
                    campaign: campaign_id.to_string(),
                }));
            };
            let world = rows.world.as_deref().unwrap_or("{}");
            stats.rows_changed += tx.execute(
                "INSERT INTO nexus_campaigns (campaign_id, tick, next_object_id, environment, world,
                     revision, created_unix, saved_unix, owner, epoch)
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7, $8)",
                &[
                    &campaign_id,
                    &rows.tick,
                    &next_object_id,
                    environment,
                    &world,
                    &now,
                    &owner,
                    &epoch,
                ],
            )?;
            1
        }
        Some(row) => {
            let revision = row.get::<_, i64>(0) + 1;
            stats.rows_changed += tx.execute(
                "UPDATE nexus_campaigns SET tick = $2, next_object_id = $3, revision = $4,
                     saved_unix = $5, environment = COALESCE($6, environment),
                     world = COALESCE($7, world), owner = $8, epoch = $9
                 WHERE campaign_id = $1",
                &[
                    &campaign_id,
                    &rows.tick,
                    &next_object_id,
                    &revision,
                    &now,
                    &rows.environment,
                    &rows.world,
                    &owner,
                    &epoch,
                ],
            )?;
            revision
        }
    };
    stats.revision = revision as u64;
    if replace_all {
        let removed = tx.execute(
            "DELETE FROM nexus_objects WHERE campaign_id = $1",
            &[&campaign_id],
        )?;
        stats.objects_removed += removed as usize;
        stats.rows_changed += removed;
        let removed = tx.execute(
            "DELETE FROM nexus_players WHERE campaign_id = $1",
            &[&campaign_id],
        )?;
        stats.players_removed += removed as usize;
        stats.rows_changed += removed;
    }
    if !rows.removed_objects.is_empty() {
        let removed = tx.execute(
            "DELETE FROM nexus_objects WHERE campaign_id = $1 AND id = ANY($2)",
            &[&campaign_id, &rows.removed_objects],
        )?;
        stats.objects_removed += removed as usize;
        stats.rows_changed += removed;
    }
    if !rows.object_ids.is_empty() {
        stats.rows_changed += tx.execute(
            "INSERT INTO nexus_objects (campaign_id, id, kind, description, state, saved_revision)
             SELECT $1, u.id, u.kind, u.description, u.state, $6
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])
                  AS u(id, kind, description, state)
             ON CONFLICT (campaign_id, id) DO UPDATE SET kind = EXCLUDED.kind,
                 description = EXCLUDED.description, state = EXCLUDED.state,
                 saved_revision = EXCLUDED.saved_revision",
            &[
                &campaign_id,
                &rows.object_ids,
                &rows.kinds,
                &rows.descriptions,
                &rows.states,
                &revision,
            ],
        )?;
        stats.objects_written = rows.object_ids.len();
    }
    if !rows.removed_players.is_empty() {
        let removed = tx.execute(
            "DELETE FROM nexus_players WHERE campaign_id = $1 AND name = ANY($2)",
            &[&campaign_id, &rows.removed_players],
        )?;
        stats.players_removed += removed as usize;
        stats.rows_changed += removed;
    }
    if !rows.player_names.is_empty() {
        stats.rows_changed += tx.execute(
            "INSERT INTO nexus_players (campaign_id, name, record, saved_revision)
             SELECT $1, u.name, u.record, $4
             FROM unnest($2::text[], $3::text[]) AS u(name, record)
             ON CONFLICT (campaign_id, name) DO UPDATE SET record = EXCLUDED.record,
                 saved_revision = EXCLUDED.saved_revision",
            &[
                &campaign_id,
                &rows.player_names,
                &rows.player_records,
                &revision,
            ],
        )?;
        stats.players_written = rows.player_names.len();
    }
    tx.commit()?;
    Ok(Ok(stats))
}

/// Reads a whole campaign in one repeatable-read transaction: a consistent state even while
/// its owner saves.
fn read_campaign(
    client: &mut Client,
    campaign_id: &str,
) -> Result<Option<Result<CampaignRecord, StoreError>>, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let Some(head) = tx.query_opt(
        "SELECT tick, next_object_id, environment, world FROM nexus_campaigns
         WHERE campaign_id = $1",
        &[&campaign_id],
    )?
    else {
        return Ok(None);
    };
    let objects = tx.query(
        "SELECT id, description, state FROM nexus_objects WHERE campaign_id = $1 ORDER BY id",
        &[&campaign_id],
    )?;
    let players = tx.query(
        "SELECT name, record FROM nexus_players WHERE campaign_id = $1 ORDER BY name",
        &[&campaign_id],
    )?;
    tx.commit()?;
    let decode = || -> Result<CampaignRecord, StoreError> {
        let corrupt = |what: &str, value: i64| StoreError::CorruptRecord {
            campaign: campaign_id.to_string(),
            what: what.to_string(),
            message: value.to_string(),
        };
        let tick: i64 = head.get(0);
        let next_object_id: i64 = head.get(1);
        let environment = decode_environment(campaign_id, head.get(2))?;
        let mut record = CampaignRecord::new(campaign_id, environment);
        record.tick = u64::try_from(tick).map_err(|_| corrupt("tick", tick))?;
        record.next_object_id =
            u32::try_from(next_object_id).map_err(|_| corrupt("next_object_id", next_object_id))?;
        record.world = decode_world(campaign_id, head.get(3))?;
        for row in &objects {
            let object = decode_object(campaign_id, row.get(0), row.get(1), row.get(2))?;
            record.objects.insert(object.state.id, object);
        }
        for row in &players {
            let name: String = row.get(0);
            let player = decode_player(campaign_id, &name, row.get(1))?;
            record.players.insert(name, player);
        }
        Ok(record)
    };
    Ok(Some(decode()))
}

fn connect(config: &Config, database: &str) -> Result<Client, StoreError> {
    config.connect(NoTls).map_err(|e| StoreError::Server {
        database: database.to_string(),
        message: format!("cannot connect: {}", describe_error(&e)),
    })
}

/// Applies the missing steps, one transaction each, under an advisory lock so that servers
/// starting together do not migrate twice.
fn run_migrations(
    client: &mut Client,
    migrations: &[&str],
    database: &str,
) -> Result<(), StoreError> {
    let failed = |action: &str, e: postgres::Error| map_error(database, action, None, e);
    loop {
        let mut tx = client
            .transaction()
            .map_err(|e| failed("begin a migration", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
            .and_then(|_| {
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS nexus_schema (
                         singleton integer PRIMARY KEY CHECK (singleton = 1),
                         version   integer NOT NULL
                     )",
                )
            })
            .map_err(|e| failed("create the schema table", e))?;
        let version = tx
            .query_opt("SELECT version FROM nexus_schema", &[])
            .map_err(|e| failed("read the schema version", e))?
            .map_or(0, |row| row.get::<_, i32>(0));
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > migrations.len() {
            return Err(StoreError::SchemaTooNew {
                path: database.into(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: migrations.len() as u32,
            });
        }
        if version == migrations.len() {
            tx.commit().map_err(|e| failed("end the schema check", e))?;
            return Ok(());
        }
        tx.batch_execute(migrations[version])
            .map_err(|e| failed(&format!("migrate the schema from version {version}"), e))?;
        tx.execute(
            "INSERT INTO nexus_schema (singleton, version) VALUES (1, $1)
             ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            &[&((version + 1) as i32)],
        )
        .and_then(|_| tx.commit())
        .map_err(|e| failed("record the schema version", e))?;
        if version > 0 {
            tracing::info!(
                database,
                "campaign schema migrated from version {version} to {}",
                version + 1
            );
        }
    }
}

/// Renews a lease on its own connection until dropped, then releases it.
struct LeaseKeeper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LeaseKeeper {
    fn start(
        config: Config,
        database: String,
        lease: &Arc<Lease>,
    ) -> Result<LeaseKeeper, StoreError> {
        let client = connect(&config, &database)?;
        let (stop, stopped) = bounded::<()>(1);
        let campaign_id = lease.campaign_id().to_string();
        let lease = Arc::clone(lease);
        let thread = std::thread::Builder::new()
            .name(format!("nexus-lease-{}", lease.campaign_id()))
            .spawn(move || {
                let mut client = Some(client);
                let every = lease.ttl() / 4;
                // Woken by a stop (or the guard's drop) or each renewal period.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    if !renew(&config, &database, &lease, &mut client) {
                        return;
                    }
                }
                release(&database, &lease, client.as_mut());
            })
            .map_err(|e| StoreError::io("start the lease keeper for", campaign_id, e))?;
        Ok(LeaseKeeper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// One renewal; false once the lease is lost for good.
fn renew(config: &Config, database: &str, lease: &Lease, client: &mut Option<Client>) -> bool {
    let sent_at = Instant::now();
    if client.as_ref().is_none_or(|c| c.is_closed()) {
        match connect(config, database) {
            Ok(connected) => *client = Some(connected),
            Err(error) => {
                lease.renewal_failed(error.to_string());
                return true;
            }
        }
    }
    let connection = client.as_mut().expect("connected above");
    let ttl_ms = lease.ttl().as_millis() as i64;
    let renewed = connection.execute(
        "UPDATE nexus_leases SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond'
         WHERE campaign_id = $1 AND owner = $2 AND epoch = $3",
        &[&lease.campaign_id(), &lease.owner(), &(lease.epoch() as i64), &ttl_ms],
    );
    match renewed {
        Ok(1) => {
            let was_failing = matches!(
                lease.status(),
                LeaseStatus::Renewing { .. } | LeaseStatus::Expired { .. }
            );
            lease.renewed(sent_at);
            if was_failing {
                tracing::info!(
                    campaign = lease.campaign_id(),
                    epoch = lease.epoch(),
                    "lease renewed again"
                );
            }
            true
        }
        Ok(_) => {
            let reason = format!(
                "the lease of campaign {:?} (epoch {}) was taken by another server",
                lease.campaign_id(),
                lease.epoch()
            );
            tracing::warn!(campaign = lease.campaign_id(), "{reason}");
            lease.lose(reason);
            false
        }
        Err(error) => {
            let message = format!("cannot renew the lease: {}", describe_error(&error));
            if !matches!(lease.status(), LeaseStatus::Renewing { .. }) {
                tracing::warn!(campaign = lease.campaign_id(), database, "{message}");
            }
            lease.renewal_failed(message);
            *client = None;
            true
        }
    }
}

/// Gives the campaign up at once (a clean shutdown), so that another server may take it without
/// waiting for the lease to expire. The epoch moves on, so no write under the old one passes.
fn release(database: &str, lease: &Lease, client: Option<&mut Client>) {
    if matches!(lease.status(), LeaseStatus::Lost { .. }) {
        return;
    }
    let released =
        client.map(|client| {
            client.execute(
            "UPDATE nexus_leases SET epoch = epoch + 1, owner = '', expires_at = clock_timestamp()
             WHERE campaign_id = $1 AND owner = $2 AND epoch = $3",
            &[&lease.campaign_id(), &lease.owner(), &(lease.epoch() as i64)],
        )
        });
    match released {
        Some(Ok(_)) => tracing::debug!(campaign = lease.campaign_id(), "lease released"),
        Some(Err(error)) => tracing::warn!(
            campaign = lease.campaign_id(),
            database,
            "cannot release the lease (it expires by itself): {}",
            describe_error(&error)
        ),
        None => {}
    }
    lease.lose("released".to_string());
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn map_error(
    database: &str,
    action: &str,
    campaign_id: Option<&str>,
    error: postgres::Error,
) -> StoreError {
    if let (Some(db), Some(campaign)) = (error.as_db_error(), campaign_id) {
        let (campaign, message) = (campaign.to_string(), db.message().to_string());
        match db.code().code() {
            FENCED_SQLSTATE => return StoreError::Fenced { campaign, message },
            EXPIRED_SQLSTATE => return StoreError::LeaseExpired { campaign, message },
            _ => {}
        }
    }
    let subject = campaign_id.map_or(String::new(), |c| format!(" campaign {c:?}"));
    StoreError::Server {
        database: database.to_string(),
        message: format!("cannot {action}{subject}: {}", describe_error(&error)),
    }
}

/// The database's own message when there is one (the driver's `Display` says only "db error").
fn describe_error(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} ({})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        return text;
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `postgres://user@host:port/database`, never the password.
fn describe_config(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let at = if user.is_empty() { "" } else { "@" };
    let name = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}{at}{host}:{port}/{name}")
}
