//! Authentication: JWT issue/verify, argon2id passwords, login throttling and input validation.

pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod validate;
