//! The one boundary every store backend implements. Calls block: they run on worker threads only.

use super::model::*;

/// Why a store call failed; the variant says what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was hit (a username that is taken): answer 409.
    #[error("conflict")]
    Conflict,
    /// The store cannot be reached (connection refused, lost, timed out): answer 503, drop this
    /// connection and open a new one before the next call.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Any other failure: answer 500 and log it; the connection may be reused.
    #[error("store error: {0}")]
    Other(String),
}

/// A connection to one store (SQLite file or MySQL server), owned by one worker thread.
pub trait Backend: Send {
    /// Creates the tables and indexes if they do not exist; safe to run at every start.
    fn migrate(&mut self) -> Result<Migrated, StoreError>;
    /// A cheap round trip that fails with `Unavailable` when the store is down.
    fn ping(&mut self) -> Result<(), StoreError>;

    /// Inserts a user; `Conflict` when the username is taken.
    fn create_user(&mut self, username: &str, password_hash: &str, now_ms: i64) -> Result<User, StoreError>;
    fn user_credentials(&mut self, username: &str) -> Result<Option<UserCredentials>, StoreError>;
    fn user_by_id(&mut self, id: i64) -> Result<Option<User>, StoreError>;
    fn user_exists(&mut self, username: &str) -> Result<bool, StoreError>;

    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError>;
    /// Atomically marks a live token spent (revoked_at = now) and says what it was.
    fn spend_refresh_token(&mut self, token_hash: &str, now_ms: i64) -> Result<SpendOutcome, StoreError>;
    /// Revokes every token of the family that is not revoked yet.
    fn revoke_family(&mut self, family: &str, now_ms: i64) -> Result<(), StoreError>;
    /// The family of a token of this user, if any (for logout).
    fn refresh_token_family(&mut self, token_hash: &str, user_id: i64) -> Result<Option<String>, StoreError>;

    /// Stores many messages in one transaction (multi-row insert) with the mention notifications
    /// of those whose mentioned users exist. All or nothing. Each room's row in `rooms` is locked
    /// for the transaction (created when missing; in sorted order, so two batches never deadlock)
    /// and its `last_message_id` advanced, so ids ascend in commit order within a room whichever
    /// process commits; the same holds per recipient for the notifications (the recipient's user
    /// row is the lock). Every stored row comes with the id before it in its sequence.
    ///
    /// Under those locks it reads who may enter the batch's rooms (SPEC §8): `units` cuts the
    /// batch, in order, into its all-or-nothing parts by length (a SEND is a unit of one, a STOMP
    /// transaction's group is one unit), and a unit with a message whose sender may not enter its
    /// private room is refused whole (`CommittedChat::refused`; nothing of it is stored). A
    /// mention in a private room notifies members only.
    fn commit_chat_units(&mut self, batch: &[NewChatMessage], units: &[usize]) -> Result<CommittedChat, StoreError>;
    /// [`Backend::commit_chat_units`] with every message a unit of its own.
    fn commit_chat(&mut self, batch: &[NewChatMessage]) -> Result<CommittedChat, StoreError> {
        self.commit_chat_units(batch, &vec![1; batch.len()])
    }
    /// A page of a room's history, ascending by id.
    fn chat_history(&mut self, room_id: &str, query: HistoryQuery) -> Result<Vec<ChatMessage>, StoreError>;

    /// Stores a notification if its recipient exists, with the id of the recipient's previous
    /// notification (under the same per-recipient lock as [`Backend::commit_chat`]); `None` when
    /// there is no such user.
    fn create_notification(&mut self, n: &NewNotification) -> Result<Option<Linked<Notification>>, StoreError>;
    /// The id of the last message of `room` sent before `before_ms` (0 when none): where a node
    /// that starts listening to the room begins.
    fn room_start(&mut self, room: &str, before_ms: i64) -> Result<i64, StoreError>;
    /// The id of the last notification of `recipient` created before `before_ms` (0 when none).
    fn notification_start(&mut self, recipient: &str, before_ms: i64) -> Result<i64, StoreError>;
    /// The `last_message_id` of each of `rooms` that has a `rooms` row (any number of names).
    fn room_heads(&mut self, rooms: &[&str]) -> Result<Heads, StoreError>;
    /// The id of the latest notification of each of `recipients` that has one (any number of names).
    fn notification_heads(&mut self, recipients: &[&str]) -> Result<Heads, StoreError>;
    /// The recipient's notifications, newest first.
    fn list_notifications(
        &mut self,
        recipient: &str,
        query: NotificationQuery,
    ) -> Result<Vec<Notification>, StoreError>;
    /// The recipient's notifications with id > `after_id`, ascending, at most `limit`.
    fn notifications_after(
        &mut self,
        recipient: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
    /// Marks one notification read; false when it does not exist or belongs to someone else.
    fn mark_notification_read(&mut self, id: i64, recipient: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// What `username` may do with `room_id`: enter it (open, public, member) or not.
    /// [`AccessRead::Serialized`] waits for a room creation or membership change of the room
    /// that is in progress, so the answer never predates one already announced.
    fn room_access(&mut self, room_id: &str, username: &str, read: AccessRead) -> Result<RoomAccess, StoreError>;
    /// Creates a room with its first members. `Conflict` when a room with that id was created
    /// before, or when open-room messages exist under it. `before_commit` runs once everything
    /// is checked and written, while the transaction still holds the room: the caller announces
    /// there who may no longer listen, so that no message committed after the room became private
    /// can be published before that announcement.
    fn create_room(&mut self, room: &NewRoom, before_commit: &mut dyn FnMut()) -> Result<RoomDetail, StoreError>;
    /// The direct-message room `room` (members: the caller, then the other person): created
    /// once (`before_commit` as for [`Backend::create_room`]), found after that, with the caller
    /// back in it if they had left.
    fn open_direct_room(
        &mut self,
        room: &NewRoom,
        before_commit: &mut dyn FnMut(),
    ) -> Result<DirectOutcome, StoreError>;
    /// A created room with its members; `None` when there is none, or it is private and `viewer`
    /// is not a member.
    fn room_detail(&mut self, room_id: &str, viewer: &str) -> Result<Option<RoomDetail>, StoreError>;
    /// Adds `username` to a room owned by `inviter`, within `max_members`.
    fn invite_member(
        &mut self,
        room_id: &str,
        inviter: &str,
        username: &str,
        now_ms: i64,
        max_members: usize,
    ) -> Result<InviteOutcome, StoreError>;
    /// Removes `username` from a room on behalf of `by` (its owner, or the member themself).
    /// `before_commit` runs only when someone was removed, while the room is still held (see
    /// [`Backend::create_room`]).
    fn remove_member(
        &mut self,
        room_id: &str,
        by: &str,
        username: &str,
        before_commit: &mut dyn FnMut(),
    ) -> Result<RemoveOutcome, StoreError>;
    /// Raises `username`'s read mark in a room they may see (never lowers it, never past the
    /// room's newest message); `None` when they may not see the room.
    fn mark_room_read(
        &mut self,
        room_id: &str,
        username: &str,
        last_read_id: i64,
    ) -> Result<Option<ReadMark>, StoreError>;
    /// A page of the rooms `username` sees: created public rooms and the private rooms they are
    /// in, by id descending.
    fn list_rooms(&mut self, username: &str, query: &RoomQuery) -> Result<Vec<RoomSummary>, StoreError>;
}
