//! The dialect-neutral rules of the chat tables: what one group commit writes and returns (and
//! whom it lets in), how a direct notification is stored, and how a page of history is read.
//! Backends supply the statements only.
//!
//! Order across processes: a group commit locks the `rooms` row of every room it writes (sorted,
//! so that two batches never wait on each other in a cycle) before inserting, and advances each
//! row's `last_message_id` before committing. Another writer of the same room waits for the lock,
//! so it inserts — and gets its auto-increment ids — only after this batch committed: within a
//! room, ids ascend in commit order, whichever node commits. The recipients of notifications are
//! locked the same way (their `users` rows, after the rooms), so each recipient's notification
//! ids ascend in commit order too. Under those locks every row learns the id before it in its
//! sequence (`prev`), which receivers use to tell a gap from a reordering.
//!
//! Authorization (SPEC §8) is read inside the same transaction, *after* the rooms are locked:
//! every membership change and room creation holds the room's row too, so it either committed
//! before the lock was granted (and the read sees it) or waits for this commit. Reading it before
//! the lock would take a shared lock first and an exclusive one after, which two nodes can
//! interleave into a deadlock.

use std::collections::{HashMap, HashSet};

use super::backend::StoreError;
use super::model::{
    ChatMessage, CommittedChat, Heads, HistoryQuery, Linked, NewChatMessage, NewNotification, Notification,
    NotificationKind,
};
use super::rooms::{AccessReads, BatchAccess};

/// The kind of the notifications a group commit creates for `@name` mentions.
const MENTION: NotificationKind = "mention";

/// Most names bound into one `IN (…)` list: far below SQLite's 32 766 and MySQL's 65 535
/// placeholders, and one statement shape per length stays a small set.
pub(crate) const NAME_LOOKUP_CHUNK: usize = 500;

/// How often a group commit is tried when a racing transaction created one of its rooms first.
const ATTEMPTS: usize = 3;

/// `(?,?,…)` with `count` marks.
fn marks(count: usize) -> String {
    format!("({})", vec!["?"; count].join(","))
}

/// `SELECT username FROM users WHERE username IN (?, …)` for `count` names, in either dialect,
/// sorted (the order rows are locked in when the caller appends `FOR UPDATE`).
pub(crate) fn existing_users_sql(count: usize) -> String {
    format!(
        "SELECT username FROM users WHERE username IN {} ORDER BY username",
        marks(count)
    )
}

/// The latest notification id of each of `count` recipients that has one.
pub(crate) fn notification_heads_sql(count: usize) -> String {
    format!(
        "SELECT recipient, MAX(id) FROM notifications WHERE recipient IN {} GROUP BY recipient",
        marks(count)
    )
}

/// `room_id, last_message_id` of each of `count` rooms that has a row, sorted by room id.
pub(crate) fn room_heads_sql(count: usize) -> String {
    format!(
        "SELECT room_id, last_message_id FROM rooms WHERE room_id IN {} ORDER BY room_id",
        marks(count)
    )
}

/// Each of `users` with its latest notification id from `heads` (0 when it has none): what a
/// backend's `ChatTransaction::lock_recipients` returns once it has locked the users and read
/// their heads.
pub(crate) fn recipients_with_heads(users: Vec<String>, heads: Vec<(String, i64)>) -> Vec<(String, i64)> {
    let heads: HashMap<String, i64> = heads.into_iter().collect();
    users
        .into_iter()
        .map(|u| {
            let last = heads.get(&u).copied().unwrap_or(0);
            (u, last)
        })
        .collect()
}

/// The last message of a room sent before a time: a backward scan of `(room_id, id)` that stops
/// at the first row old enough.
pub(crate) const ROOM_START_SQL: &str =
    "SELECT id FROM chat_messages WHERE room_id = ? AND sent_at < ? ORDER BY id DESC LIMIT 1";

/// The last notification of a recipient created before a time (same scan on `(recipient, id)`).
pub(crate) const NOTIFICATION_START_SQL: &str =
    "SELECT id FROM notifications WHERE recipient = ? AND created_at < ? ORDER BY id DESC LIMIT 1";

