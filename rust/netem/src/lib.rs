//! A userspace network emulator: delay, jitter and packet loss on a real IP link, for benchmarks
//! (WebSocket over TCP against WebRTC over UDP at 100 ms RTT and a few percent loss).
//!
//! Why: the kernels we benchmark on have no `netem` qdisc (`tc qdisc ... netem` fails) and no
//! iptables, yet the comparison needs the kernel's own TCP, so that retransmission and
//! head-of-line blocking happen for real. A socket-level proxy would hide them.
//!
//! How: [`Netem::start`] creates a network namespace (the "far side") and two TUN devices. One stays
//! in the caller's namespace with the near address and a route to the far address through it; the
//! other is moved into the new namespace (its open fd keeps working) with the far address and a
//! route back. Every IP packet one side sends to the other thus comes out of a TUN fd of this
//! process. A thread per direction reads it, drops it with probability `loss`, or else writes it
//! to the other device once `delay_one_way` (± `jitter`) has passed, keeping each direction in
//! order. Servers run inside the namespace ([`Netem::command`], [`Netem::enter`]) and clients
//! connect from outside to [`Netem::far_addr`]. Dropping the [`Netem`] removes the devices and the
//! namespace. Needs root.

mod conditions;
mod error;
mod forward;
mod sys;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use conditions::{Conditions, DirectionStats, NetemStats};
pub use error::NetemError;
use forward::{Counters, Forwarder, Shared};

/// Where automatic address pairs come from: 10.203.0.0/16, one /30 block per link
/// (near `10.203.x.y+1`, far `10.203.x.y+2`).
const AUTO_BASE: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 0);
const AUTO_BLOCKS: u32 = 1 << 14;
/// Where this process starts looking for a free block next.
static NEXT_AUTO_BLOCK: AtomicU32 = AtomicU32::new(0);
/// Blocks tried before giving up (each taken block costs one `ip route add`).
const AUTO_TRIES: u32 = 256;

/// The two ends of the emulated link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses {
    /// On the device in the caller's namespace.
    pub near: Ipv4Addr,
    /// On the device in the emulator's namespace.
    pub far: Ipv4Addr,
}

/// How to set up the link.
#[derive(Clone, Debug)]
pub struct NetemConfig {
    /// Name of the network namespace to create (it must not exist); see [`unique_namespace_name`].
    pub namespace: String,
    pub delay_one_way: Duration,
    /// Probability (0 to 1) of dropping each packet, in each direction.
    pub loss: f64,
    pub jitter: Duration,
    /// Seeds the loss and jitter draws (each direction has its own stream).
    pub seed: u64,
    /// `None`: a free pair from 10.203.0.0/16 (10.203.0.1 and 10.203.0.2 unless taken).
    pub addresses: Option<Addresses>,
    /// Let jitter reorder packets within a direction (default: no, FIFO).
    pub allow_reorder: bool,
    /// Packets in flight per direction beyond which arrivals are dropped (netem's `limit`).
    pub queue_limit: usize,
}

impl NetemConfig {
    /// No delay, no loss, automatic addresses, a queue of 10 000 packets.
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            delay_one_way: Duration::ZERO,
            loss: 0.0,
            jitter: Duration::ZERO,
            seed: 0,
            addresses: None,
            allow_reorder: false,
            queue_limit: 10_000,
        }
    }

    fn conditions(&self) -> Conditions {
        Conditions {
            delay_one_way: self.delay_one_way,
            loss: self.loss,
            jitter: self.jitter,
        }
    }
}

/// A namespace name unique to this process and call: `nexus-netem-<pid>-<n>`.
pub fn unique_namespace_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "nexus-netem-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running emulated link; dropping it tears the link and the namespace down.
pub struct Netem {
    namespace: String,
    /// Whether `namespace` was created by us (and must be deleted).
    namespace_created: bool,
    addresses: Addresses,
    near_device: String,
    far_device: String,
    shared: Arc<Shared>,
    stop: Arc<OwnedFd>,
    threads: Vec<JoinHandle<()>>,
    /// The TUN fds (near, far); closing them removes the devices.
    devices: Option<(Arc<OwnedFd>, Arc<OwnedFd>)>,
}

