//! What a campaign's persisted state is made of, and how two states differ.
//!
//! A [`CampaignRecord`] is the whole state; a [`CampaignChange`] is what changed between two
//! saves. Both use the shared types of `nexus_sim::state`, so the simulation, the store and the
//! backups speak one language, and fields the simulation adds later (with serde defaults) flow
//! through untouched.

use std::collections::{BTreeMap, BTreeSet};

use nexus_sim::state::{
    EnvironmentState, ObjectDesc, ObjectId, ObjectState, Properties, Shape, Tick, identity_rotation,
};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// Longest accepted campaign id, in bytes.
pub const MAX_CAMPAIGN_ID_LEN: usize = 64;

/// Checks that `id` can name a campaign: 1 to 64 ASCII letters, digits, `-` or `_`.
///
/// The id becomes a file name in the SQLite backend, so anything that could escape the data
/// directory or clash on a case-insensitive file system stays out.
pub fn validate_campaign_id(id: &str) -> Result<(), StoreError> {
    let reject = |reason: String| {
        Err(StoreError::InvalidCampaignId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return reject("it is empty".to_string());
    }
    if id.len() > MAX_CAMPAIGN_ID_LEN {
        return reject(format!("it is longer than {MAX_CAMPAIGN_ID_LEN} bytes"));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(bad) => reject(format!(
            "{bad:?} is not allowed (use ASCII letters, digits, '-' and '_')"
        )),
        None => Ok(()),
    }
}

/// One world object: how to build it again and where it was.
///
/// `desc` is what `World::add_object` takes (its `position` is where the object was created);
/// `state` is the object at the saved tick (position, rotation, velocities, properties). A
/// restore builds the object from `desc` and then applies `state`. The terrain is an ordinary
/// object whose `desc.shape` is the (edited) heightfield, named by `environment.terrain_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Full description (kind, shape, mass, friction, restitution, properties).
    pub desc: ObjectDesc,
    /// State at the saved tick; `state.id` is the object's id.
    pub state: ObjectState,
}

impl ObjectRecord {
    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.state.id
    }

    /// Lists what makes this record unfit to store (empty when fine). Non-finite numbers matter
    /// most: JSON cannot carry them, so they would be written as `null` and make the campaign
    /// unloadable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let who = format!("object {}", self.state.id);
        let desc = &self.desc;
        let state = &self.state;
        if desc.kind != state.kind {
            problems.push(format!(
                "{who}: description kind {:?} differs from state kind {:?}",
                desc.kind, state.kind
            ));
        }
        check_finite(&mut problems, &who, "description position", &desc.position);
        check_rotation(&mut problems, &who, "description rotation", &desc.rotation);
        if let Some(mass) = desc.mass
            && !(mass.is_finite() && mass > 0.0)
        {
            problems.push(format!(
                "{who}: mass must be finite and positive, got {mass}"
            ));
        }
        if !(desc.friction.is_finite() && desc.friction >= 0.0) {
            problems.push(format!(
                "{who}: friction must be finite and >= 0, got {}",
                desc.friction
            ));
        }
        if !desc.restitution.is_finite() || desc.restitution < 0.0 {
            problems.push(format!(
                "{who}: restitution must be finite and >= 0, got {}",
                desc.restitution
            ));
        }
        shape_problems(&mut problems, &who, &desc.shape);
        check_finite(&mut problems, &who, "position", &state.position);
        check_rotation(&mut problems, &who, "rotation", &state.rotation);
        check_finite(&mut problems, &who, "velocity", &state.velocity);
        check_finite(
            &mut problems,
            &who,
            "angular velocity",
            &state.angular_velocity,
        );
        if let Some(shape) = &state.shape {
            shape_problems(&mut problems, &who, shape);
        }
        problems
    }
}

