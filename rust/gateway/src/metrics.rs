//! Counters, gauges and histograms of the gateway, and their Prometheus rendering.
//!
//! Everything is a relaxed atomic: each figure is independent, so readers need no consistent cut
//! across them, and the hot paths (every outgoing message) pay one uncontended add; the host's
//! tick thread records its tick time the same way, so it never waits on a scrape. A scrape takes a
//! [`MetricsSnapshot`] and has `prometheus-client` encode it (text format 0.0.4, through a
//! [`Collector`] over the snapshot).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Content type of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Gateway-wide counters (shared by all tasks and campaign routers).
#[derive(Debug)]
pub(crate) struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub rejected_too_many: AtomicU64,
    pub rejected_per_address: AtomicU64,
    pub rejected_overload: AtomicU64,
    pub http_requests: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub state_dropped: AtomicU64,
    pub inputs_rejected: AtomicU64,
    pub errors_sent: AtomicU64,
    pub auth_failures: AtomicU64,
    pub auth_previous_secret: AtomicU64,
    pub resumes: AtomicU64,
    pub resumes_refused: AtomicU64,
    pub resumes_expired: AtomicU64,
    pub disconnect_slow: AtomicU64,
    pub disconnect_idle: AtomicU64,
    pub disconnect_join_timeout: AtomicU64,
    pub disconnect_flood: AtomicU64,
    pub disconnect_oversized: AtomicU64,
    pub task_panics: AtomicU64,
    pub states_encoded: AtomicU64,
    pub encode_nanos: AtomicU64,
    /// From a snapshot's publication by the campaign router to its hand-over to a client's
    /// socket, per state message.
    pub state_age: Histogram,
    /// Duration of each state encoding done for a client (shared encodings once).
    pub encode_duration: Histogram,
    /// Sizes of the state messages sent.
    pub state_message_bytes: Histogram,
    /// Sizes of the other (reliable) messages sent: welcomes, events, errors, pongs.
    pub event_message_bytes: Histogram,
    /// The WebRTC data channels (PROTOCOL.md section 11).
    pub webrtc: WebRtcMetrics,
}

/// Figures of the WebRTC data channels.
#[derive(Debug, Default)]
pub(crate) struct WebRtcMetrics {
    /// Sessions whose state stream is on a data channel now.
    pub clients: AtomicU64,
    pub offers: AtomicU64,
    pub opened: AtomicU64,
    pub states_sent: AtomicU64,
    pub state_bytes_sent: AtomicU64,
    pub input_frames: AtomicU64,
    pub fallback_timeout: AtomicU64,
    pub fallback_channel_closed: AtomicU64,
    pub fallback_unresponsive: AtomicU64,
    pub fallback_replaced: AtomicU64,
    pub fallback_failed: AtomicU64,
    pub dropped_unknown_peer: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_oversized: AtomicU64,
    pub dropped_channel_message: AtomicU64,
}

/// A copy of [`WebRtcMetrics`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct WebRtcMetricsSnapshot {
    /// Sessions whose state stream is on a data channel now.
    pub clients: u64,
    /// Offers answered.
    pub offers: u64,
    /// State channels that opened.
    pub opened: u64,
    /// State messages sent on data channels.
    pub states_sent: u64,
    /// Their bytes.
    pub state_bytes_sent: u64,
    /// Binary client frames received on `input` channels.
    pub input_frames: u64,
    /// Switches back to the WebSocket, by reason: `timeout`, `channel_closed`, `unresponsive`,
    /// `replaced`, `failed`.
    pub fallbacks: Vec<(String, u64)>,
    /// Datagrams or channel messages dropped, by reason: `unknown_peer`, `malformed`,
    /// `oversized`, `channel_message`.
    pub dropped: Vec<(String, u64)>,
}

impl WebRtcMetrics {
    pub fn fallback(&self, reason: &str) {
        let counter = match reason {
            "timeout" => &self.fallback_timeout,
            "channel_closed" => &self.fallback_channel_closed,
            "unresponsive" => &self.fallback_unresponsive,
            "replaced" => &self.fallback_replaced,
            _ => &self.fallback_failed,
        };
        Metrics::inc(counter);
    }

    fn snapshot(&self) -> WebRtcMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let named = |pairs: &[(&str, &AtomicU64)]| {
            pairs
                .iter()
                .map(|(name, c)| ((*name).to_string(), get(c)))
                .collect()
        };
        WebRtcMetricsSnapshot {
            clients: get(&self.clients),
            offers: get(&self.offers),
            opened: get(&self.opened),
            states_sent: get(&self.states_sent),
            state_bytes_sent: get(&self.state_bytes_sent),
            input_frames: get(&self.input_frames),
            fallbacks: named(&[
                ("timeout", &self.fallback_timeout),
                ("channel_closed", &self.fallback_channel_closed),
                ("unresponsive", &self.fallback_unresponsive),
                ("replaced", &self.fallback_replaced),
                ("failed", &self.fallback_failed),
            ]),
            dropped: named(&[
                ("unknown_peer", &self.dropped_unknown_peer),
                ("malformed", &self.dropped_malformed),
                ("oversized", &self.dropped_oversized),
                ("channel_message", &self.dropped_channel_message),
            ]),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let zero = AtomicU64::new;
        Metrics {
            connections_open: zero(0),
            connections_accepted: zero(0),
            rejected_too_many: zero(0),
            rejected_per_address: zero(0),
            rejected_overload: zero(0),
            http_requests: zero(0),
            messages_in: zero(0),
            bytes_in: zero(0),
            messages_out: zero(0),
            bytes_out: zero(0),
            state_dropped: zero(0),
            inputs_rejected: zero(0),
            errors_sent: zero(0),
            auth_failures: zero(0),
            auth_previous_secret: zero(0),
            resumes: zero(0),
            resumes_refused: zero(0),
            resumes_expired: zero(0),
            disconnect_slow: zero(0),
            disconnect_idle: zero(0),
            disconnect_join_timeout: zero(0),
            disconnect_flood: zero(0),
            disconnect_oversized: zero(0),
            task_panics: zero(0),
            states_encoded: zero(0),
            encode_nanos: zero(0),
            state_age: Histogram::new(&STATE_AGE_BOUNDS_NANOS, 1e9),
            encode_duration: Histogram::new(&ENCODE_BOUNDS_NANOS, 1e9),
            state_message_bytes: Histogram::new(&MESSAGE_BOUNDS_BYTES, 1.0),
            event_message_bytes: Histogram::new(&MESSAGE_BOUNDS_BYTES, 1.0),
            webrtc: WebRtcMetrics::default(),
        }
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }
    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }
}

