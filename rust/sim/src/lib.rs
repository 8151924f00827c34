//! The authoritative physics world of Nexus Physics.
//!
//! Pure Rust on rapier3d: no Godot, no I/O, no async. Shared by the server (Godot nodes, gateway)
//! and by predicting clients, so that prediction runs the very code the server runs.
//!
//! The entry point is [`World`]: create it with a [`WorldConfig`], add objects, spawn players,
//! queue their inputs and interactions, [`World::step`] it at a fixed rate, and read
//! [`World::snapshot`], [`World::changed_since`], [`World::objects_within`] and
//! [`World::drain_events`]. [`World::save`] / [`World::restore`] give bit-identical rollback;
//! [`World::object_desc`] and [`World::restore_object`] (with [`World::restore_environment`],
//! [`World::set_next_object_id`], [`World::set_tick`]) save and rebuild a world object by object,
//! for incremental persistence.
//!
//! ```
//! use nexus_sim::*;
//!
//! let mut world = World::new(WorldConfig::default());
//! let ground = ObjectDesc {
//!     kind: BodyKind::Static,
//!     shape: Shape::Box { half_extents: [20.0, 0.5, 20.0] },
//!     position: [0.0, -0.5, 0.0],
//!     rotation: identity_rotation(),
//!     mass: None,
//!     friction: 0.5,
//!     restitution: 0.0,
//!     properties: Properties::new(),
//! };
//! world.add_object(ground)?;
//! let avatar = world.spawn_player(7, "ana", Some([0.0, 1.0, 0.0]))?;
//! let walk = PlayerInput { seq: 1, tick: None, movement: [0.0, 1.0], look: [0.0, 0.0, -1.0], jump: false, run: false };
//! assert!(world.queue_inputs(7, &[walk]).is_empty());
//! world.step();
//! assert_eq!(world.last_processed_input(7), Some(1));
//! assert!(world.changed_since(0).contains(&avatar));
//! let events = world.drain_events(); // object_added x2, ...
//! assert_eq!(events.len(), 2);
//! # Ok::<(), SimError>(())
//! ```
//!
//! Modules: [`world`](World) (objects, players, the tick), [`input`] (queues), [`interaction`],
//! environment (weather, wind, day/night, terrain: methods on [`World`]), [`particles`],
//! [`movement`] and [`shapes`] (shared with predicting clients), [`save`] (rollback and persistence), and the
//! contract types [`state`], [`command`], [`event`].
#![warn(missing_docs)]

pub mod command;
pub mod config;
mod environment;
pub mod error;
pub mod event;
pub mod input;
pub mod interaction;
pub mod movement;
mod objects;
pub mod particles;
mod persistence;
pub mod save;
pub mod shapes;
pub mod state;
pub mod sweep;
mod tracking;
mod world;

pub use command::{EnvironmentCommand, InteractionKind, InteractionRequest, PlayerInput};
pub use config::{
    EnvironmentSettings, InputSettings, InteractionSettings, ParticleSettings, WorldConfig,
};
pub use error::{InputRejection, SimError};
pub use event::{EmissionParams, InteractionResult, ParticleEmission, TerrainPatch, WorldEvent};
pub use input::InputStats;
pub use interaction::{InteractionHandler, InteractionReply, InteractionVeto};
pub use movement::{CharacterState, MovementSettings, MovementSolver};
pub use particles::{EmitterDesc, ParticleSystem};
pub use save::WorldSave;
pub use shapes::{BuiltShape, ShapeError, build_shape};
pub use state::*;
pub use world::{MAX_OBJECT_ID, MAX_PENDING_INTERACTIONS, World};
