//! What travels over Redis, sans-io: one JSON envelope per PUBLISH, tagged with its kind so that
//! later kinds can join without breaking older nodes, which skip a kind they do not know.
//!
//! ```text
//! channel  herald:room:<roomId>   {"kind":"chat","node":"<id>","topic":"<roomId>","events":[{"id":12,"prev":11,"data":{…MESSAGE body…}}]}
//! channel  herald:user:<username> {"kind":"notification","node":"<id>","topic":"<username>","events":[{"id":7,"prev":3,"data":{…SSE data…}}]}
//! channel  herald:user:<username> {"kind":"revoked","node":"<id>","topic":"<username>","room":"<roomId>"}
//! channel  herald:room:<roomId>   {"kind":"restricted","node":"<id>","topic":"<roomId>","members":["<username>",…]}
//! ```
//!
//! `revoked` and `restricted` are withdrawals of room access (`MembershipEvent`): the user may no
//! longer enter the room; the room became private with only these members. They carry no id: a
//! receiver passes them straight to its reactors.
//!
//! `data` is the JSON clients see, embedded as it is (no re-encoding on either side); `prev` is
//! the id before `id` in the topic's sequence; `node` lets a node skip its own publishes, which
//! it has delivered already.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::bus::{ChatEvent, MembershipEvent, NotificationEvent, Topic};

/// The channel prefix of a room's messages.
pub const ROOM_PREFIX: &str = "herald:room:";
/// The channel prefix of a user's notifications.
pub const USER_PREFIX: &str = "herald:user:";

/// Kind of a room's chat messages.
const CHAT: &str = "chat";
/// Kind of a user's notifications.
const NOTIFICATION: &str = "notification";
/// Kind of a user's loss of access to a room.
const REVOKED: &str = "revoked";
/// Kind of a room's becoming private.
const RESTRICTED: &str = "restricted";

/// The largest payload decoded; anything larger is refused (a sane batch is far below it).
pub const MAX_PAYLOAD: usize = 16 << 20;

/// The Redis channel of a topic.
pub fn channel(topic: &Topic) -> String {
    match topic {
        Topic::Room(room) => format!("{ROOM_PREFIX}{room}"),
        Topic::User(user) => format!("{USER_PREFIX}{user}"),
    }
}

/// The topic of a Redis channel, if it is one of Herald's.
pub fn topic(channel: &str) -> Option<Topic> {
    if let Some(room) = channel.strip_prefix(ROOM_PREFIX) {
        Some(Topic::Room(room.into()))
    } else {
        channel.strip_prefix(USER_PREFIX).map(|u| Topic::User(u.into()))
    }
}

/// One PUBLISH: its channel and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub channel: String,
    pub payload: Vec<u8>,
}

/// The envelopes of one room's events (same room, ascending).
pub fn encode_chat(node: &str, room: &str, events: &[&ChatEvent]) -> Outgoing {
    let linked = events.iter().map(|e| (e.id, e.prev, &*e.body));
    Outgoing {
        channel: format!("{ROOM_PREFIX}{room}"),
        payload: envelope(CHAT, node, room, linked),
    }
}

/// The envelope of one recipient's notifications (same recipient, ascending).
pub fn encode_notifications(node: &str, user: &str, events: &[&NotificationEvent]) -> Outgoing {
    let linked = events.iter().map(|e| (e.id, e.prev, &*e.body));
    Outgoing {
        channel: format!("{USER_PREFIX}{user}"),
        payload: envelope(NOTIFICATION, node, user, linked),
    }
}

/// The envelope of a withdrawal of room access, on its topic's channel.
pub fn encode_membership(node: &str, event: &MembershipEvent) -> Outgoing {
    let mut out = Vec::with_capacity(96);
    let (kind, topic) = match event {
        MembershipEvent::Revoked { user, .. } => (REVOKED, user),
        MembershipEvent::Restricted { room, .. } => (RESTRICTED, room),
    };
    out.extend_from_slice(b"{\"kind\":");
    push_json_str(&mut out, kind);
    out.extend_from_slice(b",\"node\":");
    push_json_str(&mut out, node);
    out.extend_from_slice(b",\"topic\":");
    push_json_str(&mut out, topic);
    match event {
        MembershipEvent::Revoked { room, .. } => {
            out.extend_from_slice(b",\"room\":");
            push_json_str(&mut out, room);
        }
        MembershipEvent::Restricted { members, .. } => {
            out.extend_from_slice(b",\"members\":[");
            for (i, member) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_json_str(&mut out, member);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Outgoing {
        channel: channel(&event.topic()),
        payload: out,
    }
}

fn envelope<'a>(kind: &str, node: &str, topic: &str, events: impl Iterator<Item = (i64, i64, &'a str)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"{\"kind\":");
    push_json_str(&mut out, kind);
    out.extend_from_slice(b",\"node\":");
    push_json_str(&mut out, node);
    out.extend_from_slice(b",\"topic\":");
    push_json_str(&mut out, topic);
    out.extend_from_slice(b",\"events\":[");
    for (i, (id, prev, data)) in events.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(format!("{{\"id\":{id},\"prev\":{prev},\"data\":").as_bytes());
        // Bodies are JSON objects serialized by `views`: embedded as they are.
        out.extend_from_slice(data.as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// What a received payload holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A room's messages from another node.
    Chat(Vec<ChatEvent>),
    /// A user's notifications from another node.
    Notifications(Vec<NotificationEvent>),
    /// A withdrawal of room access made on another node.
    Membership(MembershipEvent),
    /// This node's own publish, delivered already.
    Own,
    /// A kind this version does not know: skipped.
    Unknown(String),
}

