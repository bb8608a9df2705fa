//! What is published once committed: chat messages and notifications, each serialized to the JSON
//! clients see exactly once, however many subscribers and streams receive it.

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

/// Everything one store transaction made visible, in commit order.
#[derive(Debug, Default)]
pub struct Committed {
    pub chat: Vec<ChatEvent>,
    pub notifications: Vec<NotificationEvent>,
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
        }
    }

    /// One notification alone (a direct notification).
    pub fn notification(n: &Linked<Notification>) -> Committed {
        Committed {
            chat: Vec::new(),
            notifications: vec![NotificationEvent::of(&n.row, n.prev_id)],
        }
    }

    /// Whether there is nothing to publish.
    pub fn is_empty(&self) -> bool {
        self.chat.is_empty() && self.notifications.is_empty()
    }
}
