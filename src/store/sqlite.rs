//! The embedded default store: one rusqlite connection per worker to a shared WAL-mode file.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::backend::{Backend, StoreError};
use super::chat::{
    create_notification, existing_users_sql, group_commit, heads_in_chunks, history_page, notification_heads_sql,
    retry_on_conflict, room_heads_sql, ChatTransaction, HistoryScan, NOTIFICATION_START_SQL, ROOM_START_SQL,
};
use super::migrate::{apply_missing, Schema, SchemaConn, CURRENT_VERSION};
use super::model::*;
use super::outcome::{mark_read_outcome, spend_outcome, RefreshTokenRow};
use super::rooms::{self, AccessReads, AccessRow, RoomListRow, RoomStatements, RowLock, RowState};

/// How long a writer waits for another connection's write lock before giving up with 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tables and indexes; `IF NOT EXISTS` everywhere so a step cut short can run again.
const SCHEMA: Schema = Schema {
    dialect: "sqlite",
    steps: &[
        &[
            "CREATE TABLE IF NOT EXISTS users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            created_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS refresh_tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL UNIQUE,
            family TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            revoked_at INTEGER)",
            "CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family)",
            // AUTOINCREMENT: ids are client cursors (history `after`, SSE Last-Event-ID), so they must
            // never be reused, not even after the newest row is deleted.
            "CREATE TABLE IF NOT EXISTS chat_messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            room_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            message TEXT NOT NULL,
            sent_at INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS chat_messages_room ON chat_messages (room_id, id)",
            "CREATE TABLE IF NOT EXISTS notifications (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            recipient TEXT NOT NULL,
            type TEXT NOT NULL,
            sender TEXT NOT NULL,
            room_id TEXT,
            message TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            read_at INTEGER)",
            "CREATE INDEX IF NOT EXISTS notifications_recipient ON notifications (recipient, id)",
        ],
        &[
            // One row per room: the lock a group commit takes, and the room's last message id. The
            // other columns are the rooms API's (created_at NULL: an open room, never created).
            "CREATE TABLE IF NOT EXISTS rooms (
            room_id TEXT NOT NULL PRIMARY KEY,
            last_message_id INTEGER NOT NULL DEFAULT 0,
            name TEXT NULL,
            is_private INTEGER NOT NULL DEFAULT 0,
            owner TEXT NULL,
            created_at INTEGER NULL)",
            // Back-fill from the messages stored before the table existed (`WHERE true`: SQLite's
            // upsert after INSERT … SELECT needs a WHERE to parse).
            "INSERT INTO rooms (room_id, last_message_id)
            SELECT room_id, MAX(id) FROM chat_messages WHERE true GROUP BY room_id
            ON CONFLICT (room_id) DO UPDATE SET last_message_id = MAX(last_message_id, excluded.last_message_id)",
        ],
        &[
            // Rooms with members (SPEC §8): who is in a created room, and each reader's mark. The
            // `rooms` row itself is step 2's (`created_at` set: created through the API).
            "CREATE TABLE IF NOT EXISTS room_members (
            room_id TEXT NOT NULL,
            username TEXT NOT NULL,
            joined_at INTEGER NOT NULL,
            PRIMARY KEY (room_id, username)) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS room_members_user ON room_members (username, room_id)",
            "CREATE TABLE IF NOT EXISTS room_read_marks (
            room_id TEXT NOT NULL,
            username TEXT NOT NULL,
            last_read_id INTEGER NOT NULL,
            PRIMARY KEY (room_id, username)) WITHOUT ROWID",
        ],
    ],
};

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

/// A group commit's IMMEDIATE transaction; dropped on any early return, it rolls the batch back.
struct ChatTx<'c>(rusqlite::Transaction<'c>);

impl AccessReads for ChatTx<'_> {
    fn access_rows(&mut self, room_ids: &[&str], pairs: &[(&str, &str)]) -> Result<Vec<AccessRow>, StoreError> {
        SqliteRooms(&self.0).access_rows(room_ids, pairs)
    }
}

