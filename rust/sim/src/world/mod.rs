//! The world: rapier bodies with stable object ids, players, the fixed tick.
//!
//! How a tick ([`World::step`]) runs, in this order (the order is part of determinism):
//! 1. player inputs, client by client (by id), each input one movement step of the avatar, then
//!    the held objects follow their holders;
//! 2. queued interaction requests, in arrival order;
//! 3. environment: weather transition, time of day, wind on light awake bodies;
//! 4. the physics step (rapier);
//! 5. particles;
//! 6. change tracking and the interest grid, from rapier's awake set only (sleeping bodies cost
//!    nothing), then the tick number advances.
//!
//! Changes made between steps (objects added, impulses, edits) are stamped with the *next* tick:
//! they are part of the state that the next step produces, so a client whose baseline is the
//! current tick never misses them.

use std::collections::{BTreeMap, BTreeSet};

use rapier3d::control::CharacterCollision;
use rapier3d::prelude::{
    ColliderBuilder, ColliderHandle, PhysicsWorld, QueryFilter, RigidBodyBuilder, RigidBodyHandle,
    RigidBodyType, Vector,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::{InteractionRequest, PlayerInput};
use crate::config::WorldConfig;
use crate::environment::Environment;
use crate::error::{InputRejection, SimError};
use crate::event::WorldEvent;
use crate::input::{InputQueue, InputStats};
use crate::movement::{self, CharacterState};
use crate::objects::{self, ObjectRecord};
use crate::particles::ParticleSystem;
use crate::state::{
    BodyKind, ClientId, ObjectDesc, ObjectId, ObjectState, PhysicsInfo, Properties, Shape, Tick,
    WorldState,
};
use crate::tracking::{ChangeLog, InterestGrid};

// The systems of the world: each adds its `impl World` part and only reaches up to `World`.
mod environment;
mod interaction;
mod particles;

/// Interaction requests one client may have waiting for the next tick.
pub const MAX_PENDING_INTERACTIONS: usize = 32;

/// Largest object id [`World::restore_object`] accepts. Ids index dense per-object tables (about
/// 40 bytes per id up to the largest), so a larger id in a saved campaign is taken for damage
/// rather than allocated for.
pub const MAX_OBJECT_ID: ObjectId = 1 << 24;

/// How a restored object starts out: its exact saved rotation and motion.
pub(crate) struct StartMotion {
    /// Used as is (already unit length): renormalising would change the last bits.
    pub rotation: [f32; 4],
    pub linvel: [f32; 3],
    pub angvel: [f32; 3],
}

/// A connected client's avatar and what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Player {
    pub name: String,
    pub avatar: ObjectId,
    pub character: CharacterState,
    pub held: Option<ObjectId>,
}

/// The authoritative world. Pure: no I/O, no threads of its own (physics and particles use
/// rayon's pool of the calling thread), no clocks except the snapshot timestamp.
pub struct World {
    pub(crate) config: WorldConfig,
    pub(crate) tick: Tick,
    /// The host's wall-clock time (Unix seconds) for state timestamps: the simulation never reads
    /// a clock itself, so it runs the same in WebAssembly and replays deterministically.
    pub(crate) wall_clock: f64,
    pub(crate) physics: PhysicsWorld,
    pub(crate) objects: BTreeMap<ObjectId, ObjectRecord>,
    pub(crate) next_id: ObjectId,
    pub(crate) players: BTreeMap<ClientId, Player>,
    pub(crate) inputs: BTreeMap<ClientId, InputQueue>,
    pub(crate) admins: BTreeSet<ClientId>,
    pub(crate) pending_interactions: Vec<(ClientId, InteractionRequest)>,
    pub(crate) env: Environment,
    pub(crate) particles: ParticleSystem,
    pub(crate) changes: ChangeLog,
    pub(crate) grid: InterestGrid,
    pub(crate) events: Vec<WorldEvent>,
    pub(crate) hooks: Hooks,
    /// Indexed by object id: the tick at which it was last seen awake (for fall-asleep updates).
    awake_mark: Vec<Tick>,
    awake_last: Vec<ObjectId>,
    awake_scratch: Vec<ObjectId>,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("tick", &self.tick)
            .field("objects", &self.objects.len())
            .field("players", &self.players.len())
            .field("awake", &self.physics.islands.num_active_bodies())
            .field("particles", &self.particles.live_count())
            .finish_non_exhaustive()
    }
}

// The host callbacks live here, with the world they get: a handler closes over `World`, and
// `World` owns the handlers, so apart they would depend on each other.

/// What a handler (or a built-in interaction) answers.
#[derive(Clone, Debug, PartialEq)]
pub struct InteractionReply {
    /// Whether the interaction happened.
    pub success: bool,
    /// Stable snake_case reason (`ok` on success).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Extra data for the client.
    pub data: Map<String, Value>,
}

impl InteractionReply {
    /// A success with data.
    pub fn ok(data: Map<String, Value>) -> Self {
        InteractionReply {
            success: true,
            code: "ok".into(),
            message: String::new(),
            data,
        }
    }

