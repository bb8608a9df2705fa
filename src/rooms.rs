//! Who may enter a room (SPEC §8), outside the REST API: the store check a STOMP SUBSCRIBE to a
//! room waits for, the id of a direct-message room, and the announcement that ends the
//! subscriptions of those who may no longer listen.
//!
//! Where each path into a room is checked, and why no message can reach someone removed:
//!
//! - SUBSCRIBE: a worker reads the room and the membership with [`AccessRead::Serialized`]; the
//!   session waits for the answer (frames after it are held), and the reactor has already listed
//!   the pending subscription under the room, so an announcement made meanwhile reaches it.
//! - SEND: inside the chat group commit's transaction (`store::chat`), per batch, never per
//!   message; a refused message is answered `FORBIDDEN` and nothing of it is stored.
//! - history, the room list, mentions: read in the store with the same rules.
//! - a removal or a room becoming private is announced on the bus while its transaction still
//!   holds the room ([`announce_withdrawal`]), so it reaches every reactor before any message
//!   committed after it.

use sha2::{Digest, Sha256};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::bus::{Bus, ConnRef, MembershipEvent, ReactorMsg};
use crate::shared::Shared;
use crate::store::model::{AccessRead, DIRECT_ROOM_PREFIX};
use crate::store::pool::Busy;

/// Hex digits of the SHA-256 kept in a direct-message room id.
const DIRECT_ID_HEX_DIGITS: usize = 24;

/// The id of the direct-message room of two users: `dm-` and the first 24 lowercase hex digits
/// of SHA-256 over the two usernames sorted and joined by a newline; the same from both sides.
pub fn direct_room_id(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let digest = Sha256::digest(format!("{first}\n{second}").as_bytes());
    let mut id = String::with_capacity(DIRECT_ROOM_PREFIX.len() + DIRECT_ID_HEX_DIGITS);
    id.push_str(DIRECT_ROOM_PREFIX);
    for byte in digest.iter().take(DIRECT_ID_HEX_DIGITS / 2) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Asks the store, on a worker, whether `user` may subscribe to `room`; the answer goes back to
/// the session's reactor as [`ReactorMsg::RoomChecked`] (`allowed: None` when the store failed).
/// `Err` when the store is down or the queue is full: the caller answers at once.
pub fn check_subscription(shared: &Shared, conn: ConnRef, user: &str, room: &str) -> Result<(), Busy> {
    if !shared.pool.is_up() {
        return Err(Busy);
    }
    shared.metrics.room_subscribe_checks.fetch_add(1, Ordering::Relaxed);
    let bus = Arc::clone(&shared.bus);
    let (user, room) = (user.to_owned(), room.to_owned());
    shared.pool.submit(Box::new(move |worker| {
        let allowed = worker
            .with(|db| db.room_access(&room, &user, AccessRead::Serialized))
            .map(|access| access.allows())
            .ok();
        bus.send(
            conn.reactor,
            ReactorMsg::RoomChecked {
                token: conn.token,
                room: room.into(),
                allowed,
            },
        );
    }))
}

/// Publishes that access to a room is withdrawn. Called from a store transaction's
/// `before_commit`: the transaction still holds the room, so no message of the room can commit
/// (and be published) between this announcement and the change becoming durable; with Redis it
/// waits until Redis has taken the announcement (`Bus::announce`).
pub fn announce_withdrawal(bus: &Bus, event: MembershipEvent) {
    bus.announce(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_room_ids_are_symmetric_valid_room_ids() {
        let id = direct_room_id("alice", "bob");
        assert_eq!(id, direct_room_id("bob", "alice"));
        assert_eq!(id.len(), 3 + 24);
        assert!(id.starts_with("dm-"));
        assert!(id[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(crate::auth::validate::room_id(&id).is_ok());
        assert_ne!(id, direct_room_id("alice", "carol"));
        // python3 -c 'import hashlib; print(hashlib.sha256(b"alice\nbob").hexdigest()[:24])'
        assert_eq!(id, "dm-1cb15457d1ddab60e205c0fe");
    }
}