impl ChatTransaction for ChatTx<'_> {
    /// The IMMEDIATE transaction already holds SQLite's one write lock, which covers every room;
    /// rows are only created and read.
    fn lock_rooms(&mut self, rooms: &[&str]) -> Result<Vec<i64>, StoreError> {
        let count = rooms.len();
        self.0
            .prepare(&format!(
                "INSERT OR IGNORE INTO rooms (room_id) VALUES {}",
                vec!["(?)"; count].join(",")
            ))
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(rooms)))
            .map_err(map_err)?;
        let heads: HashMap<String, i64> = query_pairs(&self.0, &room_heads_sql(count), rooms)?
            .into_iter()
            .collect();
        rooms
            .iter()
            .map(|r| {
                heads
                    .get(*r)
                    .copied()
                    .ok_or_else(|| StoreError::Other(format!("room {r:?} has no row after its insert")))
            })
            .collect()
    }

    fn insert_messages(&mut self, batch: &[&NewChatMessage]) -> Result<Vec<i64>, StoreError> {
        // One cached single-row INSERT per message rather than a multi-row statement: in-process
        // there is no round trip to save, and `last_insert_rowid` ties each id to its input
        // without relying on the order of RETURNING rows, which SQLite leaves unspecified.
        let mut insert = self
            .0
            .prepare_cached(
                "INSERT INTO chat_messages (room_id, sender, message, sent_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(map_err)?;
        batch
            .iter()
            .map(|m| {
                insert
                    .execute(params![m.room_id, m.sender, m.message, m.sent_at_ms])
                    .map_err(map_err)?;
                Ok(self.0.last_insert_rowid())
            })
            .collect()
    }

    fn set_room_heads(&mut self, heads: &[(&str, i64)]) -> Result<(), StoreError> {
        let mut update = self
            .0
            .prepare_cached("UPDATE rooms SET last_message_id = ?1 WHERE room_id = ?2")
            .map_err(map_err)?;
        for (room, id) in heads {
            update.execute(params![id, room]).map_err(map_err)?;
        }
        Ok(())
    }

    fn lock_recipients(&mut self, names: &[&str]) -> Result<Vec<(String, i64)>, StoreError> {
        // Not cached: each list length is a different statement and would evict the hot ones.
        let users: Vec<String> = self
            .0
            .prepare(&existing_users_sql(names.len()))
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params_from_iter(names), |r| r.get::<_, String>(0))?
                    .collect()
            })
            .map_err(map_err)?;
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let heads: HashMap<String, i64> = query_pairs(&self.0, &notification_heads_sql(users.len()), &users)?
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
        let mut insert = self
            .0
            .prepare_cached(
                "INSERT INTO notifications (recipient, type, sender, room_id, message, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_err)?;
        notifications
            .iter()
            .map(|n| {
                insert.execute(notification_params(n)).map_err(map_err)?;
                Ok(self.0.last_insert_rowid())
            })
            .collect()
    }

    fn commit(self) -> Result<(), StoreError> {
        self.0.commit().map_err(map_err)
    }
}

/// The room statements on a connection or inside a transaction. Row locks are not needed: every
/// write transaction is IMMEDIATE, so writers (the group commit included) run one at a time.
struct SqliteRooms<'c>(&'c Connection);

const ROOM_COLUMNS: &str = "room_id, name, is_private, owner, created_at";

fn room_from_row(r: &Row<'_>) -> rusqlite::Result<Room> {
    Ok(Room {
        room_id: r.get(0)?,
        name: r.get(1)?,
        private: r.get::<_, i64>(2)? != 0,
        owner: r.get(3)?,
        created_at_ms: r.get(4)?,
    })
}

/// `?, ?, …` for `count` values.
fn marks(count: usize) -> String {
    vec!["?"; count].join(",")
}

