//! The behaviour every `Backend` must show, run against each real store by its own test: accounts and
//! refresh tokens (`accounts.rs`), what a commit stores and links — messages, mentions, notifications
//! (`chat.rs`) — and rooms, members, direct rooms and read marks (`rooms.rs`). The shared fixtures are here.

mod accounts;
mod chat;
mod rooms;

use accounts::{refresh_rotation, users};
use chat::{
    commit_chat_order, commit_is_all_or_nothing, history_paging, mentions, notifications, sequences_are_linked,
    text_round_trips,
};
pub use chat::{concurrent_commits_keep_every_room_chained, group_is_atomic, time_commit};
use rooms::{chat_in_private_rooms, direct_rooms, read_marks_and_room_list, room_creation, room_members};
pub use rooms::{racing_direct_rooms, racing_invitations};

use super::backend::{Backend, StoreError};
use super::model::*;

const HOUR_MS: i64 = 3_600_000;
const NOW: i64 = 1_755_183_300_000;

/// Runs the whole suite; `open` returns a new connection to one fresh, empty store.
pub fn run_all(open: &dyn Fn() -> Box<dyn Backend>) {
    let mut first = open();
    first.migrate().expect("first migrate");
    let mut db = open();
    // A second start against an existing schema must be a no-op, not an error.
    db.migrate().expect("second migrate");
    first.migrate().expect("third migrate");
    db.ping().expect("ping");
    drop(first);

    users(db.as_mut());
    refresh_rotation(db.as_mut());
    commit_chat_order(db.as_mut());
    mentions(db.as_mut());
    history_paging(db.as_mut());
    notifications(db.as_mut());
    text_round_trips(db.as_mut());
    commit_is_all_or_nothing(db.as_mut());
    room_creation(db.as_mut());
    room_members(db.as_mut());
    chat_in_private_rooms(db.as_mut());
    direct_rooms(db.as_mut());
    read_marks_and_room_list(db.as_mut());
    sequences_are_linked(db.as_mut());
}

/// The id before each of `ids` in a sequence that starts after `first_prev`.
fn chain(first_prev: i64, ids: &[i64]) -> Vec<i64> {
    std::iter::once(first_prev)
        .chain(ids.iter().copied())
        .take(ids.len())
        .collect()
}

fn user(db: &mut dyn Backend, name: &str) -> User {
    db.create_user(name, &format!("$argon2id$hash-of-{name}"), NOW)
        .unwrap_or_else(|e| panic!("create_user {name}: {e}"))
}

fn msg(room: &str, sender: &str, text: &str, at: i64, mentions: &[&str]) -> NewChatMessage {
    NewChatMessage {
        room_id: room.into(),
        sender: sender.into(),
        message: text.into(),
        sent_at_ms: at,
        mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn history(db: &mut dyn Backend, room: &str, limit: u32, before: Option<i64>, after: Option<i64>) -> Vec<i64> {
    db.chat_history(room, HistoryQuery { limit, before, after })
        .expect("chat_history")
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn direct(recipient: &str, text: &str, at: i64) -> NewNotification {
    NewNotification {
        recipient: recipient.into(),
        kind: "direct".into(),
        sender: "n_sender".into(),
        room_id: None,
        message: text.into(),
        created_at_ms: at,
    }
}
