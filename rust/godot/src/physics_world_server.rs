use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use godot::classes::{Engine, INode3D, Node, Node3D, Os, ProjectSettings};
use godot::prelude::*;
use nexus_gateway::{
    ActionRequest, CampaignHost, CampaignHostConfig, LeaseHealth, PersistenceHealth,
};
use nexus_sim::state::{ObjectDesc, ObjectId, Tick};
use nexus_sim::{World, WorldConfig, WorldEvent};
use nexus_store::world_bridge::{change_since, player_records, record_from_world, restore_world};
use nexus_store::{
    CampaignRecord, LeaseStatus, PostgresOptions, PostgresStore, Saver, SaverConfig, SaverEvent,
    StoreError,
};

use crate::convert::{array_to_quat, array_to_vec3, from_dictionary, to_variant, vec3_to_array};
use crate::environment_manager::EnvironmentManager;
use crate::failure;
use crate::interaction_system::InteractionSystem;
use crate::networked_body::NetworkedBody;
use crate::nexus_gateway::NexusGateway;
use crate::particle_field::ParticleField;
use crate::world_access::WorldAccess;

/// Where the world runs: served through a gateway, or on its own (tests, tools, single player).
enum Runner {
    Hosted(Box<CampaignHost>),
    Offline(Box<World>),
}

impl Runner {
    fn world(&self) -> &World {
        match self {
            Runner::Hosted(host) => host.world(),
            Runner::Offline(world) => world,
        }
    }

    fn world_mut(&mut self) -> &mut World {
        match self {
            Runner::Hosted(host) => host.world_mut(),
            Runner::Offline(world) => world,
        }
    }
}

/// Owns one campaign's authoritative physics world and steps it at a fixed tick.
///
/// At start it builds the world from its `NetworkedBody` descendants (and its `EnvironmentManager`,
/// `InteractionSystem` and `ParticleField` children), opens its campaign on the `gateway` (when
/// set) and then, every physics frame, runs the fixed ticks due: client events in, `World::step`,
/// events and state out. `NetworkedBody` nodes follow their objects. Signals are emitted after the
/// tick (deferred), so handlers may call back into the world.
#[derive(GodotClass)]
#[class(init, tool, base = Node3D)]
pub struct PhysicsWorldServer {
    /// The campaign (world) clients join with `metadata.campaign_id`.
    #[export]
    #[init(val = GString::from("0"))]
    campaign_id: GString,
    /// Fixed simulation ticks per second.
    #[export(range = (1.0, 240.0, 1.0, suffix = "Hz"))]
    #[init(val = 60)]
    tick_rate: i32,
    /// State messages per second sent to clients (at most the tick rate).
    #[export(range = (1.0, 60.0, 1.0, suffix = "Hz"))]
    #[init(val = 20)]
    snapshot_rate: i32,
    /// Gravity in m/s².
    #[export]
    #[init(val = Vector3::new(0.0, -9.81, 0.0))]
    gravity: Vector3,
    /// Seed of every random choice in the world (particles, gusts): equal seeds replay equally.
    #[export]
    #[init(val = 1)]
    seed: i64,
    /// Where avatars of joining clients appear.
    #[export]
    #[init(val = Vector3::new(0.0, 2.0, 0.0))]
    spawn_point: Vector3,
    /// The gateway that serves this campaign's clients. Without one the world refuses to start,
    /// unless `offline` is on.
    #[export]
    #[var(set = set_gateway)]
    gateway: Option<Gd<NexusGateway>>,
    /// Run without a gateway (tools, tests, single player): no client can join.
    #[export]
    #[var(set = set_offline)]
    offline: bool,
    /// In a headless server, quit with exit code 1 when the world cannot start (no gateway, a
    /// store that cannot be opened), so the failed start is seen instead of a world nobody can join.
    #[export]
    #[init(val = true)]
    quit_on_failure: bool,
    /// Start the world when the node is ready (outside the editor).
    #[export]
    #[init(val = true)]
    autostart: bool,
    /// Where the campaign is persisted (SQLite, one file per campaign; `user://` paths work).
    /// Empty: the world is not persisted. A stored campaign is loaded at start instead of the
    /// scene's initial state.
    #[export(global_dir)]
    #[export_group(name = "Persistence")]
    data_dir: GString,
    /// PostgreSQL database shared by the servers of a cluster
    /// (`postgres://user[:password]@host[:port]/name`); when set it replaces `data_dir`. The
    /// campaign is then held through a lease that this server renews: another server takes it
    /// over if this one dies, and this world pauses when the lease cannot be renewed in time
    /// (the database unreachable), resuming when it can. `--database=URL` on the command line or
    /// the `NEXUS_DATABASE_URL` environment variable set it too.
    #[export]
    database_url: GString,
    /// Seconds between incremental saves (what a crash may lose at most).
    #[export(range = (0.1, 300.0, 0.1, or_greater, suffix = "s"))]
    #[init(val = 1.0)]
    save_interval: f32,
    /// Let `--data-dir=DIR` and `--database=URL` after `--` on the command line (and
    /// `NEXUS_DATABASE_URL`) override `data_dir` and `database_url`.
    #[export]
    #[init(val = true)]
    allow_command_line: bool,
    persistence: Option<Persistence>,
    runner: Option<Runner>,
    start_error: String,
    accumulator: f64,
    bodies: HashMap<ObjectId, Gd<NetworkedBody>>,
    environment: Option<Gd<EnvironmentManager>>,
    interactions: Option<Gd<InteractionSystem>>,
    synced_tick: Tick,
    stats: TickWindow,
    base: Base<Node3D>,
}

