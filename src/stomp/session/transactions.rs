//! STOMP 1.2 transactions of one session: `BEGIN` opens one, a `SEND` carrying its id is validated
//! at once but held here, `COMMIT` hands the held SENDs over as one group (committed atomically, in
//! the order sent), `ABORT` drops them. Whatever is still open when the session ends is dropped:
//! a transaction open at DISCONNECT or close is aborted.
//!
//! A SEND's own `receipt` inside a transaction keeps Herald's meaning (the message is durable): it
//! is sent after the group commits, before the COMMIT's. A group whose store transaction fails
//! gets one error per SEND on `/user/queue/errors` and no receipt at all.

use super::{receipt_frame, Action, AppError, Out, Session, SessionConfig};
use crate::stomp::frame::Frame;

/// A SEND accepted by the host and held until its transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSend<S> {
    pub send: S,
    /// The SEND's own `receipt`, sent only once the group is durable.
    pub receipt: Option<String>,
}

/// Why a transaction frame is refused; each is a protocol error (`ERROR`, close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionError {
    /// BEGIN without a (non-empty) `transaction` header.
    MissingId,
    /// BEGIN of an id already open.
    Duplicate,
    /// COMMIT, ABORT, SEND, ACK or NACK naming an id that is not open.
    Unknown,
    /// BEGIN beyond `chat.max_open_transactions`.
    TooManyOpen,
    /// A SEND beyond `chat.max_transaction_sends` in one transaction.
    TooManySends,
}

impl TransactionError {
    /// The ERROR frame's `message` header.
    pub fn message(self) -> &'static str {
        match self {
            TransactionError::MissingId => "missing transaction header",
            TransactionError::Duplicate => "duplicate transaction",
            TransactionError::Unknown => "unknown transaction",
            TransactionError::TooManyOpen => "too many transactions",
            TransactionError::TooManySends => "too many sends in transaction",
        }
    }
}

/// The open transactions of one session, in the order they began (at most a handful: a list).
#[derive(Debug)]
pub struct Transactions<S> {
    open: Vec<(String, Vec<HeldSend<S>>)>,
}

impl<S> Default for Transactions<S> {
    fn default() -> Self {
        Transactions { open: Vec::new() }
    }
}

impl<S> Transactions<S> {
    /// How many are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether `id` is open.
    pub fn is_open(&self, id: &str) -> bool {
        self.open.iter().any(|(open, _)| open == id)
    }

    /// BEGIN `id` (the header's value, if any), with at most `max_open` open at once.
    pub fn begin(&mut self, id: Option<&str>, max_open: usize) -> Result<(), TransactionError> {
        let id = id.filter(|id| !id.is_empty()).ok_or(TransactionError::MissingId)?;
        if self.is_open(id) {
            return Err(TransactionError::Duplicate);
        }
        if self.open.len() >= max_open {
            return Err(TransactionError::TooManyOpen);
        }
        self.open.push((id.to_owned(), Vec::new()));
        Ok(())
    }

    /// Holds an accepted SEND in `id`, at most `max_sends` per transaction.
    pub fn hold(&mut self, id: &str, send: HeldSend<S>, max_sends: usize) -> Result<(), TransactionError> {
        let (_, held) = self
            .open
            .iter_mut()
            .find(|(open, _)| open == id)
            .ok_or(TransactionError::Unknown)?;
        if held.len() >= max_sends {
            return Err(TransactionError::TooManySends);
        }
        held.push(send);
        Ok(())
    }

    /// Closes `id` (COMMIT or ABORT), returning its held SENDs in the order sent.
    pub fn finish(&mut self, id: Option<&str>) -> Result<Vec<HeldSend<S>>, TransactionError> {
        let id = id.ok_or(TransactionError::Unknown)?;
        let pos = self
            .open
            .iter()
            .position(|(open, _)| open == id)
            .ok_or(TransactionError::Unknown)?;
        Ok(self.open.remove(pos).1)
    }

    /// Drops every open transaction (DISCONNECT, close, ERROR).
    pub fn abort_all(&mut self) {
        self.open = Vec::new();
    }

