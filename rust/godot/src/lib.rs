//! The Nexus Physics GDExtension: Godot nodes that convert Godot types and delegate to the Rust
//! core (`nexus-sim`, `nexus-gateway`, `nexus-client`). One file per class.

use godot::prelude::*;

mod convert;
mod environment_manager;
mod failure;
mod interaction_system;
mod logging;
mod networked_body;
mod nexus_client;
mod nexus_gateway;
mod nexus_info;
mod particle_field;
mod physics_world_server;
mod world_access;

struct NexusPhysicsExtension;

#[gdextension]
unsafe impl ExtensionLibrary for NexusPhysicsExtension {
    fn on_stage_init(stage: InitStage) {
        if stage == InitStage::Scene {
            logging::install();
        }
    }
}
