//! Process-wide counters, rendered in the Prometheus text format at `GET /metrics`.
//! Plain atomics: every reactor and worker bumps them without locks.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Statuses counted one by one; anything else lands in `other`.
const STATUSES: [u16; 18] = [
    101, 200, 201, 400, 401, 403, 404, 405, 408, 409, 411, 413, 415, 429, 431, 500, 503, 505,
];

/// Upper bounds (seconds) of the store latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// Every counter Herald exports.
#[derive(Default)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub websockets_open: AtomicI64,
    pub event_streams_open: AtomicI64,
    requests_by_status: [AtomicU64; STATUSES.len()],
    requests_other_status: AtomicU64,
    pub stomp_frames_in: AtomicU64,
    pub stomp_frames_out: AtomicU64,
    pub stomp_errors: AtomicU64,
    /// Times a STOMP connection was left unread because of its SENDs in flight (backpressure).
    pub stomp_read_pauses: AtomicU64,
    pub chat_messages_committed: AtomicU64,
    pub chat_messages_rejected: AtomicU64,
    pub chat_messages_forbidden: AtomicU64,
    pub room_subscribe_checks: AtomicU64,
    pub room_subscribes_forbidden: AtomicU64,
    pub room_subscriptions_revoked: AtomicU64,
    pub chat_batches_committed: AtomicU64,
    pub fanout_deliveries: AtomicU64,
    pub flush_inbox_joins: AtomicU64,
    pub slow_consumer_closes: AtomicU64,
    pub notifications_created: AtomicU64,
    pub notifications_delivered: AtomicU64,
    store_latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    store_latency_count: AtomicU64,
    store_latency_micros_sum: AtomicU64,
    pub store_errors: AtomicU64,
    pub store_queue_rejections: AtomicU64,
    /// 1 while both Redis connections work (0 without Redis).
    pub cluster_redis_up: AtomicI64,
    pub cluster_publishes: AtomicU64,
    pub cluster_publish_round_trips: AtomicU64,
    pub cluster_publish_failures: AtomicU64,
    pub cluster_events_received: AtomicU64,
    pub cluster_bad_payloads: AtomicU64,
    pub cluster_gap_fills: AtomicU64,
    pub cluster_polls: AtomicU64,
    pub sequencer_duplicates: AtomicU64,
    pub sequencer_released_after_hold: AtomicU64,
    pub sequencer_hold_micros: AtomicU64,
    pub sequencer_gaps_skipped: AtomicU64,
}

