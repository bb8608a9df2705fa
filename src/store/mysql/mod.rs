//! The production store: one `mysql::Conn` per worker to MySQL 8 or MariaDB 10.11.
//!
//! This file holds the connection and the statements of each [`Backend`] call; the multi-row
//! insert ids, the error mapping, the schema and the row helpers have files of their own.

mod errors;
mod ids;
mod rows;
mod schema;
#[cfg(test)]
mod test_db;

use std::collections::HashMap;
use std::time::Duration;

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, IsolationLevel, Opts, OptsBuilder, Transaction, TxOpts, Value};

use super::backend::{Backend, StoreError};
use super::chat::{
    create_notification, existing_users_sql, group_commit, heads_in_chunks, history_page, notification_heads_sql,
    retry_on_conflict, room_heads_sql, ChatTransaction, HistoryScan, NOTIFICATION_START_SQL, ROOM_START_SQL,
};
use super::model::*;
use super::outcome::{mark_read_outcome, spend_outcome, RefreshTokenRow};
use errors::map_err;
use ids::{detect_id_allocation, insert_rows, IdAllocation};
use rows::{affected, all_rows, chat, first_row, notification, params, ChatRow, NotificationRow, NOTIFICATION_COLUMNS};

/// A dead host should turn into a 503 quickly rather than hold a worker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds one statement's round trip; a group commit of 500 rows is far below it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Every session gets the same character set and strictness, whatever the server defaults are:
/// utf8mb4 so emoji survive, strict so an over-long value fails instead of being truncated.
const SESSION_INIT: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
];

/// The columns of a new chat message, in [`message_values`] order.
const CHAT_COLUMNS: [&str; 4] = ["room_id", "sender", "message", "sent_at"];
/// The columns of a new notification, in [`notification_values`] order.
const NOTIFICATION_INSERT_COLUMNS: [&str; 6] = ["recipient", "type", "sender", "room_id", "message", "created_at"];

fn names<S: AsRef<str>>(names: &[S]) -> ::mysql::Params {
    params(names.iter().map(|n| Value::from(n.as_ref())).collect())
}

fn message_values(m: &NewChatMessage) -> Vec<Value> {
    vec![
        m.room_id.as_str().into(),
        m.sender.as_str().into(),
        m.message.as_str().into(),
        m.sent_at_ms.into(),
    ]
}

fn notification_values(n: &NewNotification) -> Vec<Value> {
    vec![
        n.recipient.as_str().into(),
        n.kind.as_str().into(),
        n.sender.as_str().into(),
        n.room_id.as_deref().into(),
        n.message.as_str().into(),
        n.created_at_ms.into(),
    ]
}

/// One connection to a MySQL or MariaDB database.
pub struct MysqlBackend {
    conn: Conn,
    ids: IdAllocation,
}

impl MysqlBackend {
    /// Connects to `mysql://user:pass@host:port/db` with bounded connect and I/O timeouts.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        // The driver's URL errors name the bad part, never the password.
        let opts = Opts::from_url(url).map_err(|e| StoreError::Other(format!("invalid mysql url: {e}")))?;
        Self::connect_opts(opts)
    }

    fn connect_opts(opts: Opts) -> Result<Self, StoreError> {
        let opts = OptsBuilder::from_opts(opts)
            .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
            .read_timeout(Some(IO_TIMEOUT))
            .write_timeout(Some(IO_TIMEOUT))
            .init(SESSION_INIT.to_vec());
        let mut conn = Conn::new(opts).map_err(map_err)?;
        let ids = detect_id_allocation(&mut conn)?;
        Ok(Self { conn, ids })
    }
}

/// The isolation of the write transactions: READ COMMITTED takes no gap locks, so the row locks of
/// `rooms` and `users` (taken in sorted order) are the only locks two batches can wait on, and a
/// room created by two batches at once is a duplicate key (retried), never a deadlock.
fn write_tx_opts() -> TxOpts {
    TxOpts::default().set_isolation_level(Some(IsolationLevel::ReadCommitted))
}

/// A group commit's transaction; dropped on any early return, it sends ROLLBACK.
struct ChatTx<'c> {
    tx: Transaction<'c>,
    ids: IdAllocation,
}

