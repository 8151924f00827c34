//! `nexus-bots`: a swarm of WebSocket clients for load tests.
//!
//! Opens N clients against a server on this machine (loopback only), each running the real
//! client session (prediction, reconciliation, interpolation) behind emulated latency, jitter and
//! loss; they move, jump and interact. Bounded in count and time. Prints a table, then one
//! machine-readable line starting with `NEXUS_BOTS_SUMMARY ` followed by JSON. SIGINT or SIGTERM
//! ends every bot's session early (a script decides when its measurement is over) and still
//! reports.
//!
//! ```text
//! nexus-bots --url ws://127.0.0.1:9090/ws --campaign 0 --count 100 --duration 30 \
//!            --encoding binary --rtt-ms 150 --jitter-ms 20 --loss 0.05
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nexus_client::netem::{LinkConditions, Rng};
use nexus_client::session::SessionConfig;
use nexus_client::transport::{self, ConnectOptions};
use nexus_client::{ClientSession, Controls, Encoding, SessionStats, StatsSummary};
use nexus_sim::{InteractionKind, InteractionRequest};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

const MAX_COUNT: usize = 5000;
const MAX_DURATION: f64 = 3600.0;

const USAGE: &str = "\
nexus-bots: open N WebSocket clients that move, jump and interact (loopback servers only)

  --url URL            ws://127.0.0.1:9090/ws (host must be loopback)
  --campaign ID        campaign to join (default 0)
  --token-prefix P     tokens are P-0, P-1, ... (default bot)
  --count N            clients, 1..=5000 (default 10)
  --duration S         seconds each client plays after joining, 1..=3600 (default 20)
  --encoding E         json | binary (default binary)
  --rtt-ms MS          emulated round trip, split evenly both ways (default 0)
  --jitter-ms MS       emulated jitter per direction (default 0)
  --loss F             emulated loss of received state messages, 0..1 (default 0)
  --send-loss F        emulated loss of sent input messages, 0..1 (default 0; then inputs are
                       repeated in the next 4 messages)
  --ramp-ms MS         delay between two connection starts (default 10)
  --frame-rate HZ      session updates per second per client (default 30)
  --send-interval T    ticks per input message (default 2)
  --no-predict         skip prediction (cheaper clients; no correction figures)
  --light              decode, apply and acknowledge states but buffer nothing for display
                       (the cheapest client that still loads the server like a real one)
  --decode-every N     only every N-th bot decodes binary states fully (default 1: all); the
                       others read each state's head (tick, timestamp, input ack), measure its
                       age and acknowledge it: the server's work is the same, the bots' far less
  --threads N          tokio worker threads (default 2)
  --seed N             randomness of moves and network (default 1)
  --quiet              no per-client table

SIGINT or SIGTERM ends every session early (no new connections), then reports as usual.
";

