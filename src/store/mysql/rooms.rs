//! The room statements in MySQL's dialect, on a connection or inside a transaction. Locking
//! reads take InnoDB row locks; no rule relies on gap locks (the sessions run at READ COMMITTED:
//! see `write_tx_opts`).

use ::mysql::prelude::Queryable;
use ::mysql::{Conn, Transaction, Value};

use super::errors::map_err;
use super::rows::{all_rows, chat, first_row, params, ChatRow};
use crate::store::backend::StoreError;
use crate::store::model::*;
use crate::store::rooms::{access_rows_sql, AccessReads, AccessRow, RoomListRow, RoomStatements, RowLock, RowState};

/// A statement runner that can say how many rows its last statement changed.
pub(super) trait Runner: Queryable {
    fn changed(&self) -> u64;
}

impl Runner for Conn {
    fn changed(&self) -> u64 {
        self.affected_rows()
    }
}

impl Runner for Transaction<'_> {
    fn changed(&self) -> u64 {
        self.affected_rows()
    }
}

/// Most names bound into one access read.
const NAMES_PER_STATEMENT: usize = 500;

/// The room statements over a connection or a transaction.
pub(super) struct MysqlRooms<'q, Q: Runner>(pub(super) &'q mut Q);

/// The clause a locking read ends with.
fn lock_clause(lock: RowLock) -> &'static str {
    match lock {
        RowLock::None => "",
        // MariaDB 10.11 has no `FOR SHARE`; MySQL 8 still accepts this older spelling.
        RowLock::Share => " LOCK IN SHARE MODE",
        RowLock::Update => " FOR UPDATE",
    }
}

/// A `rooms` row as `ROOM_COLUMNS` selects it.
type RoomRow = (String, Option<String>, bool, Option<String>, i64);

const ROOM_COLUMNS: &str = "room_id, name, is_private, owner, created_at";

fn room(row: RoomRow) -> Room {
    let (room_id, name, private, owner, created_at_ms) = row;
    Room {
        room_id,
        name,
        private,
        owner,
        created_at_ms,
    }
}

fn marks(count: usize) -> String {
    vec!["?"; count].join(",")
}

fn text(values: &[&str]) -> Vec<Value> {
    values.iter().map(|v| Value::from(*v)).collect()
}

impl<Q: Runner> MysqlRooms<'_, Q> {
    /// Runs a statement; how many rows it changed.
    fn run(&mut self, sql: &str, values: Vec<Value>) -> Result<u64, StoreError> {
        self.0.exec_drop(sql, params(values)).map_err(map_err)?;
        Ok(self.0.changed())
    }

    fn room_values(new: &NewRoom) -> Vec<Value> {
        vec![
            new.name.as_deref().into(),
            new.private.into(),
            new.owner.as_deref().into(),
            new.created_at_ms.into(),
        ]
    }
}

impl<Q: Runner> AccessReads for MysqlRooms<'_, Q> {
    fn access_rows(&mut self, room_ids: &[&str], pairs: &[(&str, &str)]) -> Result<Vec<AccessRow>, StoreError> {
        let mut names: Vec<&str> = pairs.iter().map(|(_, name)| *name).collect();
        names.sort_unstable();
        names.dedup();
        let mut rows = Vec::new();
        // One round trip, rooms × names (a superset of the pairs); more only past 500 names.
        for some in names
            .chunks(NAMES_PER_STATEMENT)
            .chain(names.is_empty().then_some(&[][..]))
        {
            // A plain read: the group commit holds these rooms' rows `FOR UPDATE` already, every
            // membership change holds its room's row too, and under READ COMMITTED the read sees
            // every change that committed before the lock was granted.
            let sql = access_rows_sql(room_ids.len(), some.len().max(1), "");
            let mut values: Vec<Value> = some.iter().map(|v| Value::from(*v)).collect();
            if some.is_empty() {
                values.push(Value::from(""));
            }
            values.extend(room_ids.iter().map(|v| Value::from(*v)));
            let found: Vec<AccessRow> = all_rows(self.0, &sql, params(values))?;
            rows.extend(found);
        }
        Ok(rows)
    }
}