impl ChatTransaction for ChatTx<'_> {
    fn lock_rooms(&mut self, rooms: &[&str]) -> Result<Vec<i64>, StoreError> {
        let sql = format!("{} FOR UPDATE", room_heads_sql(rooms.len()));
        let found: HashMap<String, i64> = all_rows::<(String, i64)>(&mut self.tx, &sql, names(rooms))?
            .into_iter()
            .collect();
        let missing: Vec<&str> = rooms.iter().copied().filter(|r| !found.contains_key(*r)).collect();
        if !missing.is_empty() {
            // A plain INSERT: a batch that races us to a new room waits for our commit and then
            // fails on the duplicate key (`Conflict`), and the group commit is run again.
            let sql = format!(
                "INSERT INTO rooms (room_id, last_message_id) VALUES {}",
                vec!["(?, 0)"; missing.len()].join(",")
            );
            self.tx.exec_drop(sql, names(&missing)).map_err(map_err)?;
        }
        Ok(rooms.iter().map(|r| found.get(*r).copied().unwrap_or(0)).collect())
    }

    fn insert_messages(&mut self, batch: &[NewChatMessage]) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<Vec<Value>> = batch.iter().map(message_values).collect();
        insert_rows(&mut self.tx, self.ids, "chat_messages", &CHAT_COLUMNS, &rows)
    }

    fn set_room_heads(&mut self, heads: &[(&str, i64)]) -> Result<(), StoreError> {
        // One statement for every room of the batch.
        let cases = vec!["WHEN ? THEN ?"; heads.len()].join(" ");
        let sql = format!(
            "UPDATE rooms SET last_message_id = CASE room_id {cases} END WHERE room_id IN ({})",
            vec!["?"; heads.len()].join(",")
        );
        let mut values: Vec<Value> = Vec::with_capacity(heads.len() * 3);
        for (room, id) in heads {
            values.push((*room).into());
            values.push((*id).into());
        }
        values.extend(heads.iter().map(|(room, _)| Value::from(*room)));
        self.tx.exec_drop(sql, params(values)).map_err(map_err)
    }

    fn lock_recipients(&mut self, recipients: &[&str]) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = format!("{} FOR UPDATE", existing_users_sql(recipients.len()));
        let users: Vec<String> = all_rows(&mut self.tx, &sql, names(recipients))?;
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let heads: HashMap<String, i64> =
            all_rows::<(String, i64)>(&mut self.tx, &notification_heads_sql(users.len()), names(&users))?
                .into_iter()
                .collect();
        Ok(users
            .into_iter()
            .map(|u| {
                let last = heads.get(&u).copied().unwrap_or(0);
                (u, last)
            })
            .collect())
    }

    fn insert_notifications(&mut self, notifications: &[NewNotification]) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<Vec<Value>> = notifications.iter().map(notification_values).collect();
        insert_rows(
            &mut self.tx,
            self.ids,
            "notifications",
            &NOTIFICATION_INSERT_COLUMNS,
            &rows,
        )
    }

    fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().map_err(map_err)
    }
}

impl Backend for MysqlBackend {
    fn migrate(&mut self) -> Result<Migrated, StoreError> {
        schema::migrate(&mut self.conn)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.conn.ping().map_err(map_err)
    }

    fn create_user(&mut self, username: &str, password_hash: &str, now_ms: i64) -> Result<User, StoreError> {
        self.conn
            .exec_drop(
                "INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)",
                params(vec![username.into(), password_hash.into(), now_ms.into()]),
            )
            .map_err(map_err)?;
        let id =
            i64::try_from(self.conn.last_insert_id()).map_err(|_| StoreError::Other("user id out of range".into()))?;
        Ok(User {
            id,
            username: username.to_owned(),
        })
    }

    fn user_credentials(&mut self, username: &str) -> Result<Option<UserCredentials>, StoreError> {
        let row: Option<(i64, String, String)> = first_row(
            &mut self.conn,
            "SELECT id, username, password_hash FROM users WHERE username = ?",
            params(vec![username.into()]),
        )?;
        Ok(row.map(|(id, username, password_hash)| UserCredentials {
            id,
            username,
            password_hash,
        }))
    }