/// The campaign's saver and how far the world has been handed to it.
struct Persistence {
    saver: Saver,
    submitted_tick: Tick,
    /// Failed saves in a row: an outage (full or read-only disk) is logged when it starts, now
    /// and then while it lasts, and when saving resumes, not once a second.
    failing_streak: u64,
    /// The lease as last reported to the gateway (cluster stores only).
    reported_lease: Option<LeaseHealth>,
}

/// While saves keep failing, one log line per this many attempts (about a minute).
const SAVE_FAILURE_LOG_EVERY: u64 = 60;

/// Tick durations over the last second, for the `tick_stats` signal.
#[derive(Default)]
struct TickWindow {
    ticks: u32,
    total_usec: u64,
    max_usec: u64,
}

/// Property naming the scene node an object came from (path relative to its world server).
const SCENE_NODE: &str = "scene_node";

/// Most fixed ticks run in one frame; a slower machine drops time instead of spiralling.
const MAX_TICKS_PER_FRAME: u32 = 8;

#[godot_api]
impl INode3D for PhysicsWorldServer {
    fn ready(&mut self) {
        if self.autostart && !Engine::singleton().is_editor_hint() && !self.start() {
            let message = format!(
                "PhysicsWorldServer {}: the world did not start (the reason is above)",
                self.base().get_path()
            );
            failure::cannot_serve(
                &self.base().clone().upcast(),
                &message,
                self.quit_on_failure,
            );
        }
    }

    fn get_configuration_warnings(&self) -> PackedStringArray {
        self.check_configuration()
    }

    fn physics_process(&mut self, delta: f64) {
        if self.runner.is_none() {
            return;
        }
        if !self.lease_allows_simulation() {
            // Time does not pass for a paused world: it resumes where it stopped.
            self.accumulator = 0.0;
            self.submit_save(false);
            return;
        }
        let dt = 1.0 / f64::from(self.tick_rate.max(1));
        self.accumulator += delta;
        let mut ran = 0;
        while self.accumulator >= dt && ran < MAX_TICKS_PER_FRAME {
            self.accumulator -= dt;
            self.tick_once();
            ran += 1;
        }
        if ran == MAX_TICKS_PER_FRAME {
            self.accumulator = 0.0;
        }
        self.submit_save(false);
        self.sync_bodies();
    }

    fn exit_tree(&mut self) {
        self.stop();
    }
}

#[godot_api]
impl PhysicsWorldServer {
    /// A client joined: its id, its name and the id of the avatar it drives.
    #[signal]
    fn client_joined(client_id: i64, name: GString, avatar_id: i64);
    /// A client left (its avatar is gone and what it held was dropped).
    #[signal]
    fn client_left(client_id: i64);
    /// An object appeared (its full state, with the shape).
    #[signal]
    fn object_added(object_id: i64, state: VarDictionary);
    /// An object was removed, and why.
    #[signal]
    fn object_removed(object_id: i64, reason: GString);
    /// An interaction finished (success or failure with a reason `code`).
    #[signal]
    fn interaction_completed(result: VarDictionary);
    /// Once per second: the tick, mean and max tick time (µs) over the second, objects, clients.
    #[signal]
    fn tick_stats(tick: i64, mean_usec: i64, max_usec: i64, objects: i64, clients: i64);
    /// A save of the campaign completed: its tick and the rows it wrote.
    #[signal]
    fn world_saved(tick: i64, rows: i64);
    /// The world was loaded from the store at start: its tick and object count.
    #[signal]
    fn world_loaded(tick: i64, objects: i64);
    /// A save failed (it is retried at the next interval).
    #[signal]
    fn save_failed(code: GString, message: GString);
    /// A client sent a `physics:action:v1:requested` the world does not interpret itself.
    #[signal]
    fn action_received(client_id: i64, action: VarDictionary);
    /// The world stopped or started simulating because its cluster lease could not be renewed
    /// in time, or could again (`paused` true or false), with the reason.
    #[signal]
    fn simulation_paused(paused: bool, reason: GString);
    /// The campaign's cluster lease is gone (another server took the campaign): the world has
    /// stopped and its campaign is closed here.
    #[signal]
    fn campaign_lost(reason: GString);

