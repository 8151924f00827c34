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
//!
//! `--transport webrtc` moves each bot's state stream and inputs to WebRTC data channels when
//! the server offers them (PROTOCOL.md section 11); the emulated latency and loss then apply to
//! the WebSocket only (use a packet-level emulator for the UDP path). The summary says which
//! transport carried what.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use nexus_client::netem::{LinkConditions, Rng};
use nexus_client::session::SessionConfig;
use nexus_client::transport::{self, ConnectOptions, Transport};
use nexus_client::{
    ClientSession, Controls, Encoding, SessionStats, StatsSummary, TransportStats, TransportSummary,
};
use nexus_sim::{InteractionKind, InteractionRequest};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing_subscriber::EnvFilter;

const MAX_COUNT: usize = 5000;
const MAX_DURATION: f64 = 3600.0;

/// Open N WebSocket clients that move, jump and interact, against a server on this machine.
///
/// Each client runs the real session (prediction, reconciliation, interpolation) behind emulated
/// latency, jitter and loss. Prints a per-client table, then one line `NEXUS_BOTS_SUMMARY {json}`.
/// Logs go to standard error (filter with RUST_LOG, default info).
#[derive(Parser, Debug)]
#[command(
    name = "nexus-bots",
    version,
    after_help = "SIGINT or SIGTERM ends every session early (no new connections), then reports as usual."
)]
struct Cli {
    /// Server to load; the host must be loopback (bots only load this machine).
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9090/ws", value_parser = loopback_url)]
    url: String,
    /// Campaign to join.
    #[arg(long, value_name = "ID", default_value = "0")]
    campaign: String,
    /// Tokens are P-0, P-1, ...
    #[arg(long, value_name = "P", default_value = "bot")]
    token_prefix: String,
    /// Clients, 1..=5000.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = ranged::<usize>(1.0, MAX_COUNT as f64))]
    count: usize,
    /// Seconds each client plays after joining, 1..=3600.
    #[arg(long, value_name = "S", default_value_t = 20.0, value_parser = ranged::<f64>(1.0, MAX_DURATION))]
    duration: f64,
    /// State encoding.
    #[arg(long, value_name = "E", value_enum, default_value_t = EncodingArg::Binary)]
    encoding: EncodingArg,
    /// What carries states and inputs: the WebSocket, or WebRTC data channels beside it when
    /// the server offers them (the WebSocket otherwise, and as the fallback).
    #[arg(long, value_name = "T", value_enum, default_value_t = TransportArg::Websocket)]
    transport: TransportArg,
    /// Emulated round trip, split evenly both ways, 0..=20000 ms.
    #[arg(long, value_name = "MS", default_value_t = 0.0, value_parser = ranged::<f64>(0.0, 20_000.0))]
    rtt_ms: f64,
    /// Emulated jitter per direction, 0..=10000 ms.
    #[arg(long, value_name = "MS", default_value_t = 0.0, value_parser = ranged::<f64>(0.0, 10_000.0))]
    jitter_ms: f64,
    /// Emulated loss of received state messages, 0..=1.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = ranged::<f64>(0.0, 1.0))]
    loss: f64,
    /// Emulated loss of sent input messages, 0..=1; then inputs are repeated in the next 4
    /// messages.
    #[arg(long, value_name = "F", default_value_t = 0.0, value_parser = ranged::<f64>(0.0, 1.0))]
    send_loss: f64,
    /// Delay between two connection starts, 0..=10000 ms.
    #[arg(long, value_name = "MS", default_value_t = 10.0, value_parser = ranged::<f64>(0.0, 10_000.0))]
    ramp_ms: f64,
    /// Session updates per second per client, 1..=240.
    #[arg(long, value_name = "HZ", default_value_t = 30.0, value_parser = ranged::<f64>(1.0, 240.0))]
    frame_rate: f64,
    /// Ticks per input message, 1..=64.
    #[arg(long, value_name = "T", default_value_t = 2, value_parser = ranged::<u32>(1.0, 64.0))]
    send_interval: u32,
    /// Skip prediction (cheaper clients; no correction figures).
    #[arg(long)]
    no_predict: bool,
    /// Decode, apply and acknowledge states but buffer nothing for display (the cheapest client
    /// that still loads the server like a real one).
    #[arg(long)]
    light: bool,
    /// Only every N-th bot decodes binary states fully (1: all); the others read each state's
    /// head (tick, timestamp, input ack), measure its age and acknowledge it: the server's work
    /// is the same, the bots' far less.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = ranged::<usize>(1.0, 1_000_000.0))]
    decode_every: usize,
    /// Tokio worker threads, 1..=64.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = ranged::<usize>(1.0, 64.0))]
    threads: usize,
    /// Randomness of moves and network.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// No per-client table.
    #[arg(long)]
    quiet: bool,
    /// Do not reconnect a bot whose connection is lost. By default it reconnects with backoff
    /// (0.1 s, doubling up to 5 s), taking its session back when the server still keeps it, and
    /// carries on; statistics are then those of its last connection.
    #[arg(long)]
    no_reconnect: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EncodingArg {
    Json,
    Binary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Websocket,
    Webrtc,
}

/// A value parser for a number within `lo..=hi`. Integers also accept a whole number written as
/// a float (`10.0`), as the hand-written parser did (scripts pass Python floats).
fn ranged<T: FromF64>(lo: f64, hi: f64) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |text: &str| {
        let value: f64 = text
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| "not a number".to_owned())?;
        if !(lo..=hi).contains(&value) {
            return Err(format!("must be within {lo}..={hi}"));
        }
        T::from_f64(value).ok_or_else(|| "must be a whole number".to_owned())
    }
}

