//! One delivery order per topic on this node, sans-io.
//!
//! Every committed row of a sequence (a room's messages, a recipient's notifications) carries
//! the id of the row before it (`prev`, read under the sequence's row lock in the store). Events
//! reach a node from several places — its own chat shards, Redis, reads from the store — in any
//! order, twice, or not at all. The sequencer of a topic turns that into the store's order:
//!
//! - an event whose `prev` is the last delivered id (or below it, while its id is above) is
//!   delivered, then every held event that now follows;
//! - an event at or below the last delivered id is a duplicate and dropped;
//! - an event that arrives early is held, and the gap it reveals is filled from the store
//!   (`after=<last delivered>`) once it is `gap_timeout` old — at once when the topic holds more
//!   than `hold_limit` events;
//! - a topic just watched has no last delivered id yet: its events are held until the store says
//!   where the sequence stands (the baseline), and delivery starts from there.
//!
//! The sequencer never touches the store or a socket: it says what it needs ([`Request`]) and is
//! told what the store answered ([`Sequencer::baseline`], [`Sequencer::filled`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A gap whose fills keep failing (the store is down) is skipped after this long, and a topic
/// holding twice `hold_limit` events skips at once: held events are then delivered in order
/// with the missing ones left out (they remain in the store: history fills them in), so memory
/// and latency stay bounded.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(10);

/// A row of a sequence: its id, the id before it in the sequence, and what to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequenced<T> {
    pub id: i64,
    pub prev: i64,
    pub item: T,
}

/// Work the sequencer needs from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Where to start delivering the topic from: its last id from before it was watched.
    Baseline { topic: Box<str>, watched: Instant },
    /// The rows of the topic after this id, ascending.
    Fill { topic: Box<str>, after: i64 },
}

/// What became of an offered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Delivered (maybe with held events after it).
    Delivered,
    /// Waits for the events before it, or for the baseline.
    Held,
    /// Already delivered: dropped.
    Duplicate,
    /// Nobody watches the topic here: dropped.
    Unwatched,
}

/// Counters since the last [`Sequencer::take_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events delivered.
    pub delivered: u64,
    /// Events dropped as already delivered.
    pub duplicates: u64,
    /// Delivered events that had been held, and their total time held.
    pub released_after_hold: u64,
    pub held_micros: u64,
    /// Gaps given up on (see [`GIVE_UP_AFTER`]).
    pub gaps_skipped: u64,
}

struct Held<T> {
    prev: i64,
    item: T,
    since: Instant,
}

/// One topic's order.
struct Line<T> {
    /// The last id delivered; `None` until the baseline is known.
    last: Option<i64>,
    /// Events that cannot be delivered yet, by id.
    held: BTreeMap<i64, Held<T>>,
    /// Since when a gap has been waiting (the first held event that does not follow `last`).
    gap_since: Option<Instant>,
    /// When the outstanding store read (baseline or fill) was asked for.
    asked: Option<Instant>,
    /// When the topic was watched.
    watched: Instant,
}

impl<T> Line<T> {
    fn new(now: Instant) -> Line<T> {
        Line {
            last: None,
            held: BTreeMap::new(),
            gap_since: None,
            asked: Some(now),
            watched: now,
        }
    }
}

/// The order of every watched topic of one kind (rooms, or recipients).
pub struct Sequencer<T> {
    lines: HashMap<Box<str>, Line<T>>,
    hold_limit: usize,
    gap_timeout: Duration,
    requests: Vec<Request>,
    stats: Stats,
}