    /// A failure with a reason code and message.
    pub fn fail(code: impl Into<String>, message: impl Into<String>) -> Self {
        InteractionReply {
            success: false,
            code: code.into(),
            message: message.into(),
            data: Map::new(),
        }
    }
}

/// A host-registered interaction kind. It runs inside the tick with full access to the world
/// (it may add objects, apply impulses, ...) and answers with a reply.
pub type InteractionHandler =
    Box<dyn FnMut(&mut World, ClientId, &InteractionRequest) -> InteractionReply + Send + Sync>;

/// The host's last word on a request that passed the authority's checks: `Some(reason)` vetoes
/// it (code `vetoed`, the reason as message).
pub type InteractionVeto =
    Box<dyn FnMut(&World, ClientId, &InteractionRequest) -> Option<String> + Send + Sync>;

/// Host callbacks. Not saved: a restored world gets them again from its host (rollback keeps
/// them, see [`World::restore_from`]).
#[derive(Default)]
pub(crate) struct Hooks {
    handlers: BTreeMap<String, InteractionHandler>,
    veto: Option<InteractionVeto>,
}

/// Spawn spots tried around the spawn point before giving up (about a 75 m radius).
const MAX_SPAWN_CANDIDATES: u32 = 4096;

impl World {
    /// Creates an empty world (no ground: add one, or a terrain).
    pub fn new(config: WorldConfig) -> World {
        let mut physics = PhysicsWorld::new();
        physics.gravity = Vector::from_array(config.gravity);
        physics.integration_parameters.dt = config.dt();
        let env = Environment::new(&config.environment);
        let grid = InterestGrid::new(config.interest_cell_size);
        let particles = ParticleSystem::new(config.particles.clone());
        World {
            config,
            tick: 0,
            wall_clock: 0.0,
            physics,
            objects: BTreeMap::new(),
            next_id: 1,
            players: BTreeMap::new(),
            inputs: BTreeMap::new(),
            admins: BTreeSet::new(),
            pending_interactions: Vec::new(),
            env,
            particles,
            changes: ChangeLog::default(),
            grid,
            events: Vec::new(),
            hooks: Hooks::default(),
            awake_mark: Vec::new(),
            awake_last: Vec::new(),
            awake_scratch: Vec::new(),
        }
    }

    /// The configuration the world runs with.
    pub fn config(&self) -> &WorldConfig {
        &self.config
    }

    /// The current tick (0 before the first step).
    pub fn tick(&self) -> Tick {
        self.tick
    }

    /// Length of one tick in seconds.
    pub fn dt(&self) -> f32 {
        self.config.dt()
    }

    /// The tick that changes made now belong to (see the module docs).
    pub(crate) fn stamp(&self) -> Tick {
        self.tick + 1
    }

    /// Advances the world by one fixed tick.
    pub fn step(&mut self) {
        let next = self.stamp();
        self.process_inputs(next);
        self.process_interactions();
        self.step_environment();
        self.apply_wind();
        self.physics.step();
        self.step_particles(next);
        self.track_awake_bodies(next);
        self.tick = next;
    }

    // ── Objects ─────────────────────────────────────────────────────────

    /// Adds an object; returns its id (stable, never reused). Emits `ObjectAdded`.
    pub fn add_object(&mut self, desc: ObjectDesc) -> Result<ObjectId, SimError> {
        self.insert_object(desc, None, false)
    }

    pub(crate) fn insert_object(
        &mut self,
        desc: ObjectDesc,
        owner: Option<ClientId>,
        environment: bool,
    ) -> Result<ObjectId, SimError> {
        let id = self.next_id;
        self.insert_object_as(id, desc, owner, environment, None)?;
        Ok(id)
    }

    /// Inserts an object under `id`, which the caller has checked is free and valid, starting
    /// at rest or as `start` says. Moves the id counter past `id`.
    pub(crate) fn insert_object_as(
        &mut self,
        id: ObjectId,
        desc: ObjectDesc,
        owner: Option<ClientId>,
        environment: bool,
        start: Option<StartMotion>,
    ) -> Result<(), SimError> {
        let mut prepared = objects::prepare(&desc, id)?;
        if let Some(start) = start {
            prepared.body = prepared
                .body
                .pose(rapier3d::prelude::Pose::from_parts(
                    Vector::from_array(desc.position),
                    rapier3d::prelude::Rotation::from_array(start.rotation),
                ))
                .linvel(Vector::from_array(start.linvel))
                .angvel(Vector::from_array(start.angvel));
        }
        let body = self.physics.bodies.insert(prepared.body);
        let collider = self.physics.colliders.insert_with_parent(
            prepared.collider,
            body,
            &mut self.physics.bodies,
        );
        let mass = if desc.kind == BodyKind::Dynamic {
            self.physics.bodies[body].mass()
        } else {
            0.0
        };
        self.next_id = self.next_id.max(id + 1);
        let record = ObjectRecord {
            id,
            kind: desc.kind,
            shape: desc.shape,
            body,
            collider,
            properties: desc.properties,
            environment,
            owner,
            held_by: None,
            bounding_radius: prepared.bounding_radius,
            mass,
        };
        let is_terrain =
            matches!(record.shape, Shape::Heightfield { .. }) && desc.kind == BodyKind::Static;
        self.objects.insert(id, record);
        if is_terrain && self.env.terrain_id.is_none() {
            self.env.terrain_id = Some(id);
        }
        self.env
            .on_object_added(id, desc.kind, mass, &self.config.environment);
        if desc.kind == BodyKind::Static {
            self.particles.invalidate_terrain();
        }
        self.grid
            .update(id, desc.position, prepared.bounding_radius);
        self.changes.touch(id, self.stamp());
        let object = self
            .object_state_with_shape(id, true)
            .expect("just inserted");
        self.events.push(WorldEvent::ObjectAdded {
            object,
            environment,
        });
        Ok(())
    }

