//! The JSON shapes clients see, built from store values (field names as in the seed).

use serde::Serialize;

use crate::clock::iso8601_millis;
use crate::store::model::{ChatMessage, Notification, User};

/// `{"id":1,"roomId":"room-1","sender":"alice","message":"hi","sentAt":"2025-08-14T14:55:00.000Z"}`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatView<'a> {
    pub id: i64,
    pub room_id: &'a str,
    pub sender: &'a str,
    pub message: &'a str,
    pub sent_at: String,
}

impl<'a> From<&'a ChatMessage> for ChatView<'a> {
    fn from(m: &'a ChatMessage) -> Self {
        ChatView {
            id: m.id,
            room_id: &m.room_id,
            sender: &m.sender,
            message: &m.message,
            sent_at: iso8601_millis(m.sent_at_ms),
        }
    }
}

/// `{"id","type","recipient","sender","roomId","message","createdAt","read"}`
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView<'a> {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub recipient: &'a str,
    pub sender: &'a str,
    pub room_id: Option<&'a str>,
    pub message: &'a str,
    pub created_at: String,
    pub read: bool,
}

impl<'a> From<&'a Notification> for NotificationView<'a> {
    fn from(n: &'a Notification) -> Self {
        NotificationView {
            id: n.id,
            kind: &n.kind,
            recipient: &n.recipient,
            sender: &n.sender,
            room_id: n.room_id.as_deref(),
            message: &n.message,
            created_at: iso8601_millis(n.created_at_ms),
            read: n.read,
        }
    }
}

/// `{"id","username"}`
#[derive(Serialize)]
pub struct UserView<'a> {
    pub id: i64,
    pub username: &'a str,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(u: &'a User) -> Self {
        UserView {
            id: u.id,
            username: &u.username,
        }
    }
}

/// Serializes a view once, for every subscriber or stream that receives it.
pub fn to_json<T: Serialize>(value: &T) -> Box<str> {
    // Serializing these plain structs cannot fail (string keys, no maps with non-string keys).
    serde_json::to_string(value).unwrap_or_default().into_boxed_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_json_matches_the_seed_byte_for_byte() {
        let m = ChatMessage {
            id: 1,
            room_id: "room-1".into(),
            sender: "alice".into(),
            message: "hi".into(),
            sent_at_ms: 1_755_183_300_000,
        };
        assert_eq!(
            &*to_json(&ChatView::from(&m)),
            r#"{"id":1,"roomId":"room-1","sender":"alice","message":"hi","sentAt":"2025-08-14T14:55:00.000Z"}"#
        );
    }

    #[test]
    fn notification_json_has_every_field() {
        let n = Notification {
            id: 7,
            recipient: "bob".into(),
            kind: "mention".into(),
            sender: "alice".into(),
            room_id: Some("room-1".into()),
            message: "@bob hi".into(),
            created_at_ms: 0,
            read: false,
        };
        assert_eq!(
            &*to_json(&NotificationView::from(&n)),
            r#"{"id":7,"type":"mention","recipient":"bob","sender":"alice","roomId":"room-1","message":"@bob hi","createdAt":"1970-01-01T00:00:00.000Z","read":false}"#
        );
    }
}
