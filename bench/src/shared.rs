//! State shared by the controller and the event-loop threads: phase deadlines and live counters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How many server error texts are kept for the report.
const KEPT_ERRORS: usize = 5;

/// A nanosecond timestamp that is "not set yet".
pub const UNSET: u64 = u64::MAX;

/// Live counters, readable at any time by the progress printer.
#[derive(Default)]
pub struct Counters {
    /// TCP connects attempted.
    pub attempted: AtomicU64,
    /// Connections that reached STOMP `CONNECTED`.
    pub established: AtomicU64,
    /// Connections that failed before `CONNECTED` (TCP, WebSocket or STOMP).
    pub failed: AtomicU64,
    /// Established connections that were closed by the server or by an I/O error.
    pub dropped: AtomicU64,
    /// STOMP `ERROR` frames received.
    pub stomp_errors: AtomicU64,
    /// Application errors received on `/user/queue/errors`.
    pub app_errors: AtomicU64,
    /// Frames the bench could not parse (WebSocket or STOMP).
    pub protocol_errors: AtomicU64,
    /// `SEND` frames written.
    pub sent: AtomicU64,
    /// Topic `MESSAGE` frames received.
    pub delivered: AtomicU64,
    /// `RECEIPT` frames matched to an outstanding `SEND`.
    pub receipts: AtomicU64,
    /// Publisher or sender connections that reached `CONNECTED`.
    pub senders_ready: AtomicU64,
    /// Time of the most recent `CONNECTED`, in ns since the base instant.
    pub last_established_ns: AtomicU64,
}

impl Counters {
    /// Adds one to `c`.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads `c`.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Shared by all threads of a run.
pub struct Shared {
    /// The process-local clock origin; publishers and subscribers both use it.
    pub base: Instant,
    /// Live counters.
    pub counters: Counters,
    /// Stop opening connections (ramp over or timed out).
    pub stop_ramp: AtomicBool,
    /// When publishing starts, ns since base, or [`UNSET`].
    pub publish_start_ns: AtomicU64,
    /// When publishing ends, ns since base, or [`UNSET`].
    pub publish_end_ns: AtomicU64,
    /// Every thread returns its results and exits.
    pub stop: AtomicBool,
    /// SENDs per room.
    pub sent_per_room: Vec<AtomicU64>,
    /// Established subscribers per room.
    pub subscribers_per_room: Vec<AtomicU64>,
    errors: Mutex<Vec<String>>,
}

impl Shared {
    /// A fresh state for `rooms` rooms.
    pub fn new(rooms: usize) -> Self {
        Self {
            base: Instant::now(),
            counters: Counters::default(),
            stop_ramp: AtomicBool::new(false),
            publish_start_ns: AtomicU64::new(UNSET),
            publish_end_ns: AtomicU64::new(UNSET),
            stop: AtomicBool::new(false),
            sent_per_room: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            subscribers_per_room: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Nanoseconds since the base instant.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Keeps the first few error texts for the report and prints them as they come.
    pub fn note_error(&self, text: String) {
        if let Ok(mut kept) = self.errors.lock() {
            if kept.len() < KEPT_ERRORS {
                eprintln!("herald-bench: {text}");
                kept.push(text);
            }
        }
    }

    /// The error texts kept so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Σ over rooms of SENDs × established subscribers: deliveries a perfect server would make.
    pub fn expected_deliveries(&self) -> u64 {
        self.sent_per_room
            .iter()
            .zip(&self.subscribers_per_room)
            .map(|(s, n)| Counters::get(s) * Counters::get(n))
            .sum()
    }
}