    /// Removes an object (an avatar is removed with [`World::remove_player`]). Emits
    /// `ObjectRemoved` with reason `removed`.
    pub fn remove_object(&mut self, id: ObjectId) -> Result<(), SimError> {
        self.remove_object_with_reason(id, "removed")
    }

    pub(crate) fn remove_object_with_reason(
        &mut self,
        id: ObjectId,
        reason: &str,
    ) -> Result<(), SimError> {
        let record = self
            .objects
            .get(&id)
            .ok_or_else(|| SimError::unknown_object(id))?;
        if record.kind == BodyKind::Player {
            return Err(SimError::new(
                "is_avatar",
                format!("object {id} is a player's avatar: remove the player instead"),
            ));
        }
        // A held object leaves its holder's hands first.
        if let Some(holder) = record.held_by
            && let Some(player) = self.players.get_mut(&holder)
        {
            player.held = None;
        }
        self.discard_object(id, reason);
        Ok(())
    }

    /// Removes an object unconditionally (players included).
    fn discard_object(&mut self, id: ObjectId, reason: &str) {
        let Some(record) = self.objects.remove(&id) else {
            return;
        };
        self.physics.remove_body(record.body);
        if record.kind == BodyKind::Static {
            self.particles.invalidate_terrain();
        }
        if self.env.terrain_id == Some(id) {
            self.env.terrain_id = None;
        }
        self.env.on_object_removed(id);
        self.grid.remove(id);
        if record.kind == BodyKind::Player {
            self.changes.remove_avatar(id, self.stamp());
        } else {
            self.changes.remove(id, self.stamp());
        }
        self.events.push(WorldEvent::ObjectRemoved {
            id,
            reason: reason.to_string(),
        });
    }

    /// Applies an impulse (N·s) at the centre of mass of a dynamic object, waking it.
    pub fn apply_impulse(&mut self, id: ObjectId, impulse: [f32; 3]) -> Result<(), SimError> {
        let record = self
            .objects
            .get(&id)
            .ok_or_else(|| SimError::unknown_object(id))?;
        if !impulse.iter().all(|c| c.is_finite()) {
            return Err(SimError::new(
                "non_finite",
                format!("impulse must be finite, got {impulse:?}"),
            ));
        }
        let body = &mut self.physics.bodies[record.body];
        if !body.is_dynamic() {
            return Err(SimError::new(
                "not_dynamic",
                format!("object {id} is not a dynamic body"),
            ));
        }
        body.apply_impulse(Vector::from_array(impulse), true);
        let stamp = self.stamp();
        self.changes.touch(id, stamp);
        Ok(())
    }

    /// Replaces an object's properties (emits no event of its own: the object shows up in
    /// `changed_since`).
    pub fn set_properties(&mut self, id: ObjectId, properties: Properties) -> Result<(), SimError> {
        let stamp = self.stamp();
        let record = self
            .objects
            .get_mut(&id)
            .ok_or_else(|| SimError::unknown_object(id))?;
        record.properties = properties;
        self.changes.touch(id, stamp);
        Ok(())
    }

    /// Teleports a dynamic, kinematic or static object (not an avatar: they move by input).
    pub fn set_object_pose(
        &mut self,
        id: ObjectId,
        position: [f32; 3],
        rotation: [f32; 4],
    ) -> Result<(), SimError> {
        objects::check_position(position)?;
        let rotation = objects::normalized_rotation(rotation)?;
        let stamp = self.stamp();
        let record = self
            .objects
            .get(&id)
            .ok_or_else(|| SimError::unknown_object(id))?;
        if record.kind == BodyKind::Player {
            return Err(SimError::new(
                "is_avatar",
                format!("object {id} is an avatar; avatars move only by their client's input"),
            ));
        }
        let pose = rapier3d::prelude::Pose::from_parts(
            Vector::from_array(position),
            rapier3d::prelude::Rotation::from_array(rotation),
        );
        let radius = record.bounding_radius;
        let is_static = record.kind == BodyKind::Static;
        self.physics.bodies[record.body].set_position(pose, true);
        if is_static {
            self.particles.invalidate_terrain();
        }
        self.grid.update(id, position, radius);
        self.changes.touch(id, stamp);
        Ok(())
    }

