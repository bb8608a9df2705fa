//! Rooms and direct messages over REST (SPEC §8): create, list, show, invite, remove or leave,
//! mark read, open a direct-message room. A private room the caller is not in answers exactly
//! like one that does not exist (404), so its existence is never revealed.
//!
//! A removal, and the creation of a private room (or a direct-message room), withdraw access
//! from whoever listens without being a member: the store calls back before its commit, and
//! that is where the withdrawal is announced on the bus (`rooms::announce_withdrawal`).

use std::sync::Arc;

use serde::Deserialize;

use super::{authenticate, json_body, limit_param, run, store_error, Lane, Outcome};
use crate::auth::validate;
use crate::bus::{ConnRef, MembershipEvent};
use crate::clock::now_ms;
use crate::http::request::{percent_decode, Request};
use crate::http::response::{ApiError, Response};
use crate::rooms::{announce_withdrawal, direct_room_id};
use crate::shared::Shared;
use crate::store::model::{
    is_direct_room, DirectOutcome, InviteOutcome, NewRoom, RemoveOutcome, RoomQuery, DIRECT_ROOM_PREFIX,
};
use crate::store::StoreError;
use crate::text::Text;
use crate::views::{MembershipView, ReadMarkView, RoomDetailView, RoomSummaryView, RoomView};

/// Longest room name, in characters.
pub const ROOM_NAME_MAX: usize = 100;

/// A path segment, percent-decoded.
fn path_value(raw: &str, field: &str) -> Result<String, ApiError> {
    percent_decode(raw).ok_or_else(|| ApiError::InvalidRequest(Text::BadPercentEncoding.about(field)))
}

/// A room id from the path: 400 when it breaks the room id rule.
fn path_room(raw: &str) -> Result<String, ApiError> {
    let room = path_value(raw, "roomId")?;
    validate::room_id(&room).map_err(|e| ApiError::InvalidRequest(format!("roomId: {e}")))?;
    Ok(room)
}

/// A room name: 1–100 characters, not only whitespace.
fn room_name(name: &str) -> Result<(), ApiError> {
    let chars = name.chars().take(ROOM_NAME_MAX + 1).count();
    if name.chars().all(char::is_whitespace) || chars > ROOM_NAME_MAX {
        return Err(ApiError::InvalidRequest(Text::RoomNameRule.ko().to_owned()));
    }
    Ok(())
}