/// Why a payload was refused (logged and counted; the gap it leaves is filled from the store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("payload of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("envelope for {topic:?} on channel {channel:?}")]
    WrongChannel { channel: String, topic: String },
    #[error("event {id} (prev {prev}) out of sequence")]
    BadSequence { id: i64, prev: i64 },
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    node: Cow<'a, str>,
    #[serde(borrow, default)]
    topic: Cow<'a, str>,
    #[serde(borrow, default)]
    events: Vec<WireEvent<'a>>,
    /// `revoked`: the room the topic's user may no longer enter.
    #[serde(borrow, default)]
    room: Cow<'a, str>,
    /// `restricted`: who may still enter the topic's room.
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    id: i64,
    prev: i64,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Decodes a payload received on `channel`; `own_node` is this node's id.
pub fn decode(channel: &str, payload: &[u8], own_node: &str) -> Result<Incoming, WireError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(WireError::TooLarge(payload.len()));
    }
    let envelope: Envelope<'_> = serde_json::from_slice(payload).map_err(|e| WireError::Malformed(e.to_string()))?;
    let prefix = match &*envelope.kind {
        CHAT | RESTRICTED => ROOM_PREFIX,
        NOTIFICATION | REVOKED => USER_PREFIX,
        other => return Ok(Incoming::Unknown(other.chars().take(32).collect())),
    };
    if channel.strip_prefix(prefix) != Some(&*envelope.topic) || envelope.topic.is_empty() {
        return Err(WireError::WrongChannel {
            channel: channel.chars().take(100).collect(),
            topic: envelope.topic.chars().take(100).collect(),
        });
    }
    if envelope.node == own_node {
        return Ok(Incoming::Own);
    }
    match &*envelope.kind {
        REVOKED if envelope.room.is_empty() => {
            return Err(WireError::Malformed("a revocation names no room".into()));
        }
        REVOKED => {
            return Ok(Incoming::Membership(MembershipEvent::Revoked {
                room: envelope.room.into(),
                user: envelope.topic.into(),
            }))
        }
        RESTRICTED => {
            return Ok(Incoming::Membership(MembershipEvent::Restricted {
                room: envelope.topic.into(),
                members: envelope.members.into_iter().map(String::into_boxed_str).collect(),
            }))
        }
        _ => {}
    }
    let mut last = 0;
    for e in &envelope.events {
        if e.prev < 0 || e.id <= e.prev || e.id <= last || !e.data.get().starts_with('{') {
            return Err(WireError::BadSequence { id: e.id, prev: e.prev });
        }
        last = e.id;
    }
    let topic: Box<str> = envelope.topic.into();
    Ok(match prefix {
        ROOM_PREFIX => Incoming::Chat(
            envelope
                .events
                .iter()
                .map(|e| ChatEvent {
                    room: topic.clone(),
                    id: e.id,
                    prev: e.prev,
                    body: e.data.get().into(),
                })
                .collect(),
        ),
        _ => Incoming::Notifications(
            envelope
                .events
                .iter()
                .map(|e| NotificationEvent {
                    recipient: topic.clone(),
                    id: e.id,
                    prev: e.prev,
                    body: e.data.get().into(),
                })
                .collect(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(id: i64, prev: i64) -> ChatEvent {
        ChatEvent {
            room: "room-1".into(),
            id,
            prev,
            body: format!(r#"{{"id":{id},"roomId":"room-1","message":"hi \"there\" 한"}}"#).into(),
        }
    }

    #[test]
    fn chat_round_trips_byte_for_byte() {
        let (a, b) = (chat(11, 9), chat(12, 11));
        let out = encode_chat("node-a", "room-1", &[&a, &b]);
        assert_eq!(out.channel, "herald:room:room-1");
        let text = String::from_utf8(out.payload.clone()).unwrap();
        assert!(
            text.starts_with(
                r#"{"kind":"chat","node":"node-a","topic":"room-1","events":[{"id":11,"prev":9,"data":{"id":11"#
            ),
            "{text}"
        );
        assert_eq!(
            decode(&out.channel, &out.payload, "node-b"),
            Ok(Incoming::Chat(vec![a, b]))
        );
        assert_eq!(decode(&out.channel, &out.payload, "node-a"), Ok(Incoming::Own));
    }

    #[test]
    fn notifications_round_trip() {
        let n = NotificationEvent {
            recipient: "bob".into(),
            id: 7,
            prev: 3,
            body: r#"{"id":7,"type":"direct"}"#.into(),
        };
        let out = encode_notifications("n1", "bob", &[&n]);
        assert_eq!(out.channel, "herald:user:bob");
        assert_eq!(
            decode(&out.channel, &out.payload, "n2"),
            Ok(Incoming::Notifications(vec![n]))
        );
    }

    #[test]
    fn withdrawals_round_trip_on_their_topics_channels() {
        let revoked = MembershipEvent::Revoked {
            room: "secret-1".into(),
            user: "bob".into(),
        };
        let out = encode_membership("n1", &revoked);
        assert_eq!(out.channel, "herald:user:bob");
        assert_eq!(
            String::from_utf8(out.payload.clone()).unwrap(),
            r#"{"kind":"revoked","node":"n1","topic":"bob","room":"secret-1"}"#
        );
        assert_eq!(
            decode(&out.channel, &out.payload, "n2"),
            Ok(Incoming::Membership(revoked))
        );
        assert_eq!(decode(&out.channel, &out.payload, "n1"), Ok(Incoming::Own));
        let restricted = MembershipEvent::Restricted {
            room: "secret-1".into(),
            members: vec!["alice".into(), "q\"uote".into()].into(),
        };
        let out = encode_membership("n1", &restricted);
        assert_eq!(out.channel, "herald:room:secret-1");
        assert_eq!(
            decode(&out.channel, &out.payload, "n2"),
            Ok(Incoming::Membership(restricted))
        );
        // On the wrong kind of channel, or without its room.
        assert!(matches!(
            decode(
                "herald:room:bob",
                &encode_membership(
                    "n1",
                    &MembershipEvent::Revoked {
                        room: "r".into(),
                        user: "bob".into(),
                    }
                )
                .payload,
                "n2"
            ),
            Err(WireError::WrongChannel { .. })
        ));
        assert!(matches!(
            decode(
                "herald:user:bob",
                br#"{"kind":"revoked","node":"x","topic":"bob"}"#,
                "me"
            ),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn channels_map_to_topics() {
        let room = Topic::Room("a-1".into());
        assert_eq!(topic(&channel(&room)), Some(room));
        let user = Topic::User("bob.x".into());
        assert_eq!(topic(&channel(&user)), Some(user));
        assert_eq!(topic("other:thing"), None);
    }

    #[test]
    fn unknown_kinds_are_skipped_and_hostile_payloads_refused() {
        let ch = "herald:room:r";
        assert_eq!(
            decode(ch, br#"{"kind":"typing","node":"x","topic":"r","whatever":[1]}"#, "me"),
            Ok(Incoming::Unknown("typing".into()))
        );
        for bad in [
            &b"not json"[..],
            br#"{"node":"x"}"#,
            br#"{"kind":"chat","node":"x","topic":"r","events":[{"id":"1","prev":0,"data":{}}]}"#,
            br#"{"kind":"chat","node":"x","topic":"r","events":[{"id":1,"prev":0}]}"#,
        ] {
            assert!(matches!(decode(ch, bad, "me"), Err(WireError::Malformed(_))), "{bad:?}");
        }
        // Published on another room's channel, or a user's envelope on a room channel.
        assert!(matches!(
            decode(ch, br#"{"kind":"chat","node":"x","topic":"other","events":[]}"#, "me"),
            Err(WireError::WrongChannel { .. })
        ));
        assert!(matches!(
            decode(
                ch,
                br#"{"kind":"notification","node":"x","topic":"r","events":[]}"#,
                "me"
            ),
            Err(WireError::WrongChannel { .. })
        ));
        for seq in [
            r#"[{"id":5,"prev":5,"data":{}}]"#,
            r#"[{"id":5,"prev":-1,"data":{}}]"#,
            r#"[{"id":5,"prev":4,"data":{}},{"id":5,"prev":4,"data":{}}]"#,
            r#"[{"id":5,"prev":4,"data":"text"}]"#,
        ] {
            let payload = format!(r#"{{"kind":"chat","node":"x","topic":"r","events":{seq}}}"#);
            assert!(
                matches!(decode(ch, payload.as_bytes(), "me"), Err(WireError::BadSequence { .. })),
                "{seq}"
            );
        }
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(decode(ch, &huge, "me"), Err(WireError::TooLarge(MAX_PAYLOAD + 1)));
    }
}
