//! The link's conditions and its packet counts: shared by the handle and the forwarders.

use std::time::Duration;

use crate::error::NetemError;

/// Link conditions, the same in both directions; changeable at run time with
/// [`Netem::set_conditions`](crate::Netem::set_conditions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conditions {
    /// Delay of each packet in each direction (the RTT is twice this).
    pub delay_one_way: Duration,
    /// Probability (0 to 1) that a packet is dropped, drawn independently per packet and direction.
    pub loss: f64,
    /// Each packet's delay is `delay_one_way` plus a uniform draw from `[-jitter, +jitter]`.
    /// Without [`NetemConfig::allow_reorder`](crate::NetemConfig::allow_reorder) a packet never overtakes an earlier one, so when
    /// packets follow each other closely their delay tends towards `delay_one_way + jitter`.
    pub jitter: Duration,
}

impl Conditions {
    pub(crate) fn validate(&self) -> Result<(), NetemError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(NetemError::InvalidConfig(format!(
                "loss must be between 0 and 1, not {}",
                self.loss
            )));
        }
        Ok(())
    }
}

/// Packet counts of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Packets read from the sending side.
    pub received: u64,
    /// Packets delivered to the other side.
    pub forwarded: u64,
    pub bytes_forwarded: u64,
    /// Packets dropped by the loss draw.
    pub dropped_loss: u64,
    /// Packets dropped because `queue_limit` packets were already in flight.
    pub dropped_queue_full: u64,
    /// Packets the receiving device refused.
    pub write_errors: u64,
}

/// Packet counts of both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetemStats {
    /// From the caller's namespace into the emulator's (near to far).
    pub to_far: DirectionStats,
    /// From the emulator's namespace back (far to near).
    pub to_near: DirectionStats,
}