    /// Sets where a kinematic object will be at the end of the next step. Unlike a teleport it
    /// moves with a velocity, so it pushes the dynamic bodies in its way (platforms, doors).
    pub fn move_kinematic(
        &mut self,
        id: ObjectId,
        position: [f32; 3],
        rotation: [f32; 4],
    ) -> Result<(), SimError> {
        objects::check_position(position)?;
        let rotation = objects::normalized_rotation(rotation)?;
        let record = self
            .objects
            .get(&id)
            .ok_or_else(|| SimError::unknown_object(id))?;
        if record.kind != BodyKind::Kinematic || record.held_by.is_some() {
            return Err(SimError::new(
                "not_kinematic",
                format!("object {id} is not a free kinematic body"),
            ));
        }
        self.physics.bodies[record.body].set_next_kinematic_position(
            rapier3d::prelude::Pose::from_parts(
                Vector::from_array(position),
                rapier3d::prelude::Rotation::from_array(rotation),
            ),
        );
        Ok(())
    }

    /// Number of objects (avatars included).
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Ids of all objects, ascending.
    pub fn object_ids(&self) -> Vec<ObjectId> {
        self.objects.keys().copied().collect()
    }

    /// The state of one object, without its shape.
    pub fn object_state(&self, id: ObjectId) -> Option<ObjectState> {
        self.object_state_with_shape(id, false)
    }

    /// The state of one object, with its shape when `with_shape`.
    pub fn object_state_with_shape(&self, id: ObjectId, with_shape: bool) -> Option<ObjectState> {
        let record = self.objects.get(&id)?;
        let body = self.physics.bodies.get(record.body)?;
        Some(ObjectState {
            id,
            kind: record.kind,
            position: body.translation().to_array(),
            rotation: body.rotation().to_array(),
            velocity: body.linvel().to_array(),
            angular_velocity: body.angvel().to_array(),
            sleeping: body.is_sleeping(),
            shape: with_shape.then(|| record.shape.clone()),
            properties: record.properties.clone(),
        })
    }

    /// Position and rotation (quaternion x, y, z, w) of one object: what a scene node needs each
    /// frame, without cloning the object's properties as [`World::object_state`] does.
    pub fn object_pose(&self, id: ObjectId) -> Option<([f32; 3], [f32; 4])> {
        let record = self.objects.get(&id)?;
        let body = self.physics.bodies.get(record.body)?;
        Some((body.translation().to_array(), body.rotation().to_array()))
    }

    /// The owner of an object (its builder, or the client of an avatar).
    pub fn owner_of(&self, id: ObjectId) -> Option<ClientId> {
        self.objects.get(&id).and_then(|r| r.owner)
    }

    /// The client holding an object.
    pub fn holder_of(&self, id: ObjectId) -> Option<ClientId> {
        self.objects.get(&id).and_then(|r| r.held_by)
    }

    // ── Players ─────────────────────────────────────────────────────────

    /// Creates the avatar of `client_id` (one per client) at `position`, or near the configured
    /// spawn point at the first place where the capsule fits.
    pub fn spawn_player(
        &mut self,
        client_id: ClientId,
        name: &str,
        position: Option<[f32; 3]>,
    ) -> Result<ObjectId, SimError> {
        if self.players.contains_key(&client_id) {
            return Err(SimError::new(
                "already_spawned",
                format!("client {client_id} already has an avatar"),
            ));
        }
        let position = match position {
            Some(p) => {
                objects::check_position(p)?;
                p
            }
            None => self.free_spawn_position(),
        };
        let settings = &self.config.movement;
        let id = self.next_id;
        let body = RigidBodyBuilder::kinematic_position_based()
            .translation(Vector::from_array(position))
            .user_data(id as u128);
        let collider =
            ColliderBuilder::capsule_y(settings.capsule_half_height, settings.capsule_radius)
                .user_data(id as u128);
        let body = self.physics.bodies.insert(body);
        let collider =
            self.physics
                .colliders
                .insert_with_parent(collider, body, &mut self.physics.bodies);
        self.next_id += 1;
        let mut properties = Properties::new();
        properties.insert("name".into(), name.into());
        properties.insert("client_id".into(), client_id.into());
        let shape = Shape::Capsule {
            half_height: settings.capsule_half_height,
            radius: settings.capsule_radius,
        };
        let radius = settings.capsule_half_height + settings.capsule_radius;
        self.objects.insert(
            id,
            ObjectRecord {
                id,
                kind: BodyKind::Player,
                shape,
                body,
                collider,
                properties,
                environment: false,
                owner: Some(client_id),
                held_by: None,
                bounding_radius: radius,
                mass: 0.0,
            },
        );
        self.players.insert(
            client_id,
            Player {
                name: name.to_string(),
                avatar: id,
                character: CharacterState::new(position),
                held: None,
            },
        );
        self.inputs.insert(client_id, InputQueue::new(self.tick));
        self.grid.update(id, position, radius);
        self.changes.touch(id, self.stamp());
        let object = self
            .object_state_with_shape(id, true)
            .expect("just inserted");
        self.events.push(WorldEvent::ObjectAdded {
            object,
            environment: false,
        });
        Ok(id)
    }