impl Netem {
    /// Creates the namespace and devices and starts forwarding. On error, whatever was set up is
    /// removed again.
    pub fn start(config: NetemConfig) -> Result<Netem, NetemError> {
        validate_namespace_name(&config.namespace)?;
        config.conditions().validate()?;
        if config.queue_limit == 0 {
            return Err(NetemError::InvalidConfig(
                "queue_limit must be at least 1".into(),
            ));
        }
        if let Some(addresses) = config.addresses
            && addresses.near == addresses.far
        {
            return Err(NetemError::InvalidConfig(
                "near and far addresses must differ".into(),
            ));
        }
        if !sys::is_root() {
            return Err(NetemError::NotRoot);
        }
        if std::path::Path::new(&sys::namespace_path(&config.namespace)).exists() {
            return Err(NetemError::NamespaceExists(config.namespace));
        }

        let (near_fd, near_device) = sys::open_tun("nxnear%d")?;
        let (far_fd, far_device) = sys::open_tun("nxfar%d")?;
        let mut netem = Netem {
            namespace: config.namespace.clone(),
            namespace_created: false,
            addresses: Addresses {
                near: Ipv4Addr::UNSPECIFIED,
                far: Ipv4Addr::UNSPECIFIED,
            },
            near_device,
            far_device,
            shared: Arc::new(Shared {
                conditions: Mutex::new(config.conditions()),
                to_far: Counters::default(),
                to_near: Counters::default(),
            }),
            stop: Arc::new(sys::stop_event()?),
            threads: Vec::new(),
            devices: Some((Arc::new(near_fd), Arc::new(far_fd))),
        };
        // From here on, dropping `netem` undoes what was done.
        ip(&["netns", "add", &netem.namespace])?;
        netem.namespace_created = true;

        // Near side, in the caller's namespace. No IPv6: its router solicitations would only be
        // noise on the link.
        let near = netem.near_device.clone();
        sys::write_sysctl(&format!("net/ipv6/conf/{near}/disable_ipv6"), "1")?;
        sys::write_sysctl(&format!("net/ipv4/conf/{near}/rp_filter"), "0")?;
        ip(&["link", "set", &near, "up"])?;
        netem.addresses = claim_addresses(&near, config.addresses)?;
        let Addresses {
            near: near_addr,
            far: far_addr,
        } = netem.addresses;

        // Far side, moved into the namespace.
        let far = netem.far_device.clone();
        let ns = netem.namespace.clone();
        ip(&["link", "set", &far, "netns", &ns])?;
        netem.enter(|| {
            sys::write_sysctl(&format!("net/ipv6/conf/{far}/disable_ipv6"), "1")?;
            sys::write_sysctl("net/ipv4/conf/all/rp_filter", "0")?;
            sys::write_sysctl(&format!("net/ipv4/conf/{far}/rp_filter"), "0")
        })??;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{far_addr}/32"),
            "dev",
            &far,
        ])?;
        ip(&["-n", &ns, "link", "set", &far, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            &format!("{near_addr}/32"),
            "dev",
            &far,
            "src",
            &far_addr.to_string(),
        ])?;

        let (near_fd, far_fd) = netem.devices.clone().expect("devices open");
        for (to_far, input, output) in [(true, &near_fd, &far_fd), (false, &far_fd, &near_fd)] {
            let forwarder = Forwarder {
                input: input.clone(),
                output: output.clone(),
                stop: netem.stop.clone(),
                shared: netem.shared.clone(),
                to_far,
                // Distinct streams per direction.
                seed: config.seed ^ if to_far { 0 } else { 0x5DEE_CE66_D1CE_F00D },
                queue_limit: config.queue_limit,
                allow_reorder: config.allow_reorder,
            };
            let name = if to_far {
                "netem-to-far"
            } else {
                "netem-to-near"
            };
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || forwarder.run())
                .map_err(|source| NetemError::Sys {
                    what: "spawn forwarding thread".into(),
                    source,
                })?;
            netem.threads.push(thread);
        }
        Ok(netem)
    }

    /// The address in the caller's namespace (where clients outside connect from).
    pub fn near_addr(&self) -> Ipv4Addr {
        self.addresses.near
    }

    /// The address in the emulator's namespace (what clients outside connect to).
    pub fn far_addr(&self) -> Ipv4Addr {
        self.addresses.far
    }

    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The TUN device in the caller's namespace.
    pub fn near_device(&self) -> &str {
        &self.near_device
    }

    /// The TUN device in the emulator's namespace.
    pub fn far_device(&self) -> &str {
        &self.far_device
    }

    pub fn conditions(&self) -> Conditions {
        *self.shared.conditions.lock().expect("not poisoned")
    }

    /// Changes the conditions for packets arriving from now on (packets in flight keep their
    /// delivery time; without reordering, a shorter delay waits for them).
    pub fn set_conditions(&self, conditions: Conditions) -> Result<(), NetemError> {
        conditions.validate()?;
        *self.shared.conditions.lock().expect("not poisoned") = conditions;
        Ok(())
    }

    pub fn stats(&self) -> NetemStats {
        NetemStats {
            to_far: self.shared.to_far.snapshot(),
            to_near: self.shared.to_near.snapshot(),
        }
    }

    /// `ip netns exec NAMESPACE program`: a command that runs inside the emulator's namespace
    /// (add arguments, spawn it as usual). The process is not killed by teardown.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec"])
            .arg(&self.namespace)
            .arg(program);
        command
    }

    /// Runs `f` on a new thread inside the emulator's namespace and returns its result. Sockets
    /// created there stay in the namespace, so a server can bind in `f` and serve from any thread.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetemError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    sys::enter_namespace(&self.namespace)?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Tears the link down like `drop`, but reports failures; returns the final counts.
    pub fn shutdown(mut self) -> Result<NetemStats, NetemError> {
        let result = self.teardown();
        result.map(|()| self.stats())
    }

    /// Stops the forwarders, closes the devices (which removes them) and deletes the namespace.
    /// Idempotent.
    fn teardown(&mut self) -> Result<(), NetemError> {
        sys::signal_event(&self.stop);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.devices = None;
        if std::mem::take(&mut self.namespace_created) {
            ip(&["netns", "delete", &self.namespace])?;
        }
        Ok(())
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            eprintln!("nexus-netem: teardown: {error}");
        }
    }
}