    /// SENDs held across every open transaction.
    pub fn held(&self) -> usize {
        self.open.iter().map(|(_, held)| held.len()).sum()
    }
}

impl<S> Session<S> {
    /// BEGIN: opens a transaction (ERROR and close without an id, for a duplicate, over the bound).
    pub(super) fn begin(&mut self, frame: &Frame, cfg: &SessionConfig, receipt: Option<String>, out: &mut Out<S>) {
        let id = frame.header("transaction");
        match self.transactions.begin(id, cfg.max_transactions) {
            Ok(()) => self.receipt(receipt, out),
            Err(e) => {
                let detail = match e {
                    TransactionError::TooManyOpen => {
                        format!("at most {} open transactions per connection", cfg.max_transactions)
                    }
                    TransactionError::Duplicate => format!("transaction {} is already open", id.unwrap_or_default()),
                    _ => "BEGIN needs a transaction header".to_owned(),
                };
                self.fail(e.message(), &detail, receipt, out);
            }
        }
    }

    /// COMMIT: the held SENDs go out as one group (an empty one is receipted at once).
    pub(super) fn commit(&mut self, frame: &Frame, receipt: Option<String>, out: &mut Out<S>) {
        match self.transactions.finish(frame.header("transaction")) {
            Ok(sends) if sends.is_empty() => self.receipt(receipt, out),
            Ok(sends) => {
                self.sends_in_flight += sends.len();
                out.push(Action::CommitGroup { sends, receipt });
            }
            Err(e) => self.unknown_transaction(e, frame, receipt, out),
        }
    }

    /// ABORT: the held SENDs are dropped; nothing of them was stored or broadcast.
    pub(super) fn abort(&mut self, frame: &Frame, receipt: Option<String>, out: &mut Out<S>) {
        match self.transactions.finish(frame.header("transaction")) {
            Ok(_) => self.receipt(receipt, out),
            Err(e) => self.unknown_transaction(e, frame, receipt, out),
        }
    }

    /// Holds an accepted SEND in transaction `id` (ERROR and close over the bound).
    pub(super) fn hold(&mut self, id: &str, send: HeldSend<S>, cfg: &SessionConfig, out: &mut Out<S>) {
        let receipt = send.receipt.clone();
        if let Err(e) = self.transactions.hold(id, send, cfg.max_transaction_sends) {
            let detail = format!("at most {} SENDs per transaction", cfg.max_transaction_sends);
            self.fail(e.message(), &detail, receipt, out);
        }
    }

    /// The answer to a committed group once its fate is known: each SEND's RECEIPT (those that
    /// asked) and then the COMMIT's, or one error per SEND and no receipt.
    pub fn group_settled<R: AsRef<str>>(
        &mut self,
        receipts: &[Option<R>],
        commit_receipt: Option<&str>,
        outcome: Result<(), AppError>,
        out: &mut Out<S>,
    ) {
        self.sends_in_flight = self.sends_in_flight.saturating_sub(receipts.len());
        if !self.is_closed() {
            let receipts = receipts.iter().map(|r| r.as_ref().map(AsRef::as_ref));
            match outcome {
                Ok(()) => {
                    for r in receipts.chain(std::iter::once(commit_receipt)).flatten() {
                        out.push(Action::Send(receipt_frame(r)));
                    }
                }
                Err(e) => {
                    for r in receipts {
                        self.app_error(e.code, &e.message, r, out);
                    }
                }
            }
        }
        self.finish_draining(out);
    }

    fn unknown_transaction(&mut self, e: TransactionError, frame: &Frame, receipt: Option<String>, out: &mut Out<S>) {
        let detail = format!(
            "{} names transaction {}, which is not open",
            frame.command.as_str(),
            frame.header("transaction").unwrap_or("(none)")
        );
        self.fail(e.message(), &detail, receipt, out);
    }

