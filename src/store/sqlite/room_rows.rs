//! The rooms statements on SQLite (`store::rooms::RoomStatements`): rooms, members, read marks, the room list.

use super::*;

/// The room statements on a connection or inside a transaction. Row locks are not needed: every
/// write transaction is IMMEDIATE, so writers (the group commit included) run one at a time.
pub(super) struct SqliteRooms<'c>(pub(super) &'c Connection);

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
