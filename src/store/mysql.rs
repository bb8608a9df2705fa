//! The production store: one `mysql::Conn` per worker to MySQL 8 or MariaDB 10.11.

use std::time::Duration;

use ::mysql::prelude::{FromRow, Queryable};
use ::mysql::{Conn, DriverError, Opts, OptsBuilder, Params, TxOpts, Value};

use super::backend::{Backend, StoreError};
use super::model::*;
use super::sqlite::{spend_outcome, unique_mentions};

/// A dead host should turn into a 503 quickly rather than hold a worker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Bounds one statement's round trip; a group commit of 500 rows is far below it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Rows per multi-row INSERT: amortises the round trip while staying far below the 65 535
/// placeholder limit.
const INSERT_CHUNK: usize = 500;
/// Payload bytes per multi-row INSERT, so long messages stay under `max_allowed_packet` (4 MiB on
/// older servers) even in a 500-row chunk.
const INSERT_CHUNK_BYTES: usize = 1 << 20;
/// How long `migrate` waits for another process that is migrating the same database.
const MIGRATE_LOCK_TIMEOUT_S: i64 = 30;

/// Every session gets the same character set and strictness, whatever the server defaults are:
/// utf8mb4 so emoji survive, strict so an over-long value fails instead of being truncated.
const SESSION_INIT: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
];

/// Schema steps; step `i` brings the schema to version `i + 1`. Append, never edit a shipped step.
/// Indexes are declared inline because MySQL 8 has no `CREATE INDEX IF NOT EXISTS`.
/// `{collation}` is replaced by a binary NO PAD collation so names compare exactly, as in SQLite
/// (the server default would make `Alice` and `alice`, or `bob` and `bob `, the same user).
const MIGRATIONS: &[&[&str]] = &[&[
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
]];

const NOTIFICATION_COLUMNS: &str = "id, recipient, type, sender, room_id, message, created_at, read_at";
const CHAT_COLUMNS: [&str; 4] = ["room_id", "sender", "message", "sent_at"];
const MENTION_COLUMNS: [&str; 6] = ["recipient", "type", "sender", "room_id", "message", "created_at"];

/// How the ids of a multi-row INSERT are learnt from `LAST_INSERT_ID()` (the first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdAllocation {
    /// `innodb_autoinc_lock_mode` 0 or 1: InnoDB documents that a simple multi-row INSERT gets
    /// consecutive values (spaced by `auto_increment_increment`), so they are computed.
    Consecutive { step: i64 },
    /// Lock mode 2 (MySQL 8's default, Galera): values may interleave with concurrent inserts, so
    /// the computed ids are read back and compared with what was inserted; on a mismatch the
    /// chunk is rolled back to a savepoint and inserted row by row.
    Verified { step: i64 },
    /// One INSERT per row, each id from its own `LAST_INSERT_ID()`: the path `Verified` falls back
    /// to, selectable on its own only by tests so that path is exercised.
    #[cfg_attr(not(test), allow(dead_code))]
    RowByRow,
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

    /// Inserts `rows` (values in `columns` order) into `table` inside the caller's transaction and
    /// returns their ids in input order.
    fn insert_rows(
        tx: &mut ::mysql::Transaction<'_>,
        ids: IdAllocation,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in insert_chunks(rows) {
            let step = match ids {
                IdAllocation::RowByRow => {
                    out.extend(insert_one_by_one(tx, table, columns, chunk)?);
                    continue;
                }
                IdAllocation::Consecutive { step } | IdAllocation::Verified { step } => step,
            };
            let verify = matches!(ids, IdAllocation::Verified { .. });
            if verify {
                tx.query_drop("SAVEPOINT herald_insert").map_err(map_err)?;
            }
            let row_marks = format!("({})", vec!["?"; columns.len()].join(","));
            let sql = format!(
                "INSERT INTO {table} ({}) VALUES {}",
                columns.join(","),
                vec![row_marks.as_str(); chunk.len()].join(",")
            );
            let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
            tx.exec_drop(&sql, Params::Positional(params)).map_err(map_err)?;
            let first = first_insert_id(tx)?;
            let chunk_ids = consecutive_ids(first, step, chunk.len())?;
            if verify && !stored_as_expected(tx, table, columns, chunk, &chunk_ids)? {
                log::debug!("{table}: interleaved auto-increment ids, inserting row by row");
                tx.query_drop("ROLLBACK TO SAVEPOINT herald_insert").map_err(map_err)?;
                out.extend(insert_one_by_one(tx, table, columns, chunk)?);
                continue;
            }
            out.extend(chunk_ids);
        }
        Ok(out)
    }
}