    /// Builds the world and starts serving. Called at ready when `autostart` is on.
    #[func]
    pub fn start(&mut self) -> bool {
        if self.runner.is_some() {
            return true;
        }
        self.start_error.clear();
        if self.gateway.is_none() && !self.offline {
            let message = self.missing_gateway_message();
            return self.refuse_start(message);
        }
        let config = WorldConfig {
            tick_rate: self.tick_rate.clamp(1, 240) as u32,
            gravity: vec3_to_array(self.gravity),
            seed: self.seed as u64,
            spawn_point: vec3_to_array(self.spawn_point),
            ..WorldConfig::default()
        };
        let campaign = self.campaign_id.to_string();
        let (persistence, loaded) = match self.open_store(&campaign) {
            Ok(Some((saver, loaded))) => (
                Some(Persistence {
                    saver,
                    submitted_tick: 0,
                    failing_streak: 0,
                    reported_lease: None,
                }),
                loaded,
            ),
            Ok(None) => (None, None),
            Err(error) => {
                // Running without the campaign's saved state would overwrite it: refuse.
                return self.refuse_start(format!(
                    "PhysicsWorldServer {campaign}: cannot open the campaign store: {error}"
                ));
            }
        };
        let mut returning = BTreeMap::new();
        let mut world = match &loaded {
            Some(record) => match restore_world(record, config) {
                Ok(mut world) => {
                    // Restored objects are the initial state, not news.
                    world.drain_events();
                    self.configure_children(&mut world, false);
                    self.bind_restored_bodies(&world);
                    returning = record
                        .players
                        .iter()
                        .map(|(name, player)| (name.clone(), player.position))
                        .collect();
                    world
                }
                Err(error) => {
                    return self.refuse_start(format!(
                        "PhysicsWorldServer {campaign}: the stored campaign cannot be restored: {error}"
                    ));
                }
            },
            None => {
                let mut world = World::new(config);
                self.configure_children(&mut world, true);
                self.add_scene_bodies(&mut world);
                world
            }
        };
        let mut persistence = persistence;
        if let Some(persistence) = persistence.as_mut() {
            persistence.submitted_tick = world.tick();
            if loaded.is_none()
                && let Err(error) = persistence.saver.submit_snapshot(record_from_world(
                    &campaign,
                    &world,
                    &BTreeMap::new(),
                ))
            {
                godot_error!("PhysicsWorldServer {campaign}: the first save failed: {error}");
            }
        }
        if let Some(record) = &loaded {
            let args = [
                (record.tick as i64).to_variant(),
                (world.object_count() as i64).to_variant(),
            ];
            self.defer_emit("world_loaded", &args);
            godot_print!(
                "PhysicsWorldServer {campaign}: loaded tick {} with {} objects from the store",
                record.tick,
                world.object_count()
            );
        }
        world.drain_events();
        world.set_wall_clock(nexus_gateway::auth::unix_now_f64());
        let runner = match self.gateway.clone() {
            Some(mut gateway) => match gateway.bind_mut().open_campaign(&campaign) {
                Ok(link) => {
                    let host_config = CampaignHostConfig {
                        state_rate: self.snapshot_rate.clamp(1, 60) as u32,
                        spawn_position: None,
                        ..CampaignHostConfig::default()
                    };
                    godot_print!("PhysicsWorldServer {campaign}: campaign open, clients may join");
                    let mut host = CampaignHost::new(world, link, host_config);
                    host.set_returning_players(returning);
                    // Starts collecting joins, leaves and events for the signals.
                    host.take_notices();
                    Runner::Hosted(Box::new(host))
                }
                Err(error) => {
                    return self.refuse_start(format!(
                        "PhysicsWorldServer {campaign}: cannot open the campaign on the gateway: {error}"
                    ));
                }
            },
            None => Runner::Offline(Box::new(world)),
        };
        self.synced_tick = runner.world().tick();
        self.runner = Some(runner);
        self.persistence = persistence;
        self.accumulator = 0.0;
        true
    }

    /// Stops the world and closes the campaign on the gateway.
    #[func]
    pub fn stop(&mut self) {
        self.submit_save(true);
        if let Some(persistence) = self.persistence.take() {
            // A clean shutdown: the final save completes before the node goes.
            match persistence.saver.shutdown() {
                Ok(status) => godot_print!(
                    "PhysicsWorldServer {}: saved at tick {} on shutdown",
                    self.campaign_id,
                    status.last_saved_tick.unwrap_or_default()
                ),
                Err(error) => godot_error!(
                    "PhysicsWorldServer {}: the final save failed: {error}",
                    self.campaign_id
                ),
            }
        }
        self.runner = None;
        for (_, mut body) in self.bodies.drain() {
            if body.is_instance_valid() {
                body.bind_mut().bind_object(None);
            }
        }
    }

    #[func]
    fn set_gateway(&mut self, gateway: Option<Gd<NexusGateway>>) {
        self.gateway = gateway;
        // The editor shows the configuration warning again only when told.
        self.base_mut().update_configuration_warnings();
    }

