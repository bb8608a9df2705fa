//! What is published once committed: chat messages and notifications, each serialized to the JSON
//! clients see exactly once, however many subscribers and streams receive it; and changes of who
//! may enter a room, which end the subscriptions of those who may no longer.

use super::Topic;
use crate::store::model::{ChatMessage, CommittedChat, Linked, Notification};
use crate::views::{to_json, ChatView, NotificationView};

/// A committed chat message, serialized once for every subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEvent {
    pub room: Box<str>,
    pub id: i64,
    /// The id of the room's message before this one (0 for the first): see `bus::sequencer`.
    pub prev: i64,
    /// The JSON body `{"id","roomId","sender","message","sentAt"}`.
    pub body: Box<str>,
}

impl ChatEvent {
    /// The event of a stored message that follows `prev` in its room.
    pub fn of(m: &ChatMessage, prev: i64) -> ChatEvent {
        ChatEvent {
            room: m.room_id.as_str().into(),
            id: m.id,
            prev,
            body: to_json(&ChatView::from(m)),
        }
    }
}

/// A stored notification, serialized once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationEvent {
    pub recipient: Box<str>,
    pub id: i64,
    /// The id of the recipient's notification before this one (0 for the first).
    pub prev: i64,
    /// The JSON `{"id","type","recipient","sender","roomId","message","createdAt","read"}`.
    pub body: Box<str>,
}

impl NotificationEvent {
    /// The event of a stored notification that follows `prev` for its recipient.
    pub fn of(n: &Notification, prev: i64) -> NotificationEvent {
        NotificationEvent {
            recipient: n.recipient.as_str().into(),
            id: n.id,
            prev,
            body: to_json(&NotificationView::from(n)),
        }
    }
}

/// A change of who may enter a room. Only withdrawals are published: a grant needs no live
/// action (the next SUBSCRIBE or SEND is checked against the store), a withdrawal must end
/// subscriptions at once on every reactor (and node).
///
/// Unlike chat events, a withdrawal is published while the transaction that makes it still
/// holds the room, just before its commit: every message committed after the change is then
/// published after it, so no subscriber it concerns can receive such a message first. It has no
/// id of its own in any sequence, so the sequencers pass it straight through (`bus::delivery`):
/// holding it behind a gap would let a later message overtake it. Over Redis it travels on the
/// channel of its topic ([`MembershipEvent::topic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// `user` may no longer enter `room` (removed, or left): their subscriptions to it stop.
    Revoked { room: Box<str>, user: Box<str> },
    /// `room` became private with only `members` in it (it was created so): every other
    /// subscriber of it stops.
    Restricted { room: Box<str>, members: Box<[Box<str>]> },
}

impl MembershipEvent {
    /// The room concerned.
    pub fn room(&self) -> &str {
        match self {
            MembershipEvent::Revoked { room, .. } | MembershipEvent::Restricted { room, .. } => room,
        }
    }

    /// Where it goes: the revoked user's sessions, or the restricted room's subscribers.
    pub fn topic(&self) -> Topic {
        match self {
            MembershipEvent::Revoked { user, .. } => Topic::User(user.clone()),
            MembershipEvent::Restricted { room, .. } => Topic::Room(room.clone()),
        }
    }

    /// Whether `user` loses access to the room through this event.
    pub fn withdraws(&self, user: &str) -> bool {
        match self {
            MembershipEvent::Revoked { user: u, .. } => &**u == user,
            MembershipEvent::Restricted { members, .. } => !members.iter().any(|m| &**m == user),
        }
    }
}

/// Everything one store transaction made visible, in commit order.
#[derive(Debug, Default)]
pub struct Committed {
    pub chat: Vec<ChatEvent>,
    pub notifications: Vec<NotificationEvent>,
    pub membership: Vec<MembershipEvent>,
}

impl Committed {
    /// The events of a chat group commit.
    pub fn of(committed: &CommittedChat) -> Committed {
        Committed {
            chat: committed
                .messages
                .iter()
                .zip(&committed.message_prev_ids)
                .map(|(m, prev)| ChatEvent::of(m, *prev))
                .collect(),
            notifications: committed
                .notifications
                .iter()
                .zip(&committed.notification_prev_ids)
                .map(|(n, prev)| NotificationEvent::of(n, *prev))
                .collect(),
            membership: Vec::new(),
        }
    }

    /// One notification alone (a direct notification).
    pub fn notification(n: &Linked<Notification>) -> Committed {
        Committed {
            chat: Vec::new(),
            notifications: vec![NotificationEvent::of(&n.row, n.prev_id)],
            membership: Vec::new(),
        }
    }

    /// One change of who may enter a room.
    pub fn membership(event: MembershipEvent) -> Committed {
        Committed {
            chat: Vec::new(),
            notifications: Vec::new(),
            membership: vec![event],
        }
    }

    /// Whether there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.chat.is_empty() && self.notifications.is_empty() && self.membership.is_empty()
    }
}
