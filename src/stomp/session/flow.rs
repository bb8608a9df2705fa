//! SENDs in flight: the count that pauses reading at `max_inflight_sends`, the answers that settle
//! them, and DISCONNECT, whose RECEIPT waits for every earlier SEND to be settled.

use super::{receipt_frame, Action, AppError, Out, Session, SessionConfig, State};

impl<S> Session<S> {
    /// Whether the session takes more frames now: not while it is draining or closed, nor while
    /// `max_inflight_sends` SENDs wait for their commit (the reactor stops reading the socket:
    /// TCP backpressure, never an error), nor while a room SUBSCRIBE waits for its check
    /// (`access.rs`: what follows it waits, in order).
    pub fn wants_read(&self, cfg: &SessionConfig) -> bool {
        matches!(self.state, State::AwaitingConnect | State::Connected(_))
            && self.sends_in_flight < cfg.max_inflight_sends
            && !self.is_waiting()
    }

    /// SENDs handed over for commit and not settled yet.
    pub fn sends_in_flight(&self) -> usize {
        self.sends_in_flight
    }

    /// The answer to a SEND once its fate is known: a RECEIPT if it was committed and asked for
    /// one, the error on `/user/queue/errors` if it was not stored.
    pub fn send_settled(&mut self, receipt: Option<&str>, outcome: Result<(), AppError>, out: &mut Out<S>) {
        self.sends_in_flight = self.sends_in_flight.saturating_sub(1);
        if self.state != State::Closed {
            match outcome {
                Ok(()) => {
                    if let Some(r) = receipt {
                        out.push(Action::Send(receipt_frame(r)));
                    }
                }
                Err(e) => self.app_error(e.code, &e.message, receipt, out),
            }
        }
        self.finish_draining(out);
    }

    /// `count` SENDs without a receipt were committed: nothing to tell the client, but they no
    /// longer count against `max_inflight_sends`.
    pub fn sends_committed(&mut self, count: usize, out: &mut Out<S>) {
        self.sends_in_flight = self.sends_in_flight.saturating_sub(count);
        self.finish_draining(out);
    }

    /// Ends a DISCONNECT once nothing is in flight any more: its RECEIPT, then the close.
    pub(super) fn finish_draining(&mut self, out: &mut Out<S>) {
        if self.sends_in_flight > 0 || !matches!(self.state, State::Draining { .. }) {
            return;
        }
        if let State::Draining { receipt: Some(r), .. } = std::mem::replace(&mut self.state, State::Closed) {
            out.push(Action::Send(receipt_frame(&r)));
        }
        self.leave_all(out);
        out.push(Action::Close);
    }

    /// DISCONNECT: open transactions are aborted; the RECEIPT (if asked) goes out once every
    /// earlier SEND is settled, so that it follows their RECEIPTs and errors; then the close.
    pub(super) fn disconnect(&mut self, receipt: Option<String>, out: &mut Out<S>) {
        self.transactions.abort_all();
        if let State::Connected(principal) = std::mem::replace(&mut self.state, State::Closed) {
            self.state = State::Draining { principal, receipt };
        }
        self.finish_draining(out);
    }
}

#[cfg(test)]
mod tests {
    use crate::stomp::frame::Command;
    use crate::stomp::session::testing::*;
    use crate::stomp::session::{Action, AppError, ERRORS_QUEUE};

    #[test]
    fn the_session_wants_no_input_while_its_sends_in_flight_are_at_the_bound() {
        let mut s = connected();
        for i in 0..4 {
            assert!(s.wants_read(&cfg()), "{i} in flight");
            let out = feed(&mut s, send("x", &[]));
            assert!(publishes(&out));
        }
        assert_eq!(s.sends_in_flight(), 4);
        assert!(!s.wants_read(&cfg()), "cfg() allows 4");
        let mut out = Vec::new();
        s.sends_committed(3, &mut out);
        assert!(out.is_empty());
        assert!(s.wants_read(&cfg()));
        s.send_settled(None, Ok(()), &mut out);
        s.send_settled(None, Ok(()), &mut out);
        assert_eq!(s.sends_in_flight(), 0, "never below zero");
        // A refused SEND never goes in flight.
        feed(&mut s, send("bad", &[]));
        assert_eq!(s.sends_in_flight(), 0);
    }

    #[test]
    fn disconnect_receipt_follows_every_earlier_answer() {
        let mut s = connected();
        feed(
            &mut s,
            frame(Command::Subscribe, &[("id", "e"), ("destination", ERRORS_QUEUE)]),
        );
        feed(&mut s, send("a", &[("receipt", "ra")]));
        feed(&mut s, send("b", &[("receipt", "rb")]));
        let out = feed(&mut s, frame(Command::Disconnect, &[("receipt", "bye")]));
        assert!(out.is_empty(), "waits for the SENDs in flight: {out:?}");
        assert!(!s.wants_read(&cfg()) && !s.is_closed());
        assert!(s.principal().is_some(), "still the user's session while draining");
        // Frames after DISCONNECT are ignored.
        assert!(feed(&mut s, send("late", &[])).is_empty());

        let mut out = Vec::new();
        s.send_settled(Some("ra"), Ok(()), &mut out);
        assert_eq!(receipts(&out), ["ra"]);
        let failure = AppError {
            code: "SERVICE_UNAVAILABLE",
            message: "later".into(),
        };
        s.send_settled(Some("rb"), Err(failure), &mut out);
        assert_eq!(receipts(&out), ["ra", "bye"]);
        assert_eq!(
            app_errors(&out)[0]["receipt-id"],
            "rb",
            "the error still reaches the client"
        );
        assert!(matches!(out.last(), Some(Action::Close)));
        assert!(s.is_closed());
    }

    #[test]
    fn answers_after_the_session_ended_say_nothing() {
        let mut s = connected();
        feed(
            &mut s,
            frame(Command::Subscribe, &[("id", "e"), ("destination", ERRORS_QUEUE)]),
        );
        feed(&mut s, send("a", &[("receipt", "ra")]));
        let mut out = Vec::new();
        s.fail("server shutting down", "bye", None, &mut out);
        let mut late = Vec::new();
        s.send_settled(Some("ra"), Ok(()), &mut late);
        s.sends_committed(5, &mut late);
        s.group_settled(&[Some("x")], Some("c"), Ok(()), &mut late);
        assert!(late.is_empty(), "{late:?}");
        assert_eq!(s.sends_in_flight(), 0);
    }
}