/// Per-campaign counters.
#[derive(Debug)]
pub(crate) struct CampaignMetrics {
    pub clients: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub state_bytes_out: AtomicU64,
    pub state_dropped: AtomicU64,
    pub inputs_rejected: AtomicU64,
    pub ticks: AtomicU64,
    pub tick_nanos_last: AtomicU64,
    pub tick_nanos_max: AtomicU64,
    pub tick_nanos_total: AtomicU64,
    pub tick_histogram: Histogram,
    pub snapshots_published: AtomicU64,
    /// What the host last reported of its saving; `None` while it reported nothing.
    pub persistence: std::sync::Mutex<Option<PersistenceHealth>>,
}

/// How a campaign's saving goes, as its host reports it ([`crate::CampaignLink::report_persistence`]);
/// `/health` shows it, and a campaign whose saves fail makes the server `degraded`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PersistenceHealth {
    /// Completed saves.
    pub saves: u64,
    /// Failed save attempts (their data stays pending and is retried).
    pub failures: u64,
    /// Tick of the last completed save.
    pub last_saved_tick: Option<u64>,
    /// The last failure's message while saves fail; `None` once a save succeeds again.
    pub last_error: Option<String>,
    /// The campaign's lease, when its store is shared by many servers (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseHealth>,
}

/// How a campaign's lease stands (a store shared by a cluster): while it is not `held` the
/// world is paused or stopped, and the server is `degraded`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LeaseHealth {
    /// The server holding it (this one).
    pub owner: String,
    /// The fencing epoch.
    pub epoch: u64,
    /// `held`, `renewing` (the last renewal failed), `expired` or `lost`.
    pub state: String,
    /// Whether the world is simulating (false once the lease is too close to its expiry).
    pub simulating: bool,
    /// Why the lease is not `held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Successful renewals.
    pub renewals: u64,
    /// Failed renewals.
    pub renewal_failures: u64,
}

impl Default for CampaignMetrics {
    fn default() -> Self {
        let zero = AtomicU64::new;
        CampaignMetrics {
            clients: zero(0),
            messages_out: zero(0),
            bytes_out: zero(0),
            state_bytes_out: zero(0),
            state_dropped: zero(0),
            inputs_rejected: zero(0),
            ticks: zero(0),
            tick_nanos_last: zero(0),
            tick_nanos_max: zero(0),
            tick_nanos_total: zero(0),
            tick_histogram: Histogram::new(&TICK_BUCKET_BOUNDS_NANOS, 1e9),
            snapshots_published: zero(0),
            persistence: std::sync::Mutex::new(None),
        }
    }
}

/// Upper bounds (inclusive, nanoseconds) of the tick-time histogram's buckets: 0.1 ms to 100 ms,
/// about 25 % apart where ticks usually fall, with 16.7 ms (one 60 Hz frame) as an exact edge so
/// the share of ticks over that budget needs no estimate. Longer ticks go to one more bucket.
const TICK_BUCKET_BOUNDS_NANOS: [u64; 28] = [
    100_000,
    150_000,
    200_000,
    300_000,
    400_000,
    500_000,
    600_000,
    800_000,
    1_000_000,
    1_250_000,
    1_500_000,
    2_000_000,
    2_500_000,
    3_000_000,
    4_000_000,
    5_000_000,
    6_000_000,
    8_000_000,
    10_000_000,
    12_500_000,
    15_000_000,
    16_700_000,
    20_000_000,
    25_000_000,
    33_300_000,
    50_000_000,
    75_000_000,
    100_000_000,
];

/// Upper bounds (nanoseconds) of the state-age histogram: 0.1 ms to 1 s. A state waits for its
/// client's writer (and the latest-wins pacing of a slow client) before it is sent.
const STATE_AGE_BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_000_000,
    4_000_000,
    8_000_000,
    16_700_000,
    25_000_000,
    33_300_000,
    50_000_000,
    100_000_000,
    200_000_000,
    400_000_000,
    700_000_000,
    1_000_000_000,
];

/// Upper bounds (nanoseconds) of the state-encoding histogram: 5 µs to 50 ms.
const ENCODE_BOUNDS_NANOS: [u64; 14] = [
    5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000,
    10_000_000, 20_000_000, 30_000_000, 50_000_000,
];

