//! Ack modes (STOMP 1.2 `SUBSCRIBE ack:auto|client|client-individual`) and what a session
//! remembers to check `ACK`/`NACK`.
//!
//! Chat topics are not queues: nothing is ever redelivered, so an ACK or NACK changes no delivery.
//! What the modes do mean here:
//!
//! - every `MESSAGE` of a `client` or `client-individual` subscription carries
//!   `ack:<subscription-id>/<message-id>` (the subscription names it, so it is unique on the
//!   connection even when two subscriptions receive the same message);
//! - `ACK`/`NACK` of an id this connection was sent are accepted (their receipts honoured); in
//!   `client` mode they are cumulative: they settle that MESSAGE and every earlier one of the same
//!   subscription; in `client-individual` mode, that MESSAGE only;
//! - `ACK`/`NACK` of an id the connection was never sent is a protocol error.
//!
//! The memory is bounded: per client-mode subscription, the first id sent and the last
//! [`ACK_WINDOW`] ids sent (delivery ids ascend per subscription, so they are kept sorted). An id
//! in the window, or above the first and older than the window, is accepted (the second because
//! it may have been sent: the session no longer knows, and says so in the docs); an id below the
//! first, above the last, or missing from inside the window was certainly never sent.

use std::collections::VecDeque;

use super::{receipt_frame, Action, Destination, Out, Session, TransactionError};
use crate::stomp::frame::Frame;

/// How many recent delivery ids a client-mode subscription remembers exactly (8 bytes each).
pub const ACK_WINDOW: usize = 128;

/// The `ack` header of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// No ACK expected (the default).
    #[default]
    Auto,
    /// ACK/NACK are cumulative.
    Client,
    /// ACK/NACK settle one MESSAGE.
    ClientIndividual,
}

impl AckMode {
    /// The mode a SUBSCRIBE asks for (absent: `auto`); `None` for anything STOMP 1.2 does not define.
    pub fn parse(header: Option<&str>) -> Option<AckMode> {
        match header {
            None | Some("auto") => Some(AckMode::Auto),
            Some("client") => Some(AckMode::Client),
            Some("client-individual") => Some(AckMode::ClientIndividual),
            Some(_) => None,
        }
    }

    /// Whether this mode's MESSAGEs carry an `ack` header.
    pub fn is_client(self) -> bool {
        self != AckMode::Auto
    }
}

/// The `ack` header of a MESSAGE with `message_id` sent on `subscription`.
pub fn ack_id(subscription: &str, message_id: &str) -> String {
    format!("{subscription}/{message_id}")
}

/// Splits an ack id into (subscription id, message id); message ids never hold a `/`.
pub fn split_ack_id(id: &str) -> Option<(&str, &str)> {
    id.rsplit_once('/')
}

