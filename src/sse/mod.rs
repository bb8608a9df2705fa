//! Server-Sent Events, sans-io: the wire format of the stream, the replay merge that makes a
//! reconnecting stream see every notification once (no gap, no duplicate), and the stream's
//! clocks. The reactor owns the socket and feeds these pieces.

pub mod replay;
pub mod stream;
pub mod wire;

pub use replay::{Page, Replay};
pub use stream::{Due, EventStream};
pub use wire::PING;