    #[func]
    fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
        self.base_mut().update_configuration_warnings();
    }

    /// What would keep this world from serving clients, as the editor shows it beside the node
    /// (empty when nothing does).
    #[func]
    pub fn check_configuration(&self) -> PackedStringArray {
        let mut problems = PackedStringArray::new();
        if self.gateway.is_none() && !self.offline {
            problems.push(
                "No gateway: set `gateway` to a NexusGateway node, or turn `offline` on to run \
                 without clients. As it is, the world refuses to start.",
            );
        }
        problems
    }

    /// Why the last `start()` failed ("" when it did not).
    #[func]
    pub fn get_start_error(&self) -> GString {
        self.start_error.as_str().into()
    }

    /// Whether the world is running.
    #[func]
    pub fn is_running(&self) -> bool {
        self.runner.is_some()
    }

    /// The world's current tick.
    #[func]
    pub fn get_tick(&self) -> i64 {
        self.runner.as_ref().map_or(0, |r| r.world().tick() as i64)
    }

    /// Runs `count` fixed ticks now (for tools and tests; the node ticks by itself while processing).
    #[func]
    pub fn step_ticks(&mut self, count: i64) {
        for _ in 0..count.max(0) {
            if self.runner.is_none() {
                break;
            }
            self.tick_once();
        }
        self.sync_bodies();
    }

    /// Adds an object from a description Dictionary (`kind`, `shape`, `position`, `rotation`,
    /// `mass`, `friction`, `restitution`, `properties`; see PROTOCOL.md). Returns its id, or -1
    /// with an error printed.
    #[func]
    pub fn spawn_object(&mut self, description: VarDictionary) -> i64 {
        let desc: ObjectDesc = match from_dictionary(&description) {
            Ok(desc) => desc,
            Err(error) => {
                godot_error!("PhysicsWorldServer.spawn_object: invalid description: {error}");
                return -1;
            }
        };
        match self.with_world(|world| world.add_object(desc)) {
            Some(Ok(id)) => i64::from(id),
            Some(Err(error)) => {
                godot_error!("PhysicsWorldServer.spawn_object: {error}");
                -1
            }
            None => -1,
        }
    }

    /// Removes an object; false when there is no such object.
    #[func]
    pub fn remove_object(&mut self, object_id: i64) -> bool {
        let Ok(id) = ObjectId::try_from(object_id) else {
            return false;
        };
        matches!(
            self.with_world(|world| world.remove_object(id)),
            Some(Ok(()))
        )
    }

    /// Applies an impulse (N·s) to a dynamic object; false when that is not possible.
    #[func]
    pub fn apply_impulse(&mut self, object_id: i64, impulse: Vector3) -> bool {
        let Ok(id) = ObjectId::try_from(object_id) else {
            return false;
        };
        matches!(
            self.with_world(|world| world.apply_impulse(id, vec3_to_array(impulse))),
            Some(Ok(()))
        )
    }

    /// An object's state (`id`, `kind`, `position`, `rotation`, `velocity`, `angular_velocity`,
    /// `properties`, ...), or an empty Dictionary when there is no such object.
    #[func]
    pub fn get_object_state(&self, object_id: i64) -> VarDictionary {
        let Ok(id) = ObjectId::try_from(object_id) else {
            return VarDictionary::new();
        };
        self.runner
            .as_ref()
            .and_then(|r| r.world().object_state_with_shape(id, true))
            .map_or_else(VarDictionary::new, |state| to_variant(&state).to())
    }

    /// An object's position, or `Vector3.ZERO` when there is no such object.
    #[func]
    pub fn get_object_position(&self, object_id: i64) -> Vector3 {
        let Ok(id) = ObjectId::try_from(object_id) else {
            return Vector3::ZERO;
        };
        self.runner
            .as_ref()
            .and_then(|r| r.world().object_state(id))
            .map_or(Vector3::ZERO, |s| array_to_vec3(s.position))
    }

    /// The full world state as the design describes it: `timestamp`, `tick`, `objects`,
    /// `physics`, `environment`.
    #[func]
    pub fn get_world_state(&self, with_shapes: bool) -> VarDictionary {
        self.runner.as_ref().map_or_else(VarDictionary::new, |r| {
            to_variant(&r.world().snapshot(with_shapes)).to()
        })
    }

    /// Ids of the objects within `radius` of `center`.
    #[func]
    pub fn get_objects_within(&self, center: Vector3, radius: f32) -> PackedInt64Array {
        let ids = self
            .runner
            .as_ref()
            .map(|r| r.world().objects_within(vec3_to_array(center), radius))
            .unwrap_or_default();
        ids.into_iter().map(i64::from).collect()
    }

    /// Number of objects in the world.
    #[func]
    pub fn get_object_count(&self) -> i64 {
        self.runner
            .as_ref()
            .map_or(0, |r| r.world().object_count() as i64)
    }

    /// Adds a player driven from this process (an NPC, a local player, a test) with client id
    /// `client_id` (use ids at or above 1,000,000,000 to stay clear of the gateway's). Returns its
    /// avatar's object id, or -1.
    #[func]
    pub fn add_local_player(&mut self, client_id: i64, name: GString) -> i64 {
        let Ok(client) = u32::try_from(client_id) else {
            godot_error!(
                "PhysicsWorldServer.add_local_player: client id {client_id} is out of range"
            );
            return -1;
        };
        let spawn = Some(vec3_to_array(self.spawn_point));
        match self.with_world(|world| world.spawn_player(client, &name.to_string(), spawn)) {
            Some(Ok(avatar)) => i64::from(avatar),
            Some(Err(error)) => {
                godot_error!("PhysicsWorldServer.add_local_player: {error}");
                -1
            }
            None => -1,
        }
    }

    /// Removes a local player (what it held is dropped).
    #[func]
    pub fn remove_local_player(&mut self, client_id: i64) {
        if let Ok(client) = u32::try_from(client_id) {
            self.with_world(|world| world.remove_player(client));
        }
    }

    /// Queues movement inputs (`seq`, `movement`, `look`, `jump`, `run`; see PROTOCOL.md) for a
    /// local player. Returns the rejected ones as `{seq, code, message}` Dictionaries.
    #[func]
    pub fn queue_local_input(&mut self, client_id: i64, input: VarDictionary) -> VarArray {
        let mut rejected = VarArray::new();
        let Ok(client) = u32::try_from(client_id) else {
            return rejected;
        };
        let input: nexus_sim::PlayerInput = match from_dictionary(&input) {
            Ok(input) => input,
            Err(error) => {
                godot_error!("PhysicsWorldServer.queue_local_input: invalid input: {error}");
                return rejected;
            }
        };
        for rejection in self
            .with_world(|world| world.queue_inputs(client, &[input]))
            .unwrap_or_default()
        {
            rejected.push(&to_variant(&rejection));
        }
        rejected
    }

    /// Requests an interaction for a local player (`kind` — `pickup`, `drop`, `use`, `build`,
    /// `destroy` or a registered name — `target`, `request_id`, `args`, `build`);
    /// the outcome arrives with `interaction_completed`.
    #[func]
    pub fn request_local_interaction(&mut self, client_id: i64, request: VarDictionary) -> bool {
        let Ok(client) = u32::try_from(client_id) else {
            return false;
        };
        match crate::interaction_system::request_from_dictionary(&request) {
            Ok(request) => self
                .with_world(|world| world.request_interaction(client, request))
                .is_some(),
            Err(error) => {
                godot_error!(
                    "PhysicsWorldServer.request_local_interaction: invalid request: {error}"
                );
                false
            }
        }
    }

    /// Saves the campaign now and waits (up to 10 s) until it is on disk; false without
    /// persistence or on failure.
    #[func]
    pub fn save_now(&mut self) -> bool {
        self.submit_save(true);
        let Some(persistence) = self.persistence.as_mut() else {
            return false;
        };
        match persistence.saver.flush(Duration::from_secs(10)) {
            Ok(status) => status.last_error.is_none(),
            Err(error) => {
                godot_error!("PhysicsWorldServer.save_now: {error}");
                false
            }
        }
    }

    /// Persistence figures: `enabled`, `saves`, `failures`, `last_saved_tick`, `last_error`.
    #[func]
    pub fn get_persistence_status(&self) -> VarDictionary {
        let mut dict = VarDictionary::new();
        dict.set("enabled", self.persistence.is_some());
        if let Some(persistence) = &self.persistence {
            let status = persistence.saver.status();
            dict.set("saves", status.saves as i64);
            dict.set("failures", status.failures as i64);
            dict.set(
                "last_saved_tick",
                status.last_saved_tick.map_or(-1, |t| t as i64),
            );
            dict.set("last_error", status.last_error.unwrap_or_default().as_str());
        }
        dict
    }

    /// Ids of the clients in the campaign.
    #[func]
    pub fn get_clients(&self) -> PackedInt64Array {
        match &self.runner {
            Some(Runner::Hosted(host)) => host.clients().into_iter().map(i64::from).collect(),
            _ => PackedInt64Array::new(),
        }
    }
}

