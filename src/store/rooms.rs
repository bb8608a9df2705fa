//! The dialect-neutral rules of rooms and their members: who may enter a room, what creating a
//! room, inviting, removing, opening a direct-message room and marking read check and write.
//! Backends supply the statements ([`RoomStatements`]) and the transaction around them.
//!
//! Every change of who may enter a room runs in a transaction that holds the room's `rooms` row
//! (MySQL: a row lock — a room not created yet gets its row inserted, or its open row locked,
//! first; SQLite: the one writer lock), and the chat group commit locks the same rows before it
//! reads who may enter (`store::chat`). So a message and a membership change of one room are
//! ordered: the message commits before the change, or it is checked against the changed
//! membership.

use std::collections::{HashMap, HashSet};

use super::backend::StoreError;
use super::model::*;

/// How a read locks the rows it reads (MySQL; SQLite serializes writers with its writer lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// A consistent read, taking no lock.
    None,
    /// `LOCK IN SHARE MODE`: waits for a writer of these rows, and keeps writers out until commit.
    Share,
    /// `FOR UPDATE`: one writer at a time.
    Update,
}

/// What an id's `rooms` row says before a room is created under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowState {
    /// Created through the API already.
    Created,
    /// An open room's row, made by the chat path (`created_at` NULL), with its last message id
    /// (0: no message was ever stored under it).
    Open { last_message_id: i64 },
}

/// One row of a room list page: the room, its member count, its newest message id and the
/// reader's read mark.
pub(crate) struct RoomListRow {
    pub room: Room,
    pub member_count: i64,
    pub last_message_id: Option<i64>,
    pub read_mark: i64,
}

/// The statements the room rules need, run inside the caller's transaction (or on the bare
/// connection for reads).
pub(crate) trait RoomStatements {
    /// The room if it was created through the API (`created_at` set).
    fn room(&mut self, room_id: &str, lock: RowLock) -> Result<Option<Room>, StoreError>;
    /// The id's `rooms` row, locked for the rest of the transaction (MySQL: `FOR UPDATE`, whatever
    /// its `created_at`); `None` when it has none.
    fn lock_row(&mut self, room_id: &str) -> Result<Option<RowState>, StoreError>;
    /// Inserts the room's row; `Conflict` when the id has a row already.
    fn insert_room(&mut self, room: &NewRoom) -> Result<(), StoreError>;
    /// Turns an existing row of an open room (one the chat path created, `created_at` NULL) into
    /// this room; false when the row is a created room already.
    fn claim_open_room(&mut self, room: &NewRoom) -> Result<bool, StoreError>;
    /// Whether any message was ever stored under the room's id.
    fn has_messages(&mut self, room_id: &str) -> Result<bool, StoreError>;
    /// The members, in the order they joined.
    fn members(&mut self, room_id: &str, lock: RowLock) -> Result<Vec<String>, StoreError>;
    fn is_member(&mut self, room_id: &str, username: &str, lock: RowLock) -> Result<bool, StoreError>;
    fn member_count(&mut self, room_id: &str) -> Result<i64, StoreError>;
    /// Adds a member; false when they were one already.
    fn add_member(&mut self, room_id: &str, username: &str, joined_at_ms: i64) -> Result<bool, StoreError>;
    /// Removes a member; false when they were not one.
    fn delete_member(&mut self, room_id: &str, username: &str) -> Result<bool, StoreError>;
    fn set_owner(&mut self, room_id: &str, owner: Option<&str>) -> Result<(), StoreError>;
    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError>;
    /// Raises the user's read mark in the room to `last_read_id` (never lowers it); the mark now.
    fn raise_read_mark(&mut self, room_id: &str, username: &str, last_read_id: i64) -> Result<i64, StoreError>;
    /// The id of the room's newest message.
    fn last_message_id(&mut self, room_id: &str) -> Result<Option<i64>, StoreError>;
    /// How many of the room's messages have an id above `after_id`, counting at most `cap`.
    fn count_after(&mut self, room_id: &str, after_id: i64, cap: i64) -> Result<i64, StoreError>;
    /// A page of the rooms `username` sees (created public rooms and private ones they are in),
    /// by id descending.
    fn visible_rooms(&mut self, username: &str, query: &RoomQuery) -> Result<Vec<RoomListRow>, StoreError>;
    /// The messages with these ids.
    fn messages_by_id(&mut self, ids: &[i64]) -> Result<Vec<ChatMessage>, StoreError>;
}

