//! Interpolation of remote objects: jitter buffers ([`buffer`]) played back behind the newest
//! received state by an adaptive delay ([`timeline`]).

pub mod buffer;
pub mod timeline;

pub use buffer::{ObjectPose, ObjectTrack, RemoteObjects, Sample, SampleMode};
pub use timeline::{Timeline, TimelineConfig};
