//! Password hashing with argon2id (rust-argon2), OWASP parameters, PHC string format.
//!
//! Every function here costs tens of milliseconds of CPU and ~19 MiB of memory: call them on the
//! blocking worker pool, never on a reactor thread.

use argon2::{Config, Variant, Version};

/// Memory cost in KiB (OWASP: 19 MiB).
const MEMORY_KIB: u32 = 19_456;
/// Number of passes (OWASP: 2).
const TIME_COST: u32 = 2;
/// Degree of parallelism (OWASP: 1).
const LANES: u32 = 1;
/// Salt length in bytes.
const SALT_LEN: usize = 16;

/// Largest parameters `verify_password` will run with. A stored hash is trusted data, but a
/// corrupted or hostile row saying `m=4294967295` must cost `false`, not a 4 TiB allocation.
const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;
/// Largest pass count `verify_password` will run with.
const MAX_VERIFY_TIME_COST: u32 = 16;
/// Largest lane count `verify_password` will run with.
const MAX_VERIFY_LANES: u32 = 16;

/// A well-formed hash under the same parameters as `config()` whose 32 "hash" bytes were drawn at
/// random, so no password is known to match; verifying against it costs what verifying a real
/// user's hash costs.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$aGVyYWxkLWR1bW15LXNhbHQ$UczYkAm8rSA5WdGptZXwjoDBdhXUvZRgjlj5HhAB6Jg";

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The OS random source failed, so no salt could be drawn; retryable, report a 500.
    #[error("no random salt available: {0}")]
    Salt(getrandom::Error),
    /// argon2 rejected its inputs; a bug or an absurd password, report a 500.
    #[error("argon2 hashing failed: {0}")]
    Hash(#[from] argon2::Error),
}

/// The argon2id configuration for new hashes.
fn config() -> Config<'static> {
    Config {
        variant: Variant::Argon2id,
        version: Version::Version13,
        mem_cost: MEMORY_KIB,
        time_cost: TIME_COST,
        lanes: LANES,
        hash_length: 32,
        ..Config::default()
    }
}

/// argon2id, OWASP parameters (m = 19456 KiB, t = 2, p = 1), 16-byte random salt, PHC string output.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(PasswordError::Salt)?;
    Ok(argon2::hash_encoded(password.as_bytes(), &salt, &config())?)
}

/// Constant-time compare via the argon2 crate; false on any malformed hash (never panic).
pub fn verify_password(hash: &str, password: &str) -> bool {
    if !cost_is_bounded(hash) {
        return false;
    }
    argon2::verify_encoded(hash, password.as_bytes()).unwrap_or(false)
}

/// Runs a verify against a fixed dummy hash so an unknown username costs the same time as a wrong password.
pub fn burn_equivalent_time(password: &str) {
    // The result is meaningless; `black_box` keeps the optimiser from discarding the work.
    std::hint::black_box(verify_password(DUMMY_HASH, password));
}

/// The `(m, t, p)` parameters of a PHC argon2 string, if it has a well-formed parameter field.
fn cost_params(hash: &str) -> Option<(u32, u32, u32)> {
    let field = hash.split('$').find(|f| f.starts_with("m="))?;
    let mut parts = field.split(',');
    let mut value = |name: &str| -> Option<u32> {
        let (key, v) = parts.next()?.split_once('=')?;
        if key == name {
            v.parse().ok()
        } else {
            None
        }
    };
    let params = (value("m")?, value("t")?, value("p")?);
    parts.next().is_none().then_some(params)
}

/// True when `hash` names parameters cheap enough to verify on a worker.
fn cost_is_bounded(hash: &str) -> bool {
    matches!(cost_params(hash), Some((m, t, p))
        if m <= MAX_VERIFY_MEMORY_KIB && t <= MAX_VERIFY_TIME_COST && p <= MAX_VERIFY_LANES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn hash_then_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "correct horsf"));
        assert!(!verify_password(&hash, ""));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password("same password").unwrap();
        let b = hash_password("same password").unwrap();
        assert_ne!(a, b);
        assert!(verify_password(&a, "same password"));
        assert!(verify_password(&b, "same password"));
    }

    #[test]
    fn multibyte_and_empty_passwords() {
        let hash = hash_password("비밀번호😀").unwrap();
        assert!(verify_password(&hash, "비밀번호😀"));
        assert!(!verify_password(&hash, "비밀번호"));
        let hash = hash_password("").unwrap();
        assert!(verify_password(&hash, ""));
    }

    #[test]
    fn malformed_hashes_are_false_not_panics() {
        let good = hash_password("pw").unwrap();
        let truncated = &good[..good.len() - 10];
        let bad_hashes = [
            "",
            "$",
            "$$$$$",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
            "$argon2id$v=19$m=19456,t=2,p=1$!!!!$@@@@",
            "$argon2id$v=19$m=19456,t=2$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=1,x=3$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=0,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=-1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=99999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            // Well-formed but absurdly expensive: refused before argon2 allocates 4 TiB.
            "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=16777215$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=1$c2E$aGFzaGhhc2g", // salt too short
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGE", // hash too short
            "$argon2x$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$2b$12$abcdefghijklmnopqrstuuZ0Zx5pWmDq5Jb4Ck5aV5u5nWyq7nV2W", // bcrypt
            truncated,
        ];
        for bad in bad_hashes {
            assert!(!verify_password(bad, "pw"), "{bad:?} verified");
        }
    }

    #[test]
    fn dummy_hash_matches_live_parameters() {
        assert_eq!(cost_params(DUMMY_HASH), Some((MEMORY_KIB, TIME_COST, LANES)));
        let live = hash_password("x").unwrap();
        let prefix = |h: &str| h.rsplitn(3, '$').nth(2).map(str::to_owned);
        assert_eq!(prefix(DUMMY_HASH), prefix(&live));
        // A well-formed hash, so burning time really runs argon2 rather than bailing out early.
        assert!(argon2::verify_encoded(DUMMY_HASH, b"anything").is_ok());
        burn_equivalent_time("anything");
    }

    #[test]
    fn measure_hash_time() {
        let start = Instant::now();
        let hash = hash_password("measure me please").unwrap();
        let hashing = start.elapsed();
        let start = Instant::now();
        assert!(verify_password(&hash, "measure me please"));
        let verifying = start.elapsed();
        let start = Instant::now();
        burn_equivalent_time("measure me please");
        let burning = start.elapsed();
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        println!(
            "argon2id m=19456 t=2 p=1 ({profile}): hash {hashing:?}, verify {verifying:?}, dummy verify {burning:?}"
        );
    }
}