/// Upper bounds (bytes) of the message-size histograms: 64 B to 1 MiB (the hard frame cap).
const MESSAGE_BOUNDS_BYTES: [u64; 15] = [
    64, 128, 256, 512, 1024, 2048, 4096, 8192, 16_384, 32_768, 65_536, 131_072, 262_144, 524_288,
    1_048_576,
];

/// Values counted per bucket of fixed bounds (plus an overflow bucket), and their sum: fixed
/// memory, two relaxed adds per value, and mergeable or subtractable by readers (Prometheus
/// computes percentiles over any window from two scrapes).
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Inclusive upper bounds, ascending, in the recorded unit (nanoseconds, bytes).
    bounds: &'static [u64],
    /// Recorded units per exposed one (1e9 for nanoseconds shown as seconds); a division, so
    /// that bounds print as written (700 ms is 0.7, not 0.7000000000000001).
    per_unit: f64,
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64], per_unit: f64) -> Self {
        Histogram {
            bounds,
            per_unit,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        // The first bucket whose bound is at least `value` (bounds are inclusive, as `le` says);
        // past the last bound, the overflow bucket.
        let index = self.bounds.partition_point(|&bound| bound < value);
        self.counts[index].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self
                .bounds
                .iter()
                .map(|&b| b as f64 / self.per_unit)
                .collect(),
            counts: self.counts(),
            sum: self.sum.load(Relaxed) as f64 / self.per_unit,
        }
    }
}

/// A point-in-time copy of a histogram.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HistogramSnapshot {
    /// Upper bounds (inclusive) of the buckets, ascending.
    pub bounds: Vec<f64>,
    /// Values per bucket, not cumulative; one more entry than `bounds`: above the last bound.
    pub counts: Vec<u64>,
    /// Sum of the values.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q`-quantile estimated like Prometheus' `histogram_quantile` (the overflow bucket runs
    /// up to the last bound); 0 when nothing was counted.
    pub fn quantile(&self, q: f64) -> f64 {
        let last = self.bounds.last().copied().unwrap_or(0.0);
        estimate_quantile(&self.bounds, &self.counts, last, q)
    }
}

/// The `q`-quantile (`0..=1`) of durations counted per bucket (`counts[i]` for bucket `i` of
/// `bounds`, one more for the overflow), estimated as Prometheus' `histogram_quantile` does:
/// linear interpolation inside the bucket holding the rank, the first bucket starting at 0. In
/// the overflow bucket the estimate runs up to `max` (the longest duration seen), not to infinity.
/// 0 when nothing was counted.
fn estimate_quantile(bounds: &[f64], counts: &[u64], max: f64, q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (index, &count) in counts.iter().enumerate() {
        if count > 0 && (below + count) as f64 >= rank {
            let lower = if index == 0 { 0.0 } else { bounds[index - 1] };
            let upper = bounds.get(index).copied().unwrap_or(max.max(lower));
            let fraction = (rank - below as f64) / count as f64;
            return lower + (upper - lower) * fraction.clamp(0.0, 1.0);
        }
        below += count;
    }
    max
}

impl CampaignMetrics {
    pub fn record_tick(&self, nanos: u64) {
        self.ticks.fetch_add(1, Relaxed);
        self.tick_nanos_last.store(nanos, Relaxed);
        self.tick_nanos_max.fetch_max(nanos, Relaxed);
        self.tick_nanos_total.fetch_add(nanos, Relaxed);
        self.tick_histogram.record(nanos);
    }

