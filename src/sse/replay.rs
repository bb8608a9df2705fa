//! The replay merge of a stream that reconnects with `Last-Event-ID`: stored notifications after
//! that id are read page by page while live ones keep arriving. The merge guarantees:
//!
//! - **No gap.** The stream listens (is indexed) before the first page is read, so a notification
//!   committed after the read arrives live; one committed before it is in the page.
//! - **No duplicate.** Live notifications wait while pages are read; those a page already holds
//!   are dropped. A live copy may also arrive just *after* the last page (committed before the
//!   read, published a moment later): the last page's ids are remembered for [`RECENT_WINDOW`]
//!   and such a copy is dropped too.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::wire;

/// How long the ids of the last replay page are remembered against late live copies.
pub const RECENT_WINDOW: Duration = Duration::from_secs(5);

/// The replay state of one stream.
#[derive(Debug)]
pub enum Replay {
    /// Pages are being read; live events wait here (id, event text).
    Reading { waiting: Vec<(i64, String)> },
    /// Live; the ids of the last page, until the window passes.
    Live { recent: Option<(HashSet<i64>, Instant)> },
}

/// What one page of the replay comes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Event text to write now.
    pub text: String,
    /// How many notifications `text` holds.
    pub count: u64,
    /// Read the next page, after this id (the page was full).
    pub next_after: Option<i64>,
}

impl Replay {
    /// A stream that asked for a replay: live events wait until the last page is written.
    pub fn reading() -> Replay {
        Replay::Reading { waiting: Vec::new() }
    }

    /// A stream that did not ask for a replay.
    pub fn live() -> Replay {
        Replay::Live { recent: None }
    }

    /// Whether pages are still being read.
    pub fn is_reading(&self) -> bool {
        matches!(self, Replay::Reading { .. })
    }

    /// A live notification: the event text to write now, or `None` when it waits for the replay
    /// or the replay already sent it.
    pub fn on_live(&mut self, id: i64, body: &str) -> Option<String> {
        let mut text = String::with_capacity(body.len() + 48);
        wire::notification(&mut text, id, body);
        match self {
            Replay::Reading { waiting } => {
                waiting.push((id, text));
                None
            }
            Replay::Live { recent } => {
                if recent.as_ref().is_some_and(|(ids, _)| ids.contains(&id)) {
                    return None;
                }
                Some(text)
            }
        }
    }

    /// A page of stored notifications (ascending ids) arrived. When it is full (`page_size`), the
    /// next page must be read and live events keep waiting; otherwise the waiting live events
    /// that the page does not hold follow it, and the stream is live.
    pub fn on_page<'a>(
        &mut self,
        page: impl IntoIterator<Item = (i64, &'a str)>,
        page_size: usize,
        now: Instant,
    ) -> Page {
        let Replay::Reading { waiting } = self else {
            return Page::default();
        };
        let mut out = Page::default();
        let mut seen = HashSet::new();
        let mut last = None;
        for (id, body) in page {
            seen.insert(id);
            wire::notification(&mut out.text, id, body);
            out.count += 1;
            last = Some(id);
        }
        waiting.retain(|(id, _)| !seen.contains(id));
        match last {
            Some(last) if seen.len() >= page_size => out.next_after = Some(last),
            _ => {
                for (_, text) in waiting.drain(..) {
                    out.text.push_str(&text);
                    out.count += 1;
                }
                *self = Replay::Live {
                    recent: Some((seen, now)),
                };
            }
        }
        out
    }

    /// Forgets the last page's ids once the window has passed.
    pub fn expire(&mut self, now: Instant) {
        if let Replay::Live { recent } = self {
            if recent
                .as_ref()
                .is_some_and(|(_, at)| now.duration_since(*at) > RECENT_WINDOW)
            {
                *recent = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<i64> {
        text.lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(|id| id.parse().expect("id"))
            .collect()
    }

    #[test]
    fn live_events_wait_for_the_replay_and_duplicates_are_dropped() {
        let t0 = Instant::now();
        let mut r = Replay::reading();
        assert_eq!(r.on_live(5, "{}"), None);
        assert_eq!(r.on_live(7, "{}"), None);
        let page = r.on_page([(4, "{}"), (5, "{}"), (6, "{}")], 10, t0);
        assert_eq!(page.next_after, None);
        assert_eq!(ids(&page.text), vec![4, 5, 6, 7], "replayed, then what waited minus 5");
        assert_eq!(page.count, 4);
        assert!(!r.is_reading());
        // A late live copy of a replayed id is dropped; a new one goes through.
        assert_eq!(r.on_live(6, "{}"), None);
        assert!(r.on_live(8, "{}").is_some());
        // Once the window has passed, ids are no longer remembered.
        r.expire(t0 + RECENT_WINDOW + Duration::from_millis(1));
        assert!(r.on_live(6, "{}").is_some());
    }

    #[test]
    fn full_pages_ask_for_the_next_one_and_keep_live_events_waiting() {
        let t0 = Instant::now();
        let mut r = Replay::reading();
        assert_eq!(r.on_live(9, "{}"), None);
        let first = r.on_page([(1, "{}"), (2, "{}")], 2, t0);
        assert_eq!((ids(&first.text), first.next_after), (vec![1, 2], Some(2)));
        assert!(r.is_reading());
        let second = r.on_page([(3, "{}"), (9, "{}")], 2, t0);
        assert_eq!(second.next_after, Some(9));
        let last = r.on_page(std::iter::empty(), 2, t0);
        assert_eq!(last, Page::default(), "9 was replayed, so nothing waits");
        assert!(!r.is_reading());
    }

    #[test]
    fn a_stream_without_replay_is_live_at_once() {
        let mut r = Replay::live();
        assert_eq!(
            r.on_live(1, "{\"a\":1}").as_deref(),
            Some("id: 1\nevent: notification\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(r.on_page([(1, "{}")], 10, Instant::now()), Page::default());
    }
}
