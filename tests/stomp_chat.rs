//! STOMP 1.2 over WebSocket at `/ws/chat` (SPEC §4): sessions, publishing, fan-out order, history,
//! application errors, protocol violations, limits, heart-beats, token expiry, slow consumers.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::server::{Config, Server};
use common::stomp::{show, StompClient, StompEvent};
use common::tokens::{self, alg_none, claims_for, forge, login, now_secs, DEV_SECRET};
use common::{is_iso8601_millis, metric_value, run_on_each_backend, unique_room, Checks, IO_TIMEOUT};
use herald::stomp::frame::{Command, Frame};
use jsonwebtoken::Algorithm;
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

/// `GET /chat/history/{room}{query}` as a list of messages.
#[track_caller]
fn history(s: &Server, token: &str, room: &str, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/chat/history/{room}{query}"), Some(token));
    assert_eq!(r.status, 200, "history of {room}{query}: {}", r.text());
    match r.json() {
        Value::Array(list) => list,
        other => panic!("history is not a bare array: {other}"),
    }
}

fn ids(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| m["id"].as_i64().unwrap_or(-1)).collect()
}

/// Checks a room MESSAGE frame's headers; returns its JSON body.
#[track_caller]
fn check_room_message(f: &Frame, room: &str, subscription: &str) -> Value {
    assert_eq!(f.command, Command::Message, "expected MESSAGE, got {}", show(f));
    assert_eq!(f.header("destination"), Some(topic(room).as_str()), "{}", show(f));
    assert_eq!(f.header("subscription"), Some(subscription), "{}", show(f));
    assert!(
        f.header("message-id").is_some_and(|m| !m.is_empty()),
        "message-id: {}",
        show(f)
    );
    assert_eq!(f.header("content-type"), Some("application/json"), "{}", show(f));
    let length = f.header("content-length").map(|l| l.parse::<usize>());
    assert_eq!(length, Some(Ok(f.body.len())), "content-length: {}", show(f));
    serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("MESSAGE body is not JSON ({e}): {}", show(f)))
}

/// Checks the JSON shape of a chat message: exactly id, roomId, sender, message, sentAt.
#[track_caller]
fn check_chat_json(v: &Value, room: &str, sender: &str, message: &str) {
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["id", "message", "roomId", "sender", "sentAt"],
        "chat message fields: {v}"
    );
    assert!(v["id"].as_i64().is_some_and(|id| id > 0), "positive numeric id: {v}");
    assert_eq!(v["roomId"], room, "{v}");
    assert_eq!(v["sender"], sender, "{v}");
    assert_eq!(v["message"], message, "{v}");
    let sent_at = v["sentAt"].as_str().unwrap_or_default();
    assert!(
        is_iso8601_millis(sent_at),
        "sentAt {sent_at:?} is not like 2025-08-14T14:55:00.000Z"
    );
}

// ---------------------------------------------------------------------------------------------
// Sessions, publishing, errors, violations
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_sessions() {
    run_on_each_backend(
        "stomp_sessions",
        &Config::new(),
        &[
            (
                "CONNECT: subprotocol, CONNECTED headers, header variants",
                connect_handshake,
            ),
            (
                "CONNECT with a bad or missing token: ERROR then close",
                connect_rejections,
            ),
            (
                "SEND is committed, receipted and fanned out as MESSAGE",
                chat_round_trip,
            ),
            ("a RECEIPT means the message is in the history", receipt_means_durable),
            (
                "invalid SENDs go to /user/queue/errors, session stays open",
                invalid_sends,
            ),
            ("protocol violations: ERROR then close", protocol_violations),
            ("101st subscription: ERROR then close", subscription_limit),
            ("DISCONNECT with receipt: RECEIPT then close", disconnect_receipt),
            ("UNSUBSCRIBE stops delivery", unsubscribe_stops_delivery),
            ("@mention: live notification and GET /notifications", mentions),
            ("history: latest page, before, after, limit", history_paging),
        ],
    );
}

