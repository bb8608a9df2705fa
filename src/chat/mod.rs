//! The chat use case: a STOMP `SEND` to `/app/chat.send` becomes a stored, broadcast message.
//!
//! 1. [`accept`] validates the body `{"roomId","message"}` on the reactor and finds the mentions;
//! 2. [`writer`] queues it on the shard that owns its room, group-commits it with the mention
//!    notifications — refusing, inside the same transaction, a message whose sender may not
//!    enter its private room — publishes the committed batch on the bus, and only then answers
//!    the sender ([`ChatAck`]): a RECEIPT, or an error on `/user/queue/errors`; a SEND without a
//!    receipt is answered too (counted), so that the session knows how many SENDs it has in
//!    flight.
//!
//! A committed STOMP transaction is submitted as one job ([`submit_group`]): its SENDs commit in
//! one store transaction, in the order sent, and are answered together. It is authorized as a
//! whole: one SEND to a private room its sender is not in refuses the group — nothing of it is
//! stored, and every SEND of it gets `FORBIDDEN` (SPEC §4: a committed group whose store
//! transaction fails gets one error per SEND and no receipt).

pub mod writer;

use serde::Deserialize;
use serde_json::Value;

use std::sync::atomic::Ordering;

use crate::auth::validate;
use crate::bus::ConnRef;
use crate::shared::Shared;
use crate::stomp::session::{AppError, HeldSend, Host, Principal};
use crate::store::model::NewChatMessage;
use crate::text::Text;

pub use writer::ChatWriter;

/// Why a SEND was not stored; the variant says what the sender is told (the session stays open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatError {
    /// The body is not the JSON object `{"roomId","message"}`: fix the client.
    Malformed(Text),
    /// A field breaks its rule (`field`, why): fix the input.
    Invalid { field: &'static str, reason: &'static str },
    /// The room is private and the sender is not a member: nothing was stored.
    Forbidden,
    /// The store is down or the shard queue is full: retry later.
    Unavailable,
    /// The store failed otherwise: nothing was stored.
    Internal,
}

impl ChatError {
    /// The stable code of the JSON error on `/user/queue/errors`.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::Malformed(_) | ChatError::Invalid { .. } => "INVALID_REQUEST",
            ChatError::Forbidden => "FORBIDDEN",
            ChatError::Unavailable => "SERVICE_UNAVAILABLE",
            ChatError::Internal => "INTERNAL_ERROR",
        }
    }

    /// The human message of that error.
    pub fn message(&self) -> String {
        match self {
            ChatError::Malformed(text) => text.ko().to_owned(),
            ChatError::Invalid { field, reason } => format!("{field}: {reason}"),
            ChatError::Forbidden => Text::RoomForbidden.ko().to_owned(),
            ChatError::Unavailable => Text::MessageNotStored.ko().to_owned(),
            ChatError::Internal => Text::InternalError.ko().to_owned(),
        }
    }
}

/// Validated SENDs on their way to the shard that owns their room: one job is committed whole,
/// in one store transaction, never split across batches.
pub struct ChatJob {
    /// The sending session, told the outcome.
    pub origin: ConnRef,
    pub work: ChatWork,
}

/// What one job commits.
pub enum ChatWork {
    /// One SEND outside a transaction.
    Send {
        message: NewChatMessage,
        receipt: Option<Box<str>>,
    },
    /// A committed STOMP transaction: its SENDs in the order sent (`receipts[i]` is the receipt
    /// of `messages[i]`), all or none, then the COMMIT's `receipt`.
    Group {
        messages: Vec<NewChatMessage>,
        receipts: Vec<Option<Box<str>>>,
        receipt: Option<Box<str>>,
    },
}

impl ChatJob {
    /// How many messages the job commits.
    pub fn len(&self) -> usize {
        match &self.work {
            ChatWork::Send { .. } => 1,
            ChatWork::Group { messages, .. } => messages.len(),
        }
    }

    /// How many SENDs the job answers: its message count, also once the messages were moved
    /// into a batch.
    pub fn messages_sent(&self) -> usize {
        match &self.work {
            ChatWork::Send { .. } => 1,
            ChatWork::Group { receipts, .. } => receipts.len(),
        }
    }

    /// Whether the job commits nothing (an empty group is never submitted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The room of the job's first message (its shard's), if any.
    pub fn first_room(&self) -> Option<&str> {
        match &self.work {
            ChatWork::Send { message, .. } => Some(&message.room_id),
            ChatWork::Group { messages, .. } => messages.first().map(|m| m.room_id.as_str()),
        }
    }
}

/// The fate of SENDs of one session, posted to its reactor after the commit (and the publish).
#[derive(Debug)]
pub struct ChatAck {
    pub token: usize,
    pub answer: ChatAnswer,
}

/// What a session is told about its SENDs.
#[derive(Debug)]
pub enum ChatAnswer {
    /// `count` SENDs without a receipt were committed: nothing to write, but they are no longer
    /// in flight (consecutive ones of a session are counted together).
    Committed { count: usize },
    /// One SEND's RECEIPT (if asked) or its error.
    Send {
        receipt: Option<Box<str>>,
        outcome: Result<(), ChatError>,
    },
    /// A transaction's SENDs: their RECEIPTs then the COMMIT's, or one error per SEND.
    Group {
        receipts: Vec<Option<Box<str>>>,
        receipt: Option<Box<str>>,
        outcome: Result<(), ChatError>,
    },
}