/// What `username` may do with `room_id`, read with `lock`.
pub(crate) fn access(
    db: &mut impl RoomStatements,
    room_id: &str,
    username: &str,
    lock: RowLock,
) -> Result<RoomAccess, StoreError> {
    let Some(room) = db.room(room_id, lock)? else {
        // A direct-message id that was never opened is not an open room: anyone can compute
        // one, and an eavesdropper must not be able to listen before the two people talk.
        return Ok(if is_direct_room(room_id) {
            RoomAccess::Outsider
        } else {
            RoomAccess::Open
        });
    };
    if !room.private {
        return Ok(RoomAccess::Public);
    }
    Ok(if db.is_member(room_id, username, lock)? {
        RoomAccess::Member
    } else {
        RoomAccess::Outsider
    })
}

/// The created room `room_id` as `viewer` may see it: `None` when it was never created or is
/// private and `viewer` is not in it.
fn visible_room(
    db: &mut impl RoomStatements,
    room_id: &str,
    viewer: &str,
    lock: RowLock,
) -> Result<Option<Room>, StoreError> {
    let Some(room) = db.room(room_id, lock)? else {
        return Ok(None);
    };
    if room.private && !db.is_member(room_id, viewer, RowLock::None)? {
        return Ok(None);
    }
    Ok(Some(room))
}

fn detail(db: &mut impl RoomStatements, room: Room, lock: RowLock) -> Result<RoomDetail, StoreError> {
    let members = db.members(&room.room_id, lock)?;
    Ok(RoomDetail { room, members })
}

/// The room with its members, if `viewer` may see it.
pub(crate) fn room_detail(
    db: &mut impl RoomStatements,
    room_id: &str,
    viewer: &str,
) -> Result<Option<RoomDetail>, StoreError> {
    match visible_room(db, room_id, viewer, RowLock::None)? {
        Some(room) => detail(db, room, RowLock::None).map(Some),
        None => Ok(None),
    }
}

/// Writes a new room and its first members. The id's row is locked (or inserted) first, so that
/// from here on the chat path cannot commit to this id until the transaction ends, and two
/// creators of one id are served one after the other. An id with a created room is refused
/// (`Conflict`); so is one under which open-room messages exist: a busy open room is never hidden
/// after the fact. The row the chat path made for an open room without messages is claimed.
/// Direct-message ids skip the message check (they were never open).
pub(crate) fn create_room(db: &mut impl RoomStatements, new: &NewRoom) -> Result<RoomDetail, StoreError> {
    let direct = is_direct_room(&new.room_id);
    match db.lock_row(&new.room_id)? {
        Some(RowState::Created) => return Err(StoreError::Conflict),
        Some(RowState::Open { last_message_id }) if last_message_id > 0 && !direct => return Err(StoreError::Conflict),
        Some(RowState::Open { .. }) => {
            if !db.claim_open_room(new)? {
                return Err(StoreError::Conflict);
            }
        }
        // A racing creator (or a group commit making the open room's row) that inserted first
        // makes this a duplicate once it commits: `Conflict`.
        None => db.insert_room(new)?,
    }
    if !direct && db.has_messages(&new.room_id)? {
        return Err(StoreError::Conflict);
    }
    for member in &new.members {
        db.add_member(&new.room_id, member, new.created_at_ms)?;
    }
    Ok(RoomDetail {
        room: Room {
            room_id: new.room_id.clone(),
            name: new.name.clone(),
            private: new.private,
            owner: new.owner.clone(),
            created_at_ms: new.created_at_ms,
        },
        members: new.members.clone(),
    })
}

/// How often opening a direct-message room looks for it and tries to create it.
const DIRECT_ATTEMPTS: usize = 2;

