//! The bus carries work between threads and the reactors: every reactor's inbox, the registry
//! of which reactor listens to which room and user, and the one entry point through which every
//! committed event is published.
//!
//! Publishing goes through [`Bus::publish`] only — the chat writer after a group commit, the
//! notification use case after a direct notification. Where a published event goes is the
//! [`Outlet`]'s business: today this node's reactors; a cluster outlet adds other nodes without
//! any caller changing.

mod event;
mod inbox;
mod interest;

use std::sync::Arc;

use crossbeam_channel::Receiver;

pub use event::{ChatEvent, Committed, MembershipEvent, NotificationEvent};
pub use inbox::{ConnRef, ReactorHandle, ReactorMsg};
pub use interest::{Interest, InterestChange, Topic};

use crate::http::response::Response;

/// Where published events go.
pub enum Outlet {
    /// Only to this node's reactors (a single node).
    Local,
}

/// All reactors' inboxes, the interest registry and the outlet.
pub struct Bus {
    reactors: Vec<ReactorHandle>,
    interest: Interest,
    outlet: Outlet,
}

impl Bus {
    /// At most 64 reactors (one bit each in the interest masks).
    pub const MAX_REACTORS: usize = 64;

    /// A bus over the given reactor inboxes (at most [`Bus::MAX_REACTORS`]).
    pub fn new(reactors: Vec<ReactorHandle>, outlet: Outlet) -> Bus {
        Bus {
            reactors,
            interest: Interest::default(),
            outlet,
        }
    }

    /// How many reactors the bus serves.
    pub fn reactor_count(&self) -> usize {
        self.reactors.len()
    }

    /// Which reactors listen to what.
    pub fn interest(&self) -> &Interest {
        &self.interest
    }

    /// Posts a message to one reactor.
    pub fn send(&self, reactor: usize, msg: ReactorMsg) {
        if let Some(handle) = self.reactors.get(reactor) {
            handle.post(reactor, msg);
        }
    }

    /// Replies to one connection.
    pub fn reply(&self, conn: ConnRef, response: Response) {
        self.send(
            conn.reactor,
            ReactorMsg::Reply {
                token: conn.token,
                response,
            },
        );
    }

    /// Wakes every reactor with nothing to drain (so that it notices the shutdown flag at once).
    pub fn wake_all(&self) {
        for (reactor, handle) in self.reactors.iter().enumerate() {
            handle.wake(reactor);
        }
    }

    /// Called by a reactor before it drains its inbox.
    pub fn clear_wake(&self, reactor: usize) {
        if let Some(handle) = self.reactors.get(reactor) {
            handle.clear_wake();
        }
    }

    /// Publishes what one transaction committed. Callers publish only after the commit
    /// succeeded, and in commit order — except a [`MembershipEvent`], which is published just
    /// before its transaction commits, while it still holds the room (see there why).
    pub fn publish(&self, committed: Committed) {
        match self.outlet {
            Outlet::Local => self.deliver(committed),
        }
    }

    /// Hands committed events to this node's reactors that listen to them: each chat batch once to
    /// each reactor holding subscribers of any of its rooms, then each notification to the
    /// reactors holding its recipient's streams and sessions, then each membership change to the
    /// reactors holding the user it revokes (their sessions) or the room it restricts.
    pub fn deliver(&self, committed: Committed) {
        let Committed {
            chat,
            notifications,
            membership,
        } = committed;
        if !chat.is_empty() {
            let rooms: Vec<Topic> = chat.iter().map(|e| Topic::Room(e.room.clone())).collect();
            let mask = self.interest.reactors(&rooms);
            self.post_masked(mask, chat, ReactorMsg::Chat);
        }
        if !notifications.is_empty() {
            let users: Vec<Topic> = notifications.iter().map(|n| Topic::User(n.recipient.clone())).collect();
            let mask = self.interest.reactors(&users);
            self.post_masked(mask, notifications, ReactorMsg::Notifications);
        }
        if !membership.is_empty() {
            let topics: Vec<Topic> = membership
                .iter()
                .map(|m| match m {
                    MembershipEvent::Revoked { user, .. } => Topic::User(user.clone()),
                    MembershipEvent::Restricted { room, .. } => Topic::Room(room.clone()),
                })
                .collect();
            let mask = self.interest.reactors(&topics);
            self.post_masked(mask, membership, ReactorMsg::Membership);
        }
    }

