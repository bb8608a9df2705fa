//! STOMP 1.2, sans-io: the frame codec, the decoder that carries partial frames across WebSocket
//! messages, the per-connection session state machine, its clocks, and the bytes the server writes.

pub mod decoder;
pub mod frame;
pub mod liveness;
pub mod outbound;
pub mod session;
