//! The receive-only BGP speaker of a Lastmile node (documentation below is
//! completed with the API).

mod config;
mod framer;
mod neighbor;
mod session;
mod speaker;
mod status;
pub mod wire;

pub use config::{NeighborConfig, RetryPolicy, SpeakerConfig, DEFAULT_MAX_PREFIXES};
pub use speaker::Speaker;
pub use status::{PeerStatus, Route, SessionState};