/// The direct-message room `new` (members: the caller first, then the other person) as it
/// exists: created now, or found (with the caller back in it if they had left); `UserNotFound`
/// when the other person does not exist. Two people opening it at once both succeed: the
/// creation of the one who comes second conflicts, and it finds the room the first one made.
pub(crate) fn open_direct(db: &mut impl RoomStatements, new: &NewRoom) -> Result<DirectOutcome, StoreError> {
    let (Some(caller), Some(other)) = (new.members.first(), new.members.get(1)) else {
        return Err(StoreError::Other("a direct-message room needs two members".into()));
    };
    if !db.user_exists(other)? {
        return Ok(DirectOutcome::UserNotFound);
    }
    for _ in 0..DIRECT_ATTEMPTS {
        // A locking read: it waits for the other side's creation in progress and sees its commit.
        if let Some(room) = db.room(&new.room_id, RowLock::Share)? {
            db.add_member(&new.room_id, caller, new.created_at_ms)?;
            return detail(db, room, RowLock::Share).map(DirectOutcome::Existing);
        }
        match create_room(db, new) {
            Ok(created) => return Ok(DirectOutcome::Created(created)),
            // Created by the other side a moment ago: found on the next pass.
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Other(
        "direct-message room neither found nor created".into(),
    ))
}

/// Invites `username` into `room_id` on behalf of `inviter` (who must own it), within
/// `max_members`. The room's row is held for update, so two invitations cannot both take the
/// last place.
pub(crate) fn invite(
    db: &mut impl RoomStatements,
    room_id: &str,
    inviter: &str,
    username: &str,
    joined_at_ms: i64,
    max_members: usize,
) -> Result<InviteOutcome, StoreError> {
    let Some(room) = visible_room(db, room_id, inviter, RowLock::Update)? else {
        return Ok(InviteOutcome::RoomNotFound);
    };
    if room.owner.as_deref() != Some(inviter) {
        return Ok(InviteOutcome::NotOwner);
    }
    if !db.user_exists(username)? {
        return Ok(InviteOutcome::UserNotFound);
    }
    if db.is_member(room_id, username, RowLock::None)? {
        return detail(db, room, RowLock::None).map(InviteOutcome::AlreadyMember);
    }
    let count = usize::try_from(db.member_count(room_id)?).unwrap_or(usize::MAX);
    if count >= max_members {
        return Ok(InviteOutcome::Full);
    }
    db.add_member(room_id, username, joined_at_ms)?;
    detail(db, room, RowLock::None).map(InviteOutcome::Added)
}

/// Removes `username` from `room_id` on behalf of `by` (the owner, or the member themself). An
/// owner who leaves hands the room to the member who joined first after them (none left: no
/// owner). The caller announces the removal and commits only on `Removed`.
pub(crate) fn remove(
    db: &mut impl RoomStatements,
    room_id: &str,
    by: &str,
    username: &str,
) -> Result<RemoveOutcome, StoreError> {
    let Some(room) = visible_room(db, room_id, by, RowLock::Update)? else {
        return Ok(RemoveOutcome::RoomNotFound);
    };
    let owner = room.owner.as_deref();
    if owner != Some(by) && by != username {
        return Ok(RemoveOutcome::NotAllowed);
    }
    if !db.delete_member(room_id, username)? {
        return Ok(RemoveOutcome::NotMember);
    }
    if owner == Some(username) {
        let heir = db.members(room_id, RowLock::None)?.into_iter().next();
        db.set_owner(room_id, heir.as_deref())?;
    }
    Ok(RemoveOutcome::Removed)
}

/// Raises `username`'s read mark in a room they may see to `last_read_id`, at most the room's
/// newest message id; `None` when they may not see the room.
pub(crate) fn mark_read(
    db: &mut impl RoomStatements,
    room_id: &str,
    username: &str,
    last_read_id: i64,
) -> Result<Option<ReadMark>, StoreError> {
    if visible_room(db, room_id, username, RowLock::None)?.is_none() {
        return Ok(None);
    }
    let newest = db.last_message_id(room_id)?.unwrap_or(0);
    let mark = db.raise_read_mark(room_id, username, last_read_id.clamp(0, newest))?;
    let unread = db.count_after(room_id, mark, UNREAD_COUNT_CAP)?;
    Ok(Some(ReadMark {
        last_read_id: mark,
        unread,
    }))
}

/// A page of `username`'s room list, with each room's newest message and unread count.
pub(crate) fn list(
    db: &mut impl RoomStatements,
    username: &str,
    query: &RoomQuery,
) -> Result<Vec<RoomSummary>, StoreError> {
    let rows = db.visible_rooms(username, query)?;
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.last_message_id).collect();
    let newest = if ids.is_empty() {
        Vec::new()
    } else {
        db.messages_by_id(&ids)?
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let last_message = row
            .last_message_id
            .and_then(|id| newest.iter().find(|m| m.id == id).cloned());
        let unread = match row.last_message_id {
            Some(last) if last > row.read_mark => db.count_after(&row.room.room_id, row.read_mark, UNREAD_COUNT_CAP)?,
            _ => 0,
        };
        out.push(RoomSummary {
            room: row.room,
            member_count: row.member_count,
            last_message,
            unread,
        });
    }
    Ok(out)
}

