//! Nexus Physics client library: prediction with server reconciliation, interpolation of remote
//! objects, clock sync, and a WebSocket transport; plus a bot swarm (`nexus-bots`) for load tests.
//!
//! # How it works
//! - [`ClientSession`] is the whole client and does no I/O: feed it received [`Frame`]s and the
//!   local [`Controls`] with timestamps from any monotonic clock, take the frames to send, the
//!   [`SessionEvent`]s and the view ([`ClientSession::avatar`], [`ClientSession::remote_objects`]).
//!   Tests drive it on a simulated clock; [`transport`] drives it over a real WebSocket.
//! - [`prediction`]: the own avatar moves at once with the server's movement code
//!   ([`nexus_sim::movement`]) against a collision copy of the world ([`CollisionWorld`]);
//!   every acknowledged state is compared with the prediction for the same input, and on
//!   disagreement the prediction rewinds and replays the unacknowledged inputs; the visible jump
//!   decays smoothly.
//! - [`interpolation`]: remote objects play back from per-object jitter buffers, behind the
//!   newest state by an adaptive delay (about three snapshot intervals), extrapolating briefly
//!   when states are lost.
//! - [`clock`]: offset and round trip from pings, the server's tick from the stream; inputs
//!   target the server tick at which they arrive.
//! - [`netem`]: latency, jitter and loss emulation, used by the bots and the tests.
//! - [`webrtc`] (with [`transport::Transport::WebRtc`]): the state stream and inputs on WebRTC
//!   data channels beside the WebSocket when the server offers them, falling back to the
//!   WebSocket whenever the channels are not open.
//!
//! ```no_run
//! use nexus_client::{Controls, Encoding, transport};
//!
//! # async fn run() -> Result<(), nexus_client::ClientError> {
//! let mut client = transport::connect("ws://127.0.0.1:9090/ws", "0", "alice", Encoding::Binary).await?;
//! let controls = Controls { movement: [0.0, 1.0], ..Controls::default() };
//! for _ in 0..60 {
//!     client.step(&controls, std::time::Duration::from_millis(16)).await?;
//! }
//! println!("{:?}", client.session().avatar());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod clock;
pub mod collision;
mod error;
pub mod interpolation;
pub mod netem;
pub mod prediction;
pub mod session;
pub mod stats;
#[cfg(feature = "native")]
pub mod transport;
#[cfg(feature = "native")]
pub mod webrtc;
pub mod wire;

pub use clock::ClockSync;
pub use collision::CollisionWorld;
pub use error::ClientError;
pub use interpolation::{ObjectPose, SampleMode};
pub use netem::{DelayLine, LinkConditions};
pub use prediction::{CorrectionConfig, PredictionConfig, Predictor, Reconciliation};
pub use session::{
    AvatarView, ClientSession, Controls, KnownObject, Phase, ResumeTicket, SessionConfig,
    SessionEvent, TimingInfo, WebRtcSignal,
};
pub use stats::{
    Fallback, Histogram, SessionStats, StatsSummary, TransportStats, TransportSummary,
};
pub use wire::{Encoding, Frame};