fn connect_handshake(s: &Server) {
    let token = access(s, "testuser");
    let bearer = format!("Bearer {token}");
    let (client, connected) = StompClient::connect_with(
        s,
        &[
            ("accept-version", "1.2"),
            ("host", "herald"),
            ("Authorization", &bearer),
            ("heart-beat", "0,0"),
        ],
    );
    assert_eq!(client.protocol.as_deref(), Some("v12.stomp"), "v12.stomp echoed");
    assert_eq!(connected.command, Command::Connected, "{}", show(&connected));
    assert_eq!(connected.header("version"), Some("1.2"), "{}", show(&connected));
    assert_eq!(connected.header("user-name"), Some("testuser"), "{}", show(&connected));
    let server = connected.header("server").unwrap_or_default();
    assert!(server.starts_with("herald/"), "server header {server:?}");
    let heart_beat = connected.header("heart-beat").unwrap_or_default();
    let parts: Vec<Option<u64>> = heart_beat.split(',').map(|p| p.trim().parse().ok()).collect();
    assert!(
        parts.len() == 2 && parts.iter().all(Option::is_some),
        "heart-beat header {heart_beat:?}"
    );

    // Other subprotocol offers, and none at all.
    let client = StompClient::open(s, Some("v10.stomp, v11.stomp"));
    let chosen = client.protocol.clone().unwrap_or_default();
    assert!(
        chosen == "v10.stomp" || chosen == "v11.stomp",
        "an offered subprotocol is chosen, got {chosen:?}"
    );
    let mut bare = StompClient::open(s, None);
    assert_eq!(bare.protocol, None, "no subprotocol offered, none chosen");
    bare.send(
        &Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("Authorization", &bearer),
    );
    assert_eq!(bare.recv_command(Command::Connected).header("version"), Some("1.2"));

    // Header name case, STOMP command, several accepted versions.
    for (command, name, versions) in [
        (Command::Connect, "authorization", "1.2"),
        (Command::Stomp, "Authorization", "1.0,1.1,1.2"),
        (Command::Connect, "AUTHORIZATION", "1.1,1.2"),
    ] {
        let mut c = StompClient::open(s, Some("v12.stomp"));
        c.send(
            &Frame::new(command)
                .with_header("accept-version", versions)
                .with_header("host", "herald")
                .with_header(name, &bearer),
        );
        let f = c.recv_command(Command::Connected);
        assert_eq!(f.header("version"), Some("1.2"), "{name} / {versions}: {}", show(&f));
        assert_eq!(f.header("user-name"), Some("testuser"));
        c.subscribe("s", &topic("handshake"));
    }
}