#[godot_dyn]
impl WorldAccess for PhysicsWorldServer {
    fn running_world(&self) -> Option<&World> {
        self.world()
    }

    fn running_world_mut(&mut self) -> Option<&mut World> {
        if self.runner.is_none() {
            godot_error!(
                "PhysicsWorldServer {}: the world is not running (call start())",
                self.campaign_id
            );
        }
        self.runner.as_mut().map(Runner::world_mut)
    }
}

impl PhysicsWorldServer {
    /// Reports why the world does not start; `start()` returns the false this gives.
    fn refuse_start(&mut self, message: String) -> bool {
        godot_error!("{message}");
        self.start_error = message;
        false
    }

    /// Why a world without a gateway cannot serve, naming the scene's gateway path when the scene
    /// set one that does not resolve to a `NexusGateway`.
    fn missing_gateway_message(&self) -> String {
        let path = self.base().get_path();
        match self.gateway_path_in_scene() {
            Some(gateway) => format!(
                "PhysicsWorldServer {path}: its gateway path {gateway} does not lead to a NexusGateway \
                 node (nothing there, or a node of another class): fix `gateway` in the scene"
            ),
            None => format!(
                "PhysicsWorldServer {path}: no gateway is set, so no client could join: set `gateway` \
                 to a NexusGateway node, or turn `offline` on to run the world without clients"
            ),
        }
    }

    /// The `gateway` NodePath the scene file gives this node, if it gives one. A path that does not
    /// resolve leaves the property empty at load; the scene's own state still has it.
    fn gateway_path_in_scene(&self) -> Option<String> {
        let base = self.base();
        let owner = base.get_owner()?;
        let file = owner.get_scene_file_path();
        if file.is_empty() {
            return None;
        }
        let scene = godot::tools::try_load::<PackedScene>(&file).ok()?;
        let state = scene.get_state()?;
        // The scene state writes child paths as "./World", the tree as "World".
        let relative = |path: NodePath| path.to_string().trim_start_matches("./").to_string();
        let own_path = relative(owner.get_path_to(&*base));
        for node in 0..state.get_node_count() {
            if relative(state.get_node_path(node)) != own_path {
                continue;
            }
            for property in 0..state.get_node_property_count(node) {
                if state.get_node_property_name(node, property) == "gateway" {
                    let value = state.get_node_property_value(node, property);
                    return Some(value.to_string());
                }
            }
        }
        None
    }

    /// Runs `f` on the world, or reports that the world is not running.
    pub fn with_world<R>(&mut self, f: impl FnOnce(&mut World) -> R) -> Option<R> {
        self.running_world_mut().map(f)
    }

    /// Reads the world, when it runs.
    pub fn world(&self) -> Option<&World> {
        self.runner.as_ref().map(Runner::world)
    }

    /// The cluster database (property, `--database=` or `NEXUS_DATABASE_URL`), or `None`.
    fn database(&self) -> Option<String> {
        let mut url = self.database_url.to_string();
        if self.allow_command_line {
            if let Ok(value) = std::env::var("NEXUS_DATABASE_URL")
                && !value.is_empty()
            {
                url = value;
            }
            for arg in Os::singleton().get_cmdline_user_args().as_slice() {
                if let Some(value) = arg.to_string().strip_prefix("--database=") {
                    url = value.to_string();
                }
            }
        }
        (!url.is_empty()).then_some(url)
    }

    /// Whether the world may step now: always for local stores; for a cluster store, while the
    /// lease is safely ahead of its expiry. Reports pauses, resumptions and a lost lease.
    fn lease_allows_simulation(&mut self) -> bool {
        let Some(lease) = self
            .persistence
            .as_ref()
            .and_then(|p| p.saver.lease())
            .cloned()
        else {
            return true;
        };
        let status = lease.status();
        let simulating = status.may_simulate(lease.ttl());
        let was_simulating = self
            .persistence
            .as_ref()
            .and_then(|p| p.reported_lease.as_ref())
            .is_none_or(|l| l.simulating);
        let campaign = self.campaign_id.to_string();
        if let LeaseStatus::Lost { reason } = &status {
            self.lose_campaign(reason);
            return false;
        }
        if simulating != was_simulating {
            let reason = status
                .problem()
                .unwrap_or("the lease is renewed")
                .to_string();
            if simulating {
                godot_print!("PhysicsWorldServer {campaign}: simulating again ({reason})");
            } else {
                godot_error!(
                    "PhysicsWorldServer {campaign}: paused: the campaign's lease could not be renewed in time ({reason}); the world is kept and resumes when the database answers"
                );
            }
            self.defer_emit(
                "simulation_paused",
                &[
                    (!simulating).to_variant(),
                    GString::from(reason.as_str()).to_variant(),
                ],
            );
        }
        simulating
    }

