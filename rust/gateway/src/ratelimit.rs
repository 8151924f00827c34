//! A token bucket: `rate` tokens per second, holding at most `capacity`.

use std::time::Instant;

/// Token bucket rate limiter; time is passed in so tests and callers control it.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    rate_per_second: f64,
    tokens: f64,
    last_refill: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_second: f64, capacity: f64, now: Instant) -> Self {
        let capacity = capacity.max(1.0);
        TokenBucket {
            capacity,
            rate_per_second: rate_per_second.max(0.0),
            tokens: capacity,
            last_refill: now,
        }
    }

    /// Takes `cost` tokens if the bucket holds them; otherwise takes nothing and returns false.
    pub fn try_take(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_second).min(self.capacity);
        self.last_refill = now;
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, t0);
        assert_eq!((0..8).filter(|_| bucket.try_take(1.0, t0)).count(), 5);
        // 0.5 s later: 5 more tokens, no more (capped by the capacity).
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..8).filter(|_| bucket.try_take(1.0, t1)).count(), 5);
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!((0..8).filter(|_| bucket.try_take(1.0, t2)).count(), 5);
    }

    #[test]
    fn a_batch_costs_its_size_and_is_refused_whole() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 4.0, t0);
        assert!(!bucket.try_take(5.0, t0));
        assert!(bucket.try_take(3.0, t0));
        assert!(!bucket.try_take(2.0, t0));
        assert!(bucket.try_take(1.0, t0));
    }
}