/// The read of the chat group commit's authorization, inside its transaction and after it has
/// locked the rooms' rows.
pub(crate) trait AccessReads {
    /// The created rooms among `room_ids`, each with whether it is private and, for a private
    /// one, which of the users `pairs` name in it are members: one row per (room, member),
    /// `None` when none is. `pairs` are the batch's `(room_id, username)`, sorted, for these
    /// rooms only; a backend may read a superset of them.
    fn access_rows(&mut self, room_ids: &[&str], pairs: &[(&str, &str)]) -> Result<Vec<AccessRow>, StoreError>;
}

/// `(room_id, private, member)`: a row of [`AccessReads::access_rows`].
pub(crate) type AccessRow = (String, bool, Option<String>);

/// One statement for [`AccessReads::access_rows`] over a remote store: the rooms by primary key,
/// each private one joined with its members among the names (the names' placeholders come
/// first). It reads rooms × names, a superset of the pairs, in one round trip for open and
/// private rooms alike; the keys go in `IN` lists because MariaDB plans an OR of 250
/// `(room_id = ? AND username = ?)` pairs 25 times slower (64 ms against 2.5 ms for 100 rooms
/// × 10 names).
pub(crate) fn access_rows_sql(rooms: usize, names: usize, suffix: &str) -> String {
    format!(
        "SELECT r.room_id, r.is_private, m.username FROM rooms r
         LEFT JOIN room_members m
           ON r.is_private <> 0 AND m.room_id = r.room_id AND m.username IN ({})
         WHERE r.room_id IN ({}) AND r.created_at IS NOT NULL{suffix}",
        vec!["?"; names].join(","),
        vec!["?"; rooms].join(",")
    )
}

/// Which messages of a batch their senders may store, and which mentioned users may be told:
/// the group commit's authorization, read inside its transaction once the rooms are locked.
#[derive(Debug, Default)]
pub(crate) struct BatchAccess {
    /// Created rooms of the batch: id → private.
    rooms: HashMap<String, bool>,
    /// For each private room of the batch, the senders and mentioned users who are members.
    members: HashMap<String, HashSet<String>>,
}

impl BatchAccess {
    /// Reads what the batch needs: which of its rooms were created (and whether private), and
    /// for the private ones, which of the senders and mentioned users are members. The caller
    /// holds the rooms' rows already (`store::chat::group_commit`), so the read takes no lock.
    pub(crate) fn read(
        batch: &[NewChatMessage],
        db: &mut impl AccessReads,
        chunk: usize,
    ) -> Result<BatchAccess, StoreError> {
        let mut room_ids: Vec<&str> = batch.iter().map(|m| m.room_id.as_str()).collect();
        room_ids.sort_unstable();
        room_ids.dedup();
        let mut pairs: Vec<(&str, &str)> = batch
            .iter()
            .flat_map(|m| {
                std::iter::once(m.sender.as_str())
                    .chain(m.mentions.iter().map(String::as_str))
                    .map(move |name| (m.room_id.as_str(), name))
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut access = BatchAccess::default();
        // One read per batch (more only past `chunk` rooms), never one per message.
        for rooms in room_ids.chunks(chunk.max(1)) {
            let (Some(first), Some(last)) = (rooms.first(), rooms.last()) else {
                continue;
            };
            let from = pairs.partition_point(|(r, _)| r < first);
            let to = pairs.partition_point(|(r, _)| r <= last);
            for (room, private, member) in db.access_rows(rooms, &pairs[from..to])? {
                if let Some(name) = member {
                    access.members.entry(room.clone()).or_default().insert(name);
                }
                access.rooms.insert(room, private);
            }
        }
        Ok(access)
    }

    fn is_member(&self, room_id: &str, username: &str) -> bool {
        self.members.get(room_id).is_some_and(|m| m.contains(username))
    }

    /// Whether `username` may enter `room_id`.
    pub(crate) fn allows(&self, room_id: &str, username: &str) -> bool {
        match self.rooms.get(room_id) {
            None => !is_direct_room(room_id),
            Some(false) => true,
            Some(true) => self.is_member(room_id, username),
        }
    }

    /// Whether a mention of `username` in `room_id` may notify them: in a private room only a
    /// member hears of it.
    pub(crate) fn may_mention(&self, room_id: &str, username: &str) -> bool {
        match self.rooms.get(room_id) {
            Some(true) => self.is_member(room_id, username),
            _ => true,
        }
    }
}