impl<T> Sequencer<T> {
    /// A sequencer holding at most `hold_limit` events per topic before it fills from the store,
    /// and waiting `gap_timeout` for a missing event before reading it.
    pub fn new(hold_limit: usize, gap_timeout: Duration) -> Sequencer<T> {
        Sequencer {
            lines: HashMap::new(),
            hold_limit: hold_limit.max(1),
            gap_timeout,
            requests: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Starts ordering `topic` (idempotent): its events are held until [`Sequencer::baseline`].
    pub fn watch(&mut self, topic: &str, now: Instant) {
        if self.lines.contains_key(topic) {
            return;
        }
        self.lines.insert(topic.into(), Line::new(now));
        self.requests.push(Request::Baseline {
            topic: topic.into(),
            watched: now,
        });
    }

    /// Stops ordering `topic`; what it held is dropped (nobody here listens any more).
    pub fn unwatch(&mut self, topic: &str) {
        self.lines.remove(topic);
    }

    /// Whether `topic` is watched.
    pub fn is_watched(&self, topic: &str) -> bool {
        self.lines.contains_key(topic)
    }

    /// Whether every event of `topic` up to `id` has been delivered (or `topic` is not watched, so
    /// nothing of it will be).
    pub fn delivered_through(&self, topic: &str, id: i64) -> bool {
        self.lines
            .get(topic)
            .is_none_or(|line| line.last.is_some_and(|last| last >= id))
    }

    /// The watched topics whose baseline is known, with their last delivered id (what a poll
    /// compares with the store).
    pub fn positions(&self) -> Vec<(Box<str>, i64)> {
        self.lines
            .iter()
            .filter_map(|(topic, line)| line.last.map(|last| (topic.clone(), last)))
            .collect()
    }

    /// How many events are held, over all topics.
    pub fn held(&self) -> usize {
        self.lines.values().map(|l| l.held.len()).sum()
    }

    /// Offers one event; delivered events (this one and those it frees) are appended to `out` in
    /// order.
    pub fn offer(&mut self, topic: &str, event: Sequenced<T>, now: Instant, out: &mut Vec<T>) -> Offer {
        let Some(line) = self.lines.get_mut(topic) else {
            return Offer::Unwatched;
        };
        if line.last.is_some_and(|last| event.id <= last) {
            self.stats.duplicates += 1;
            return Offer::Duplicate;
        }
        if line.last.is_some_and(|last| event.prev <= last) {
            // Held events never follow `last` (they would have been released), so this is the next.
            line.last = Some(event.id);
            out.push(event.item);
            self.stats.delivered += 1;
            if !line.held.is_empty() {
                self.release(topic, now, out);
            }
            return Offer::Delivered;
        }
        line.held.entry(event.id).or_insert(Held {
            prev: event.prev,
            item: event.item,
            since: now,
        });
        if line.gap_since.is_none() {
            line.gap_since = Some(now);
        }
        if line.held.len() > self.hold_limit {
            self.overflow(topic, now, out);
        }
        Offer::Held
    }

    /// Where the store says `topic`'s sequence stood when it was watched (its last id from a
    /// little before then). Delivery starts after it — or earlier, from the lowest `prev` among
    /// the events already held, which were all published after the topic was watched.
    pub fn baseline(&mut self, topic: &str, head: i64, now: Instant, out: &mut Vec<T>) {
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        line.asked = None;
        if line.last.is_some() {
            return;
        }
        let lowest_held_prev = line.held.values().map(|h| h.prev).min().unwrap_or(head);
        line.last = Some(head.min(lowest_held_prev));
        self.release(topic, now, out);
    }

    /// The baseline read failed: it is asked again at the next [`Sequencer::tick`] after
    /// `gap_timeout`.
    pub fn baseline_failed(&mut self, topic: &str, now: Instant) {
        if let Some(line) = self.lines.get_mut(topic) {
            line.asked = Some(now);
        }
    }

    /// The store's rows of `topic` after `after`, ascending and consecutive (each one's `prev` is
    /// the one before it, the first one's is `after`); `complete` when the read returned fewer
    /// rows than it asked for. Events held since before the read that still do not follow are
    /// delivered anyway: the store, which had every committed row, did not have theirs before
    /// them (see [`Stats::gaps_skipped`]).
    pub fn filled(
        &mut self,
        topic: &str,
        rows: Vec<Sequenced<T>>,
        complete: bool,
        asked_at: Instant,
        now: Instant,
        out: &mut Vec<T>,
    ) {
        if !self.lines.contains_key(topic) {
            return;
        }
        for row in rows {
            self.offer(topic, row, now, out);
        }
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        line.asked = None;
        let Some(last) = line.last else {
            return;
        };
        if !complete {
            line.asked = Some(now);
            self.requests.push(Request::Fill {
                topic: topic.into(),
                after: last,
            });
            return;
        }
        while self
            .lines
            .get(topic)
            .is_some_and(|line| line.held.values().next().is_some_and(|first| first.since <= asked_at))
        {
            self.skip_to_first(topic, now, out);
        }
    }

    /// A fill read failed: it is asked again at the next [`Sequencer::tick`] after `gap_timeout`.
    pub fn fill_failed(&mut self, topic: &str, now: Instant) {
        if let Some(line) = self.lines.get_mut(topic) {
            line.asked = Some(now);
        }
    }

    /// The store says the sequence of `topic` stands at `head` (a poll): reads what is missing.
    pub fn check(&mut self, topic: &str, head: i64, now: Instant) {
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        let Some(last) = line.last else {
            return;
        };
        if head > last && line.asked.is_none() {
            line.asked = Some(now);
            self.requests.push(Request::Fill {
                topic: topic.into(),
                after: last,
            });
        }
    }

    /// Asks for the fills whose gap has waited `gap_timeout`, repeats failed reads, and gives up
    /// on gaps older than [`GIVE_UP_AFTER`].
    pub fn tick(&mut self, now: Instant, out: &mut Vec<T>) {
        let mut give_up = Vec::new();
        for (topic, line) in &mut self.lines {
            let retry_due = line
                .asked
                .is_some_and(|asked| now.duration_since(asked) >= self.gap_timeout.max(Duration::from_millis(50)) * 4);
            let Some(last) = line.last else {
                if retry_due {
                    line.asked = Some(now);
                    self.requests.push(Request::Baseline {
                        topic: topic.clone(),
                        watched: line.watched,
                    });
                }
                continue;
            };
            let Some(since) = line.gap_since else {
                continue;
            };
            if now.duration_since(since) >= GIVE_UP_AFTER {
                give_up.push(topic.clone());
            } else if now.duration_since(since) >= self.gap_timeout && (line.asked.is_none() || retry_due) {
                line.asked = Some(now);
                self.requests.push(Request::Fill {
                    topic: topic.clone(),
                    after: last,
                });
            }
        }
        for topic in give_up {
            self.skip(&topic, now, out);
        }
    }

    /// When the next [`Sequencer::tick`] has something to do, if ever.
    pub fn next_due(&self) -> Option<Instant> {
        self.lines
            .values()
            .filter_map(|line| match (line.last, line.gap_since, line.asked) {
                (_, _, Some(asked)) => Some(asked + self.gap_timeout.max(Duration::from_millis(50)) * 4),
                (Some(_), Some(since), None) => Some(since + self.gap_timeout),
                _ => None,
            })
            .min()
    }

    /// The store reads asked for since the last call.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.requests)
    }

    /// Whether store reads are waiting to be taken.
    pub fn has_requests(&self) -> bool {
        !self.requests.is_empty()
    }

    /// The counters since the last call.
    pub fn take_stats(&mut self) -> Stats {
        std::mem::take(&mut self.stats)
    }

    /// Delivers the held events that follow `last`, in order; updates the gap clock.
    fn release(&mut self, topic: &str, now: Instant, out: &mut Vec<T>) -> usize {
        let Some(line) = self.lines.get_mut(topic) else {
            return 0;
        };
        let Some(mut last) = line.last else {
            return 0;
        };
        let mut delivered = 0;
        while let Some(entry) = line.held.first_entry() {
            let id = *entry.key();
            if id <= last {
                entry.remove();
                self.stats.duplicates += 1;
                continue;
            }
            if entry.get().prev > last {
                break;
            }
            let held = entry.remove();
            last = id;
            self.stats.delivered += 1;
            self.stats.released_after_hold += 1;
            self.stats.held_micros += micros(now.duration_since(held.since));
            out.push(held.item);
            delivered += 1;
        }
        line.last = Some(last);
        line.gap_since = match line.held.values().next() {
            None => None,
            Some(first) => Some(line.gap_since.filter(|_| delivered == 0).unwrap_or(first.since)),
        };
        delivered
    }

    /// Over `hold_limit`: fill at once; over twice that (the fill cannot keep up), skip.
    fn overflow(&mut self, topic: &str, now: Instant, out: &mut Vec<T>) {
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        let Some(last) = line.last else {
            if line.held.len() > 2 * self.hold_limit {
                // No baseline yet and still growing: start from what is held.
                let lowest = line.held.values().map(|h| h.prev).min().unwrap_or(0);
                line.last = Some(lowest);
                self.skip(topic, now, out);
            }
            return;
        };
        if line.held.len() > 2 * self.hold_limit {
            self.skip(topic, now, out);
        } else if line.asked.is_none() {
            line.asked = Some(now);
            self.requests.push(Request::Fill {
                topic: topic.into(),
                after: last,
            });
        }
    }

    /// Gives up on the gap before the first held event of `topic`: it is delivered, then what
    /// follows it.
    fn skip_to_first(&mut self, topic: &str, now: Instant, out: &mut Vec<T>) {
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        let Some((id, held)) = line.held.pop_first() else {
            return;
        };
        self.stats.gaps_skipped += 1;
        self.stats.delivered += 1;
        self.stats.released_after_hold += 1;
        self.stats.held_micros += micros(now.duration_since(held.since));
        out.push(held.item);
        line.last = Some(line.last.map_or(id, |last| last.max(id)));
        line.gap_since = None;
        self.release(topic, now, out);
    }

    /// Gives up on the gaps of `topic`: everything held is delivered in order.
    fn skip(&mut self, topic: &str, now: Instant, out: &mut Vec<T>) {
        let Some(line) = self.lines.get_mut(topic) else {
            return;
        };
        if line.held.is_empty() {
            line.gap_since = None;
            return;
        }
        self.stats.gaps_skipped += 1;
        let held = std::mem::take(&mut line.held);
        let mut last = line.last.unwrap_or(0);
        for (id, h) in held {
            if id <= last {
                self.stats.duplicates += 1;
                continue;
            }
            last = id;
            self.stats.delivered += 1;
            self.stats.released_after_hold += 1;
            self.stats.held_micros += micros(now.duration_since(h.since));
            out.push(h.item);
        }
        line.last = Some(last);
        line.gap_since = None;
        line.asked = None;
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(250);

    fn ev(id: i64, prev: i64) -> Sequenced<i64> {
        Sequenced { id, prev, item: id }
    }

    fn watched(topic: &str, head: i64, t0: Instant) -> Sequencer<i64> {
        let mut s = Sequencer::new(8, GAP);
        s.watch(topic, t0);
        assert_eq!(
            s.take_requests(),
            vec![Request::Baseline {
                topic: topic.into(),
                watched: t0
            }]
        );
        let mut out = Vec::new();
        s.baseline(topic, head, t0, &mut out);
        assert!(out.is_empty());
        s
    }

    #[test]
    fn in_order_events_are_delivered_and_duplicates_dropped() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        assert_eq!(s.offer("r", ev(11, 10), t0, &mut out), Offer::Delivered);
        assert_eq!(
            s.offer("r", ev(15, 11), t0, &mut out),
            Offer::Delivered,
            "ids may skip: prev links"
        );
        assert_eq!(s.offer("r", ev(11, 10), t0, &mut out), Offer::Duplicate);
        assert_eq!(s.offer("r", ev(9, 8), t0, &mut out), Offer::Duplicate);
        assert_eq!(s.offer("zzz", ev(1, 0), t0, &mut out), Offer::Unwatched);
        assert_eq!(out, [11, 15]);
        assert!(s.delivered_through("r", 15) && !s.delivered_through("r", 16));
        assert!(s.delivered_through("zzz", 99), "unwatched: nothing to wait for");
        let stats = s.take_stats();
        assert_eq!((stats.delivered, stats.duplicates), (2, 2));
    }

    #[test]
    fn a_reordering_is_held_then_released_in_order() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        assert_eq!(s.offer("r", ev(13, 12), t0, &mut out), Offer::Held);
        assert_eq!(s.offer("r", ev(12, 11), t0, &mut out), Offer::Held);
        assert!(out.is_empty());
        assert!(!s.delivered_through("r", 12));
        let later = t0 + Duration::from_millis(40);
        assert_eq!(s.offer("r", ev(11, 10), later, &mut out), Offer::Delivered);
        assert_eq!(out, [11, 12, 13]);
        assert_eq!(s.held(), 0);
        let stats = s.take_stats();
        assert_eq!((stats.released_after_hold, stats.held_micros), (2, 80_000));
        assert!(s.take_requests().is_empty(), "no store read for a reordering");
    }

