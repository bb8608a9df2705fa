//! The store boundary: plain model values, the `Backend` trait and its SQLite and MySQL
//! implementations. Every call blocks; only worker threads make them.
//!
//! The rules that do not depend on the SQL dialect live once, beside the trait: the migration
//! driver (`migrate`), the group commit with its mentions, its authorization and the history
//! page (`chat`), who may enter a room and what each membership change checks (`rooms`), and
//! what a conditional UPDATE meant (`outcome`). The backends only speak SQL.

pub mod backend;
mod chat;
mod migrate;
pub mod model;
pub mod mysql;
mod outcome;
pub mod pool;
mod rooms;
pub mod sqlite;
pub mod url;

#[cfg(test)]
mod conformance;

pub use backend::{Backend, StoreError};
pub use url::{open_backend, redact, StoreKind, StoreUrl};