    fn user_by_id(&mut self, id: i64) -> Result<Option<User>, StoreError> {
        let row: Option<(i64, String)> = first_row(
            &mut self.conn,
            "SELECT id, username FROM users WHERE id = ?",
            params(vec![id.into()]),
        )?;
        Ok(row.map(|(id, username)| User { id, username }))
    }

    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError> {
        let row: Option<i64> = first_row(
            &mut self.conn,
            "SELECT 1 FROM users WHERE username = ?",
            params(vec![username.into()]),
        )?;
        Ok(row.is_some())
    }

    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError> {
        self.conn
            .exec_drop(
                "INSERT INTO refresh_tokens (user_id, token_hash, family, expires_at)
                 VALUES (?, ?, ?, ?)",
                params(vec![
                    token.user_id.into(),
                    token.token_hash.as_str().into(),
                    token.family.as_str().into(),
                    token.expires_at_ms.into(),
                ]),
            )
            .map_err(map_err)
    }

    fn spend_refresh_token(&mut self, token_hash: &str, now_ms: i64) -> Result<SpendOutcome, StoreError> {
        // The conditional UPDATE is the atomic step: of two racing presenters exactly one sees a
        // changed row; the SELECT afterwards only explains the outcome.
        let spent = affected(
            &mut self.conn,
            "UPDATE refresh_tokens SET revoked_at = ?
             WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?",
            params(vec![now_ms.into(), token_hash.into(), now_ms.into()]),
        )?;
        let row: Option<RefreshTokenRow> = first_row(
            &mut self.conn,
            "SELECT user_id, family, expires_at, revoked_at FROM refresh_tokens
             WHERE token_hash = ?",
            params(vec![token_hash.into()]),
        )?;
        Ok(spend_outcome(spent == 1, row, now_ms))
    }

    fn revoke_family(&mut self, family: &str, now_ms: i64) -> Result<(), StoreError> {
        affected(
            &mut self.conn,
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL",
            params(vec![now_ms.into(), family.into()]),
        )
        .map(drop)
    }

    fn refresh_token_family(&mut self, token_hash: &str, user_id: i64) -> Result<Option<String>, StoreError> {
        first_row(
            &mut self.conn,
            "SELECT family FROM refresh_tokens WHERE token_hash = ? AND user_id = ?",
            params(vec![token_hash.into(), user_id.into()]),
        )
    }

    fn commit_chat(&mut self, batch: &[NewChatMessage]) -> Result<CommittedChat, StoreError> {
        let ids = self.ids;
        retry_on_conflict(|| {
            group_commit(batch, || {
                let tx = self.conn.start_transaction(write_tx_opts()).map_err(map_err)?;
                Ok(ChatTx { tx, ids })
            })
        })
    }

    fn chat_history(&mut self, room_id: &str, query: HistoryQuery) -> Result<Vec<ChatMessage>, StoreError> {
        history_page(query, |scan| {
            let rows: Vec<ChatRow> = match scan {
                HistoryScan::Ascending { after, before, limit } => all_rows(
                    &mut self.conn,
                    "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                     WHERE room_id = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?",
                    params(vec![room_id.into(), after.into(), before.into(), limit.into()]),
                )?,
                HistoryScan::NewestFirst { before, limit } => all_rows(
                    &mut self.conn,
                    "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                     WHERE room_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                    params(vec![room_id.into(), before.into(), limit.into()]),
                )?,
            };
            Ok(rows.into_iter().map(chat).collect())
        })
    }

    fn create_notification(&mut self, n: &NewNotification) -> Result<Option<Linked<Notification>>, StoreError> {
        let ids = self.ids;
        create_notification(n, || {
            let tx = self.conn.start_transaction(write_tx_opts()).map_err(map_err)?;
            Ok(ChatTx { tx, ids })
        })
    }

    fn room_start(&mut self, room: &str, before_ms: i64) -> Result<i64, StoreError> {
        let id: Option<i64> = first_row(
            &mut self.conn,
            ROOM_START_SQL,
            params(vec![room.into(), before_ms.into()]),
        )?;
        Ok(id.unwrap_or(0))
    }

