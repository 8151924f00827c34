//! Incremental persistence of a live `nexus_sim::World`: campaign records and changes built from
//! the world, and worlds rebuilt from records.
//!
//! # How it works
//!
//! - [`record_from_world`] takes every object but the player avatars (description + state), the
//!   environment, the tick and the id counter: the whole campaign, for the first save, backups,
//!   or [`Saver::submit_snapshot`](crate::Saver::submit_snapshot).
//! - [`change_since`] takes only what changed after a tick, from the world's own change tracking
//!   (`World::changed_since`, `World::removed_objects_since`): its cost follows the changes, not
//!   the world, so the tick thread can build one every save interval and hand it to
//!   [`Saver::submit_change`](crate::Saver::submit_change). Applied to the record of `since`, it
//!   gives the record of now.
//! - [`restore_world`] builds a world from a record: every object under its saved id, with its
//!   saved pose and velocities, then the environment, the id counter and the tick.
//! - [`player_record`] (and [`player_records`]) capture what a campaign remembers of a connected
//!   player (last position, rotation, held item), for the host to keep by name.
//! - Environment objects (added through the environment, like the terrain) are marked by
//!   [`ENVIRONMENT_MARKER`]` = true` in their record's `desc.properties`, so the flag travels
//!   with each row. A restore takes the object's properties from `state`, so the marker never
//!   reaches the world.
//!
//! ```no_run
//! # use std::collections::BTreeMap;
//! # use nexus_sim::{World, WorldConfig};
//! # use nexus_store::{Saver, SaverConfig, SqliteStore, StoreError};
//! # use nexus_store::world_bridge::{change_since, record_from_world, restore_world};
//! # fn host() -> Result<(), StoreError> {
//! let store = SqliteStore::open("data")?;
//! let (mut saver, loaded) = Saver::start(Box::new(store), "arena", SaverConfig::default())?;
//! let mut players = BTreeMap::new();
//! let mut world = match &loaded {
//!     Some(record) => {
//!         players = record.players.clone();
//!         restore_world(record, WorldConfig::default())?
//!     }
//!     None => World::new(WorldConfig::default()), // then build the scene
//! };
//! let mut saved_tick = world.tick();
//! if loaded.is_none() {
//!     saver.submit_snapshot(record_from_world("arena", &world, &players))?;
//! }
//! loop {
//!     world.step();
//!     if saver.is_due() {
//!         let players_changed = BTreeMap::new(); // players who left or moved since
//!         saver.submit_change(change_since(&world, saved_tick, &players_changed))?;
//!         saved_tick = world.tick();
//!     }
//! #   break;
//! }
//! saver.shutdown()?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use nexus_sim::state::{ClientId, ObjectId, Properties, Tick};
use nexus_sim::{World, WorldConfig};
use serde_json::Value;

use crate::error::StoreError;
use crate::record::{CampaignChange, CampaignRecord, ObjectRecord, PlayerRecord};

/// Key of an object record's `desc.properties` that marks an environment object (value `true`;
/// absent otherwise). Only the record's description carries it, never the world.
pub const ENVIRONMENT_MARKER: &str = "environment";

/// The record of one object as it is now; `None` for avatars and unknown ids. Recorded as a
/// restore will give it back: awake (`state.sleeping` false), held by nobody (no `held_by`
/// property), with [`ENVIRONMENT_MARKER`] in `desc.properties` for an environment object.
pub fn object_record(world: &World, id: ObjectId) -> Option<ObjectRecord> {
    let mut desc = world.object_desc(id)?;
    let mut state = world.object_state(id)?;
    // Who holds it is a matter of the connection, and the description leaves it out too.
    if world.holder_of(id).is_some() {
        state.properties.remove("held_by");
    }
    // A restored body starts awake whatever the record says (see `World::restore_object`): the
    // record says what a restore gives, so that record -> restore -> record is the identity.
    state.sleeping = false;
    // The description's properties repeat the state's; the marker overrides any game property
    // of that name there, the state keeps the real one.
    desc.properties.remove(ENVIRONMENT_MARKER);
    if world.is_environment_object(id) {
        desc.properties
            .insert(ENVIRONMENT_MARKER.to_string(), Value::Bool(true));
    }
    Some(ObjectRecord { desc, state })
}

/// Whether a stored object record is an environment object (see [`ENVIRONMENT_MARKER`]).
pub fn is_environment_record(object: &ObjectRecord) -> bool {
    object.desc.properties.get(ENVIRONMENT_MARKER) == Some(&Value::Bool(true))
}

/// The whole campaign as the world holds it now: every object but the avatars, the
/// environment, the tick, the id counter, and `players` (the host's records, by name). The
/// record's `world` data is left empty: it belongs to the host.
///
/// Visits every object: meant for the first save, backups and occasional snapshots; between
/// them, [`change_since`] costs only what changed.
pub fn record_from_world(
    campaign_id: &str,
    world: &World,
    players: &BTreeMap<String, PlayerRecord>,
) -> CampaignRecord {
    let mut record = CampaignRecord::new(campaign_id, world.environment_state());
    record.tick = world.tick();
    record.next_object_id = world.next_object_id();
    record.objects = world
        .object_ids()
        .into_iter()
        .filter_map(|id| Some((id, object_record(world, id)?)))
        .collect();
    record.players = players.clone();
    record
}