/// What the campaign remembers of a player between sessions, keyed by player name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayerRecord {
    /// Last position of the avatar.
    pub position: [f32; 3],
    /// Last rotation of the avatar (quaternion `[x, y, z, w]`).
    #[serde(default = "identity_rotation")]
    pub rotation: [f32; 4],
    /// Objects the player was holding, in pickup order.
    #[serde(default)]
    pub held_items: Vec<ObjectId>,
    /// Tick at which the player was last seen.
    #[serde(default)]
    pub last_seen_tick: Tick,
    /// Game-specific data (score, inventory, ...).
    #[serde(default)]
    pub properties: Properties,
}

impl PlayerRecord {
    /// A player standing at `position`, holding nothing.
    pub fn at(position: [f32; 3]) -> PlayerRecord {
        PlayerRecord {
            position,
            rotation: identity_rotation(),
            held_items: Vec::new(),
            last_seen_tick: 0,
            properties: Properties::new(),
        }
    }

    fn problems(&self, name: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let who = format!("player {name:?}");
        if name.is_empty() {
            problems.push("a player has an empty name".to_string());
        }
        check_finite(&mut problems, &who, "position", &self.position);
        check_rotation(&mut problems, &who, "rotation", &self.rotation);
        problems
    }
}

/// The whole persisted state of one campaign.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// The campaign's id (see [`validate_campaign_id`]).
    pub campaign_id: String,
    /// Simulation tick of this state.
    pub tick: Tick,
    /// Next object id the world will hand out; ids are never reused, so this is above every id
    /// in `objects` (and above ids of objects removed earlier).
    pub next_object_id: ObjectId,
    /// Weather, time of day, day length, terrain id and revision.
    pub environment: EnvironmentState,
    /// Every object (static, kinematic, dynamic, terrain), by id.
    #[serde(default)]
    pub objects: BTreeMap<ObjectId, ObjectRecord>,
    /// Players who have visited the campaign, by name.
    #[serde(default)]
    pub players: BTreeMap<String, PlayerRecord>,
    /// World-level data that is neither an object nor the environment (e.g. the simulation's
    /// random state or a game's score board). Opaque to the store.
    #[serde(default)]
    pub world: Properties,
}

impl CampaignRecord {
    /// An empty campaign at tick 0.
    pub fn new(campaign_id: impl Into<String>, environment: EnvironmentState) -> CampaignRecord {
        CampaignRecord {
            campaign_id: campaign_id.into(),
            tick: 0,
            next_object_id: 1,
            environment,
            objects: BTreeMap::new(),
            players: BTreeMap::new(),
            world: Properties::new(),
        }
    }

    /// Adds (or replaces) an object, keyed by `state.id`.
    pub fn insert_object(&mut self, desc: ObjectDesc, state: ObjectState) {
        self.objects.insert(state.id, ObjectRecord { desc, state });
    }

