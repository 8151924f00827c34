//! What can go wrong setting up or tearing down the emulated link.

use std::io;

/// A failure of [`Netem`](crate::Netem); the message says which step failed and why.
#[derive(Debug, thiserror::Error)]
pub enum NetemError {
    /// Network namespaces and TUN devices need root.
    #[error(
        "nexus-netem needs root (it creates a network namespace and TUN devices); run it with sudo"
    )]
    NotRoot,
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun: {source}{hint}", hint = tun_hint(source))]
    TunUnavailable { source: io::Error },
    /// A system call on a device or namespace failed (`ioctl TUNSETIFF`, `setns`, ...).
    #[error("{what} failed: {source}{hint}", hint = permission_hint(source))]
    Sys { what: String, source: io::Error },
    /// An `ip` command could not be started.
    #[error("cannot run `{command}`: {source}{hint}", hint = spawn_hint(source))]
    Spawn { command: String, source: io::Error },
    /// An `ip` command exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// The configuration cannot be used as given.
    #[error("invalid netem configuration: {0}")]
    InvalidConfig(String),
    /// The namespace name is taken.
    #[error(
        "network namespace `{0}` already exists (left by a crashed run? remove it with `ip netns delete {0}`)"
    )]
    NamespaceExists(String),
    /// Every candidate address pair is routed already.
    #[error("no free address pair: {0}")]
    NoFreeAddresses(String),
}

fn tun_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (no TUN driver: is the `tun` module loaded?)",
        _ => permission_hint(error),
    }
}

fn permission_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::PermissionDenied => " (needs root / CAP_NET_ADMIN)",
        _ => "",
    }
}

fn spawn_hint(error: &io::Error) -> &'static str {
    match error.kind() {
        io::ErrorKind::NotFound => " (is iproute2 installed and on PATH?)",
        _ => "",
    }
}