trait FromF64: Sized + Clone + Send + Sync + 'static {
    fn from_f64(value: f64) -> Option<Self>;
}

impl FromF64 for f64 {
    fn from_f64(value: f64) -> Option<Self> {
        Some(value)
    }
}

// Whole numbers only: a fractional count was silently truncated before clap; now it is refused.
impl FromF64 for usize {
    fn from_f64(value: f64) -> Option<Self> {
        (value.fract() == 0.0).then_some(value as usize)
    }
}

impl FromF64 for u32 {
    fn from_f64(value: f64) -> Option<Self> {
        (value.fract() == 0.0).then_some(value as u32)
    }
}

#[derive(Clone, Debug)]
struct Args {
    url: String,
    campaign: String,
    token_prefix: String,
    count: usize,
    duration: f64,
    encoding: Encoding,
    transport: Transport,
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
    reconnect: bool,
}

impl From<Cli> for Args {
    fn from(cli: Cli) -> Self {
        Args {
            url: cli.url,
            campaign: cli.campaign,
            token_prefix: cli.token_prefix,
            count: cli.count,
            duration: cli.duration,
            encoding: match cli.encoding {
                EncodingArg::Json => Encoding::Json,
                EncodingArg::Binary => Encoding::Binary,
            },
            transport: match cli.transport {
                TransportArg::Websocket => Transport::WebSocket,
                TransportArg::Webrtc => Transport::WebRtc,
            },
            rtt: cli.rtt_ms / 1000.0,
            jitter: cli.jitter_ms / 1000.0,
            loss: cli.loss,
            send_loss: cli.send_loss,
            ramp: Duration::from_secs_f64(cli.ramp_ms / 1000.0),
            frame_rate: cli.frame_rate,
            send_interval: cli.send_interval,
            predict: !cli.no_predict,
            interpolate: !cli.light,
            decode_every: cli.decode_every,
            threads: cli.threads,
            seed: cli.seed,
            quiet: cli.quiet,
            reconnect: !cli.no_reconnect,
        }
    }
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

/// Load goes to this machine only: the URL's host must be loopback.
fn loopback_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| "must start with ws://".to_owned())?;
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
        Ok(url.to_owned())
    } else {
        Err(format!(
            "host {host:?} is not a loopback address: bots only load this machine"
        ))
    }
}

/// What one bot reports.
struct BotReport {
    index: usize,
    stats: Option<SessionStats>,
    transport: Option<TransportStats>,
    seconds: f64,
    error: Option<String>,
    closed_early: Option<String>,
    /// Connections made again after a lost one.
    reconnects: u64,
    /// Of those, the ones that took the session back (same client, same avatar).
    resumed: u64,
}