    fn free_spawn_position(&self) -> [f32; 3] {
        let base = self.config.spawn_point;
        let settings = &self.config.movement;
        let capsule = settings.capsule();
        let query = self.physics.query_pipeline();
        let clearance = settings.capsule_half_height + settings.capsule_radius + 0.05;
        let spacing = 2.0 * settings.capsule_radius + 0.1;
        // Avatars added since the last step are not in the broad phase yet: a grid of every
        // avatar's position (cells of `spacing`) answers "is one near?" without a scan per
        // candidate, so a thousand players joining at once still cost little each.
        let cell = |x: f32, z: f32| ((x / spacing).floor() as i32, (z / spacing).floor() as i32);
        let mut avatars: BTreeMap<(i32, i32), Vec<[f32; 3]>> = BTreeMap::new();
        for other in self.players.values() {
            let q = other.character.position;
            avatars.entry(cell(q[0], q[2])).or_default().push(q);
        }
        let near_avatar = |p: [f32; 3]| {
            let (cx, cz) = cell(p[0], p[2]);
            (cx - 1..=cx + 1).any(|x| {
                (cz - 1..=cz + 1).any(|z| {
                    avatars.get(&(x, z)).is_some_and(|list| {
                        list.iter().any(|q| {
                            let d2 = (p[0] - q[0]).powi(2) + (p[2] - q[2]).powi(2);
                            (p[1] - q[1]).abs() < 2.0 * clearance && d2 < spacing * spacing
                        })
                    })
                })
            })
        };
        // Golden-angle spiral: candidates spread evenly, the same order every time; enough of
        // them for thousands of players around one spawn point.
        for i in 0..MAX_SPAWN_CANDIDATES {
            let r = 1.2 * (i as f32).sqrt();
            let a = i as f32 * 2.399_963;
            let (x, z) = (base[0] + r * a.cos(), base[2] + r * a.sin());
            // Never inside the terrain (the shape query below does not see heightfields).
            let y = match self.terrain_height(x, z) {
                Some(ground) => base[1].max(ground + clearance),
                None => base[1],
            };
            let p = [x, y, z];
            if near_avatar(p) {
                continue;
            }
            let pose = rapier3d::prelude::Pose::from_translation(Vector::from_array(p));
            if query.intersect_shape(pose, &capsule).next().is_none() {
                return p;
            }
        }
        base
    }

    /// Removes a client's avatar; what it held is dropped where it is. No-op for an unknown
    /// client.
    pub fn remove_player(&mut self, client_id: ClientId) {
        let Some(player) = self.players.remove(&client_id) else {
            return;
        };
        self.inputs.remove(&client_id);
        self.admins.remove(&client_id);
        self.pending_interactions.retain(|(c, _)| *c != client_id);
        if let Some(held) = player.held {
            self.release_held(held, None);
        }
        self.discard_object(player.avatar, "player_left");
    }

    /// The avatar of a client.
    pub fn avatar_of(&self, client_id: ClientId) -> Option<ObjectId> {
        self.players.get(&client_id).map(|p| p.avatar)
    }

    /// The movement state of a client's avatar (what a predicting client compares against).
    pub fn character_of(&self, client_id: ClientId) -> Option<CharacterState> {
        self.players.get(&client_id).map(|p| p.character)
    }

    /// The object a client holds.
    pub fn held_by(&self, client_id: ClientId) -> Option<ObjectId> {
        self.players.get(&client_id).and_then(|p| p.held)
    }

    /// Clients with an avatar, ascending.
    pub fn clients(&self) -> Vec<ClientId> {
        self.players.keys().copied().collect()
    }

    /// Grants or revokes the admin role (may destroy anything, see interactions).
    pub fn set_admin(&mut self, client_id: ClientId, admin: bool) {
        if admin {
            self.admins.insert(client_id);
        } else {
            self.admins.remove(&client_id);
        }
    }

    /// Whether a client has the admin role.
    pub fn is_admin(&self, client_id: ClientId) -> bool {
        self.admins.contains(&client_id)
    }

    // ── Inputs ──────────────────────────────────────────────────────────

    /// Queues a batch of inputs for the client's own avatar; returns those refused (see
    /// [`crate::input`] for the rules). Duplicates and stale inputs are ignored, not refused.
    pub fn queue_inputs(
        &mut self,
        client_id: ClientId,
        inputs: &[PlayerInput],
    ) -> Vec<InputRejection> {
        let Some(queue) = self.inputs.get_mut(&client_id) else {
            return inputs
                .iter()
                .map(|i| InputRejection {
                    seq: i.seq,
                    code: "no_avatar".into(),
                    message: format!("client {client_id} has no avatar to drive"),
                })
                .collect();
        };
        queue.push_batch(inputs, self.tick, &self.config.input)
    }

