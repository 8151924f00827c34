//! Counters and gauges of the gateway, and their Prometheus text rendering.
//!
//! Everything is a relaxed atomic: each figure is independent, so readers need no consistent cut
//! across them, and the hot paths (every outgoing message) pay one uncontended add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Content type of `/metrics`.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Gateway-wide counters (shared by all tasks and campaign routers).
#[derive(Default, Debug)]
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
    pub disconnect_slow: AtomicU64,
    pub disconnect_idle: AtomicU64,
    pub disconnect_join_timeout: AtomicU64,
    pub disconnect_flood: AtomicU64,
    pub disconnect_oversized: AtomicU64,
    pub task_panics: AtomicU64,
    pub states_encoded: AtomicU64,
    pub encode_nanos: AtomicU64,
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
#[derive(Default, Debug)]
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
    pub tick_histogram: TickHistogram,
    pub snapshots_published: AtomicU64,
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

/// Tick durations counted per bucket of [`TICK_BUCKET_BOUNDS_NANOS`] (plus the overflow bucket):
/// fixed memory, one relaxed add per tick, and mergeable or subtractable by readers (Prometheus
/// computes percentiles over any window from two scrapes).
#[derive(Debug)]
pub(crate) struct TickHistogram {
    counts: [AtomicU64; TICK_BUCKET_BOUNDS_NANOS.len() + 1],
}

impl Default for TickHistogram {
    fn default() -> Self {
        TickHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl TickHistogram {
    fn record(&self, nanos: u64) {
        // The first bucket whose bound is at least `nanos` (bounds are inclusive, as `le` says);
        // past the last bound, the overflow bucket.
        let index = TICK_BUCKET_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.counts[index].fetch_add(1, Relaxed);
    }

    fn counts(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
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
            disconnects_slow_consumer: get(&self.disconnect_slow),
            disconnects_idle: get(&self.disconnect_idle),
            disconnects_join_timeout: get(&self.disconnect_join_timeout),
            disconnects_flood: get(&self.disconnect_flood),
            disconnects_oversized: get(&self.disconnect_oversized),
            task_panics: get(&self.task_panics),
            states_encoded: get(&self.states_encoded),
            state_encode_seconds: nanos_to_seconds(get(&self.encode_nanos)),
            campaigns,
        }
    }
}

impl MetricsSnapshot {
    /// The figures in the Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut scalar = |name: &str, kind: &str, help: &str, value: &dyn std::fmt::Display| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        scalar(
            "nexus_gateway_connections",
            "gauge",
            "Open WebSocket connections.",
            &self.connections_open,
        );
        scalar(
            "nexus_gateway_connections_accepted_total",
            "counter",
            "WebSocket connections accepted.",
            &self.connections_accepted,
        );
        scalar(
            "nexus_gateway_http_requests_total",
            "counter",
            "Plain HTTP requests served.",
            &self.http_requests,
        );
        scalar(
            "nexus_gateway_messages_in_total",
            "counter",
            "WebSocket data messages received.",
            &self.messages_in,
        );
        scalar(
            "nexus_gateway_bytes_in_total",
            "counter",
            "Bytes of WebSocket data messages received.",
            &self.bytes_in,
        );
        scalar(
            "nexus_gateway_messages_out_total",
            "counter",
            "WebSocket data messages sent.",
            &self.messages_out,
        );
        scalar(
            "nexus_gateway_bytes_out_total",
            "counter",
            "Bytes of WebSocket data messages sent.",
            &self.bytes_out,
        );
        scalar(
            "nexus_gateway_state_updates_dropped_total",
            "counter",
            "State updates replaced by a newer one before a slow client took them (latest-wins).",
            &self.state_updates_dropped,
        );
        scalar(
            "nexus_gateway_inputs_rejected_total",
            "counter",
            "Client inputs refused (rate limit, not joined, forbidden, host refusal).",
            &self.inputs_rejected,
        );
        scalar(
            "nexus_gateway_errors_sent_total",
            "counter",
            "Error events sent to clients.",
            &self.errors_sent,
        );
        scalar(
            "nexus_gateway_auth_failures_total",
            "counter",
            "Join attempts refused for their token.",
            &self.auth_failures,
        );
        scalar(
            "nexus_gateway_states_encoded_total",
            "counter",
            "State messages encoded (one per client per snapshot it got).",
            &self.states_encoded,
        );
        scalar(
            "nexus_gateway_state_encode_seconds_total",
            "counter",
            "Time spent encoding state messages.",
            &self.state_encode_seconds,
        );
        scalar(
            "nexus_gateway_task_panics_total",
            "counter",
            "Connection tasks that panicked (a bug).",
            &self.task_panics,
        );

