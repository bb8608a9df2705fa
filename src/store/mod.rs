//! The store boundary: plain model values, the `Backend` trait and its SQLite and MySQL
//! implementations. Every call blocks; only worker threads make them.

pub mod backend;
pub mod model;
pub mod mysql;
pub mod pool;
pub mod sqlite;
pub mod url;

#[cfg(test)]
mod conformance;

pub use backend::{Backend, StoreError};
pub use url::{open_backend, redact};
