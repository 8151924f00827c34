//! How the nodes under a `PhysicsWorldServer` (environment, interactions, particles) reach its
//! world without depending on the server's module: the server sets those nodes up, so it depends
//! on them; they find their parent as a `DynGd<Node, dyn WorldAccess>` instead.

use godot::classes::Node;
use godot::prelude::*;
use nexus_sim::World;

/// What a world server offers the nodes beneath it.
pub trait WorldAccess {
    /// The world, while it runs.
    fn running_world(&self) -> Option<&World>;
    /// The world for changes, while it runs (an error is reported when it does not).
    fn running_world_mut(&mut self) -> Option<&mut World>;
}

/// The world server that is `node`'s parent, if its parent is one.
pub fn parent_world(node: &Node) -> Option<DynGd<Node, dyn WorldAccess>> {
    node.get_parent()?.try_dynify::<dyn WorldAccess>().ok()
}

/// Reads the parent's world; `None` without a running parent world.
pub fn read_parent_world<R>(node: &Node, f: impl FnOnce(&World) -> R) -> Option<R> {
    let server = parent_world(node)?;
    let guard = server.dyn_bind();
    guard.running_world().map(f)
}

/// Changes the parent's world; `None` without a running parent world.
pub fn with_parent_world<R>(node: &Node, f: impl FnOnce(&mut World) -> R) -> Option<R> {
    let mut server = parent_world(node)?;
    let mut guard = server.dyn_bind_mut();
    guard.running_world_mut().map(f)
}
