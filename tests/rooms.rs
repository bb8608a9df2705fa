//! Rooms and who may enter them (SPEC §8): creation, members, direct messages, read marks and the
//! room list over REST; authorization of SUBSCRIBE, SEND, history and mentions; removal taking
//! effect on live sessions; and the two races — removed while SENDs are in flight, SUBSCRIBE right
//! after being invited.

mod common;

use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::{Duration, Instant};

use common::http::Request;
use common::server::{Config, Server};
use common::stomp::{show, StompClient};
use common::tokens::{login, new_user};
use common::{run_on_each_backend, unique_room, Checks, IO_TIMEOUT};
use herald::stomp::frame::{self, Command, Frame};
use serde_json::{json, Value};

fn access(s: &Server, user: &str) -> String {
    let pass = match user {
        "testuser" => "testpass",
        "alice" => "alicepass",
        "bob" => "bobpass",
        other => panic!("no password for {other}"),
    };
    login(s, user, pass).access
}

fn topic(room: &str) -> String {
    format!("/topic/chat.{room}")
}

/// `POST /rooms`, whatever the answer.
fn create_room(s: &Server, token: &str, room: &str, name: &str, private: bool) -> common::http::Response {
    s.post_json(
        "/rooms",
        Some(token),
        &json!({ "roomId": room, "name": name, "private": private }),
    )
}

/// A private room owned by the holder of `token`.
#[track_caller]
fn private_room(s: &Server, token: &str, prefix: &str) -> String {
    let room = unique_room(prefix);
    create_room(s, token, &room, "비밀 방", true).data(201);
    room
}

fn invite(s: &Server, token: &str, room: &str, user: &str) -> common::http::Response {
    s.post_json(
        &format!("/rooms/{room}/members"),
        Some(token),
        &json!({ "username": user }),
    )
}

fn remove(s: &Server, token: &str, room: &str, user: &str) -> common::http::Response {
    s.request(&Request::new("DELETE", &format!("/rooms/{room}/members/{user}")).bearer(token))
}

fn mark_read(s: &Server, token: &str, room: &str, last_read_id: Value) -> common::http::Response {
    s.post_json(
        &format!("/rooms/{room}/read"),
        Some(token),
        &json!({ "lastReadId": last_read_id }),
    )
}

fn dm(s: &Server, token: &str, user: &str) -> common::http::Response {
    s.request(&Request::post(&format!("/dm/{user}")).bearer(token))
}

