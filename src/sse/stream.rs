//! One open event stream, sans-io: its user, its replay, its clocks (pings, token expiry, the
//! grace period of a closing stream).

use std::time::{Duration, Instant};

use super::replay::{Page, Replay};

/// How long a closing stream may take to flush to a client that stopped reading.
pub const CLOSING_GRACE: Duration = Duration::from_secs(5);

/// What a timer tick asks of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Write [`super::PING`].
    Ping,
    /// The access token expired: end the stream after a flush (EventSource reconnects).
    End,
    /// Closing, and the grace period is over: drop the socket.
    Drop,
}

/// The state of one stream.
#[derive(Debug)]
pub struct EventStream {
    pub user: Box<str>,
    expires_at_secs: i64,
    last_write: Instant,
    replay: Replay,
    closing: bool,
}

impl EventStream {
    /// A stream of `user` whose token expires at `expires_at_secs`, with a replay to read first
    /// when `replaying`.
    pub fn new(user: &str, expires_at_secs: i64, replaying: bool, now: Instant) -> EventStream {
        EventStream {
            user: user.into(),
            expires_at_secs,
            last_write: now,
            replay: if replaying { Replay::reading() } else { Replay::live() },
            closing: false,
        }
    }

    /// Whether the stream is ending (flush, then close).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Ends the stream once what is queued is flushed.
    pub fn end(&mut self, now: Instant) {
        self.closing = true;
        self.last_write = now;
    }

    /// Something was queued for the client.
    pub fn wrote(&mut self, now: Instant) {
        self.last_write = now;
    }

    /// A live notification: the text to write now, if any (see [`Replay::on_live`]).
    pub fn on_live(&mut self, id: i64, body: &str) -> Option<String> {
        self.replay.on_live(id, body)
    }

    /// A replay page arrived (`None`: the store failed, so the stream ends and the client
    /// reconnects with the same `Last-Event-ID`).
    pub fn on_page<'a>(
        &mut self,
        page: Option<impl IntoIterator<Item = (i64, &'a str)>>,
        page_size: usize,
        now: Instant,
    ) -> Page {
        match page {
            Some(page) => self.replay.on_page(page, page_size),
            None => {
                self.end(now);
                Page::default()
            }
        }
    }

    /// When [`EventStream::on_timer`] may next have something to do, as of `now`: its nearest
    /// deadline, and at the latest [`CLOSING_GRACE`] from now.
    pub fn next_check(&self, now: Instant, now_secs: i64, ping: Duration, tick: Duration) -> Instant {
        let mut next = now + CLOSING_GRACE;
        let mut at = |deadline: Instant| next = next.min(deadline);
        if self.closing {
            at(self.last_write + CLOSING_GRACE + Duration::from_millis(1));
            return next;
        }
        let left = u64::try_from(self.expires_at_secs.saturating_sub(now_secs)).unwrap_or(0);
        if let Some(expiry) = now.checked_add(Duration::from_secs(left)) {
            at(expiry);
        }
        if !ping.is_zero() {
            if let Some(quiet) = self.last_write.checked_add(ping) {
                at(quiet.checked_sub(tick / 2).unwrap_or(now));
            }
        }
        next
    }

    /// What is due at `now` (`now_secs`: Unix time); pings every `ping` (a little early, by up
    /// to half a `tick`).
    pub fn on_timer(&mut self, now: Instant, now_secs: i64, ping: Duration, tick: Duration) -> Due {
        if self.closing {
            return if now.duration_since(self.last_write) > CLOSING_GRACE {
                Due::Drop
            } else {
                Due::Nothing
            };
        }
        if now_secs >= self.expires_at_secs {
            self.end(now);
            return Due::End;
        }
        if !ping.is_zero() && now.duration_since(self.last_write) + tick / 2 >= ping {
            return Due::Ping;
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(250);
    const PING: Duration = Duration::from_secs(15);

    #[test]
    fn pings_when_quiet_and_ends_at_expiry() {
        let t0 = Instant::now();
        let mut s = EventStream::new("bob", 100, false, t0);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(14), 0, PING, TICK), Due::Nothing);
        assert_eq!(s.on_timer(t0 + Duration::from_millis(14_900), 0, PING, TICK), Due::Ping);
        s.wrote(t0 + Duration::from_secs(15));
        assert_eq!(s.on_timer(t0 + Duration::from_secs(16), 0, PING, TICK), Due::Nothing);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(16), 100, PING, TICK), Due::End);
        assert!(s.is_closing());
        assert_eq!(s.on_timer(t0 + Duration::from_secs(20), 100, PING, TICK), Due::Nothing);
        assert_eq!(s.on_timer(t0 + Duration::from_secs(22), 100, PING, TICK), Due::Drop);
    }

    #[test]
    fn a_failed_replay_read_ends_the_stream() {
        let t0 = Instant::now();
        let mut s = EventStream::new("bob", i64::MAX, true, t0);
        let page = s.on_page(None::<Vec<(i64, &str)>>, 10, t0);
        assert_eq!(page, Page::default());
        assert!(s.is_closing());
    }
}