    /// Another server owns the campaign now: stop without saving (the database would refuse
    /// it) and close the campaign here, so its clients reconnect to the new owner.
    fn lose_campaign(&mut self, reason: &str) {
        godot_error!(
            "PhysicsWorldServer {}: the campaign's lease is lost ({reason}); stopping the world and closing the campaign on this server",
            self.campaign_id
        );
        if let Some(persistence) = self.persistence.take() {
            // The final save is fenced off by the database; its error says so, nothing more.
            let _ = persistence.saver.shutdown();
        }
        self.runner = None;
        for (_, mut body) in self.bodies.drain() {
            if body.is_instance_valid() {
                body.bind_mut().bind_object(None);
            }
        }
        self.defer_emit("campaign_lost", &[GString::from(reason).to_variant()]);
    }

    /// The persistence folder (property or `--data-dir=`), resolved, or `None` when not persisting.
    fn data_directory(&self) -> Option<String> {
        let mut dir = self.data_dir.to_string();
        if self.allow_command_line {
            for arg in Os::singleton().get_cmdline_user_args().as_slice() {
                if let Some(value) = arg.to_string().strip_prefix("--data-dir=") {
                    dir = value.to_string();
                }
            }
        }
        (!dir.is_empty()).then(|| {
            ProjectSettings::singleton()
                .globalize_path(dir.as_str())
                .to_string()
        })
    }

    fn open_store(
        &self,
        campaign: &str,
    ) -> Result<Option<(Saver, Option<CampaignRecord>)>, String> {
        let config = SaverConfig {
            interval: Duration::from_secs_f32(self.save_interval.max(0.1)),
            ..SaverConfig::default()
        };
        let (saver, loaded, location) = match self.database() {
            Some(url) => Self::start_cluster_saver(&url, campaign, &config)?,
            None => {
                let Some(dir) = self.data_directory() else {
                    return Ok(None);
                };
                let store = nexus_store::open(&dir).map_err(|e| format!("{dir}: {e}"))?;
                let (saver, loaded) = Saver::start(Box::new(store), campaign, config)
                    .map_err(|e| format!("{dir}: {e}"))?;
                (saver, loaded, dir)
            }
        };
        godot_print!(
            "PhysicsWorldServer {campaign}: persisting to {location} every {} s",
            self.save_interval
        );
        Ok(Some((saver, loaded)))
    }

    /// Opens the campaign in the cluster's database. A lease left by a server that died (not
    /// renewed any more) is waited out, so a restart right after a crash takes the campaign
    /// back; a lease a live server keeps renewing is an error after two lease lifetimes.
    fn start_cluster_saver(
        url: &str,
        campaign: &str,
        config: &SaverConfig,
    ) -> Result<(Saver, Option<CampaignRecord>, String), String> {
        let options = PostgresOptions::default();
        let patience = options.lease_ttl * 2 + Duration::from_secs(1);
        let started = Instant::now();
        loop {
            let store = PostgresStore::connect(url, options.clone()).map_err(|e| e.to_string())?;
            let location = format!("{} (as {})", store.database(), store.owner());
            match Saver::start(Box::new(store), campaign, config.clone()) {
                Ok((saver, loaded)) => return Ok((saver, loaded, location)),
                Err(StoreError::LeaseHeld {
                    owner,
                    expires_in_ms,
                    ..
                }) if started.elapsed() < patience => {
                    godot_print!(
                        "PhysicsWorldServer {campaign}: the campaign is leased by {owner} for another {expires_in_ms} ms; waiting in case that server is gone"
                    );
                    let wait = Duration::from_millis(expires_in_ms.saturating_add(50));
                    std::thread::sleep(wait.min(Duration::from_millis(500)));
                }
                Err(error) => return Err(format!("{location}: {error}")),
            }
        }
    }

