//! STOMP 1.2: the sans-io frame codec and the per-connection session state machine.

pub mod frame;
pub mod session;
