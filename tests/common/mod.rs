//! Harness shared by the integration tests: starts a real `herald` process on SQLite or MariaDB and
//! talks to it the way clients do — raw HTTP/1.1, STOMP over WebSocket, Server-Sent Events.
//!
//! Every test file groups its scenarios into a few `#[test]` functions; each function starts one
//! server per backend (see [`run_on_each_backend`]) and runs its scenarios one after the other,
//! so one failing scenario does not hide the others: all failures are listed at the end.
#![allow(dead_code)]

pub mod cluster;
pub mod http;
pub mod server;
pub mod sse;
pub mod stomp;
pub mod tokens;

use server::{backends, Config, Server};

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bound on every single read or write made by the tests.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A named scenario run against one started server.
pub type Scenario = (&'static str, fn(&Server));

/// Starts one server per available backend with `config` and runs every scenario against it.
/// Scenarios run in order; a failing one is recorded and the next one still runs. Panics at the
/// end listing every failed `[backend] scenario: message`.
pub fn run_on_each_backend(test: &str, config: &Config, scenarios: &[Scenario]) {
    let mut failures = Vec::new();
    for backend in backends() {
        let started = catch_unwind(AssertUnwindSafe(|| Server::start(backend, config)));
        let server = match started {
            Ok(server) => server,
            Err(panic) => {
                failures.push(format!(
                    "[{}] server start: {}",
                    backend.label(),
                    panic_message(&*panic)
                ));
                continue;
            }
        };
        let mut failed_here = 0;
        for (name, scenario) in scenarios {
            let begun = Instant::now();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| scenario(&server))) {
                failed_here += 1;
                failures.push(format!("[{}] {name}: {}", backend.label(), panic_message(&*panic)));
            }
            eprintln!("{test} [{}] {name}: {:?}", backend.label(), begun.elapsed());
        }
        if failed_here > 0 {
            eprintln!(
                "---- server log ({}, last lines) ----\n{}\n----",
                backend.label(),
                server.log_tail(40)
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{test}: {} scenario(s) failed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// Independent checks inside one scenario: each runs even when an earlier one failed, and
/// [`Checks::finish`] fails with the list of those that did.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Runs `check`, recording its panic (if any) under `what`.
    pub fn check(&mut self, what: &str, check: impl FnOnce()) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(check)) {
            let message = panic_message(&*panic);
            if message.starts_with(what) {
                self.failures.push(message);
            } else {
                self.failures.push(format!("{what}: {message}"));
            }
        }
    }

    /// Panics listing every failed check.
    #[track_caller]
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} check(s) failed:\n    {}",
            self.failures.len(),
            self.failures.join("\n    ")
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "(non-string panic)".to_string()
    }
}

/// A name unique in this test run (and very likely across runs): `prefix` plus a counter and a
/// time-derived suffix, cut to `max_len` characters from the left of the suffix.
pub fn unique(prefix: &str, max_len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = format!("{n}x{:x}{:x}", std::process::id() % 4096, nanos % 1_000_000);
    let mut name = format!("{prefix}{suffix}");
    name.truncate(max_len);
    name
}

/// A room id unique to one scenario (room ids allow `[A-Za-z0-9_-]{1,64}`).
pub fn unique_room(prefix: &str) -> String {
    unique(&format!("{prefix}-"), 64)
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes; returns its last answer.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `2025-08-14T14:55:00.000Z`: UTC, milliseconds, `Z`.
pub fn is_iso8601_millis(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

/// The value of `name` in the Prometheus text `metrics` (first sample line, labels included in `name`).
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}
