//! The dialect-neutral rules of the chat tables: what one group commit writes and returns, and
//! how a page of history is read. Backends supply the statements only.

use std::collections::HashSet;

use super::backend::StoreError;
use super::model::{ChatMessage, CommittedChat, HistoryQuery, NewChatMessage, NewNotification, NotificationKind};
use super::rooms::{AccessReads, BatchAccess};

/// The kind of the notifications a group commit creates for `@name` mentions.
const MENTION: NotificationKind = "mention";

/// Most names bound into one `IN (…)` list: far below SQLite's 32 766 and MySQL's 65 535
/// placeholders, and one statement shape per length stays a small set.
pub(crate) const NAME_LOOKUP_CHUNK: usize = 500;

/// `SELECT username FROM users WHERE username IN (?, …)` for `count` names, in either dialect.
pub(crate) fn existing_users_sql(count: usize) -> String {
    format!(
        "SELECT username FROM users WHERE username IN ({})",
        vec!["?"; count].join(",")
    )
}

/// One open group-commit transaction as a backend runs it. Dropping it without [`commit`]
/// rolls everything back.
///
/// [`commit`]: ChatTransaction::commit
pub(crate) trait ChatTransaction: AccessReads {
    /// Inserts the messages and returns their ids, in input order.
    fn insert_messages(&mut self, batch: &[&NewChatMessage]) -> Result<Vec<i64>, StoreError>;
    /// The registered usernames among `names` (at most [`NAME_LOOKUP_CHUNK`] of them).
    fn existing_users(&mut self, names: &[&str]) -> Result<Vec<String>, StoreError>;
    /// Inserts the notifications and returns their ids, in input order.
    fn insert_notifications(&mut self, notifications: &[NewNotification]) -> Result<Vec<i64>, StoreError>;
    /// Makes everything inserted durable.
    fn commit(self) -> Result<(), StoreError>;
}

/// Stores a batch of messages and the mention notifications of those whose mentioned users
/// exist, all or nothing. `begin` opens the transaction; an empty batch never opens one.
///
/// Inside the transaction, before anything is written, the batch's rooms and (for private
/// rooms) the membership of its senders and mentioned users are read with shared locks: a
/// message whose sender may not enter its room is refused (reported in `refused`, nothing of it
/// stored), and a mention in a private room notifies members only. A membership change or room
/// creation of the same room either committed before these reads or waits for this commit.
pub(crate) fn group_commit<T: ChatTransaction>(
    batch: &[NewChatMessage],
    begin: impl FnOnce() -> Result<T, StoreError>,
) -> Result<CommittedChat, StoreError> {
    if batch.is_empty() {
        return Ok(CommittedChat::default());
    }
    let mut tx = begin()?;
    let access = BatchAccess::read(batch, &mut tx, NAME_LOOKUP_CHUNK)?;
    let mut allowed: Vec<&NewChatMessage> = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        if access.allows(&m.room_id, &m.sender) {
            allowed.push(m);
        } else {
            refused.push(i);
        }
    }
    if allowed.is_empty() {
        // Nothing to write; dropping the transaction rolls back what it read.
        return Ok(CommittedChat {
            refused,
            ..CommittedChat::default()
        });
    }
    let message_ids = tx.insert_messages(&allowed)?;
    let mentions = mention_notifications(
        &allowed,
        |m, name| access.may_mention(&m.room_id, name),
        |names| tx.existing_users(names),
    )?;
    let notification_ids = if mentions.is_empty() {
        Vec::new()
    } else {
        tx.insert_notifications(&mentions)?
    };
    tx.commit()?;
    Ok(CommittedChat {
        messages: allowed.iter().zip(message_ids).map(|(m, id)| m.stored_as(id)).collect(),
        notifications: mentions
            .iter()
            .zip(notification_ids)
            .map(|(n, id)| n.stored_as(id))
            .collect(),
        refused,
    })
}

/// The distinct mentioned names of a batch that `may_mention` lets through, in first-seen order.
fn unique_mentions<'a>(
    batch: &[&'a NewChatMessage],
    may_mention: &impl Fn(&NewChatMessage, &str) -> bool,
) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .flat_map(|m| m.mentions.iter().map(move |name| (*m, name.as_str())))
        .filter(|(m, name)| may_mention(m, name))
        .map(|(_, name)| name)
        .filter(|name| seen.insert(*name))
        .collect()
}