/// Reads heads `NAME_LOOKUP_CHUNK` names at a time with `read`.
pub(crate) fn heads_in_chunks(
    names: &[&str],
    mut read: impl FnMut(&[&str]) -> Result<Heads, StoreError>,
) -> Result<Heads, StoreError> {
    let mut heads = Vec::new();
    for chunk in names.chunks(NAME_LOOKUP_CHUNK) {
        heads.extend(read(chunk)?);
    }
    Ok(heads)
}

/// One open write transaction as a backend runs it. Dropping it without [`commit`] rolls
/// everything back.
///
/// [`commit`]: ChatTransaction::commit
pub(crate) trait ChatTransaction: AccessReads {
    /// Locks the `rooms` rows of `rooms` (sorted, distinct, at most [`NAME_LOOKUP_CHUNK`]) for the
    /// rest of the transaction, creating the missing ones, and returns each one's
    /// `last_message_id`, in the same order. `Conflict` when a racing transaction created one of
    /// them first: the caller runs the whole transaction again.
    fn lock_rooms(&mut self, rooms: &[&str]) -> Result<Vec<i64>, StoreError>;
    /// Inserts the messages and returns their ids, in input order.
    fn insert_messages(&mut self, batch: &[&NewChatMessage]) -> Result<Vec<i64>, StoreError>;
    /// Sets `last_message_id` of each (locked) room.
    fn set_room_heads(&mut self, heads: &[(&str, i64)]) -> Result<(), StoreError>;
    /// The registered users among `names` (sorted, distinct, at most [`NAME_LOOKUP_CHUNK`]), their
    /// `users` rows locked in that order for the rest of the transaction, each with the id of its
    /// latest notification (0 when none).
    fn lock_recipients(&mut self, names: &[&str]) -> Result<Vec<(String, i64)>, StoreError>;
    /// Inserts the notifications and returns their ids, in input order.
    fn insert_notifications(&mut self, notifications: &[NewNotification]) -> Result<Vec<i64>, StoreError>;
    /// Makes everything inserted durable.
    fn commit(self) -> Result<(), StoreError>;
}

/// Runs a write transaction again when it failed with `Conflict` (a racing transaction created
/// one of its rooms first), at most [`ATTEMPTS`] times in all.
pub(crate) fn retry_on_conflict<R>(mut attempt: impl FnMut() -> Result<R, StoreError>) -> Result<R, StoreError> {
    for _ in 1..ATTEMPTS {
        match attempt() {
            Err(StoreError::Conflict) => {}
            outcome => return outcome,
        }
    }
    attempt()
}

