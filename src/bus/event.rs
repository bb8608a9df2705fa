//! What is published once committed: chat messages and notifications, each serialized to the JSON
//! clients see exactly once, however many subscribers and streams receive it; and changes of who
//! may enter a room, which end the subscriptions of those who may no longer.

use crate::store::model::{ChatMessage, Notification};
use crate::views::{to_json, ChatView, NotificationView};

/// A committed chat message, serialized once for every subscriber.
#[derive(Debug, Clone)]
pub struct ChatEvent {
    pub room: Box<str>,
    pub id: i64,
    /// The JSON body `{"id","roomId","sender","message","sentAt"}`.
    pub body: Box<str>,
}

impl ChatEvent {
    /// The event of a stored message.
    pub fn of(m: &ChatMessage) -> ChatEvent {
        ChatEvent {
            room: m.room_id.as_str().into(),
            id: m.id,
            body: to_json(&ChatView::from(m)),
        }
    }
}

/// A stored notification, serialized once.
#[derive(Debug, Clone)]
pub struct NotificationEvent {
    pub recipient: Box<str>,
    pub id: i64,
    /// The JSON `{"id","type","recipient","sender","roomId","message","createdAt","read"}`.
    pub body: Box<str>,
}

impl NotificationEvent {
    /// The event of a stored notification.
    pub fn of(n: &Notification) -> NotificationEvent {
        NotificationEvent {
            recipient: n.recipient.as_str().into(),
            id: n.id,
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
/// published after it, so no subscriber it concerns can receive such a message first.
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
    pub fn of(messages: &[ChatMessage], notifications: &[Notification]) -> Committed {
        Committed {
            chat: messages.iter().map(ChatEvent::of).collect(),
            notifications: notifications.iter().map(NotificationEvent::of).collect(),
            membership: Vec::new(),
        }
    }

    /// One notification alone (a direct notification).
    pub fn notification(n: &Notification) -> Committed {
        Committed {
            chat: Vec::new(),
            notifications: vec![NotificationEvent::of(n)],
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
}
