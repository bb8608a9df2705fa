//! Herald: a real-time chat (STOMP 1.2 over WebSocket) and notification (Server-Sent Events)
//! server built on mio reactors, one per core, with a blocking store worker pool.
//!
//! Layout, from the sockets down (each layer talks only to the ones below it):
//!
//! - `reactor`: the event loops; socket I/O and nothing else.
//! - `api` (REST), `chat` (STOMP SEND → stored → broadcast), `notify` (notifications), `rooms`
//!   (who may enter a room: the SUBSCRIBE check, direct-message ids, withdrawals): the use
//!   cases, each calling the store and then publishing on the bus.
//! - `http`, `stomp`, `sse`: sans-io protocol code (bytes and values in and out).
//! - `bus`: reactor inboxes, who listens where, and the one publish entry point.
//! - `store`: the SQLite and MySQL backends behind one trait, and the worker pool.
//! - `auth`, `config`, `metrics`, `text` (every human-readable sentence), `views` (JSON shapes),
//!   `clock`, `shared` (what every thread shares).

pub mod api;
pub mod auth;
pub mod bus;
pub mod chat;
pub mod clock;
pub mod config;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod reactor;
pub mod rooms;
pub mod shared;
pub mod sse;
pub mod stomp;
pub mod store;
pub mod text;
pub mod views;
pub mod web;
pub mod websocket;
