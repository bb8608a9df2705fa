//! The clocks of a STOMP connection: the CONNECT deadline, the access token's expiry, heart-beats
//! both ways (STOMP 1.2: a peer silent for twice the negotiated interval is gone) and the grace
//! period of a closing connection. Sans-io: the reactor stamps reads and writes and asks, on each
//! timer tick, what is due.

use std::time::{Duration, Instant};

use super::session::Session;

/// How long a closing connection may take to flush its last frames to a peer that stopped reading.
pub const CLOSING_GRACE: Duration = Duration::from_secs(5);

/// What a timer tick asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Nothing,
    /// Write a heart-beat (the session has been quiet for nearly its send interval).
    Heartbeat,
    /// End the session with `ERROR message:<message>` and a plain-text detail.
    Fail {
        message: &'static str,
        detail: &'static str,
    },
    /// Drop the socket (closing, and the grace period is over).
    Drop,
}

/// When a connection last did what: the last read and write as milliseconds since it opened
/// (every idle connection holds one of these; two instants fewer is 16 bytes each).
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    opened: Instant,
    last_read_ms: u64,
    last_write_ms: u64,
}

impl Liveness {
    /// A connection opened at `now`.
    pub fn new(now: Instant) -> Liveness {
        Liveness {
            opened: now,
            last_read_ms: 0,
            last_write_ms: 0,
        }
    }