impl Metrics {
    /// Counts one HTTP response.
    pub fn count_status(&self, status: u16) {
        match STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.requests_by_status[i].fetch_add(1, Relaxed),
            None => self.requests_other_status.fetch_add(1, Relaxed),
        };
    }

    /// Records how long one store call took.
    pub fn observe_store_latency(&self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.store_latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.store_latency_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.store_latency_micros_sum.fetch_add(micros, Relaxed);
    }

    /// The Prometheus text exposition; `queue_depth` is read from the worker channels by the caller.
    pub fn render(&self, queue_depth: usize, store_up: bool) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            "herald_connections_open",
            "Open TCP connections.",
            self.connections_open.load(Relaxed),
        );
        gauge(
            "herald_websockets_open",
            "Open STOMP WebSocket sessions.",
            self.websockets_open.load(Relaxed),
        );
        gauge(
            "herald_event_streams_open",
            "Open SSE streams.",
            self.event_streams_open.load(Relaxed),
        );
        gauge(
            "herald_store_queue_depth",
            "Jobs waiting for a store worker.",
            i64::try_from(queue_depth).unwrap_or(i64::MAX),
        );
        gauge("herald_store_up", "1 when the store answers.", i64::from(store_up));
        gauge(
            "herald_cluster_redis_up",
            "1 while this node publishes to and receives from Redis (0 without Redis).",
            self.cluster_redis_up.load(Relaxed),
        );
        let counters: [(&str, &str, &AtomicU64); 31] = [
            (
                "herald_connections_accepted_total",
                "Accepted TCP connections.",
                &self.connections_accepted,
            ),
            (
                "herald_connections_refused_total",
                "Connections refused at max_connections.",
                &self.connections_refused,
            ),
            (
                "herald_stomp_frames_in_total",
                "STOMP frames received.",
                &self.stomp_frames_in,
            ),
            (
                "herald_stomp_frames_out_total",
                "STOMP frames sent, fan-out MESSAGEs included.",
                &self.stomp_frames_out,
            ),
            (
                "herald_stomp_errors_total",
                "STOMP ERROR frames sent.",
                &self.stomp_errors,
            ),
            (
                "herald_stomp_read_pauses_total",
                "Times a STOMP connection was left unread while its SENDs in flight were at chat.max_inflight_sends.",
                &self.stomp_read_pauses,
            ),
            (
                "herald_chat_messages_committed_total",
                "Chat messages stored.",
                &self.chat_messages_committed,
            ),
            (
                "herald_chat_messages_rejected_total",
                "Chat messages refused (validation or store).",
                &self.chat_messages_rejected,
            ),
            (
                "herald_chat_messages_forbidden_total",
                "Chat messages refused because the sender is not a member of the private room.",
                &self.chat_messages_forbidden,
            ),
            (
                "herald_room_subscribe_checks_total",
                "SUBSCRIBEs to a room checked against the store.",
                &self.room_subscribe_checks,
            ),
            (
                "herald_room_subscribes_forbidden_total",
                "SUBSCRIBEs refused with ERROR forbidden.",
                &self.room_subscribes_forbidden,
            ),
            (
                "herald_room_subscriptions_revoked_total",
                "Live room subscriptions ended by a removal or by the room becoming private.",
                &self.room_subscriptions_revoked,
            ),
            (
                "herald_chat_batches_committed_total",
                "Group commits of chat messages.",
                &self.chat_batches_committed,
            ),
            (
                "herald_fanout_deliveries_total",
                "MESSAGE frames queued to subscribers.",
                &self.fanout_deliveries,
            ),
            (
                "herald_flush_inbox_joins_total",
                "Looks at the inbox during a long flush that found work: events that joined the pass in progress.",
                &self.flush_inbox_joins,
            ),
            (
                "herald_slow_consumer_closes_total",
                "Connections closed for a full outbound buffer.",
                &self.slow_consumer_closes,
            ),
            (
                "herald_notifications_created_total",
                "Notifications stored.",
                &self.notifications_created,
            ),
            (
                "herald_notifications_delivered_total",
                "Notifications queued to streams and subscriptions.",
                &self.notifications_delivered,
            ),
            (
                "herald_store_errors_total",
                "Store calls that failed.",
                &self.store_errors,
            ),
            (
                "herald_store_queue_rejections_total",
                "Jobs refused because the worker queue was full.",
                &self.store_queue_rejections,
            ),
            (
                "herald_store_calls_total",
                "Store calls made.",
                &self.store_latency_count,
            ),
            (
                "herald_cluster_publishes_total",
                "PUBLISH commands sent to Redis (one per room or recipient of a committed batch).",
                &self.cluster_publishes,
            ),
            (
                "herald_cluster_publish_round_trips_total",
                "Pipelines of PUBLISH commands sent to Redis.",
                &self.cluster_publish_round_trips,
            ),
            (
                "herald_cluster_publish_failures_total",
                "PUBLISHes not made (Redis down, queue full); other nodes read those rows from the store.",
                &self.cluster_publish_failures,
            ),
            (
                "herald_cluster_events_received_total",
                "Chat messages and notifications received from other nodes over Redis.",
                &self.cluster_events_received,
            ),
            (
                "herald_cluster_bad_payloads_total",
                "Redis payloads refused as malformed.",
                &self.cluster_bad_payloads,
            ),
            (
                "herald_cluster_gap_fills_total",
                "Reads of missing events from the store (gaps, polls that found something).",
                &self.cluster_gap_fills,
            ),
            (
                "herald_cluster_polls_total",
                "Polls of the store's heads for every watched room and user.",
                &self.cluster_polls,
            ),
            (
                "herald_sequencer_duplicates_total",
                "Events dropped by the sequencers as already delivered.",
                &self.sequencer_duplicates,
            ),
            (
                "herald_sequencer_gaps_skipped_total",
                "Gaps the store could not fill in time: events delivered without the ones before them.",
                &self.sequencer_gaps_skipped,
            ),
            (
                "herald_sequencer_held_total",
                "Events delivered after being held for a missing one (herald_sequencer_hold_seconds_total: for how long).",
                &self.sequencer_released_after_hold,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP herald_http_responses_total HTTP responses by status.\n# TYPE herald_http_responses_total counter"
        );
        for (status, count) in STATUSES.iter().zip(&self.requests_by_status) {
            let _ = writeln!(
                out,
                "herald_http_responses_total{{status=\"{status}\"}} {}",
                count.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "herald_http_responses_total{{status=\"other\"}} {}",
            self.requests_other_status.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP herald_store_latency_seconds Store call latency.\n# TYPE herald_store_latency_seconds histogram"
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.store_latency_buckets) {
            let _ = writeln!(
                out,
                "herald_store_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                count.load(Relaxed)
            );
        }
        let held_secs = self.sequencer_hold_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP herald_sequencer_hold_seconds_total Total time events were held for a missing one.\n\
             # TYPE herald_sequencer_hold_seconds_total counter\nherald_sequencer_hold_seconds_total {held_secs}"
        );
        let count = self.store_latency_count.load(Relaxed);
        let _ = writeln!(out, "herald_store_latency_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.store_latency_micros_sum.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "herald_store_latency_seconds_sum {sum}\nherald_store_latency_seconds_count {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.count_status(200);
        m.count_status(200);
        m.count_status(418);
        m.observe_store_latency(std::time::Duration::from_millis(3));
        let text = m.render(7, true);
        assert!(text.contains("herald_http_responses_total{status=\"200\"} 2"));
        assert!(text.contains("herald_http_responses_total{status=\"other\"} 1"));
        assert!(text.contains("herald_store_queue_depth 7"));
        assert!(text.contains("herald_store_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("herald_store_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("herald_store_latency_seconds_count 1"));
    }
}