    #[test]
    fn a_gap_is_filled_from_the_store_after_the_timeout() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        s.offer("r", ev(13, 12), t0, &mut out);
        s.tick(t0 + GAP / 2, &mut out);
        assert!(s.take_requests().is_empty(), "not before the timeout");
        assert_eq!(s.next_due(), Some(t0 + GAP));
        let asked = t0 + GAP;
        s.tick(asked, &mut out);
        assert_eq!(
            s.take_requests(),
            vec![Request::Fill {
                topic: "r".into(),
                after: 10
            }]
        );
        s.tick(asked + Duration::from_millis(10), &mut out);
        assert!(s.take_requests().is_empty(), "one fill at a time");
        // The store has 11 and 12 (and 13, a duplicate of the held one).
        s.filled(
            "r",
            vec![ev(11, 10), ev(12, 11), ev(13, 12)],
            true,
            asked,
            asked,
            &mut out,
        );
        assert_eq!(out, [11, 12, 13]);
        assert!(s.delivered_through("r", 13));
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn an_incomplete_fill_reads_the_next_page() {
        let t0 = Instant::now();
        let mut s = watched("r", 0, t0);
        let mut out = Vec::new();
        s.offer("r", ev(5, 4), t0, &mut out);
        s.tick(t0 + GAP, &mut out);
        s.take_requests();
        s.filled("r", vec![ev(1, 0), ev(2, 1)], false, t0 + GAP, t0 + GAP, &mut out);
        assert_eq!(
            s.take_requests(),
            vec![Request::Fill {
                topic: "r".into(),
                after: 2
            }]
        );
        s.filled("r", vec![ev(3, 2), ev(4, 3)], true, t0 + GAP, t0 + GAP, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn over_the_hold_limit_the_store_is_read_at_once_and_at_twice_it_the_gap_is_skipped() {
        let t0 = Instant::now();
        let mut s = Sequencer::new(2, GAP);
        s.watch("r", t0);
        let mut out = Vec::new();
        s.baseline("r", 0, t0, &mut out);
        s.take_requests();
        s.offer("r", ev(3, 2), t0, &mut out);
        s.offer("r", ev(4, 3), t0, &mut out);
        assert!(s.take_requests().is_empty(), "at the limit: still waiting");
        s.offer("r", ev(5, 4), t0, &mut out);
        assert_eq!(
            s.take_requests(),
            vec![Request::Fill {
                topic: "r".into(),
                after: 0
            }],
            "over it: a fill at once, before the timeout"
        );
        s.offer("r", ev(6, 5), t0, &mut out);
        assert!(out.is_empty());
        s.offer("r", ev(7, 6), t0, &mut out);
        assert_eq!(out, [3, 4, 5, 6, 7], "twice the limit: delivered without 1 and 2");
        assert_eq!(s.take_stats().gaps_skipped, 1);
        assert_eq!(s.held(), 0);
    }

    #[test]
    fn a_fill_that_cannot_close_the_gap_delivers_what_waited_since_before_it() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        s.offer("r", ev(13, 12), t0, &mut out);
        let asked = t0 + GAP;
        s.tick(asked, &mut out);
        s.take_requests();
        // Held after the read was asked for: waits for its own gap.
        s.offer("r", ev(20, 19), asked + Duration::from_millis(1), &mut out);
        s.filled("r", vec![], true, asked, asked + Duration::from_millis(2), &mut out);
        assert_eq!(out, [13], "the store had nothing before 13: skipped to it");
        assert_eq!(s.take_stats().gaps_skipped, 1);
        assert_eq!(s.held(), 1, "20 waits for its own gap");
    }

    #[test]
    fn failed_reads_are_retried_and_a_gap_is_given_up_after_a_bound() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        s.offer("r", ev(13, 12), t0, &mut out);
        s.tick(t0 + GAP, &mut out);
        assert_eq!(s.take_requests().len(), 1);
        s.fill_failed("r", t0 + GAP);
        s.tick(t0 + GAP + Duration::from_millis(100), &mut out);
        assert!(s.take_requests().is_empty(), "not at once");
        s.tick(t0 + GAP * 6, &mut out);
        assert_eq!(s.take_requests().len(), 1, "retried");
        s.tick(t0 + GIVE_UP_AFTER, &mut out);
        assert_eq!(out, [13]);
        assert_eq!(s.take_stats().gaps_skipped, 1);
    }