impl<Q: Runner> RoomStatements for MysqlRooms<'_, Q> {
    fn room(&mut self, room_id: &str, lock: RowLock) -> Result<Option<Room>, StoreError> {
        let sql = format!(
            "SELECT {ROOM_COLUMNS} FROM rooms WHERE room_id = ? AND created_at IS NOT NULL{}",
            lock_clause(lock)
        );
        let row: Option<RoomRow> = first_row(self.0, &sql, params(vec![room_id.into()]))?;
        Ok(row.map(room))
    }

    fn lock_row(&mut self, room_id: &str) -> Result<Option<RowState>, StoreError> {
        let row: Option<(bool, i64)> = first_row(
            self.0,
            "SELECT created_at IS NOT NULL, last_message_id FROM rooms WHERE room_id = ? FOR UPDATE",
            params(vec![room_id.into()]),
        )?;
        Ok(row.map(|(created, last_message_id)| {
            if created {
                RowState::Created
            } else {
                RowState::Open { last_message_id }
            }
        }))
    }

    fn insert_room(&mut self, new: &NewRoom) -> Result<(), StoreError> {
        let mut values = vec![Value::from(new.room_id.as_str())];
        values.extend(Self::room_values(new));
        self.run(
            "INSERT INTO rooms (room_id, name, is_private, owner, created_at) VALUES (?, ?, ?, ?, ?)",
            values,
        )
        .map(drop)
    }

    fn claim_open_room(&mut self, new: &NewRoom) -> Result<bool, StoreError> {
        let mut values = Self::room_values(new);
        values.push(new.room_id.as_str().into());
        self.run(
            "UPDATE rooms SET name = ?, is_private = ?, owner = ?, created_at = ?
             WHERE room_id = ? AND created_at IS NULL",
            values,
        )
        .map(|n| n == 1)
    }

    fn has_messages(&mut self, room_id: &str) -> Result<bool, StoreError> {
        let row: Option<i64> = first_row(
            self.0,
            "SELECT 1 FROM chat_messages WHERE room_id = ? LIMIT 1",
            params(vec![room_id.into()]),
        )?;
        Ok(row.is_some())
    }

    fn members(&mut self, room_id: &str, lock: RowLock) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT username FROM room_members WHERE room_id = ? ORDER BY joined_at, username{}",
            lock_clause(lock)
        );
        all_rows(self.0, &sql, params(vec![room_id.into()]))
    }

    fn is_member(&mut self, room_id: &str, username: &str, lock: RowLock) -> Result<bool, StoreError> {
        let sql = format!(
            "SELECT 1 FROM room_members WHERE room_id = ? AND username = ?{}",
            lock_clause(lock)
        );
        let row: Option<i64> = first_row(self.0, &sql, params(text(&[room_id, username])))?;
        Ok(row.is_some())
    }

    fn member_count(&mut self, room_id: &str) -> Result<i64, StoreError> {
        let row: Option<i64> = first_row(
            self.0,
            "SELECT COUNT(*) FROM room_members WHERE room_id = ?",
            params(vec![room_id.into()]),
        )?;
        Ok(row.unwrap_or(0))
    }

    fn add_member(&mut self, room_id: &str, username: &str, joined_at_ms: i64) -> Result<bool, StoreError> {
        // Names and ids are validated to fit their columns before they get here, so IGNORE only
        // ever skips the duplicate.
        self.run(
            "INSERT IGNORE INTO room_members (room_id, username, joined_at) VALUES (?, ?, ?)",
            vec![room_id.into(), username.into(), joined_at_ms.into()],
        )
        .map(|n| n == 1)
    }

    fn delete_member(&mut self, room_id: &str, username: &str) -> Result<bool, StoreError> {
        self.run(
            "DELETE FROM room_members WHERE room_id = ? AND username = ?",
            text(&[room_id, username]),
        )
        .map(|n| n == 1)
    }

    fn set_owner(&mut self, room_id: &str, owner: Option<&str>) -> Result<(), StoreError> {
        self.run(
            "UPDATE rooms SET owner = ? WHERE room_id = ?",
            vec![owner.into(), room_id.into()],
        )
        .map(drop)
    }

    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError> {
        let row: Option<i64> = first_row(
            self.0,
            "SELECT 1 FROM users WHERE username = ?",
            params(vec![username.into()]),
        )?;
        Ok(row.is_some())
    }

    fn raise_read_mark(&mut self, room_id: &str, username: &str, last_read_id: i64) -> Result<i64, StoreError> {
        self.run(
            "INSERT INTO room_read_marks (room_id, username, last_read_id) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE last_read_id = GREATEST(last_read_id, VALUES(last_read_id))",
            vec![room_id.into(), username.into(), last_read_id.into()],
        )?;
        let mark: Option<i64> = first_row(
            self.0,
            "SELECT last_read_id FROM room_read_marks WHERE room_id = ? AND username = ?",
            params(text(&[room_id, username])),
        )?;
        Ok(mark.unwrap_or(last_read_id))
    }

    fn last_message_id(&mut self, room_id: &str) -> Result<Option<i64>, StoreError> {
        let row: Option<Option<i64>> = first_row(
            self.0,
            "SELECT MAX(id) FROM chat_messages WHERE room_id = ?",
            params(vec![room_id.into()]),
        )?;
        Ok(row.flatten())
    }

    fn count_after(&mut self, room_id: &str, after_id: i64, cap: i64) -> Result<i64, StoreError> {
        let row: Option<i64> = first_row(
            self.0,
            "SELECT COUNT(*) FROM (SELECT 1 FROM chat_messages WHERE room_id = ? AND id > ? LIMIT ?) AS page",
            params(vec![room_id.into(), after_id.into(), cap.into()]),
        )?;
        Ok(row.unwrap_or(0))
    }

    fn visible_rooms(&mut self, username: &str, query: &RoomQuery) -> Result<Vec<RoomListRow>, StoreError> {
        let cursor = if query.before.is_some() {
            "AND r.room_id < ?"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.room_id, r.name, r.is_private, r.owner, r.created_at,
                (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.room_id),
                (SELECT MAX(c.id) FROM chat_messages c WHERE c.room_id = r.room_id),
                COALESCE((SELECT k.last_read_id FROM room_read_marks k
                          WHERE k.room_id = r.room_id AND k.username = ?), 0)
             FROM rooms r
             WHERE r.created_at IS NOT NULL {cursor}
               AND (r.is_private = 0 OR EXISTS (SELECT 1 FROM room_members m2
                                               WHERE m2.room_id = r.room_id AND m2.username = ?))
             ORDER BY r.room_id DESC LIMIT ?"
        );
        let mut values = vec![Value::from(username)];
        if let Some(before) = &query.before {
            values.push(before.as_str().into());
        }
        values.push(username.into());
        values.push(i64::from(query.limit).into());
        type ListRow = (String, Option<String>, bool, Option<String>, i64, i64, Option<i64>, i64);
        let rows: Vec<ListRow> = all_rows(self.0, &sql, params(values))?;
        Ok(rows
            .into_iter()
            .map(|(id, name, private, owner, created, members, last, mark)| RoomListRow {
                room: room((id, name, private, owner, created)),
                member_count: members,
                last_message_id: last,
                read_mark: mark,
            })
            .collect())
    }

    fn messages_by_id(&mut self, ids: &[i64]) -> Result<Vec<ChatMessage>, StoreError> {
        let sql = format!(
            "SELECT id, room_id, sender, message, sent_at FROM chat_messages WHERE id IN ({})",
            marks(ids.len())
        );
        let values = ids.iter().map(|id| Value::from(*id)).collect();
        let rows: Vec<ChatRow> = all_rows(self.0, &sql, params(values))?;
        Ok(rows.into_iter().map(chat).collect())
    }
}
