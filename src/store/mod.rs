//! The store boundary: plain model values, the `Backend` trait and its SQLite and MySQL
//! implementations. Every call blocks; only worker threads make them.
//!
//! The rules that do not depend on the SQL dialect live once, beside the trait: the migration
//! driver (`migrate`), the group commit with its mentions and the history page (`chat`), and
//! what a conditional UPDATE meant (`outcome`). The backends only speak SQL.

pub mod backend;
mod chat;
mod migrate;
pub mod model;
pub mod mysql;
mod outcome;
pub mod pool;
pub mod sqlite;
pub mod url;

#[cfg(test)]
mod conformance;

pub use backend::{Backend, StoreError};
pub use url::{open_backend, redact, StoreKind, StoreUrl};
