//! What a node does when the server it is part of cannot serve: say so, and in a headless server
//! stop the process, so a supervisor (systemd, a container runtime, a test) sees a failed start
//! instead of a world nobody can join.

use godot::classes::{DisplayServer, Engine, Node};
use godot::prelude::*;

/// Exit code of a headless server that could not start serving.
pub const EXIT_CANNOT_SERVE: i32 = 1;

/// Reports `message` as an error and, when `quit` is set and this is a headless game (not the
/// editor), ends the process with [`EXIT_CANNOT_SERVE`] at the end of the frame.
pub fn cannot_serve(node: &Gd<Node>, message: &str, quit: bool) {
    godot_error!("{message}");
    if quit && is_headless_game() {
        godot_error!("the server cannot serve: exiting with code {EXIT_CANNOT_SERVE}");
        // A node outside the tree has no tree to quit; its caller reported the error above.
        if let Some(mut tree) = node.get_tree_or_null() {
            tree.quit_ex().exit_code(EXIT_CANNOT_SERVE).done();
        }
    }
}

/// A game running without a display (`--headless`, a dedicated-server export), outside the editor.
pub fn is_headless_game() -> bool {
    !Engine::singleton().is_editor_hint() && DisplayServer::singleton().get_name() == "headless"
}