/// Stores a batch of messages and the mention notifications of those whose mentioned users
/// exist, all or nothing, in the transaction `begin` opens; an empty batch never opens one.
/// `Conflict` when a racing transaction created one of its rooms first: run it again
/// ([`retry_on_conflict`]).
///
/// `units` cuts the batch, in order, into its all-or-nothing parts by length (a single SEND is a
/// unit of one, a STOMP transaction's group one unit; they add up to `batch.len()`). Once the
/// rooms are locked, the batch's rooms and (for private rooms) the membership of its senders and
/// mentioned users are read: a unit with a message whose sender may not enter its room is refused
/// whole (its positions are reported in `refused`, nothing of it is stored), and a mention in a
/// private room notifies members only.
pub(crate) fn group_commit<T: ChatTransaction>(
    batch: &[NewChatMessage],
    units: &[usize],
    begin: impl FnOnce() -> Result<T, StoreError>,
) -> Result<CommittedChat, StoreError> {
    if batch.is_empty() {
        return Ok(CommittedChat::default());
    }
    if units.iter().sum::<usize>() != batch.len() {
        return Err(StoreError::Other(format!(
            "units of {} messages for a batch of {}",
            units.iter().sum::<usize>(),
            batch.len()
        )));
    }
    let mut tx = begin()?;
    let mut rooms: Vec<&str> = batch.iter().map(|m| m.room_id.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let mut room_heads: HashMap<&str, i64> = HashMap::with_capacity(rooms.len());
    for chunk in rooms.chunks(NAME_LOOKUP_CHUNK) {
        let last = tx.lock_rooms(chunk)?;
        room_heads.extend(chunk.iter().copied().zip(last));
    }
    let access = BatchAccess::read(batch, &mut tx, NAME_LOOKUP_CHUNK)?;
    let refused = refused_units(batch, units, |m| access.allows(&m.room_id, &m.sender));
    let allowed: Vec<&NewChatMessage> = batch
        .iter()
        .enumerate()
        .filter(|(i, _)| refused.binary_search(i).is_err())
        .map(|(_, m)| m)
        .collect();
    if allowed.is_empty() {
        // Nothing to write; dropping the transaction rolls back the room rows it created.
        return Ok(CommittedChat {
            refused,
            ..CommittedChat::default()
        });
    }
    let message_ids = tx.insert_messages(&allowed)?;
    let message_prev_ids = link(
        allowed
            .iter()
            .map(|m| m.room_id.as_str())
            .zip(message_ids.iter().copied()),
        &mut room_heads,
    )?;
    let mut written: Vec<&str> = allowed.iter().map(|m| m.room_id.as_str()).collect();
    written.sort_unstable();
    written.dedup();
    let new_heads: Vec<(&str, i64)> = written
        .iter()
        .map(|room| (*room, room_heads.get(room).copied().unwrap_or(0)))
        .collect();
    for chunk in new_heads.chunks(NAME_LOOKUP_CHUNK) {
        tx.set_room_heads(chunk)?;
    }
    let (mentions, mut recipient_heads) = mention_notifications(
        &allowed,
        |m, name| access.may_mention(&m.room_id, name),
        |names| tx.lock_recipients(names),
    )?;
    let notification_ids = if mentions.is_empty() {
        Vec::new()
    } else {
        tx.insert_notifications(&mentions)?
    };
    let notification_prev_ids = link(
        mentions
            .iter()
            .map(|n| n.recipient.as_str())
            .zip(notification_ids.iter().copied()),
        &mut recipient_heads,
    )?;
    tx.commit()?;
    Ok(CommittedChat {
        messages: allowed.iter().zip(message_ids).map(|(m, id)| m.stored_as(id)).collect(),
        message_prev_ids,
        notifications: mentions
            .iter()
            .zip(notification_ids)
            .map(|(n, id)| n.stored_as(id))
            .collect(),
        notification_prev_ids,
        refused,
    })
}

/// The positions (ascending) of the messages of every unit that holds a message `allows`
/// refuses: a unit is stored whole or not at all.
fn refused_units(batch: &[NewChatMessage], units: &[usize], allows: impl Fn(&NewChatMessage) -> bool) -> Vec<usize> {
    let mut refused = Vec::new();
    let mut start = 0;
    for len in units {
        let unit = start..start + len;
        if batch[unit.clone()].iter().any(|m| !allows(m)) {
            refused.extend(unit.clone());
        }
        start = unit.end;
    }
    refused
}

/// Stores a notification for an existing recipient, under the recipient's lock, and returns it
/// with the id of the recipient's notification before it; `None` (nothing stored) when the
/// recipient is not a registered user.
pub(crate) fn create_notification<T: ChatTransaction>(
    n: &NewNotification,
    begin: impl FnOnce() -> Result<T, StoreError>,
) -> Result<Option<Linked<Notification>>, StoreError> {
    let mut tx = begin()?;
    let Some((_, prev_id)) = tx.lock_recipients(&[n.recipient.as_str()])?.into_iter().next() else {
        return Ok(None);
    };
    let ids = tx.insert_notifications(std::slice::from_ref(n))?;
    let [id] = ids[..] else {
        return Err(StoreError::Other(format!(
            "one notification inserted, {} ids",
            ids.len()
        )));
    };
    link(
        [(n.recipient.as_str(), id)],
        &mut HashMap::from([(n.recipient.as_str(), prev_id)]),
    )?;
    tx.commit()?;
    Ok(Some(Linked {
        prev_id,
        row: n.stored_as(id),
    }))
}

/// The `prev` of each `(sequence, id)` in order, advancing `heads` (the last id of each sequence,
/// read under its lock) as it goes. An id at or below its sequence's head means a writer that
/// bypassed the lock: refused, because receivers would drop that row as already seen.
fn link<'a>(
    rows: impl IntoIterator<Item = (&'a str, i64)>,
    heads: &mut HashMap<&'a str, i64>,
) -> Result<Vec<i64>, StoreError> {
    rows.into_iter()
        .map(|(name, id)| {
            let head = heads.entry(name).or_insert(0);
            if id <= *head {
                return Err(StoreError::Other(format!(
                    "id {id} of {name:?} is not above its last id {head}: a writer bypassed the row lock"
                )));
            }
            Ok(std::mem::replace(head, id))
        })
        .collect()
}

/// The mention notifications a batch creates — one per mentioned name that `may_mention` lets
/// through and that is a registered user, in batch order and then mention order — and the latest
/// notification id of each of those users.
///
/// `lock_recipients` is given the distinct names `may_mention` lets through somewhere in the
/// batch, sorted, at most [`NAME_LOOKUP_CHUNK`] at a time, and returns those that are registered
/// with their latest notification id; it is not called when there are none.
fn mention_notifications<'a>(
    batch: &[&'a NewChatMessage],
    may_mention: impl Fn(&NewChatMessage, &str) -> bool,
    mut lock_recipients: impl FnMut(&[&str]) -> Result<Vec<(String, i64)>, StoreError>,
) -> Result<(Vec<NewNotification>, HashMap<&'a str, i64>), StoreError> {
    let mut mentioned: Vec<&str> = batch
        .iter()
        .flat_map(|m| m.mentions.iter().map(move |name| (*m, name.as_str())))
        .filter(|(m, name)| may_mention(m, name))
        .map(|(_, name)| name)
        .collect::<HashSet<&str>>()
        .into_iter()
        .collect();
    mentioned.sort_unstable();
    if mentioned.is_empty() {
        return Ok((Vec::new(), HashMap::new()));
    }
    let mut existing: HashMap<String, i64> = HashMap::new();
    for chunk in mentioned.chunks(NAME_LOOKUP_CHUNK) {
        existing.extend(lock_recipients(chunk)?);
    }
    let mut notifications = Vec::new();
    let mut heads = HashMap::new();
    for m in batch {
        for recipient in &m.mentions {
            let Some(last) = existing.get(recipient) else {
                continue;
            };
            if !may_mention(m, recipient) {
                continue;
            }
            heads.insert(recipient.as_str(), *last);
            notifications.push(NewNotification {
                recipient: recipient.clone(),
                kind: MENTION.to_owned(),
                sender: m.sender.clone(),
                room_id: Some(m.room_id.clone()),
                message: m.message.clone(),
                created_at_ms: m.sent_at_ms,
            });
        }
    }
    Ok((notifications, heads))
}

/// One history read as a backend runs it: a single range scan of the `(room_id, id)` index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryScan {
    /// `after < id < before ORDER BY id ASC LIMIT limit`: the page right after a cursor.
    Ascending { after: i64, before: i64, limit: i64 },
    /// `id < before ORDER BY id DESC LIMIT limit`: newest first, so LIMIT keeps the latest page.
    NewestFirst { before: i64, limit: i64 },
}