/// The error envelope's status and code.
#[track_caller]
fn expect_error(r: &common::http::Response, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    let v = r.json();
    assert_eq!(v["success"], false, "{what}: {v}");
    assert_eq!(v["code"], code, "{what}: {v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
}

#[track_caller]
fn history(s: &Server, token: &str, room: &str) -> Vec<Value> {
    let r = s.get(&format!("/chat/history/{room}?limit=500"), Some(token));
    assert_eq!(r.status, 200, "history of {room}: {}", r.text());
    match r.json() {
        Value::Array(list) => list,
        other => panic!("history is not a bare array: {other}"),
    }
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `GET /rooms{query}` as a list.
#[track_caller]
fn room_list(s: &Server, token: &str, query: &str) -> Vec<Value> {
    match s.get(&format!("/rooms{query}"), Some(token)).data(200) {
        Value::Array(list) => list,
        other => panic!("room list is not an array: {other}"),
    }
}

fn ids_of(rooms: &[Value]) -> Vec<String> {
    rooms
        .iter()
        .map(|r| r["roomId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The next MESSAGE on `/user/queue/errors` (other frames are skipped).
#[track_caller]
fn next_error(c: &mut StompClient, what: &str) -> Value {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(f) = c.next_frame_or_close(left) else {
            panic!("{what}: closed before an error arrived");
        };
        if f.command == Command::Message && f.header("destination") == Some("/user/queue/errors") {
            return serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("{what}: error body not JSON ({e})"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

#[test]
fn rooms_over_rest() {
    run_on_each_backend(
        "rooms_over_rest",
        &Config::new(),
        &[
            (
                "POST /rooms: 201, the creator owns it and is its first member",
                create_shape,
            ),
            ("POST /rooms: 400 on bad input, 401, 415", create_validation),
            (
                "POST /rooms: 409 for a created id and for a busy open room",
                create_conflicts,
            ),
            (
                "a private room is invisible to outsiders: 404, never 403",
                private_is_invisible,
            ),
            ("members: invite, re-invite, 403, 404", invitations),
            ("members: remove, leave, 403, 404, the owner hands over", removals),
            ("read marks: unread counts, never back, 404 for outsiders", read_marks),
            (
                "GET /rooms: members' and public rooms, last message, unread, paging",
                listing,
            ),
            (
                "POST /dm: created once, the same id from both sides, 404, 400",
                direct_messages,
            ),
        ],
    );
}

fn create_shape(s: &Server) {
    let alice = access(s, "alice");
    let room = unique_room("shape");
    let data = create_room(s, &alice, &room, "팀 채널 🎉", true).data(201);
    let mut keys: Vec<&str> = data
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "name", "owner", "private", "roomId"], "{data}");
    assert_eq!(data["roomId"], room.as_str());
    assert_eq!(data["name"], "팀 채널 🎉");
    assert_eq!(data["private"], true);
    assert_eq!(data["owner"], "alice");
    assert!(
        common::is_iso8601_millis(data["createdAt"].as_str().unwrap_or_default()),
        "{data}"
    );
    let detail = s.get(&format!("/rooms/{room}"), Some(&alice)).data(200);
    assert_eq!(detail["members"], json!(["alice"]));
    assert_eq!(detail["owner"], "alice");
    // `private` defaults to false: a public room.
    let public = unique_room("shape-pub");
    let data = s
        .post_json("/rooms", Some(&alice), &json!({ "roomId": public, "name": "lobby" }))
        .data(201);
    assert_eq!(data["private"], false);
    let bob = access(s, "bob");
    assert_eq!(
        s.get(&format!("/rooms/{public}"), Some(&bob)).data(200)["members"],
        json!(["alice"])
    );
}

fn create_validation(s: &Server) {
    let alice = access(s, "alice");
    let room = unique_room("valid");
    let mut checks = Checks::new();
    let bad: [(&str, Value); 10] = [
        ("empty name", json!({ "roomId": room, "name": "" })),
        ("blank name", json!({ "roomId": room, "name": "   " })),
        (
            "101-character name",
            json!({ "roomId": room, "name": "가".repeat(101) }),
        ),
        ("missing name", json!({ "roomId": room })),
        ("missing roomId", json!({ "name": "x" })),
        ("roomId with a space", json!({ "roomId": "a b", "name": "x" })),
        ("65-character roomId", json!({ "roomId": "r".repeat(65), "name": "x" })),
        ("reserved dm- prefix", json!({ "roomId": "dm-mine", "name": "x" })),
        (
            "private not a boolean",
            json!({ "roomId": room, "name": "x", "private": "yes" }),
        ),
        ("unknown field", json!({ "roomId": room, "name": "x", "owner": "bob" })),
    ];
    for (what, body) in bad {
        checks.check(what, || {
            expect_error(
                &s.post_json("/rooms", Some(&alice), &body),
                400,
                "INVALID_REQUEST",
                what,
            )
        });
    }
    checks.check("100 characters is fine", || {
        create_room(s, &alice, &room, &"가".repeat(100), false).data(201);
    });
    checks.check("64-character roomId is fine", || {
        let long = unique_room(&"l".repeat(50));
        let long = format!("{long}{}", "x".repeat(64 - long.len()));
        create_room(s, &alice, &long, "x", false).data(201);
    });
    checks.check("no token: 401", || {
        expect_error(
            &s.post_json("/rooms", None, &json!({ "roomId": "x", "name": "x" })),
            401,
            "UNAUTHORIZED",
            "no token",
        )
    });
    checks.check("not JSON: 415", || {
        let r = s.request(
            &Request::post("/rooms")
                .bearer(&alice)
                .body(Some("text/plain"), "roomId=x"),
        );
        expect_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain")
    });
    checks.finish();
}

fn create_conflicts(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let room = unique_room("twice");
    create_room(s, &alice, &room, "first", false).data(201);
    expect_error(
        &create_room(s, &bob, &room, "second", true),
        409,
        "CONFLICT",
        "created before",
    );
    expect_error(
        &create_room(s, &alice, &room, "again", false),
        409,
        "CONFLICT",
        "even by its owner",
    );

    // An open room with messages is never made private after the fact.
    let busy = unique_room("busy");
    let mut c = StompClient::connect(s, &bob);
    c.send_chat(&busy, "open talk", Some("m"));
    c.expect_receipt("m");
    expect_error(
        &create_room(s, &alice, &busy, "mine now", true),
        409,
        "CONFLICT",
        "busy open room",
    );
    assert_eq!(
        texts(&history(s, &alice, &busy)),
        ["open talk"],
        "still open to everyone"
    );
    expect_error(
        &s.get(&format!("/rooms/{busy}"), Some(&alice)),
        404,
        "NOT_FOUND",
        "an open room is not a created room",
    );
}

fn private_is_invisible(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let room = private_room(s, &alice, "hidden");
    let mut c = StompClient::connect(s, &alice);
    c.send_chat(&room, "secret", Some("m"));
    c.expect_receipt("m");
    assert_eq!(texts(&history(s, &alice, &room)), ["secret"]);
    let mut checks = Checks::new();
    checks.check("GET /rooms/{id}", || {
        expect_error(
            &s.get(&format!("/rooms/{room}"), Some(&bob)),
            404,
            "NOT_FOUND",
            "detail",
        )
    });
    checks.check("history", || {
        for query in ["", "?after=0", "?limit=1"] {
            let r = s.get(&format!("/chat/history/{room}{query}"), Some(&bob));
            expect_error(&r, 404, "NOT_FOUND", "history");
        }
    });
    checks.check("the same answer as a room that does not exist", || {
        let ghost = unique_room("ghost");
        let a = s.get(&format!("/rooms/{room}"), Some(&bob));
        let b = s.get(&format!("/rooms/{ghost}"), Some(&bob));
        assert_eq!((a.status, a.json()), (b.status, b.json()));
    });
    checks.check("invite, remove, read", || {
        expect_error(&invite(s, &bob, &room, "bob"), 404, "NOT_FOUND", "invite");
        expect_error(&remove(s, &bob, &room, "alice"), 404, "NOT_FOUND", "remove");
        expect_error(&mark_read(s, &bob, &room, json!(0)), 404, "NOT_FOUND", "read");
    });
    checks.check("the list", || {
        assert!(!ids_of(&room_list(s, &bob, "?limit=500")).contains(&room));
        assert!(ids_of(&room_list(s, &alice, "?limit=500")).contains(&room));
    });
    checks.check("an unopened direct-message id is not an open room", || {
        let r = s.get("/chat/history/dm-0123456789abcdef01234567", Some(&bob));
        expect_error(&r, 404, "NOT_FOUND", "dm history");
    });
    checks.finish();
}

fn invitations(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let (carol, carol_tokens) = new_user(s, "carol");
    let room = private_room(s, &alice, "inv");
    let data = invite(s, &alice, &room, "bob").data(201);
    assert_eq!(data["members"], json!(["alice", "bob"]));
    assert_eq!(data["roomId"], room.as_str());
    let again = invite(s, &alice, &room, "bob").data(200);
    assert_eq!(
        again["members"],
        json!(["alice", "bob"]),
        "inviting twice changes nothing"
    );
    expect_error(
        &invite(s, &bob, &room, &carol),
        403,
        "FORBIDDEN",
        "a member who is not the owner",
    );
    expect_error(
        &invite(s, &alice, &room, "nobody-here"),
        404,
        "NOT_FOUND",
        "unknown user",
    );
    expect_error(
        &invite(s, &alice, &room, "bad name!"),
        404,
        "NOT_FOUND",
        "impossible username",
    );
    expect_error(
        &invite(s, &alice, &unique_room("none"), "bob"),
        404,
        "NOT_FOUND",
        "no such room",
    );
    expect_error(
        &s.post_json(&format!("/rooms/{room}/members"), Some(&alice), &json!({})),
        400,
        "INVALID_REQUEST",
        "missing username",
    );
    // A public room's owner invites too; anyone else is refused.
    let public = unique_room("inv-pub");
    create_room(s, &alice, &public, "pub", false).data(201);
    expect_error(
        &invite(s, &carol_tokens.access, &public, "bob"),
        403,
        "FORBIDDEN",
        "public room, not owner",
    );
    invite(s, &alice, &public, &carol).data(201);
    assert_eq!(
        s.get(&format!("/rooms/{room}"), Some(&bob)).data(200)["members"],
        json!(["alice", "bob"])
    );
}

fn removals(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let (carol, carol_tokens) = new_user(s, "carol");
    let carol_token = carol_tokens.access;
    let room = private_room(s, &alice, "rem");
    invite(s, &alice, &room, "bob").data(201);
    invite(s, &alice, &room, &carol).data(201);
    expect_error(
        &remove(s, &bob, &room, &carol),
        403,
        "FORBIDDEN",
        "a member removing another",
    );
    expect_error(
        &remove(s, &bob, &room, "alice"),
        403,
        "FORBIDDEN",
        "a member removing the owner",
    );
    expect_error(&remove(s, &alice, &room, "testuser"), 404, "NOT_FOUND", "not a member");
    let data = remove(s, &alice, &room, &carol).data(200);
    assert_eq!(data, json!({ "roomId": room, "username": carol }));
    expect_error(
        &s.get(&format!("/rooms/{room}"), Some(&carol_token)),
        404,
        "NOT_FOUND",
        "removed",
    );
    // Leaving.
    remove(s, &bob, &room, "bob").data(200);
    expect_error(&s.get(&format!("/rooms/{room}"), Some(&bob)), 404, "NOT_FOUND", "left");
    // The owner leaving hands the room to the member who joined first after them.
    invite(s, &alice, &room, "bob").data(201);
    invite(s, &alice, &room, &carol).data(201);
    remove(s, &alice, &room, "alice").data(200);
    let detail = s.get(&format!("/rooms/{room}"), Some(&bob)).data(200);
    assert_eq!(detail["members"], json!(["bob", carol]));
    assert_eq!(detail["owner"], "bob");
    expect_error(
        &s.get(&format!("/rooms/{room}"), Some(&alice)),
        404,
        "NOT_FOUND",
        "the old owner",
    );
    invite(s, &bob, &room, "alice").data(201);
}

fn read_marks(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let room = private_room(s, &alice, "read");
    invite(s, &alice, &room, "bob").data(201);
    let mut c = StompClient::connect(s, &alice);
    for i in 0..4 {
        c.send_chat(&room, &format!("m{i}"), Some("m"));
        c.expect_receipt("m");
    }
    let ids: Vec<i64> = history(s, &alice, &room)
        .iter()
        .map(|m| m["id"].as_i64().unwrap_or(0))
        .collect();
    let data = mark_read(s, &bob, &room, json!(ids[1])).data(200);
    assert_eq!(data, json!({ "roomId": room, "lastReadId": ids[1], "unread": 2 }));
    let back = mark_read(s, &bob, &room, json!(ids[0])).data(200);
    assert_eq!(back["lastReadId"], ids[1], "never moves back: {back}");
    assert_eq!(back["unread"], 2);
    let past = mark_read(s, &bob, &room, json!(i64::MAX)).data(200);
    assert_eq!(
        (past["lastReadId"].as_i64(), past["unread"].as_i64()),
        (Some(ids[3]), Some(0))
    );
    expect_error(
        &mark_read(s, &bob, &room, json!(-1)),
        400,
        "INVALID_REQUEST",
        "negative",
    );
    expect_error(
        &mark_read(s, &bob, &room, json!("3")),
        400,
        "INVALID_REQUEST",
        "not a number",
    );
    expect_error(
        &mark_read(s, &bob, &unique_room("none"), json!(1)),
        404,
        "NOT_FOUND",
        "no such room",
    );
    // Anyone may mark a public room.
    let public = unique_room("read-pub");
    create_room(s, &alice, &public, "pub", false).data(201);
    assert_eq!(mark_read(s, &bob, &public, json!(0)).data(200)["unread"], 0);
}

fn listing(s: &Server) {
    let (owner, owner_tokens) = new_user(s, "lister");
    let owner_token = owner_tokens.access;
    let (_, stranger) = new_user(s, "stranger");
    let prefix = unique_room("zz-list");
    let private = format!("{prefix}-a");
    let public = format!("{prefix}-b");
    let empty = format!("{prefix}-c");
    create_room(s, &owner_token, &private, "private", true).data(201);
    create_room(s, &owner_token, &public, "public", false).data(201);
    create_room(s, &owner_token, &empty, "empty", false).data(201);
    invite(s, &owner_token, &private, "bob").data(201);
    let mut c = StompClient::connect(s, &owner_token);
    for (room, text) in [(&private, "p1"), (&private, "p2"), (&public, "q1")] {
        c.send_chat(room, text, Some("m"));
        c.expect_receipt("m");
    }
    let bob = access(s, "bob");
    let list = room_list(s, &bob, "?limit=500");
    let mine: Vec<&Value> = list
        .iter()
        .filter(|r| r["roomId"].as_str().is_some_and(|id| id.starts_with(&prefix)))
        .collect();
    let ids: Vec<&str> = mine.iter().filter_map(|r| r["roomId"].as_str()).collect();
    assert_eq!(
        ids,
        [empty.as_str(), public.as_str(), private.as_str()],
        "by id, descending"
    );
    let p = mine[2];
    assert_eq!(p["memberCount"], 2);
    assert_eq!(p["unread"], 2);
    assert_eq!(p["lastMessage"]["message"], "p2");
    assert_eq!(p["lastMessage"]["sender"], owner.as_str());
    assert_eq!(p["lastMessage"]["roomId"], private.as_str());
    assert_eq!(p["private"], true);
    assert_eq!(mine[0]["lastMessage"], Value::Null);
    assert_eq!(mine[0]["unread"], 0);
    let last_id = p["lastMessage"]["id"].clone();
    mark_read(s, &bob, &private, last_id).data(200);
    let after: Vec<Value> = room_list(s, &bob, "?limit=500")
        .into_iter()
        .filter(|r| r["roomId"] == private.as_str())
        .collect();
    assert_eq!(after[0]["unread"], 0, "read");

    let theirs = ids_of(&room_list(s, &stranger.access, "?limit=500"));
    assert!(theirs.contains(&public) && theirs.contains(&empty));
    assert!(!theirs.contains(&private), "a private room is not listed to outsiders");

    // Paging: `before` is the last roomId of the previous page.
    let page = room_list(s, &bob, &format!("?limit=1&before={empty}"));
    assert_eq!(ids_of(&page), std::slice::from_ref(&public));
    let page = room_list(s, &bob, &format!("?limit=2&before={public}"));
    assert_eq!(ids_of(&page)[0], private);
    let mut checks = Checks::new();
    for bad in ["?limit=0", "?limit=501", "?limit=x", "?before=a%20b", "?before="] {
        checks.check(bad, || {
            expect_error(&s.get(&format!("/rooms{bad}"), Some(&bob)), 400, "INVALID_REQUEST", bad)
        });
    }
    checks.check("no token", || {
        expect_error(&s.get("/rooms", None), 401, "UNAUTHORIZED", "no token")
    });
    checks.finish();
}

fn direct_messages(s: &Server) {
    let (carol, carol_tokens) = new_user(s, "carol");
    let (dave, dave_tokens) = new_user(s, "dave");
    let created = dm(s, &carol_tokens.access, &dave).data(201);
    let id = created["roomId"].as_str().unwrap_or_default().to_owned();
    let (a, b) = if carol < dave { (&carol, &dave) } else { (&dave, &carol) };
    let expected = {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{a}\n{b}").as_bytes());
        let hex: String = digest.iter().map(|x| format!("{x:02x}")).collect();
        format!("dm-{}", &hex[..24])
    };
    assert_eq!(id, expected, "dm- and 24 hex digits of SHA-256 over the sorted names");
    assert_eq!(created["private"], true);
    assert_eq!(created["members"], json!([carol, dave]));
    let again = dm(s, &dave_tokens.access, &carol).data(200);
    assert_eq!(again["roomId"], id.as_str(), "the same room from the other side");
    assert_eq!(dm(s, &carol_tokens.access, &dave).data(200)["roomId"], id.as_str());
    expect_error(&dm(s, &carol_tokens.access, &carol), 400, "INVALID_REQUEST", "yourself");
    expect_error(
        &dm(s, &carol_tokens.access, "nobody-here"),
        404,
        "NOT_FOUND",
        "unknown user",
    );
    expect_error(
        &dm(s, &carol_tokens.access, "bad!name"),
        404,
        "NOT_FOUND",
        "impossible name",
    );
    let bob = access(s, "bob");
    expect_error(
        &s.get(&format!("/rooms/{id}"), Some(&bob)),
        404,
        "NOT_FOUND",
        "a third person",
    );
    expect_error(
        &s.get(&format!("/chat/history/{id}"), Some(&bob)),
        404,
        "NOT_FOUND",
        "history",
    );
    // Nobody owns a direct room, so nobody can bring a third person in.
    expect_error(
        &invite(s, &carol_tokens.access, &id, "bob"),
        403,
        "FORBIDDEN",
        "invite into a DM",
    );
    // Leaving, then opening it again, brings the caller back.
    remove(s, &dave_tokens.access, &id, &dave).data(200);
    expect_error(
        &s.get(&format!("/rooms/{id}"), Some(&dave_tokens.access)),
        404,
        "NOT_FOUND",
        "left",
    );
    assert_eq!(
        dm(s, &dave_tokens.access, &carol).data(200)["members"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let listed = ids_of(&room_list(s, &carol_tokens.access, "?limit=500"));
    assert!(listed.contains(&id), "a DM is in both lists");
    expect_error(
        &s.request(&Request::get(&format!("/dm/{dave}")).bearer(&carol_tokens.access)),
        405,
        "METHOD_NOT_ALLOWED",
        "GET /dm",
    );
}

// ---------------------------------------------------------------------------------------------
// Bounds
// ---------------------------------------------------------------------------------------------

#[test]
fn room_member_bound() {
    run_on_each_backend(
        "room_member_bound",
        &Config::new().set("rooms", "max_members", 3),
        &[("rooms.max_members: the member after the last is 409", member_bound)],
    );
}

fn member_bound(s: &Server) {
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "full");
    invite(s, &alice, &room, "bob").data(201);
    invite(s, &alice, &room, "testuser").data(201);
    let (carol, _) = new_user(s, "carol");
    expect_error(&invite(s, &alice, &room, &carol), 409, "CONFLICT", "a fourth member");
    invite(s, &alice, &room, "bob").data(200);
    remove(s, &alice, &room, "testuser").data(200);
    invite(s, &alice, &room, &carol).data(201);
}

// ---------------------------------------------------------------------------------------------
// STOMP: authorization on every path into a room, and live removal
// ---------------------------------------------------------------------------------------------

#[test]
fn rooms_over_stomp() {
    run_on_each_backend(
        "rooms_over_stomp",
        &Config::new(),
        &[
            (
                "SUBSCRIBE by an outsider: ERROR forbidden, then close",
                subscribe_forbidden,
            ),
            (
                "SEND by an outsider: FORBIDDEN on /user/queue/errors, nothing stored",
                send_forbidden,
            ),
            (
                "members subscribe, send and receive; public rooms are open to all",
                members_talk,
            ),
            (
                "frames after a SUBSCRIBE are answered in order",
                frames_wait_for_the_check,
            ),
            (
                "SUBSCRIBE and SEND right after an invitation",
                subscribe_right_after_invite,
            ),
            ("removal ends every live subscription at once", removal_is_live),
            ("race: removed while SENDs are in flight", removal_races_sends),
            (
                "a room created private stops its open listeners",
                creation_stops_listeners,
            ),
            ("mentions in a private room notify members only", private_mentions),
            ("direct messages: only the two of them", direct_over_stomp),
            (
                "a transaction with a SEND to a private room it may not enter fails whole",
                group_with_a_forbidden_send,
            ),
        ],
    );
}

fn subscribe_forbidden(s: &Server) {
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "nosub");
    let mut checks = Checks::new();
    for (what, destination) in [
        ("private room", topic(&room)),
        ("unopened direct-message id", topic("dm-aaaaaaaaaaaaaaaaaaaaaaaa")),
    ] {
        checks.check(what, || {
            let mut bob = StompClient::connect(s, &access(s, "bob"));
            bob.send(
                &Frame::new(Command::Subscribe)
                    .with_header("id", "s")
                    .with_header("destination", destination.as_str())
                    .with_header("receipt", "r"),
            );
            let f = bob.expect_error_then_close(what);
            assert_eq!(f.header("message"), Some("forbidden"), "{what}: {}", show(&f));
        });
    }
    checks.finish();
    s.assert_healthy("forbidden SUBSCRIBEs");
}

fn send_forbidden(s: &Server) {
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "nosend");
    let mut watcher = StompClient::connect(s, &alice);
    watcher.subscribe("w", &topic(&room));
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    bob.subscribe("e", "/user/queue/errors");
    bob.send_chat(&room, "let me in", Some("b-1"));
    let v = next_error(&mut bob, "outsider SEND");
    assert_eq!(v["code"], "FORBIDDEN", "{v}");
    assert_eq!(v["receipt-id"], "b-1", "{v}");
    bob.expect_no_frame(Duration::from_millis(300), "no RECEIPT after FORBIDDEN");
    watcher.expect_no_frame(Duration::from_millis(300), "nothing broadcast");
    assert!(history(s, &alice, &room).is_empty(), "nothing stored");
    // The session stays usable: an open room still works.
    let open = unique_room("still-open");
    bob.send_chat(&open, "fine", Some("b-2"));
    bob.expect_receipt("b-2");
}

/// SPEC §4 and §8 together: a committed STOMP transaction is authorized like single SENDs, and
/// atomically: one SEND to a private room its sender is not in makes the whole group fail — one
/// FORBIDDEN per SEND, no RECEIPT (neither the SENDs' nor the COMMIT's), nothing stored or
/// broadcast, not even its SENDs to open rooms. The session goes on; a clean group commits.
fn group_with_a_forbidden_send(s: &Server) {
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "nogroup");
    let open = unique_room("group-open");
    let mut watcher = StompClient::connect(s, &alice);
    watcher.subscribe("w", &topic(&open));
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    bob.subscribe("e", "/user/queue/errors");
    let in_tx = |room: &str, text: &str, receipt: &str| {
        Frame::new(Command::Send)
            .with_header("destination", "/app/chat.send")
            .with_header("transaction", "t1")
            .with_header("receipt", receipt)
            .with_body(json!({"roomId": room, "message": text}).to_string().into_bytes())
    };
    bob.send(&Frame::new(Command::Begin).with_header("transaction", "t1"));
    bob.send(&in_tx(&open, "one", "g-1"));
    bob.send(&in_tx(&room, "two", "g-2"));
    bob.send(&in_tx(&open, "three", "g-3"));
    bob.send(
        &Frame::new(Command::Commit)
            .with_header("transaction", "t1")
            .with_header("receipt", "c-1"),
    );
    let mut refused = Vec::new();
    for _ in 0..3 {
        let v = next_error(&mut bob, "a SEND of the refused group");
        assert_eq!(v["code"], "FORBIDDEN", "{v}");
        refused.push(v["receipt-id"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(refused, ["g-1", "g-2", "g-3"], "one error per SEND, in order");
    bob.expect_no_frame(Duration::from_millis(300), "no RECEIPT for the group or its COMMIT");
    watcher.expect_no_frame(Duration::from_millis(300), "nothing of the group broadcast");
    assert!(history(s, &alice, &open).is_empty(), "nothing of the group stored");
    assert!(history(s, &alice, &room).is_empty());

    bob.send(&Frame::new(Command::Begin).with_header("transaction", "t2"));
    let clean = |text: &str, receipt: &str| {
        Frame::new(Command::Send)
            .with_header("destination", "/app/chat.send")
            .with_header("transaction", "t2")
            .with_header("receipt", receipt)
            .with_body(json!({"roomId": open, "message": text}).to_string().into_bytes())
    };
    bob.send(&clean("four", "g-4"));
    bob.send(&clean("five", "g-5"));
    bob.send(
        &Frame::new(Command::Commit)
            .with_header("transaction", "t2")
            .with_header("receipt", "c-2"),
    );
    for r in ["g-4", "g-5", "c-2"] {
        bob.expect_receipt(r);
    }
    assert_eq!(texts(&history(s, &alice, &open)), ["four", "five"]);
}

fn members_talk(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let room = private_room(s, &alice, "talk");
    invite(s, &alice, &room, "bob").data(201);
    let mut a = StompClient::connect(s, &alice);
    let mut b = StompClient::connect(s, &bob);
    a.subscribe("a", &topic(&room));
    b.subscribe("b", &topic(&room));
    b.send_chat(&room, "hello from bob", Some("r"));
    let (f, v) = a.recv_json_message();
    assert_eq!(f.header("subscription"), Some("a"));
    assert_eq!(
        (v["sender"].as_str(), v["message"].as_str()),
        (Some("bob"), Some("hello from bob"))
    );
    assert_eq!(texts(&history(s, &bob, &room)), ["hello from bob"]);
    // A public room is open to anyone signed in.
    let public = unique_room("talk-pub");
    create_room(s, &alice, &public, "pub", false).data(201);
    let (_, carol) = new_user(s, "carol");
    let mut c = StompClient::connect(s, &carol.access);
    c.subscribe("c", &topic(&public));
    c.send_chat(&public, "hi all", Some("c-1"));
    let mut got_receipt = false;
    let mut got_message = false;
    for _ in 0..2 {
        let f = c.recv(IO_TIMEOUT);
        match f.command {
            Command::Receipt => got_receipt = true,
            Command::Message => got_message = true,
            _ => panic!("unexpected {}", show(&f)),
        }
    }
    assert!(got_receipt && got_message);
}

fn frames_wait_for_the_check(s: &Server) {
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "order");
    let mut a = StompClient::connect(s, &alice);
    // SUBSCRIBE and a SEND in one WebSocket message: the SEND waits for the subscription.
    let mut bytes = Vec::new();
    frame::encode(
        &Frame::new(Command::Subscribe)
            .with_header("id", "s")
            .with_header("destination", topic(&room).as_str())
            .with_header("receipt", "sub"),
        &mut bytes,
    );
    let body = json!({ "roomId": room, "message": "right behind" }).to_string();
    frame::encode(
        &Frame::new(Command::Send)
            .with_header("destination", "/app/chat.send")
            .with_header("receipt", "send")
            .with_body(body.into_bytes()),
        &mut bytes,
    );
    a.send_text(&String::from_utf8(bytes).unwrap_or_default());
    let first = a.recv(IO_TIMEOUT);
    assert_eq!(first.command, Command::Receipt, "{}", show(&first));
    assert_eq!(first.header("receipt-id"), Some("sub"));
    let (f, v) = a.recv_json_message();
    assert_eq!(f.header("subscription"), Some("s"));
    assert_eq!(v["message"], "right behind");
    a.expect_receipt("send");
}

fn subscribe_right_after_invite(s: &Server) {
    let alice = access(s, "alice");
    let mut a = StompClient::connect(s, &alice);
    let mut b = StompClient::connect(s, &access(s, "bob"));
    for i in 0..8 {
        let room = private_room(s, &alice, "quick");
        invite(s, &alice, &room, "bob").data(201);
        let id = format!("q{i}");
        b.subscribe(&id, &topic(&room));
        let receipt = format!("b-{i}");
        b.send_chat(&room, &format!("bob {i}"), Some(&receipt));
        let mut got = (false, false);
        for _ in 0..2 {
            let f = b.recv(IO_TIMEOUT);
            match f.command {
                Command::Receipt => {
                    assert_eq!(f.header("receipt-id"), Some(receipt.as_str()));
                    got.0 = true;
                }
                Command::Message => {
                    assert_eq!(f.header("subscription"), Some(id.as_str()));
                    got.1 = true;
                }
                _ => panic!("round {i}: unexpected {}", show(&f)),
            }
        }
        assert_eq!(got, (true, true), "round {i}");
        a.send_chat(&room, "from alice", Some("a"));
        a.expect_receipt("a");
        let (_, v) = b.recv_json_message();
        assert_eq!(v["message"], "from alice", "round {i}");
    }
}

fn removal_is_live(s: &Server) {
    let alice = access(s, "alice");
    let bob = access(s, "bob");
    let room = private_room(s, &alice, "live");
    let other = private_room(s, &alice, "live-other");
    invite(s, &alice, &room, "bob").data(201);
    invite(s, &alice, &other, "bob").data(201);
    // Several sessions of bob, likely spread over both reactors.
    let mut sessions: Vec<StompClient> = (0..4)
        .map(|i| {
            let mut c = StompClient::connect(s, &bob);
            c.subscribe("e", "/user/queue/errors");
            c.subscribe(&format!("r{i}"), &topic(&room));
            c.subscribe("o", &topic(&other));
            c
        })
        .collect();
    let mut a = StompClient::connect(s, &alice);
    a.send_chat(&room, "before", Some("a-1"));
    a.expect_receipt("a-1");
    for c in &mut sessions {
        let (_, v) = c.recv_json_message();
        assert_eq!(v["message"], "before");
    }
    remove(s, &alice, &room, "bob").data(200);
    for (i, c) in sessions.iter_mut().enumerate() {
        let v = next_error(c, "removal notice");
        assert_eq!(v["code"], "FORBIDDEN", "session {i}: {v}");
        assert_eq!(v["roomId"], room.as_str(), "session {i}: {v}");
    }
    a.send_chat(&room, "after", Some("a-2"));
    a.expect_receipt("a-2");
    a.send_chat(&other, "elsewhere", Some("a-3"));
    a.expect_receipt("a-3");
    for (i, c) in sessions.iter_mut().enumerate() {
        let (f, v) = c.recv_json_message();
        assert_eq!(
            f.header("subscription"),
            Some("o"),
            "session {i}: only the other room: {}",
            show(&f)
        );
        assert_eq!(v["message"], "elsewhere");
        c.expect_no_frame(Duration::from_millis(200), "nothing from the room after the removal");
    }
    // Re-subscribing is refused like any outsider's.
    let c = &mut sessions[0];
    c.send(
        &Frame::new(Command::Subscribe)
            .with_header("id", "again")
            .with_header("destination", topic(&room).as_str()),
    );
    assert_eq!(
        c.expect_error_then_close("re-subscribe").header("message"),
        Some("forbidden")
    );
}

/// Bob sends a stream of receipted messages while alice removes him. Every SEND is answered
/// exactly once: RECEIPT (stored: it committed before the removal) or FORBIDDEN (nothing
/// stored). Nothing of bob's reaches the room after the removal was acknowledged: every stored
/// message of his has a lower id than the message alice sends once the DELETE returned, and
/// alice's subscription receives exactly those, in order, before hers.
fn removal_races_sends(s: &Server) {
    const SENDS: usize = 300;
    let alice = access(s, "alice");
    let room = private_room(s, &alice, "race");
    invite(s, &alice, &room, "bob").data(201);
    let mut a = StompClient::connect(s, &alice);
    a.subscribe("a", &topic(&room));
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    bob.subscribe("e", "/user/queue/errors");
    bob.subscribe("b", &topic(&room));

    let bob_room = room.clone();
    let bob_thread = thread::spawn(move || {
        for i in 0..SENDS {
            bob.send_chat(&bob_room, &format!("bob {i}"), Some(&format!("b-{i}")));
            if i % 5 == 4 {
                // Spread the SENDs over many group commits, so the removal lands among them.
                thread::sleep(Duration::from_millis(5));
            }
        }
        let mut answers: HashMap<String, &'static str> = HashMap::new();
        let mut notice = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        while answers.len() < SENDS || !notice {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {SENDS} answered, notice {notice}",
                answers.len()
            );
            let f = bob
                .next_frame_or_close(left)
                .unwrap_or_else(|| panic!("bob's session closed"));
            let answer = match (f.command, f.header("destination")) {
                (Command::Receipt, _) => f.header("receipt-id").map(|r| (r.to_owned(), "receipt")),
                (Command::Message, Some("/user/queue/errors")) => {
                    let v: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                    assert_eq!(v["code"], "FORBIDDEN", "{v}");
                    match v["receipt-id"].as_str() {
                        Some(r) => Some((r.to_owned(), "forbidden")),
                        None => {
                            assert_eq!(v["roomId"], bob_room.as_str(), "{v}");
                            notice = true;
                            None
                        }
                    }
                }
                (Command::Message, _) => None,
                _ => panic!("unexpected {}", show(&f)),
            };
            if let Some((receipt, kind)) = answer {
                assert!(
                    answers.insert(receipt.clone(), kind).is_none(),
                    "{receipt} answered twice"
                );
            }
        }
        (answers, bob)
    });

    // Remove bob once his messages are arriving (a few committed, most still to come).
    let started = Instant::now();
    while history(s, &alice, &room)
        .iter()
        .filter(|m| m["sender"] == "bob")
        .count()
        < 20
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "bob's messages never arrived"
        );
        thread::sleep(Duration::from_millis(5));
    }
    remove(s, &alice, &room, "bob").data(200);
    a.send_chat(&room, "marker", Some("marker"));

    // Alice's subscription: bob's stored messages, then the marker, then nothing of bob's.
    let mut seen: Vec<(i64, String)> = Vec::new();
    let mut marker_receipt = false;
    loop {
        let f = a.recv(Duration::from_secs(30));
        match f.command {
            Command::Receipt => marker_receipt = true,
            Command::Message => {
                let v: Value = serde_json::from_slice(&f.body).unwrap_or(Value::Null);
                let text = v["message"].as_str().unwrap_or_default().to_owned();
                seen.push((v["id"].as_i64().unwrap_or(-1), text.clone()));
                if text == "marker" {
                    break;
                }
            }
            _ => panic!("unexpected {}", show(&f)),
        }
    }
    if !marker_receipt {
        a.expect_receipt("marker");
    }
    a.expect_no_frame(Duration::from_millis(300), "nothing after the marker");

    let (answers, mut bob) = match bob_thread.join() {
        Ok(done) => done,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let stored = history(s, &alice, &room);
    let marker_id = stored
        .iter()
        .find(|m| m["message"] == "marker")
        .and_then(|m| m["id"].as_i64())
        .unwrap_or_else(|| panic!("the marker is stored"));
    let stored_bob: Vec<(i64, String)> = stored
        .iter()
        .filter(|m| m["sender"] == "bob")
        .map(|m| {
            (
                m["id"].as_i64().unwrap_or(-1),
                m["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let receipted: HashSet<String> = answers
        .iter()
        .filter(|(_, kind)| **kind == "receipt")
        .map(|(r, _)| format!("bob {}", r.trim_start_matches("b-")))
        .collect();
    let stored_texts: HashSet<String> = stored_bob.iter().map(|(_, t)| t.clone()).collect();
    eprintln!(
        "removal race [{}]: {} of {SENDS} SENDs committed before the removal, {} refused",
        s.label(),
        stored_bob.len(),
        SENDS - stored_bob.len()
    );
    assert_eq!(answers.len(), SENDS, "every SEND answered once");
    assert_eq!(receipted, stored_texts, "RECEIPT exactly for what is stored");
    assert!(
        stored_bob.iter().all(|(id, _)| *id < marker_id),
        "bob's messages all precede the marker"
    );
    let seen_bob: Vec<(i64, String)> = seen.iter().filter(|(id, _)| *id != marker_id).cloned().collect();
    assert_eq!(
        seen_bob, stored_bob,
        "alice received exactly bob's stored messages, in order, before the marker"
    );
    // Once removed, always refused.
    bob.send_chat(&room, "after", Some("late"));
    let v = next_error(&mut bob, "SEND after the removal");
    assert_eq!(
        (v["code"].as_str(), v["receipt-id"].as_str()),
        (Some("FORBIDDEN"), Some("late"))
    );
}

fn creation_stops_listeners(s: &Server) {
    let alice = access(s, "alice");
    let (_, carol) = new_user(s, "carol");
    let room = unique_room("becomes-private");
    let mut c = StompClient::connect(s, &carol.access);
    c.subscribe("e", "/user/queue/errors");
    c.subscribe("x", &topic(&room));
    let mut a = StompClient::connect(s, &alice);
    a.subscribe("a", &topic(&room));
    create_room(s, &alice, &room, "now private", true).data(201);
    let v = next_error(&mut c, "restriction notice");
    assert_eq!(
        (v["code"].as_str(), v["roomId"].as_str()),
        (Some("FORBIDDEN"), Some(room.as_str()))
    );
    a.expect_no_frame(Duration::from_millis(200), "the owner keeps listening, no notice");
    a.send_chat(&room, "members only", Some("a-1"));
    let mut got = 0;
    for _ in 0..2 {
        let f = a.recv(IO_TIMEOUT);
        assert!(matches!(f.command, Command::Receipt | Command::Message), "{}", show(&f));
        got += 1;
    }
    assert_eq!(got, 2);
    c.expect_no_frame(Duration::from_millis(300), "carol hears nothing");
    c.send_chat(&room, "still here?", Some("c-1"));
    assert_eq!(next_error(&mut c, "carol's SEND")["code"], "FORBIDDEN");
    assert_eq!(texts(&history(s, &alice, &room)), ["members only"]);
}

fn private_mentions(s: &Server) {
    let alice = access(s, "alice");
    let (carol, carol_tokens) = new_user(s, "carol");
    let (dave, dave_tokens) = new_user(s, "dave");
    let room = private_room(s, &alice, "mention");
    invite(s, &alice, &room, &carol).data(201);
    let mut a = StompClient::connect(s, &alice);
    a.send_chat(&room, &format!("hi @{carol} and @{dave}"), Some("m"));
    a.expect_receipt("m");
    let listed = |token: &str| -> Vec<Value> {
        match s.get("/notifications", Some(token)).data(200) {
            Value::Array(list) => list,
            other => panic!("not a list: {other}"),
        }
    };
    let carol_notes = listed(&carol_tokens.access);
    assert_eq!(carol_notes.len(), 1, "{carol_notes:?}");
    assert_eq!(carol_notes[0]["roomId"], room.as_str());
    assert!(
        listed(&dave_tokens.access).is_empty(),
        "dave is not a member: no notification"
    );
    // In an open room both are told, as before.
    let open = unique_room("mention-open");
    a.send_chat(&open, &format!("hi @{carol} and @{dave}"), Some("m2"));
    a.expect_receipt("m2");
    assert_eq!(listed(&dave_tokens.access).len(), 1);
}

fn direct_over_stomp(s: &Server) {
    let (carol, carol_tokens) = new_user(s, "carol");
    let (dave, dave_tokens) = new_user(s, "dave");
    let bob = access(s, "bob");
    let expected_id = {
        let (a, b) = if carol < dave { (&carol, &dave) } else { (&dave, &carol) };
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{a}\n{b}").as_bytes());
        let hex: String = digest.iter().map(|x| format!("{x:02x}")).collect();
        format!("dm-{}", &hex[..24])
    };
    // Bob computes the id and tries to listen before the two ever talked.
    let mut eavesdropper = StompClient::connect(s, &bob);
    eavesdropper.send(
        &Frame::new(Command::Subscribe)
            .with_header("id", "x")
            .with_header("destination", topic(&expected_id).as_str()),
    );
    eavesdropper.expect_error_then_close("eavesdropping on an unopened DM");
    let id = dm(s, &carol_tokens.access, &dave).data(201)["roomId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(id, expected_id);
    let mut c = StompClient::connect(s, &carol_tokens.access);
    let mut d = StompClient::connect(s, &dave_tokens.access);
    d.subscribe("d", &topic(&id));
    c.send_chat(&id, "just us", Some("c"));
    c.expect_receipt("c");
    let (_, v) = d.recv_json_message();
    assert_eq!(v["message"], "just us");
    let mut b = StompClient::connect(s, &bob);
    b.subscribe("e", "/user/queue/errors");
    b.send_chat(&id, "me too", Some("b"));
    assert_eq!(next_error(&mut b, "third person SEND")["code"], "FORBIDDEN");
    assert_eq!(texts(&history(s, &carol_tokens.access, &id)), ["just us"]);
}
