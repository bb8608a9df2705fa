//! The JSON shapes clients see, built from store values (field names as in the seed).

use serde::Serialize;

use crate::clock::iso8601_millis;
use crate::store::model::{ChatMessage, Notification, ReadMark, Room, RoomDetail, RoomSummary, User};

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

/// `{"roomId","name","private","owner","createdAt"}`: a room created through the API.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomView<'a> {
    pub room_id: &'a str,
    pub name: Option<&'a str>,
    pub private: bool,
    pub owner: Option<&'a str>,
    pub created_at: String,
}

impl<'a> From<&'a Room> for RoomView<'a> {
    fn from(r: &'a Room) -> Self {
        RoomView {
            room_id: &r.room_id,
            name: r.name.as_deref(),
            private: r.private,
            owner: r.owner.as_deref(),
            created_at: iso8601_millis(r.created_at_ms),
        }
    }
}

/// A room and its `members` (usernames, in the order they joined).
#[derive(Serialize)]
pub struct RoomDetailView<'a> {
    #[serde(flatten)]
    pub room: RoomView<'a>,
    pub members: &'a [String],
}

impl<'a> From<&'a RoomDetail> for RoomDetailView<'a> {
    fn from(d: &'a RoomDetail) -> Self {
        RoomDetailView {
            room: RoomView::from(&d.room),
            members: &d.members,
        }
    }
}

/// A room in a user's list: with `memberCount`, `lastMessage` (the seed's message shape, or
/// null) and `unread`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSummaryView<'a> {
    #[serde(flatten)]
    pub room: RoomView<'a>,
    pub member_count: i64,
    pub last_message: Option<ChatView<'a>>,
    pub unread: i64,
}

impl<'a> From<&'a RoomSummary> for RoomSummaryView<'a> {
    fn from(s: &'a RoomSummary) -> Self {
        RoomSummaryView {
            room: RoomView::from(&s.room),
            member_count: s.member_count,
            last_message: s.last_message.as_ref().map(ChatView::from),
            unread: s.unread,
        }
    }
}

/// `{"roomId","lastReadId","unread"}`: a read mark after `POST /rooms/{roomId}/read`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMarkView<'a> {
    pub room_id: &'a str,
    pub last_read_id: i64,
    pub unread: i64,
}

impl<'a> ReadMarkView<'a> {
    /// The mark of `room_id`.
    pub fn of(room_id: &'a str, mark: &ReadMark) -> Self {
        ReadMarkView {
            room_id,
            last_read_id: mark.last_read_id,
            unread: mark.unread,
        }
    }
}

/// `{"roomId","username"}`: who left or was removed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView<'a> {
    pub room_id: &'a str,
    pub username: &'a str,
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
    fn room_json_shapes() {
        let room = Room {
            room_id: "team".into(),
            name: Some("팀".into()),
            private: true,
            owner: Some("alice".into()),
            created_at_ms: 1_755_183_300_000,
        };
        assert_eq!(
            &*to_json(&RoomView::from(&room)),
            r#"{"roomId":"team","name":"팀","private":true,"owner":"alice","createdAt":"2025-08-14T14:55:00.000Z"}"#
        );
        let detail = RoomDetail {
            room: room.clone(),
            members: vec!["alice".into(), "bob".into()],
        };
        assert!(to_json(&RoomDetailView::from(&detail))
            .ends_with(r#""createdAt":"2025-08-14T14:55:00.000Z","members":["alice","bob"]}"#));
        let summary = RoomSummary {
            room,
            member_count: 2,
            last_message: None,
            unread: 0,
        };
        assert!(
            to_json(&RoomSummaryView::from(&summary)).ends_with(r#""memberCount":2,"lastMessage":null,"unread":0}"#)
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
