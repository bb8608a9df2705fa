//! Measurements: latency histograms and per-subscriber delivery checks.

use hdrhistogram::Histogram;

/// Publishers tracked per subscriber for sequence checks; beyond this only `id` order is checked.
const MAX_TRACKED_PUBLISHERS: usize = 4096;
/// Largest latency recorded, in microseconds (one hour).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Latency histograms in microseconds.
pub struct Histograms {
    /// SEND → MESSAGE.
    pub delivery: Histogram<u64>,
    /// SEND → RECEIPT.
    pub receipt: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Histograms {
    /// Empty histograms.
    pub fn new() -> Self {
        Self {
            delivery: histogram(),
            receipt: histogram(),
        }
    }

    /// Records a SEND → MESSAGE latency in ns.
    pub fn record_delivery(&mut self, ns: u64) {
        self.delivery.saturating_record((ns / 1000).max(1));
    }

    /// Records a SEND → RECEIPT latency in ns.
    pub fn record_receipt(&mut self, ns: u64) {
        self.receipt.saturating_record((ns / 1000).max(1));
    }

    /// Adds another thread's histograms.
    pub fn merge(&mut self, other: &Histograms) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.delivery.add(&other.delivery);
        let _ = self.receipt.add(&other.receipt);
    }
}

/// What one subscriber saw.
pub struct SubscriberTrack {
    /// The room index subscribed to.
    pub room: usize,
    /// Bench messages received.
    pub received: u64,
    /// Herald `id` not greater than the previous one (duplicate or out of order).
    pub id_regressions: u64,
    /// A publisher sequence number seen again or going backwards.
    pub seq_regressions: u64,
    /// Sequence numbers skipped (messages lost between two that arrived).
    pub seq_gaps: u64,
    /// Bodies that were not the bench's JSON.
    pub unparsable: u64,
    last_id: u64,
    next_seq: Vec<u64>,
}

impl SubscriberTrack {
    /// A subscriber of `room` expecting messages from `publishers` publishers.
    pub fn new(room: usize, publishers: usize) -> Self {
        let tracked = if publishers <= MAX_TRACKED_PUBLISHERS {
            publishers
        } else {
            0
        };
        Self {
            room,
            received: 0,
            id_regressions: 0,
            seq_regressions: 0,
            seq_gaps: 0,
            unparsable: 0,
            last_id: 0,
            next_seq: vec![0; tracked],
        }
    }

    /// Checks one delivery; returns its send time (ns) when the text is the bench's.
    pub fn observe(&mut self, id: Option<u64>, message: &str) -> Option<u64> {
        let Some(fields) = MessageFields::parse(message) else {
            self.unparsable += 1;
            return None;
        };
        self.received += 1;
        if let Some(id) = id {
            if id <= self.last_id {
                self.id_regressions += 1;
            }
            self.last_id = self.last_id.max(id);
        }
        if let (Some(p), Some(s)) = (fields.publisher, fields.seq) {
            if let Some(next) = self.next_seq.get_mut(p) {
                if s < *next {
                    self.seq_regressions += 1;
                } else {
                    self.seq_gaps += s - *next;
                    *next = s + 1;
                }
            }
        }
        Some(fields.sent_ns)
    }
}

/// The fields the bench writes into each message text: `t=<ns> p=<publisher> s=<seq>`.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageFields {
    /// Send time, ns since the process's base instant.
    pub sent_ns: u64,
    /// Publisher index, if present.
    pub publisher: Option<usize>,
    /// Per-publisher, per-room sequence number, if present.
    pub seq: Option<u64>,
}

impl MessageFields {
    /// Parses a message text; `None` if it carries no `t=`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut sent_ns = None;
        let mut publisher = None;
        let mut seq = None;
        for field in text.split(' ').take(4) {
            if let Some(v) = field.strip_prefix("t=") {
                sent_ns = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("p=") {
                publisher = v.parse().ok();
            } else if let Some(v) = field.strip_prefix("s=") {
                seq = v.parse().ok();
            }
        }
        Some(Self {
            sent_ns: sent_ns?,
            publisher,
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_rejects_foreign_text() {
        let f = MessageFields::parse("t=123 p=4 s=5 xxxx").unwrap();
        assert_eq!(
            f,
            MessageFields {
                sent_ns: 123,
                publisher: Some(4),
                seq: Some(5)
            }
        );
        assert!(MessageFields::parse("hello").is_none());
        assert!(MessageFields::parse("t=abc").is_none());
    }

    #[test]
    fn tracks_gaps_and_regressions() {
        let mut t = SubscriberTrack::new(0, 2);
        assert_eq!(t.observe(Some(1), "t=10 p=0 s=0"), Some(10));
        t.observe(Some(3), "t=11 p=0 s=2");
        t.observe(Some(3), "t=12 p=0 s=2");
        t.observe(Some(4), "t=12 p=9 s=0");
        assert_eq!(
            (t.received, t.seq_gaps, t.seq_regressions, t.id_regressions),
            (4, 1, 1, 1)
        );
        assert_eq!(t.observe(None, "nope"), None);
        assert_eq!(t.unparsable, 1);
    }
}