        let _ = writeln!(
            out,
            "# HELP nexus_gateway_connections_rejected_total Connections refused, by reason.\n\
             # TYPE nexus_gateway_connections_rejected_total counter"
        );
        for (reason, value) in [
            (
                "too_many_connections",
                self.connections_rejected_total_limit,
            ),
            (
                "too_many_connections_from_address",
                self.connections_rejected_address_limit,
            ),
            ("overload", self.connections_rejected_overload),
        ] {
            let _ = writeln!(
                out,
                "nexus_gateway_connections_rejected_total{{reason=\"{reason}\"}} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP nexus_gateway_disconnects_total Connections closed by the server, by reason.\n\
             # TYPE nexus_gateway_disconnects_total counter"
        );
        for (reason, value) in [
            ("slow_consumer", self.disconnects_slow_consumer),
            ("idle_timeout", self.disconnects_idle),
            ("join_timeout", self.disconnects_join_timeout),
            ("flooding", self.disconnects_flood),
            ("frame_too_large", self.disconnects_oversized),
        ] {
            let _ = writeln!(
                out,
                "nexus_gateway_disconnects_total{{reason=\"{reason}\"}} {value}"
            );
        }

        type Field = fn(&CampaignMetricsSnapshot) -> String;
        let per_campaign: [(&str, &str, &str, Field); 10] = [
            (
                "nexus_gateway_campaign_clients",
                "gauge",
                "Clients joined, per campaign.",
                |c| c.clients.to_string(),
            ),
            (
                "nexus_gateway_campaign_messages_out_total",
                "counter",
                "Messages sent, per campaign.",
                |c| c.messages_out.to_string(),
            ),
            (
                "nexus_gateway_campaign_bytes_out_total",
                "counter",
                "Bytes sent, per campaign.",
                |c| c.bytes_out.to_string(),
            ),
            (
                "nexus_gateway_campaign_state_bytes_out_total",
                "counter",
                "Bytes of the state stream sent, per campaign.",
                |c| c.state_bytes_out.to_string(),
            ),
            (
                "nexus_gateway_campaign_state_updates_dropped_total",
                "counter",
                "State updates dropped (latest-wins), per campaign.",
                |c| c.state_updates_dropped.to_string(),
            ),
            (
                "nexus_gateway_campaign_inputs_rejected_total",
                "counter",
                "Inputs refused, per campaign.",
                |c| c.inputs_rejected.to_string(),
            ),
            (
                "nexus_gateway_campaign_snapshots_published_total",
                "counter",
                "State snapshots published by the host, per campaign.",
                |c| c.snapshots_published.to_string(),
            ),
            (
                "nexus_gateway_tick_seconds",
                "gauge",
                "Duration of the host's last tick, per campaign.",
                |c| c.tick_seconds_last.to_string(),
            ),
            (
                "nexus_gateway_tick_seconds_max",
                "gauge",
                "Longest host tick, per campaign.",
                |c| c.tick_seconds_max.to_string(),
            ),
            (
                "nexus_gateway_ticks_total",
                "counter",
                "Host ticks reported, per campaign.",
                |c| c.ticks.to_string(),
            ),
        ];
        for (name, kind, help, field) in per_campaign {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for campaign in &self.campaigns {
                let _ = writeln!(
                    out,
                    "{name}{{campaign=\"{}\"}} {}",
                    escape_label(&campaign.campaign_id),
                    field(campaign)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP nexus_gateway_tick_seconds_sum Sum of host tick durations, per campaign.\n\
             # TYPE nexus_gateway_tick_seconds_sum counter"
        );
        for campaign in &self.campaigns {
            let _ = writeln!(
                out,
                "nexus_gateway_tick_seconds_sum{{campaign=\"{}\"}} {}",
                escape_label(&campaign.campaign_id),
                campaign.tick_seconds_total
            );
        }
        let name = "nexus_gateway_campaign_tick_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Host tick durations, per campaign.\n# TYPE {name} histogram"
        );
        for campaign in &self.campaigns {
            let label = escape_label(&campaign.campaign_id);
            // Buckets are cumulative in the exposition format; `_count` is the `+Inf` bucket,
            // so both come from the same counts even though the counters are read one by one.
            let mut cumulative = 0u64;
            for (index, &count) in campaign.tick_seconds_bucket_counts.iter().enumerate() {
                cumulative += count;
                let le = match campaign.tick_seconds_bucket_bounds.get(index) {
                    Some(bound) => bound.to_string(),
                    None => "+Inf".to_string(),
                };
                let _ = writeln!(
                    out,
                    "{name}_bucket{{campaign=\"{label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_sum{{campaign=\"{label}\"}} {}\n{name}_count{{campaign=\"{label}\"}} {cumulative}",
                campaign.tick_seconds_total
            );
        }
        out
    }
}

/// Escapes a label value as the exposition format requires (backslash, quote, newline).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
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
}
