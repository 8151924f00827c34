//! The playback clock of remote objects: which server tick to show now.
//!
//! How it works: each state message of tick `k` arriving at local time `a` gives a *lag*
//! `a·rate − k` (in ticks: the clock offset plus that message's delay). The smallest recent lag
//! is the fastest path; the spread of the lags above it is the jitter. The target playback tick
//! at local time `t` is `t·rate − min_lag − delay`, with
//! `delay = max(jitter_p95 + spare_intervals · interval, min_intervals · interval)`: with the
//! default two spare intervals (one to hold the next snapshot, one to survive a lost one) and a
//! floor of three, the delay stays around three snapshot intervals and grows with jitter. The
//! playback tick follows its target smoothly (speeding up or slowing down by a few percent), and
//! only jumps when it is far off (start, long stall).

use std::collections::VecDeque;

use nexus_sim::state::Tick;

/// How the playback delay adapts.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineConfig {
    /// Snapshot intervals kept beyond the jitter (default 2).
    pub spare_intervals: f64,
    /// Smallest delay in snapshot intervals (default 3).
    pub min_intervals: f64,
    /// Largest delay, seconds (default 1).
    pub max_delay: f64,
    /// Fastest speed change of the playback clock to catch up with its target (default 0.1:
    /// between 0.9× and 1.1×).
    pub max_speed_change: f64,
    /// Seconds over which an offset from the target is caught up (default 1).
    pub catch_up_time: f64,
    /// Farther than this from its target (seconds), the playback clock jumps (default 0.5).
    pub jump_threshold: f64,
    /// Percentile of the lag spread treated as the jitter (default 0.95).
    pub jitter_percentile: f64,
    /// Messages remembered for the lag statistics (default 100).
    pub window: usize,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            spare_intervals: 2.0,
            min_intervals: 3.0,
            max_delay: 1.0,
            max_speed_change: 0.1,
            catch_up_time: 1.0,
            jump_threshold: 0.5,
            jitter_percentile: 0.95,
            window: 100,
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Timeline {
    config: TimelineConfig,
    rate: f64,
    /// Expected ticks between snapshots (from the welcome's state rate, then measured).
    nominal_interval: f64,
    lags: VecDeque<f64>,
    gaps: VecDeque<u64>,
    last_tick: Option<Tick>,
    playback: Option<f64>,
    last_now: Option<f64>,
    speed: f64,
}

impl Timeline {
    /// A timeline for a server of `tick_rate` sending `state_rate` snapshots per second.
    pub fn new(config: TimelineConfig, tick_rate: u32, state_rate: u32) -> Self {
        let rate = f64::from(tick_rate.max(1));
        Timeline {
            config,
            rate,
            nominal_interval: rate / f64::from(state_rate.clamp(1, tick_rate.max(1))),
            lags: VecDeque::new(),
            gaps: VecDeque::new(),
            last_tick: None,
            playback: None,
            last_now: None,
            speed: 1.0,
        }
    }

    /// A state message of `tick` arrived at local time `now`.
    pub fn on_state(&mut self, now: f64, tick: Tick) {
        if let Some(last) = self.last_tick {
            if tick <= last {
                return;
            }
            self.gaps.push_back(tick - last);
            while self.gaps.len() > self.config.window.max(1) {
                self.gaps.pop_front();
            }
        }
        self.last_tick = Some(tick);
        self.lags.push_back(now * self.rate - tick as f64);
        while self.lags.len() > self.config.window.max(1) {
            self.lags.pop_front();
        }
    }

    /// Ticks between snapshots: the median gap between received ticks (robust to losses), or
    /// the nominal one before there are enough.
    pub fn interval(&self) -> f64 {
        if self.gaps.len() < 5 {
            return self.nominal_interval;
        }
        let mut gaps: Vec<u64> = self.gaps.iter().copied().collect();
        gaps.sort_unstable();
        gaps[gaps.len() / 2] as f64
    }

    fn min_lag(&self) -> Option<f64> {
        self.lags.iter().copied().min_by(|a, b| a.total_cmp(b))
    }

    /// The jitter of arrivals: the spread of the lags above the fastest one, ticks.
    pub fn jitter(&self) -> f64 {
        let Some(min) = self.min_lag() else {
            return 0.0;
        };
        let mut spread: Vec<f64> = self.lags.iter().map(|l| l - min).collect();
        spread.sort_by(|a, b| a.total_cmp(b));
        let index = ((spread.len() - 1) as f64 * self.config.jitter_percentile).round() as usize;
        spread[index.min(spread.len() - 1)]
    }

    /// The delay behind the fastest arrival path, ticks.
    pub fn delay(&self) -> f64 {
        let interval = self.interval();
        let wanted = (self.jitter() + self.config.spare_intervals * interval)
            .max(self.config.min_intervals * interval);
        wanted.min(self.config.max_delay * self.rate)
    }

    /// The delay in seconds.
    pub fn delay_seconds(&self) -> f64 {
        self.delay() / self.rate
    }

    /// Where playback should be at local time `now`, ticks.
    pub fn target(&self, now: f64) -> Option<f64> {
        Some(now * self.rate - self.min_lag()? - self.delay())
    }

    /// Advances the playback clock to local time `now`; returns the (fractional) tick to show.
    pub fn advance(&mut self, now: f64) -> Option<f64> {
        let target = self.target(now)?;
        let jump = self.config.jump_threshold * self.rate;
        let playback = match (self.playback, self.last_now) {
            (Some(playback), Some(last_now)) if now >= last_now => {
                let advanced = playback + (now - last_now) * self.rate * self.speed;
                if (target - advanced).abs() > jump {
                    target
                } else {
                    advanced
                }
            }
            _ => target,
        };
        // Steer the speed so that the offset from the target is gone in `catch_up_time`.
        let error = target - playback;
        let change = (error / (self.config.catch_up_time * self.rate))
            .clamp(-self.config.max_speed_change, self.config.max_speed_change);
        self.speed = 1.0 + change;
        self.playback = Some(playback);
        self.last_now = Some(now);
        Some(playback)
    }

    /// The current speed of the playback clock (1.0 = real time).
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_three_intervals_on_a_clean_link_and_grows_with_jitter() {
        let mut clean = Timeline::new(TimelineConfig::default(), 60, 20);
        for i in 0..50u64 {
            clean.on_state(i as f64 * 0.05 + 0.1, i * 3);
        }
        assert!((clean.delay() - 9.0).abs() < 1e-9, "{}", clean.delay());

        let mut jittery = Timeline::new(TimelineConfig::default(), 60, 20);
        for i in 0..50u64 {
            // 0 or 80 ms late, alternately.
            let late = if i % 2 == 0 { 0.0 } else { 0.08 };
            jittery.on_state(i as f64 * 0.05 + 0.1 + late, i * 3);
        }
        let expected = 0.08 * 60.0 + 2.0 * 3.0;
        assert!(
            (jittery.delay() - expected).abs() < 1e-6,
            "{}",
            jittery.delay()
        );
    }

    #[test]
    fn playback_runs_at_real_time_once_settled() {
        let mut timeline = Timeline::new(TimelineConfig::default(), 60, 20);
        for i in 0..20u64 {
            timeline.on_state(i as f64 * 0.05, i * 3);
        }
        let a = timeline.advance(1.0).unwrap();
        let b = timeline.advance(1.5).unwrap();
        assert!(((b - a) - 30.0).abs() < 1e-6, "{}", b - a);
    }
}