/// Splits rows into runs of at most `INSERT_CHUNK` rows and (unless one row alone is larger)
/// `INSERT_CHUNK_BYTES` bytes.
fn insert_chunks(rows: &[Vec<Value>]) -> Vec<&[Vec<Value>]> {
    let size = |row: &Vec<Value>| -> usize {
        row.iter()
            .map(|v| match v {
                Value::Bytes(b) => b.len(),
                _ => 8,
            })
            .sum()
    };
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let row_bytes = size(row);
        if i > start && (i - start == INSERT_CHUNK || bytes + row_bytes > INSERT_CHUNK_BYTES) {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += row_bytes;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// Reads how this server hands out auto-increment values; see [`IdAllocation`].
fn detect_id_allocation(conn: &mut Conn) -> Result<IdAllocation, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> = first_row(
        conn,
        "SELECT @@innodb_autoinc_lock_mode, @@auto_increment_increment",
        Params::Empty,
    )?;
    let (mode, step) = row.unwrap_or((None, None));
    let step = step.filter(|s| *s >= 1).unwrap_or(1);
    Ok(match mode {
        Some(0) | Some(1) => IdAllocation::Consecutive { step },
        _ => {
            log::info!(
                "mysql innodb_autoinc_lock_mode={mode:?}: multi-row insert ids are verified \
                 (set it to 1 to skip the check)"
            );
            IdAllocation::Verified { step }
        }
    })
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

fn first_insert_id(tx: &::mysql::Transaction<'_>) -> Result<i64, StoreError> {
    tx.last_insert_id()
        .and_then(|id| i64::try_from(id).ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| StoreError::Other("insert returned no auto-increment id".into()))
}

fn consecutive_ids(first: i64, step: i64, count: usize) -> Result<Vec<i64>, StoreError> {
    (0..count)
        .map(|i| {
            i64::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(step))
                .and_then(|offset| first.checked_add(offset))
                .ok_or_else(|| StoreError::Other("auto-increment id overflow".into()))
        })
        .collect()
}

/// Whether the rows at `ids` are exactly the rows just inserted, in order.
fn stored_as_expected(
    tx: &mut ::mysql::Transaction<'_>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
    ids: &[i64],
) -> Result<bool, StoreError> {
    let (Some(low), Some(high)) = (ids.first(), ids.last()) else {
        return Ok(true);
    };
    let sql = format!(
        "SELECT id, {} FROM {table} WHERE id BETWEEN ? AND ? ORDER BY id",
        columns.join(",")
    );
    let found: Vec<::mysql::Row> = all_rows(tx, &sql, Params::Positional(vec![(*low).into(), (*high).into()]))?;
    if found.len() != rows.len() {
        return Ok(false);
    }
    for ((row, expected_id), expected) in found.into_iter().zip(ids).zip(rows) {
        // `Row::unwrap` hands over the column values; it cannot panic.
        let values = row.unwrap();
        let Some((id, rest)) = values.split_first() else {
            return Ok(false);
        };
        if *id != Value::Int(*expected_id) || rest != expected.as_slice() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn insert_one_by_one(
    tx: &mut ::mysql::Transaction<'_>,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<Vec<i64>, StoreError> {
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        columns.join(","),
        vec!["?"; columns.len()].join(",")
    );
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        tx.exec_drop(&sql, Params::Positional(row.clone())).map_err(map_err)?;
        ids.push(first_insert_id(tx)?);
    }
    Ok(ids)
}

/// Sorts a driver failure into what the caller should do about it.
fn map_err(e: ::mysql::Error) -> StoreError {
    use ::mysql::Error as E;
    match &e {
        E::IoError(_) | E::CodecError(_) => StoreError::Unavailable(e.to_string()),
        // Bad parameters are our bug and leave the connection usable; every other driver error
        // (timeouts, lost sync, failed connect) leaves it in an unknown state.
        E::DriverError(DriverError::Params(_) | DriverError::MixedParams | DriverError::MismatchedStmtParams(..)) => {
            StoreError::Other(e.to_string())
        }
        E::DriverError(_) => StoreError::Unavailable(e.to_string()),
        E::MySqlError(server) => match server.code {
            1062 => StoreError::Conflict,
            // Too many connections, shutdown, aborted/killed connection, network errors,
            // idle disconnect (4031), and the client-side gone-away / lost codes.
            1040 | 1053 | 1152 | 1158 | 1159 | 1160 | 1161 | 1184 | 1927 | 4031 | 2002 | 2003 | 2006 | 2013 => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        },
        _ => StoreError::Other(e.to_string()),
    }
}

/// Runs a prepared query and converts every row, failing (not panicking) on a surprising column.
fn all_rows<T: FromRow>(q: &mut impl Queryable, sql: &str, params: Params) -> Result<Vec<T>, StoreError> {
    q.exec_opt::<T, _, _>(sql, params)
        .map_err(map_err)?
        .into_iter()
        .map(|r| r.map_err(|e| StoreError::Other(format!("unexpected row shape: {e}"))))
        .collect()
}

/// Like [`all_rows`] for the first row only.
fn first_row<T: FromRow>(q: &mut impl Queryable, sql: &str, params: Params) -> Result<Option<T>, StoreError> {
    q.exec_first_opt::<T, _, _>(sql, params)
        .map_err(map_err)?
        .transpose()
        .map_err(|e| StoreError::Other(format!("unexpected row shape: {e}")))
}

fn affected(q: &mut Conn, sql: &str, params: Params) -> Result<u64, StoreError> {
    q.exec_drop(sql, params).map_err(map_err)?;
    Ok(q.affected_rows())
}

fn params(values: Vec<Value>) -> Params {
    Params::Positional(values)
}

type NotificationRow = (i64, String, String, String, Option<String>, String, i64, Option<i64>);

fn notification(row: NotificationRow) -> Notification {
    let (id, recipient, kind, sender, room_id, message, created_at_ms, read_at) = row;
    Notification {
        id,
        recipient,
        kind,
        sender,
        room_id,
        message,
        created_at_ms,
        read: read_at.is_some(),
    }
}

fn chat(row: (i64, String, String, String, i64)) -> ChatMessage {
    let (id, room_id, sender, message, sent_at_ms) = row;
    ChatMessage {
        id,
        room_id,
        sender,
        message,
        sent_at_ms,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl MysqlBackend {
    fn apply_migrations(&mut self) -> Result<(), StoreError> {
        self.conn
            .query_drop(
                "CREATE TABLE IF NOT EXISTS schema_version (
                    version INT NOT NULL PRIMARY KEY,
                    applied_at BIGINT NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            )
            .map_err(map_err)?;
        let current: Option<i64> = first_row(
            &mut self.conn,
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            Params::Empty,
        )?;
        let current = usize::try_from(current.unwrap_or(0)).unwrap_or(0);
        if current > MIGRATIONS.len() {
            log::warn!(
                "mysql schema is at version {current}, newer than this build knows ({})",
                MIGRATIONS.len()
            );
        }
        let collation = if current < MIGRATIONS.len() {
            exact_collation(&mut self.conn)?
        } else {
            String::new()
        };
        for (index, step) in MIGRATIONS.iter().enumerate().skip(current) {
            // DDL commits implicitly in MySQL, so each statement is idempotent on its own and the
            // version row is written last: a crash half-way re-runs the step harmlessly.
            for sql in *step {
                self.conn
                    .query_drop(sql.replace("{collation}", &collation))
                    .map_err(map_err)?;
            }
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            self.conn
                .exec_drop(
                    "INSERT IGNORE INTO schema_version (version, applied_at) VALUES (?, ?)",
                    params(vec![version.into(), now_ms().into()]),
                )
                .map_err(map_err)?;
            log::info!("mysql schema migrated to version {version}");
        }
        Ok(())
    }
}

impl Backend for MysqlBackend {
    fn migrate(&mut self) -> Result<(), StoreError> {
        // DDL cannot sit in a transaction, so a named lock keeps two starting processes from
        // interleaving steps. Lock names are server-wide, hence the database name in it.
        let got: Option<Option<i64>> = first_row(
            &mut self.conn,
            "SELECT GET_LOCK(LEFT(CONCAT('herald.migrate.', COALESCE(DATABASE(), '')), 64), ?)",
            params(vec![MIGRATE_LOCK_TIMEOUT_S.into()]),
        )?;
        if got.flatten() != Some(1) {
            return Err(StoreError::Unavailable(
                "timed out waiting for another process to finish migrating".into(),
            ));
        }
        let result = self.apply_migrations();
        let released = self
            .conn
            .query_drop("DO RELEASE_LOCK(LEFT(CONCAT('herald.migrate.', COALESCE(DATABASE(), '')), 64))");
        result?;
        released.map_err(map_err)
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
        let row: Option<(i64, String, i64, Option<i64>)> = first_row(
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
        if batch.is_empty() {
            return Ok(CommittedChat::default());
        }
        let ids = self.ids;
        // Dropping `tx` on any early return sends ROLLBACK: the batch is all or nothing.
        let mut tx = self.conn.start_transaction(TxOpts::default()).map_err(map_err)?;
        let rows: Vec<Vec<Value>> = batch
            .iter()
            .map(|m| {
                vec![
                    m.room_id.as_str().into(),
                    m.sender.as_str().into(),
                    m.message.as_str().into(),
                    m.sent_at_ms.into(),
                ]
            })
            .collect();
        let message_ids = Self::insert_rows(&mut tx, ids, "chat_messages", &CHAT_COLUMNS, &rows)?;
        let messages: Vec<ChatMessage> = batch
            .iter()
            .zip(&message_ids)
            .map(|(m, id)| ChatMessage {
                id: *id,
                room_id: m.room_id.clone(),
                sender: m.sender.clone(),
                message: m.message.clone(),
                sent_at_ms: m.sent_at_ms,
            })
            .collect();

        let mut notifications = Vec::new();
        let mentioned = unique_mentions(batch);
        if !mentioned.is_empty() {
            let mut existing = std::collections::HashSet::new();
            for chunk in mentioned.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "SELECT username FROM users WHERE username IN ({})",
                    vec!["?"; chunk.len()].join(",")
                );
                let names: Vec<String> =
                    all_rows(&mut tx, &sql, params(chunk.iter().map(|n| Value::from(*n)).collect()))?;
                existing.extend(names);
            }
            for m in batch {
                for recipient in m.mentions.iter().filter(|r| existing.contains(*r)) {
                    notifications.push(Notification {
                        id: 0,
                        recipient: recipient.clone(),
                        kind: "mention".to_owned(),
                        sender: m.sender.clone(),
                        room_id: Some(m.room_id.clone()),
                        message: m.message.clone(),
                        created_at_ms: m.sent_at_ms,
                        read: false,
                    });
                }
            }
            let rows: Vec<Vec<Value>> = notifications
                .iter()
                .map(|n| {
                    vec![
                        n.recipient.as_str().into(),
                        n.kind.as_str().into(),
                        n.sender.as_str().into(),
                        n.room_id.as_deref().into(),
                        n.message.as_str().into(),
                        n.created_at_ms.into(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                let notification_ids = Self::insert_rows(&mut tx, ids, "notifications", &MENTION_COLUMNS, &rows)?;
                for (n, id) in notifications.iter_mut().zip(notification_ids) {
                    n.id = id;
                }
            }
        }
        tx.commit().map_err(map_err)?;
        Ok(CommittedChat {
            messages,
            notifications,
        })
    }

    fn chat_history(&mut self, room_id: &str, query: HistoryQuery) -> Result<Vec<ChatMessage>, StoreError> {
        let before = query.before.unwrap_or(i64::MAX);
        let limit = i64::from(query.limit);
        let rows: Vec<(i64, String, String, String, i64)> = match query.after {
            Some(after) => all_rows(
                &mut self.conn,
                "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                 WHERE room_id = ? AND id > ? AND id < ? ORDER BY id ASC LIMIT ?",
                params(vec![room_id.into(), after.into(), before.into(), limit.into()]),
            )?,
            // Newest first so LIMIT keeps the latest page; flipped to ascending below.
            None => all_rows(
                &mut self.conn,
                "SELECT id, room_id, sender, message, sent_at FROM chat_messages
                 WHERE room_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                params(vec![room_id.into(), before.into(), limit.into()]),
            )?,
        };
        let mut messages: Vec<ChatMessage> = rows.into_iter().map(chat).collect();
        if query.after.is_none() {
            messages.reverse();
        }
        Ok(messages)
    }

    fn create_notification(&mut self, n: &NewNotification) -> Result<Option<Notification>, StoreError> {
        // One statement checks the recipient and inserts, so there is no window between the two.
        let inserted = affected(
            &mut self.conn,
            "INSERT INTO notifications (recipient, type, sender, room_id, message, created_at)
             SELECT ?, ?, ?, ?, ?, ? FROM users WHERE username = ?",
            params(vec![
                n.recipient.as_str().into(),
                n.kind.as_str().into(),
                n.sender.as_str().into(),
                n.room_id.as_deref().into(),
                n.message.as_str().into(),
                n.created_at_ms.into(),
                n.recipient.as_str().into(),
            ]),
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = i64::try_from(self.conn.last_insert_id())
            .map_err(|_| StoreError::Other("notification id out of range".into()))?;
        Ok(Some(Notification {
            id,
            recipient: n.recipient.clone(),
            kind: n.kind.clone(),
            sender: n.sender.clone(),
            room_id: n.room_id.clone(),
            message: n.message.clone(),
            created_at_ms: n.created_at_ms,
            read: false,
        }))
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
        if changed > 0 {
            return Ok(true);
        }
        // Already read still counts as success for its recipient; keep the first read time.
        let row: Option<i64> = first_row(
            &mut self.conn,
            "SELECT 1 FROM notifications WHERE id = ? AND recipient = ?",
            params(vec![id.into(), recipient.into()]),
        )?;
        Ok(row.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A database created for one test and dropped when it ends.
    struct TestDb {
        admin: Conn,
        name: String,
        opts: Opts,
    }

    impl TestDb {
        /// A fresh database, or `None` (after a loud notice) when no server runs and CI is unset.
        fn create() -> Option<TestDb> {
            let url = std::env::var("HERALD_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
            let admin_opts = Opts::from_url(&url).expect("HERALD_TEST_MYSQL_URL must parse");
            let admin = OptsBuilder::from_opts(admin_opts.clone()).tcp_connect_timeout(Some(CONNECT_TIMEOUT));
            let mut admin = match Conn::new(admin) {
                Ok(c) => c,
                Err(e) => {
                    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                    assert!(
                        !ci,
                        "CI=true but MySQL at {} is unreachable: {e}",
                        super::super::url::redact(&url)
                    );
                    eprintln!(
                        "\n!!!!!!!! SKIPPING MySQL backend test: {} unreachable ({e}). \
                         Set HERALD_TEST_MYSQL_URL or start MariaDB. !!!!!!!!\n",
                        super::super::url::redact(&url)
                    );
                    return None;
                }
            };
            let name = format!(
                "herald_t_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            admin.query_drop(format!("DROP DATABASE IF EXISTS {name}")).unwrap();
            admin
                .query_drop(format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
                ))
                .unwrap();
            let opts = OptsBuilder::from_opts(admin_opts).db_name(Some(&name)).into();
            Some(TestDb { admin, name, opts })
        }

        fn open(&self, ids: Option<IdAllocation>) -> MysqlBackend {
            let mut backend = MysqlBackend::connect_opts(self.opts.clone())
                .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name));
            if let Some(ids) = ids {
                backend.ids = ids;
            }
            backend
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let _ = self.admin.query_drop(format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }

    fn conformance_with(ids: Option<IdAllocation>) {
        let Some(db) = TestDb::create() else { return };
        super::super::conformance::run_all(&|| Box::new(db.open(ids)));
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
    fn chunks_bound_rows_and_bytes() {
        let small = vec![vec![Value::from("x")]; 1203];
        let lens: Vec<usize> = insert_chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![500, 500, 203]);
        let big = vec![vec![Value::from("y".repeat(300_000))]; 7];
        let lens: Vec<usize> = insert_chunks(&big).iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![3, 3, 1]);
        let huge = vec![vec![Value::from("z".repeat(2 << 20))]; 2];
        assert_eq!(insert_chunks(&huge).len(), 2);
        assert!(insert_chunks(&[]).is_empty());
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
    fn verification_detects_ids_that_are_not_ours() {
        let Some(db) = TestDb::create() else { return };
        let mut b = db.open(None);
        b.migrate().unwrap();
        let rows: Vec<Vec<Value>> = (0..5)
            .map(|i| vec!["v-room".into(), "v".into(), format!("m{i}").into(), 7_i64.into()])
            .collect();
        let mut tx = b.conn.start_transaction(TxOpts::default()).unwrap();
        let ids = MysqlBackend::insert_rows(
            &mut tx,
            IdAllocation::Consecutive { step: 1 },
            "chat_messages",
            &CHAT_COLUMNS,
            &rows,
        )
        .unwrap();
        let check = |tx: &mut ::mysql::Transaction<'_>, ids: &[i64], rows: &[Vec<Value>]| {
            stored_as_expected(tx, "chat_messages", &CHAT_COLUMNS, rows, ids).unwrap()
        };
        assert!(check(&mut tx, &ids, &rows));
        let shifted: Vec<i64> = ids.iter().map(|id| id + 1).collect();
        assert!(!check(&mut tx, &shifted, &rows), "one id past the end");
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert!(!check(&mut tx, &ids, &swapped), "same rows, other order");
        tx.rollback().unwrap();
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
            super::super::conformance::time_commit(&mut b, label);
        }
    }
}