    #[test]
    fn events_before_the_baseline_wait_for_it_and_start_the_sequence_early() {
        let t0 = Instant::now();
        let mut s = Sequencer::new(8, GAP);
        s.watch("r", t0);
        s.take_requests();
        let mut out = Vec::new();
        // Published after the watch, read from Redis or the shards before the baseline came back.
        assert_eq!(s.offer("r", ev(8, 7), t0, &mut out), Offer::Held);
        assert_eq!(s.offer("r", ev(9, 8), t0, &mut out), Offer::Held);
        assert!(!s.delivered_through("r", 1));
        assert!(s.positions().is_empty(), "no position before the baseline");
        // The store's head when read was 9: both are delivered anyway, since they came after the watch.
        s.baseline("r", 9, t0, &mut out);
        assert_eq!(out, [8, 9]);
        assert_eq!(s.positions(), vec![("r".into(), 9)]);
    }

    #[test]
    fn a_failed_baseline_is_asked_again() {
        let t0 = Instant::now();
        let mut s: Sequencer<i64> = Sequencer::new(8, GAP);
        s.watch("r", t0);
        s.take_requests();
        s.baseline_failed("r", t0);
        let mut out = Vec::new();
        s.tick(t0 + GAP, &mut out);
        assert!(s.take_requests().is_empty());
        s.tick(t0 + GAP * 4, &mut out);
        assert_eq!(
            s.take_requests(),
            vec![Request::Baseline {
                topic: "r".into(),
                watched: t0
            }]
        );
    }