    pub fn snapshot(&self, campaign_id: &str) -> CampaignMetricsSnapshot {
        let bounds: Vec<f64> = TICK_BUCKET_BOUNDS_NANOS
            .iter()
            .map(|&nanos| nanos_to_seconds(nanos))
            .collect();
        let counts = self.tick_histogram.counts();
        let max = nanos_to_seconds(self.tick_nanos_max.load(Relaxed));
        CampaignMetricsSnapshot {
            campaign_id: campaign_id.to_string(),
            clients: self.clients.load(Relaxed),
            messages_out: self.messages_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            state_bytes_out: self.state_bytes_out.load(Relaxed),
            state_updates_dropped: self.state_dropped.load(Relaxed),
            inputs_rejected: self.inputs_rejected.load(Relaxed),
            ticks: self.ticks.load(Relaxed),
            tick_seconds_last: nanos_to_seconds(self.tick_nanos_last.load(Relaxed)),
            tick_seconds_max: nanos_to_seconds(self.tick_nanos_max.load(Relaxed)),
            tick_seconds_total: nanos_to_seconds(self.tick_nanos_total.load(Relaxed)),
            tick_seconds_p50: estimate_quantile(&bounds, &counts, max, 0.5),
            tick_seconds_p99: estimate_quantile(&bounds, &counts, max, 0.99),
            tick_seconds_bucket_bounds: bounds,
            tick_seconds_bucket_counts: counts,
            snapshots_published: self.snapshots_published.load(Relaxed),
            persistence: self
                .persistence
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

fn nanos_to_seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

/// A point-in-time copy of the gateway's figures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct MetricsSnapshot {
    /// Open WebSocket connections (joined or not).
    pub connections_open: u64,
    /// WebSocket connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused because the gateway was full.
    pub connections_rejected_total_limit: u64,
    /// Connections refused because their address had too many.
    pub connections_rejected_address_limit: u64,
    /// Sockets dropped unanswered because even the refusal budget was exhausted.
    pub connections_rejected_overload: u64,
    /// Plain HTTP requests served (`/metrics`, `/health`, errors).
    pub http_requests: u64,
    /// WebSocket data messages received.
    pub messages_in: u64,
    /// Bytes of WebSocket data messages received.
    pub bytes_in: u64,
    /// WebSocket data messages sent.
    pub messages_out: u64,
    /// Bytes of WebSocket data messages sent.
    pub bytes_out: u64,
    /// State stream messages replaced by a newer one before a slow client could take them.
    pub state_updates_dropped: u64,
    /// Client inputs refused (rate limit, not joined, forbidden, host refusal).
    pub inputs_rejected: u64,
    /// Error events sent.
    pub errors_sent: u64,
    /// Join attempts refused for their token.
    pub auth_failures: u64,
    /// Joins whose token the previous secret of a key rotation signed (0 for a while: retire it).
    pub auth_previous_secret: u64,
    /// Sessions taken back on a new connection after a lost one.
    pub resumes: u64,
    /// Joins with a resume token that matched no resumable session (they joined afresh).
    pub resumes_refused: u64,
    /// Lost sessions nobody resumed within the grace period.
    pub resumes_expired: u64,
    /// Clients disconnected because they could not keep up with reliable events.
    pub disconnects_slow_consumer: u64,
    /// Clients disconnected for silence (no frame, not even a pong, within the idle timeout).
    pub disconnects_idle: u64,
    /// Clients disconnected for not joining in time.
    pub disconnects_join_timeout: u64,
    /// Clients disconnected for flooding.
    pub disconnects_flood: u64,
    /// Clients disconnected for a frame above the hard size cap.
    pub disconnects_oversized: u64,
    /// Connection tasks that panicked (a bug: must stay 0).
    pub task_panics: u64,
    /// State messages encoded (one per client per snapshot it got).
    pub states_encoded: u64,
    /// Time spent encoding them, seconds (per-client encoding runs on the gateway's workers).
    pub state_encode_seconds: f64,
    /// Age of each state message when handed to its client's socket, seconds (from the
    /// publication of its snapshot by the campaign router).
    pub state_age_seconds: HistogramSnapshot,
    /// Duration of each state encoding, seconds.
    pub state_encode_duration_seconds: HistogramSnapshot,
    /// Sizes of the state messages sent, bytes.
    pub state_message_bytes: HistogramSnapshot,
    /// Sizes of the other messages sent (welcomes, events, errors, pongs), bytes.
    pub event_message_bytes: HistogramSnapshot,
    /// The WebRTC data channels.
    pub webrtc: WebRtcMetricsSnapshot,
    /// Per campaign, sorted by id.
    pub campaigns: Vec<CampaignMetricsSnapshot>,
}

/// A point-in-time copy of one campaign's figures.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CampaignMetricsSnapshot {
    /// Campaign id.
    pub campaign_id: String,
    /// Clients joined (welcomed) in this campaign.
    pub clients: u64,
    /// Messages sent to this campaign's clients.
    pub messages_out: u64,
    /// Bytes sent to this campaign's clients.
    pub bytes_out: u64,
    /// Of those, bytes of the state stream (the rest: welcomes, events, acks, errors).
    pub state_bytes_out: u64,
    /// State updates dropped (latest-wins) for this campaign's clients.
    pub state_updates_dropped: u64,
    /// Inputs of this campaign's clients refused.
    pub inputs_rejected: u64,
    /// Ticks the host reported.
    pub ticks: u64,
    /// Duration of the last reported tick.
    pub tick_seconds_last: f64,
    /// Longest reported tick.
    pub tick_seconds_max: f64,
    /// Sum of reported tick durations (with `ticks`, gives the mean).
    pub tick_seconds_total: f64,
    /// Median tick duration since the gateway started, estimated from the histogram (linear
    /// inside a bucket). For a window, subtract two scrapes of the Prometheus buckets.
    pub tick_seconds_p50: f64,
    /// 99th percentile of the tick duration since the gateway started, estimated likewise.
    pub tick_seconds_p99: f64,
    /// Upper bounds (inclusive), seconds, of the tick-time histogram's buckets, ascending.
    pub tick_seconds_bucket_bounds: Vec<f64>,
    /// Ticks per bucket, not cumulative: `[i]` counts durations above bound `i - 1` and at most
    /// bound `i`; the last entry (one more than the bounds) counts those above the last bound.
    pub tick_seconds_bucket_counts: Vec<u64>,
    /// State snapshots the host published.
    pub snapshots_published: u64,
    /// How the campaign's saving goes, if its host reports it.
    pub persistence: Option<PersistenceHealth>,
}

impl Metrics {
    pub fn snapshot(&self, campaigns: Vec<CampaignMetricsSnapshot>) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Relaxed);
        MetricsSnapshot {
            connections_open: get(&self.connections_open),
            connections_accepted: get(&self.connections_accepted),
            connections_rejected_total_limit: get(&self.rejected_too_many),
            connections_rejected_address_limit: get(&self.rejected_per_address),
            connections_rejected_overload: get(&self.rejected_overload),
            http_requests: get(&self.http_requests),
            messages_in: get(&self.messages_in),
            bytes_in: get(&self.bytes_in),
            messages_out: get(&self.messages_out),
            bytes_out: get(&self.bytes_out),
            state_updates_dropped: get(&self.state_dropped),
            inputs_rejected: get(&self.inputs_rejected),
            errors_sent: get(&self.errors_sent),
            auth_failures: get(&self.auth_failures),
            auth_previous_secret: get(&self.auth_previous_secret),
            resumes: get(&self.resumes),
            resumes_refused: get(&self.resumes_refused),
            resumes_expired: get(&self.resumes_expired),
            disconnects_slow_consumer: get(&self.disconnect_slow),
            disconnects_idle: get(&self.disconnect_idle),
            disconnects_join_timeout: get(&self.disconnect_join_timeout),
            disconnects_flood: get(&self.disconnect_flood),
            disconnects_oversized: get(&self.disconnect_oversized),
            task_panics: get(&self.task_panics),
            states_encoded: get(&self.states_encoded),
            state_encode_seconds: nanos_to_seconds(get(&self.encode_nanos)),
            state_age_seconds: self.state_age.snapshot(),
            state_encode_duration_seconds: self.encode_duration.snapshot(),
            state_message_bytes: self.state_message_bytes.snapshot(),
            event_message_bytes: self.event_message_bytes.snapshot(),
            webrtc: self.webrtc.snapshot(),
            campaigns,
        }
    }
}