impl std::fmt::Debug for Netem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netem")
            .field("namespace", &self.namespace)
            .field("addresses", &self.addresses)
            .field("near_device", &self.near_device)
            .field("far_device", &self.far_device)
            .field("conditions", &self.conditions())
            .finish_non_exhaustive()
    }
}

/// `ip netns` names become file names under /run/netns: keep them plain.
fn validate_namespace_name(name: &str) -> Result<(), NetemError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || name.len() > 64 || name.starts_with('.') || !name.chars().all(plain) {
        return Err(NetemError::InvalidConfig(format!(
            "namespace name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        )));
    }
    Ok(())
}

/// Routes the far address through the near device and gives the device the near address: the
/// requested pair, or the first free automatic one. Taking the route is the claim: a pair whose
/// route exists already belongs to another link (`ip route add` fails with "File exists").
fn claim_addresses(
    near_device: &str,
    requested: Option<Addresses>,
) -> Result<Addresses, NetemError> {
    let local = local_addresses()?;
    let candidates: Vec<Addresses> = match requested {
        Some(addresses) => vec![addresses],
        // Each link of this process starts one block further on, so a link never inherits the
        // address of the one before (whose sockets may still send: FIN retransmissions...).
        None => {
            let start = NEXT_AUTO_BLOCK.fetch_add(1, Ordering::Relaxed);
            (start..start + AUTO_TRIES)
                .map(|block| {
                    let base = u32::from(AUTO_BASE) + 4 * (block % AUTO_BLOCKS);
                    Addresses {
                        near: Ipv4Addr::from(base + 1),
                        far: Ipv4Addr::from(base + 2),
                    }
                })
                .collect()
        }
    };
    for addresses in &candidates {
        if local.contains(&addresses.far) || local.contains(&addresses.near) {
            continue;
        }
        let route = format!("{}/32", addresses.far);
        match ip(&["route", "add", &route, "dev", near_device]) {
            Ok(()) => {
                let near = format!("{}/32", addresses.near);
                ip(&["addr", "add", &near, "dev", near_device])?;
                if requested.is_none() {
                    let block = (u32::from(addresses.far) - u32::from(AUTO_BASE)) / 4;
                    NEXT_AUTO_BLOCK.fetch_max(block + 1, Ordering::Relaxed);
                }
                return Ok(*addresses);
            }
            Err(NetemError::Command { stderr, .. })
                if stderr.contains("File exists") && requested.is_none() => {}
            Err(error) => return Err(error),
        }
    }
    Err(NetemError::NoFreeAddresses(match requested {
        Some(addresses) => format!(
            "{} or {} is a local address already",
            addresses.near, addresses.far
        ),
        None => format!(
            "the first {AUTO_TRIES} pairs of {AUTO_BASE}/16 are in use; pass addresses explicitly"
        ),
    }))
}

/// The IPv4 addresses configured in the caller's namespace.
fn local_addresses() -> Result<Vec<Ipv4Addr>, NetemError> {
    let output = ip_output(&["-4", "-o", "addr", "show"])?;
    // Lines look like: "2: eth0    inet 192.0.2.2/24 brd ... scope global eth0".
    Ok(output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|&word| word == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect())
}

/// Runs `ip ARGS...`; an error carries the command line and its stderr.
fn ip(args: &[&str]) -> Result<(), NetemError> {
    ip_output(args).map(drop)
}

fn ip_output(args: &[&str]) -> Result<String, NetemError> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetemError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetemError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_names_are_checked() {
        assert!(validate_namespace_name("nexus-netem-12-0").is_ok());
        for bad in ["", "a/b", "..", ".hidden", "has space"] {
            assert!(validate_namespace_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn loss_must_be_a_probability() {
        let mut conditions = NetemConfig::new("x").conditions();
        conditions.loss = 1.5;
        assert!(conditions.validate().is_err());
        conditions.loss = 0.05;
        assert!(conditions.validate().is_ok());
    }
}