#[derive(Clone, Debug)]
struct Args {
    url: String,
    campaign: String,
    token_prefix: String,
    count: usize,
    duration: f64,
    encoding: Encoding,
    rtt: f64,
    jitter: f64,
    loss: f64,
    send_loss: f64,
    ramp: Duration,
    frame_rate: f64,
    send_interval: u32,
    predict: bool,
    interpolate: bool,
    decode_every: usize,
    threads: usize,
    seed: u64,
    quiet: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut args = Args {
        url: "ws://127.0.0.1:9090/ws".into(),
        campaign: "0".into(),
        token_prefix: "bot".into(),
        count: 10,
        duration: 20.0,
        encoding: Encoding::Binary,
        rtt: 0.0,
        jitter: 0.0,
        loss: 0.0,
        send_loss: 0.0,
        ramp: Duration::from_millis(10),
        frame_rate: 30.0,
        send_interval: 2,
        predict: true,
        interpolate: true,
        decode_every: 1,
        threads: 2,
        seed: 1,
        quiet: false,
    };
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let number = |name: &str, text: String| {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{name}: {text:?} is not a number"))
        };
        match flag.as_str() {
            "--url" => args.url = value("--url")?,
            "--campaign" => args.campaign = value("--campaign")?,
            "--token-prefix" => args.token_prefix = value("--token-prefix")?,
            "--count" => args.count = number("--count", value("--count")?)? as usize,
            "--duration" => args.duration = number("--duration", value("--duration")?)?,
            "--encoding" => {
                args.encoding = match value("--encoding")?.as_str() {
                    "json" => Encoding::Json,
                    "binary" => Encoding::Binary,
                    other => return Err(format!("--encoding: {other:?} is not json or binary")),
                }
            }
            "--rtt-ms" => args.rtt = number("--rtt-ms", value("--rtt-ms")?)? / 1000.0,
            "--jitter-ms" => args.jitter = number("--jitter-ms", value("--jitter-ms")?)? / 1000.0,
            "--loss" => args.loss = number("--loss", value("--loss")?)?,
            "--send-loss" => args.send_loss = number("--send-loss", value("--send-loss")?)?,
            "--ramp-ms" => {
                let ms = number("--ramp-ms", value("--ramp-ms")?)?;
                if !(0.0..=10_000.0).contains(&ms) {
                    return Err(format!("--ramp-ms must be within 0..=10000, got {ms}"));
                }
                args.ramp = Duration::from_secs_f64(ms / 1000.0);
            }
            "--frame-rate" => args.frame_rate = number("--frame-rate", value("--frame-rate")?)?,
            "--send-interval" => {
                args.send_interval = number("--send-interval", value("--send-interval")?)? as u32
            }
            "--threads" => args.threads = number("--threads", value("--threads")?)? as usize,
            "--seed" => args.seed = number("--seed", value("--seed")?)? as u64,
            "--no-predict" => args.predict = false,
            "--light" => args.interpolate = false,
            "--decode-every" => {
                let n = number("--decode-every", value("--decode-every")?)?;
                if !(1.0..=1_000_000.0).contains(&n) {
                    return Err(format!("--decode-every must be at least 1, got {n}"));
                }
                args.decode_every = n as usize;
            }
            "--quiet" => args.quiet = true,
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !(1..=MAX_COUNT).contains(&args.count) {
        return Err(format!("--count must be within 1..={MAX_COUNT}"));
    }
    if !(1.0..=MAX_DURATION).contains(&args.duration) {
        return Err(format!(
            "--duration must be within 1..={MAX_DURATION} seconds"
        ));
    }
    if !(1.0..=240.0).contains(&args.frame_rate) {
        return Err("--frame-rate must be within 1..=240".into());
    }
    if !(1..=64).contains(&args.send_interval) {
        return Err("--send-interval must be within 1..=64".into());
    }
    if !(1..=64).contains(&args.threads) {
        return Err("--threads must be within 1..=64".into());
    }
    for link in [args.down_link(), args.up_link()] {
        link.validate()?;
    }
    check_loopback(&args.url)?;
    Ok(args)
}

impl Args {
    fn up_link(&self) -> LinkConditions {
        LinkConditions {
            latency: self.rtt / 2.0,
            jitter: self.jitter,
            loss: self.send_loss,
        }
    }

    fn down_link(&self) -> LinkConditions {
        LinkConditions {
            latency: self.rtt / 2.0,
            jitter: self.jitter,
            loss: self.loss,
        }
    }
}

/// Load goes to this machine only.
fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("--url {url:?} must start with ws://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let loopback = host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "--url host {host:?} is not a loopback address: bots only load this machine"
        ))
    }
}

/// What one bot reports.
struct BotReport {
    index: usize,
    stats: Option<SessionStats>,
    seconds: f64,
    error: Option<String>,
    closed_early: Option<String>,
}

