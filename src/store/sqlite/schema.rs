//! The SQLite schema (every migration step) and the migration driver's view of a connection.

use super::*;

/// Tables and indexes; `IF NOT EXISTS` everywhere so a step cut short can run again.
pub(super) const SCHEMA: Schema = Schema {
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

/// The migration driver's view of a connection inside the migration transaction.
pub(super) struct Migration<'c>(pub(super) &'c Connection);

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