    /// Checks every invariant the store relies on; the error lists every problem found.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_campaign_id(&self.campaign_id)?;
        let mut problems = Vec::new();
        for (id, object) in &self.objects {
            if *id != object.state.id {
                problems.push(format!(
                    "object keyed {id} says its id is {}",
                    object.state.id
                ));
            }
            problems.extend(object.problems());
        }
        if let Some(max_id) = self.objects.keys().next_back()
            && self.next_object_id <= *max_id
        {
            problems.push(format!(
                "next_object_id {} is not above the largest object id {max_id} (ids would be reused)",
                self.next_object_id
            ));
        }
        problems.extend(environment_problems(&self.environment));
        if let Some(terrain) = self.environment.terrain_id {
            match self.objects.get(&terrain) {
                None => problems.push(format!("terrain object {terrain} does not exist")),
                Some(object) if !matches!(object.desc.shape, Shape::Heightfield { .. }) => {
                    problems.push(format!("terrain object {terrain} is not a heightfield"))
                }
                Some(_) => {}
            }
        }
        for (name, player) in &self.players {
            problems.extend(player.problems(name));
            for held in &player.held_items {
                if !self.objects.contains_key(held) {
                    problems.push(format!(
                        "player {name:?} holds object {held}, which does not exist"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::InvalidRecord {
                campaign: self.campaign_id.clone(),
                problems,
            })
        }
    }

    /// Applies a change in place, as the store does on disk.
    pub fn apply(&mut self, change: &CampaignChange) {
        self.tick = change.tick;
        self.next_object_id = change.next_object_id;
        if let Some(environment) = &change.environment {
            self.environment = environment.clone();
        }
        if let Some(world) = &change.world {
            self.world = world.clone();
        }
        for id in &change.removed_objects {
            self.objects.remove(id);
        }
        for (id, object) in &change.upserted_objects {
            self.objects.insert(*id, object.clone());
        }
        for name in &change.removed_players {
            self.players.remove(name);
        }
        for (name, player) in &change.upserted_players {
            self.players.insert(name.clone(), player.clone());
        }
    }

    /// Builds a record from a change that carries everything (the first save of a campaign).
    /// `None` when the change has no environment, i.e. it needs a base.
    pub fn from_full_change(campaign_id: &str, change: &CampaignChange) -> Option<CampaignRecord> {
        let environment = change.environment.clone()?;
        let mut record = CampaignRecord::new(campaign_id, environment);
        record.apply(change);
        Some(record)
    }
}

/// What changed in a campaign between two saves: written by the store in one transaction.
///
/// An object id is never both upserted and removed (the constructors and [`merge`] keep it so,
/// and the store rejects a change that breaks it).
///
/// [`merge`]: CampaignChange::merge
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignChange {
    /// Tick of the new state.
    pub tick: Tick,
    /// Next object id at the new state.
    pub next_object_id: ObjectId,
    /// New environment, `None` when unchanged.
    #[serde(default)]
    pub environment: Option<EnvironmentState>,
    /// New world-level data, `None` when unchanged.
    #[serde(default)]
    pub world: Option<Properties>,
    /// Objects added or changed.
    #[serde(default)]
    pub upserted_objects: BTreeMap<ObjectId, ObjectRecord>,
    /// Objects removed.
    #[serde(default)]
    pub removed_objects: BTreeSet<ObjectId>,
    /// Players added or changed.
    #[serde(default)]
    pub upserted_players: BTreeMap<String, PlayerRecord>,
    /// Players forgotten.
    #[serde(default)]
    pub removed_players: BTreeSet<String>,
}

impl CampaignChange {
    /// A change that only moves the tick and id counter; add rows to it.
    pub fn new(tick: Tick, next_object_id: ObjectId) -> CampaignChange {
        CampaignChange {
            tick,
            next_object_id,
            ..CampaignChange::default()
        }
    }

    /// What must be written to turn `previous` into `current` (everything when `previous` is
    /// `None`). Compares every object, so it runs on the saver thread, not the tick thread.
    pub fn between(previous: Option<&CampaignRecord>, current: &CampaignRecord) -> CampaignChange {
        let mut change = CampaignChange::new(current.tick, current.next_object_id);
        let Some(previous) = previous else {
            change.environment = Some(current.environment.clone());
            change.world = Some(current.world.clone());
            change.upserted_objects = current.objects.clone();
            change.upserted_players = current.players.clone();
            return change;
        };
        if previous.environment != current.environment {
            change.environment = Some(current.environment.clone());
        }
        if previous.world != current.world {
            change.world = Some(current.world.clone());
        }
        for (id, object) in &current.objects {
            if previous.objects.get(id) != Some(object) {
                change.upserted_objects.insert(*id, object.clone());
            }
        }
        change.removed_objects = previous
            .objects
            .keys()
            .filter(|id| !current.objects.contains_key(id))
            .copied()
            .collect();
        for (name, player) in &current.players {
            if previous.players.get(name) != Some(player) {
                change.upserted_players.insert(name.clone(), player.clone());
            }
        }
        change.removed_players = previous
            .players
            .keys()
            .filter(|name| !current.players.contains_key(*name))
            .cloned()
            .collect();
        change
    }

    /// Folds a later change into this one, so that applying the result equals applying both in
    /// order. This is how a saver that falls behind coalesces its backlog without losing a row.
    pub fn merge(&mut self, later: CampaignChange) {
        self.tick = later.tick;
        self.next_object_id = later.next_object_id;
        if later.environment.is_some() {
            self.environment = later.environment;
        }
        if later.world.is_some() {
            self.world = later.world;
        }
        for id in later.removed_objects {
            self.upserted_objects.remove(&id);
            self.removed_objects.insert(id);
        }
        for (id, object) in later.upserted_objects {
            self.removed_objects.remove(&id);
            self.upserted_objects.insert(id, object);
        }
        for name in later.removed_players {
            self.upserted_players.remove(&name);
            self.removed_players.insert(name);
        }
        for (name, player) in later.upserted_players {
            self.removed_players.remove(&name);
            self.upserted_players.insert(name, player);
        }
    }

    /// Number of object and player rows this change writes or deletes.
    pub fn row_count(&self) -> usize {
        self.upserted_objects.len()
            + self.removed_objects.len()
            + self.upserted_players.len()
            + self.removed_players.len()
    }

    /// True when the change writes no row and sets nothing but the tick and id counter.
    pub fn is_empty(&self) -> bool {
        self.row_count() == 0 && self.environment.is_none() && self.world.is_none()
    }

    /// Refuses a change that cannot be written to `campaign_id` (a bad id, invalid rows),
    /// before any backend touches its database.
    pub fn check_writable(&self, campaign_id: &str) -> Result<(), StoreError> {
        validate_campaign_id(campaign_id)?;
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::InvalidRecord {
                campaign: campaign_id.to_string(),
                problems,
            })
        }
    }