    /// Hands what changed since the last submission to the saver (on its own thread), when a
    /// save is due or `now`; reports the saver's outcomes as signals.
    fn submit_save(&mut self, now: bool) {
        let (Some(persistence), Some(runner)) = (self.persistence.as_mut(), self.runner.as_ref())
        else {
            return;
        };
        let mut signals = Vec::new();
        let events = persistence.saver.poll_events();
        let saver_reported = !events.is_empty();
        for event in events {
            match event {
                SaverEvent::Saved(stats) => {
                    if persistence.failing_streak > 0 {
                        godot_print!(
                            "PhysicsWorldServer {}: saving resumed (tick {}) after {} failed attempts; nothing was lost",
                            self.campaign_id,
                            stats.tick,
                            persistence.failing_streak
                        );
                        persistence.failing_streak = 0;
                    }
                    let rows = stats.objects_written
                        + stats.objects_removed
                        + stats.players_written
                        + stats.players_removed;
                    signals.push((
                        "world_saved",
                        vec![(stats.tick as i64).to_variant(), (rows as i64).to_variant()],
                    ));
                }
                SaverEvent::Failed { code, message } => {
                    if persistence
                        .failing_streak
                        .is_multiple_of(SAVE_FAILURE_LOG_EVERY)
                    {
                        godot_error!(
                            "PhysicsWorldServer {}: save failed ({code}): {message}; the world keeps running and its changes stay pending, retried every second (failed attempt {})",
                            self.campaign_id,
                            persistence.failing_streak + 1
                        );
                    }
                    persistence.failing_streak += 1;
                    signals.push((
                        "save_failed",
                        vec![
                            GString::from(code).to_variant(),
                            GString::from(message.as_str()).to_variant(),
                        ],
                    ));
                }
                SaverEvent::Rejected { problems } => {
                    let message = problems.join("; ");
                    godot_error!(
                        "PhysicsWorldServer {}: rows left out of a save: {message}",
                        self.campaign_id
                    );
                    signals.push((
                        "save_failed",
                        vec![
                            GString::from("rejected_rows").to_variant(),
                            GString::from(message.as_str()).to_variant(),
                        ],
                    ));
                }
            }
        }
        // Compared every frame, built only when reported: the lease's state and whether the
        // world simulates.
        let lease = persistence
            .saver
            .lease()
            .map(|lease| (lease, lease.status()));
        let lease_changed = lease
            .as_ref()
            .map(|(lease, status)| (status.name(), status.may_simulate(lease.ttl())))
            != persistence
                .reported_lease
                .as_ref()
                .map(|l| (l.state.as_str(), l.simulating));
        if saver_reported || lease_changed {
            let lease = lease.map(|(lease, status)| {
                let counts = lease.counts();
                LeaseHealth {
                    owner: lease.owner().to_string(),
                    epoch: lease.epoch(),
                    state: status.name().to_string(),
                    simulating: status.may_simulate(lease.ttl()),
                    error: status.problem().map(str::to_string),
                    renewals: counts.renewals,
                    renewal_failures: counts.failures,
                }
            });
            if let Runner::Hosted(host) = runner {
                let status = persistence.saver.status();
                host.link().report_persistence(PersistenceHealth {
                    saves: status.saves,
                    failures: status.failures,
                    last_saved_tick: status.last_saved_tick,
                    last_error: status.last_error,
                    lease: lease.clone(),
                });
            }
            persistence.reported_lease = lease;
        }
        let world = runner.world();
        if (now || persistence.saver.is_due()) && world.tick() != persistence.submitted_tick {
            let change = change_since(world, persistence.submitted_tick, &player_records(world));
            match persistence.saver.submit_change(change) {
                Ok(_) => persistence.submitted_tick = world.tick(),
                Err(error) => godot_error!(
                    "PhysicsWorldServer {}: cannot hand a save over: {error}",
                    self.campaign_id
                ),
            }
        }
        for (signal, args) in signals {
            self.defer_emit(signal, &args);
        }
    }

    /// Binds the scene's `NetworkedBody` nodes to their restored objects (by the `scene_node`
    /// property); a node whose object is gone from the campaign (destroyed) is freed.
    fn bind_restored_bodies(&mut self, world: &World) {
        let mut by_node = HashMap::new();
        for id in world.object_ids() {
            if let Some(path) = world.object_state(id).and_then(|s| {
                s.properties
                    .get(SCENE_NODE)
                    .and_then(|v| v.as_str().map(str::to_owned))
            }) {
                by_node.insert(path, id);
            }
        }
        for mut body in self.scene_bodies() {
            let path = self.base().get_path_to(&body).to_string();
            match by_node.get(&path) {
                Some(&id) => {
                    body.bind_mut().bind_object(Some(id));
                    self.bodies.insert(id, body);
                }
                None => body.queue_free(),
            }
        }
    }

    /// The `NetworkedBody` nodes that belong to this world (nearest server above them).
    fn scene_bodies(&self) -> Vec<Gd<NetworkedBody>> {
        if !self.base().is_inside_tree() {
            return Vec::new();
        }
        let me = self.to_gd().upcast::<Node>();
        let tree = self.base().get_tree();
        tree.get_nodes_in_group(NetworkedBody::GROUP)
            .iter_shared()
            .filter_map(|node| node.try_cast::<NetworkedBody>().ok())
            .filter(|body| {
                me.is_ancestor_of(body) && self.owning_server(body).as_ref() == Some(&me)
            })
            .collect()
    }

    /// Lets the EnvironmentManager, InteractionSystem and ParticleField children set up the world
    /// (the environment only for a fresh world: a restored one has its own).
    fn configure_children(&mut self, world: &mut World, fresh: bool) {
        self.environment = None;
        self.interactions = None;
        for child in self.base().get_children().iter_shared() {
            if let Ok(environment) = child.clone().try_cast::<EnvironmentManager>() {
                if fresh {
                    environment.bind().configure(world);
                }
                self.environment = Some(environment);
            } else if let Ok(interactions) = child.clone().try_cast::<InteractionSystem>() {
                interactions.bind().install(world);
                self.interactions = Some(interactions);
            } else if let Ok(mut field) = child.try_cast::<ParticleField>() {
                field.bind_mut().install(world);
            }
        }
    }

    fn add_scene_bodies(&mut self, world: &mut World) {
        for mut body in self.scene_bodies() {
            let path = self.base().get_path_to(&body).to_string();
            let desc = body.bind().object_desc().map(|mut desc| {
                // Binds the node again to its object when the campaign is restored.
                desc.properties.insert(SCENE_NODE.into(), path.into());
                desc
            });
            match desc.and_then(|desc| world.add_object(desc).map_err(|e| e.to_string())) {
                Ok(id) => {
                    body.bind_mut().bind_object(Some(id));
                    self.bodies.insert(id, body);
                }
                Err(error) => godot_error!("NetworkedBody {}: {error}", body.get_path()),
            }
        }
    }

    /// The nearest `PhysicsWorldServer` above `body` (a body belongs to that world only).
    fn owning_server(&self, body: &Gd<NetworkedBody>) -> Option<Gd<Node>> {
        let mut node = body.get_parent();
        while let Some(current) = node {
            if current.is_class("PhysicsWorldServer") {
                return Some(current);
            }
            node = current.get_parent();
        }
        None
    }

