//! Plain values that cross the store boundary. Timestamps are milliseconds since the Unix epoch (UTC).

/// A registered user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
}

/// A user with the stored argon2id hash, for login only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
}

/// A refresh token to remember; `token_hash` is the hex SHA-256 of the JWT, never the JWT itself.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub user_id: i64,
    pub token_hash: String,
    pub family: String,
    pub expires_at_ms: i64,
}

/// What happened when a refresh token was presented for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOutcome {
    /// The token was live and is now spent; issue a new pair in the same family.
    Spent { user_id: i64, family: String },
    /// The token had already been spent or revoked: the caller revokes the whole family.
    Reused { family: String },
    /// The token is past its expiry (it is left as it is).
    Expired,
    /// No such token was ever issued by this store.
    Unknown,
}

/// A chat message accepted from a client, not yet stored.
#[derive(Debug, Clone)]
pub struct NewChatMessage {
    pub room_id: String,
    pub sender: String,
    pub message: String,
    pub sent_at_ms: i64,
    /// Usernames mentioned with `@name`, deduplicated, without the sender. Those that exist get a
    /// `mention` notification in the same transaction as the message.
    pub mentions: Vec<String>,
}

impl NewChatMessage {
    /// The message as stored under `id`.
    pub(crate) fn stored_as(&self, id: i64) -> ChatMessage {
        ChatMessage {
            id,
            room_id: self.room_id.clone(),
            sender: self.sender.clone(),
            message: self.message.clone(),
            sent_at_ms: self.sent_at_ms,
        }
    }
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: i64,
    pub room_id: String,
    pub sender: String,
    pub message: String,
    pub sent_at_ms: i64,
}

/// The result of one group commit: the stored messages in the order given and the mention
/// notifications created for them (ordered by id), each with the id of the row before it in its
/// sequence, so that a receiver can tell a gap from a reordering (SPEC §6); and the messages
/// refused because their sender may not enter their room.
#[derive(Debug, Clone, Default)]
pub struct CommittedChat {
    pub messages: Vec<ChatMessage>,
    /// For each message, the id of the message before it in its room (0 for a room's first).
    pub message_prev_ids: Vec<i64>,
    pub notifications: Vec<Notification>,
    /// Positions in the batch (ascending) of the messages that were not stored: their room is
    /// private and their sender is not a member.
    pub refused: Vec<usize>,
    /// For each notification, the id of its recipient's notification before it (0 for the first).
    pub notification_prev_ids: Vec<i64>,
}

/// A stored row with the id of the row before it in its sequence (a room's messages, a
/// recipient's notifications; 0 for the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked<T> {
    pub prev_id: i64,
    pub row: T,
}

/// The newest id of each named sequence that has one (a room's last message, a recipient's last
/// notification); a name without a row has none yet (its head is 0).
pub type Heads = Vec<(String, i64)>;

/// Which page of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    pub limit: u32,
    /// Only ids strictly below this.
    pub before: Option<i64>,
    /// Only ids strictly above this; when set, the page starts right after it (ascending).
    pub after: Option<i64>,
}

/// The kind of a notification: `mention` or `direct`.
pub type NotificationKind = &'static str;

/// A notification to store.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub recipient: String,
    pub kind: String,
    pub sender: String,
    pub room_id: Option<String>,
    pub message: String,
    pub created_at_ms: i64,
}

impl NewNotification {
    /// The notification as stored under `id`, unread.
    pub(crate) fn stored_as(&self, id: i64) -> Notification {
        Notification {
            id,
            recipient: self.recipient.clone(),
            kind: self.kind.clone(),
            sender: self.sender.clone(),
            room_id: self.room_id.clone(),
            message: self.message.clone(),
            created_at_ms: self.created_at_ms,
            read: false,
        }
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub recipient: String,
    pub kind: String,
    pub sender: String,
    pub room_id: Option<String>,
    pub message: String,
    pub created_at_ms: i64,
    pub read: bool,
}

/// Which page of a user's notifications to list (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationQuery {
    pub unread_only: bool,
    pub limit: u32,
    /// Only ids strictly below this.
    pub before: Option<i64>,
}

