//! What a session measures: traffic, state age, prediction errors and corrections, interpolation.

use serde::Serialize;

/// A histogram of durations with fixed 1 ms buckets up to 5 s (bounded memory whatever the run
/// length; percentiles are exact to the millisecond).
#[derive(Clone, PartialEq)]
pub struct Histogram {
    counts: Vec<u32>,
    overflow: u64,
    total: u64,
    max: f64,
    sum: f64,
}

const BUCKET: f64 = 0.001;
const BUCKETS: usize = 5000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            overflow: 0,
            total: 0,
            max: 0.0,
            sum: 0.0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

impl Histogram {
    /// Records one value, seconds (negative values count as zero).
    pub fn record(&mut self, seconds: f64) {
        if !seconds.is_finite() {
            return;
        }
        let seconds = seconds.max(0.0);
        let index = (seconds / BUCKET) as usize;
        match self.counts.get_mut(index) {
            Some(count) => *count = count.saturating_add(1),
            None => self.overflow += 1,
        }
        self.total += 1;
        self.sum += seconds;
        self.max = self.max.max(seconds);
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.overflow += other.overflow;
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier` (an earlier copy of this histogram): the counts of a
    /// measuring window. The maximum is that of the whole run.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        Histogram {
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            overflow: self.overflow.saturating_sub(earlier.overflow),
            total: self.total.saturating_sub(earlier.total),
            max: self.max,
            sum: (self.sum - earlier.sum).max(0.0),
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest value, seconds.
    pub fn max(&self) -> f64 {
        self.max
    }

    /// Mean, seconds.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum / self.total as f64
        }
    }

    /// The `p`-quantile (`0.0..=1.0`), seconds: the upper edge of its bucket (the maximum when it
    /// lies beyond the last bucket).
    pub fn quantile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += u64::from(*count);
            if seen >= rank {
                return ((index + 1) as f64 * BUCKET).min(self.max);
            }
        }
        self.max
    }
}

/// Counters of one session (cumulative since it started).
#[derive(Clone, Debug, Default)]
pub struct SessionStats {
    /// Frames received (before any emulated loss).
    pub frames_received: u64,
    /// Bytes received (payloads, before any emulated loss).
    pub bytes_received: u64,
    /// Of those, frames lost to network emulation (never applied).
    pub frames_lost: u64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Bytes sent (payloads).
    pub bytes_sent: u64,
    /// State messages applied.
    pub states_applied: u64,
    /// State messages ignored (older than one applied) or undecodable.
    pub states_rejected: u64,
    /// Of those, the ones not newer than one applied (late, reordered or duplicated: normal on
    /// an unordered data channel and around a switch of transport).
    pub states_stale: u64,
    /// Age of each applied state on arrival: local time mapped to the server clock minus the
    /// state's timestamp.
    pub state_age: Histogram,
    /// From sending an input to applying the first state that acknowledges it
    /// (`last_input_seq`): the input's round trip through the simulation.
    pub input_ack_latency: Histogram,
    /// Inputs created (one per fixed tick).
    pub inputs_created: u64,
    /// Unacknowledged inputs sent again after resuming a lost session.
    pub inputs_replayed: u64,
    /// Inputs the server refused.
    pub inputs_rejected: u64,
    /// Acknowledged states compared with the prediction.
    pub reconciliations: u64,
    /// Of those, the ones that disagreed and rewound the prediction.
    pub corrections: u64,
    /// Sum of the distances the prediction moved in corrections, m.
    pub correction_total: f64,
    /// Largest correction, m.
    pub correction_max: f64,
    /// Rebases of the prediction on the server's idle steps before the first input (agreement
    /// found, not a disagreement; see `prediction::bootstrap`).
    pub rebases: u64,
    /// Largest rebase shift, m.
    pub rebase_max: f64,
    /// Largest prediction error at an acknowledged input, m.
    pub prediction_error_max: f64,
    /// Prediction error at the newest acknowledged input, m.
    pub prediction_error_last: f64,
    /// Error events received.
    pub errors_received: u64,
    /// Malformed frames received.
    pub malformed_frames: u64,
}

/// Which transport carried the state stream and the inputs, for a client that may use WebRTC
/// data channels beside the WebSocket (PROTOCOL.md section 11). Times are seconds of the
/// client's clock (since the connection opened).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TransportStats {
    /// State messages applied that came on the WebSocket.
    pub states_websocket: u64,
    /// State messages applied that came on the `state` data channel.
    pub states_webrtc: u64,
    /// Messages received on the `state` channel (applied or not).
    pub webrtc_messages_received: u64,
    /// Input batches sent on the WebSocket / on the `input` channel.
    pub input_frames_websocket: u64,
    /// Input batches sent on the `input` channel.
    pub input_frames_webrtc: u64,
    /// Acks alone sent on the `input` channel.
    pub acks_webrtc: u64,
    /// UDP datagrams and payload bytes, both ways.
    pub datagrams_sent: u64,
    /// UDP datagrams received.
    pub datagrams_received: u64,
    /// UDP payload bytes sent.
    pub udp_bytes_sent: u64,
    /// UDP payload bytes received.
    pub udp_bytes_received: u64,
    /// Offers sent.
    pub offers: u64,
    /// When the newest offer went out.
    pub offered_at: Option<f64>,
    /// From the newest offer to the server's `open` (states on the channel from then on).
    pub channel_open_seconds: Option<f64>,
    /// Whether the state stream is on the data channel now.
    pub webrtc_active: bool,
    /// Why the client never offered (WebRTC asked for, but the server's welcome did not offer
    /// it, or the peer could not be created).
    pub webrtc_unavailable: Option<String>,
    /// Each time the stream or the inputs went back to the WebSocket after an offer.
    pub fallbacks: Vec<Fallback>,
    /// Largest gap between the ticks of two successive applied states (whatever transport).
    pub max_tick_gap: u64,
    /// Ticks between the last state before and the first state after the stream moved to
    /// the data channel.
    pub open_tick_gap: Option<u64>,
}

/// One return to the WebSocket.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Fallback {
    /// When (client clock, seconds).
    pub at: f64,
    /// Why: the server's reason (`timeout`, `channel_closed`, `unresponsive`, `replaced`,
    /// `failed`) or the client's (`closed_by_client`, `refused: <code>`, `no_answer`,
    /// `answer_rejected`, `peer_failed`, `channel_closed_remotely`, `open_timeout`).
    pub reason: String,
    /// The server's reason, when it came after the client's own.
    pub server_reason: Option<String>,
    /// Ticks between the last state applied before it and the first after it.
    pub tick_gap: Option<u64>,
}

/// [`TransportStats`] of many clients, for reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TransportSummary {
    /// Clients summarised.
    pub clients: usize,
    /// Clients whose state stream was on the data channel at some point.
    pub clients_opened: usize,
    /// Clients that stayed on the WebSocket without offering, by reason.
    pub unavailable: std::collections::BTreeMap<String, usize>,
    /// State messages applied per transport, in total.
    pub states_websocket: u64,
    /// See [`TransportStats::states_webrtc`].
    pub states_webrtc: u64,
    /// Input batches sent per transport, in total.
    pub input_frames_websocket: u64,
    /// See [`TransportStats::input_frames_webrtc`].
    pub input_frames_webrtc: u64,
    /// Offer to `open`, mean and largest, milliseconds.
    pub channel_open_mean_ms: f64,
    /// See `channel_open_mean_ms`.
    pub channel_open_max_ms: f64,
    /// Fallbacks by reason.
    pub fallbacks: std::collections::BTreeMap<String, usize>,
    /// Largest tick gap of any client.
    pub max_tick_gap: u64,
}

impl TransportSummary {
    /// Sums the stats of many clients.
    pub fn of<'a>(clients: impl IntoIterator<Item = &'a TransportStats>) -> Self {
        let mut summary = TransportSummary::default();
        let mut open_total = 0.0;
        let mut opened = 0usize;
        for stats in clients {
            summary.clients += 1;
            summary.states_websocket += stats.states_websocket;
            summary.states_webrtc += stats.states_webrtc;
            summary.input_frames_websocket += stats.input_frames_websocket;
            summary.input_frames_webrtc += stats.input_frames_webrtc;
            summary.max_tick_gap = summary.max_tick_gap.max(stats.max_tick_gap);
            if let Some(reason) = &stats.webrtc_unavailable {
                *summary.unavailable.entry(reason.clone()).or_default() += 1;
            }
            if let Some(open) = stats.channel_open_seconds {
                opened += 1;
                open_total += open;
                summary.channel_open_max_ms = summary.channel_open_max_ms.max(open * 1e3);
            }
            if stats.states_webrtc > 0 || stats.channel_open_seconds.is_some() {
                summary.clients_opened += 1;
            }
            for fallback in &stats.fallbacks {
                *summary
                    .fallbacks
                    .entry(fallback.reason.clone())
                    .or_default() += 1;
            }
        }
        if opened > 0 {
            summary.channel_open_mean_ms = open_total * 1e3 / opened as f64;
        }
        summary
    }
}

/// A flat summary of one or many sessions, for printing and JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsSummary {
    /// Sessions summarised.
    pub clients: usize,
    /// Longest time one session was measured, seconds.
    pub seconds: f64,
    /// Received bytes per second per client (mean).
    pub rx_bytes_per_sec_per_client: f64,
    /// Sent bytes per second per client (mean).
    pub tx_bytes_per_sec_per_client: f64,
    /// State messages applied per second per client (mean).
    pub states_per_sec_per_client: f64,
    /// State age at the clients, median, milliseconds.
    pub state_age_p50_ms: f64,
    /// State age at the clients, 99th percentile, milliseconds.
    pub state_age_p99_ms: f64,
    /// Corrections in total.
    pub corrections: u64,
    /// Acknowledged states compared, in total.
    pub reconciliations: u64,
    /// Mean correction, millimetres.
    pub correction_mean_mm: f64,
    /// Largest correction, millimetres.
    pub correction_max_mm: f64,
    /// Inputs refused by the server.
    pub inputs_rejected: u64,
    /// Error events received.
    pub errors_received: u64,
    /// Frames that could not be decoded (a binary state whose baseline is missing among them).
    pub malformed_frames: u64,
    /// Binary state messages rejected (each makes the client ask for a full state).
    pub states_rejected: u64,
}

impl StatsSummary {
    /// Summarises sessions, each measured over its own number of seconds.
    pub fn of<'a>(sessions: impl IntoIterator<Item = (&'a SessionStats, f64)>) -> Self {
        let mut summary = StatsSummary::default();
        let mut ages = Histogram::default();
        let (mut rx, mut tx, mut states, mut correction_total) = (0u64, 0u64, 0u64, 0.0);
        let mut client_seconds = 0.0;
        for (stats, seconds) in sessions {
            summary.clients += 1;
            summary.seconds = summary.seconds.max(seconds);
            client_seconds += seconds.max(0.0);
            rx += stats.bytes_received;
            tx += stats.bytes_sent;
            states += stats.states_applied;
            ages.merge(&stats.state_age);
            summary.corrections += stats.corrections;
            summary.reconciliations += stats.reconciliations;
            correction_total += stats.correction_total;
            summary.correction_max_mm = summary.correction_max_mm.max(stats.correction_max * 1e3);
            summary.inputs_rejected += stats.inputs_rejected;
            summary.errors_received += stats.errors_received;
            summary.malformed_frames += stats.malformed_frames;
            summary.states_rejected += stats.states_rejected;
        }
        if client_seconds > 0.0 {
            summary.rx_bytes_per_sec_per_client = rx as f64 / client_seconds;
            summary.tx_bytes_per_sec_per_client = tx as f64 / client_seconds;
            summary.states_per_sec_per_client = states as f64 / client_seconds;
        }
        summary.state_age_p50_ms = ages.quantile(0.5) * 1e3;
        summary.state_age_p99_ms = ages.quantile(0.99) * 1e3;
        if summary.corrections > 0 {
            summary.correction_mean_mm = correction_total * 1e3 / summary.corrections as f64;
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_exact_to_the_bucket() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(ms as f64 / 1000.0 - 0.0005);
        }
        assert!(
            (h.quantile(0.5) - 0.050).abs() < 1e-9,
            "{}",
            h.quantile(0.5)
        );
        assert!(
            (h.quantile(0.99) - 0.099).abs() < 1e-9,
            "{}",
            h.quantile(0.99)
        );
        h.record(9.0);
        assert_eq!(h.quantile(1.0), 9.0);
        let mut merged = Histogram::default();
        merged.merge(&h);
        assert_eq!(merged.count(), 101);
    }

    #[test]
    fn summary_rates_are_per_client_second() {
        let mut a = SessionStats {
            bytes_received: 1000,
            corrections: 2,
            correction_total: 0.004,
            ..SessionStats::default()
        };
        a.state_age.record(0.05);
        let b = SessionStats {
            bytes_received: 3000,
            ..SessionStats::default()
        };
        let summary = StatsSummary::of([(&a, 1.0), (&b, 3.0)]);
        assert_eq!(summary.clients, 2);
        assert!((summary.rx_bytes_per_sec_per_client - 1000.0).abs() < 1e-9);
        assert!((summary.correction_mean_mm - 2.0).abs() < 1e-9);
        assert!((summary.state_age_p50_ms - 50.0).abs() < 1.0 + 1e-9);
    }
}