/// A page of a room's history, ascending by id: `scan` runs the one query the page needs and
/// returns its rows in the scan's order; a newest-first scan is flipped here.
pub(crate) fn history_page(
    query: HistoryQuery,
    scan: impl FnOnce(HistoryScan) -> Result<Vec<ChatMessage>, StoreError>,
) -> Result<Vec<ChatMessage>, StoreError> {
    let before = query.before.unwrap_or(i64::MAX);
    let limit = i64::from(query.limit);
    match query.after {
        Some(after) => scan(HistoryScan::Ascending { after, before, limit }),
        None => {
            let mut rows = scan(HistoryScan::NewestFirst { before, limit })?;
            rows.reverse();
            Ok(rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rooms::AccessRow;

    fn msg(sender: &str, text: &str, mentions: &[&str]) -> NewChatMessage {
        in_room("r", sender, text, mentions)
    }

    fn in_room(room: &str, sender: &str, text: &str, mentions: &[&str]) -> NewChatMessage {
        NewChatMessage {
            room_id: room.into(),
            sender: sender.into(),
            message: text.into(),
            sent_at_ms: 5,
            mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn anyone(_: &NewChatMessage, _: &str) -> bool {
        true
    }

    fn ones(batch: &[NewChatMessage]) -> Vec<usize> {
        vec![1; batch.len()]
    }

    #[test]
    fn mentions_are_locked_once_in_sorted_order_and_notified_in_batch_order() {
        let batch = [
            msg("s", "a", &["carol", "ghost"]),
            msg("s", "b", &[]),
            msg("t", "c", &["dave", "carol"]),
        ];
        let refs: Vec<&NewChatMessage> = batch.iter().collect();
        let mut asked = Vec::new();
        let (notes, heads) = mention_notifications(&refs, anyone, |names| {
            asked.extend(names.iter().map(|n| (*n).to_owned()));
            Ok(vec![("carol".to_owned(), 40), ("dave".to_owned(), 0)])
        })
        .unwrap();
        assert_eq!(asked, ["carol", "dave", "ghost"], "distinct, sorted: the lock order");
        let got: Vec<(&str, &str, &str)> = notes
            .iter()
            .map(|n| (n.recipient.as_str(), n.sender.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(got, [("carol", "s", "a"), ("dave", "t", "c"), ("carol", "t", "c")]);
        for n in &notes {
            assert_eq!((n.kind.as_str(), n.room_id.as_deref()), ("mention", Some("r")));
            assert_eq!(n.created_at_ms, 5);
        }
        assert_eq!(heads, HashMap::from([("carol", 40), ("dave", 0)]));
    }

    #[test]
    fn no_mentions_means_no_lookup() {
        let batch = [msg("s", "a", &[])];
        let (notes, _) = mention_notifications(&[&batch[0]], anyone, |_| panic!("nothing to look up")).unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn many_mentions_are_looked_up_in_chunks() {
        let names: Vec<String> = (0..NAME_LOOKUP_CHUNK * 2 + 3).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let batch = [msg("s", "a", &refs)];
        let mut sizes = Vec::new();
        let (notes, _) = mention_notifications(&[&batch[0]], anyone, |chunk| {
            sizes.push(chunk.len());
            Ok(chunk
                .iter()
                .filter(|n| n.ends_with('7'))
                .map(|n| ((*n).to_owned(), 0))
                .collect())
        })
        .unwrap();
        assert_eq!(sizes, [NAME_LOOKUP_CHUNK, NAME_LOOKUP_CHUNK, 3]);
        assert_eq!(notes.len(), names.iter().filter(|n| n.ends_with('7')).count());
        assert_eq!(
            existing_users_sql(2),
            "SELECT username FROM users WHERE username IN (?,?) ORDER BY username"
        );
    }

    #[test]
    fn mentions_that_may_not_notify_are_not_locked() {
        let batch = [msg("s", "a", &["carol", "dave"]), msg("t", "b", &["dave"])];
        let refs: Vec<&NewChatMessage> = batch.iter().collect();
        let mut asked = Vec::new();
        let (notes, _) = mention_notifications(
            &refs,
            |m, name| !(m.sender == "s" && name == "dave"),
            |names| {
                asked.extend(names.iter().map(|n| (*n).to_owned()));
                Ok(names.iter().map(|n| ((*n).to_owned(), 0)).collect())
            },
        )
        .unwrap();
        assert_eq!(asked, ["carol", "dave"]);
        let got: Vec<(&str, &str)> = notes
            .iter()
            .map(|n| (n.recipient.as_str(), n.sender.as_str()))
            .collect();
        assert_eq!(
            got,
            [("carol", "s"), ("dave", "t")],
            "s's mention of dave is dropped, t's is kept"
        );
        let refs = [&batch[0]];
        let (notes, _) = mention_notifications(
            &refs,
            |_, name| name != "carol" && name != "dave",
            |_| panic!("nobody may be told"),
        )
        .unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn links_follow_each_sequence_and_refuse_a_bypassed_lock() {
        let mut heads = HashMap::from([("a", 10), ("b", 0)]);
        let prev = link([("a", 11), ("b", 12), ("a", 13), ("c", 14)], &mut heads).unwrap();
        assert_eq!(prev, [10, 0, 11, 0]);
        assert_eq!(heads, HashMap::from([("a", 13), ("b", 12), ("c", 14)]));
        let err = link([("a", 13)], &mut heads).unwrap_err();
        assert!(err.to_string().contains("bypassed"), "{err}");
    }

    type Log = std::cell::RefCell<Vec<String>>;

    /// A transaction that hands out ids from 101, knows rooms `r` (last message 7) and `known`
    /// (last 3) and users other than `ghost` (carol's last notification is 50), and logs what it
    /// was asked to do. Room `p` is private with the members `s` and `carol`; room `o` is public;
    /// other rooms are open (never created).
    struct FakeTransaction<'a> {
        log: &'a Log,
        next_id: i64,
        fail_notifications: bool,
        conflicts: usize,
    }

    impl<'a> FakeTransaction<'a> {
        fn begin(log: &'a Log) -> Result<Self, StoreError> {
            log.borrow_mut().push("begin".into());
            Ok(FakeTransaction {
                log,
                next_id: 0,
                fail_notifications: false,
                conflicts: 0,
            })
        }
        fn note(&self, what: String) {
            self.log.borrow_mut().push(what);
        }
        fn ids(&mut self, count: usize) -> Vec<i64> {
            (0..count)
                .map(|_| {
                    self.next_id += 1;
                    100 + self.next_id
                })
                .collect()
        }
    }

    impl AccessReads for FakeTransaction<'_> {
        fn access_rows(&mut self, room_ids: &[&str], pairs: &[(&str, &str)]) -> Result<Vec<AccessRow>, StoreError> {
            let shown: Vec<String> = pairs.iter().map(|(r, u)| format!("{r}/{u}")).collect();
            self.note(format!("access of {} for {}", room_ids.join(","), shown.join(",")));
            let mut rows = Vec::new();
            for room in room_ids {
                match *room {
                    "o" => rows.push(("o".to_owned(), false, None)),
                    "p" => {
                        rows.push(("p".to_owned(), true, None));
                        rows.extend(
                            pairs
                                .iter()
                                .filter(|(r, u)| *r == "p" && matches!(*u, "s" | "carol"))
                                .map(|(_, u)| ("p".to_owned(), true, Some((*u).to_owned()))),
                        );
                    }
                    _ => {}
                }
            }
            Ok(rows)
        }
    }

    impl ChatTransaction for FakeTransaction<'_> {
        fn lock_rooms(&mut self, rooms: &[&str]) -> Result<Vec<i64>, StoreError> {
            self.note(format!("lock rooms {}", rooms.join(",")));
            if self.conflicts > 0 {
                self.conflicts -= 1;
                return Err(StoreError::Conflict);
            }
            Ok(rooms
                .iter()
                .map(|r| match *r {
                    "r" => 7,
                    "known" => 3,
                    _ => 0,
                })
                .collect())
        }
        fn insert_messages(&mut self, batch: &[&NewChatMessage]) -> Result<Vec<i64>, StoreError> {
            self.note(format!("messages {}", batch.len()));
            Ok(self.ids(batch.len()))
        }
        fn set_room_heads(&mut self, heads: &[(&str, i64)]) -> Result<(), StoreError> {
            let heads: Vec<String> = heads.iter().map(|(r, id)| format!("{r}={id}")).collect();
            self.note(format!("heads {}", heads.join(",")));
            Ok(())
        }
        fn lock_recipients(&mut self, names: &[&str]) -> Result<Vec<(String, i64)>, StoreError> {
            self.note(format!("lock users {}", names.join(",")));
            Ok(names
                .iter()
                .filter(|n| **n != "ghost")
                .map(|n| ((*n).to_owned(), if *n == "carol" { 50 } else { 0 }))
                .collect())
        }
        fn insert_notifications(&mut self, notifications: &[NewNotification]) -> Result<Vec<i64>, StoreError> {
            self.note(format!("notifications {}", notifications.len()));
            if self.fail_notifications {
                return Err(StoreError::Other("boom".into()));
            }
            Ok(self.ids(notifications.len()))
        }
        fn commit(self) -> Result<(), StoreError> {
            self.note("commit".into());
            Ok(())
        }
    }

    #[test]
    fn group_commit_locks_rooms_stores_messages_then_mentions_then_commits() {
        let log = Log::default();
        let batch = vec![
            in_room("r", "s", "a", &["carol", "ghost"]),
            in_room("new", "t", "b", &[]),
            in_room("known", "t", "c", &["carol"]),
            in_room("r", "t", "d", &[]),
        ];
        let committed = group_commit(&batch, &ones(&batch), || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(
            log.into_inner(),
            [
                "begin",
                "lock rooms known,new,r",
                "access of known,new,r for known/carol,known/t,new/t,r/carol,r/ghost,r/s,r/t",
                "messages 4",
                "heads known=103,new=102,r=104",
                "lock users carol,ghost",
                "notifications 2",
                "commit"
            ]
        );
        let ids: Vec<(i64, &str)> = committed.messages.iter().map(|m| (m.id, m.message.as_str())).collect();
        assert_eq!(ids, [(101, "a"), (102, "b"), (103, "c"), (104, "d")]);
        assert_eq!(
            committed.message_prev_ids,
            [7, 0, 3, 101],
            "each room's previous message"
        );
        let n = &committed.notifications;
        assert_eq!(n.len(), 2);
        assert_eq!((n[0].id, n[0].recipient.as_str(), n[0].read), (105, "carol", false));
        assert_eq!(
            committed.notification_prev_ids,
            [50, 105],
            "carol's previous notification"
        );
    }

    #[test]
    fn group_commit_without_mentions_inserts_no_notifications() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &["ghost"])];
        let committed = group_commit(&batch, &ones(&batch), || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(
            log.into_inner(),
            [
                "begin",
                "lock rooms r",
                "access of r for r/ghost,r/s",
                "messages 1",
                "heads r=101",
                "lock users ghost",
                "commit"
            ]
        );
        assert!(committed.notifications.is_empty());
        assert!(committed.notification_prev_ids.is_empty());
    }

    #[test]
    fn group_commit_of_nothing_opens_no_transaction() {
        let committed = group_commit(&[], &[], || -> Result<FakeTransaction<'_>, StoreError> {
            panic!("nothing to write")
        })
        .unwrap();
        assert!(committed.messages.is_empty() && committed.notifications.is_empty());
    }

    #[test]
    fn a_racing_room_creation_is_retried_a_bounded_number_of_times() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &[])];
        let mut conflicts = 1;
        let committed = retry_on_conflict(|| {
            group_commit(&batch, &ones(&batch), || {
                let mut tx = FakeTransaction::begin(&log)?;
                tx.conflicts = std::mem::take(&mut conflicts);
                Ok(tx)
            })
        })
        .unwrap();
        assert_eq!(committed.messages.len(), 1);
        assert_eq!(log.borrow().iter().filter(|l| *l == "begin").count(), 2);

        let log = Log::default();
        let always = retry_on_conflict(|| {
            group_commit(&batch, &ones(&batch), || {
                let mut tx = FakeTransaction::begin(&log)?;
                tx.conflicts = 1;
                Ok(tx)
            })
        });
        assert!(matches!(always, Err(StoreError::Conflict)));
        assert_eq!(log.borrow().iter().filter(|l| *l == "begin").count(), ATTEMPTS);
    }

    #[test]
    fn outsiders_of_private_rooms_are_refused_and_not_mentioned_after_the_rooms_are_locked() {
        let log = Log::default();
        let batch = vec![
            in_room("p", "s", "member", &["carol", "dave"]),
            in_room("p", "mallory", "outsider", &["carol"]),
            in_room("o", "mallory", "public", &["dave"]),
            in_room("dm-0123", "s", "unopened direct room", &[]),
            in_room("x", "mallory", "open", &[]),
        ];
        let committed = group_commit(&batch, &ones(&batch), || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(committed.refused, [1, 3]);
        let stored: Vec<&str> = committed.messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(stored, ["member", "public", "open"]);
        let ids: Vec<i64> = committed.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [101, 102, 103]);
        assert_eq!(committed.message_prev_ids, [0, 0, 0]);
        let told: Vec<(&str, &str)> = committed
            .notifications
            .iter()
            .map(|n| (n.recipient.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(told, [("carol", "member"), ("dave", "public")], "dave is not in p");
        assert_eq!(
            log.into_inner(),
            [
                "begin",
                "lock rooms dm-0123,o,p,x",
                "access of dm-0123,o,p,x for dm-0123/s,o/dave,o/mallory,p/carol,p/dave,p/mallory,p/s,x/mallory",
                "messages 3",
                "heads o=102,p=101,x=103",
                "lock users carol,dave",
                "notifications 2",
                "commit"
            ]
        );
    }

    #[test]
    fn a_unit_with_one_refused_message_is_refused_whole() {
        let log = Log::default();
        let batch = vec![
            in_room("x", "s", "alone", &[]),
            in_room("x", "mallory", "group 1", &[]),
            in_room("p", "mallory", "group 2", &[]),
            in_room("x", "mallory", "group 3", &[]),
            in_room("p", "s", "member", &[]),
        ];
        let committed = group_commit(&batch, &[1, 3, 1], || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(committed.refused, [1, 2, 3]);
        let stored: Vec<&str> = committed.messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(stored, ["alone", "member"]);
        let wrong = group_commit(&batch, &[1, 1], || FakeTransaction::begin(&log));
        assert!(matches!(wrong, Err(StoreError::Other(_))), "units must cover the batch");
    }

    #[test]
    fn a_batch_of_outsiders_writes_nothing() {
        let log = Log::default();
        let batch = vec![in_room("p", "mallory", "no", &[])];
        let committed = group_commit(&batch, &ones(&batch), || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(committed.refused, [0]);
        assert!(committed.messages.is_empty());
        assert!(!log
            .borrow()
            .iter()
            .any(|l| l.starts_with("messages") || l.starts_with("heads") || l == "commit"));
    }

    #[test]
    fn a_failed_insert_never_commits() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &["carol"])];
        let result = group_commit(&batch, &ones(&batch), || {
            let mut tx = FakeTransaction::begin(&log)?;
            tx.fail_notifications = true;
            Ok(tx)
        });
        assert!(matches!(result, Err(StoreError::Other(_))));
        assert!(!log.into_inner().contains(&"commit".to_owned()));
    }

    #[test]
    fn a_direct_notification_is_linked_to_the_recipients_previous_one() {
        let log = Log::default();
        let n = NewNotification {
            recipient: "carol".into(),
            kind: "direct".into(),
            sender: "s".into(),
            room_id: None,
            message: "m".into(),
            created_at_ms: 1,
        };
        let stored = create_notification(&n, || FakeTransaction::begin(&log))
            .unwrap()
            .unwrap();
        assert_eq!((stored.prev_id, stored.row.id), (50, 101));
        assert_eq!(
            log.into_inner(),
            ["begin", "lock users carol", "notifications 1", "commit"]
        );
        let log = Log::default();
        let ghost = NewNotification {
            recipient: "ghost".into(),
            ..n
        };
        assert!(create_notification(&ghost, || FakeTransaction::begin(&log))
            .unwrap()
            .is_none());
        assert!(!log.into_inner().contains(&"commit".to_owned()));
    }

    fn stored(id: i64) -> ChatMessage {
        ChatMessage {
            id,
            room_id: "r".into(),
            sender: "s".into(),
            message: String::new(),
            sent_at_ms: 0,
        }
    }

    #[test]
    fn latest_page_is_scanned_newest_first_and_flipped() {
        let query = HistoryQuery {
            limit: 3,
            before: None,
            after: None,
        };
        let page = history_page(query, |scan| {
            assert_eq!(
                scan,
                HistoryScan::NewestFirst {
                    before: i64::MAX,
                    limit: 3
                }
            );
            Ok(vec![stored(9), stored(8), stored(7)])
        })
        .unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [7, 8, 9]);
    }

    #[test]
    fn page_after_a_cursor_is_kept_as_scanned() {
        let query = HistoryQuery {
            limit: 2,
            before: Some(10),
            after: Some(3),
        };
        let page = history_page(query, |scan| {
            assert_eq!(
                scan,
                HistoryScan::Ascending {
                    after: 3,
                    before: 10,
                    limit: 2
                }
            );
            Ok(vec![stored(4), stored(5)])
        })
        .unwrap();
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), [4, 5]);
    }
}
