//! The embedded default store: one rusqlite connection per worker to a shared WAL-mode file.
//! The backend and its `Backend` methods here; the schema and the migration driver's view in
//! `schema.rs`, the chat group commit's transaction in `chat_tx.rs`, the rooms statements in `room_rows.rs`.

mod chat_tx;
mod room_rows;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::backend::{Backend, StoreError};
use super::chat::{
    create_notification, existing_users_sql, group_commit, heads_in_chunks, history_page, notification_heads_sql,
    recipients_with_heads, retry_on_conflict, room_heads_sql, ChatTransaction, HistoryScan, NOTIFICATION_START_SQL,
    ROOM_START_SQL,
};
use super::migrate::{apply_missing, Schema, SchemaConn, CURRENT_VERSION};
use super::model::*;
use super::outcome::{mark_read_outcome, spend_outcome, RefreshTokenRow};
use super::rooms::{self, AccessReads, AccessRow, RoomListRow, RoomStatements, RowLock, RowState};

/// How long a writer waits for another connection's write lock before giving up with 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

use chat_tx::ChatTx;
use room_rows::SqliteRooms;
use schema::{Migration, SCHEMA};

const NOTIFICATION_COLUMNS: &str = "id, recipient, type, sender, room_id, message, created_at, read_at";

/// A connection to a SQLite file; each worker opens its own.
pub struct SqliteBackend {
    conn: Connection,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and sets the durability pragmas.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let conn = Connection::open(path.as_ref()).map_err(map_err)?;
        // Set first, so that the WAL switch below waits for a concurrent opener instead of failing.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
        enable_wal(&conn)?;
        // WAL with NORMAL may lose the last commits on power loss; a receipted message may not.
        conn.pragma_update(None, "synchronous", "FULL").map_err(map_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Without the query-planner stability guarantee SQLite recompiles a cached statement
        // whenever a bound value might change the plan (every history query): measured 23% slower.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(map_err)?;
        Ok(Self { conn })
    }
}

impl SqliteBackend {
    /// Runs `f` in an IMMEDIATE transaction (the writer lock held from the start, so it is
    /// ordered with every group commit), then `before_commit` if `f` says so, then commits.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&mut SqliteRooms<'_>) -> Result<(T, bool), StoreError>,
        before_commit: &mut dyn FnMut(),
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let (value, announce) = f(&mut SqliteRooms(&tx))?;
        if announce {
            before_commit();
        }
        tx.commit().map_err(map_err)?;
        Ok(value)
    }
}

/// Switches the file to WAL (a persistent setting) so readers never block the writer.
///
/// The switch needs an exclusive lock, and SQLite skips the busy handler when waiting could
/// deadlock, so workers opening a new file together can get `SQLITE_BUSY` at once: retry until
/// the busy timeout instead.
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    log::warn!("sqlite stayed in journal_mode={mode}; workers will contend");
                }
                return Ok(());
            }
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(map_err(e)),
        }
    }
}

/// Sorts a SQLite failure into what the caller should do about it.
fn map_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::ConstraintViolation
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                return StoreError::Conflict;
            }
            // The file is there but cannot be used right now: a 503 and a fresh connection fit.
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied => return StoreError::Unavailable(e.to_string()),
            _ => {}
        }
    }
    StoreError::Other(e.to_string())
}

fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: r.get(0)?,
        recipient: r.get(1)?,
        kind: r.get(2)?,
        sender: r.get(3)?,
        room_id: r.get(4)?,
        message: r.get(5)?,
        created_at_ms: r.get(6)?,
        read: r.get::<_, Option<i64>>(7)?.is_some(),
    })
}

fn chat_from_row(r: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: r.get(0)?,
        room_id: r.get(1)?,
        sender: r.get(2)?,
        message: r.get(3)?,
        sent_at_ms: r.get(4)?,
    })
}

/// The parameters of an INSERT into `notifications (recipient, type, sender, room_id, message,
/// created_at)`.
fn notification_params(n: &NewNotification) -> (&str, &str, &str, Option<&str>, &str, i64) {
    (
        &n.recipient,
        &n.kind,
        &n.sender,
        n.room_id.as_deref(),
        &n.message,
        n.created_at_ms,
    )
}