    /// Milliseconds from the opening to `at`.
    fn since_opened(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX)
    }

    fn last_read(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_read_ms)
    }

    fn last_write(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_write_ms)
    }

    /// Something arrived from the peer.
    pub fn read(&mut self, now: Instant) {
        self.last_read_ms = self.since_opened(now);
    }

    /// Something was queued for the peer.
    pub fn wrote(&mut self, now: Instant) {
        self.last_write_ms = self.since_opened(now);
    }

    /// When [`Liveness::on_timer`] may next have something to do, as of `now`: the earliest
    /// deadline the session has, and at the latest [`CLOSING_GRACE`] from now (a deadline that
    /// a later event creates — a close, a CONNECT's heart-beats — is never nearer than that
    /// after the event, except the token's expiry, which the reactor schedules at CONNECT).
    pub fn next_check<S>(
        &self,
        session: &Session<S>,
        closing: bool,
        now: Instant,
        now_secs: i64,
        connect_timeout: Duration,
        tick: Duration,
    ) -> Instant {
        let mut next = now + CLOSING_GRACE;
        let mut at = |deadline: Instant| next = next.min(deadline);
        if closing {
            at(self.last_write() + CLOSING_GRACE + Duration::from_millis(1));
            return next;
        }
        let Some(principal) = session.principal() else {
            at(self.opened + connect_timeout);
            return next;
        };
        let left = u64::try_from(principal.expires_at_secs.saturating_sub(now_secs)).unwrap_or(0);
        if let Some(expiry) = now.checked_add(Duration::from_secs(left)) {
            at(expiry);
        }
        let expect = session.expect_heartbeat_ms;
        if expect > 0 {
            if let Some(silent) = self
                .last_read()
                .checked_add(Duration::from_millis(expect.saturating_mul(2).saturating_add(1)))
            {
                at(silent);
            }
        }
        let send = session.send_heartbeat_ms;
        if send > 0 {
            if let Some(quiet) = self.last_write().checked_add(Duration::from_millis(send)) {
                at(quiet.checked_sub(tick).unwrap_or(now));
            }
        }
        next
    }

    /// What is due at `now` (`now_secs`: Unix time, for the token's expiry). `connect_timeout`
    /// bounds the wait for CONNECT; `tick` is the timer period, so that a heart-beat goes out a
    /// little early rather than late.
    pub fn on_timer<S>(
        &mut self,
        session: &Session<S>,
        closing: bool,
        now: Instant,
        now_secs: i64,
        connect_timeout: Duration,
        tick: Duration,
    ) -> Due {
        if closing {
            return if now.saturating_duration_since(self.last_write()) > CLOSING_GRACE {
                Due::Drop
            } else {
                Due::Nothing
            };
        }
        let Some(principal) = session.principal() else {
            if now.saturating_duration_since(self.opened) >= connect_timeout {
                return Due::Fail {
                    message: "connect timeout",
                    detail: "no CONNECT frame received in time",
                };
            }
            return Due::Nothing;
        };
        if now_secs >= principal.expires_at_secs {
            return Due::Fail {
                message: "token expired",
                detail: "reconnect with a fresh access token",
            };
        }
        let expect = session.expect_heartbeat_ms;
        if expect > 0
            && now.saturating_duration_since(self.last_read()) > Duration::from_millis(expect.saturating_mul(2))
        {
            return Due::Fail {
                message: "heart-beat timeout",
                detail: "no frame or heart-beat received in time",
            };
        }
        let send = session.send_heartbeat_ms;
        // Send a little early so that the client (which allows some slack) never times out.
        if send > 0 && now.saturating_duration_since(self.last_write()) + tick >= Duration::from_millis(send) {
            self.wrote(now);
            return Due::Heartbeat;
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stomp::frame::{Command, Frame};
    use crate::stomp::session::{AppError, Host, Principal, SessionConfig};

    struct Expiring(i64);

    impl Host for Expiring {
        type Send = ();
        fn authenticate(&mut self, _: &str) -> Result<Principal, &'static str> {
            Ok(Principal {
                username: "u".into(),
                user_id: 1,
                expires_at_secs: self.0,
            })
        }
        fn accept_send(&mut self, _: &Principal, _: &[u8]) -> Result<(), AppError> {
            Ok(())
        }
    }

    const TICK: Duration = Duration::from_millis(250);
    const CONNECT: Duration = Duration::from_secs(10);

    fn session(heart_beat: &str, expires_at_secs: i64) -> Session<()> {
        let mut s = Session::new();
        let cfg = SessionConfig::default();
        let connect = Frame::new(Command::Connect)
            .with_header("Authorization", "Bearer t")
            .with_header("heart-beat", heart_beat);
        s.on_frame(connect, &cfg, &mut Expiring(expires_at_secs), &mut Vec::new());
        s
    }

    #[test]
    fn connect_must_come_in_time() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        let s = Session::<()>::new();
        assert_eq!(
            l.on_timer(&s, false, t0 + Duration::from_secs(9), 0, CONNECT, TICK),
            Due::Nothing
        );
        assert!(matches!(
            l.on_timer(&s, false, t0 + CONNECT, 0, CONNECT, TICK),
            Due::Fail {
                message: "connect timeout",
                ..
            }
        ));
    }

    #[test]
    fn heartbeats_go_out_early_and_silence_is_fatal() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        // The client sends every 5 s and wants one every 20 s: the server sends every 20 s
        // (max of both) and expects one every 10 s (its own offer is larger).
        let s = session("5000,20000", i64::MAX);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(l.on_timer(&s, false, at(19_000), 0, CONNECT, TICK), Due::Nothing);
        l.read(at(19_000));
        assert_eq!(l.on_timer(&s, false, at(19_750), 0, CONNECT, TICK), Due::Heartbeat);
        assert_eq!(
            l.on_timer(&s, false, at(20_000), 0, CONNECT, TICK),
            Due::Nothing,
            "stamped"
        );
        l.wrote(at(30_000));
        assert!(matches!(
            l.on_timer(&s, false, at(39_001), 0, CONNECT, TICK),
            Due::Fail {
                message: "heart-beat timeout",
                ..
            }
        ));
    }

    #[test]
    fn token_expiry_and_closing_grace() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        let s = session("0,0", 100);
        assert_eq!(l.on_timer(&s, false, t0, 99, CONNECT, TICK), Due::Nothing);
        assert!(matches!(
            l.on_timer(&s, false, t0, 100, CONNECT, TICK),
            Due::Fail {
                message: "token expired",
                ..
            }
        ));
        assert_eq!(
            l.on_timer(&s, true, t0 + CLOSING_GRACE, 100, CONNECT, TICK),
            Due::Nothing
        );
        assert_eq!(
            l.on_timer(&s, true, t0 + CLOSING_GRACE + TICK, 100, CONNECT, TICK),
            Due::Drop
        );
    }

    #[test]
    fn nothing_is_due_before_next_check_and_something_may_be_at_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let unconnected = Session::<()>::new();
        let cases: Vec<(&str, Session<()>, bool, i64)> = vec![
            ("before CONNECT", unconnected, false, 0),
            ("heart-beats both ways", session("10000,10000", i64::MAX), false, 0),
            ("no heart-beats, token expires in 2 s", session("0,0", 2), false, 0),
            ("closing", session("10000,10000", i64::MAX), true, 0),
        ];
        for (what, s, closing, now_secs) in cases {
            let mut l = Liveness::new(t0);
            l.read(t0 + ms(300));
            l.wrote(t0 + ms(700));
            let now = t0 + ms(1000);
            let next = l.next_check(&s, closing, now, now_secs, CONNECT, TICK);
            assert!(next > now && next <= now + CLOSING_GRACE, "{what}: {next:?}");
            // Nothing is missed by looking only then: every instant before it is quiet.
            let mut at = now;
            while at < next {
                let secs = now_secs + i64::try_from(at.duration_since(now).as_secs()).unwrap_or(0);
                assert_eq!(
                    l.clone().on_timer(&s, closing, at, secs, CONNECT, TICK),
                    Due::Nothing,
                    "{what} at {at:?}"
                );
                at += ms(50);
            }
        }
        // The token's expiry is the deadline when it is the nearest.
        let s = session("0,0", 2);
        let l = Liveness::new(t0);
        assert_eq!(
            l.next_check(&s, false, t0, 0, CONNECT, TICK),
            t0 + Duration::from_secs(2)
        );
        assert_eq!(
            Liveness::new(t0).on_timer(&s, false, t0 + Duration::from_secs(2), 2, CONNECT, TICK),
            Due::Fail {
                message: "token expired",
                detail: "reconnect with a fresh access token"
            }
        );
    }

    #[test]
    fn a_huge_heart_beat_from_the_client_neither_panics_nor_times_out_at_once() {
        let t0 = Instant::now();
        let s = session("18446744073709551615,18446744073709551615", i64::MAX);
        let mut l = Liveness::new(t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(l.on_timer(&s, false, later, 60, CONNECT, TICK), Due::Nothing);
        assert!(l.next_check(&s, false, later, 60, CONNECT, TICK) <= later + CLOSING_GRACE);
    }
}