    /// Sequence number of the last input applied for a client (the prediction acknowledgement).
    pub fn last_processed_input(&self, client_id: ClientId) -> Option<u32> {
        self.inputs.get(&client_id)?.last_processed()
    }

    /// Applied inputs with a sequence number above `seq` (up to the last 60), oldest first.
    pub fn inputs_since(&self, client_id: ClientId, seq: u32) -> Vec<PlayerInput> {
        self.inputs
            .get(&client_id)
            .map(|q| q.since(seq))
            .unwrap_or_default()
    }

    /// Counters of a client's input queue.
    pub fn input_stats(&self, client_id: ClientId) -> Option<InputStats> {
        self.inputs.get(&client_id).map(|q| q.stats)
    }

    /// Inputs waiting in a client's queue.
    pub fn pending_input_count(&self, client_id: ClientId) -> usize {
        self.inputs
            .get(&client_id)
            .map(|q| q.pending_len())
            .unwrap_or(0)
    }

    fn process_inputs(&mut self, next: Tick) {
        let dt = self.dt();
        // 1. Which inputs each avatar applies this tick (a still one for an idle avatar, so it
        //    keeps falling and settling).
        let mut moves: Vec<AvatarMoves> = Vec::with_capacity(self.players.len());
        // Players and queues are both in client order: walked alongside, not looked up (a
        // thousand lookups in maps a thousand long are a good part of a tick's serial time).
        let mut queues = self.inputs.iter_mut().peekable();
        for (&client, player) in &self.players {
            let Some(queue) = entry_of(&mut queues, client) else {
                continue;
            };
            let mut inputs = queue.take_due(next, &self.config.input);
            let processed = inputs.len();
            if inputs.is_empty()
                && next.saturating_sub(queue.last_input_tick) > self.config.input.idle_after_ticks
            {
                inputs.push(PlayerInput {
                    seq: 0,
                    tick: None,
                    movement: [0.0, 0.0],
                    look: player.character.look,
                    jump: false,
                    run: false,
                });
            }
            let Some(avatar) = self.objects.get(&player.avatar) else {
                continue;
            };
            moves.push(AvatarMoves {
                client,
                body: avatar.body,
                held: player
                    .held
                    .and_then(|h| self.objects.get(&h))
                    .map(|r| r.collider),
                start: player.character,
                inputs,
                processed,
                steps: Vec::new(),
            });
        }
        // 2. The movement itself. Avatars move against the colliders as they were at the start
        //    of the tick (their new poses take effect in the physics step), so each avatar's
        //    steps depend on nothing another avatar does this tick: with many avatars they run
        //    in parallel, and give the same result as one after the other.
        let settings = &self.config.movement;
        let gravity_y = self.config.gravity[1];
        let physics = &self.physics;
        let move_one = |moves: &mut AvatarMoves| {
            with_avatar_filter(moves.body, moves.held, |filter| {
                let query = physics.broad_phase.as_query_pipeline(
                    physics.narrow_phase.query_dispatcher(),
                    &physics.bodies,
                    &physics.colliders,
                    filter,
                );
                let mut state = moves.start;
                for input in &moves.inputs {
                    let mut collisions = Vec::new();
                    state = movement::step_character(
                        settings,
                        gravity_y,
                        dt,
                        &state,
                        input,
                        &query,
                        &mut collisions,
                    );
                    moves.steps.push((state, collisions));
                }
            });
        };
        if moves.len() >= PARALLEL_AVATARS {
            // The calling thread moves avatars too, taking chunks alongside the pool's threads:
            // the tick starts at once and does not wait for a busy machine to wake a thread up
            // before each part of the work, only for chunks already taken.
            let chunks = std::sync::Mutex::new(moves.chunks_mut(AVATAR_CHUNK));
            let take = || chunks.lock().unwrap_or_else(|e| e.into_inner()).next();
            let work = || {
                while let Some(chunk) = take() {
                    chunk.iter_mut().for_each(move_one);
                }
            };
            rayon::in_place_scope(|scope| {
                for _ in 1..rayon::current_num_threads() {
                    scope.spawn(|_| work());
                }
                work();
            });
        } else {
            moves.iter_mut().for_each(move_one);
        }
        // 3. Their effects, in client order: pushes on dynamic bodies, the final pose, acks,
        //    held objects.
        let mut players = self.players.iter_mut().peekable();
        let mut queues = self.inputs.iter_mut().peekable();
        let mut holders = Vec::new();
        for moves in moves {
            let AvatarMoves {
                client,
                body,
                held,
                inputs,
                processed,
                steps,
                ..
            } = moves;
            let mut last = None;
            for (state, collisions) in steps {
                if !collisions.is_empty() {
                    with_avatar_filter(body, held, |filter| {
                        let mut query = self.physics.broad_phase.as_query_pipeline_mut(
                            self.physics.narrow_phase.query_dispatcher(),
                            &mut self.physics.bodies,
                            &mut self.physics.colliders,
                            filter,
                        );
                        movement::push_bodies(&self.config.movement, dt, &mut query, &collisions);
                    });
                }
                last = Some(state);
            }
            let mut player = entry_of(&mut players, client);
            if let Some(state) = last {
                self.physics.bodies[body].set_next_kinematic_position(
                    rapier3d::prelude::Pose::from_parts(
                        Vector::from_array(state.position),
                        rapier3d::prelude::Rotation::from_array(state.rotation()),
                    ),
                );
                if let Some(player) = player.as_mut() {
                    player.character = state;
                }
            }
            if player.is_some_and(|p| p.held.is_some()) {
                holders.push(client);
            }
            if let Some(queue) = entry_of(&mut queues, client) {
                for input in inputs.into_iter().take(processed) {
                    queue.mark_processed(input, next, self.config.input.history);
                }
            }
        }
        for client in holders {
            self.follow_holder(client);
        }
    }

