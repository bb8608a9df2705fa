//! Rooms a session may or may not enter (SPEC §8), as states of the session.
//!
//! A SUBSCRIBE to a room does not take effect at once: the session asks for a check
//! ([`Action::CheckRoom`]) and *waits*. While it waits, every later frame is held, in order, and
//! the reactor stops reading the socket ([`Session::is_waiting`]); when the answer comes
//! ([`Session::room_checked`]) the SUBSCRIBE succeeds (RECEIPT if asked) or ends the session
//! (`ERROR message:forbidden`), and the held frames run as if they had just arrived. So frames
//! are answered in the order they were sent, and a SEND right after a SUBSCRIBE is handled once
//! the subscription exists.
//!
//! Access can also be withdrawn from a live session ([`Session::room_access_withdrawn`]): its
//! subscriptions to the room stop, without an ERROR, and `{"code":"FORBIDDEN","roomId"}` goes
//! to `/user/queue/errors`. A withdrawal that arrives while the room's check is still running
//! turns that check's answer into a refusal, whatever the store said.

use std::collections::VecDeque;

use super::acks::AckMode;
use super::{Action, Destination, Host, Out, Session, SessionConfig, Subscription, ERRORS_QUEUE};
use crate::stomp::frame::{Command, Frame};
use crate::text::Text;

/// A room SUBSCRIBE waiting for its check.
#[derive(Debug)]
struct PendingSubscribe {
    id: String,
    room: String,
    /// The SUBSCRIBE's ack mode, which the subscription keeps once it is let in.
    ack: AckMode,
    receipt: Option<String>,
    /// Access to the room was withdrawn while the check ran: the answer is no.
    withdrawn: bool,
}

/// At most one room SUBSCRIBE waiting, and the frames that came after it.
#[derive(Debug, Default)]
pub(super) struct RoomGate {
    pending: Option<Box<PendingSubscribe>>,
    /// Boxed, and only while frames are held: most sessions never hold one, and an empty
    /// `VecDeque` inline would cost every idle session 32 bytes instead of 8.
    #[allow(clippy::box_collection)]
    held: Option<Box<VecDeque<Frame>>>,
}

impl<S> Session<S> {
    /// Whether a SUBSCRIBE waits for its room check: feed no more frames until it is answered
    /// (they would only be held).
    pub fn is_waiting(&self) -> bool {
        self.gate.pending.is_some()
    }

    /// Holds a frame that arrived while a SUBSCRIBE waits.
    pub(super) fn hold_frame(&mut self, frame: Frame) {
        self.gate.held.get_or_insert_with(Box::default).push_back(frame);
    }

    /// Starts waiting for the check of a SUBSCRIBE `id` to `room`.
    pub(super) fn check_room(
        &mut self,
        id: &str,
        room: String,
        ack: AckMode,
        receipt: Option<String>,
        out: &mut Out<S>,
    ) {
        out.push(Action::CheckRoom {
            room: room.clone(),
            subscription: id.to_owned(),
        });
        self.gate.pending = Some(Box::new(PendingSubscribe {
            id: id.to_owned(),
            room,
            ack,
            receipt,
            withdrawn: false,
        }));
    }

    /// Forgets the waiting SUBSCRIBE and the held frames (the session is closing); the pending
    /// subscription is left like a live one.
    pub(super) fn drop_pending(&mut self, out: &mut Out<S>) {
        self.gate.held = None;
        if let Some(p) = self.gate.pending.take() {
            out.push(Action::LeaveRoom {
                room: p.room,
                subscription: p.id,
            });
        }
    }

    /// The store's answer to the waiting SUBSCRIBE to `room`: `Some(true)` lets it in,
    /// `Some(false)` ends the session with `ERROR message:forbidden`, `None` (the store could not
    /// tell) with `ERROR message:service unavailable`. Then the held frames run, in order, until
    /// the next SUBSCRIBE to a room waits again. An answer for another room is stale and ignored.
    pub fn room_checked<H: Host<Send = S>>(
        &mut self,
        room: &str,
        allowed: Option<bool>,
        cfg: &SessionConfig,
        host: &mut H,
        out: &mut Out<S>,
    ) {
        if self.gate.pending.as_ref().is_none_or(|p| p.room != room) {
            return;
        }
        let Some(pending) = self.gate.pending.take().map(|p| *p) else {
            return;
        };
        let allowed = if pending.withdrawn { Some(false) } else { allowed };
        if allowed != Some(true) {
            // The reactor listed the pending subscription under the room; take it out first.
            out.push(Action::LeaveRoom {
                room: pending.room,
                subscription: pending.id.clone(),
            });
            self.gate.held = None;
            return match allowed {
                Some(_) => self.fail(
                    "forbidden",
                    "this room is private and you are not a member",
                    pending.receipt,
                    out,
                ),
                None => self.fail(
                    "service unavailable",
                    "the room could not be checked; retry shortly",
                    pending.receipt,
                    out,
                ),
            };
        }
        out.push(Action::JoinRoom {
            room: pending.room.clone(),
            subscription: pending.id.clone(),
            client_ack: pending.ack.is_client(),
        });
        self.subscriptions.push(Subscription {
            id: pending.id,
            destination: Destination::Room(pending.room),
            ack: pending.ack,
            ledger: None,
        });
        if let Some(r) = pending.receipt {
            out.push(Action::Send(super::receipt_frame(&r)));
        }
        while !self.is_waiting() && !self.is_closed() {
            let Some(frame) = self.gate.held.as_mut().and_then(|held| held.pop_front()) else {
                self.gate.held = None;
                break;
            };
            self.on_frame(frame, cfg, host, out);
        }
        if self.is_closed() {
            self.gate.held = None;
        }
    }