/// Room ids with this prefix are reserved for direct messages: such a room is never open, and
/// only `POST /dm/{username}` creates one.
pub const DIRECT_ROOM_PREFIX: &str = "dm-";

/// Whether `room_id` names a direct-message room.
pub fn is_direct_room(room_id: &str) -> bool {
    room_id.starts_with(DIRECT_ROOM_PREFIX)
}

/// A room to create through the API.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub room_id: String,
    pub name: Option<String>,
    pub private: bool,
    /// Who may invite and remove; `None` for a direct-message room (nobody may).
    pub owner: Option<String>,
    pub created_at_ms: i64,
    /// The first members, joined at `created_at_ms` (the owner, or the two people of a DM).
    pub members: Vec<String>,
}

/// A room created through the API. A room that was never created is *open*: it has no `Room`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub room_id: String,
    pub name: Option<String>,
    pub private: bool,
    pub owner: Option<String>,
    pub created_at_ms: i64,
}

/// A room with its members (usernames, in the order they joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomDetail {
    pub room: Room,
    pub members: Vec<String>,
}

/// A room as one user's room list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    pub room: Room,
    pub member_count: i64,
    /// The room's newest message, if any.
    pub last_message: Option<ChatMessage>,
    /// Messages after the user's read mark, counted up to [`UNREAD_COUNT_CAP`].
    pub unread: i64,
}

/// Unread counts stop here: counting is a scan of the room's index past the read mark, and a
/// client shows "999+" anyway.
pub const UNREAD_COUNT_CAP: i64 = 1000;

/// Which page of a user's room list to read: rooms by id, descending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomQuery {
    pub limit: u32,
    /// Only rooms whose id sorts strictly below this one.
    pub before: Option<String>,
}

/// What a user may do with a room: enter (subscribe, send, read) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAccess {
    /// Never created: everyone may enter, as the seed's `room-1`.
    Open,
    /// Created public: everyone may enter.
    Public,
    /// Created private, and the user is a member.
    Member,
    /// Created private (or a direct-message id never created) and the user is not a member:
    /// the room is not shown to them at all.
    Outsider,
}

impl RoomAccess {
    /// Whether the user may subscribe to, send to and read the room.
    pub fn allows(self) -> bool {
        self != RoomAccess::Outsider
    }
}

/// How an access check reads the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRead {
    /// The latest committed state, without waiting for anyone (history, REST reads).
    Snapshot,
    /// Waits for a membership change or room creation in progress to finish, so that the
    /// answer cannot predate a change already announced (a SUBSCRIBE's check).
    Serialized,
}

/// What became of an invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    /// The user joined; the room as it is now.
    Added(RoomDetail),
    /// The user was a member already.
    AlreadyMember(RoomDetail),
    /// No such room, or a private room the inviter is not in.
    RoomNotFound,
    /// The inviter is not the room's owner.
    NotOwner,
    /// No user of that name.
    UserNotFound,
    /// The room has `max_members` members already.
    Full,
}

/// What became of a removal (or of leaving).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The user is no longer a member.
    Removed,
    /// No such room, or a private room the caller is not in.
    RoomNotFound,
    /// The caller is neither the owner nor the member themself.
    NotAllowed,
    /// The user is not a member.
    NotMember,
}

/// What became of opening a direct-message room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectOutcome {
    /// The room was created now.
    Created(RoomDetail),
    /// The room existed (the caller is a member again if they had left).
    Existing(RoomDetail),
    /// The other user does not exist.
    UserNotFound,
}

/// A user's read mark in a room, and what is still unread after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub last_read_id: i64,
    pub unread: i64,
}

/// What a migration did: the schema version found, and the version the schema is at now (the
/// same when it was up to date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i64,
    pub to: i64,
}
