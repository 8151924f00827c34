//! The Nexus Physics GDExtension: Godot nodes that convert Godot types and delegate to the Rust
//! core (`nexus-sim`, `nexus-gateway`). One file per class.

use godot::prelude::*;

mod nexus_info;

struct NexusPhysicsExtension;

#[gdextension]
unsafe impl ExtensionLibrary for NexusPhysicsExtension {}