/// The bot's behaviour: walk in a direction for a while, sometimes run or jump; every few
/// seconds try to pick up the nearest object, and drop it later.
struct Behaviour {
    rng: Rng,
    heading: f32,
    movement: [f32; 2],
    run: bool,
    next_change: f64,
    jump_until: f64,
    next_interaction: f64,
    holding: bool,
}

impl Behaviour {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let heading = rng.range(0.0, std::f64::consts::TAU) as f32;
        Behaviour {
            rng,
            heading,
            movement: [0.0, 1.0],
            run: false,
            next_change: 0.0,
            jump_until: 0.0,
            next_interaction: 3.0,
            holding: false,
        }
    }

    fn controls(&mut self, now: f64) -> Controls {
        if now >= self.next_change {
            self.next_change = now + self.rng.range(1.0, 3.0);
            self.heading += self.rng.range(-1.5, 1.5) as f32;
            self.run = self.rng.next_f64() < 0.3;
            self.movement = if self.rng.next_f64() < 0.15 {
                [0.0, 0.0]
            } else {
                [self.rng.range(-0.5, 0.5) as f32, 1.0]
            };
            if self.rng.next_f64() < 0.4 {
                self.jump_until = now + 0.05;
            }
        }
        Controls {
            movement: self.movement,
            look: [self.heading.sin(), 0.0, -self.heading.cos()],
            jump: now < self.jump_until,
            run: self.run,
        }
    }

    fn interaction(&mut self, now: f64, session: &ClientSession) -> Option<InteractionRequest> {
        if now < self.next_interaction {
            return None;
        }
        self.next_interaction = now + self.rng.range(3.0, 6.0);
        if self.holding {
            self.holding = false;
            return Some(InteractionRequest {
                request_id: 0,
                kind: InteractionKind::Drop,
                target: None,
                build: None,
                args: Default::default(),
            });
        }
        let me = session.avatar()?.position;
        let nearest = session
            .remote_objects()
            .into_iter()
            .filter(|o| o.kind == nexus_sim::BodyKind::Dynamic)
            .map(|o| {
                let d: f32 = (0..3).map(|i| (o.position[i] - me[i]).powi(2)).sum();
                (d.sqrt(), o.id)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let (distance, target) = nearest?;
        (distance < 3.0).then(|| {
            self.holding = true;
            InteractionRequest {
                request_id: 0,
                kind: InteractionKind::Pickup,
                target: Some(target),
                build: None,
                args: Default::default(),
            }
        })
    }
}

async fn run_bot(
    args: Arc<Args>,
    index: usize,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    stop: Arc<AtomicBool>,
) -> BotReport {
    let mut config = SessionConfig::new(&args.campaign, &format!("{}-{index}", args.token_prefix));
    config.encoding = args.encoding;
    config.client_type = "bot".into();
    config.predict = args.predict;
    config.interpolate = args.interpolate;
    config.decode_states = index.is_multiple_of(args.decode_every);
    config.send_interval_ticks = args.send_interval;
    if args.send_loss > 0.0 {
        config.redundant_inputs = 4;
    }
    let mut options = ConnectOptions::new(config);
    options.send_link = args.up_link();
    options.receive_link = args.down_link();
    options.seed = args.seed.wrapping_mul(1_000_003).wrapping_add(index as u64);
    options.frame_rate = args.frame_rate;
    // A real client acks within one 60 fps frame; bots update less often to save the CPU.
    options.immediate_acks = true;
    let connected = transport::connect_with(&args.url, options).await;
    drop(permit);
    let mut client = match connected {
        Ok(client) => client,
        Err(err) => {
            return BotReport {
                index,
                stats: None,
                seconds: 0.0,
                error: Some(err.to_string()),
                closed_early: None,
            };
        }
    };
    let started = client.now();
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut behaviour = Behaviour::new(args.seed ^ (index as u64).wrapping_mul(0x9E37));
    let mut result = Ok(());
    // Interactions need `&mut` access between runs: play in one-second slices.
    while Instant::now() < deadline && !client.is_closed() && !stop.load(Ordering::Relaxed) {
        let slice_end = (Instant::now() + Duration::from_secs(1)).min(deadline);
        result = client
            .run_until(slice_end, |_, now| behaviour.controls(now))
            .await;
        if result.is_err() {
            break;
        }
        let now = client.now();
        if let Some(request) = behaviour.interaction(now, client.session()) {
            client.session_mut().interact(request);
        }
    }
    let seconds = client.now() - started;
    let closed_early = if client.is_closed() {
        client
            .session_mut()
            .poll_events()
            .into_iter()
            .find_map(|e| match e {
                nexus_client::SessionEvent::Closed { reason } => Some(reason),
                _ => None,
            })
    } else {
        None
    };
    let stats = client.session().stats().clone();
    if !client.is_closed() {
        client.close().await;
    }
    BotReport {
        index,
        stats: Some(stats),
        seconds,
        error: result.err().map(|e| e.to_string()),
        closed_early,
    }
}

/// The final machine-readable line.
#[derive(Serialize)]
struct Summary {
    /// Bots asked for (`--count`).
    requested: usize,
    /// Bots started: fewer than requested when a signal stopped the run during the ramp.
    started: usize,
    connected: usize,
    failed: usize,
    closed_early: usize,
    encoding: &'static str,
    rtt_ms: f64,
    jitter_ms: f64,
    loss: f64,
    duration_s: f64,
    #[serde(flatten)]
    stats: StatsSummary,
    first_error: Option<String>,
    /// A signal ended the sessions before `duration_s`.
    stopped_by_signal: bool,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(args) => Arc::new(args),
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}\n");
            }
            eprint!("{USAGE}");
            return if message.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reports = runtime.block_on(async {
        watch_stop_signals(stop.clone());
        run_all(args.clone(), stop.clone()).await
    });
    report(&args, &reports, stop.load(Ordering::Relaxed))
}

