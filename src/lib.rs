//! Herald: a real-time chat (STOMP 1.2 over WebSocket) and notification (Server-Sent Events)
//! server built on mio reactors, one per core, with a blocking store worker pool.
//!
//! Layout: `http` and `stomp` are sans-io codecs; `reactor` owns sockets and runs the event loop;
//! `api` holds the REST use cases; `store` is the one boundary to SQLite/MySQL, served by `pool`
//! workers; `hub` carries fan-out between reactors.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod reactor;
pub mod shared;
pub mod stomp;
pub mod store;
pub mod views;
pub mod web;