    /// `room` may no longer be entered by this session's user (removed, or the room became
    /// private): its subscriptions to the room stop, and the user is told on
    /// `/user/queue/errors`; a SUBSCRIBE to it still waiting will be refused. True when the
    /// session listened to the room.
    pub fn room_access_withdrawn(&mut self, room: &str, out: &mut Out<S>) -> bool {
        let mut ended = false;
        self.subscriptions.retain(|s| {
            let here = s.destination == Destination::Room(room.to_owned());
            if here {
                out.push(Action::LeaveRoom {
                    room: room.to_owned(),
                    subscription: s.id.clone(),
                });
                ended = true;
            }
            !here
        });
        if let Some(p) = self.gate.pending.as_mut().filter(|p| p.room == room) {
            p.withdrawn = true;
        }
        if ended {
            self.room_forbidden(room, out);
        }
        ended
    }

    /// `{"code":"FORBIDDEN","message","roomId"}` on `/user/queue/errors` (dropped when the client
    /// has not subscribed to it).
    fn room_forbidden(&mut self, room: &str, out: &mut Out<S>) {
        let Some(subscription) = self.subscription_to(&Destination::Errors).map(str::to_owned) else {
            return;
        };
        let body = serde_json::json!({
            "code": "FORBIDDEN",
            "message": Text::RoomAccessRevoked.ko(),
            "roomId": room,
        });
        let message_id = self.next_message_id();
        out.push(Action::Send(
            Frame::new(Command::Message)
                .with_header("destination", ERRORS_QUEUE)
                .with_header("subscription", subscription)
                .with_header("message-id", message_id)
                .with_header("content-type", "application/json")
                .with_body(body.to_string()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{alice, cfg, connected, sent, Out, TestSession};
    use super::*;

    fn subscribe(id: &str, room: &str) -> Frame {
        Frame::new(Command::Subscribe)
            .with_header("id", id)
            .with_header("destination", format!("/topic/chat.{room}"))
            .with_header("receipt", format!("r-{id}"))
    }

    fn send(body: &str) -> Frame {
        Frame::new(Command::Send)
            .with_header("destination", super::super::SEND_DESTINATION)
            .with_body(body.as_bytes().to_vec())
    }

    fn errors_subscribed() -> TestSession {
        let mut s = connected();
        let mut out: Out = Vec::new();
        let errors = Frame::new(Command::Subscribe)
            .with_header("id", "e")
            .with_header("destination", ERRORS_QUEUE);
        s.on_frame(errors, &cfg(), &mut alice(), &mut out);
        s
    }

    #[test]
    fn a_room_subscribe_waits_and_later_frames_are_held_in_order() {
        let mut s = errors_subscribed();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "secret"), &cfg(), &mut alice(), &mut out);
        assert!(
            matches!(&out[..], [Action::CheckRoom { room, subscription }] if room == "secret" && subscription == "1")
        );
        assert!(s.is_waiting());
        out.clear();
        s.on_frame(send("first"), &cfg(), &mut alice(), &mut out);
        s.on_frame(send("second"), &cfg(), &mut alice(), &mut out);
        assert!(out.is_empty(), "held: {out:?}");
        s.room_checked("secret", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(!s.is_waiting());
        assert!(
            matches!(&out[0], Action::JoinRoom { room, subscription, client_ack: false } if room == "secret" && subscription == "1")
        );
        assert_eq!(
            sent(&out)[0].header("receipt-id"),
            Some("r-1"),
            "RECEIPT before the held frames"
        );
        let published: Vec<&[u8]> = out
            .iter()
            .filter_map(|a| match a {
                Action::Publish { send, .. } => Some(send.1.as_slice()),
                _ => None,
            })
            .collect();
        assert_eq!(published, [b"first".as_slice(), b"second".as_slice()]);
        assert_eq!(s.subscriptions().len(), 2);
    }

    #[test]
    fn a_checked_subscribe_keeps_its_ack_mode() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        let client = subscribe("1", "secret").with_header("ack", "client-individual");
        s.on_frame(client, &cfg(), &mut alice(), &mut out);
        assert!(s.is_waiting() && !s.wants_read(&cfg()));
        out.clear();
        s.room_checked("secret", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(matches!(&out[0], Action::JoinRoom { client_ack: true, .. }));
        assert_eq!(s.subscriptions()[0].ack, AckMode::ClientIndividual);
        assert!(s.wants_read(&cfg()));
    }

    #[test]
    fn a_held_subscribe_waits_in_turn() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "a"), &cfg(), &mut alice(), &mut out);
        s.on_frame(subscribe("2", "b"), &cfg(), &mut alice(), &mut out);
        s.on_frame(send("after b"), &cfg(), &mut alice(), &mut out);
        out.clear();
        s.room_checked("a", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::CheckRoom { room, .. } if room == "b")));
        assert!(
            !out.iter().any(|a| matches!(a, Action::Publish { .. })),
            "still behind b"
        );
        assert!(s.is_waiting());
        out.clear();
        s.room_checked("a", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(out.is_empty(), "a stale answer is ignored");
        s.room_checked("b", Some(true), &cfg(), &mut alice(), &mut out);
        assert!(out.iter().any(|a| matches!(a, Action::Publish { .. })));
    }

    #[test]
    fn a_refused_subscribe_is_an_error_and_drops_what_was_held() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "secret"), &cfg(), &mut alice(), &mut out);
        s.on_frame(send("never"), &cfg(), &mut alice(), &mut out);
        out.clear();
        s.room_checked("secret", Some(false), &cfg(), &mut alice(), &mut out);
        assert!(matches!(&out[0], Action::LeaveRoom { room, .. } if room == "secret"));
        let error = sent(&out)[0];
        assert_eq!(error.command, Command::Error);
        assert_eq!(error.header("message"), Some("forbidden"));
        assert_eq!(error.header("receipt-id"), Some("r-1"));
        assert!(matches!(out.last(), Some(Action::Close)));
        assert!(!out.iter().any(|a| matches!(a, Action::Publish { .. })));
        assert!(s.is_closed());

        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "r"), &cfg(), &mut alice(), &mut out);
        out.clear();
        s.room_checked("r", None, &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("service unavailable"));
    }

    #[test]
    fn withdrawal_stops_live_subscriptions_and_tells_the_user() {
        let mut s = errors_subscribed();
        let mut out: Out = Vec::new();
        let roomy = SessionConfig {
            max_subscriptions: 10,
            ..cfg()
        };
        for (id, room) in [("1", "secret"), ("2", "secret"), ("3", "other")] {
            s.on_frame(subscribe(id, room), &roomy, &mut alice(), &mut out);
            s.room_checked(room, Some(true), &roomy, &mut alice(), &mut out);
        }
        out.clear();
        assert!(s.room_access_withdrawn("secret", &mut out));
        let left: Vec<&str> = out
            .iter()
            .filter_map(|a| match a {
                Action::LeaveRoom { subscription, .. } => Some(subscription.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(left, ["1", "2"]);
        let notices = sent(&out);
        assert_eq!(notices.len(), 1, "one notice per room");
        assert_eq!(notices[0].header("destination"), Some(ERRORS_QUEUE));
        let v: serde_json::Value = serde_json::from_slice(&notices[0].body).unwrap();
        assert_eq!(
            (v["code"].as_str(), v["roomId"].as_str()),
            (Some("FORBIDDEN"), Some("secret"))
        );
        assert!(!s.is_closed(), "no ERROR: the session goes on");
        assert_eq!(s.subscriptions().len(), 2, "errors and other remain");
        out.clear();
        assert!(!s.room_access_withdrawn("secret", &mut out), "nothing left to stop");
        assert!(out.is_empty());
    }

    #[test]
    fn withdrawal_during_the_check_refuses_the_subscribe() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "secret"), &cfg(), &mut alice(), &mut out);
        assert!(!s.room_access_withdrawn("secret", &mut out));
        out.clear();
        s.room_checked("secret", Some(true), &cfg(), &mut alice(), &mut out);
        assert_eq!(sent(&out)[0].header("message"), Some("forbidden"));
        assert!(s.is_closed());
    }

    #[test]
    fn closing_while_waiting_forgets_the_pending_subscription() {
        let mut s = connected();
        let mut out: Out = Vec::new();
        s.on_frame(subscribe("1", "secret"), &cfg(), &mut alice(), &mut out);
        out.clear();
        s.leave_all(&mut out);
        assert!(
            matches!(&out[..], [Action::LeaveRoom { room, subscription }] if room == "secret" && subscription == "1")
        );
        assert!(!s.is_waiting());
    }
}