/// Closes after which reconnecting would only be refused again.
fn is_final_close(reason: &str) -> bool {
    [
        "invalid_token",
        "rate_limited",
        "left",
        "too_many_connections",
    ]
    .iter()
    .any(|code| reason.starts_with(code))
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
    let options = bot_options(&args, index);
    let connected = transport::connect_with(&args.url, options).await;
    drop(permit);
    let mut client = match connected {
        Ok(client) => client,
        Err(err) => {
            // Per bot, so debug: the report counts failures and shows the first error.
            tracing::debug!(bot = index, "cannot join: {err}");
            return BotReport {
                index,
                stats: None,
                transport: None,
                seconds: 0.0,
                error: Some(err.to_string()),
                closed_early: None,
                reconnects: 0,
                resumed: 0,
            };
        }
    };
    let mut started = client.now();
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut behaviour = Behaviour::new(args.seed ^ (index as u64).wrapping_mul(0x9E37));
    let mut result = Ok(());
    let (mut reconnects, mut resumed) = (0, 0);
    loop {
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
        if !args.reconnect || !client.is_closed() || stop.load(Ordering::Relaxed) {
            break;
        }
        let reason = closed_reason(&mut client);
        if reason.as_deref().is_some_and(is_final_close) {
            break;
        }
        let ticket = client.session().resume_ticket();
        let mut delay = Duration::from_millis(100);
        let again = loop {
            if Instant::now() + delay >= deadline || stop.load(Ordering::Relaxed) {
                break None;
            }
            tokio::time::sleep(delay).await;
            let mut options = bot_options(&args, index);
            options.session.resume = ticket.clone();
            match transport::connect_with(&args.url, options).await {
                Ok(client) => break Some(client),
                Err(err) => {
                    tracing::debug!(bot = index, "cannot reconnect yet: {err}");
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let Some(mut again) = again else {
            // Out of time before the server came back: report the lost connection.
            return finish(client, index, started, result, reason, reconnects, resumed).await;
        };
        reconnects += 1;
        let took_back = again.session_mut().poll_events().into_iter().any(|event| {
            matches!(
                event,
                nexus_client::SessionEvent::Welcomed { resumed: true, .. }
            )
        });
        resumed += u64::from(took_back);
        tracing::debug!(bot = index, resumed = took_back, "reconnected");
        client = again;
        started = client.now();
        result = Ok(());
    }
    let reason = if client.is_closed() {
        closed_reason(&mut client)
    } else {
        None
    };
    finish(client, index, started, result, reason, reconnects, resumed).await
}

/// Why the session closed (its `Closed` event), if it did.
fn closed_reason(client: &mut transport::Client) -> Option<String> {
    client
        .session_mut()
        .poll_events()
        .into_iter()
        .find_map(|e| match e {
            nexus_client::SessionEvent::Closed { reason } => Some(reason),
            _ => None,
        })
}

/// The bot's report; closes its connection politely if it is still open.
async fn finish(
    client: transport::Client,
    index: usize,
    started: f64,
    result: Result<(), nexus_client::ClientError>,
    closed_early: Option<String>,
    reconnects: u64,
    resumed: u64,
) -> BotReport {
    let seconds = client.now() - started;
    let stats = client.session().stats().clone();
    let transport = client.transport_stats();
    if !client.is_closed() {
        client.close().await;
    }
    BotReport {
        index,
        stats: Some(stats),
        transport: Some(transport),
        seconds,
        error: result.err().map(|e| e.to_string()),
        closed_early,
        reconnects,
        resumed,
    }
}

/// How bot `index` connects.
fn bot_options(args: &Args, index: usize) -> ConnectOptions {
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
    options.transport = args.transport;
    options
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
    /// Connections made again after lost ones, and how many of them resumed their session.
    reconnects: u64,
    resumed: u64,
    encoding: &'static str,
    /// `--transport`; `transports` says what each one carried.
    transport: &'static str,
    rtt_ms: f64,
    jitter_ms: f64,
    loss: f64,
    duration_s: f64,
    #[serde(flatten)]
    stats: StatsSummary,
    transports: TransportSummary,
    first_error: Option<String>,
    /// A signal ended the sessions before `duration_s`.
    stopped_by_signal: bool,
}

fn main() -> ExitCode {
    // Bad options end here: clap's message, exit code 2.
    let cli = Cli::parse();
    init_tracing();
    let args = Arc::new(Args::from(cli));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the runtime: {err}");
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

/// Log lines to standard error, filtered by RUST_LOG (default `info`); standard output stays the
/// report's.
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Sets `stop` on the first SIGINT or SIGTERM. Without signal support the bots simply run their
/// full duration.
fn watch_stop_signals(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot watch SIGINT/SIGTERM; bots will run their full duration");
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("signal received: ending every session");
        stop.store(true, Ordering::Relaxed);
    });
}

async fn run_all(args: Arc<Args>, stop: Arc<AtomicBool>) -> Vec<BotReport> {
    // Connection attempts in flight at once (the rest wait): a burst of thousands of handshakes
    // would only measure the accept queue.
    let handshakes = Arc::new(Semaphore::new(64));
    tracing::info!(
        url = %args.url,
        count = args.count,
        duration_s = args.duration,
        encoding = args.encoding.name(),
        transport = args.transport.name(),
        "starting the bots"
    );
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
            transport: None,
            seconds: 0.0,
            error: Some(format!("bot task failed: {err}")),
            closed_early: None,
            reconnects: 0,
            resumed: 0,
        }));
    }
    reports
}

