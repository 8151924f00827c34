//! Save and restore: the whole simulation state as a serde value, for rollback (a predicting
//! client restores an older tick and replays its inputs) and for persistence (the store writes
//! it as JSON).
//!
//! How it works: rapier's internal state (bodies, colliders, contacts with their warm-start
//! impulses, islands, broad phase) is serialised with bincode, which rapier tests for
//! byte-identical continuation, and carried as base64 text; everything of ours is plain serde
//! data. Floats survive JSON exactly (shortest round-trip formatting), so save → JSON → restore →
//! step gives the same bits as stepping the original. Host callbacks (interaction handlers, the
//! veto) are not data: [`World::restore_from`] keeps the current ones.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rapier3d::prelude::PhysicsWorld;
use serde::{Deserialize, Serialize};

use crate::command::InteractionRequest;
use crate::config::WorldConfig;
use crate::environment::Environment;
use crate::error::SimError;
use crate::input::InputQueue;
use crate::objects::ObjectRecord;
use crate::particles::ParticleSystem;
use crate::state::{ClientId, ObjectId, Tick};
use crate::tracking::ChangeLog;
use crate::world::{Player, World};

/// Version of the save layout; bumped when it changes incompatibly.
pub const SAVE_FORMAT: u32 = 1;

/// A complete, restorable world state (serde: JSON-friendly).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorldSave {
    /// Layout version ([`SAVE_FORMAT`]).
    pub format: u32,
    /// Tick of the saved state.
    pub tick: Tick,
    /// Configuration of the saved world.
    pub config: WorldConfig,
    /// Rapier's state, bincode then base64.
    physics: String,
    next_id: ObjectId,
    objects: BTreeMap<ObjectId, ObjectRecord>,
    players: BTreeMap<ClientId, Player>,
    inputs: BTreeMap<ClientId, crate::input::InputQueue>,
    admins: BTreeSet<ClientId>,
    pending_interactions: Vec<(ClientId, InteractionRequest)>,
    environment: Environment,
    particles: ParticleSystem,
    changes: ChangeLog,
}

impl WorldSave {
    /// Serialises to JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a world save is always representable as JSON")
    }

    /// Parses JSON text produced by [`WorldSave::to_json`].
    pub fn from_json(text: &str) -> Result<WorldSave, SimError> {
        serde_json::from_str(text)
            .map_err(|e| SimError::new("invalid_save", format!("not a world save: {e}")))
    }
}

impl World {
    /// Captures the whole simulation state.
    pub fn save(&self) -> WorldSave {
        let physics = bincode::serialize(&self.physics).expect("rapier's state always serialises");
        WorldSave {
            format: SAVE_FORMAT,
            tick: self.tick,
            config: self.config.clone(),
            physics: BASE64.encode(physics),
            next_id: self.next_id,
            objects: self.objects.clone(),
            players: self.players.clone(),
            inputs: self.inputs.clone(),
            admins: self.admins.clone(),
            pending_interactions: self.pending_interactions.clone(),
            environment: self.env.clone(),
            particles: self.particles.clone(),
            changes: self.changes.clone(),
        }
    }

    /// Builds a world from a save (without host callbacks; register them again).
    pub fn restore(save: &WorldSave) -> Result<World, SimError> {
        let mut world = World::new(save.config.clone());
        world.restore_from(save)?;
        Ok(world)
    }

    /// Replaces this world's state with a save, keeping the registered interaction handlers and
    /// veto (what a rolling-back client wants). Pending events are discarded. On error the world
    /// is unchanged.
    pub fn restore_from(&mut self, save: &WorldSave) -> Result<(), SimError> {
        if save.format != SAVE_FORMAT {
            return Err(SimError::new(
                "invalid_save",
                format!(
                    "save format {} is not supported (expected {SAVE_FORMAT})",
                    save.format
                ),
            ));
        }
        let bytes = BASE64
            .decode(&save.physics)
            .map_err(|e| SimError::new("invalid_save", format!("physics is not base64: {e}")))?;
        let physics: PhysicsWorld = bincode::deserialize(&bytes)
            .map_err(|e| SimError::new("invalid_save", format!("physics state is corrupt: {e}")))?;
        for record in save.objects.values() {
            if physics.bodies.get(record.body).is_none()
                || physics.colliders.get(record.collider).is_none()
            {
                return Err(SimError::new(
                    "invalid_save",
                    format!("object {} has no body in the physics state", record.id),
                ));
            }
        }
        for (client, player) in &save.players {
            if !save.objects.contains_key(&player.avatar) {
                return Err(SimError::new(
                    "invalid_save",
                    format!("client {client}'s avatar {} is missing", player.avatar),
                ));
            }
        }
        save.particles.validate()?;
        self.config = save.config.clone();
        self.tick = save.tick;
        self.physics = physics;
        self.next_id = save.next_id;
        self.objects = save.objects.clone();
        self.players = save.players.clone();
        self.inputs = save
            .inputs
            .iter()
            .map(|(c, q)| (*c, InputQueue::clone(q)))
            .collect();
        self.admins = save.admins.clone();
        self.pending_interactions = save.pending_interactions.clone();
        self.env = save.environment.clone();
        self.particles = save.particles.clone();
        self.changes = save.changes.clone();
        self.events.clear();
        self.rebuild_derived();
        Ok(())
    }
}
