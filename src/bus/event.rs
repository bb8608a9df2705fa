//! What is published once committed: chat messages and notifications, each serialized to the JSON
//! clients see exactly once, however many subscribers and streams receive it.

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

/// Everything one store transaction made visible, in commit order.
#[derive(Debug, Default)]
pub struct Committed {
    pub chat: Vec<ChatEvent>,
    pub notifications: Vec<NotificationEvent>,
}

impl Committed {
    /// The events of a chat group commit.
    pub fn of(messages: &[ChatMessage], notifications: &[Notification]) -> Committed {
        Committed {
            chat: messages.iter().map(ChatEvent::of).collect(),
            notifications: notifications.iter().map(NotificationEvent::of).collect(),
        }
    }

    /// One notification alone (a direct notification).
    pub fn notification(n: &Notification) -> Committed {
        Committed {
            chat: Vec::new(),
            notifications: vec![NotificationEvent::of(n)],
        }
    }
}