impl AccessReads for SqliteRooms<'_> {
    /// In-process lookups cost no round trip, so the pairs are looked up exactly (one cached
    /// statement each) rather than the rooms × names superset a remote store reads.
    fn access_rows(&mut self, room_ids: &[&str], pairs: &[(&str, &str)]) -> Result<Vec<AccessRow>, StoreError> {
        let sql = format!(
            "SELECT room_id, is_private FROM rooms WHERE room_id IN ({}) AND created_at IS NOT NULL",
            marks(room_ids.len())
        );
        let run = |s: &mut rusqlite::Statement<'_>| {
            s.query_map(rusqlite::params_from_iter(room_ids), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
            })?
            .collect::<rusqlite::Result<Vec<(String, bool)>>>()
        };
        // A batch usually holds one or a few rooms: those few shapes are cached; a long list is a
        // one-off that would evict the hot statements.
        let rooms = if room_ids.len() <= 4 {
            self.0.prepare_cached(&sql).and_then(|mut s| run(&mut s))
        } else {
            self.0.prepare(&sql).and_then(|mut s| run(&mut s))
        }
        .map_err(map_err)?;
        let mut member = self
            .0
            .prepare_cached("SELECT 1 FROM room_members WHERE room_id = ?1 AND username = ?2")
            .map_err(map_err)?;
        let mut rows = Vec::with_capacity(rooms.len());
        for (room, private) in rooms {
            if private {
                let from = pairs.partition_point(|(r, _)| *r < room.as_str());
                let to = pairs.partition_point(|(r, _)| *r <= room.as_str());
                for (_, name) in &pairs[from..to] {
                    if member.exists(params![room, name]).map_err(map_err)? {
                        rows.push((room.clone(), true, Some((*name).to_owned())));
                    }
                }
            }
            rows.push((room, private, None));
        }
        Ok(rows)
    }
}