impl MetricsSnapshot {
    /// The figures in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector(self.clone())));
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail, and the collector below never fails.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }
}

/// Encodes one snapshot: the gateway's figures are atomics read at scrape time, not
/// prometheus-client metrics (a scrape must not make the hot paths wait, and a campaign's series
/// go when it closes).
#[derive(Debug)]
struct SnapshotCollector(MetricsSnapshot);

/// Counters are named without `_total`: the encoder appends it.
fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeCounterValue
    + Clone
    + std::fmt::Debug
    + Send
    + Sync
    + 'static,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// `(upper bound, count)` pairs as the encoder takes them (not cumulative; `+Inf` last).
fn buckets(bounds: &[f64], counts: &[u64]) -> Vec<(f64, u64)> {
    bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(counts.iter().copied())
        .collect()
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(&[(&str, &str)], &HistogramSnapshot)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, histogram) in series {
        let buckets = buckets(&histogram.bounds, &histogram.counts);
        family
            .encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                histogram.sum,
                histogram.count(),
                &buckets,
                None,
            )?;
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        let e = &mut encoder;
        gauge(
            e,
            "nexus_gateway_connections",
            "Open WebSocket connections.",
            m.connections_open,
        )?;
        counter(
            e,
            "nexus_gateway_connections_accepted",
            "WebSocket connections accepted.",
            m.connections_accepted,
        )?;
        counter(
            e,
            "nexus_gateway_http_requests",
            "Plain HTTP requests served.",
            m.http_requests,
        )?;
        counter(
            e,
            "nexus_gateway_messages_in",
            "WebSocket data messages received.",
            m.messages_in,
        )?;
        counter(
            e,
            "nexus_gateway_bytes_in",
            "Bytes of WebSocket data messages received.",
            m.bytes_in,
        )?;
        counter(
            e,
            "nexus_gateway_messages_out",
            "WebSocket data messages sent.",
            m.messages_out,
        )?;
        counter(
            e,
            "nexus_gateway_bytes_out",
            "Bytes of WebSocket data messages sent.",
            m.bytes_out,
        )?;
        counter(
            e,
            "nexus_gateway_state_updates_dropped",
            "State updates replaced by a newer one before a slow client took them (latest-wins).",
            m.state_updates_dropped,
        )?;
        counter(
            e,
            "nexus_gateway_inputs_rejected",
            "Client inputs refused (rate limit, not joined, forbidden, host refusal).",
            m.inputs_rejected,
        )?;
        counter(
            e,
            "nexus_gateway_errors_sent",
            "Error events sent to clients.",
            m.errors_sent,
        )?;
        counter(
            e,
            "nexus_gateway_auth_failures",
            "Join attempts refused for their token.",
            m.auth_failures,
        )?;
        counter(
            e,
            "nexus_gateway_auth_previous_secret",
            "Joins with a token signed by the previous secret of a key rotation.",
            m.auth_previous_secret,
        )?;
        counter(
            e,
            "nexus_gateway_sessions_resumed",
            "Sessions taken back on a new connection after a lost one.",
            m.resumes,
        )?;
        counter(
            e,
            "nexus_gateway_session_resumes_refused",
            "Joins whose resume token matched no resumable session (joined afresh).",
            m.resumes_refused,
        )?;
        counter(
            e,
            "nexus_gateway_sessions_expired",
            "Lost sessions not resumed within the grace period.",
            m.resumes_expired,
        )?;
        counter(
            e,
            "nexus_gateway_states_encoded",
            "State messages encoded (one per client per snapshot it got).",
            m.states_encoded,
        )?;
        counter(
            e,
            "nexus_gateway_state_encode_seconds",
            "Time spent encoding state messages.",
            m.state_encode_seconds,
        )?;
        counter(
            e,
            "nexus_gateway_task_panics",
            "Connection tasks that panicked (a bug).",
            m.task_panics,
        )?;

        let mut family = e.encode_descriptor(
            "nexus_gateway_connections_rejected",
            "Connections refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("too_many_connections", m.connections_rejected_total_limit),
            (
                "too_many_connections_from_address",
                m.connections_rejected_address_limit,
            ),
            ("overload", m.connections_rejected_overload),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        let mut family = e.encode_descriptor(
            "nexus_gateway_disconnects",
            "Connections closed by the server, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("slow_consumer", m.disconnects_slow_consumer),
            ("idle_timeout", m.disconnects_idle),
            ("join_timeout", m.disconnects_join_timeout),
            ("flooding", m.disconnects_flood),
            ("frame_too_large", m.disconnects_oversized),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
        }

        let mut family = e.encode_descriptor(
            "nexus_gateway_clients_by_transport",
            "Joined clients by the transport of their state stream.",
            None,
            MetricType::Gauge,
        )?;
        let clients: u64 = m.campaigns.iter().map(|c| c.clients).sum();
        let webrtc_clients = m.webrtc.clients.min(clients);
        for (transport, value) in [
            ("websocket", clients - webrtc_clients),
            ("webrtc", webrtc_clients),
        ] {
            ConstGauge::new(value as i64)
                .encode(family.encode_family(&[("transport", transport)])?)?;
        }
        counter(
            e,
            "nexus_gateway_webrtc_offers",
            "WebRTC offers answered.",
            m.webrtc.offers,
        )?;
        counter(
            e,
            "nexus_gateway_webrtc_opened",
            "WebRTC state channels that opened.",
            m.webrtc.opened,
        )?;
        counter(
            e,
            "nexus_gateway_webrtc_states_sent",
            "State messages sent on WebRTC data channels.",
            m.webrtc.states_sent,
        )?;
        counter(
            e,
            "nexus_gateway_webrtc_state_bytes_sent",
            "Bytes of state messages sent on WebRTC data channels.",
            m.webrtc.state_bytes_sent,
        )?;
        counter(
            e,
            "nexus_gateway_webrtc_input_frames",
            "Binary client frames received on WebRTC input channels.",
            m.webrtc.input_frames,
        )?;
        for (name, help, pairs) in [
            (
                "nexus_gateway_webrtc_fallbacks",
                "State streams moved back from a data channel to the WebSocket, by reason.",
                &m.webrtc.fallbacks,
            ),
            (
                "nexus_gateway_webrtc_dropped",
                "UDP datagrams and data channel messages dropped, by reason.",
                &m.webrtc.dropped,
            ),
        ] {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, value) in pairs {
                ConstCounter::new(*value)
                    .encode(family.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }

        type Field = fn(&CampaignMetricsSnapshot) -> f64;
        // (name, type, help, value); integer figures are exact in an f64 far beyond any count
        // a gateway reaches, and the encoder prints whole numbers without a fraction.
        let per_campaign: [(&str, MetricType, &str, Field); 17] = [
            (
                "nexus_gateway_campaign_clients",
                MetricType::Gauge,
                "Clients joined, per campaign.",
                |c| c.clients as f64,
            ),
            (
                "nexus_gateway_campaign_messages_out",
                MetricType::Counter,
                "Messages sent, per campaign.",
                |c| c.messages_out as f64,
            ),
            (
                "nexus_gateway_campaign_bytes_out",
                MetricType::Counter,
                "Bytes sent, per campaign.",
                |c| c.bytes_out as f64,
            ),
            (
                "nexus_gateway_campaign_state_bytes_out",
                MetricType::Counter,
                "Bytes of the state stream sent, per campaign.",
                |c| c.state_bytes_out as f64,
            ),
            (
                "nexus_gateway_campaign_state_updates_dropped",
                MetricType::Counter,
                "State updates dropped (latest-wins), per campaign.",
                |c| c.state_updates_dropped as f64,
            ),
            (
                "nexus_gateway_campaign_inputs_rejected",
                MetricType::Counter,
                "Inputs refused, per campaign.",
                |c| c.inputs_rejected as f64,
            ),
            (
                "nexus_gateway_campaign_snapshots_published",
                MetricType::Counter,
                "State snapshots published by the host, per campaign.",
                |c| c.snapshots_published as f64,
            ),
            (
                "nexus_gateway_tick_seconds",
                MetricType::Gauge,
                "Duration of the host's last tick, per campaign.",
                |c| c.tick_seconds_last,
            ),
            (
                "nexus_gateway_tick_seconds_max",
                MetricType::Gauge,
                "Longest host tick, per campaign.",
                |c| c.tick_seconds_max,
            ),
            (
                "nexus_gateway_campaign_save_failing",
                MetricType::Gauge,
                "1 while the campaign's saves fail (their data stays pending), else 0.",
                |c| {
                    f64::from(u8::from(
                        c.persistence
                            .as_ref()
                            .is_some_and(|p| p.last_error.is_some()),
                    ))
                },
            ),
            (
                "nexus_gateway_campaign_lease_held",
                MetricType::Gauge,
                "1 while the campaign's cluster lease is held and its world simulates, else 0 (absent for local stores).",
                |c| {
                    lease_of(c).map_or(f64::NAN, |l| {
                        f64::from(u8::from(l.state == "held" && l.simulating))
                    })
                },
            ),
            (
                "nexus_gateway_campaign_lease_epoch",
                MetricType::Gauge,
                "Fencing epoch of the campaign's cluster lease.",
                |c| lease_of(c).map_or(f64::NAN, |l| l.epoch as f64),
            ),
            (
                "nexus_gateway_campaign_lease_renewals",
                MetricType::Counter,
                "Successful renewals of the campaign's cluster lease.",
                |c| lease_of(c).map_or(f64::NAN, |l| l.renewals as f64),
            ),
            (
                "nexus_gateway_campaign_lease_renewal_failures",
                MetricType::Counter,
                "Failed renewals of the campaign's cluster lease.",
                |c| lease_of(c).map_or(f64::NAN, |l| l.renewal_failures as f64),
            ),
            (
                "nexus_gateway_campaign_save_failures",
                MetricType::Counter,
                "Failed save attempts, per campaign.",
                |c| c.persistence.as_ref().map_or(0.0, |p| p.failures as f64),
            ),
            (
                "nexus_gateway_ticks",
                MetricType::Counter,
                "Host ticks reported, per campaign.",
                |c| c.ticks as f64,
            ),
            // A gauge so that the name stays `_sum` (the encoder would append `_total` to a
            // counter's); `nexus_gateway_campaign_tick_seconds_sum` is the same figure.
            (
                "nexus_gateway_tick_seconds_sum",
                MetricType::Gauge,
                "Sum of host tick durations, per campaign.",
                |c| c.tick_seconds_total,
            ),
        ];
        for (name, kind, help, field) in per_campaign {
            let mut family = e.encode_descriptor(name, help, None, kind)?;
            for campaign in &m.campaigns {
                let value = field(campaign);
                if value.is_nan() {
                    // Not applicable to this campaign (a lease without a cluster store).
                    continue;
                }
                let labels = [("campaign", campaign.campaign_id.as_str())];
                let metric = family.encode_family(&labels)?;
                match kind {
                    MetricType::Counter if value.fract() == 0.0 => {
                        ConstCounter::new(value as u64).encode(metric)?
                    }
                    MetricType::Counter => ConstCounter::new(value).encode(metric)?,
                    _ if value.fract() == 0.0 => ConstGauge::new(value as i64).encode(metric)?,
                    _ => ConstGauge::new(value).encode(metric)?,
                }
            }
        }
        let ticks: Vec<HistogramSnapshot> = m
            .campaigns
            .iter()
            .map(|c| HistogramSnapshot {
                bounds: c.tick_seconds_bucket_bounds.clone(),
                counts: c.tick_seconds_bucket_counts.clone(),
                sum: c.tick_seconds_total,
            })
            .collect();
        let labels: Vec<[(&str, &str); 1]> = m
            .campaigns
            .iter()
            .map(|c| [("campaign", c.campaign_id.as_str())])
            .collect();
        let series: Vec<(&[(&str, &str)], &HistogramSnapshot)> =
            labels.iter().map(|l| &l[..]).zip(ticks.iter()).collect();
        histogram(
            e,
            "nexus_gateway_campaign_tick_seconds",
            "Host tick durations, per campaign.",
            &series,
        )?;
        histogram(
            e,
            "nexus_gateway_state_age_seconds",
            "Age of state messages when handed to the client's socket, from the snapshot's publication.",
            &[(&[], &m.state_age_seconds)],
        )?;
        histogram(
            e,
            "nexus_gateway_state_encode_duration_seconds",
            "Duration of each state encoding.",
            &[(&[], &m.state_encode_duration_seconds)],
        )?;
        histogram(
            e,
            "nexus_gateway_message_out_bytes",
            "Sizes of the messages sent, by kind (state stream, or reliable events).",
            &[
                (&[("kind", "state")], &m.state_message_bytes),
                (&[("kind", "event")], &m.event_message_bytes),
            ],
        )?;
        Ok(())
    }
}