/// Sets `stop` on the first SIGINT or SIGTERM. Without signal support the bots simply run their
/// full duration.
fn watch_stop_signals(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("warning: cannot watch SIGINT/SIGTERM; bots will run their full duration");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        stop.store(true, Ordering::Relaxed);
    });
}

async fn run_all(args: Arc<Args>, stop: Arc<AtomicBool>) -> Vec<BotReport> {
    // Connection attempts in flight at once (the rest wait): a burst of thousands of handshakes
    // would only measure the accept queue.
    let handshakes = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(args.count);
    for index in 0..args.count {
        // Held until the bot is welcomed (or failed).
        let permit = handshakes.clone().acquire_owned().await.ok();
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tasks.push(tokio::spawn(run_bot(
            args.clone(),
            index,
            permit,
            stop.clone(),
        )));
        if !args.ramp.is_zero() {
            tokio::time::sleep(args.ramp).await;
        }
    }
    let mut reports = Vec::with_capacity(tasks.len());
    for (index, task) in tasks.into_iter().enumerate() {
        reports.push(task.await.unwrap_or_else(|err| BotReport {
            index,
            stats: None,
            seconds: 0.0,
            error: Some(format!("bot task failed: {err}")),
            closed_early: None,
        }));
    }
    reports
}

fn report(args: &Args, reports: &[BotReport], stopped_by_signal: bool) -> ExitCode {
    let connected: Vec<&BotReport> = reports.iter().filter(|r| r.stats.is_some()).collect();
    let failed = reports.len() - connected.len();
    let closed_early = reports.iter().filter(|r| r.closed_early.is_some()).count();
    let first_error = reports
        .iter()
        .find_map(|r| r.error.clone().or_else(|| r.closed_early.clone()));
    if !args.quiet {
        println!(
            "{:>5} {:>8} {:>10} {:>8} {:>9} {:>9} {:>6} {:>9}",
            "bot", "seconds", "rx B/s", "states/s", "age p50", "age p99", "corr", "corr max"
        );
        for r in reports.iter().take(50) {
            match &r.stats {
                Some(stats) => {
                    let one = StatsSummary::of([(stats, r.seconds)]);
                    println!(
                        "{:>5} {:>8.1} {:>10.0} {:>8.1} {:>7.0}ms {:>7.0}ms {:>6} {:>7.1}mm",
                        r.index,
                        r.seconds,
                        one.rx_bytes_per_sec_per_client,
                        one.states_per_sec_per_client,
                        one.state_age_p50_ms,
                        one.state_age_p99_ms,
                        one.corrections,
                        one.correction_max_mm
                    );
                }
                None => println!(
                    "{:>5} failed: {}",
                    r.index,
                    r.error.as_deref().unwrap_or("unknown")
                ),
            }
        }
        if reports.len() > 50 {
            println!("  ... {} more", reports.len() - 50);
        }
    }
    let stats = StatsSummary::of(
        connected
            .iter()
            .filter_map(|r| r.stats.as_ref().map(|s| (s, r.seconds))),
    );
    println!();
    println!(
        "clients            {} ({} started, {} connected, {failed} failed, {closed_early} closed early)",
        args.count,
        reports.len(),
        connected.len()
    );
    if stopped_by_signal {
        println!("stopped            by a signal, before the sessions' full duration");
    }
    println!(
        "rx per client      {:.0} B/s",
        stats.rx_bytes_per_sec_per_client
    );
    println!(
        "tx per client      {:.0} B/s",
        stats.tx_bytes_per_sec_per_client
    );
    println!(
        "states per client  {:.1} /s",
        stats.states_per_sec_per_client
    );
    println!(
        "state age          p50 {:.0} ms, p99 {:.0} ms",
        stats.state_age_p50_ms, stats.state_age_p99_ms
    );
    println!(
        "corrections        {} of {} acks compared (mean {:.1} mm, max {:.1} mm)",
        stats.corrections, stats.reconciliations, stats.correction_mean_mm, stats.correction_max_mm
    );
    if let Some(error) = &first_error {
        println!("first error        {error}");
    }
    let summary = Summary {
        requested: args.count,
        started: reports.len(),
        connected: connected.len(),
        failed,
        closed_early,
        encoding: args.encoding.name(),
        rtt_ms: args.rtt * 1e3,
        jitter_ms: args.jitter * 1e3,
        loss: args.loss,
        duration_s: args.duration,
        stats,
        first_error,
        stopped_by_signal,
    };
    match serde_json::to_string(&summary) {
        Ok(json) => println!("NEXUS_BOTS_SUMMARY {json}"),
        Err(err) => eprintln!("error: summary: {err}"),
    }
    if connected.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(parse(&["--url", "ws://127.0.0.1:9090/ws"]).is_ok());
        assert!(parse(&["--url", "ws://localhost:9090/ws"]).is_ok());
        assert!(parse(&["--url", "ws://[::1]:9090/ws"]).is_ok());
        assert!(parse(&["--url", "ws://10.0.0.1:9090/ws"]).is_err());
        assert!(parse(&["--url", "ws://example.invalid/ws"]).is_err());
        assert!(parse(&["--url", "http://127.0.0.1/ws"]).is_err());
    }

    #[test]
    fn counts_and_durations_are_bounded() {
        assert!(parse(&["--count", "0"]).is_err());
        assert!(parse(&["--count", "5001"]).is_err());
        assert!(parse(&["--duration", "4000"]).is_err());
        assert!(parse(&["--loss", "2"]).is_err());
        assert!(parse(&["--encoding", "xml"]).is_err());
        let args = parse(&["--count", "3", "--rtt-ms", "150", "--encoding", "json"]).unwrap();
        assert_eq!(args.count, 3);
        assert!((args.up_link().latency - 0.075).abs() < 1e-12);
        assert_eq!(args.encoding, Encoding::Json);
    }
}