impl RoomStatements for SqliteRooms<'_> {
    fn room(&mut self, room_id: &str, _lock: RowLock) -> Result<Option<Room>, StoreError> {
        self.0
            .prepare_cached(&format!(
                "SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ?1 AND created_at IS NOT NULL"
            ))
            .and_then(|mut s| s.query_row(params![room_id], room_from_row).optional())
            .map_err(map_err)
    }

    fn lock_row(&mut self, room_id: &str) -> Result<Option<RowState>, StoreError> {
        self.0
            .prepare_cached("SELECT created_at IS NOT NULL, last_message_id FROM rooms WHERE room_id = ?1")
            .and_then(|mut s| {
                s.query_row(params![room_id], |r| {
                    Ok(if r.get::<_, i64>(0)? != 0 {
                        RowState::Created
                    } else {
                        RowState::Open {
                            last_message_id: r.get(1)?,
                        }
                    })
                })
                .optional()
            })
            .map_err(map_err)
    }

    fn insert_room(&mut self, room: &NewRoom) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO rooms (room_id, name, is_private, owner, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    room.room_id,
                    room.name,
                    i64::from(room.private),
                    room.owner,
                    room.created_at_ms
                ])
            })
            .map(drop)
            .map_err(map_err)
    }

    fn claim_open_room(&mut self, room: &NewRoom) -> Result<bool, StoreError> {
        self.0
            .prepare_cached(
                "UPDATE rooms SET name = ?2, is_private = ?3, owner = ?4, created_at = ?5
                 WHERE room_id = ?1 AND created_at IS NULL",
            )
            .and_then(|mut s| {
                s.execute(params![
                    room.room_id,
                    room.name,
                    i64::from(room.private),
                    room.owner,
                    room.created_at_ms
                ])
            })
            .map(|n| n == 1)
            .map_err(map_err)
    }

    fn has_messages(&mut self, room_id: &str) -> Result<bool, StoreError> {
        self.0
            .prepare_cached("SELECT 1 FROM chat_messages WHERE room_id = ?1 LIMIT 1")
            .and_then(|mut s| s.exists(params![room_id]))
            .map_err(map_err)
    }

    fn members(&mut self, room_id: &str, _lock: RowLock) -> Result<Vec<String>, StoreError> {
        self.0
            .prepare_cached("SELECT username FROM room_members WHERE room_id = ?1 ORDER BY joined_at, username")
            .and_then(|mut s| s.query_map(params![room_id], |r| r.get::<_, String>(0))?.collect())
            .map_err(map_err)
    }

    fn is_member(&mut self, room_id: &str, username: &str, _lock: RowLock) -> Result<bool, StoreError> {
        self.0
            .prepare_cached("SELECT 1 FROM room_members WHERE room_id = ?1 AND username = ?2")
            .and_then(|mut s| s.exists(params![room_id, username]))
            .map_err(map_err)
    }

    fn member_count(&mut self, room_id: &str) -> Result<i64, StoreError> {
        self.0
            .prepare_cached("SELECT COUNT(*) FROM room_members WHERE room_id = ?1")
            .and_then(|mut s| s.query_row(params![room_id], |r| r.get(0)))
            .map_err(map_err)
    }

    fn add_member(&mut self, room_id: &str, username: &str, joined_at_ms: i64) -> Result<bool, StoreError> {
        self.0
            .prepare_cached("INSERT OR IGNORE INTO room_members (room_id, username, joined_at) VALUES (?1, ?2, ?3)")
            .and_then(|mut s| s.execute(params![room_id, username, joined_at_ms]))
            .map(|n| n == 1)
            .map_err(map_err)
    }

    fn delete_member(&mut self, room_id: &str, username: &str) -> Result<bool, StoreError> {
        self.0
            .prepare_cached("DELETE FROM room_members WHERE room_id = ?1 AND username = ?2")
            .and_then(|mut s| s.execute(params![room_id, username]))
            .map(|n| n == 1)
            .map_err(map_err)
    }

    fn set_owner(&mut self, room_id: &str, owner: Option<&str>) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE rooms SET owner = ?2 WHERE room_id = ?1")
            .and_then(|mut s| s.execute(params![room_id, owner]))
            .map(drop)
            .map_err(map_err)
    }

    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError> {
        self.0
            .prepare_cached("SELECT 1 FROM users WHERE username = ?1")
            .and_then(|mut s| s.exists(params![username]))
            .map_err(map_err)
    }

    fn raise_read_mark(&mut self, room_id: &str, username: &str, last_read_id: i64) -> Result<i64, StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO room_read_marks (room_id, username, last_read_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT (room_id, username)
                 DO UPDATE SET last_read_id = MAX(last_read_id, excluded.last_read_id)
                 RETURNING last_read_id",
            )
            .and_then(|mut s| s.query_row(params![room_id, username, last_read_id], |r| r.get(0)))
            .map_err(map_err)
    }

    fn last_message_id(&mut self, room_id: &str) -> Result<Option<i64>, StoreError> {
        self.0
            .prepare_cached("SELECT MAX(id) FROM chat_messages WHERE room_id = ?1")
            .and_then(|mut s| s.query_row(params![room_id], |r| r.get(0)))
            .map_err(map_err)
    }

    fn count_after(&mut self, room_id: &str, after_id: i64, cap: i64) -> Result<i64, StoreError> {
        self.0
            .prepare_cached(
                "SELECT COUNT(*) FROM (SELECT 1 FROM chat_messages WHERE room_id = ?1 AND id > ?2 LIMIT ?3)",
            )
            .and_then(|mut s| s.query_row(params![room_id, after_id, cap], |r| r.get(0)))
            .map_err(map_err)
    }

    fn visible_rooms(&mut self, username: &str, query: &RoomQuery) -> Result<Vec<RoomListRow>, StoreError> {
        let cursor = if query.before.is_some() {
            "AND r.room_id < ?3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.room_id, r.name, r.is_private, r.owner, r.created_at,
                (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.room_id),
                (SELECT MAX(c.id) FROM chat_messages c WHERE c.room_id = r.room_id),
                COALESCE((SELECT k.last_read_id FROM room_read_marks k
                          WHERE k.room_id = r.room_id AND k.username = ?1), 0)
             FROM rooms r
             WHERE r.created_at IS NOT NULL {cursor}
               AND (r.is_private = 0 OR EXISTS (SELECT 1 FROM room_members m2
                                               WHERE m2.room_id = r.room_id AND m2.username = ?1))
             ORDER BY r.room_id DESC LIMIT ?2"
        );
        let limit = i64::from(query.limit);
        let row = |r: &Row<'_>| {
            Ok(RoomListRow {
                room: room_from_row(r)?,
                member_count: r.get(5)?,
                last_message_id: r.get(6)?,
                read_mark: r.get(7)?,
            })
        };
        self.0
            .prepare_cached(&sql)
            .and_then(|mut s| match &query.before {
                Some(before) => s.query_map(params![username, limit, before], row)?.collect(),
                None => s.query_map(params![username, limit], row)?.collect(),
            })
            .map_err(map_err)
    }

    fn messages_by_id(&mut self, ids: &[i64]) -> Result<Vec<ChatMessage>, StoreError> {
        let sql = format!(
            "SELECT id, room_id, sender, message, sent_at FROM chat_messages WHERE id IN ({})",
            marks(ids.len())
        );
        self.0
            .prepare(&sql)
            .and_then(|mut s| s.query_map(rusqlite::params_from_iter(ids), chat_from_row)?.collect())
            .map_err(map_err)
    }
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