/// Runs a `SELECT name, id` with `names` bound and returns its rows.
fn query_pairs<S: rusqlite::ToSql>(
    conn: &Connection,
    sql: &str,
    names: &[S],
) -> Result<Vec<(String, i64)>, StoreError> {
    conn.prepare(sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params_from_iter(names), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(map_err)
}

impl Backend for SqliteBackend {
    fn migrate(&mut self) -> Result<Migrated, StoreError> {
        // IMMEDIATE takes the write lock up front, so two processes starting together run the
        // steps one after the other instead of both reading version 0.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(map_err)?;
        let migrated = apply_missing(&mut Migration(&tx), &SCHEMA)?;
        tx.commit().map_err(map_err)?;
        Ok(migrated)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("SELECT 1")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map(drop)
            .map_err(map_err)
    }

    fn create_user(&mut self, username: &str, password_hash: &str, now_ms: i64) -> Result<User, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)")
            .map_err(map_err)?;
        stmt.execute(params![username, password_hash, now_ms])
            .map_err(map_err)?;
        Ok(User {
            id: self.conn.last_insert_rowid(),
            username: username.to_owned(),
        })
    }

    fn user_credentials(&mut self, username: &str) -> Result<Option<UserCredentials>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, username, password_hash FROM users WHERE username = ?1")
            .map_err(map_err)?;
        stmt.query_row(params![username], |r| {
            Ok(UserCredentials {
                id: r.get(0)?,
                username: r.get(1)?,
                password_hash: r.get(2)?,
            })
        })
        .optional()
        .map_err(map_err)
    }

    fn user_by_id(&mut self, id: i64) -> Result<Option<User>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, username FROM users WHERE id = ?1")
            .map_err(map_err)?;
        stmt.query_row(params![id], |r| {
            Ok(User {
                id: r.get(0)?,
                username: r.get(1)?,
            })
        })
        .optional()
        .map_err(map_err)
    }

    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM users WHERE username = ?1")
            .map_err(map_err)?;
        stmt.exists(params![username]).map_err(map_err)
    }

    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO refresh_tokens (user_id, token_hash, family, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(map_err)?;
        stmt.execute(params![
            token.user_id,
            token.token_hash,
            token.family,
            token.expires_at_ms
        ])
        .map(drop)
        .map_err(map_err)
    }

    fn spend_refresh_token(&mut self, token_hash: &str, now_ms: i64) -> Result<SpendOutcome, StoreError> {
        // The conditional UPDATE is the atomic step: of two racing presenters exactly one sees a
        // changed row; the SELECT afterwards only explains the outcome.
        let spent = self
            .conn
            .prepare_cached(
                "UPDATE refresh_tokens SET revoked_at = ?1
                 WHERE token_hash = ?2 AND revoked_at IS NULL AND expires_at > ?1",
            )
            .and_then(|mut s| s.execute(params![now_ms, token_hash]))
            .map_err(map_err)?;
        let row: Option<RefreshTokenRow> = self
            .conn
            .prepare_cached(
                "SELECT user_id, family, expires_at, revoked_at FROM refresh_tokens
                 WHERE token_hash = ?1",
            )
            .and_then(|mut s| {
                s.query_row(params![token_hash], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(map_err)?;
        Ok(spend_outcome(spent == 1, row, now_ms))
    }

    fn revoke_family(&mut self, family: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE refresh_tokens SET revoked_at = ?1 WHERE family = ?2 AND revoked_at IS NULL")
            .and_then(|mut s| s.execute(params![now_ms, family]))
            .map(drop)
            .map_err(map_err)
    }

    fn refresh_token_family(&mut self, token_hash: &str, user_id: i64) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT family FROM refresh_tokens WHERE token_hash = ?1 AND user_id = ?2")
            .and_then(|mut s| s.query_row(params![token_hash, user_id], |r| r.get(0)).optional())
            .map_err(map_err)
    }

    fn commit_chat_units(&mut self, batch: &[NewChatMessage], units: &[usize]) -> Result<CommittedChat, StoreError> {
        retry_on_conflict(|| {
            group_commit(batch, units, || {
                self.conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map(ChatTx)
                    .map_err(map_err)
            })
        })
    }

    fn chat_history(&mut self, room_id: &str, query: HistoryQuery) -> Result<Vec<ChatMessage>, StoreError> {
        history_page(query, |scan| {
            match scan {
                HistoryScan::Ascending { after, before, limit } => self
                    .conn
                    .prepare_cached(
                        "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                         WHERE room_id = ?1 AND id > ?2 AND id < ?3 ORDER BY id ASC LIMIT ?4",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![room_id, after, before, limit], chat_from_row)?
                            .collect()
                    }),
                HistoryScan::NewestFirst { before, limit } => self
                    .conn
                    .prepare_cached(
                        "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                         WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                    )
                    .and_then(|mut s| s.query_map(params![room_id, before, limit], chat_from_row)?.collect()),
            }
            .map_err(map_err)
        })
    }

    fn create_notification(&mut self, n: &NewNotification) -> Result<Option<Linked<Notification>>, StoreError> {
        create_notification(n, || {
            self.conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map(ChatTx)
                .map_err(map_err)
        })
    }

    fn room_start(&mut self, room: &str, before_ms: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(ROOM_START_SQL)
            .and_then(|mut s| s.query_row(params![room, before_ms], |r| r.get(0)).optional())
            .map(|id| id.unwrap_or(0))
            .map_err(map_err)
    }

    fn notification_start(&mut self, recipient: &str, before_ms: i64) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(NOTIFICATION_START_SQL)
            .and_then(|mut s| s.query_row(params![recipient, before_ms], |r| r.get(0)).optional())
            .map(|id| id.unwrap_or(0))
            .map_err(map_err)
    }

    fn room_heads(&mut self, rooms: &[&str]) -> Result<Heads, StoreError> {
        heads_in_chunks(rooms, |chunk| {
            query_pairs(&self.conn, &room_heads_sql(chunk.len()), chunk)
        })
    }

    fn notification_heads(&mut self, recipients: &[&str]) -> Result<Heads, StoreError> {
        heads_in_chunks(recipients, |chunk| {
            query_pairs(&self.conn, &notification_heads_sql(chunk.len()), chunk)
        })
    }

    fn list_notifications(
        &mut self,
        recipient: &str,
        query: NotificationQuery,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = if query.unread_only {
            format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE recipient = ?1 AND id < ?2 AND read_at IS NULL ORDER BY id DESC LIMIT ?3"
            )
        } else {
            format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE recipient = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
            )
        };
        let before = query.before.unwrap_or(i64::MAX);
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(
                    params![recipient, before, i64::from(query.limit)],
                    notification_from_row,
                )?
                .collect()
            })
            .map_err(map_err)
    }

    fn notifications_after(
        &mut self,
        recipient: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE recipient = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_map(params![recipient, after_id, i64::from(limit)], notification_from_row)?
                    .collect()
            })
            .map_err(map_err)
    }

    fn mark_notification_read(&mut self, id: i64, recipient: &str, now_ms: i64) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE notifications SET read_at = ?1
                 WHERE id = ?2 AND recipient = ?3 AND read_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![now_ms, id, recipient]))
            .map_err(map_err)?;
        mark_read_outcome(changed > 0, || {
            self.conn
                .prepare_cached("SELECT 1 FROM notifications WHERE id = ?1 AND recipient = ?2")
                .and_then(|mut s| s.exists(params![id, recipient]))
                .map_err(map_err)
        })
    }

    fn room_access(&mut self, room_id: &str, username: &str, read: AccessRead) -> Result<RoomAccess, StoreError> {
        match read {
            AccessRead::Snapshot => rooms::access(&mut SqliteRooms(&self.conn), room_id, username, RowLock::None),
            // Readers never wait in WAL mode: taking the writer lock is what waits for a
            // creation or removal in progress.
            AccessRead::Serialized => self.write(
                |db| Ok((rooms::access(db, room_id, username, RowLock::Share)?, false)),
                &mut || {},
            ),
        }
    }

    fn create_room(&mut self, room: &NewRoom, before_commit: &mut dyn FnMut()) -> Result<RoomDetail, StoreError> {
        self.write(|db| Ok((rooms::create_room(db, room)?, true)), before_commit)
    }

    fn open_direct_room(
        &mut self,
        room: &NewRoom,
        before_commit: &mut dyn FnMut(),
    ) -> Result<DirectOutcome, StoreError> {
        self.write(
            |db| {
                let outcome = rooms::open_direct(db, room)?;
                let created = matches!(outcome, DirectOutcome::Created(_));
                Ok((outcome, created))
            },
            before_commit,
        )
    }

    fn room_detail(&mut self, room_id: &str, viewer: &str) -> Result<Option<RoomDetail>, StoreError> {
        let tx = self.conn.transaction().map_err(map_err)?;
        rooms::room_detail(&mut SqliteRooms(&tx), room_id, viewer)
    }

    fn invite_member(
        &mut self,
        room_id: &str,
        inviter: &str,
        username: &str,
        now_ms: i64,
        max_members: usize,
    ) -> Result<InviteOutcome, StoreError> {
        self.write(
            |db| {
                Ok((
                    rooms::invite(db, room_id, inviter, username, now_ms, max_members)?,
                    false,
                ))
            },
            &mut || {},
        )
    }

    fn remove_member(
        &mut self,
        room_id: &str,
        by: &str,
        username: &str,
        before_commit: &mut dyn FnMut(),
    ) -> Result<RemoveOutcome, StoreError> {
        self.write(
            |db| {
                let outcome = rooms::remove(db, room_id, by, username)?;
                let removed = outcome == RemoveOutcome::Removed;
                Ok((outcome, removed))
            },
            before_commit,
        )
    }

    fn mark_room_read(
        &mut self,
        room_id: &str,
        username: &str,
        last_read_id: i64,
    ) -> Result<Option<ReadMark>, StoreError> {
        self.write(
            |db| Ok((rooms::mark_read(db, room_id, username, last_read_id)?, false)),
            &mut || {},
        )
    }

    fn list_rooms(&mut self, username: &str, query: &RoomQuery) -> Result<Vec<RoomSummary>, StoreError> {
        // One read transaction: the page and its counts come from one snapshot.
        let tx = self.conn.transaction().map_err(map_err)?;
        rooms::list(&mut SqliteRooms(&tx), username, query)
    }
}