    #[test]
    fn a_poll_reads_only_what_the_store_has_beyond_the_last_delivered() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        s.check("r", 10, t0);
        assert!(s.take_requests().is_empty());
        s.check("r", 12, t0);
        s.check("r", 13, t0);
        assert_eq!(
            s.take_requests(),
            vec![Request::Fill {
                topic: "r".into(),
                after: 10
            }],
            "one read at a time"
        );
        let mut out = Vec::new();
        s.filled("r", vec![ev(11, 10), ev(13, 11)], true, t0, t0, &mut out);
        assert_eq!(out, [11, 13]);
    }

    #[test]
    fn unwatching_drops_what_was_held() {
        let t0 = Instant::now();
        let mut s = watched("r", 10, t0);
        let mut out = Vec::new();
        s.offer("r", ev(13, 12), t0, &mut out);
        s.unwatch("r");
        assert_eq!(s.held(), 0);
        assert!(!s.is_watched("r"));
        assert!(s.delivered_through("r", 13));
        s.filled("r", vec![ev(11, 10)], true, t0, t0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn randomized_arrivals_always_come_out_as_the_store_order() {
        // A room's ids with holes (other rooms' rows), each event arriving zero to two times in a
        // shuffled order, some never: with the store's fills, the output is the sequence itself.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _round in 0..200 {
            let mut ids = Vec::new();
            let mut id = 0;
            for _ in 0..30 {
                id += 1 + rand(3) as i64;
                ids.push(id);
            }
            let store: Vec<Sequenced<i64>> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| ev(*id, if i == 0 { 0 } else { ids[i - 1] }))
                .collect();
            let mut arrivals: Vec<Sequenced<i64>> = Vec::new();
            for e in &store {
                for _ in 0..rand(3) {
                    arrivals.push(e.clone());
                }
            }
            for i in (1..arrivals.len()).rev() {
                arrivals.swap(i, rand(i as u64 + 1) as usize);
            }
            let t0 = Instant::now();
            let mut s = Sequencer::new(4, GAP);
            s.watch("r", t0);
            s.take_requests();
            let mut out = Vec::new();
            s.baseline("r", 0, t0, &mut out);
            let mut now = t0;
            for e in arrivals {
                now += Duration::from_millis(rand(100));
                s.offer("r", e, now, &mut out);
                s.tick(now, &mut out);
                for request in s.take_requests() {
                    let Request::Fill { after, .. } = request else {
                        panic!("{request:?}")
                    };
                    let rows: Vec<Sequenced<i64>> = store.iter().filter(|e| e.id > after).take(5).cloned().collect();
                    let complete = rows.len() < 5;
                    s.filled("r", rows, complete, now, now, &mut out);
                }
            }
            // Whatever is left arrives through the final poll.
            s.check("r", *ids.last().unwrap_or(&0), now);
            while let Some(Request::Fill { after, .. }) = s.take_requests().pop() {
                let rows: Vec<Sequenced<i64>> = store.iter().filter(|e| e.id > after).take(5).cloned().collect();
                let complete = rows.len() < 5;
                s.filled("r", rows, complete, now, now, &mut out);
            }
            assert_eq!(out, ids, "every id once, in order");
            assert_eq!(s.take_stats().gaps_skipped, 0);
        }
    }
}
