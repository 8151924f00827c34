//! The authoritative physics world of Nexus Physics.
//!
//! Pure Rust on rapier3d: no Godot, no I/O, no async. Shared by the server (Godot nodes, gateway)
//! and by predicting clients, so that prediction runs the very code the server runs.
#![warn(missing_docs)]

pub mod command;
pub mod event;
pub mod state;