/// Validates a SEND body `{"roomId":"room-1","message":"hi"}` from `sender` (other fields, such
/// as a client-supplied sender, are ignored) and finds its `@mentions`.
pub fn accept(body: &[u8], sender: &str, now_ms: i64, max_chars: usize) -> Result<NewChatMessage, ChatError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ChatSend {
        room_id: Option<Value>,
        message: Option<Value>,
    }
    let parsed: ChatSend = serde_json::from_slice(body).map_err(|_| ChatError::Malformed(Text::BodyNotJson))?;
    let string = |field: &'static str, value: Option<Value>| match value {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ChatError::Invalid {
            field,
            reason: Text::MustBeString.ko(),
        }),
        None => Err(ChatError::Invalid {
            field,
            reason: Text::FieldRequired.ko(),
        }),
    };
    let room_id = string("roomId", parsed.room_id)?;
    let message = string("message", parsed.message)?;
    validate::room_id(&room_id).map_err(|reason| ChatError::Invalid {
        field: "roomId",
        reason,
    })?;
    validate::chat_message(&message, max_chars).map_err(|reason| ChatError::Invalid {
        field: "message",
        reason,
    })?;
    let mentions = validate::mentions(&message, sender);
    Ok(NewChatMessage {
        room_id,
        sender: sender.to_owned(),
        message,
        sent_at_ms: now_ms,
        mentions,
    })
}

/// Queues an accepted SEND for its shard; refused at once (and counted) when the store is down
/// or the queue is full.
pub fn submit(
    shared: &Shared,
    origin: ConnRef,
    message: NewChatMessage,
    receipt: Option<Box<str>>,
) -> Result<(), ChatError> {
    let job = ChatJob {
        origin,
        work: ChatWork::Send { message, receipt },
    };
    shared.chat.submit(&shared.pool, job).inspect_err(|_| {
        shared.metrics.chat_messages_rejected.fetch_add(1, Ordering::Relaxed);
    })
}

/// Queues a committed transaction's SENDs as one group (see [`writer`] for its shard); refused
/// whole, at once, when the store is down or the queue is full.
pub fn submit_group(
    shared: &Shared,
    origin: ConnRef,
    sends: Vec<HeldSend<NewChatMessage>>,
    receipt: Option<Box<str>>,
) -> Result<(), ChatError> {
    let count = sends.len();
    let (messages, receipts) = sends
        .into_iter()
        .map(|held| (held.send, held.receipt.map(String::into_boxed_str)))
        .unzip();
    let job = ChatJob {
        origin,
        work: ChatWork::Group {
            messages,
            receipts,
            receipt,
        },
    };
    shared.chat.submit(&shared.pool, job).inspect_err(|_| {
        shared
            .metrics
            .chat_messages_rejected
            .fetch_add(count as u64, Ordering::Relaxed);
    })
}

/// What a STOMP session on `/ws/chat` asks of Herald: access tokens are checked against the JWT
/// keys, SEND bodies by [`accept`].
pub struct StompHost<'a> {
    shared: &'a Shared,
}

impl<'a> StompHost<'a> {
    /// The host of the sessions of this server.
    pub fn new(shared: &'a Shared) -> StompHost<'a> {
        StompHost { shared }
    }
}

impl Host for StompHost<'_> {
    type Send = NewChatMessage;

    fn authenticate(&mut self, token: &str) -> Result<Principal, &'static str> {
        self.shared.principal(token)
    }

    fn accept_send(&mut self, principal: &Principal, body: &[u8]) -> Result<NewChatMessage, AppError> {
        let max_chars = self.shared.config.chat.max_message_chars;
        accept(body, &principal.username, crate::clock::now_ms(), max_chars).map_err(|e| AppError {
            code: e.code(),
            message: e.message(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_as_the_authenticated_user_with_mentions() {
        let m = accept(
            br#"{"roomId":"room-1","message":"hi @bob","sender":"mallory"}"#,
            "alice",
            42,
            10,
        )
        .expect("valid");
        assert_eq!(m.sender, "alice");
        assert_eq!(m.room_id, "room-1");
        assert_eq!(m.sent_at_ms, 42);
        assert_eq!(m.mentions, vec!["bob".to_string()]);
    }

    #[test]
    fn refuses_bad_bodies_with_invalid_request() {
        for bad in [
            "not json",
            r#"{"roomId":"room-1","message":""}"#,
            r#"{"roomId":"room-1","message":"12345678901"}"#,
            r#"{"roomId":"a b","message":"x"}"#,
            r#"{"roomId":1,"message":"x"}"#,
            r#"{"message":"x"}"#,
        ] {
            let e = accept(bad.as_bytes(), "alice", 0, 10).expect_err(bad);
            assert_eq!(e.code(), "INVALID_REQUEST", "{bad}");
        }
        let e = accept(br#"{"roomId":"r","message":""}"#, "a", 0, 10).expect_err("blank");
        assert_eq!(
            e.message(),
            "message: message은(는) 비어 있거나 공백으로만 이루어질 수 없습니다"
        );
        let e = accept(br#"{"roomId":1,"message":"x"}"#, "a", 0, 10).expect_err("type");
        assert_eq!(e.message(), "roomId: 문자열이어야 합니다");
    }

    #[test]
    fn store_failures_have_their_codes() {
        assert_eq!(ChatError::Forbidden.code(), "FORBIDDEN");
        assert_eq!(ChatError::Unavailable.code(), "SERVICE_UNAVAILABLE");
        assert_eq!(
            ChatError::Unavailable.message(),
            "메시지를 저장할 수 없습니다. 잠시 후 다시 시도하세요"
        );
        assert_eq!(ChatError::Internal.code(), "INTERNAL_ERROR");
    }
}
