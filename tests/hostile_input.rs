//! SQL-injection strings and very long strings in every field and path segment (issue: "Bad
//! input"): each gets its clear status and envelope, text round-trips byte for byte, nothing
//! leaks, and the server keeps serving — on SQLite and on MariaDB.

mod common;

use common::http::Request;
use common::run_on_each_backend;
use common::server::{Config, Server};
use common::stomp::StompClient;
use common::tokens::{self, login, login_response, new_user};
use serde_json::json;

const INJECTIONS: [&str; 6] = [
    "' OR '1'='1",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "admin'--",
    "1; SELECT SLEEP(5)",
    "%' UNION SELECT password_hash FROM users --",
];

#[test]
fn hostile_strings() {
    run_on_each_backend(
        "hostile_strings",
        &Config::new(),
        &[
            ("injection in auth fields", auth_fields),
            ("injection in path segments and query parameters", paths_and_queries),
            (
                "injection text round-trips through chat and notifications",
                text_round_trips,
            ),
            ("very long strings in every field and segment", long_strings),
        ],
    );
}

fn auth_fields(s: &Server) {
    for bad in INJECTIONS {
        // Usernames outside [A-Za-z0-9_.-]{3,32} are refused before any query.
        tokens::signup_response(s, bad, "long-enough-password").assert_error(400, "INVALID_REQUEST");
        login_response(s, bad, "whatever-password").assert_error(401, "UNAUTHORIZED");
        login_response(s, "alice", bad).assert_error(401, "UNAUTHORIZED");
        let r = s.post_json("/auth/reissue", None, &json!({ "refreshToken": bad }));
        r.assert_error(401, "INVALID_TOKEN");
        let r = s.get("/users/me", Some(bad));
        assert_eq!(r.status, 401, "{}", r.text());
    }
    // A password full of quotes is just a password.
    let name = common::unique("quote_", 32);
    let password = "'; DROP TABLE users; -- \"x\"";
    tokens::signup_response(s, &name, password).data(201);
    login(s, &name, password);
    // The users table is intact.
    login(s, "alice", "alicepass");
    s.assert_healthy("injection in auth fields");
}

fn paths_and_queries(s: &Server) {
    let alice = login(s, "alice", "alicepass");
    for bad in [
        "'%20OR%20'1'='1",
        "room-1'--",
        "room-1%27%3B%20DROP%20TABLE%20chat_messages",
        "%00",
    ] {
        let r = s.get(&format!("/chat/history/{bad}"), Some(&alice.access));
        r.assert_error(400, "INVALID_REQUEST");
    }
    for (name, value) in [
        ("limit", "1%20OR%201=1"),
        ("before", "1'--"),
        ("after", "-1"),
        ("limit", "50;DROP"),
    ] {
        let r = s.get(&format!("/chat/history/room-1?{name}={value}"), Some(&alice.access));
        r.assert_error(400, "INVALID_REQUEST");
    }
    for bad in ["1%20OR%201=1", "1'--", "abc"] {
        let r = s.request(&Request::post(&format!("/notifications/{bad}/read")).bearer(&alice.access));
        r.assert_error(400, "INVALID_REQUEST");
    }
    let r = s.get("/notifications?before=1%20OR%201=1", Some(&alice.access));
    r.assert_error(400, "INVALID_REQUEST");
    for bad in INJECTIONS {
        let r = s.post_json(
            "/notifications",
            Some(&alice.access),
            &json!({ "recipient": bad, "message": "hi" }),
        );
        r.assert_error(404, "NOT_FOUND");
    }
    assert_eq!(s.get("/chat/history/room-1", Some(&alice.access)).status, 200);
    s.assert_healthy("injection in paths");
}

fn text_round_trips(s: &Server) {
    let (bob_name, bob) = new_user(s, "inj_");
    let alice = login(s, "alice", "alicepass");
    let room = common::unique_room("inj");
    let mut chat = StompClient::connect(s, &alice.access);
    for (i, text) in INJECTIONS.iter().enumerate() {
        chat.send_chat(&room, text, Some(&format!("r{i}")));
        chat.expect_receipt(&format!("r{i}"));
    }
    let history = s.get(&format!("/chat/history/{room}"), Some(&alice.access));
    assert_eq!(history.status, 200, "{}", history.text());
    let stored: Vec<String> = history
        .json()
        .as_array()
        .expect("history array")
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stored, INJECTIONS.map(String::from).to_vec());
    for text in INJECTIONS {
        let r = s.post_json(
            "/notifications",
            Some(&alice.access),
            &json!({ "recipient": bob_name, "message": text }),
        );
        assert_eq!(r.data(201)["message"], text);
    }
    let list = s.get("/notifications?limit=500", Some(&bob.access)).data(200);
    let mut messages: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["message"].as_str())
        .collect();
    messages.reverse(); // newest first
    assert_eq!(messages, INJECTIONS.to_vec());
}

fn long_strings(s: &Server) {
    let alice = login(s, "alice", "alicepass");
    let long = "a".repeat(60_000);
    // Body fields: within the 64 KiB body bound, refused by validation.
    tokens::signup_response(s, &long, "long-enough-password").assert_error(400, "INVALID_REQUEST");
    tokens::signup_response(s, "long_pw_user", &long).assert_error(400, "INVALID_REQUEST");
    login_response(s, &long, "x-password").assert_error(401, "UNAUTHORIZED");
    login_response(s, "alice", &long).assert_error(401, "UNAUTHORIZED");
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": long }))
        .assert_error(401, "INVALID_TOKEN");
    s.post_json(
        "/notifications",
        Some(&alice.access),
        &json!({ "recipient": "bob", "message": long }),
    )
    .assert_error(400, "INVALID_REQUEST");
    s.post_json(
        "/notifications",
        Some(&alice.access),
        &json!({ "recipient": long, "message": "hi" }),
    )
    .assert_error(404, "NOT_FOUND");
    // Path segments and tokens: a 10 KB segment is a bad room id; a 20 KB head is over the bound.
    let seg = "r".repeat(10_000);
    s.get(&format!("/chat/history/{seg}"), Some(&alice.access))
        .assert_error(400, "INVALID_REQUEST");
    let seg = "r".repeat(20_000);
    let r = s.get(&format!("/chat/history/{seg}"), Some(&alice.access));
    r.assert_error(431, "PAYLOAD_TOO_LARGE");
    let r = s.get("/users/me", Some(&"x".repeat(12_000)));
    assert_eq!(r.status, 401, "{}", r.text());
    // A STOMP message of 2001 characters is refused on the errors queue; the session goes on.
    let mut chat = StompClient::connect(s, &alice.access);
    chat.subscribe("e", "/user/queue/errors");
    chat.send_chat("room-1", &"가".repeat(2001), Some("too-long"));
    let (_, error) = chat.recv_json_message();
    assert_eq!(error["code"], "INVALID_REQUEST", "{error}");
    chat.send_chat("room-1", &"가".repeat(2000), Some("just-right"));
    chat.expect_receipt("just-right");
    s.assert_healthy("very long strings");
}