fn room_not_found() -> ApiError {
    ApiError::NotFound(Text::RoomNotFound)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateRoom {
    room_id: String,
    name: String,
    #[serde(default)]
    private: bool,
}

/// `POST /rooms`: the caller owns the new room and is its first member.
pub(super) fn create(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let body: CreateRoom = json_body(req)?;
    validate::room_id(&body.room_id).map_err(|e| ApiError::InvalidRequest(format!("roomId: {e}")))?;
    if is_direct_room(&body.room_id) {
        return Err(ApiError::InvalidRequest(Text::RoomIdReserved.ko().to_owned()));
    }
    room_name(&body.name)?;
    let new = NewRoom {
        room_id: body.room_id,
        name: Some(body.name),
        private: body.private,
        owner: Some(claims.sub.clone()),
        created_at_ms: now_ms(),
        members: vec![claims.sub],
    };
    run(shared, conn, Lane::General, move |worker, shared| {
        let restricted = MembershipEvent::Restricted {
            room: new.room_id.as_str().into(),
            members: new.members.iter().map(|m| m.as_str().into()).collect(),
        };
        let mut restricted = Some(restricted).filter(|_| new.private);
        let mut announce = || {
            if let Some(event) = restricted.take() {
                announce_withdrawal(&shared.bus, event);
            }
        };
        match worker.with(|db| db.create_room(&new, &mut announce)) {
            Ok(created) => Ok(Response::ok(201, Text::RoomCreated.ko(), RoomView::from(&created.room))),
            Err(StoreError::Conflict) => Err(ApiError::Conflict(Text::RoomExists)),
            Err(e) => Err(store_error(e)),
        }
    })
}

/// `GET /rooms?limit&before`: the public rooms and the caller's private rooms, by id descending.
pub(super) fn list(shared: &Arc<Shared>, conn: ConnRef, req: &Request) -> Outcome {
    let claims = authenticate(shared, req)?;
    let before = match req.query_param("before") {
        None => None,
        Some(b) => {
            validate::room_id(&b).map_err(|e| ApiError::InvalidRequest(format!("before: {e}")))?;
            Some(b)
        }
    };
    let query = RoomQuery {
        limit: limit_param(req)?,
        before,
    };
    run(shared, conn, Lane::General, move |worker, _| {
        let rooms = worker
            .with(|db| db.list_rooms(&claims.sub, &query))
            .map_err(store_error)?;
        let views: Vec<RoomSummaryView> = rooms.iter().map(RoomSummaryView::from).collect();
        Ok(Response::ok(200, Text::RoomsListed.ko(), views))
    })
}

/// `GET /rooms/{roomId}`: the room with its members.
pub(super) fn show(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let room = path_room(room)?;
    run(shared, conn, Lane::General, move |worker, _| {
        match worker
            .with(|db| db.room_detail(&room, &claims.sub))
            .map_err(store_error)?
        {
            Some(detail) => Ok(Response::ok(200, Text::RoomFound.ko(), RoomDetailView::from(&detail))),
            None => Err(room_not_found()),
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    username: String,
}

/// `POST /rooms/{roomId}/members`: the owner invites a user (201; 200 when already a member).
pub(super) fn invite(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let room = path_room(room)?;
    let body: Invite = json_body(req)?;
    if validate::username(&body.username).is_err() {
        return Err(ApiError::NotFound(Text::UserNotFound));
    }
    let max_members = shared.config.rooms.max_members;
    run(shared, conn, Lane::General, move |worker, _| {
        let outcome = worker
            .with(|db| db.invite_member(&room, &claims.sub, &body.username, now_ms(), max_members))
            .map_err(store_error)?;
        match outcome {
            InviteOutcome::Added(d) => Ok(Response::ok(201, Text::MemberInvited.ko(), RoomDetailView::from(&d))),
            InviteOutcome::AlreadyMember(d) => {
                Ok(Response::ok(200, Text::AlreadyMember.ko(), RoomDetailView::from(&d)))
            }
            InviteOutcome::RoomNotFound => Err(room_not_found()),
            InviteOutcome::NotOwner => Err(ApiError::Forbidden),
            InviteOutcome::UserNotFound => Err(ApiError::NotFound(Text::UserNotFound)),
            InviteOutcome::Full => Err(ApiError::Conflict(Text::RoomFull)),
        }
    })
}

/// `DELETE /rooms/{roomId}/members/{username}`: the owner removes a member, or a member leaves.
/// Their live subscriptions to the room end at once, on every reactor.
pub(super) fn remove(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str, user: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let room = path_room(room)?;
    let user = path_value(user, "username")?;
    if validate::username(&user).is_err() {
        return Err(ApiError::NotFound(Text::MemberNotFound));
    }
    run(shared, conn, Lane::General, move |worker, shared| {
        let revoked = MembershipEvent::Revoked {
            room: room.as_str().into(),
            user: user.as_str().into(),
        };
        let mut revoked = Some(revoked);
        let mut announce = || {
            if let Some(event) = revoked.take() {
                announce_withdrawal(&shared.bus, event);
            }
        };
        let outcome = worker
            .with(|db| db.remove_member(&room, &claims.sub, &user, &mut announce))
            .map_err(store_error)?;
        match outcome {
            RemoveOutcome::Removed => {
                let text = if user == claims.sub {
                    Text::RoomLeft
                } else {
                    Text::MemberRemoved
                };
                let view = MembershipView {
                    room_id: &room,
                    username: &user,
                };
                Ok(Response::ok(200, text.ko(), view))
            }
            RemoveOutcome::RoomNotFound => Err(room_not_found()),
            RemoveOutcome::NotAllowed => Err(ApiError::Forbidden),
            RemoveOutcome::NotMember => Err(ApiError::NotFound(Text::MemberNotFound)),
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MarkRead {
    last_read_id: i64,
}

/// `POST /rooms/{roomId}/read`: raises the caller's read mark (never lowers it).
pub(super) fn mark_read(shared: &Arc<Shared>, conn: ConnRef, req: &Request, room: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let room = path_room(room)?;
    let body: MarkRead = json_body(req)?;
    if body.last_read_id < 0 {
        return Err(ApiError::InvalidRequest(Text::NonNegativeInteger.about("lastReadId")));
    }
    run(shared, conn, Lane::General, move |worker, _| {
        match worker
            .with(|db| db.mark_room_read(&room, &claims.sub, body.last_read_id))
            .map_err(store_error)?
        {
            Some(mark) => Ok(Response::ok(
                200,
                Text::RoomMarkedRead.ko(),
                ReadMarkView::of(&room, &mark),
            )),
            None => Err(room_not_found()),
        }
    })
}

/// `POST /dm/{username}`: the private two-person room of the caller and that user, created once
/// (201), found after (200).
pub(super) fn direct(shared: &Arc<Shared>, conn: ConnRef, req: &Request, user: &str) -> Outcome {
    let claims = authenticate(shared, req)?;
    let other = path_value(user, "username")?;
    if other == claims.sub {
        return Err(ApiError::InvalidRequest(Text::DirectWithYourself.ko().to_owned()));
    }
    if validate::username(&other).is_err() {
        return Err(ApiError::NotFound(Text::UserNotFound));
    }
    let room_id = direct_room_id(&claims.sub, &other);
    debug_assert!(room_id.starts_with(DIRECT_ROOM_PREFIX));
    let new = NewRoom {
        room_id,
        name: None,
        private: true,
        owner: None,
        created_at_ms: now_ms(),
        members: vec![claims.sub, other],
    };
    run(shared, conn, Lane::General, move |worker, shared| {
        let restricted = MembershipEvent::Restricted {
            room: new.room_id.as_str().into(),
            members: new.members.iter().map(|m| m.as_str().into()).collect(),
        };
        let mut restricted = Some(restricted);
        let mut announce = || {
            if let Some(event) = restricted.take() {
                announce_withdrawal(&shared.bus, event);
            }
        };
        match worker
            .with(|db| db.open_direct_room(&new, &mut announce))
            .map_err(store_error)?
        {
            DirectOutcome::Created(d) => Ok(Response::ok(
                201,
                Text::DirectRoomCreated.ko(),
                RoomDetailView::from(&d),
            )),
            DirectOutcome::Existing(d) => Ok(Response::ok(200, Text::DirectRoomFound.ko(), RoomDetailView::from(&d))),
            DirectOutcome::UserNotFound => Err(ApiError::NotFound(Text::UserNotFound)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_1_to_100_characters_not_blank() {
        assert!(room_name("a").is_ok());
        assert!(room_name(&"가".repeat(100)).is_ok(), "characters, not bytes");
        assert!(room_name(&"가".repeat(101)).is_err());
        assert!(room_name("").is_err());
        assert!(room_name(" \t").is_err());
    }

    #[test]
    fn path_rooms_are_decoded_then_checked() {
        assert_eq!(path_room("team%2D1").ok().as_deref(), Some("team-1"));
        assert!(path_room("a%20b").is_err());
        assert!(path_room("%zz").is_err());
    }
}