fn report(args: &Args, reports: &[BotReport], stopped_by_signal: bool) -> ExitCode {
    let connected: Vec<&BotReport> = reports.iter().filter(|r| r.stats.is_some()).collect();
    let failed = reports.len() - connected.len();
    let closed_early = reports.iter().filter(|r| r.closed_early.is_some()).count();
    let reconnects: u64 = reports.iter().map(|r| r.reconnects).sum();
    let resumed: u64 = reports.iter().map(|r| r.resumed).sum();
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
    if reconnects > 0 {
        println!(
            "reconnected        {reconnects} times after lost connections ({resumed} resumed their session)"
        );
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
    let transports = TransportSummary::of(connected.iter().filter_map(|r| r.transport.as_ref()));
    print_transports(args.transport, &transports);
    if let Some(error) = &first_error {
        println!("first error        {error}");
    }
    let summary = Summary {
        requested: args.count,
        started: reports.len(),
        connected: connected.len(),
        failed,
        closed_early,
        reconnects,
        resumed,
        encoding: args.encoding.name(),
        transport: args.transport.name(),
        rtt_ms: args.rtt * 1e3,
        jitter_ms: args.jitter * 1e3,
        loss: args.loss,
        duration_s: args.duration,
        stats,
        transports,
        first_error,
        stopped_by_signal,
    };
    match serde_json::to_string(&summary) {
        Ok(json) => println!("NEXUS_BOTS_SUMMARY {json}"),
        Err(err) => tracing::error!("cannot encode the summary: {err}"),
    }
    if connected.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The transport lines of the report (per transport: states and inputs carried).
fn print_transports(asked: Transport, t: &TransportSummary) {
    println!(
        "states carried     websocket {}, webrtc {}",
        t.states_websocket, t.states_webrtc
    );
    println!(
        "inputs carried     websocket {}, webrtc {}",
        t.input_frames_websocket, t.input_frames_webrtc
    );
    if asked != Transport::WebRtc {
        return;
    }
    println!(
        "data channels      {} of {} clients (offer to open: mean {:.0} ms, max {:.0} ms)",
        t.clients_opened, t.clients, t.channel_open_mean_ms, t.channel_open_max_ms
    );
    for (reason, count) in &t.unavailable {
        println!("stayed on ws       {count}: {reason}");
    }
    for (reason, count) in &t.fallbacks {
        println!("fell back to ws    {count}: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("nexus-bots").chain(args.iter().copied()))
            .map(Args::from)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
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
        for bad in [
            &["--count", "0"][..],
            &["--count", "5001"],
            &["--count", "2.5"],
            &["--duration", "4000"],
            &["--loss", "2"],
            &["--rtt-ms", "nan"],
            &["--encoding", "xml"],
            &["--transport", "udp"],
            &["--transport", ""],
            &["--threads", "65"],
            &["--frobnicate"],
        ] {
            let error = parse(bad).expect_err(&format!("{bad:?}"));
            // Usage errors exit 2, as before clap.
            assert_eq!(error.exit_code(), 2, "{bad:?}");
        }
        let args = parse(&[
            "--count",
            "3",
            "--rtt-ms",
            "150",
            "--encoding",
            "json",
            "--frame-rate",
            "10.0",
        ])
        .unwrap();
        assert_eq!(args.count, 3);
        assert!((args.up_link().latency - 0.075).abs() < 1e-12);
        assert_eq!(args.encoding, Encoding::Json);
        assert_eq!(args.frame_rate, 10.0);
        let defaults = parse(&[]).unwrap();
        assert_eq!((defaults.count, defaults.threads), (10, 2));
        assert!(defaults.predict && defaults.interpolate);
        assert_eq!(defaults.ramp, Duration::from_millis(10));
        assert_eq!(defaults.transport, Transport::WebSocket);
        let webrtc = parse(&["--transport", "webrtc"]).unwrap();
        assert_eq!(webrtc.transport, Transport::WebRtc);
        assert_eq!(bot_options(&webrtc, 0).transport, Transport::WebRtc);
    }
}
