//! HTTP/1.1: sans-io request parsing, responses with the seed's envelope, routing, CORS, and the
//! client address behind trusted proxies.

pub mod client_addr;
pub mod conn;
pub mod cors;
pub mod request;
pub mod response;
pub mod router;
