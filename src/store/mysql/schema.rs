//! The MySQL schema: its steps, the exact-compare collation they are created with, and the named
//! lock that keeps two starting processes from migrating at once.

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Params};

use super::errors::map_err;
use super::rows::{first_row, params};
use crate::store::backend::StoreError;
use crate::store::migrate::{apply_missing, Schema, SchemaConn, CURRENT_VERSION};
use crate::store::model::Migrated;

/// How long `migrate` waits for another process that is migrating the same database.
const MIGRATE_LOCK_TIMEOUT_S: i64 = 30;

/// Indexes are declared inline because MySQL 8 has no `CREATE INDEX IF NOT EXISTS`.
/// `{collation}` is replaced by a binary NO PAD collation so names compare exactly, as in SQLite
/// (the server default would make `Alice` and `alice`, or `bob` and `bob `, the same user).
const SCHEMA: Schema = Schema {
    dialect: "mysql",
    steps: &[
        &[
            "CREATE TABLE IF NOT EXISTS users (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            username VARCHAR(64) NOT NULL,
            password_hash VARCHAR(255) NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE KEY users_username (username)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
            "CREATE TABLE IF NOT EXISTS refresh_tokens (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT NOT NULL,
            token_hash VARCHAR(128) NOT NULL,
            family VARCHAR(128) NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT NULL,
            UNIQUE KEY refresh_tokens_hash (token_hash),
            KEY refresh_tokens_family (family),
            CONSTRAINT refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
            "CREATE TABLE IF NOT EXISTS chat_messages (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            room_id VARCHAR(64) NOT NULL,
            sender VARCHAR(64) NOT NULL,
            message TEXT NOT NULL,
            sent_at BIGINT NOT NULL,
            KEY chat_messages_room (room_id, id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
            "CREATE TABLE IF NOT EXISTS notifications (
            id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            recipient VARCHAR(64) NOT NULL,
            type VARCHAR(16) NOT NULL,
            sender VARCHAR(64) NOT NULL,
            room_id VARCHAR(64) NULL,
            message TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            read_at BIGINT NULL,
            KEY notifications_recipient (recipient, id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
        ],
        &[
            // One row per room: the lock a group commit takes, and the room's last message id. The
            // other columns are the rooms API's (created_at NULL: an open room, never created).
            "CREATE TABLE IF NOT EXISTS rooms (
            room_id VARCHAR(64) NOT NULL PRIMARY KEY,
            last_message_id BIGINT NOT NULL DEFAULT 0,
            name VARCHAR(100) NULL,
            is_private BOOLEAN NOT NULL DEFAULT FALSE,
            owner VARCHAR(64) NULL,
            created_at BIGINT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
            // Back-fill from the messages stored before the table existed; re-running it is harmless.
            "INSERT INTO rooms (room_id, last_message_id)
            SELECT * FROM (SELECT room_id, MAX(id) AS last_id FROM chat_messages GROUP BY room_id) AS found
            ON DUPLICATE KEY UPDATE last_message_id = GREATEST(rooms.last_message_id, found.last_id)",
        ],
        &[
            // Rooms with members (SPEC §8): who is in a created room, and each reader's mark. The
            // `rooms` row itself is step 2's (`created_at` set: created through the API).
            "CREATE TABLE IF NOT EXISTS room_members (
            room_id VARCHAR(64) NOT NULL,
            username VARCHAR(64) NOT NULL,
            joined_at BIGINT NOT NULL,
            PRIMARY KEY (room_id, username),
            KEY room_members_user (username, room_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
            "CREATE TABLE IF NOT EXISTS room_read_marks (
            room_id VARCHAR(64) NOT NULL,
            username VARCHAR(64) NOT NULL,
            last_read_id BIGINT NOT NULL,
            PRIMARY KEY (room_id, username)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}",
        ],
    ],
};

/// Brings the schema up to date. DDL cannot sit in a transaction, so a named lock keeps two
/// starting processes from interleaving steps. Lock names are server-wide, hence the database
/// name in it.
pub(super) fn migrate(conn: &mut Conn) -> Result<Migrated, StoreError> {
    let got: Option<Option<i64>> = first_row(
        conn,
        "SELECT GET_LOCK(LEFT(CONCAT('herald.migrate.', COALESCE(DATABASE(), '')), 64), ?)",
        params(vec![MIGRATE_LOCK_TIMEOUT_S.into()]),
    )?;
    if got.flatten() != Some(1) {
        return Err(StoreError::Unavailable(
            "timed out waiting for another process to finish migrating".into(),
        ));
    }
    let result = apply_missing(&mut Migration { conn, collation: None }, &SCHEMA);
    let released = conn.query_drop("DO RELEASE_LOCK(LEFT(CONCAT('herald.migrate.', COALESCE(DATABASE(), '')), 64))");
    let migrated = result?;
    released.map_err(map_err)?;
    Ok(migrated)
}

/// The migration driver's view of a connection that holds the migration lock.
struct Migration<'c> {
    conn: &'c mut Conn,
    /// Looked up before the first step that needs it, so an up-to-date start asks nothing.
    collation: Option<String>,
}

impl SchemaConn for Migration<'_> {
    fn create_version_table(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_drop(
                "CREATE TABLE IF NOT EXISTS schema_version (
                    version INT NOT NULL PRIMARY KEY,
                    applied_at BIGINT NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            )
            .map_err(map_err)
    }

    fn current_version(&mut self) -> Result<i64, StoreError> {
        let current: Option<i64> = first_row(self.conn, CURRENT_VERSION, Params::Empty)?;
        Ok(current.unwrap_or(0))
    }

    /// DDL commits implicitly in MySQL, so each statement is idempotent on its own and the driver
    /// writes the version row last: a crash half-way re-runs the step harmlessly.
    fn execute(&mut self, sql: &str) -> Result<(), StoreError> {
        let collation = match &self.collation {
            Some(collation) => collation,
            None => self.collation.insert(exact_collation(self.conn)?),
        };
        self.conn
            .query_drop(sql.replace("{collation}", collation))
            .map_err(map_err)
    }

    fn record_version(&mut self, version: i64, applied_at_ms: i64) -> Result<(), StoreError> {
        self.conn
            .exec_drop(
                "INSERT IGNORE INTO schema_version (version, applied_at) VALUES (?, ?)",
                params(vec![version.into(), applied_at_ms.into()]),
            )
            .map_err(map_err)
    }
}

/// A binary NO PAD utf8mb4 collation: MySQL 8 names it `utf8mb4_0900_bin`, MariaDB
/// `utf8mb4_nopad_bin`; `utf8mb4_bin` (which ignores trailing spaces) is the last resort.
fn exact_collation(conn: &mut Conn) -> Result<String, StoreError> {
    let found: Option<String> = first_row(
        conn,
        "SELECT COLLATION_NAME FROM information_schema.COLLATIONS
         WHERE COLLATION_NAME IN ('utf8mb4_0900_bin', 'utf8mb4_nopad_bin')
         ORDER BY COLLATION_NAME LIMIT 1",
        Params::Empty,
    )?;
    Ok(found.unwrap_or_else(|| {
        log::warn!("mysql has no NO PAD binary utf8mb4 collation; trailing spaces will be ignored");
        "utf8mb4_bin".to_owned()
    }))
}