/// The migration driver's view of a connection inside the migration transaction.
struct Migration<'c>(&'c Connection);

impl SchemaConn for Migration<'_> {
    fn create_version_table(&mut self) -> Result<(), StoreError> {
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY,
                applied_at INTEGER NOT NULL)",
        )
    }

    fn current_version(&mut self) -> Result<i64, StoreError> {
        self.0.query_row(CURRENT_VERSION, [], |r| r.get(0)).map_err(map_err)
    }

    fn execute(&mut self, sql: &str) -> Result<(), StoreError> {
        self.0.execute(sql, []).map(drop).map_err(map_err)
    }

    fn record_version(&mut self, version: i64, applied_at_ms: i64) -> Result<(), StoreError> {
        self.0
            .execute(
                "INSERT OR IGNORE INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                params![version, applied_at_ms],
            )
            .map(drop)
            .map_err(map_err)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh database file path per call, removed with its WAL files by `cleanup`.
    fn temp_db() -> std::path::PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("herald-sqlite-{}-{n}.db", std::process::id()));
        cleanup(&path);
        path
    }

    fn cleanup(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }

    fn open(path: &Path) -> Box<dyn Backend> {
        match SqliteBackend::open(path) {
            Ok(b) => Box::new(b),
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    }

    #[test]
    fn conformance() {
        let path = temp_db();
        crate::store::conformance::run_all(&|| open(&path));
        cleanup(&path);
    }

    #[test]
    fn racing_room_changes() {
        let path = temp_db();
        open(&path).migrate().unwrap();
        crate::store::conformance::racing_direct_rooms((0..4).map(|_| open(&path)).collect());
        crate::store::conformance::racing_invitations((0..5).map(|_| open(&path)).collect());
        cleanup(&path);
    }

    #[test]
    fn concurrent_commits_keep_rooms_chained() {
        let path = temp_db();
        crate::store::conformance::concurrent_commits_keep_every_room_chained(&|| open(&path));
        cleanup(&path);
    }

    #[test]
    fn rooms_are_back_filled_from_the_messages_stored_before_them() {
        let path = temp_db();
        let mut b = match SqliteBackend::open(&path) {
            Ok(b) => b,
            Err(e) => panic!("open: {e}"),
        };
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
        b.conn
            .execute_batch("DROP TABLE rooms; DELETE FROM schema_version WHERE version >= 2")
            .unwrap();
        b.migrate().unwrap();
        let mut heads = b.room_heads(&["bf-a", "bf-b"]).unwrap();
        heads.sort();
        assert_eq!(heads, vec![("bf-a".into(), ids[2]), ("bf-b".into(), ids[1])]);
        // The next message links to the back-filled head.
        let next = b.commit_chat(&batch[..1]).unwrap();
        assert_eq!(next.message_prev_ids, vec![ids[2]]);
        // Re-running the step (a crash before its version was recorded) changes nothing.
        b.conn
            .execute_batch("DELETE FROM schema_version WHERE version >= 2")
            .unwrap();
        b.migrate().unwrap();
        let head = b.room_heads(&["bf-a"]).unwrap();
        assert_eq!(head, vec![("bf-a".into(), next.messages[0].id)]);
        drop(b);
        cleanup(&path);
    }

    #[test]
    fn pragmas_are_durable_wal() {
        let path = temp_db();
        let backend = match SqliteBackend::open(&path) {
            Ok(b) => b,
            Err(e) => panic!("open: {e}"),
        };
        let mode: String = backend.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let sync: i64 = backend.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let fk: i64 = backend.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(fk, 1);
        drop(backend);
        cleanup(&path);
    }

    #[test]
    fn concurrent_migrate_and_commit_from_several_connections() {
        let path = temp_db();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut b = open(&path);
                    b.migrate().unwrap();
                    let batch: Vec<NewChatMessage> = (0..50)
                        .map(|i| NewChatMessage {
                            room_id: format!("room-{t}"),
                            sender: "alice".into(),
                            message: format!("m{i}"),
                            sent_at_ms: i,
                            mentions: vec![],
                        })
                        .collect();
                    for _ in 0..10 {
                        b.commit_chat(&batch).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut b = open(&path);
        for t in 0..4 {
            let page = b
                .chat_history(
                    &format!("room-{t}"),
                    HistoryQuery {
                        limit: 1000,
                        before: None,
                        after: None,
                    },
                )
                .unwrap();
            assert_eq!(page.len(), 500);
        }
        drop(b);
        cleanup(&path);
    }

    #[test]
    fn many_workers_opening_a_new_file_at_once() {
        for _ in 0..50 {
            let path = temp_db();
            let threads: Vec<_> = (0..6)
                .map(|_| {
                    let path = path.clone();
                    std::thread::spawn(move || SqliteBackend::open(&path).err().map(|e| e.to_string()))
                })
                .collect();
            for t in threads {
                if let Some(e) = t.join().unwrap() {
                    panic!("{e}");
                }
            }
            cleanup(&path);
        }
    }

    #[test]
    fn failed_commit_leaves_nothing_behind() {
        let path = temp_db();
        let mut b = match SqliteBackend::open(&path) {
            Ok(b) => b,
            Err(e) => panic!("open: {e}"),
        };
        b.migrate().unwrap();
        b.create_user("boom", "x", 0).unwrap();
        // Make the mention insert, which runs after the messages went in, fail.
        b.conn
            .execute_batch(
                "CREATE TRIGGER fail_boom BEFORE INSERT ON notifications
                 WHEN NEW.recipient = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END",
            )
            .unwrap();
        let batch = vec![NewChatMessage {
            room_id: "r".into(),
            sender: "s".into(),
            message: "hi @boom".into(),
            sent_at_ms: 1,
            mentions: vec!["boom".into()],
        }];
        assert!(matches!(b.commit_chat(&batch), Err(StoreError::Other(_))));
        let q = HistoryQuery {
            limit: 10,
            before: None,
            after: None,
        };
        assert!(b.chat_history("r", q).unwrap().is_empty());
        // The connection is still usable after the rollback.
        b.conn.execute_batch("DROP TRIGGER fail_boom").unwrap();
        assert_eq!(b.commit_chat(&batch).unwrap().notifications.len(), 1);
        drop(b);
        cleanup(&path);
    }

    #[test]
    fn a_failed_group_leaves_nothing_behind() {
        let path = temp_db();
        let mut b = match SqliteBackend::open(&path) {
            Ok(b) => b,
            Err(e) => panic!("open: {e}"),
        };
        b.migrate().unwrap();
        b.conn
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON chat_messages
                 WHEN NEW.message = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END",
            )
            .unwrap();
        crate::store::conformance::group_is_atomic(&mut b, "poison");
        drop(b);
        cleanup(&path);
    }

    #[test]
    #[ignore = "timing, run with --ignored --nocapture"]
    fn time_single_commit_of_500() {
        let path = temp_db();
        let mut b = open(&path);
        b.migrate().unwrap();
        crate::store::conformance::time_commit(b.as_mut(), "sqlite");
        drop(b);
        cleanup(&path);
    }
}
