//! One direction of the link: read packets from one TUN device, drop some, and write the rest to
//! the other device once their delay has passed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conditions::{Conditions, DirectionStats};

/// Largest IP packet a TUN device hands out.
const MAX_PACKET: usize = 65535;
/// Packets read in a row before due packets are written again, so a flood cannot hold them up.
const READ_BATCH: usize = 64;

/// State the forwarders share with the [`Netem`](crate::Netem) handle.
pub struct Shared {
    pub conditions: Mutex<Conditions>,
    pub to_far: Counters,
    pub to_near: Counters,
}

#[derive(Default)]
pub struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    bytes_forwarded: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_queue_full: AtomicU64,
    write_errors: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> DirectionStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DirectionStats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            bytes_forwarded: get(&self.bytes_forwarded),
            dropped_loss: get(&self.dropped_loss),
            dropped_queue_full: get(&self.dropped_queue_full),
            write_errors: get(&self.write_errors),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

pub struct Forwarder {
    pub input: Arc<OwnedFd>,
    pub output: Arc<OwnedFd>,
    pub stop: Arc<OwnedFd>,
    pub shared: Arc<Shared>,
    pub to_far: bool,
    pub seed: u64,
    pub queue_limit: usize,
    pub allow_reorder: bool,
}

/// A packet waiting for its delivery time; ordered by time, then by arrival.
struct Pending {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

impl Forwarder {
    fn counters(&self) -> &Counters {
        if self.to_far {
            &self.shared.to_far
        } else {
            &self.shared.to_near
        }
    }

    /// Forwards until the stop event is signalled.
    pub fn run(self) {
        crate::sys::precise_timers();
        let mut rng = SplitMix64(self.seed);
        let mut queue: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
        let mut seq = 0u64;
        // Latest delivery time so far: without reordering, no packet is due before it.
        let mut last_due: Option<Instant> = None;
        let mut buf = vec![0u8; MAX_PACKET];
        loop {
            let now = Instant::now();
            while queue.peek().is_some_and(|head| head.0.due <= now) {
                let Reverse(pending) = queue.pop().expect("peeked");
                self.deliver(&pending.packet);
            }
            let timeout = queue
                .peek()
                .map(|head| head.0.due.saturating_duration_since(Instant::now()));
            // An error can only be EINTR: look again.
            let (readable, stopped) = poll(&self.input, &self.stop, timeout).unwrap_or_default();
            if stopped {
                return;
            }
            if !readable {
                continue;
            }
            for _ in 0..READ_BATCH {
                // SAFETY: reads into a live buffer of buf.len() bytes.
                let n = unsafe {
                    libc::read(self.input.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n <= 0 {
                    break; // EAGAIN: drained
                }
                let arrived = Instant::now();
                let counters = self.counters();
                bump(&counters.received, 1);
                let conditions = *self.shared.conditions.lock().expect("not poisoned");
                if conditions.loss > 0.0 && rng.next_f64() < conditions.loss {
                    bump(&counters.dropped_loss, 1);
                    continue;
                }
                if queue.len() >= self.queue_limit {
                    bump(&counters.dropped_queue_full, 1);
                    continue;
                }
                let mut due = arrived + conditions.delay_one_way;
                if !conditions.jitter.is_zero() {
                    // Uniform in [-jitter, +jitter], never before arrival.
                    let offset = conditions.jitter.mul_f64(rng.next_f64() * 2.0);
                    due = (due + offset)
                        .checked_sub(conditions.jitter)
                        .map_or(arrived, |due| due.max(arrived));
                }
                if !self.allow_reorder {
                    due = last_due.map_or(due, |last| due.max(last));
                }
                last_due = Some(last_due.map_or(due, |last| last.max(due)));
                queue.push(Reverse(Pending {
                    due,
                    seq,
                    packet: buf[..n as usize].to_vec(),
                }));
                seq += 1;
            }
        }
    }

    fn deliver(&self, packet: &[u8]) {
        let counters = self.counters();
        // SAFETY: writes a live byte slice; a TUN write injects one whole IP packet.
        let n = unsafe {
            libc::write(
                self.output.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
            )
        };
        if n == packet.len() as isize {
            bump(&counters.forwarded, 1);
            bump(&counters.bytes_forwarded, packet.len() as u64);
        } else {
            bump(&counters.write_errors, 1);
        }
    }
}

/// Waits (to the nanosecond, with `ppoll`) until `input` is readable, `stop` is signalled or
/// `timeout` passes (`None`: no limit). Returns (input readable, stop signalled).
fn poll(input: &OwnedFd, stop: &OwnedFd, timeout: Option<Duration>) -> io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd {
            fd: input.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: two live pollfds, a live (or null) timespec, no signal mask change.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, timespec_ptr, std::ptr::null()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fds[0].revents != 0, fds[1].revents != 0))
}

/// A small, seedable generator (SplitMix64): the same seed gives the same drops and jitter.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_draws_have_the_right_mean() {
        let mut rng = SplitMix64(7);
        let n = 100_000;
        let below = (0..n).filter(|_| rng.next_f64() < 0.2).count();
        let fraction = below as f64 / n as f64;
        assert!((0.19..0.21).contains(&fraction), "{fraction}");
    }
}
