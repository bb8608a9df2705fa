//! The replay merge of a stream that reconnects with `Last-Event-ID`: stored notifications after
//! that id are read page by page while live ones keep arriving. The merge guarantees:
//!
//! - **No gap.** The stream listens (is indexed) before the first page is read, so a notification
//!   committed after the read arrives live; one committed before it is in the page.
//! - **No duplicate.** Live notifications wait while pages are read. Afterwards the stream keeps
//!   the highest id it wrote, and a live notification at or below it is dropped: a recipient's
//!   notifications reach the node's reactors in ascending id order (the bus's per-recipient
//!   sequencer), and ids ascend in commit order per recipient (the store's lock), so anything at
//!   or below that id was in a page already — a live copy arriving just after the last page
//!   included — and anything above it is new.

use super::wire;

/// The replay state of one stream.
#[derive(Debug)]
pub enum Replay {
    /// Pages are being read (the highest id replayed so far); live events wait here (id, event
    /// text).
    Reading { replayed: i64, waiting: Vec<(i64, String)> },
    /// Live; the highest id written so far.
    Live { written: i64 },
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
        Replay::Reading {
            replayed: 0,
            waiting: Vec::new(),
        }
    }

    /// A stream that did not ask for a replay.
    pub fn live() -> Replay {
        Replay::Live { written: 0 }
    }

    /// Whether pages are still being read.
    pub fn is_reading(&self) -> bool {
        matches!(self, Replay::Reading { .. })
    }

    /// A live notification: the event text to write now, or `None` when it waits for the replay
    /// or was written already.
    pub fn on_live(&mut self, id: i64, body: &str) -> Option<String> {
        if let Replay::Live { written } = self {
            if id <= *written {
                return None;
            }
            *written = id;
        }
        let mut text = String::with_capacity(body.len() + 48);
        wire::notification(&mut text, id, body);
        match self {
            Replay::Reading { waiting, .. } => {
                waiting.push((id, text));
                None
            }
            Replay::Live { .. } => Some(text),
        }
    }

    /// A page of stored notifications (ascending ids) arrived. When it is full (`page_size`), the
    /// next page must be read and live events keep waiting; otherwise the waiting live events
    /// above the page follow it, and the stream is live.
    pub fn on_page<'a>(&mut self, page: impl IntoIterator<Item = (i64, &'a str)>, page_size: usize) -> Page {
        let Replay::Reading { replayed, waiting } = self else {
            return Page::default();
        };
        let mut out = Page::default();
        let mut last = None;
        let mut rows = 0;
        for (id, body) in page {
            wire::notification(&mut out.text, id, body);
            out.count += 1;
            rows += 1;
            last = Some(id);
            *replayed = (*replayed).max(id);
        }
        match last {
            Some(last) if rows >= page_size => out.next_after = Some(last),
            _ => {
                let mut written = *replayed;
                for (id, text) in waiting.drain(..) {
                    if id > written {
                        written = id;
                        out.text.push_str(&text);
                        out.count += 1;
                    }
                }
                *self = Replay::Live { written };
            }
        }
        out
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
        let mut r = Replay::reading();
        assert_eq!(r.on_live(5, "{}"), None);
        assert_eq!(r.on_live(7, "{}"), None);
        let page = r.on_page([(4, "{}"), (5, "{}"), (6, "{}")], 10);
        assert_eq!(page.next_after, None);
        assert_eq!(ids(&page.text), vec![4, 5, 6, 7], "replayed, then what waited minus 5");
        assert_eq!(page.count, 4);
        assert!(!r.is_reading());
        // A late live copy of a replayed id is dropped, however late; a new one goes through.
        assert_eq!(r.on_live(6, "{}"), None);
        assert_eq!(r.on_live(7, "{}"), None);
        assert!(r.on_live(8, "{}").is_some());
        assert_eq!(r.on_live(8, "{}"), None, "at most once");
    }

    #[test]
    fn full_pages_ask_for_the_next_one_and_keep_live_events_waiting() {
        let mut r = Replay::reading();
        assert_eq!(r.on_live(9, "{}"), None);
        let first = r.on_page([(1, "{}"), (2, "{}")], 2);
        assert_eq!((ids(&first.text), first.next_after), (vec![1, 2], Some(2)));
        assert!(r.is_reading());
        let second = r.on_page([(3, "{}"), (9, "{}")], 2);
        assert_eq!(second.next_after, Some(9));
        let last = r.on_page(std::iter::empty(), 2);
        assert_eq!(last, Page::default(), "9 was replayed, so nothing waits");
        assert!(!r.is_reading());
        assert_eq!(r.on_live(9, "{}"), None);
    }

    #[test]
    fn an_empty_replay_writes_what_waited() {
        let mut r = Replay::reading();
        r.on_live(3, "{}");
        let page = r.on_page(std::iter::empty(), 10);
        assert_eq!(ids(&page.text), vec![3]);
        assert_eq!(r.on_live(3, "{}"), None);
    }

    #[test]
    fn a_stream_without_replay_is_live_at_once() {
        let mut r = Replay::live();
        assert_eq!(
            r.on_live(1, "{\"a\":1}").as_deref(),
            Some("id: 1\nevent: notification\ndata: {\"a\":1}\n\n")
        );
        assert_eq!(r.on_page([(1, "{}")], 10), Page::default());
    }
}
