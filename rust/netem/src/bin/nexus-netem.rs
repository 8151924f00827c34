//! `nexus-netem`: runs a command inside an emulated slow, lossy link, or holds the link up until
//! Ctrl-C. See the library's documentation for how it works.

use std::net::Ipv4Addr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nexus_netem::{Addresses, Netem, NetemConfig, NetemStats};

/// Emulates delay and packet loss between this namespace and a new network namespace, with real
/// packets through TUN devices (for kernels without the netem qdisc). Needs root.
///
/// With a COMMAND, runs it inside the namespace (or outside with --outside) while the link is up,
/// then tears the link down and exits with the command's status. Without one, sets the link up,
/// prints NEXUS_NETEM_* variables on stdout and waits for Ctrl-C (SIGINT/SIGTERM).
///
/// Servers inside the namespace are reached from outside at $NEXUS_NETEM_FAR; the namespace
/// reaches the outside at $NEXUS_NETEM_NEAR. Both variables and $NEXUS_NETEM_NAMESPACE are set
/// for COMMAND.
#[derive(Parser, Debug)]
#[command(name = "nexus-netem", version)]
struct Args {
    /// Delay of each packet in each direction, in milliseconds (RTT is twice this).
    #[arg(long, default_value_t = 50.0)]
    delay_ms: f64,
    /// Probability (0 to 1) of dropping each packet, in each direction.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Uniform jitter of each packet's delay, ± this many milliseconds.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Let jitter reorder packets (default: each direction stays in order).
    #[arg(long)]
    reorder: bool,
    /// Seed of the loss and jitter draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Packets in flight per direction beyond which arrivals are dropped.
    #[arg(long, default_value_t = 10_000)]
    queue_limit: usize,
    /// Network namespace to create [default: nexus-netem-<pid>].
    #[arg(long)]
    namespace: Option<String>,
    /// Address outside the namespace (with --far) [default: a free pair from 10.203.0.0/16].
    #[arg(long, requires = "far")]
    near: Option<Ipv4Addr>,
    /// Address inside the namespace (with --near).
    #[arg(long, requires = "near")]
    far: Option<Ipv4Addr>,
    /// Run COMMAND in this (the outer) namespace instead of inside the emulated one.
    #[arg(long, requires = "command")]
    outside: bool,
    /// Command to run while the link is up.
    #[arg(last = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("nexus-netem: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let millis = |name: &str, ms: f64| {
        Duration::try_from_secs_f64(ms / 1000.0)
            .map_err(|_| format!("--{name} must be a non-negative number of milliseconds"))
    };
    let mut config = NetemConfig::new(
        args.namespace
            .clone()
            .unwrap_or_else(|| format!("nexus-netem-{}", std::process::id())),
    );
    config.delay_one_way = millis("delay-ms", args.delay_ms)?;
    config.jitter = millis("jitter-ms", args.jitter_ms)?;
    config.loss = args.loss;
    config.seed = args.seed;
    config.allow_reorder = args.reorder;
    config.queue_limit = args.queue_limit;
    config.addresses = args
        .near
        .zip(args.far)
        .map(|(near, far)| Addresses { near, far });

    // Signals are taken with sigwait by this thread only: block them before any thread starts
    // (threads inherit the mask; the command gets it cleared in run_command).
    let signals = blocked_signals();
    let netem = Netem::start(config).map_err(|error| error.to_string())?;
    let conditions = netem.conditions();
    eprintln!(
        "nexus-netem: namespace {}; near {} ({}), far {} ({}, inside); {:?} one way (RTT {:?}), \
         jitter ±{:?}, loss {:.1} % each way",
        netem.namespace(),
        netem.near_addr(),
        netem.near_device(),
        netem.far_addr(),
        netem.far_device(),
        conditions.delay_one_way,
        conditions.delay_one_way * 2,
        conditions.jitter,
        conditions.loss * 100.0,
    );

    let code = if args.command.is_empty() {
        println!("NEXUS_NETEM_NAMESPACE={}", netem.namespace());
        println!("NEXUS_NETEM_NEAR={}", netem.near_addr());
        println!("NEXUS_NETEM_FAR={}", netem.far_addr());
        eprintln!(
            "nexus-netem: run servers with `ip netns exec {} ...`; Ctrl-C to stop",
            netem.namespace()
        );
        let signal = wait_signal(&signals);
        eprintln!("nexus-netem: signal {signal}, tearing down");
        ExitCode::SUCCESS
    } else {
        run_command(&netem, &args, &signals)?
    };
    let stats = netem.shutdown().map_err(|error| error.to_string())?;
    print_stats(&stats);
    Ok(code)
}

/// Runs the command, forwarding signals sent to us alone (kill, not the terminal's Ctrl-C, which
/// reaches the command directly) to it, and returns its exit status.
fn run_command(netem: &Netem, args: &Args, signals: &libc::sigset_t) -> Result<ExitCode, String> {
    let mut command = if args.outside {
        std::process::Command::new(&args.command[0])
    } else {
        netem.command(&args.command[0])
    };
    command
        .args(&args.command[1..])
        .env("NEXUS_NETEM_NAMESPACE", netem.namespace())
        .env("NEXUS_NETEM_NEAR", netem.near_addr().to_string())
        .env("NEXUS_NETEM_FAR", netem.far_addr().to_string());
    // The command must not inherit our blocked signals (std keeps the mask across exec).
    let signals = *signals;
    // SAFETY: the hook only calls pthread_sigmask, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &signals, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", args.command[0]))?;
    let pid = child.id() as libc::pid_t;
    std::thread::spawn(move || {
        loop {
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: a valid signal set and a live siginfo_t.
            let signal = unsafe { libc::sigwaitinfo(&signals, &mut info) };
            if signal > 0 && info.si_code != libc::SI_KERNEL {
                // SAFETY: signals the child, which we have not reaped yet (or a no-op).
                unsafe { libc::kill(pid, signal) };
            }
        }
    });
    let status = child
        .wait()
        .map_err(|error| format!("waiting for {}: {error}", args.command[0]))?;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn blocked_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; blocks signals for this thread (and the
    // threads it starts).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(signals: &libc::sigset_t) -> libc::c_int {
    loop {
        let mut signal = 0;
        // SAFETY: a valid signal set and a live int.
        if unsafe { libc::sigwait(signals, &mut signal) } == 0 {
            return signal;
        }
    }
}

fn print_stats(stats: &NetemStats) {
    for (name, direction) in [("to far", &stats.to_far), ("to near", &stats.to_near)] {
        eprintln!(
            "nexus-netem: {name}: {} packets received, {} forwarded ({} bytes), {} dropped by loss, \
             {} by a full queue, {} write errors",
            direction.received,
            direction.forwarded,
            direction.bytes_forwarded,
            direction.dropped_loss,
            direction.dropped_queue_full,
            direction.write_errors,
        );
    }
}