fn connect_rejections(s: &Server) {
    let pair = login(s, "alice", "alicepass");
    let uid = tokens::uid_of(&pair.access);
    let now = now_secs();
    let expired = forge(
        &claims_for("alice", uid, "access", now - 7200, now - 3600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    let other_key = forge(
        &claims_for("alice", uid, "access", now, now + 600),
        "another-secret-of-at-least-32-bytes!!",
        Algorithm::HS256,
    );
    let none = alg_none(&claims_for("alice", uid, "access", now, now + 600));
    let refresh = format!("Bearer {}", pair.refresh);
    let expired = format!("Bearer {expired}");
    let other_key = format!("Bearer {other_key}");
    let none = format!("Bearer {none}");
    let cases: [(&str, Option<&str>); 6] = [
        ("no Authorization header", None),
        ("garbage token", Some("Bearer not-a-token")),
        ("expired token", Some(expired.as_str())),
        ("refresh token", Some(refresh.as_str())),
        ("token signed with another key", Some(other_key.as_str())),
        ("alg none token", Some(none.as_str())),
    ];
    let mut checks = Checks::new();
    for (what, authorization) in cases {
        checks.check(what, || {
            let mut c = StompClient::open(s, Some("v12.stomp"));
            let mut connect = Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("host", "herald");
            if let Some(a) = authorization {
                connect = connect.with_header("Authorization", a);
            }
            c.send(&connect);
            c.expect_error_then_close(what);
        });
    }
    // Frames before CONNECT.
    for command in [Command::Send, Command::Subscribe] {
        let what = format!("{} before CONNECT", command.as_str());
        checks.check(&what, || {
            let mut c = StompClient::open(s, Some("v12.stomp"));
            c.send(
                &Frame::new(command)
                    .with_header("destination", "/app/chat.send")
                    .with_header("id", "1")
                    .with_body(br#"{"roomId":"r","message":"m"}"#.to_vec()),
            );
            c.expect_error_then_close(&what);
        });
    }
    checks.finish();
    s.assert_healthy("rejected STOMP sessions");
}

fn chat_round_trip(s: &Server) {
    let room = unique_room("round");
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    alice.subscribe("a-sub", &topic(&room));
    bob.subscribe("b-sub", &topic(&room));
    let text = "안녕 👋 \"quoted\" back\\slash\nsecond line: @ and % and \u{0007}";
    let body = json!({ "roomId": room, "message": text, "sender": "mallory" }).to_string();
    alice.send_chat_body(&body, Some("r-1"));
    // Alice gets her RECEIPT and her own MESSAGE, in either order.
    let mut receipt = None;
    let mut own = None;
    for _ in 0..2 {
        let f = alice.recv(IO_TIMEOUT);
        match f.command {
            Command::Receipt => receipt = Some(f),
            Command::Message => own = Some(f),
            _ => panic!("unexpected frame for the sender: {}", show(&f)),
        }
    }
    let receipt = receipt.unwrap_or_else(|| panic!("no RECEIPT"));
    assert_eq!(receipt.header("receipt-id"), Some("r-1"));
    let own = check_room_message(
        &own.unwrap_or_else(|| panic!("no MESSAGE for the sender")),
        &room,
        "a-sub",
    );
    check_chat_json(&own, &room, "alice", text);
    let theirs = check_room_message(&bob.recv(IO_TIMEOUT), &room, "b-sub");
    assert_eq!(theirs, own, "every subscriber gets the same message");
    let stored = history(s, &access(s, "bob"), &room, "");
    assert_eq!(
        stored,
        vec![own.clone()],
        "the history holds exactly the message as broadcast"
    );
    // Another sender in the same room, another subscription id on the same session.
    bob.subscribe("b-sub-2", &topic(&room));
    bob.send_chat(&room, "from bob", Some("r-2"));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let f = bob.recv(IO_TIMEOUT);
        match f.command {
            Command::Receipt => assert_eq!(f.header("receipt-id"), Some("r-2")),
            Command::Message => seen.push(f.header("subscription").unwrap_or_default().to_string()),
            _ => panic!("unexpected {}", show(&f)),
        }
    }
    seen.sort();
    assert_eq!(seen, ["b-sub", "b-sub-2"], "one MESSAGE per subscription");
    let (f, v) = alice.recv_json_message();
    assert_eq!(f.header("subscription"), Some("a-sub"));
    check_chat_json(&v, &room, "bob", "from bob");
    assert!(v["id"].as_i64() > own["id"].as_i64(), "ids ascend: {v} after {own}");
}

fn receipt_means_durable(s: &Server) {
    let room = unique_room("durable");
    let token = access(s, "alice");
    let mut alice = StompClient::connect(s, &token);
    for i in 0..5 {
        let text = format!("durable {i}");
        let receipt = format!("d-{i}");
        alice.send_chat(&room, &text, Some(&receipt));
        alice.expect_receipt(&receipt);
        let stored = history(s, &token, &room, "");
        assert_eq!(
            stored.last().map(|m| m["message"].clone()),
            Some(json!(text)),
            "message {i} is stored once its RECEIPT is out"
        );
        assert_eq!(stored.len(), i + 1);
    }
}

fn invalid_sends(s: &Server) {
    let room = unique_room("invalid");
    let token = access(s, "alice");
    let mut alice = StompClient::connect(s, &token);
    alice.subscribe("errs", "/user/queue/errors");
    let long_room = "r".repeat(65);
    let too_long = "x".repeat(2001);
    let bodies = [
        ("not JSON", "this is not json".to_string()),
        ("empty body", String::new()),
        ("empty message", json!({ "roomId": room, "message": "" }).to_string()),
        (
            "2001 characters",
            json!({ "roomId": room, "message": too_long }).to_string(),
        ),
        (
            "roomId with a space",
            json!({ "roomId": "bad room", "message": "x" }).to_string(),
        ),
        (
            "65-character roomId",
            json!({ "roomId": long_room, "message": "x" }).to_string(),
        ),
        ("missing roomId", json!({ "message": "x" }).to_string()),
        ("missing message", json!({ "roomId": room }).to_string()),
        (
            "message not a string",
            json!({ "roomId": room, "message": 5 }).to_string(),
        ),
    ];
    for (i, (what, body)) in bodies.iter().enumerate() {
        let receipt = format!("bad-{i}");
        alice.send_chat_body(body, Some(&receipt));
        let (f, v) = alice.recv_json_message();
        assert_eq!(
            f.header("destination"),
            Some("/user/queue/errors"),
            "{what}: {}",
            show(&f)
        );
        assert_eq!(f.header("subscription"), Some("errs"), "{what}: {}", show(&f));
        assert_eq!(v["code"], "INVALID_REQUEST", "{what}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
        assert_eq!(v["receipt-id"], receipt.as_str(), "{what}: {v}");
    }
    // Boundaries are fine: 2000 characters, also when they are 3-byte characters.
    let max_ascii = "x".repeat(2000);
    let max_korean = "한".repeat(2000);
    alice.send_chat(&room, &max_ascii, Some("ok-1"));
    alice.expect_receipt("ok-1");
    alice.send_chat(&room, &max_korean, Some("ok-2"));
    alice.expect_receipt("ok-2");
    // No RECEIPT was owed for the invalid ones and nothing of them was stored.
    let stored = history(s, &token, &room, "");
    let texts: Vec<&str> = stored
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        texts,
        [max_ascii.as_str(), max_korean.as_str()],
        "only the valid messages are stored"
    );
    alice.expect_no_frame(Duration::from_millis(300), "after the valid sends");
}

/// Opens a CONNECTed session, lets `violate` misbehave, and expects ERROR then close.
fn expect_violation(checks: &mut Checks, s: &Server, token: &str, what: &str, violate: impl FnOnce(&mut StompClient)) {
    checks.check(what, || {
        let mut c = StompClient::connect(s, token);
        violate(&mut c);
        c.expect_error_then_close(what);
    });
}

fn protocol_violations(s: &Server) {
    let token = access(s, "alice");
    let mut checks = Checks::new();
    let c = &mut checks;
    expect_violation(c, s, &token, "short binary garbage", |c| {
        c.send_binary(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0x00])
    });
    expect_violation(c, s, &token, "binary garbage with a newline", |c| {
        let garbage: Vec<u8> = (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(0x80))
            .chain(*b"\n\n\0")
            .collect();
        c.send_binary(&garbage)
    });
    expect_violation(c, s, &token, "text garbage", |c| {
        c.send_text("{\"roomId\":\"r\",\"message\":\"m\"}\0")
    });
    expect_violation(c, s, &token, "unknown command", |c| c.send_text("HELLO\nfoo:bar\n\n\0"));
    expect_violation(c, s, &token, "lowercase command", |c| {
        c.send_text("send\ndestination:/app/chat.send\n\n{}\0")
    });
    expect_violation(c, s, &token, "bad header escape \\t", |c| {
        c.send_text("SEND\ndestination:/app/chat.send\nx-note:a\\tb\n\n{\"roomId\":\"r\",\"message\":\"m\"}\0")
    });
    expect_violation(c, s, &token, "header line without colon", |c| {
        c.send_text("SUBSCRIBE\nid 1\ndestination:/topic/chat.r\n\n\0")
    });
    expect_violation(c, s, &token, "content-length not a number", |c| {
        c.send_text("SEND\ndestination:/app/chat.send\ncontent-length:abc\n\n{}\0")
    });
    expect_violation(c, s, &token, "frame over 64 KiB", |c| {
        let body = json!({ "roomId": "big", "message": "x".repeat(70_000) }).to_string();
        c.send_chat_body(&body, Some("big"));
    });
    expect_violation(c, s, &token, "SEND to a topic", |c| {
        c.send(
            &Frame::new(Command::Send)
                .with_header("destination", "/topic/chat.room-1")
                .with_body(br#"{"roomId":"room-1","message":"direct"}"#.to_vec()),
        )
    });
    expect_violation(c, s, &token, "SEND without destination", |c| {
        c.send(&Frame::new(Command::Send).with_body(br#"{"roomId":"room-1","message":"m"}"#.to_vec()))
    });
    for destination in [
        "/topic/other",
        "/queue/chat.room-1",
        "/topic/chat.bad room",
        "/user/queue/other",
        "/app/chat.send",
    ] {
        expect_violation(c, s, &token, &format!("SUBSCRIBE {destination}"), |c| {
            c.send(
                &Frame::new(Command::Subscribe)
                    .with_header("id", "1")
                    .with_header("destination", destination),
            )
        });
    }
    let bearer = format!("Bearer {token}");
    expect_violation(c, s, &token, "a second CONNECT", |c| {
        c.send(
            &Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("Authorization", &bearer),
        )
    });
    // None of that hurt the server or other sessions.
    checks.check("afterwards", || {
        s.assert_healthy("STOMP protocol violations");
        let mut c = StompClient::connect(s, &token);
        c.subscribe("after", &topic("after-violations"));
    });
    checks.finish();
}

fn subscription_limit(s: &Server) {
    let token = access(s, "alice");
    let mut c = StompClient::connect(s, &token);
    for i in 0..99 {
        c.send(
            &Frame::new(Command::Subscribe)
                .with_header("id", format!("s{i}"))
                .with_header("destination", topic(&format!("limit-{i}"))),
        );
    }
    // The 100th is still fine (and its receipt proves the 99 before it were too).
    c.subscribe("s99", &topic("limit-99"));
    c.send(
        &Frame::new(Command::Subscribe)
            .with_header("id", "s100")
            .with_header("destination", "/user/queue/errors")
            .with_header("receipt", "too-many"),
    );
    c.expect_error_then_close("101st subscription");
}

fn disconnect_receipt(s: &Server) {
    let mut c = StompClient::connect(s, &access(s, "bob"));
    c.subscribe("x", &topic("disconnect"));
    c.send(&Frame::new(Command::Disconnect).with_header("receipt", "bye"));
    c.expect_receipt("bye");
    assert!(
        c.closed_within(IO_TIMEOUT),
        "the server closes after the DISCONNECT receipt"
    );
}

fn unsubscribe_stops_delivery(s: &Server) {
    let room = unique_room("unsub");
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    bob.subscribe("b", &topic(&room));
    alice.send_chat(&room, "before", Some("1"));
    alice.expect_receipt("1");
    let (_, v) = bob.recv_json_message();
    assert_eq!(v["message"], "before");
    bob.send(
        &Frame::new(Command::Unsubscribe)
            .with_header("id", "b")
            .with_header("receipt", "u"),
    );
    bob.expect_receipt("u");
    alice.send_chat(&room, "after", Some("2"));
    alice.expect_receipt("2");
    bob.expect_no_frame(Duration::from_millis(700), "after UNSUBSCRIBE");
}

fn mentions(s: &Server) {
    let room = unique_room("mention");
    let bob_token = access(s, "bob");
    let alice_token = access(s, "alice");
    let mut bob = StompClient::connect(s, &bob_token);
    bob.subscribe("n", "/user/queue/notifications");
    let mut alice = StompClient::connect(s, &alice_token);
    alice.subscribe("n", "/user/queue/notifications");
    let marker = common::unique("m", 40);
    let text = format!("@bob 확인 부탁해요 {marker} (cc @alice, @nosuchuser_zz)");
    alice.send_chat(&room, &text, Some("m-1"));
    alice.expect_receipt("m-1");
    let (f, n) = bob.recv_json_message();
    assert_eq!(
        f.header("destination"),
        Some("/user/queue/notifications"),
        "{}",
        show(&f)
    );
    assert_eq!(f.header("subscription"), Some("n"), "{}", show(&f));
    assert_eq!(n["type"], "mention", "{n}");
    assert_eq!(n["recipient"], "bob", "{n}");
    assert_eq!(n["sender"], "alice", "{n}");
    assert_eq!(n["roomId"], room.as_str(), "{n}");
    assert_eq!(n["read"], false, "{n}");
    assert!(n["message"].as_str().is_some_and(|m| m.contains(&marker)), "{n}");
    assert!(is_iso8601_millis(n["createdAt"].as_str().unwrap_or_default()), "{n}");
    let id = n["id"].as_i64().unwrap_or_else(|| panic!("numeric id: {n}"));
    // Stored: bob's list has it.
    let list = s.get("/notifications", Some(&bob_token)).data(200);
    let found = list
        .as_array()
        .and_then(|l| l.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("mention {id} not in bob's GET /notifications: {list}"));
    assert_eq!(found, &n, "listed and pushed notifications agree");
    // The sender mentioning herself gets nothing.
    alice.expect_no_frame(Duration::from_millis(500), "alice mentioned herself");
    let alice_list = s.get("/notifications", Some(&alice_token)).data(200);
    let self_notified = alice_list.as_array().is_some_and(|l| {
        l.iter()
            .any(|x| x["message"].as_str().is_some_and(|m| m.contains(&marker)))
    });
    assert!(
        !self_notified,
        "a sender is not notified of her own mention: {alice_list}"
    );
}

fn history_paging(s: &Server) {
    let room = unique_room("paging");
    let token = access(s, "testuser");
    let mut c = StompClient::connect(s, &token);
    for i in 1..=7 {
        c.send_chat(&room, &format!("m{i}"), Some(&format!("p{i}")));
        c.expect_receipt(&format!("p{i}"));
    }
    let all = history(s, &token, &room, "");
    let all_ids = ids(&all);
    assert_eq!(all.len(), 7, "{all:?}");
    let texts: Vec<&str> = all.iter().map(|m| m["message"].as_str().unwrap_or_default()).collect();
    assert_eq!(texts, ["m1", "m2", "m3", "m4", "m5", "m6", "m7"], "ascending by id");
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "ids ascend: {all_ids:?}");
    for m in &all {
        check_chat_json(m, &room, "testuser", m["message"].as_str().unwrap_or_default());
    }
    let id = |i: usize| all_ids[i - 1];
    assert_eq!(
        ids(&history(s, &token, &room, "?limit=3")),
        [id(5), id(6), id(7)],
        "latest 3"
    );
    assert_eq!(
        ids(&history(s, &token, &room, &format!("?before={}&limit=2", id(5)))),
        [id(3), id(4)],
        "the 2 before m5"
    );
    assert_eq!(
        ids(&history(s, &token, &room, &format!("?after={}", id(2)))),
        [id(3), id(4), id(5), id(6), id(7)],
        "everything after m2"
    );
    assert_eq!(
        ids(&history(s, &token, &room, &format!("?after={}&limit=2", id(2)))),
        [id(3), id(4)],
        "gap recovery pages forward from `after`"
    );
    assert_eq!(
        ids(&history(
            s,
            &token,
            &room,
            &format!("?after={}&before={}", id(2), id(6))
        )),
        [id(3), id(4), id(5)],
        "between after and before"
    );
    assert!(
        history(s, &token, &room, &format!("?after={}", id(7))).is_empty(),
        "nothing after the last"
    );
    // Rooms do not mix.
    let other = unique_room("paging-other");
    c.send_chat(&other, "elsewhere", Some("o"));
    c.expect_receipt("o");
    assert_eq!(history(s, &token, &room, "").len(), 7);
    assert_eq!(history(s, &token, &other, "").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Fan-out order across publishers and subscribers
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_fanout_order() {
    run_on_each_backend(
        "stomp_fanout_order",
        &Config::new().set("chat", "max_message_chars", 16_000),
        &[
            (
                "2 publishers, 3 subscribers: one order, no gaps, no duplicates, = history",
                fanout_order,
            ),
            (
                "2 publishers, 300 subscribers: messages committed during a flush join it, in order",
                large_room_order,
            ),
        ],
    );
}

const PER_PUBLISHER: usize = 150;

fn fanout_order(s: &Server) {
    check_fanout_order(s, 3, 1, &Publishing::PIPELINED);
}

/// More subscribers than a reactor's flush writes between two looks at its inbox (64), and
/// messages large enough (12 KiB) that a pass takes longer than a commit: each publisher waits for
/// each receipt, so every message is its own commit and reaches the reactors while the previous
/// one is being written. Each subscriber must still see every message once, in id order, and the
/// node must report that passes were joined.
fn large_room_order(s: &Server) {
    let joins = || metric_value(&s.metrics(), "herald_flush_inbox_joins_total").unwrap_or(-1.0);
    let before = joins();
    assert!(before >= 0.0, "herald_flush_inbox_joins_total is exported");
    check_fanout_order(
        s,
        300,
        10,
        &Publishing {
            per_publisher: 30,
            padding: 12 * 1024,
            lockstep: true,
        },
    );
    let after = joins();
    eprintln!("  flush passes joined by a later message: {}", after - before);
    assert!(
        after > before,
        "no flush pass was joined by a later message ({before} -> {after})"
    );
}

/// How the two publishers of [`check_fanout_order`] send.
struct Publishing {
    per_publisher: usize,
    /// Characters of padding appended to each message text.
    padding: usize,
    /// Wait for each message's receipt before the next (else only the last one's).
    lockstep: bool,
}

impl Publishing {
    const PIPELINED: Publishing = Publishing {
        per_publisher: PER_PUBLISHER,
        padding: 0,
        lockstep: false,
    };
}

/// `subscribers` connections (read by `reader_threads` threads) in one room, two publishers
/// sending as `publishing` says: every subscriber receives every message once, in ascending id
/// order, the same order for all, each publisher's in send order, and that order is the room's
/// history.
fn check_fanout_order(s: &Server, subscribers: usize, reader_threads: usize, publishing: &Publishing) {
    let per_publisher = publishing.per_publisher;
    let pad = "x".repeat(publishing.padding);
    let pad = pad.as_str();
    let lockstep = publishing.lockstep;
    let room = unique_room("order");
    let (extra_user, extra) = tokens::new_user(s, "sub_");
    let testuser = access(s, "testuser");
    let mut clients: Vec<(usize, StompClient)> = (0..subscribers)
        .map(|i| {
            let token = if i == 2 { &extra.access } else { &testuser };
            let mut c = StompClient::connect(s, token);
            c.subscribe(&format!("sub-{i}"), &topic(&room));
            (i, c)
        })
        .collect();
    let publishers = [("alice", access(s, "alice")), ("bob", access(s, "bob"))];
    let total = per_publisher * publishers.len();
    let room_ref = room.as_str();
    let per_reader = subscribers.div_ceil(reader_threads);
    let mut received: Vec<(usize, Vec<Value>)> = std::thread::scope(|scope| {
        let readers: Vec<_> = clients
            .chunks_mut(per_reader)
            .map(|chunk| {
                scope.spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(60);
                    let mut out = Vec::with_capacity(chunk.len());
                    for (i, c) in chunk.iter_mut() {
                        let mut got = Vec::with_capacity(total);
                        while got.len() < total && Instant::now() < deadline {
                            match c.next_event(deadline.saturating_duration_since(Instant::now())) {
                                Some(StompEvent::Frame(f)) => {
                                    got.push(check_room_message(&f, room_ref, &format!("sub-{i}")));
                                }
                                Some(StompEvent::HeartBeat) => {}
                                Some(StompEvent::Closed) | None => break,
                            }
                        }
                        out.push((*i, got));
                    }
                    out
                })
            })
            .collect();
        let writers: Vec<_> = publishers
            .iter()
            .map(|(user, token)| {
                scope.spawn(move || {
                    let mut p = StompClient::connect(s, token);
                    for i in 0..per_publisher {
                        let receipt = format!("r-{i}");
                        let last = i + 1 == per_publisher;
                        let asked = (lockstep || last).then_some(receipt.as_str());
                        p.send_chat(room_ref, &format!("{user} {i}{pad}"), asked);
                        if let Some(r) = asked {
                            p.expect_receipt(r);
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            if let Err(panic) = w.join() {
                std::panic::resume_unwind(panic);
            }
        }
        readers
            .into_iter()
            .flat_map(|r| r.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    received.sort_by_key(|(i, _)| *i);
    let received: Vec<Vec<Value>> = received.into_iter().map(|(_, got)| got).collect();
    let first_ids = ids(&received[0]);
    for (i, got) in received.iter().enumerate() {
        let got_ids = ids(got);
        assert_eq!(got.len(), total, "subscriber {i} received {} of {total}", got.len());
        assert!(
            got_ids.windows(2).all(|w| w[0] < w[1]),
            "subscriber {i}: ids not strictly ascending: {got_ids:?}"
        );
        assert_eq!(got_ids, first_ids, "subscriber {i} saw another order than subscriber 0");
        for (user, _) in &publishers {
            let mine: Vec<&str> = got
                .iter()
                .filter(|m| m["sender"] == *user)
                .map(|m| m["message"].as_str().unwrap_or_default())
                .collect();
            let expected: Vec<String> = (0..per_publisher).map(|n| format!("{user} {n}{pad}")).collect();
            assert_eq!(mine, expected, "subscriber {i}: {user}'s messages in send order");
        }
    }
    let stored = history(s, &extra.access, &room, "?limit=500");
    assert_eq!(
        ids(&stored),
        first_ids,
        "the history ({extra_user}) has the delivered order"
    );
    assert_eq!(stored, received[0], "history and live messages are identical");
}

// ---------------------------------------------------------------------------------------------
// Slow consumer
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_slow_consumer() {
    // 128 KiB: small enough to overflow quickly (the 64 KiB minimum has its own test below).
    let config = Config::new().set("chat", "outbound_buffer_bytes", 131_072);
    run_on_each_backend(
        "stomp_slow_consumer",
        &config,
        &[(
            "a subscriber that never reads is closed; a reading one gets everything",
            slow_consumer,
        )],
    );
}

/// A socket with a small receive buffer, so that the server's outbound buffer fills quickly.
fn small_buffer_socket(s: &Server) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&s.addr.into(), IO_TIMEOUT)
        .expect("connect the slow consumer");
    TcpStream::from(socket)
}

fn slow_consumer(s: &Server) {
    let room = unique_room("slow");
    let closes = |s: &Server| metric_value(&s.metrics(), "herald_slow_consumer_closes_total").unwrap_or(0.0);
    let baseline = closes(s);
    let mut slow = StompClient::open_on(small_buffer_socket(s), s, Some("v12.stomp"));
    let bearer = format!("Bearer {}", access(s, "testuser"));
    slow.send(
        &Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("Authorization", &bearer)
            .with_header("heart-beat", "0,0"),
    );
    slow.recv_command(Command::Connected);
    slow.subscribe("slow", &topic(&room));
    let mut reader = StompClient::connect(s, &access(s, "alice"));
    reader.subscribe("fast", &topic(&room));
    let padding = "p".repeat(1900);
    let (sent, reader_got) = std::thread::scope(|scope| {
        let reading = scope.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut got: Vec<Value> = Vec::new();
            while Instant::now() < deadline {
                match reader.next_event(deadline.saturating_duration_since(Instant::now())) {
                    Some(StompEvent::Frame(f)) => {
                        let v = check_room_message(&f, &room, "fast");
                        let end = v["message"] == "END";
                        got.push(v);
                        if end {
                            break;
                        }
                    }
                    Some(StompEvent::HeartBeat) => {}
                    Some(StompEvent::Closed) | None => break,
                }
            }
            got
        });
        let mut publisher = StompClient::connect(s, &access(s, "bob"));
        let started = Instant::now();
        let mut sent = 0usize;
        let mut batch = 0;
        while closes(s) <= baseline {
            assert!(
                sent < 20_000 && started.elapsed() < Duration::from_secs(60),
                "the non-reading subscriber was never closed as a slow consumer ({sent} messages of ~2 KB sent \
                 in {:?}, outbound_buffer_bytes = 65536)",
                started.elapsed()
            );
            for i in 0..25 {
                let receipt = format!("b{batch}");
                publisher.send_chat(
                    &room,
                    &format!("{sent} {padding}"),
                    (i == 24).then_some(receipt.as_str()),
                );
                sent += 1;
            }
            publisher.expect_receipt(&format!("b{batch}"));
            batch += 1;
        }
        publisher.send_chat(&room, "END", Some("end"));
        publisher.expect_receipt("end");
        let got = reading.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (sent, got)
    });
    // The reading subscriber got every message, in order, none twice.
    assert_eq!(
        reader_got.len(),
        sent + 1,
        "the reading subscriber got {} of {}",
        reader_got.len(),
        sent + 1
    );
    for (n, m) in reader_got[..sent].iter().enumerate() {
        let text = m["message"].as_str().unwrap_or_default();
        assert!(
            text.starts_with(&format!("{n} ")),
            "message {n} out of order: {:.20}",
            text
        );
    }
    let got_ids = ids(&reader_got);
    assert!(got_ids.windows(2).all(|w| w[0] < w[1]), "reader ids ascend");
    // The slow one was cut off: what it can still read ends early, and ends with the connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut messages, mut error, mut closed) = (0usize, None, false);
    while Instant::now() < deadline {
        match slow.next_event(deadline.saturating_duration_since(Instant::now())) {
            Some(StompEvent::Frame(f)) if f.command == Command::Message => messages += 1,
            Some(StompEvent::Frame(f)) => {
                error = Some(f);
            }
            Some(StompEvent::HeartBeat) => {}
            Some(StompEvent::Closed) | None => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the slow consumer's connection was not closed");
    assert!(
        messages < sent,
        "the slow consumer was cut off ({messages} of {sent} delivered)"
    );
    if let Some(f) = error {
        assert_eq!(f.command, Command::Error, "{}", show(&f));
        assert_eq!(f.header("message"), Some("slow consumer"), "{}", show(&f));
    }
    s.assert_healthy("a slow consumer");
}

/// `outbound_buffer_bytes` may be as small as `max_frame_bytes` (64 KiB): the server accepts
/// that configuration, so it must also serve WebSocket sessions with it.
#[test]
fn stomp_minimum_outbound_buffer() {
    let config = Config::new().set("chat", "outbound_buffer_bytes", 65_536);
    run_on_each_backend(
        "stomp_minimum_outbound_buffer",
        &config,
        &[(
            "sessions work with outbound_buffer_bytes = max_frame_bytes",
            minimum_outbound_buffer,
        )],
    );
}

fn minimum_outbound_buffer(s: &Server) {
    let room = unique_room("min-buffer");
    let mut checks = Checks::new();
    checks.check("first session", || {
        let mut c = StompClient::connect(s, &access(s, "alice"));
        c.subscribe("m", &topic(&room));
        c.send_chat(&room, "fits", Some("r"));
        let mut commands = vec![c.recv(IO_TIMEOUT).command, c.recv(IO_TIMEOUT).command];
        commands.sort_by_key(|c| c.as_str());
        assert_eq!(commands, [Command::Message, Command::Receipt]);
    });
    // Whatever happened to the first, the server (all its reactors) still serves new sessions.
    for i in 0..4 {
        checks.check(&format!("session {i} afterwards"), || {
            s.assert_healthy("a WebSocket session");
            let mut c = StompClient::connect(s, &access(s, "bob"));
            c.subscribe("m", &topic(&room));
        });
    }
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// Heart-beats
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_heartbeats() {
    let config = Config::new().set("chat", "heartbeat_ms", 200);
    run_on_each_backend(
        "stomp_heartbeats",
        &config,
        &[
            ("server sends heart-beats at the negotiated interval", server_heartbeats),
            ("no heart-beats when the client asks for none", no_heartbeats),
            ("a silent client is closed after ~2x its interval", silent_client_closed),
            ("a client that keeps beating stays connected", beating_client_stays),
        ],
    );
}

fn server_heartbeats(s: &Server) {
    let mut c = StompClient::connect_heartbeat(s, &access(s, "alice"), "0,500");
    let started = Instant::now();
    let mut last = started;
    let mut gaps = Vec::new();
    while started.elapsed() < Duration::from_millis(2500) {
        match c.next_event(Duration::from_millis(2500).saturating_sub(started.elapsed())) {
            Some(StompEvent::HeartBeat) => {
                gaps.push(last.elapsed());
                last = Instant::now();
            }
            Some(StompEvent::Frame(f)) => panic!("unexpected frame {}", show(&f)),
            Some(StompEvent::Closed) => panic!("closed while the client sent nothing and promised nothing"),
            None => break,
        }
    }
    gaps.push(last.elapsed());
    assert!(
        gaps.len() >= 5,
        "only {} heart-beats in 2.5 s with heart-beat:0,500",
        gaps.len() - 1
    );
    let worst = gaps.iter().max().copied().unwrap_or_default();
    // The server must beat at least every 500 ms; allow scheduling jitter on a loaded machine.
    assert!(
        worst <= Duration::from_millis(700),
        "heart-beat gap of {worst:?} (> 500 ms): {gaps:?}"
    );
}

fn no_heartbeats(s: &Server) {
    let mut c = StompClient::connect_heartbeat(s, &access(s, "alice"), "0,0");
    c.expect_no_frame(Duration::from_millis(1200), "heart-beat:0,0");
    assert_eq!(c.heartbeats, 0, "heart-beats sent although the client asked for none");
}

fn silent_client_closed(s: &Server) {
    let mut c = StompClient::connect_heartbeat(s, &access(s, "alice"), "300,0");
    let started = Instant::now();
    let mut error = None;
    loop {
        match c.next_event(Duration::from_secs(4).saturating_sub(started.elapsed())) {
            Some(StompEvent::Frame(f)) => error = Some(f),
            Some(StompEvent::HeartBeat) => {}
            Some(StompEvent::Closed) => break,
            None => panic!("a client silent for 4 s (heart-beat:300,0) was not closed"),
        }
    }
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(550),
        "closed after {after:?}, before 2x the 300 ms interval"
    );
    assert!(after <= Duration::from_millis(2500), "closed only after {after:?}");
    if let Some(f) = error {
        assert_eq!(f.command, Command::Error, "{}", show(&f));
    }
}

fn beating_client_stays(s: &Server) {
    let mut c = StompClient::connect_heartbeat(s, &access(s, "alice"), "300,0");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        c.send_text("\n");
        c.expect_no_frame(Duration::from_millis(150), "a client beating every 150 ms");
    }
    c.subscribe("still", &topic("heartbeat-alive"));
}

// ---------------------------------------------------------------------------------------------
// Token expiry ends the session
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_token_expiry() {
    let config = Config::new().set("jwt", "access_ttl_secs", 2);
    run_on_each_backend(
        "stomp_token_expiry",
        &config,
        &[(
            "a session ends with ERROR token expired when its token does",
            session_expires,
        )],
    );
}

fn session_expires(s: &Server) {
    let logged_in = Instant::now();
    let token = access(s, "bob");
    let mut c = StompClient::connect(s, &token);
    c.subscribe("x", &topic("expiry"));
    let mut error = None;
    let closed_at = loop {
        match c.next_event(Duration::from_secs(6).saturating_sub(logged_in.elapsed())) {
            Some(StompEvent::Frame(f)) => error = Some(f),
            Some(StompEvent::HeartBeat) => {}
            Some(StompEvent::Closed) => break logged_in.elapsed(),
            None => panic!("the session outlived its 2 s access token by 4 s"),
        }
    };
    let f = error.unwrap_or_else(|| panic!("closed after {closed_at:?} without an ERROR frame"));
    assert_eq!(f.command, Command::Error, "{}", show(&f));
    assert_eq!(f.header("message"), Some("token expired"), "{}", show(&f));
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at <= Duration::from_millis(3500),
        "closed {closed_at:?} after login with access_ttl_secs = 2"
    );
    // A fresh token connects again.
    let mut again = StompClient::connect(s, &access(s, "bob"));
    again.subscribe("y", &topic("expiry"));
}