/// What changed in the world after tick `since`, as a change to save: the objects changed and
/// removed after it (avatars left out), the environment (always: it is small, and the clock
/// moves every tick), the tick and the id counter, and `players_changed` as player upserts.
///
/// Applied to the campaign record of tick `since`, it gives [`record_from_world`] of now (so a
/// campaign's first save must be a full record: a change lacks what did not change). Its
/// cost follows the number of changes, with one exception: the world remembers removals for
/// one minute of ticks, and when `since` is older than that
/// (`!world.removals_complete_since(since)`), the change has to carry every object and remove
/// every id handed out that is not alive any more. Save more often than once a minute, or submit
/// a snapshot instead in that case.
pub fn change_since(
    world: &World,
    since: Tick,
    players_changed: &BTreeMap<String, PlayerRecord>,
) -> CampaignChange {
    let mut change = CampaignChange::new(world.tick(), world.next_object_id());
    change.environment = Some(world.environment_state());
    change.upserted_players = players_changed.clone();
    if world.removals_complete_since(since) {
        for id in world.changed_since(since) {
            if let Some(object) = object_record(world, id) {
                change.upserted_objects.insert(id, object);
            }
        }
        change.removed_objects = world.removed_objects_since(since).into_iter().collect();
    } else {
        for id in world.object_ids() {
            if let Some(object) = object_record(world, id) {
                change.upserted_objects.insert(id, object);
            }
        }
        // Deleting a row that does not exist is harmless; keeping one that should not is not.
        change.removed_objects.extend(
            (1..world.next_object_id()).filter(|id| !change.upserted_objects.contains_key(id)),
        );
    }
    change
}

/// Builds a world from a campaign record: a new world from `config`, then every object under
/// its saved id with its saved pose, velocities and properties, then the environment (weather,
/// time of day, day length, terrain), the id counter and the tick.
///
/// Players are not spawned: the host spawns each one when it joins, at its record's position.
/// The world's pending events announce every restored object (`ObjectAdded`) and the
/// environment, as if just created: forward them to build visuals, or drain them. Restored
/// bodies start awake and fall asleep again within a second (see
/// `nexus_sim::World::restore_object`).
///
/// Fails with [`StoreError::InvalidRecord`], listing every problem, when the record is invalid
/// or the world refuses any object: a partial world would make the next save delete what it
/// could not restore.
pub fn restore_world(record: &CampaignRecord, config: WorldConfig) -> Result<World, StoreError> {
    record.validate()?;
    let mut world = World::new(config);
    let mut problems = Vec::new();
    for (id, object) in &record.objects {
        let environment = is_environment_record(object);
        let mut desc = object.desc.clone();
        desc.properties.remove(ENVIRONMENT_MARKER);
        if let Err(e) = world.restore_object(*id, desc, &object.state, environment) {
            problems.push(format!("object {id}: {e}"));
        }
    }
    if problems.is_empty() {
        // Only once every object is there: the terrain id must name one of them.
        if let Err(e) = world.restore_environment(record.environment.clone()) {
            problems.push(format!("environment: {e}"));
        }
        if let Err(e) = world.set_next_object_id(record.next_object_id) {
            problems.push(format!("next_object_id: {e}"));
        }
        // Last, so that the restored objects count as unchanged since the record's tick.
        if let Err(e) = world.set_tick(record.tick) {
            problems.push(format!("tick: {e}"));
        }
    }
    if problems.is_empty() {
        Ok(world)
    } else {
        Err(StoreError::InvalidRecord {
            campaign: record.campaign_id.clone(),
            problems,
        })
    }
}

/// What the campaign should remember of a connected player: its avatar's position and rotation,
/// the object it holds, and the current tick. `None` when the client has no avatar. The
/// `properties` are left empty: carry over the game's data from the previous record.
///
/// Take it when the player leaves (before `World::remove_player`) and at each save, and keep it
/// under the player's name.
pub fn player_record(world: &World, client_id: ClientId) -> Option<PlayerRecord> {
    let character = world.character_of(client_id)?;
    Some(PlayerRecord {
        position: character.position,
        rotation: character.rotation(),
        held_items: world.held_by(client_id).into_iter().collect(),
        last_seen_tick: world.tick(),
        properties: Properties::new(),
    })
}

/// [`player_record`] of every connected player, by the name its avatar was spawned with (when
/// two clients share a name, the higher client id wins).
pub fn player_records(world: &World) -> BTreeMap<String, PlayerRecord> {
    world
        .clients()
        .into_iter()
        .filter_map(|client| {
            let name = world.player_name(client)?.to_string();
            Some((name, player_record(world, client)?))
        })
        .collect()
}
