//! Persistence of Nexus Physics campaigns: world state that survives restarts and crashes.
//!
//! # How it works
//!
//! - A campaign's persisted state is a [`CampaignRecord`]: every object (description + state),
//!   the environment, player records, the tick and the id counter, in the shared types of
//!   `nexus_sim::state`.
//! - A [`CampaignStore`] keeps campaigns; [`SqliteStore`] (see [`open`]) is the default: one
//!   SQLite file per campaign under a data directory, WAL, `synchronous=FULL`, a schema version
//!   with migrations. [`PostgresStore`] keeps the campaigns of many server processes in one
//!   PostgreSQL database, each campaign owned by one server through a [`Lease`] whose fencing
//!   epoch the database checks on every write ([`postgres`]).
//! - A [`Saver`] saves one campaign on its own thread: the tick thread submits snapshots or
//!   changes without ever blocking, the saver writes only what changed ([`CampaignChange`]),
//!   once per interval, in one transaction, and makes a final save on shutdown.
//! - [`backup`] exports and imports a campaign as a JSON file (the `nexus-campaign` command).
//! - [`world_bridge`] builds records and incremental changes from a live `nexus_sim::World`
//!   (from its change tracking: the cost follows what changed) and rebuilds a world from a
//!   record, object by object under the saved ids.
//! - [`world_save`] carries the simulation's exact `WorldSave` inside a record.
//!
//! Crash safety: a save is one SQLite transaction, durable when it returns; `kill -9` at any
//! moment loses at most what was submitted after the last completed save, and the store opens
//! cleanly afterwards (tested by killing a saving child process at random moments).
#![warn(missing_docs)]

pub mod backup;
mod error;
pub mod postgres;
mod record;
mod rows;
mod saver;
mod sqlite;
mod store;
pub mod world_bridge;
pub mod world_save;

pub use error::StoreError;
pub use postgres::{PostgresOptions, PostgresStore};
pub use record::{
    CampaignChange, CampaignRecord, MAX_CAMPAIGN_ID_LEN, ObjectRecord, PlayerRecord,
    validate_campaign_id,
};
pub use saver::{Saver, SaverConfig, SaverEvent, SaverStatus, Submitted};
pub use sqlite::{
    APPLICATION_ID, CAMPAIGN_FILE_EXTENSION, MIGRATIONS, Migration, SCHEMA_VERSION, SqliteStore,
    load_campaign_image, open,
};
pub use store::{
    CampaignLock, CampaignStore, CampaignSummary, Lease, LeaseCounts, LeaseStatus, SaveStats,
};
