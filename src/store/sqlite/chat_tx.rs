//! The chat group commit's transaction on SQLite: rooms and recipients locked, rows inserted, heads moved.

use super::*;

/// A group commit's IMMEDIATE transaction; dropped on any early return, it rolls the batch back.
pub(super) struct ChatTx<'c>(pub(super) rusqlite::Transaction<'c>);

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
        let heads = query_pairs(&self.0, &notification_heads_sql(users.len()), &users)?;
        Ok(recipients_with_heads(users, heads))
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