    /// Moves the object a client holds to the hold point in front of its avatar.
    fn follow_holder(&mut self, client: ClientId) {
        let Some(player) = self.players.get(&client) else {
            return;
        };
        let Some(held) = player.held else {
            return;
        };
        let Some(record) = self.objects.get(&held) else {
            return;
        };
        let point = self.hold_point(&player.character);
        self.physics.bodies[record.body].set_next_kinematic_translation(point);
    }

    pub(crate) fn hold_point(&self, character: &CharacterState) -> Vector {
        let forward = character.forward();
        Vector::from_array(character.position)
            + forward * self.config.interaction.hold_distance
            + Vector::Y * (self.config.movement.capsule_half_height * 0.5)
    }

    /// Lets go of a held object: it becomes dynamic again with `velocity` (or its holder's).
    pub(crate) fn release_held(&mut self, id: ObjectId, velocity: Option<Vector>) {
        let stamp = self.stamp();
        let Some(record) = self.objects.get_mut(&id) else {
            return;
        };
        let holder_velocity = record
            .held_by
            .and_then(|c| self.players.get(&c))
            .map(|p| Vector::from_array(p.character.velocity))
            .unwrap_or(Vector::ZERO);
        if let Some(holder) = record.held_by.take()
            && let Some(player) = self.players.get_mut(&holder)
            && player.held == Some(id)
        {
            player.held = None;
        }
        record.properties.remove("held_by");
        let body = &mut self.physics.bodies[record.body];
        body.set_body_type(RigidBodyType::Dynamic, true);
        body.set_linvel(velocity.unwrap_or(holder_velocity), true);
        body.set_angvel(Vector::ZERO, true);
        self.changes.touch(id, stamp);
    }

    // ── Interactions entry ──────────────────────────────────────────────

    /// Queues an interaction; it is validated and applied in the next step, and its result
    /// arrives as a `WorldEvent::InteractionResult`.
    /// A client with [`MAX_PENDING_INTERACTIONS`] requests already waiting gets an immediate
    /// `too_many_requests` result instead (a flood cannot grow the queue without bound).
    pub fn request_interaction(&mut self, client_id: ClientId, req: InteractionRequest) {
        let waiting = self
            .pending_interactions
            .iter()
            .filter(|(c, _)| *c == client_id)
            .count();
        if waiting >= MAX_PENDING_INTERACTIONS {
            self.events.push(WorldEvent::InteractionResult(
                crate::event::InteractionResult {
                    client_id,
                    request_id: req.request_id,
                    kind: req.kind,
                    success: false,
                    code: "too_many_requests".into(),
                    message: format!(
                        "{MAX_PENDING_INTERACTIONS} interaction requests are already waiting"
                    ),
                    target: req.target,
                    data: Default::default(),
                },
            ));
            return;
        }
        self.pending_interactions.push((client_id, req));
    }

    // ── State ───────────────────────────────────────────────────────────

    /// Tells the world the host's wall-clock time (Unix seconds), stamped on the states it takes
    /// from now on. Hosts call it each tick; a non-finite or negative time is ignored.
    pub fn set_wall_clock(&mut self, unix_seconds: f64) {
        if unix_seconds.is_finite() && unix_seconds >= 0.0 {
            self.wall_clock = unix_seconds;
        }
    }

    /// The full state of the world (with shapes when `with_shapes`, for welcomes), stamped with
    /// the last time given to [`World::set_wall_clock`] (0 before the first).
    pub fn snapshot(&self, with_shapes: bool) -> WorldState {
        WorldState {
            timestamp: self.wall_clock,
            tick: self.tick,
            objects: self
                .objects
                .keys()
                .filter_map(|id| self.object_state_with_shape(*id, with_shapes))
                .collect(),
            physics: self.physics_info(),
            environment: self.environment_state(),
        }
    }

    /// Global physics facts.
    pub fn physics_info(&self) -> PhysicsInfo {
        PhysicsInfo {
            gravity: self.config.gravity,
            tick_rate: self.config.tick_rate,
            body_count: self.objects.len() as u32,
            awake_count: self.physics.islands.num_active_bodies() as u32,
        }
    }