    /// Lists what makes this change unfit to store (empty when fine).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, object) in &self.upserted_objects {
            problems.extend(upserted_object_problems(
                *id,
                object,
                self.next_object_id,
                &self.removed_objects,
            ));
        }
        for (name, player) in &self.upserted_players {
            problems.extend(upserted_player_problems(
                name,
                player,
                &self.removed_players,
            ));
        }
        if let Some(environment) = &self.environment {
            problems.extend(environment_problems(environment));
        }
        problems
    }

    /// Removes the rows that cannot be stored and returns why, so that one broken object does
    /// not stop the rest of the campaign from being saved.
    pub fn take_invalid(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let next_object_id = self.next_object_id;
        let removed_objects = &self.removed_objects;
        self.upserted_objects.retain(|id, object| {
            let found = upserted_object_problems(*id, object, next_object_id, removed_objects);
            let keep = found.is_empty();
            problems.extend(found);
            keep
        });
        let removed_players = &self.removed_players;
        self.upserted_players.retain(|name, player| {
            let found = upserted_player_problems(name, player, removed_players);
            let keep = found.is_empty();
            problems.extend(found);
            keep
        });
        if let Some(environment) = &self.environment {
            let found = environment_problems(environment);
            if !found.is_empty() {
                problems.extend(found);
                self.environment = None;
            }
        }
        problems
    }
}

fn upserted_object_problems(
    id: ObjectId,
    object: &ObjectRecord,
    next_object_id: ObjectId,
    removed: &BTreeSet<ObjectId>,
) -> Vec<String> {
    let mut problems = object.problems();
    if id != object.state.id {
        problems.push(format!(
            "object keyed {id} says its id is {}",
            object.state.id
        ));
    }
    if id >= next_object_id {
        problems.push(format!(
            "object {id} is not below next_object_id {next_object_id} (ids would be reused)"
        ));
    }
    if removed.contains(&id) {
        problems.push(format!("object {id} is both upserted and removed"));
    }
    problems
}

fn upserted_player_problems(
    name: &str,
    player: &PlayerRecord,
    removed: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = player.problems(name);
    if removed.contains(name) {
        problems.push(format!("player {name:?} is both upserted and removed"));
    }
    problems
}