/// The campaign's cluster lease, if its store has one.
fn lease_of(campaign: &CampaignMetricsSnapshot) -> Option<&LeaseHealth> {
    campaign.persistence.as_ref()?.lease.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_types_and_escaped_campaign_labels() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.bytes_out, 1234);
        let campaign = CampaignMetrics::default();
        campaign.clients.store(3, Relaxed);
        campaign.record_tick(2_000_000);
        campaign.record_tick(1_000_000);
        let text = metrics
            .snapshot(vec![campaign.snapshot("a\"b")])
            .to_prometheus();
        assert!(text.contains("# TYPE nexus_gateway_bytes_out_total counter\n"));
        assert!(text.contains("\nnexus_gateway_bytes_out_total 1234\n"));
        assert!(text.contains("nexus_gateway_campaign_clients{campaign=\"a\\\"b\"} 3\n"));
        assert!(text.contains("nexus_gateway_tick_seconds{campaign=\"a\\\"b\"} 0.001\n"));
        assert!(text.contains("nexus_gateway_tick_seconds_max{campaign=\"a\\\"b\"} 0.002\n"));
        assert!(text.contains("nexus_gateway_ticks_total{campaign=\"a\\\"b\"} 2\n"));
        // Every sample line is `name{labels} value` or `name value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit_once(' ').expect("sample has a value").1;
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    /// Bucket index of a tick duration, by its bound in milliseconds (the overflow bucket: None).
    fn bucket_of_bound_ms(ms: Option<f64>) -> usize {
        match ms {
            Some(ms) => TICK_BUCKET_BOUNDS_NANOS
                .iter()
                .position(|&nanos| nanos as f64 / 1e6 == ms)
                .expect("a bucket bound"),
            None => TICK_BUCKET_BOUNDS_NANOS.len(),
        }
    }

    #[test]
    fn tick_histogram_counts_each_duration_in_its_inclusive_bucket() {
        let campaign = CampaignMetrics::default();
        for nanos in [
            0,
            50_000,
            100_000,     // on the first bound: still the first bucket (`le` is inclusive)
            100_001,     // just above it: the second
            16_700_000,  // the 60 Hz budget, exactly
            16_700_001,  // just over budget
            100_000_000, // the last bound
            100_000_001, // overflow
            2_000_000_000,
        ] {
            campaign.record_tick(nanos);
        }
        let snapshot = campaign.snapshot("0");
        let mut expected = vec![0u64; TICK_BUCKET_BOUNDS_NANOS.len() + 1];
        expected[bucket_of_bound_ms(Some(0.1))] = 3;
        expected[bucket_of_bound_ms(Some(0.15))] = 1;
        expected[bucket_of_bound_ms(Some(16.7))] = 1;
        expected[bucket_of_bound_ms(Some(20.0))] = 1;
        expected[bucket_of_bound_ms(Some(100.0))] = 1;
        expected[bucket_of_bound_ms(None)] = 2;
        assert_eq!(snapshot.tick_seconds_bucket_counts, expected);
        assert_eq!(snapshot.tick_seconds_bucket_bounds.len(), 28);
        assert_eq!(snapshot.tick_seconds_bucket_bounds[0], 0.0001);
        assert_eq!(snapshot.tick_seconds_bucket_bounds[21], 0.0167);

        let text = Metrics::default().snapshot(vec![snapshot]).to_prometheus();
        let name = "nexus_gateway_campaign_tick_seconds";
        for line in [
            format!("# TYPE {name} histogram\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.0001\"}} 3\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.00015\"}} 4\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.015\"}} 4\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.0167\"}} 5\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.02\"}} 6\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"0.1\"}} 7\n"),
            format!("\n{name}_bucket{{campaign=\"0\",le=\"+Inf\"}} 9\n"),
            format!("\n{name}_count{{campaign=\"0\"}} 9\n"),
            format!("\n{name}_sum{{campaign=\"0\"}} 2.233650003\n"),
        ] {
            assert!(text.contains(&line), "missing {line:?} in\n{text}");
        }
        // One bucket line per bound plus `+Inf`, cumulative counts never decreasing.
        let cumulative: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("nexus_gateway_campaign_tick_seconds_bucket{"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(cumulative.len(), 29);
        assert!(
            cumulative.windows(2).all(|w| w[0] <= w[1]),
            "{cumulative:?}"
        );
    }

    #[test]
    fn tick_percentiles_interpolate_inside_the_bucket_holding_the_rank() {
        let campaign = CampaignMetrics::default();
        let empty = campaign.snapshot("0");
        assert_eq!((empty.tick_seconds_p50, empty.tick_seconds_p99), (0.0, 0.0));

        // 98 ticks in (1.0, 1.25] ms and 2 in (25, 33.3] ms.
        for _ in 0..98 {
            campaign.record_tick(1_100_000);
        }
        campaign.record_tick(30_000_000);
        campaign.record_tick(31_000_000);
        let snapshot = campaign.snapshot("0");
        // Rank 50 of the 98 in the first bucket: 1.0 + 0.25 * 50/98 ms.
        let p50 = 0.001 + 0.00025 * 50.0 / 98.0;
        assert!(
            (snapshot.tick_seconds_p50 - p50).abs() < 1e-12,
            "{snapshot:?}"
        );
        // Rank 99: the first of the two in (25, 33.3] ms, half-way through that bucket.
        let p99 = 0.025 + (0.0333 - 0.025) * 0.5;
        assert!(
            (snapshot.tick_seconds_p99 - p99).abs() < 1e-12,
            "{snapshot:?}"
        );
    }

    #[test]
    fn tick_percentiles_beyond_the_last_bound_run_up_to_the_longest_tick() {
        let campaign = CampaignMetrics::default();
        for _ in 0..10 {
            campaign.record_tick(200_000_000);
        }
        let snapshot = campaign.snapshot("0");
        // Half-way between the last bound (100 ms) and the longest tick (200 ms).
        assert!(
            (snapshot.tick_seconds_p50 - 0.15).abs() < 1e-12,
            "{snapshot:?}"
        );
        assert!(
            (snapshot.tick_seconds_p99 - 0.199).abs() < 1e-12,
            "{snapshot:?}"
        );
    }

    #[test]
    fn gateway_histograms_count_sum_and_print_their_bounds_as_written() {
        let metrics = Metrics::default();
        metrics.state_age.record(700_000_000); // 0.7 s: on a bound, counted in it
        metrics.state_age.record(2_000_000_000); // past the last bound
        metrics.state_message_bytes.record(100);
        metrics.event_message_bytes.record(5_000_000);
        let snapshot = metrics.snapshot(vec![]);
        let age = &snapshot.state_age_seconds;
        assert_eq!(age.count(), 2);
        assert!((age.sum - 2.7).abs() < 1e-12, "{age:?}");
        assert_eq!(*age.counts.last().unwrap(), 1);
        assert!(
            (age.quantile(0.25) - 0.55).abs() < 1e-9,
            "{}",
            age.quantile(0.25)
        );
        let text = snapshot.to_prometheus();
        for line in [
            "\nnexus_gateway_state_age_seconds_bucket{le=\"0.4\"} 0\n",
            "\nnexus_gateway_state_age_seconds_bucket{le=\"0.7\"} 1\n",
            "\nnexus_gateway_state_age_seconds_bucket{le=\"+Inf\"} 2\n",
            "\nnexus_gateway_state_age_seconds_count 2\n",
            "\nnexus_gateway_message_out_bytes_bucket{kind=\"state\",le=\"128\"} 1\n",
            "\nnexus_gateway_message_out_bytes_bucket{kind=\"event\",le=\"+Inf\"} 1\n",
            "\nnexus_gateway_message_out_bytes_sum{kind=\"event\"} 5000000.0\n",
            "\nnexus_gateway_state_encode_duration_seconds_count 0\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