    fn post_masked<T>(&self, mask: u64, events: Vec<T>, wrap: fn(Arc<[T]>) -> ReactorMsg) {
        if mask == 0 {
            return;
        }
        let events: Arc<[T]> = events.into();
        for reactor in 0..self.reactors.len() {
            if mask & (1 << reactor) != 0 {
                self.send(reactor, wrap(Arc::clone(&events)));
            }
        }
    }
}

/// Makes the inboxes of `count` reactors from their wakers; the receivers go to the reactors.
pub fn inboxes(wakers: Vec<mio::Waker>) -> (Vec<ReactorHandle>, Vec<Receiver<ReactorMsg>>) {
    wakers.into_iter().map(ReactorHandle::new).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        bus: Bus,
        inboxes: Vec<Receiver<ReactorMsg>>,
        _polls: Vec<mio::Poll>,
    }

    fn fixture(reactors: usize) -> Fixture {
        let polls: Vec<mio::Poll> = (0..reactors).map(|_| mio::Poll::new().expect("poll")).collect();
        let wakers = polls
            .iter()
            .map(|p| mio::Waker::new(p.registry(), mio::Token(0)).expect("waker"))
            .collect();
        let (handles, inboxes) = inboxes(wakers);
        Fixture {
            bus: Bus::new(handles, Outlet::Local),
            inboxes,
            _polls: polls,
        }
    }

    fn chat(room: &str, id: i64) -> ChatEvent {
        ChatEvent {
            room: room.into(),
            id,
            body: "{}".into(),
        }
    }

    fn note(user: &str, id: i64) -> NotificationEvent {
        NotificationEvent {
            recipient: user.into(),
            id,
            body: "{}".into(),
        }
    }

    fn drained(rx: &Receiver<ReactorMsg>) -> Vec<String> {
        rx.try_iter()
            .map(|m| match m {
                ReactorMsg::Chat(events) => format!("chat {:?}", events.iter().map(|e| e.id).collect::<Vec<_>>()),
                ReactorMsg::Notifications(events) => {
                    format!("notes {:?}", events.iter().map(|e| e.id).collect::<Vec<_>>())
                }
                ReactorMsg::Membership(events) => {
                    format!("membership {:?}", events.iter().map(|e| e.room()).collect::<Vec<_>>())
                }
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn published_events_reach_only_interested_reactors_once_in_order() {
        let f = fixture(3);
        f.bus.interest().join(0, Topic::Room("a".into()));
        f.bus.interest().join(2, Topic::Room("b".into()));
        f.bus.interest().join(2, Topic::User("bob".into()));
        f.bus.publish(Committed {
            chat: vec![chat("a", 1), chat("b", 2), chat("nobody", 3)],
            notifications: vec![note("bob", 7), note("carol", 8)],
            membership: Vec::new(),
        });
        // A reactor gets the whole batch once (it skips rooms it does not hold), chat first.
        assert_eq!(drained(&f.inboxes[0]), vec!["chat [1, 2, 3]"]);
        assert!(drained(&f.inboxes[1]).is_empty());
        assert_eq!(drained(&f.inboxes[2]), vec!["chat [1, 2, 3]", "notes [7, 8]"]);
        // Nothing listened to: nothing posted.
        f.bus.publish(Committed {
            chat: vec![chat("zzz", 4)],
            notifications: vec![],
            membership: Vec::new(),
        });
        assert!(f.inboxes.iter().all(|rx| rx.is_empty()));
    }

    #[test]
    fn membership_changes_reach_the_revoked_user_and_the_restricted_room() {
        let f = fixture(3);
        f.bus.interest().join(0, Topic::User("bob".into()));
        f.bus.interest().join(1, Topic::Room("secret".into()));
        f.bus.publish(Committed::membership(MembershipEvent::Revoked {
            room: "r".into(),
            user: "bob".into(),
        }));
        assert_eq!(drained(&f.inboxes[0]), vec!["membership [\"r\"]"]);
        assert!(drained(&f.inboxes[1]).is_empty() && drained(&f.inboxes[2]).is_empty());
        let restricted = MembershipEvent::Restricted {
            room: "secret".into(),
            members: vec!["alice".into()].into(),
        };
        assert!(restricted.withdraws("bob") && !restricted.withdraws("alice"));
        f.bus.publish(Committed::membership(restricted));
        assert_eq!(drained(&f.inboxes[1]), vec!["membership [\"secret\"]"]);
        assert!(drained(&f.inboxes[0]).is_empty() && drained(&f.inboxes[2]).is_empty());
    }
}
