//! HTTP/1.1: sans-io request parsing, responses with the seed's envelope, routing and CORS.

pub mod conn;
pub mod cors;
pub mod request;
pub mod response;
pub mod router;