    fn notification_start(&mut self, recipient: &str, before_ms: i64) -> Result<i64, StoreError> {
        let id: Option<i64> = first_row(
            &mut self.conn,
            NOTIFICATION_START_SQL,
            params(vec![recipient.into(), before_ms.into()]),
        )?;
        Ok(id.unwrap_or(0))
    }

    fn room_heads(&mut self, rooms: &[&str]) -> Result<Heads, StoreError> {
        heads_in_chunks(rooms, |chunk| {
            all_rows(&mut self.conn, &room_heads_sql(chunk.len()), names(chunk))
        })
    }

    fn notification_heads(&mut self, recipients: &[&str]) -> Result<Heads, StoreError> {
        heads_in_chunks(recipients, |chunk| {
            all_rows(&mut self.conn, &notification_heads_sql(chunk.len()), names(chunk))
        })
    }

    fn list_notifications(
        &mut self,
        recipient: &str,
        query: NotificationQuery,
    ) -> Result<Vec<Notification>, StoreError> {
        let unread = if query.unread_only { " AND read_at IS NULL" } else { "" };
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE recipient = ? AND id < ?{unread} ORDER BY id DESC LIMIT ?"
        );
        let rows: Vec<NotificationRow> = all_rows(
            &mut self.conn,
            &sql,
            params(vec![
                recipient.into(),
                query.before.unwrap_or(i64::MAX).into(),
                i64::from(query.limit).into(),
            ]),
        )?;
        Ok(rows.into_iter().map(notification).collect())
    }

    fn notifications_after(
        &mut self,
        recipient: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE recipient = ? AND id > ? ORDER BY id ASC LIMIT ?"
        );
        let rows: Vec<NotificationRow> = all_rows(
            &mut self.conn,
            &sql,
            params(vec![recipient.into(), after_id.into(), i64::from(limit).into()]),
        )?;
        Ok(rows.into_iter().map(notification).collect())
    }

    fn mark_notification_read(&mut self, id: i64, recipient: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = affected(
            &mut self.conn,
            "UPDATE notifications SET read_at = ?
             WHERE id = ? AND recipient = ? AND read_at IS NULL",
            params(vec![now_ms.into(), id.into(), recipient.into()]),
        )?;
        mark_read_outcome(changed > 0, || {
            let row: Option<i64> = first_row(
                &mut self.conn,
                "SELECT 1 FROM notifications WHERE id = ? AND recipient = ?",
                params(vec![id.into(), recipient.into()]),
            )?;
            Ok(row.is_some())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_db::TestDb;
    use super::*;
    use std::time::Instant;

    fn conformance_with(ids: Option<IdAllocation>) {
        let Some(db) = TestDb::create() else { return };
        crate::store::conformance::run_all(&|| Box::new(db.open(ids)));
    }

    #[test]
    fn conformance_as_detected() {
        conformance_with(None);
    }

    #[test]
    fn conformance_with_verified_ids() {
        conformance_with(Some(IdAllocation::Verified { step: 1 }));
    }

    #[test]
    fn conformance_row_by_row() {
        conformance_with(Some(IdAllocation::RowByRow));
    }

    #[test]
    fn a_failed_group_leaves_nothing_behind() {
        let Some(db) = TestDb::create() else { return };
        let mut backend = db.open(None);
        backend.migrate().unwrap();
        backend
            .conn
            .query_drop(
                "CREATE TRIGGER poison BEFORE INSERT ON chat_messages FOR EACH ROW BEGIN \
                 IF NEW.message = 'poison' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poison'; END IF; END",
            )
            .unwrap();
        crate::store::conformance::group_is_atomic(&mut backend, "poison");
    }

    #[test]
    fn concurrent_commits_keep_rooms_chained() {
        let Some(db) = TestDb::create() else { return };
        crate::store::conformance::concurrent_commits_keep_every_room_chained(&|| Box::new(db.open(None)));
    }

    #[test]
    fn rooms_are_back_filled_from_the_messages_stored_before_them() {
        let Some(mut db) = TestDb::create() else { return };
        let mut b = db.open(None);
        b.migrate().unwrap();
        let batch: Vec<NewChatMessage> = ["bf-a", "bf-b", "bf-a"]
            .iter()
            .map(|room| NewChatMessage {
                room_id: (*room).into(),
                sender: "s".into(),
                message: "m".into(),
                sent_at_ms: 1,
                mentions: vec![],
            })
            .collect();
        let ids: Vec<i64> = b.commit_chat(&batch).unwrap().messages.iter().map(|m| m.id).collect();
        // As a database of the previous version: no rooms table, schema at version 1.
        db.admin.query_drop(format!("DROP TABLE {}.rooms", db.name())).unwrap();
        db.admin
            .query_drop(format!("DELETE FROM {}.schema_version WHERE version >= 2", db.name()))
            .unwrap();
        b.migrate().unwrap();
        let mut heads = b.room_heads(&["bf-a", "bf-b"]).unwrap();
        heads.sort();
        assert_eq!(heads, vec![("bf-a".into(), ids[2]), ("bf-b".into(), ids[1])]);
        let next = b.commit_chat(&batch[..1]).unwrap();
        assert_eq!(next.message_prev_ids, vec![ids[2]]);
        // Re-running the step (a crash before its version was recorded) changes nothing.
        db.admin
            .query_drop(format!("DELETE FROM {}.schema_version WHERE version >= 2", db.name()))
            .unwrap();
        b.migrate().unwrap();
        assert_eq!(
            b.room_heads(&["bf-a"]).unwrap(),
            vec![("bf-a".into(), next.messages[0].id)]
        );
    }

    #[test]
    fn closed_port_is_unavailable_and_prompt() {
        let start = Instant::now();
        match MysqlBackend::connect("mysql://root:secret@127.0.0.1:1/test") {
            Err(StoreError::Unavailable(msg)) => assert!(!msg.contains("secret"), "{msg}"),
            Err(e) => panic!("expected Unavailable, got {e}"),
            Ok(_) => panic!("nothing listens on port 1"),
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    }

    #[test]
    fn killed_connection_is_unavailable() {
        let Some(mut db) = TestDb::create() else {
            return;
        };
        let mut backend = db.open(None);
        backend.migrate().unwrap();
        let id = backend.conn.connection_id();
        db.admin.query_drop(format!("KILL {id}")).unwrap();
        match backend.user_exists("anyone") {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
        match backend.ping() {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn concurrent_group_commits_keep_ids_exact() {
        concurrent_group_commits(None);
    }

    #[test]
    fn concurrent_group_commits_keep_ids_exact_when_verified() {
        concurrent_group_commits(Some(IdAllocation::Verified { step: 1 }));
    }

    /// Four connections migrate and commit 200-row batches at once; every id reported must name
    /// the row it was reported for.
    fn concurrent_group_commits(ids: Option<IdAllocation>) {
        let Some(db) = TestDb::create() else { return };
        let db = std::sync::Arc::new(db);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut b = db.open(ids);
                    b.migrate().unwrap();
                    let mut committed = Vec::new();
                    for round in 0..10 {
                        let batch: Vec<NewChatMessage> = (0..200)
                            .map(|i| NewChatMessage {
                                room_id: format!("c-{t}"),
                                sender: format!("s{t}"),
                                message: format!("t{t} r{round} i{i}"),
                                sent_at_ms: i,
                                mentions: vec![],
                            })
                            .collect();
                        committed.extend(b.commit_chat(&batch).unwrap().messages);
                    }
                    committed
                })
            })
            .collect();
        let mut b = db.open(None);
        for (t, handle) in threads.into_iter().enumerate() {
            let committed = handle.join().unwrap();
            let stored = b
                .chat_history(
                    &format!("c-{t}"),
                    HistoryQuery {
                        limit: 5000,
                        before: None,
                        after: None,
                    },
                )
                .unwrap();
            // Every id the backend reported names exactly the row it inserted.
            assert_eq!(stored, committed);
        }
    }

    #[test]
    #[ignore = "timing, run with --ignored --nocapture"]
    fn time_single_commit_of_500() {
        let Some(db) = TestDb::create() else { return };
        for (label, ids) in [
            ("mariadb detected", None),
            ("mariadb verified", Some(IdAllocation::Verified { step: 1 })),
            ("mariadb row-by-row", Some(IdAllocation::RowByRow)),
        ] {
            let mut b = db.open(ids);
            b.migrate().unwrap();
            crate::store::conformance::time_commit(&mut b, label);
        }
    }
}