/// The number a delivery id carries: room messages are numbered by their store id, queue messages
/// (`q-<n>`) by the session's own counter.
pub(super) fn delivery_number(destination: &Destination, message_id: &str) -> Option<i64> {
    let digits = match destination {
        Destination::Room(_) => message_id,
        Destination::Errors | Destination::Notifications => message_id.strip_prefix("q-")?,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why an ACK/NACK is refused (the ERROR's `message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckRefusal {
    /// Nothing with that id was sent on this connection.
    NeverSent,
}

/// What a client-mode subscription was sent, bounded (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckLedger {
    first: Option<i64>,
    recent: VecDeque<i64>,
    /// The highest id acknowledged so far (cumulatively in `client` mode), for the record.
    acked_through: Option<i64>,
}

impl AckLedger {
    /// Records a MESSAGE sent with delivery number `n`. Numbers ascend on a subscription; one
    /// that does not (it never happens) is not recorded, so the window stays sorted.
    pub fn delivered(&mut self, n: i64) {
        if self.recent.back().is_some_and(|&last| n <= last) {
            return;
        }
        self.first.get_or_insert(n);
        if self.recent.len() == ACK_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(n);
    }

    /// Checks an ACK/NACK of delivery number `n` and records it.
    pub fn acknowledge(&mut self, n: i64) -> Result<(), AckRefusal> {
        let (Some(first), Some(&oldest), Some(&last)) = (self.first, self.recent.front(), self.recent.back()) else {
            return Err(AckRefusal::NeverSent);
        };
        let sent = if n < first || n > last {
            false
        } else if n < oldest {
            true // older than the window: it may have been sent, the session cannot tell
        } else {
            self.recent.binary_search(&n).is_ok()
        };
        if !sent {
            return Err(AckRefusal::NeverSent);
        }
        self.acked_through = Some(self.acked_through.map_or(n, |a| a.max(n)));
        Ok(())
    }

    /// The highest delivery number acknowledged so far.
    #[cfg(test)]
    pub fn acked_through(&self) -> Option<i64> {
        self.acked_through
    }

    /// Delivery numbers remembered exactly (at most [`ACK_WINDOW`]).
    #[cfg(test)]
    pub fn remembered(&self) -> usize {
        self.recent.len()
    }
}

impl<S> Session<S> {
    /// Records a room MESSAGE (store id `id`) sent on `subscription`, when that subscription is in
    /// a client ack mode (`Action::JoinRoom { client_ack: true }`): its ACK is then accepted.
    pub fn delivered(&mut self, subscription: &str, id: i64) {
        if let Some(s) = self
            .subscriptions
            .iter_mut()
            .find(|s| s.id == subscription && s.ack.is_client())
        {
            s.ledger.get_or_insert_with(Box::default).delivered(id);
        }
    }

    /// For a MESSAGE about to be sent on `subscription`: in a client ack mode, records it and
    /// returns its `ack` header.
    pub(super) fn stamp_delivery(&mut self, subscription: &str, message_id: &str) -> Option<String> {
        let s = self.subscriptions.iter_mut().find(|s| s.id == subscription)?;
        if !s.ack.is_client() {
            return None;
        }
        let n = delivery_number(&s.destination, message_id)?;
        s.ledger.get_or_insert_with(Box::default).delivered(n);
        Some(ack_id(subscription, message_id))
    }

    /// ACK or NACK: accepted (with its receipt) for a MESSAGE this connection was sent on a
    /// client-mode subscription; anything else is a protocol error. Topics do not redeliver, so
    /// neither changes any delivery. Inside a transaction there is nothing to defer: the
    /// transaction must be open, and the ACK counts at once.
    pub(super) fn acknowledge(&mut self, frame: &Frame, receipt: Option<String>, out: &mut Out<S>) {
        let command = frame.command.as_str();
        if let Some(id) = frame.header("transaction") {
            if !self.transactions.is_open(id) {
                let detail = format!("{command} names transaction {id}, which is not open");
                return self.fail(TransactionError::Unknown.message(), &detail, receipt, out);
            }
        }
        // STOMP 1.2 names the MESSAGE by its `ack` header in `id`; 1.1 by `subscription` and `message-id`.
        let named = match (
            frame.header("id"),
            frame.header("subscription"),
            frame.header("message-id"),
        ) {
            (Some(id), _, _) => split_ack_id(id),
            (None, Some(subscription), Some(message_id)) => Some((subscription, message_id)),
            _ => {
                let detail = format!("{command} needs the id of the MESSAGE's ack header");
                return self.fail("missing id header", &detail, receipt, out);
            }
        };
        let verdict = named.and_then(|(subscription, message_id)| {
            let s = self
                .subscriptions
                .iter_mut()
                .find(|s| s.id == subscription && s.ack.is_client())?;
            let n = delivery_number(&s.destination, message_id)?;
            Some(s.ledger.get_or_insert_with(Box::default).acknowledge(n))
        });
        match verdict {
            Some(Ok(())) => {
                if let Some(r) = receipt {
                    out.push(Action::Send(receipt_frame(&r)));
                }
            }
            Some(Err(AckRefusal::NeverSent)) | None => {
                let id = match named {
                    Some((subscription, message_id)) => ack_id(subscription, message_id),
                    None => frame.header("id").unwrap_or_default().to_owned(),
                };
                let detail = format!("{command} of a MESSAGE this connection was never sent ({id})");
                self.fail("unknown ack id", &detail, receipt, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_strictly() {
        assert_eq!(AckMode::parse(None), Some(AckMode::Auto));
        assert_eq!(AckMode::parse(Some("auto")), Some(AckMode::Auto));
        assert_eq!(AckMode::parse(Some("client")), Some(AckMode::Client));
        assert_eq!(
            AckMode::parse(Some("client-individual")),
            Some(AckMode::ClientIndividual)
        );
        for bad in ["", "Client", "individual", "client_individual", "none"] {
            assert_eq!(AckMode::parse(Some(bad)), None, "{bad:?}");
        }
        assert!(!AckMode::Auto.is_client());
        assert!(AckMode::Client.is_client() && AckMode::ClientIndividual.is_client());
    }

    #[test]
    fn ack_ids_name_the_subscription_and_split_back() {
        assert_eq!(ack_id("sub-0", "42"), "sub-0/42");
        assert_eq!(
            split_ack_id("a/b/42"),
            Some(("a/b", "42")),
            "subscription ids may hold /"
        );
        assert_eq!(split_ack_id("42"), None);
        let room = Destination::Room("r".into());
        assert_eq!(delivery_number(&room, "42"), Some(42));
        assert_eq!(delivery_number(&room, "q-42"), None);
        assert_eq!(delivery_number(&room, "+4"), None);
        assert_eq!(delivery_number(&room, "99999999999999999999"), None);
        assert_eq!(delivery_number(&Destination::Errors, "q-7"), Some(7));
        assert_eq!(delivery_number(&Destination::Notifications, "7"), None);
        assert_eq!(delivery_number(&Destination::Notifications, "q-"), None);
    }

    #[test]
    fn only_ids_that_were_sent_are_accepted() {
        let mut l = AckLedger::default();
        assert_eq!(l.acknowledge(1), Err(AckRefusal::NeverSent), "nothing sent yet");
        for n in [10, 12, 15] {
            l.delivered(n);
        }
        assert_eq!(l.acknowledge(12), Ok(()));
        assert_eq!(l.acknowledge(12), Ok(()), "acknowledging twice is harmless");
        assert_eq!(l.acknowledge(15), Ok(()));
        assert_eq!(l.acked_through(), Some(15));
        for never in [9, 11, 13, 16, i64::MIN, i64::MAX] {
            assert_eq!(l.acknowledge(never), Err(AckRefusal::NeverSent), "{never}");
        }
        // A number that does not ascend is not recorded (it cannot happen, but stays harmless).
        l.delivered(14);
        assert_eq!(l.acknowledge(14), Err(AckRefusal::NeverSent));
    }

    #[test]
    fn the_memory_is_bounded_by_the_window() {
        let mut l = AckLedger::default();
        for n in 0..100_000 {
            l.delivered(n * 2);
        }
        assert_eq!(l.remembered(), ACK_WINDOW);
        let last = 99_999 * 2;
        let oldest = last - 2 * (ACK_WINDOW as i64 - 1);
        // Inside the window: exact.
        assert_eq!(l.acknowledge(last), Ok(()));
        assert_eq!(l.acknowledge(oldest), Ok(()));
        assert_eq!(l.acknowledge(oldest + 1), Err(AckRefusal::NeverSent));
        // Older than the window but not below the first: accepted, the session cannot tell.
        assert_eq!(l.acknowledge(oldest - 1), Ok(()));
        assert_eq!(l.acknowledge(0), Ok(()));
        assert_eq!(l.acknowledge(-1), Err(AckRefusal::NeverSent));
        assert_eq!(l.acknowledge(last + 2), Err(AckRefusal::NeverSent));
    }

    // The rules as a client meets them, through `Session::on_frame`.

    use crate::stomp::frame::{Command, Frame};
    use crate::stomp::session::testing::*;
    use crate::stomp::session::{Action, Session, NOTIFICATIONS_QUEUE};

    fn subscribe(s: &mut Session<String>, id: &str, destination: &str, ack: Option<&str>) -> TestOut {
        let mut f = frame(Command::Subscribe, &[("id", id), ("destination", destination)]);
        if let Some(ack) = ack {
            f = f.with_header("ack", ack);
        }
        feed_admitted(s, f)
    }

    fn ack(id: &str, receipt: &str) -> Frame {
        frame(Command::Ack, &[("id", id), ("receipt", receipt)])
    }

    #[test]
    fn subscribe_takes_the_three_modes_and_nothing_else() {
        for (mode, client) in [
            (None, false),
            (Some("auto"), false),
            (Some("client"), true),
            (Some("client-individual"), true),
        ] {
            let mut s = connected();
            let out = subscribe(&mut s, "r", "/topic/chat.room-1", mode);
            assert!(
                matches!(out[0], Action::JoinRoom { client_ack, .. } if client_ack == client),
                "{mode:?}: {out:?}"
            );
            assert_eq!(s.subscriptions()[0].ack.is_client(), client);
        }
        for bad in ["", "CLIENT", "individual", "server"] {
            let mut s = connected();
            let out = subscribe(&mut s, "r", "/topic/chat.room-1", Some(bad));
            assert_fails(&s, &out, "invalid ack mode");
            assert!(
                !out.iter().any(|a| matches!(a, Action::JoinRoom { .. })),
                "{bad:?}: not joined"
            );
        }
    }

    #[test]
    fn client_mode_messages_carry_an_ack_id_that_acks_and_nacks_accept() {
        let mut s = connected();
        subscribe(&mut s, "n", NOTIFICATIONS_QUEUE, Some("client-individual"));
        subscribe(&mut s, "r", "/topic/chat.room-1", Some("client"));
        let m = s.notification("{}").expect("subscribed");
        let id = m.header("ack").expect("ack header").to_owned();
        assert_eq!(id, format!("n/{}", m.header("message-id").unwrap_or_default()));
        assert_eq!(receipts(&feed(&mut s, ack(&id, "a1"))), ["a1"]);
        let nack = frame(Command::Nack, &[("id", &id), ("receipt", "n1")]);
        assert_eq!(receipts(&feed(&mut s, nack)), ["n1"]);

        // Room MESSAGEs are encoded by fan-out and recorded with `delivered`.
        s.delivered("r", 40);
        s.delivered("r", 42);
        assert_eq!(receipts(&feed(&mut s, ack("r/42", "a2"))), ["a2"]);
        // STOMP 1.1 names the MESSAGE by subscription and message-id.
        let v11 = frame(
            Command::Ack,
            &[("subscription", "r"), ("message-id", "40"), ("receipt", "a3")],
        );
        assert_eq!(receipts(&feed(&mut s, v11)), ["a3"]);
        assert!(!s.is_closed());
        let ledger = s.subscriptions()[1].ledger.as_deref().expect("a client-mode ledger");
        assert_eq!(ledger.acked_through(), Some(42), "client mode: cumulative up to 42");
    }

    #[test]
    fn acking_what_was_never_sent_is_a_protocol_error() {
        let never: [(&str, Frame); 8] = [
            ("a MESSAGE id not delivered", ack("r/41", "x")),
            ("an id above the last delivered", ack("r/43", "x")),
            ("an unknown subscription", ack("zz/42", "x")),
            ("an auto-mode subscription", ack("auto/42", "x")),
            ("no subscription part", ack("42", "x")),
            ("a queue id on a room subscription", ack("r/q-1", "x")),
            ("a NACK of an id never sent", frame(Command::Nack, &[("id", "r/1")])),
            (
                "1.1-style, wrong message-id",
                frame(Command::Ack, &[("subscription", "r"), ("message-id", "7")]),
            ),
        ];
        for (what, frame) in never {
            let mut s = connected();
            subscribe(&mut s, "r", "/topic/chat.room-1", Some("client-individual"));
            subscribe(&mut s, "auto", "/topic/chat.room-1", None);
            s.delivered("r", 40);
            s.delivered("r", 42);
            s.delivered("auto", 42);
            let out = feed(&mut s, frame);
            assert_fails(&s, &out, "unknown ack id");
            assert!(!frames(&out)[0].body.is_empty(), "{what}");
        }
        let mut s = connected();
        let out = feed(&mut s, frame(Command::Ack, &[("receipt", "x")]));
        assert_fails(&s, &out, "missing id header");
        // Auto mode: no ack header, so no ACK can name its MESSAGEs.
        let mut s = connected();
        subscribe(&mut s, "n", NOTIFICATIONS_QUEUE, None);
        let m = s.notification("{}").expect("subscribed");
        assert_eq!(m.header("ack"), None);
        let id = format!("n/{}", m.header("message-id").unwrap_or_default());
        let out = feed(&mut s, ack(&id, "x"));
        assert_fails(&s, &out, "unknown ack id");
    }

    #[test]
    fn errors_queue_messages_carry_ack_in_client_mode_and_acks_in_transactions_count_at_once() {
        let mut s = connected();
        subscribe(&mut s, "e", "/user/queue/errors", Some("client"));
        let out = feed(&mut s, send("bad", &[]));
        let error = frames(&out)[0];
        let id = error.header("ack").expect("ack header").to_owned();
        feed(&mut s, frame(Command::Begin, &[("transaction", "t")]));
        let in_tx = frame(Command::Ack, &[("id", &id), ("transaction", "t"), ("receipt", "a")]);
        assert_eq!(receipts(&feed(&mut s, in_tx)), ["a"]);
    }

    #[test]
    fn a_session_that_never_acks_stays_bounded() {
        let mut s = connected();
        subscribe(&mut s, "r", "/topic/chat.room-1", Some("client-individual"));
        for id in 1..=50_000 {
            s.delivered("r", id);
        }
        assert_eq!(
            s.subscriptions()[0].ledger.as_deref().map(AckLedger::remembered),
            Some(ACK_WINDOW)
        );
        assert_eq!(receipts(&feed(&mut s, ack("r/50000", "a"))), ["a"]);
        assert_eq!(
            receipts(&feed(&mut s, ack("r/1", "b"))),
            ["b"],
            "older than the window: accepted"
        );
    }
}
