//! Clock synchronisation with the server: offset and round-trip time from pings, and the server's
//! tick clock from the state stream.
//!
//! How it works:
//! - Each `session:pong` gives a round trip `rtt = now - client_time` and an offset sample
//!   `server_time - (client_time + now) / 2` (exact when both directions take as long). The offset
//!   in use is the sample with the smallest round trip among the recent ones: queueing only ever
//!   adds delay, so the fastest exchange is the most symmetric (NTP's clock filter).
//! - The round trip is smoothed as TCP does (`srtt`, and `rttvar` as the jitter measure).
//! - Every state message says "tick `k` was taken at server time `s`": `s - k / rate` is when tick
//!   0 would have been. A late tick only makes it larger, so the smallest recent value is the
//!   server's tick clock. Together with the offset it tells the server's tick at any local time.

use std::collections::VecDeque;

use nexus_sim::state::Tick;

/// Recent ping samples kept for the offset filter.
const PING_WINDOW: usize = 16;
/// Recent state messages kept for the tick clock.
const TICK_WINDOW: usize = 64;

#[derive(Clone, Copy, Debug)]
struct PingSample {
    rtt: f64,
    offset: f64,
}

/// Offset, round-trip time and server tick estimation. Times are seconds: `now` on the client's
/// monotonic clock (any origin), server times in Unix seconds.
#[derive(Clone, Debug)]
pub struct ClockSync {
    tick_rate: f64,
    pings: VecDeque<PingSample>,
    /// Offset used before any pong: from the welcome's server time (off by the one-way delay).
    coarse_offset: Option<f64>,
    srtt: Option<f64>,
    rttvar: f64,
    tick_origins: VecDeque<f64>,
    pongs: u64,
}

impl ClockSync {
    /// A clock for a server running `tick_rate` ticks per second.
    pub fn new(tick_rate: u32) -> Self {
        ClockSync {
            tick_rate: f64::from(tick_rate.max(1)),
            pings: VecDeque::new(),
            coarse_offset: None,
            srtt: None,
            rttvar: 0.0,
            tick_origins: VecDeque::new(),
            pongs: 0,
        }
    }

    /// Changes the tick rate (the welcome tells the real one); forgets the tick clock.
    pub fn set_tick_rate(&mut self, tick_rate: u32) {
        self.tick_rate = f64::from(tick_rate.max(1));
        self.tick_origins.clear();
    }

    /// Server ticks per second.
    pub fn tick_rate(&self) -> f64 {
        self.tick_rate
    }

    /// A server time seen at local time `now` with unknown delay (the welcome's `server_time`).
    pub fn on_server_time(&mut self, now: f64, server_time: f64) {
        if server_time.is_finite() && self.coarse_offset.is_none() {
            self.coarse_offset = Some(server_time - now);
        }
    }

    /// A pong arrived at `now` for a ping sent at `client_time`, answered at `server_time`.
    pub fn on_pong(&mut self, now: f64, client_time: f64, server_time: f64) {
        let rtt = now - client_time;
        if !(rtt.is_finite() && rtt >= 0.0 && server_time.is_finite()) {
            return;
        }
        self.pongs += 1;
        let offset = server_time - (client_time + now) / 2.0;
        self.pings.push_back(PingSample { rtt, offset });
        while self.pings.len() > PING_WINDOW {
            self.pings.pop_front();
        }
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2.0;
            }
            Some(srtt) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (srtt - rtt).abs();
                self.srtt = Some(0.875 * srtt + 0.125 * rtt);
            }
        }
    }

    /// A state message of `tick`, taken at server time `timestamp`.
    pub fn on_state(&mut self, tick: Tick, timestamp: f64) {
        if !timestamp.is_finite() || timestamp <= 0.0 {
            return;
        }
        self.tick_origins
            .push_back(timestamp - tick as f64 / self.tick_rate);
        while self.tick_origins.len() > TICK_WINDOW {
            self.tick_origins.pop_front();
        }
    }

    /// Pongs received so far.
    pub fn pongs(&self) -> u64 {
        self.pongs
    }

    /// Server time minus local time, seconds.
    pub fn offset(&self) -> Option<f64> {
        self.pings
            .iter()
            .min_by(|a, b| a.rtt.total_cmp(&b.rtt))
            .map(|s| s.offset)
            .or(self.coarse_offset)
    }

    /// Smoothed round-trip time, seconds.
    pub fn rtt(&self) -> Option<f64> {
        self.srtt
    }

    /// Round-trip variation (jitter), seconds.
    pub fn rtt_jitter(&self) -> f64 {
        self.rttvar
    }

    /// The server's clock at local time `now`.
    pub fn server_time(&self, now: f64) -> Option<f64> {
        self.offset().map(|offset| now + offset)
    }

    /// The server's (fractional) tick at local time `now`.
    pub fn server_tick(&self, now: f64) -> Option<f64> {
        let origin = self
            .tick_origins
            .iter()
            .copied()
            .min_by(|a, b| a.total_cmp(b))?;
        Some((self.server_time(now)? - origin) * self.tick_rate)
    }

    /// Whether the estimates rest on real measurements (pongs and states), enough to target
    /// inputs at server ticks.
    pub fn is_synced(&self) -> bool {
        self.pongs >= 2 && self.tick_origins.len() >= 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_comes_from_the_fastest_exchange() {
        let mut clock = ClockSync::new(60);
        let true_offset = 1_000.0;
        // Symmetric 50 ms exchange, then a slow one whose delay sits on the way back only.
        clock.on_pong(10.10, 10.0, 10.05 + true_offset);
        clock.on_pong(20.40, 20.0, 20.05 + true_offset);
        assert!((clock.offset().unwrap() - true_offset).abs() < 1e-9);
        let rtt = clock.rtt().unwrap();
        assert!(rtt > 0.1 && rtt < 0.4, "{rtt}");
    }

    #[test]
    fn server_tick_follows_the_state_stream() {
        let mut clock = ClockSync::new(60);
        let offset = 500.0;
        clock.on_pong(1.0, 1.0, 1.0 + offset);
        // Tick 600 taken at server time 510 (so tick 0 at 500), one message late by 30 ms.
        clock.on_state(600, 510.0);
        clock.on_state(603, 510.05 + 0.03);
        let tick = clock.server_tick(12.0).unwrap();
        assert!((tick - 720.0).abs() < 1e-6, "{tick}");
    }

    #[test]
    fn nonsense_samples_are_ignored() {
        let mut clock = ClockSync::new(60);
        clock.on_pong(1.0, 2.0, 3.0); // negative round trip
        clock.on_pong(1.0, 0.5, f64::NAN);
        clock.on_state(5, f64::INFINITY);
        assert_eq!(clock.pongs(), 0);
        assert!(clock.server_tick(1.0).is_none());
    }
}