    fn tick_once(&mut self) {
        let started = Instant::now();
        let Some(runner) = self.runner.as_mut() else {
            return;
        };
        let (events, joined, left, actions) = match runner {
            Runner::Hosted(host) => {
                host.tick();
                let notices = host.take_notices();
                let actions = host.drain_actions();
                (notices.events, notices.joined, notices.left, actions)
            }
            Runner::Offline(world) => {
                world.set_wall_clock(nexus_gateway::auth::unix_now_f64());
                world.step();
                (world.drain_events(), Vec::new(), Vec::new(), Vec::new())
            }
        };
        let elapsed = started.elapsed().as_micros() as u64;
        self.emit_notices(events, joined, left, actions);
        self.record_tick(elapsed);
    }

    fn emit_notices(
        &mut self,
        events: Vec<WorldEvent>,
        joined: Vec<(u32, String, ObjectId)>,
        left: Vec<u32>,
        actions: Vec<(u32, ActionRequest)>,
    ) {
        for (client, name, avatar) in joined {
            self.defer_emit(
                "client_joined",
                &[
                    i64::from(client).to_variant(),
                    GString::from(name.as_str()).to_variant(),
                    i64::from(avatar).to_variant(),
                ],
            );
        }
        for client in left {
            self.defer_emit("client_left", &[i64::from(client).to_variant()]);
        }
        for (client, action) in actions {
            let mut dict = VarDictionary::new();
            dict.set("action", action.action.as_str());
            dict.set("target", action.target.map_or(-1, i64::from));
            dict.set(
                "args",
                &crate::convert::json_object_to_dictionary(&action.args),
            );
            if let Some(gateway) = self.gateway.as_mut() {
                let campaign = self.campaign_id.clone();
                let mut event = VarDictionary::new();
                event.set("type", "physics:action:v1:requested");
                event.set("payload", &dict);
                let mut metadata = VarDictionary::new();
                metadata.set("campaign_id", &campaign);
                event.set("metadata", &metadata);
                event.set("client_id", i64::from(client));
                gateway.bind_mut().notify_event(&campaign, event);
            }
            self.defer_emit(
                "action_received",
                &[i64::from(client).to_variant(), dict.to_variant()],
            );
        }
        for event in events {
            match event {
                WorldEvent::ObjectAdded { object, .. } => {
                    self.defer_emit(
                        "object_added",
                        &[i64::from(object.id).to_variant(), to_variant(&object)],
                    );
                }
                WorldEvent::ObjectRemoved { id, reason } => {
                    if let Some(mut body) = self.bodies.remove(&id)
                        && body.is_instance_valid()
                    {
                        body.bind_mut().bind_object(None);
                    }
                    self.defer_emit(
                        "object_removed",
                        &[
                            i64::from(id).to_variant(),
                            GString::from(reason.as_str()).to_variant(),
                        ],
                    );
                }
                WorldEvent::InteractionResult(result) => {
                    let kind = crate::interaction_system::kind_name(&result.kind);
                    let mut result: VarDictionary = to_variant(&result).to();
                    result.set("kind", kind.as_str());
                    let result = result.to_variant();
                    if let Some(interactions) = self.interactions.as_mut() {
                        interactions.bind_mut().defer_completed(result.clone());
                    }
                    self.defer_emit("interaction_completed", &[result]);
                }
                WorldEvent::WeatherChanged { weather } => {
                    if let Some(environment) = self.environment.as_mut() {
                        environment
                            .bind_mut()
                            .defer_emit("weather_changed", &[to_variant(&weather)]);
                    }
                }
                WorldEvent::TimeOfDayChanged {
                    time_of_day,
                    day_length,
                } => {
                    if let Some(environment) = self.environment.as_mut() {
                        environment.bind_mut().defer_emit(
                            "time_of_day_changed",
                            &[time_of_day.to_variant(), day_length.to_variant()],
                        );
                    }
                }
                WorldEvent::TerrainEdited(patch) => {
                    if let Some(environment) = self.environment.as_mut() {
                        environment
                            .bind_mut()
                            .defer_emit("terrain_edited", &[to_variant(&patch)]);
                    }
                }
                _ => {}
            }
        }
    }

    fn defer_emit(&mut self, signal: &str, args: &[Variant]) {
        crate::convert::emit_deferred(&mut self.base_mut(), signal, args);
    }

    fn record_tick(&mut self, usec: u64) {
        self.stats.ticks += 1;
        self.stats.total_usec += usec;
        self.stats.max_usec = self.stats.max_usec.max(usec);
        if self.stats.ticks >= self.tick_rate.max(1) as u32 {
            let window = std::mem::take(&mut self.stats);
            let (tick, objects, clients) = match &self.runner {
                Some(runner) => (
                    runner.world().tick() as i64,
                    runner.world().object_count() as i64,
                    self.get_clients().len() as i64,
                ),
                None => (0, 0, 0),
            };
            let mean = (window.total_usec / u64::from(window.ticks)) as i64;
            self.defer_emit(
                "tick_stats",
                &[
                    tick.to_variant(),
                    mean.to_variant(),
                    (window.max_usec as i64).to_variant(),
                    objects.to_variant(),
                    clients.to_variant(),
                ],
            );
        }
    }

    /// Moves the `NetworkedBody` nodes whose objects changed since the last sync.
    fn sync_bodies(&mut self) {
        let Some(runner) = self.runner.as_ref() else {
            return;
        };
        let world = runner.world();
        if self.bodies.is_empty() || world.tick() == self.synced_tick {
            return;
        }
        for id in world.changed_since(self.synced_tick) {
            let (Some(body), Some((position, rotation))) =
                (self.bodies.get_mut(&id), world.object_pose(id))
            else {
                continue;
            };
            if body.is_instance_valid() {
                let basis = Basis::from_quaternion(array_to_quat(rotation).normalized());
                body.set_global_transform(Transform3D::new(basis, array_to_vec3(position)));
            }
        }
        self.synced_tick = world.tick();
    }
}
