//! Network emulation: latency, jitter and loss applied inside the client, on send and on receive.
//!
//! Used by the bots (to load a server as far-away players would) and by the tests (to run the real
//! session code over a bad network on a simulated clock, without sleeping).
//!
//! How it works: a [`DelayLine`] stamps every message with a delivery time
//! `now + latency ± jitter` and releases it once that time has come. Delivery stays in order (the
//! transport is TCP: a late message holds back the ones behind it), so jitter shows up as bunching,
//! as it does on a real WebSocket. Loss only applies to messages marked droppable (the state
//! stream is latest-wins; reliable events cannot be lost on a TCP stream).

use std::collections::VecDeque;

/// A small deterministic random number generator (SplitMix64): the same seed gives the same
/// network, so tests are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0.0..1.0`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `low..high`.
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }
}

/// Conditions of one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConditions {
    /// One-way base latency, seconds.
    pub latency: f64,
    /// Each message is delayed by an extra uniform `-jitter..=+jitter` seconds (never below zero).
    pub jitter: f64,
    /// Probability that a droppable message is lost, `0.0..=1.0`.
    pub loss: f64,
}

impl LinkConditions {
    /// A perfect link: no delay, no loss.
    pub const PERFECT: LinkConditions = LinkConditions {
        latency: 0.0,
        jitter: 0.0,
        loss: 0.0,
    };

    /// Whether the link changes nothing (messages pass straight through).
    pub fn is_perfect(&self) -> bool {
        self.latency <= 0.0 && self.jitter <= 0.0 && self.loss <= 0.0
    }

    /// Checks the numbers; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.latency.is_finite() && self.latency >= 0.0 && self.latency <= 10.0) {
            return Err(format!(
                "latency must be within 0..=10 s, got {}",
                self.latency
            ));
        }
        if !(self.jitter.is_finite() && self.jitter >= 0.0 && self.jitter <= 10.0) {
            return Err(format!(
                "jitter must be within 0..=10 s, got {}",
                self.jitter
            ));
        }
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss must be within 0..=1, got {}", self.loss));
        }
        Ok(())
    }
}

/// One direction of an emulated link: messages go in with the time they were sent and come out
/// when they are due.
#[derive(Clone, Debug)]
pub struct DelayLine<T> {
    conditions: LinkConditions,
    rng: Rng,
    queue: VecDeque<(f64, T)>,
    last_delivery: f64,
    dropped: u64,
}

impl<T> DelayLine<T> {
    /// A delay line with `conditions`, its randomness seeded by `seed`.
    pub fn new(conditions: LinkConditions, seed: u64) -> Self {
        DelayLine {
            conditions,
            rng: Rng::new(seed),
            queue: VecDeque::new(),
            last_delivery: f64::NEG_INFINITY,
            dropped: 0,
        }
    }

    /// The link's conditions.
    pub fn conditions(&self) -> LinkConditions {
        self.conditions
    }

    /// Sends `item` at time `now`. Returns false if it was lost (only `droppable` items can be).
    pub fn push(&mut self, now: f64, item: T, droppable: bool) -> bool {
        if droppable && self.conditions.loss > 0.0 && self.rng.next_f64() < self.conditions.loss {
            self.dropped += 1;
            return false;
        }
        let jitter = if self.conditions.jitter > 0.0 {
            self.rng
                .range(-self.conditions.jitter, self.conditions.jitter)
        } else {
            0.0
        };
        let delay = (self.conditions.latency + jitter).max(0.0);
        // In order, as on a TCP stream: never before the message sent ahead of it.
        let deliver_at = (now + delay).max(self.last_delivery);
        self.last_delivery = deliver_at;
        self.queue.push_back((deliver_at, item));
        true
    }

    /// The next item due at `now`, if any.
    pub fn pop_due(&mut self, now: f64) -> Option<T> {
        if self.queue.front().is_some_and(|(at, _)| *at <= now) {
            self.queue.pop_front().map(|(_, item)| item)
        } else {
            None
        }
    }

    /// When the next item is due.
    pub fn next_due(&self) -> Option<f64> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// Items in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Items lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_in_order_after_the_latency() {
        let conditions = LinkConditions {
            latency: 0.05,
            jitter: 0.02,
            loss: 0.0,
        };
        let mut line = DelayLine::new(conditions, 7);
        for i in 0..100 {
            assert!(line.push(i as f64 * 0.01, i, true));
        }
        let mut out = Vec::new();
        let mut now = 0.0;
        while out.len() < 100 {
            now += 0.001;
            while let Some(item) = line.pop_due(now) {
                out.push((now, item));
            }
        }
        for (n, (at, item)) in out.iter().enumerate() {
            assert_eq!(*item, n, "in order");
            let sent = n as f64 * 0.01;
            assert!(*at >= sent + 0.03 - 1e-9, "not before latency - jitter");
        }
    }

    #[test]
    fn loss_only_hits_droppable_items_at_the_configured_rate() {
        let conditions = LinkConditions {
            latency: 0.0,
            jitter: 0.0,
            loss: 0.05,
        };
        let mut line = DelayLine::new(conditions, 1);
        let kept = (0..20_000).filter(|i| line.push(0.0, *i, true)).count();
        let rate = 1.0 - kept as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&rate), "loss rate {rate}");
        assert!((0..1000).all(|i| line.push(0.0, i, false)));
    }

    #[test]
    fn bad_conditions_are_refused() {
        let bad = LinkConditions {
            latency: -1.0,
            ..LinkConditions::PERFECT
        };
        assert!(bad.validate().is_err());
        let bad = LinkConditions {
            loss: 1.5,
            ..LinkConditions::PERFECT
        };
        assert!(bad.validate().is_err());
        assert!(LinkConditions::PERFECT.validate().is_ok());
    }
}