fn environment_problems(environment: &EnvironmentState) -> Vec<String> {
    let mut problems = Vec::new();
    let weather = &environment.weather;
    if !(weather.intensity.is_finite() && (0.0..=1.0).contains(&weather.intensity)) {
        problems.push(format!(
            "environment: weather intensity must be within 0..=1, got {}",
            weather.intensity
        ));
    }
    check_finite(&mut problems, "environment", "wind", &weather.wind);
    if !(weather.transition_remaining.is_finite() && weather.transition_remaining >= 0.0) {
        problems.push(format!(
            "environment: transition_remaining must be finite and >= 0, got {}",
            weather.transition_remaining
        ));
    }
    if !(environment.time_of_day.is_finite() && (0.0..=24.0).contains(&environment.time_of_day)) {
        problems.push(format!(
            "environment: time_of_day must be within 0..=24 hours, got {}",
            environment.time_of_day
        ));
    }
    if !(environment.day_length.is_finite() && environment.day_length > 0.0) {
        problems.push(format!(
            "environment: day_length must be finite and positive, got {}",
            environment.day_length
        ));
    }
    problems
}

fn check_finite(problems: &mut Vec<String>, who: &str, field: &str, values: &[f32]) {
    if values.iter().any(|v| !v.is_finite()) {
        problems.push(format!("{who}: {field} {values:?} is not finite"));
    }
}

fn check_rotation(problems: &mut Vec<String>, who: &str, field: &str, rotation: &[f32; 4]) {
    check_finite(problems, who, field, rotation);
    let norm_squared: f32 = rotation.iter().map(|c| c * c).sum();
    if norm_squared.is_finite() && norm_squared < 1e-6 {
        problems.push(format!(
            "{who}: {field} {rotation:?} is not a rotation (zero length)"
        ));
    }
}

fn shape_problems(problems: &mut Vec<String>, who: &str, shape: &Shape) {
    let positive = |v: f32| v.is_finite() && v > 0.0;
    match shape {
        Shape::Box { half_extents } => {
            if !half_extents.iter().all(|v| positive(*v)) {
                problems.push(format!(
                    "{who}: box half extents {half_extents:?} must be finite and positive"
                ));
            }
        }
        Shape::Sphere { radius } => {
            if !positive(*radius) {
                problems.push(format!(
                    "{who}: sphere radius {radius} must be finite and positive"
                ));
            }
        }
        Shape::Capsule {
            half_height,
            radius,
        }
        | Shape::Cylinder {
            half_height,
            radius,
        } => {
            if !(positive(*radius) && half_height.is_finite() && *half_height >= 0.0) {
                problems.push(format!(
                    "{who}: half height {half_height} and radius {radius} must be finite, radius positive"
                ));
            }
        }
        Shape::ConvexHull { points } => {
            if points.is_empty() {
                problems.push(format!("{who}: convex hull has no points"));
            }
            if points.iter().flatten().any(|v| !v.is_finite()) {
                problems.push(format!("{who}: convex hull has a non-finite point"));
            }
        }
        Shape::TriangleMesh { vertices, indices } => {
            if vertices.iter().flatten().any(|v| !v.is_finite()) {
                problems.push(format!("{who}: triangle mesh has a non-finite vertex"));
            }
            if let Some(bad) = indices
                .iter()
                .flatten()
                .find(|i| **i as usize >= vertices.len())
            {
                problems.push(format!(
                    "{who}: triangle mesh index {bad} is out of range ({} vertices)",
                    vertices.len()
                ));
            }
        }
        Shape::Heightfield {
            rows,
            cols,
            heights,
            size,
        } => {
            let expected = (*rows as u64) * (*cols as u64);
            if *rows < 2 || *cols < 2 || heights.len() as u64 != expected {
                problems.push(format!(
                    "{who}: heightfield of {rows} x {cols} needs at least 2 x 2 samples and {expected} heights, has {}",
                    heights.len()
                ));
            }
            if heights.iter().any(|h| !h.is_finite()) {
                problems.push(format!("{who}: heightfield has a non-finite height"));
            }
            if !size.iter().all(|v| positive(*v)) {
                problems.push(format!(
                    "{who}: heightfield size {size:?} must be finite and positive"
                ));
            }
        }
    }
}