    /// A RECEIPT, when one was asked for.
    fn receipt(&mut self, receipt: Option<String>, out: &mut Out<S>) {
        if let Some(r) = receipt {
            out.push(Action::Send(receipt_frame(&r)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(n: u32) -> HeldSend<u32> {
        HeldSend { send: n, receipt: None }
    }

    #[test]
    fn begin_needs_a_fresh_id_within_the_bound() {
        let mut t = Transactions::<u32>::default();
        assert_eq!(t.begin(None, 2), Err(TransactionError::MissingId));
        assert_eq!(t.begin(Some(""), 2), Err(TransactionError::MissingId));
        assert_eq!(t.begin(Some("a"), 2), Ok(()));
        assert_eq!(t.begin(Some("a"), 2), Err(TransactionError::Duplicate));
        assert_eq!(t.begin(Some("b"), 2), Ok(()));
        assert_eq!(t.begin(Some("c"), 2), Err(TransactionError::TooManyOpen));
        assert_eq!(t.len(), 2);
        // Finishing one makes room again, and its id may be reused.
        assert_eq!(t.finish(Some("a")), Ok(vec![]));
        assert_eq!(t.begin(Some("a"), 2), Ok(()));
    }

    #[test]
    fn held_sends_come_back_in_order_and_are_bounded() {
        let mut t = Transactions::default();
        t.begin(Some("t"), 16).unwrap();
        t.begin(Some("u"), 16).unwrap();
        for n in 0..3 {
            t.hold("t", held(n), 3).unwrap();
        }
        t.hold("u", held(9), 3).unwrap();
        assert_eq!(t.hold("t", held(3), 3), Err(TransactionError::TooManySends));
        assert_eq!(t.hold("x", held(0), 3), Err(TransactionError::Unknown));
        assert_eq!(t.held(), 4);
        let sends: Vec<u32> = t.finish(Some("t")).unwrap().into_iter().map(|h| h.send).collect();
        assert_eq!(sends, [0, 1, 2]);
        assert_eq!(t.finish(Some("t")), Err(TransactionError::Unknown), "finished once");
        assert_eq!(t.finish(None), Err(TransactionError::Unknown));
        t.abort_all();
        assert!(t.len() == 0 && t.held() == 0);
    }

    #[test]
    fn messages_fit_a_stomp_header() {
        for e in [
            TransactionError::MissingId,
            TransactionError::Duplicate,
            TransactionError::Unknown,
            TransactionError::TooManyOpen,
            TransactionError::TooManySends,
        ] {
            assert!(!e.message().contains(['\n', '\r', ':', '\\']));
        }
    }

    // The rules as a client meets them, through `Session::on_frame`.

    use crate::stomp::frame::Command;
    use crate::stomp::session::testing::*;
    use crate::stomp::session::{Action, AppError, Destination, ERRORS_QUEUE};

    fn errors_subscribed() -> crate::stomp::session::Session<String> {
        let mut s = connected();
        feed(
            &mut s,
            frame(Command::Subscribe, &[("id", "e"), ("destination", ERRORS_QUEUE)]),
        );
        assert_eq!(s.subscriptions()[0].destination, Destination::Errors);
        s
    }

    fn begin(id: &str) -> crate::stomp::frame::Frame {
        frame(Command::Begin, &[("transaction", id), ("receipt", &format!("b-{id}"))])
    }

    #[test]
    fn sends_are_held_until_commit_then_handed_over_as_one_group_in_order() {
        let mut s = errors_subscribed();
        assert_eq!(receipts(&feed(&mut s, begin("t1"))), ["b-t1"]);
        let mut out = Vec::new();
        for (body, receipt) in [("one", "r1"), ("bad", "r2"), ("two", "r3")] {
            out.extend(feed(&mut s, send(body, &[("transaction", "t1"), ("receipt", receipt)])));
        }
        out.extend(feed(&mut s, send("three", &[("transaction", "t1")])));
        assert!(!publishes(&out), "nothing leaves the session before COMMIT: {out:?}");
        assert!(receipts(&out).is_empty(), "a held SEND is not receipted yet");
        // The invalid one is refused at once, like any SEND, and not held.
        let errors = app_errors(&out);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0]["code"].as_str(), errors[0]["receipt-id"].as_str()),
            (Some("INVALID_REQUEST"), Some("r2"))
        );
        assert_eq!(s.held_sends(), 3);
        assert_eq!(s.sends_in_flight(), 0);

        let out = feed(
            &mut s,
            frame(Command::Commit, &[("transaction", "t1"), ("receipt", "c1")]),
        );
        let [Action::CommitGroup { sends, receipt }] = out.as_slice() else {
            panic!("one group: {out:?}");
        };
        let bodies: Vec<&str> = sends.iter().map(|h| h.send.as_str()).collect();
        assert_eq!(bodies, ["one", "two", "three"]);
        let held_receipts: Vec<Option<&str>> = sends.iter().map(|h| h.receipt.as_deref()).collect();
        assert_eq!(held_receipts, [Some("r1"), Some("r3"), None]);
        assert_eq!(receipt.as_deref(), Some("c1"));
        assert_eq!((s.open_transactions(), s.held_sends(), s.sends_in_flight()), (0, 0, 3));

        // Committed: each SEND's receipt, then COMMIT's.
        let mut out = Vec::new();
        s.group_settled(&[Some("r1"), Some("r3"), None], Some("c1"), Ok(()), &mut out);
        assert_eq!(receipts(&out), ["r1", "r3", "c1"]);
        assert_eq!(s.sends_in_flight(), 0);
    }

    #[test]
    fn a_failed_group_gets_one_error_per_send_and_no_receipt() {
        let mut s = errors_subscribed();
        feed(&mut s, begin("t"));
        feed(&mut s, send("a", &[("transaction", "t"), ("receipt", "ra")]));
        feed(&mut s, send("b", &[("transaction", "t")]));
        let out = feed(
            &mut s,
            frame(Command::Commit, &[("transaction", "t"), ("receipt", "c")]),
        );
        assert!(publishes(&out));
        let mut out = Vec::new();
        let failure = AppError {
            code: "SERVICE_UNAVAILABLE",
            message: "later".into(),
        };
        s.group_settled(&[Some("ra"), None], Some("c"), Err(failure), &mut out);
        assert!(receipts(&out).is_empty(), "no receipt at all: {out:?}");
        let errors = app_errors(&out);
        let ids: Vec<(Option<&str>, Option<&str>)> = errors
            .iter()
            .map(|e| (e["code"].as_str(), e["receipt-id"].as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                (Some("SERVICE_UNAVAILABLE"), Some("ra")),
                (Some("SERVICE_UNAVAILABLE"), None)
            ]
        );
        assert_eq!(s.sends_in_flight(), 0);
        assert!(!s.is_closed(), "the session stays open");
    }

    #[test]
    fn abort_drops_the_held_sends_and_an_empty_commit_is_receipted_at_once() {
        let mut s = connected();
        feed(&mut s, begin("t"));
        feed(&mut s, send("x", &[("transaction", "t"), ("receipt", "rx")]));
        let out = feed(&mut s, frame(Command::Abort, &[("transaction", "t"), ("receipt", "a")]));
        assert_eq!(receipts(&out), ["a"]);
        assert!(!publishes(&out));
        assert_eq!((s.open_transactions(), s.held_sends()), (0, 0));
        // Its id is gone: committing it now is a protocol error.
        let out = feed(&mut s, frame(Command::Commit, &[("transaction", "t")]));
        assert_fails(&s, &out, "unknown transaction");

        let mut s = connected();
        feed(&mut s, begin("empty"));
        let out = feed(
            &mut s,
            frame(Command::Commit, &[("transaction", "empty"), ("receipt", "c")]),
        );
        assert_eq!(receipts(&out), ["c"]);
        assert!(!publishes(&out));
    }

    #[test]
    fn unknown_duplicate_and_missing_ids_are_protocol_errors() {
        let cases: Vec<(&str, Vec<crate::stomp::frame::Frame>, &str)> = vec![
            (
                "BEGIN without id",
                vec![frame(Command::Begin, &[])],
                "missing transaction header",
            ),
            (
                "BEGIN with an empty id",
                vec![frame(Command::Begin, &[("transaction", "")])],
                "missing transaction header",
            ),
            ("BEGIN twice", vec![begin("t"), begin("t")], "duplicate transaction"),
            (
                "SEND in an unknown transaction",
                vec![send("x", &[("transaction", "nope")])],
                "unknown transaction",
            ),
            (
                "COMMIT of an unknown transaction",
                vec![frame(Command::Commit, &[("transaction", "nope")])],
                "unknown transaction",
            ),
            (
                "COMMIT without id",
                vec![begin("t"), frame(Command::Commit, &[])],
                "unknown transaction",
            ),
            (
                "ABORT of an unknown transaction",
                vec![frame(Command::Abort, &[("transaction", "nope")])],
                "unknown transaction",
            ),
            (
                "ABORT twice",
                vec![
                    begin("t"),
                    frame(Command::Abort, &[("transaction", "t")]),
                    frame(Command::Abort, &[("transaction", "t")]),
                ],
                "unknown transaction",
            ),
            (
                "ACK in an unknown transaction",
                vec![frame(Command::Ack, &[("id", "s/1"), ("transaction", "nope")])],
                "unknown transaction",
            ),
        ];
        for (what, frames, message) in cases {
            let mut s = connected();
            let mut out = Vec::new();
            for f in frames {
                out.extend(feed(&mut s, f));
            }
            assert_fails(&s, &out, message);
            assert_eq!(s.open_transactions(), 0, "{what}: a closed session holds nothing");
        }
    }

    #[test]
    fn the_bounds_end_the_session() {
        // cfg(): at most 2 open transactions…
        let mut s = connected();
        feed(&mut s, begin("a"));
        feed(&mut s, begin("b"));
        let out = feed(&mut s, begin("c"));
        assert_fails(&s, &out, "too many transactions");
        assert!(frames(&out)[0].body.starts_with(b"at most 2 open transactions"));

        // …of at most 3 SENDs each; refused SENDs do not count.
        let mut s = connected();
        feed(&mut s, begin("t"));
        for body in ["1", "bad", "2", "3"] {
            let out = feed(&mut s, send(body, &[("transaction", "t")]));
            assert!(!s.is_closed(), "{out:?}");
        }
        assert_eq!(s.held_sends(), 3);
        let out = feed(&mut s, send("4", &[("transaction", "t"), ("receipt", "r4")]));
        assert_fails(&s, &out, "too many sends in transaction");
        assert_eq!(frames(&out)[0].header("receipt-id"), Some("r4"));
        assert!(!publishes(&out), "nothing of the transaction is committed");
        assert_eq!(s.held_sends(), 0);
    }

    #[test]
    fn disconnect_and_errors_abort_what_is_open() {
        let mut s = connected();
        feed(&mut s, begin("t"));
        feed(&mut s, send("held", &[("transaction", "t")]));
        let out = feed(&mut s, frame(Command::Disconnect, &[("receipt", "bye")]));
        assert_eq!(receipts(&out), ["bye"]);
        assert!(!publishes(&out), "DISCONNECT aborts: {out:?}");
        assert!(matches!(out.last(), Some(Action::Close)));
        assert_eq!((s.open_transactions(), s.held_sends()), (0, 0));

        let mut s = connected();
        feed(&mut s, begin("t"));
        feed(&mut s, send("held", &[("transaction", "t")]));
        let mut out = Vec::new();
        s.fail("slow consumer", "closed", None, &mut out);
        assert!(!publishes(&out));
        assert_eq!((s.open_transactions(), s.held_sends()), (0, 0));
    }

    #[test]
    fn a_commit_counts_its_sends_in_flight() {
        let mut s = connected();
        feed(&mut s, begin("t"));
        for body in ["1", "2", "3"] {
            feed(&mut s, send(body, &[("transaction", "t")]));
        }
        assert!(s.wants_read(&cfg()), "held SENDs are not in flight");
        feed(&mut s, frame(Command::Commit, &[("transaction", "t")]));
        assert_eq!(s.sends_in_flight(), 3);
        feed(&mut s, send("4", &[]));
        assert!(!s.wants_read(&cfg()), "3 + 1 reach the bound of 4");
        let mut out = Vec::new();
        s.group_settled::<&str>(&[None, None, None], None, Ok(()), &mut out);
        assert!(s.wants_read(&cfg()));
        assert!(out.is_empty(), "nothing asked, nothing said");
    }
}