/// The mention notifications a batch creates: one per mentioned name that `may_mention` lets
/// through and that is a registered user, in batch order and then mention order.
///
/// `existing_users` is given the distinct names, at most [`NAME_LOOKUP_CHUNK`] at a time, and
/// returns those that are registered; it is not called when the batch mentions nobody.
fn mention_notifications(
    batch: &[&NewChatMessage],
    may_mention: impl Fn(&NewChatMessage, &str) -> bool,
    mut existing_users: impl FnMut(&[&str]) -> Result<Vec<String>, StoreError>,
) -> Result<Vec<NewNotification>, StoreError> {
    let mentioned = unique_mentions(batch, &may_mention);
    if mentioned.is_empty() {
        return Ok(Vec::new());
    }
    let mut existing = HashSet::new();
    for chunk in mentioned.chunks(NAME_LOOKUP_CHUNK) {
        existing.extend(existing_users(chunk)?);
    }
    let mut notifications = Vec::new();
    for m in batch {
        for recipient in m.mentions.iter().filter(|r| existing.contains(*r) && may_mention(m, r)) {
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
    Ok(notifications)
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
        NewChatMessage {
            room_id: "r".into(),
            sender: sender.into(),
            message: text.into(),
            sent_at_ms: 5,
            mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn anyone(_: &NewChatMessage, _: &str) -> bool {
        true
    }

    #[test]
    fn mentions_are_looked_up_once_and_notified_in_batch_order() {
        let batch = [
            msg("s", "a", &["carol", "ghost"]),
            msg("s", "b", &[]),
            msg("t", "c", &["dave", "carol"]),
        ];
        let batch: Vec<&NewChatMessage> = batch.iter().collect();
        let mut asked = Vec::new();
        let notes = mention_notifications(&batch, anyone, |names| {
            asked.extend(names.iter().map(|n| (*n).to_owned()));
            Ok(vec!["dave".to_owned(), "carol".to_owned()])
        })
        .unwrap();
        assert_eq!(asked, ["carol", "ghost", "dave"], "distinct, first-seen order");
        let got: Vec<(&str, &str, &str)> = notes
            .iter()
            .map(|n| (n.recipient.as_str(), n.sender.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(got, [("carol", "s", "a"), ("dave", "t", "c"), ("carol", "t", "c")]);
        for n in &notes {
            assert_eq!((n.kind.as_str(), n.room_id.as_deref()), ("mention", Some("r")));
            assert_eq!(n.created_at_ms, 5);
        }
    }

    #[test]
    fn no_mentions_means_no_lookup() {
        let batch = [msg("s", "a", &[])];
        let notes = mention_notifications(&[&batch[0]], anyone, |_| panic!("nothing to look up")).unwrap();
        assert!(notes.is_empty());
    }

    #[test]
    fn many_mentions_are_looked_up_in_chunks() {
        let names: Vec<String> = (0..NAME_LOOKUP_CHUNK * 2 + 3).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let batch = [msg("s", "a", &refs)];
        let mut sizes = Vec::new();
        let notes = mention_notifications(&[&batch[0]], anyone, |chunk| {
            sizes.push(chunk.len());
            Ok(chunk
                .iter()
                .filter(|n| n.ends_with('7'))
                .map(|n| (*n).to_owned())
                .collect())
        })
        .unwrap();
        assert_eq!(sizes, [NAME_LOOKUP_CHUNK, NAME_LOOKUP_CHUNK, 3]);
        assert_eq!(notes.len(), names.iter().filter(|n| n.ends_with('7')).count());
        assert_eq!(
            existing_users_sql(2),
            "SELECT username FROM users WHERE username IN (?,?)"
        );
    }

    #[test]
    fn mentions_that_may_not_notify_are_not_looked_up() {
        let batch = [msg("s", "a", &["carol", "dave"]), msg("t", "b", &["dave"])];
        let refs: Vec<&NewChatMessage> = batch.iter().collect();
        let mut asked = Vec::new();
        let notes = mention_notifications(
            &refs,
            |m, name| !(m.sender == "s" && name == "dave"),
            |names| {
                asked.extend(names.iter().map(|n| (*n).to_owned()));
                Ok(names.iter().map(|n| (*n).to_owned()).collect())
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
    }

    type Log = std::cell::RefCell<Vec<String>>;

    /// A transaction that hands out ids from 101 and logs what it was asked to do. Room `p` is
    /// private with the member `s` (and `carol`); room `o` is public; others are open.
    struct FakeTransaction<'a> {
        log: &'a Log,
        next_id: i64,
        fail_notifications: bool,
    }

    impl<'a> FakeTransaction<'a> {
        fn begin(log: &'a Log) -> Result<Self, StoreError> {
            Ok(FakeTransaction {
                log,
                next_id: 0,
                fail_notifications: false,
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
        fn insert_messages(&mut self, batch: &[&NewChatMessage]) -> Result<Vec<i64>, StoreError> {
            self.note(format!("messages {}", batch.len()));
            Ok(self.ids(batch.len()))
        }
        fn existing_users(&mut self, names: &[&str]) -> Result<Vec<String>, StoreError> {
            self.note(format!("lookup {}", names.join(",")));
            Ok(names
                .iter()
                .filter(|n| **n != "ghost")
                .map(|n| (*n).to_owned())
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
    fn group_commit_stores_messages_then_mentions_then_commits() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &["carol", "ghost"]), msg("t", "b", &[])];
        let committed = group_commit(&batch, || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(
            log.into_inner(),
            [
                "access of r for r/carol,r/ghost,r/s,r/t",
                "messages 2",
                "lookup carol,ghost",
                "notifications 1",
                "commit"
            ]
        );
        let ids: Vec<(i64, &str)> = committed.messages.iter().map(|m| (m.id, m.message.as_str())).collect();
        assert_eq!(ids, [(101, "a"), (102, "b")]);
        let n = &committed.notifications;
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].id, n[0].recipient.as_str(), n[0].read), (103, "carol", false));
    }

    #[test]
    fn group_commit_without_mentions_inserts_no_notifications() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &["ghost"])];
        let committed = group_commit(&batch, || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(
            log.into_inner(),
            ["access of r for r/ghost,r/s", "messages 1", "lookup ghost", "commit"]
        );
        assert!(committed.notifications.is_empty());
    }

    fn in_room(room: &str, sender: &str, text: &str, mentions: &[&str]) -> NewChatMessage {
        NewChatMessage {
            room_id: room.into(),
            ..msg(sender, text, mentions)
        }
    }

    #[test]
    fn outsiders_of_private_rooms_are_refused_and_not_mentioned() {
        let log = Log::default();
        let batch = vec![
            in_room("p", "s", "member", &["carol", "dave"]),
            in_room("p", "mallory", "outsider", &["carol"]),
            in_room("o", "mallory", "public", &["dave"]),
            in_room("dm-0123", "s", "unopened direct room", &[]),
            in_room("x", "mallory", "open", &[]),
        ];
        let committed = group_commit(&batch, || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(committed.refused, [1, 3]);
        let stored: Vec<&str> = committed.messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(stored, ["member", "public", "open"]);
        let ids: Vec<i64> = committed.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [101, 102, 103]);
        let told: Vec<(&str, &str)> = committed
            .notifications
            .iter()
            .map(|n| (n.recipient.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(told, [("carol", "member"), ("dave", "public")], "dave is not in p");
        assert_eq!(
            log.into_inner(),
            [
                "access of dm-0123,o,p,x for dm-0123/s,o/dave,o/mallory,p/carol,p/dave,p/mallory,p/s,x/mallory",
                "messages 3",
                "lookup carol,dave",
                "notifications 2",
                "commit"
            ]
        );
    }

    #[test]
    fn a_batch_of_outsiders_writes_nothing() {
        let log = Log::default();
        let batch = vec![in_room("p", "mallory", "no", &[])];
        let committed = group_commit(&batch, || FakeTransaction::begin(&log)).unwrap();
        assert_eq!(committed.refused, [0]);
        assert!(committed.messages.is_empty());
        assert!(!log.borrow().iter().any(|l| l.starts_with("messages") || l == "commit"));
    }

    #[test]
    fn group_commit_of_nothing_opens_no_transaction() {
        let committed = group_commit(&[], || -> Result<FakeTransaction<'_>, StoreError> {
            panic!("nothing to write")
        })
        .unwrap();
        assert!(committed.messages.is_empty() && committed.notifications.is_empty());
    }

    #[test]
    fn a_failed_insert_never_commits() {
        let log = Log::default();
        let batch = vec![msg("s", "a", &["carol"])];
        let result = group_commit(&batch, || {
            let mut tx = FakeTransaction::begin(&log)?;
            tx.fail_notifications = true;
            Ok(tx)
        });
        assert!(matches!(result, Err(StoreError::Other(_))));
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