    /// Objects that changed after `tick` (moved, woke, fell asleep, were edited or added),
    /// ordered by change tick. Cost proportional to the changes, not to the world.
    pub fn changed_since(&self, tick: Tick) -> Vec<ObjectId> {
        self.changes.changed_since(tick)
    }

    /// Objects removed after `tick` (remembered for one minute of ticks).
    pub fn removed_since(&self, tick: Tick) -> Vec<ObjectId> {
        self.changes.removed_since(tick)
    }

    /// The tick of an object's latest change.
    pub fn last_changed(&self, id: ObjectId) -> Option<Tick> {
        self.changes.last_changed(id)
    }

    /// Objects whose bounding sphere reaches within `radius` of `center`, ascending ids.
    /// Uses the interest grid: cost proportional to the cells covered, not to the world.
    pub fn objects_within(&self, center: [f32; 3], radius: f32) -> Vec<ObjectId> {
        self.grid.within(center, radius)
    }

    /// Events since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<WorldEvent> {
        std::mem::take(&mut self.events)
    }

    /// Marks every body rapier simulated this step (and those that just fell asleep) as changed
    /// and moves them in the interest grid.
    fn track_awake_bodies(&mut self, next: Tick) {
        // Hot loop (every awake body, every tick): dense tables only, no map lookups.
        let mut awake = std::mem::take(&mut self.awake_scratch);
        awake.clear();
        for handle in self.physics.islands.active_bodies() {
            let body = &self.physics.bodies[handle];
            let id = body.user_data as ObjectId;
            awake.push(id);
            let index = id as usize;
            if index >= self.awake_mark.len() {
                self.awake_mark.resize(index + 1, Tick::MAX);
            }
            self.awake_mark[index] = next;
            self.changes.touch(id, next);
            self.grid.move_to(id, body.translation().to_array());
        }
        for &id in &self.awake_last {
            if self.awake_mark.get(id as usize) != Some(&next)
                && let Some(record) = self.objects.get(&id)
            {
                // Fell asleep (or stopped) this step: one last update with its resting pose.
                let position = self.physics.bodies[record.body].translation().to_array();
                self.changes.touch(id, next);
                self.grid.move_to(id, position);
            }
        }
        self.awake_scratch = std::mem::replace(&mut self.awake_last, awake);
    }

    /// Rebuilds the derived structures (interest grid, awake marks) from the objects, after a
    /// restore.
    pub(crate) fn rebuild_derived(&mut self) {
        self.grid = InterestGrid::new(self.config.interest_cell_size);
        for (id, record) in &self.objects {
            let position = self.physics.bodies[record.body].translation().to_array();
            self.grid.update(*id, position, record.bounding_radius);
        }
        self.awake_mark.clear();
        self.awake_last = self
            .physics
            .islands
            .active_bodies()
            .map(|h| self.physics.bodies[h].user_data as ObjectId)
            .collect();
        self.particles.invalidate_terrain();
    }

    pub(crate) fn body_handle(&self, id: ObjectId) -> Option<RigidBodyHandle> {
        self.objects.get(&id).map(|r| r.body)
    }
}

/// The value under `key` in a map's ascending iterator, skipping the smaller keys (for walking
/// two maps with the same keys alongside).
fn entry_of<'a, K: Ord + 'a, V>(
    entries: &mut std::iter::Peekable<impl Iterator<Item = (&'a K, V)>>,
    key: K,
) -> Option<V> {
    while entries.next_if(|(k, _)| **k < key).is_some() {}
    entries.next_if(|(k, _)| **k == key).map(|(_, v)| v)
}

/// Runs `query` with the filter of an avatar's movement: everything but its own body, sensors
/// and the object it holds.
fn with_avatar_filter<R>(
    body: RigidBodyHandle,
    held: Option<ColliderHandle>,
    query: impl FnOnce(QueryFilter) -> R,
) -> R {
    let skip_held =
        move |handle: ColliderHandle, _: &rapier3d::prelude::Collider| Some(handle) != held;
    query(
        QueryFilter::default()
            .exclude_rigid_body(body)
            .exclude_sensors()
            .predicate(&skip_held),
    )
}

/// From this many avatars on, their movement runs on rayon's pool as well.
const PARALLEL_AVATARS: usize = 32;

/// Avatars moved per chunk (a few tens of microseconds of work).
const AVATAR_CHUNK: usize = 16;

/// One avatar's movement in a tick: the inputs it applies and, once moved, the state and
/// collisions after each.
struct AvatarMoves {
    client: ClientId,
    body: RigidBodyHandle,
    held: Option<ColliderHandle>,
    start: CharacterState,
    inputs: Vec<PlayerInput>,
    /// How many of `inputs` come from the client's queue (the rest is an idle step).
    processed: usize,
    steps: Vec<(CharacterState, Vec<CharacterCollision>)>,
}
