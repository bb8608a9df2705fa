//! STOMP 1.2 semantics at `/ws/chat` (SPEC §4): transactions, ack modes, header escaping in every
//! direction, and fairness (a flooding client neither fills the shared queues nor delays another
//! client's receipts), on SQLite and MariaDB.

mod common;

use std::time::{Duration, Instant};

use common::server::{Config, Server};
use common::stomp::{show, StompClient};
use common::tokens::login;
use common::{metric_value, run_on_each_backend, unique_room, Checks, IO_TIMEOUT};
use herald::stomp::frame::{Command, Frame};
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

/// Every message of `room` in the history, ascending (paged by `after`).
#[track_caller]
fn history(s: &Server, token: &str, room: &str) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    loop {
        let after = all.last().and_then(|m| m["id"].as_i64()).unwrap_or(0);
        let r = s.get(&format!("/chat/history/{room}?limit=500&after={after}"), Some(token));
        assert_eq!(r.status, 200, "history of {room}: {}", r.text());
        let Value::Array(page) = r.json() else {
            panic!("history is not an array");
        };
        let done = page.len() < 500;
        all.extend(page);
        if done {
            return all;
        }
    }
}

fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    headers
        .iter()
        .fold(Frame::new(command), |f, (n, v)| f.with_header(*n, *v))
}

/// A SEND to `/app/chat.send` in `room` with extra headers.
fn chat_send(room: &str, message: &str, headers: &[(&str, &str)]) -> Frame {
    let body = json!({ "roomId": room, "message": message }).to_string();
    frame(Command::Send, headers)
        .with_header("destination", "/app/chat.send")
        .with_header("content-type", "application/json")
        .with_body(body.into_bytes())
}

/// Frames until (and with) the RECEIPT `receipt`, within `timeout`.
#[track_caller]
fn frames_until_receipt(c: &mut StompClient, receipt: &str, timeout: Duration) -> Vec<Frame> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        let f = c.recv(deadline.saturating_duration_since(Instant::now()));
        let done = f.command == Command::Receipt && f.header("receipt-id") == Some(receipt);
        assert_ne!(f.command, Command::Error, "unexpected ERROR: {}", show(&f));
        got.push(f);
        if done {
            return got;
        }
    }
}

fn receipt_ids(frames: &[Frame]) -> Vec<&str> {
    frames
        .iter()
        .filter(|f| f.command == Command::Receipt)
        .filter_map(|f| f.header("receipt-id"))
        .collect()
}

fn bodies(frames: &[Frame]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.command == Command::Message)
        .map(|f| serde_json::from_slice(&f.body).unwrap_or(Value::Null))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_transactions() {
    run_on_each_backend(
        "stomp_transactions",
        &Config::new(),
        &[
            (
                "COMMIT: held SENDs stored and broadcast together, in order, then receipted",
                commit_is_held_then_atomic_and_ordered,
            ),
            ("ABORT drops everything held", abort_drops),
            (
                "a SEND refused in a transaction is told at once; the rest commits",
                refused_send_in_transaction,
            ),
            ("a group spanning rooms reaches each room", group_across_rooms),
            (
                "unknown or duplicate ids, BEGIN without id: ERROR then close",
                transaction_violations,
            ),
            ("DISCONNECT or a dropped socket aborts", disconnect_aborts),
            (
                "17th open transaction and 1001st held SEND: ERROR then close; 1000 commit",
                transaction_bounds,
            ),
            (
                "DISCONNECT's RECEIPT comes after every earlier SEND is settled",
                disconnect_receipt_drains,
            ),
        ],
    );
}

fn commit_is_held_then_atomic_and_ordered(s: &Server) {
    let room = unique_room("tx-commit");
    let bob_token = access(s, "bob");
    let mut watcher = StompClient::connect(s, &bob_token);
    watcher.subscribe("w", &topic(&room));
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    alice.subscribe("mine", &topic(&room));
    alice.send(&frame(Command::Begin, &[("transaction", "t1"), ("receipt", "b1")]));
    alice.expect_receipt("b1");
    for i in 0..3 {
        let receipt = format!("r{i}");
        alice.send(&chat_send(
            &room,
            &format!("tx {i}"),
            &[("transaction", "t1"), ("receipt", &receipt)],
        ));
    }
    // Held: nobody sees anything, nothing is stored, no receipt yet.
    watcher.expect_no_frame(Duration::from_millis(600), "before COMMIT");
    alice.expect_no_frame(Duration::from_millis(100), "before COMMIT");
    assert!(history(s, &bob_token, &room).is_empty(), "nothing stored before COMMIT");

    alice.send(&frame(Command::Commit, &[("transaction", "t1"), ("receipt", "c1")]));
    let got = frames_until_receipt(&mut alice, "c1", IO_TIMEOUT);
    // The sender sees its MESSAGEs first, then the SENDs' receipts in order, then COMMIT's.
    let first_receipt = got.iter().position(|f| f.command == Command::Receipt).unwrap_or(0);
    assert!(
        got[..first_receipt].iter().all(|f| f.command == Command::Message),
        "MESSAGEs before RECEIPTs: {:?}",
        got.iter().map(show).collect::<Vec<_>>()
    );
    assert_eq!(receipt_ids(&got), ["r0", "r1", "r2", "c1"]);
    assert_eq!(texts(&bodies(&got)), ["tx 0", "tx 1", "tx 2"]);
    let seen: Vec<Value> = (0..3).map(|_| watcher.recv_json_message().1).collect();
    assert_eq!(texts(&seen), ["tx 0", "tx 1", "tx 2"]);
    let ids: Vec<i64> = seen.iter().map(|m| m["id"].as_i64().unwrap_or(0)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending ids: {ids:?}");
    assert_eq!(history(s, &bob_token, &room), seen, "the history is what was broadcast");
}

fn abort_drops(s: &Server) {
    let room = unique_room("tx-abort");
    let bob_token = access(s, "bob");
    let mut watcher = StompClient::connect(s, &bob_token);
    watcher.subscribe("w", &topic(&room));
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    alice.send(&frame(Command::Begin, &[("transaction", "t")]));
    for i in 0..2 {
        alice.send(&chat_send(&room, &format!("no {i}"), &[("transaction", "t")]));
    }
    alice.send(&frame(Command::Abort, &[("transaction", "t"), ("receipt", "a")]));
    alice.expect_receipt("a");
    // Still alive, and a plain SEND afterwards is the only thing stored.
    alice.send_chat(&room, "after abort", Some("p"));
    alice.expect_receipt("p");
    assert_eq!(watcher.recv_json_message().1["message"], "after abort");
    watcher.expect_no_frame(Duration::from_millis(300), "after the abort");
    assert_eq!(texts(&history(s, &bob_token, &room)), ["after abort"]);
    // The aborted id is gone.
    alice.send(&frame(Command::Commit, &[("transaction", "t")]));
    let e = alice.expect_error_then_close("COMMIT after ABORT");
    assert_eq!(e.header("message"), Some("unknown transaction"));
}

fn refused_send_in_transaction(s: &Server) {
    let room = unique_room("tx-refused");
    let token = access(s, "alice");
    let mut alice = StompClient::connect(s, &token);
    alice.subscribe("e", "/user/queue/errors");
    alice.send(&frame(Command::Begin, &[("transaction", "t")]));
    alice.send(&chat_send(&room, "good 1", &[("transaction", "t")]));
    alice.send(&chat_send(&room, "", &[("transaction", "t"), ("receipt", "empty")]));
    let (f, error) = alice.recv_json_message();
    assert_eq!(f.header("destination"), Some("/user/queue/errors"));
    assert_eq!(
        (error["code"].as_str(), error["receipt-id"].as_str()),
        (Some("INVALID_REQUEST"), Some("empty"))
    );
    alice.send(&chat_send(&room, "good 2", &[("transaction", "t")]));
    alice.send(&frame(Command::Commit, &[("transaction", "t"), ("receipt", "c")]));
    alice.expect_receipt("c");
    assert_eq!(texts(&history(s, &token, &room)), ["good 1", "good 2"]);
}

fn group_across_rooms(s: &Server) {
    let rooms: Vec<String> = (0..4).map(|i| unique_room(&format!("tx-span{i}"))).collect();
    let bob_token = access(s, "bob");
    let mut watchers: Vec<StompClient> = rooms
        .iter()
        .map(|room| {
            let mut w = StompClient::connect(s, &bob_token);
            w.subscribe("w", &topic(room));
            w
        })
        .collect();
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    alice.send(&frame(Command::Begin, &[("transaction", "span")]));
    for round in 0..2 {
        for room in &rooms {
            alice.send(&chat_send(room, &format!("{round}"), &[("transaction", "span")]));
        }
    }
    alice.send(&frame(Command::Commit, &[("transaction", "span"), ("receipt", "c")]));
    alice.expect_receipt("c");
    for (room, w) in rooms.iter().zip(&mut watchers) {
        let got: Vec<Value> = (0..2).map(|_| w.recv_json_message().1).collect();
        assert_eq!(texts(&got), ["0", "1"], "{room}");
        assert_eq!(texts(&history(s, &bob_token, room)), ["0", "1"], "{room}");
    }
}

/// Opens a session, lets `violate` misbehave, and expects `ERROR message:<message>` then close.
fn expect_violation(checks: &mut Checks, s: &Server, token: &str, message: &str, frames: Vec<Frame>) {
    let what = format!(
        "{} → {message}",
        frames.iter().map(|f| f.command.as_str()).collect::<Vec<_>>().join(", ")
    );
    checks.check(&what, || {
        let mut c = StompClient::connect(s, token);
        let last = frames.len() - 1;
        for (i, f) in frames.into_iter().enumerate() {
            c.send(&f);
            if i < last && f.header("receipt").is_some() {
                c.expect_receipt(f.header("receipt").unwrap_or_default());
            }
        }
        let e = c.expect_error_then_close(&what);
        assert_eq!(e.header("message"), Some(message), "{what}: {}", show(&e));
    });
}

fn transaction_violations(s: &Server) {
    let room = unique_room("tx-bad");
    let token = access(s, "alice");
    let begin = |id: &str| frame(Command::Begin, &[("transaction", id), ("receipt", "b")]);
    let mut checks = Checks::new();
    let c = &mut checks;
    expect_violation(
        c,
        s,
        &token,
        "missing transaction header",
        vec![frame(Command::Begin, &[])],
    );
    expect_violation(
        c,
        s,
        &token,
        "missing transaction header",
        vec![frame(Command::Begin, &[("transaction", "")])],
    );
    expect_violation(c, s, &token, "duplicate transaction", vec![begin("t"), begin("t")]);
    expect_violation(
        c,
        s,
        &token,
        "unknown transaction",
        vec![chat_send(&room, "held?", &[("transaction", "nope")])],
    );
    for command in [Command::Commit, Command::Abort] {
        expect_violation(
            c,
            s,
            &token,
            "unknown transaction",
            vec![begin("t"), frame(command, &[("transaction", "other")])],
        );
        expect_violation(c, s, &token, "unknown transaction", vec![frame(command, &[])]);
    }
    expect_violation(
        c,
        s,
        &token,
        "unknown transaction",
        vec![frame(Command::Ack, &[("id", "x/1"), ("transaction", "nope")])],
    );
    checks.check("afterwards", || {
        s.assert_healthy("transaction violations");
        let mut alice = StompClient::connect(s, &token);
        alice.send_chat(&room, "still fine", Some("ok"));
        alice.expect_receipt("ok");
        assert_eq!(
            texts(&history(s, &token, &room)),
            ["still fine"],
            "nothing held was stored"
        );
    });
    checks.finish();
}

fn disconnect_aborts(s: &Server) {
    let room = unique_room("tx-gone");
    let token = access(s, "alice");
    let mut alice = StompClient::connect(s, &token);
    alice.send(&frame(Command::Begin, &[("transaction", "t")]));
    alice.send(&chat_send(&room, "never", &[("transaction", "t")]));
    alice.send(&frame(Command::Disconnect, &[("receipt", "bye")]));
    alice.expect_receipt("bye");
    assert!(alice.closed_within(IO_TIMEOUT), "closed after DISCONNECT");

    let mut dropped = StompClient::connect(s, &token);
    dropped.send(&frame(Command::Begin, &[("transaction", "t")]));
    dropped.send(&chat_send(
        &room,
        "never either",
        &[("transaction", "t"), ("receipt", "x")],
    ));
    dropped.send(&frame(Command::Begin, &[("transaction", "sync"), ("receipt", "sync")]));
    dropped.expect_receipt("sync");
    drop(dropped);
    std::thread::sleep(Duration::from_millis(300));
    assert!(history(s, &token, &room).is_empty(), "nothing of either was stored");
}

fn transaction_bounds(s: &Server) {
    let room = unique_room("tx-bounds");
    let token = access(s, "alice");
    // 16 open transactions are fine, the 17th is not.
    let mut c = StompClient::connect(s, &token);
    for i in 0..16 {
        let id = format!("t{i}");
        c.send(&frame(Command::Begin, &[("transaction", &id)]));
        c.send(&chat_send(&room, &format!("held {i}"), &[("transaction", &id)]));
    }
    c.send(&frame(Command::Begin, &[("transaction", "t15"), ("receipt", "dup")]));
    let e = c.expect_error_then_close("a 16th BEGIN reusing an id");
    assert_eq!(e.header("message"), Some("duplicate transaction"));
    let mut c = StompClient::connect(s, &token);
    for i in 0..16 {
        c.send(&frame(Command::Begin, &[("transaction", &format!("t{i}"))]));
    }
    c.send(&frame(Command::Begin, &[("transaction", "t16"), ("receipt", "17th")]));
    let e = c.expect_error_then_close("17th BEGIN");
    assert_eq!(e.header("message"), Some("too many transactions"));
    assert_eq!(e.header("receipt-id"), Some("17th"));

    // 1000 held SENDs are fine, the 1001st is not; nothing of that transaction is stored.
    let mut c = StompClient::connect(s, &token);
    c.send(&frame(Command::Begin, &[("transaction", "big")]));
    for i in 0..1000 {
        c.send(&chat_send(&room, &format!("big {i}"), &[("transaction", "big")]));
    }
    c.send(&chat_send(
        &room,
        "one too many",
        &[("transaction", "big"), ("receipt", "1001")],
    ));
    let e = c.expect_error_then_close("1001st SEND in a transaction");
    assert_eq!(e.header("message"), Some("too many sends in transaction"));
    assert_eq!(e.header("receipt-id"), Some("1001"));
    assert!(history(s, &token, &room).is_empty(), "nothing stored");

    // A full transaction of 1000 (more than database.max_batch, 512) commits whole, in order.
    let mut c = StompClient::connect(s, &token);
    c.send(&frame(Command::Begin, &[("transaction", "full")]));
    for i in 0..1000 {
        c.send(&chat_send(&room, &format!("full {i}"), &[("transaction", "full")]));
    }
    c.send(&frame(Command::Commit, &[("transaction", "full"), ("receipt", "c")]));
    let got = frames_until_receipt(&mut c, "c", Duration::from_secs(30));
    assert_eq!(receipt_ids(&got), ["c"]);
    let stored = history(s, &token, &room);
    let expected: Vec<String> = (0..1000).map(|i| format!("full {i}")).collect();
    assert_eq!(texts(&stored), expected);
}

fn disconnect_receipt_drains(s: &Server) {
    let room = unique_room("drain");
    let token = access(s, "alice");
    let mut c = StompClient::connect(s, &token);
    for i in 0..300 {
        c.send_chat(&room, &format!("d{i}"), None);
    }
    c.send(&frame(Command::Disconnect, &[("receipt", "bye")]));
    c.expect_receipt("bye");
    assert!(c.closed_within(IO_TIMEOUT));
    // No polling: the RECEIPT came after every SEND was committed.
    assert_eq!(history(s, &token, &room).len(), 300);
}

// ---------------------------------------------------------------------------------------------
// Ack modes
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_ack_modes() {
    run_on_each_backend(
        "stomp_ack_modes",
        &Config::new(),
        &[
            (
                "client-individual: ack header, ACK/NACK receipted, no redelivery",
                client_individual,
            ),
            ("client: cumulative ACK, 1.1-style ACK", client_cumulative),
            ("auto: no ack header; bad mode or unknown id: ERROR", ack_violations),
        ],
    );
}

/// Subscribes `id` to `destination` with `ack`, waiting for the receipt.
fn subscribe_ack(c: &mut StompClient, id: &str, destination: &str, ack: &str) {
    c.send(&frame(
        Command::Subscribe,
        &[("id", id), ("destination", destination), ("ack", ack), ("receipt", "s")],
    ));
    c.expect_receipt("s");
}

fn client_individual(s: &Server) {
    let room = unique_room("ack-ci");
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    subscribe_ack(&mut bob, "ci", &topic(&room), "client-individual");
    subscribe_ack(&mut bob, "n", "/user/queue/notifications", "client-individual");
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    for i in 0..3 {
        alice.send_chat(&room, &format!("m{i} @bob"), None);
    }
    let mut acks = Vec::new();
    let mut notification_acks = Vec::new();
    while acks.len() < 3 || notification_acks.len() < 3 {
        let f = bob.recv_command(Command::Message);
        let ack = f.header("ack").unwrap_or_else(|| panic!("no ack header: {}", show(&f)));
        let message_id = f.header("message-id").unwrap_or_default();
        let subscription = f.header("subscription").unwrap_or_default();
        assert_eq!(ack, format!("{subscription}/{message_id}"), "{}", show(&f));
        if subscription == "ci" {
            acks.push(ack.to_owned());
        } else {
            notification_acks.push(ack.to_owned());
        }
    }
    bob.send(&frame(Command::Ack, &[("id", &acks[0]), ("receipt", "a0")]));
    bob.expect_receipt("a0");
    bob.send(&frame(Command::Nack, &[("id", &acks[1]), ("receipt", "n1")]));
    bob.expect_receipt("n1");
    bob.send(&frame(
        Command::Ack,
        &[("id", &notification_acks[2]), ("receipt", "na")],
    ));
    bob.expect_receipt("na");
    // A topic is not a queue: the NACKed and the never-acked messages are not sent again.
    bob.expect_no_frame(Duration::from_millis(500), "after NACK");
    // An id never sent on this connection.
    let (sub, id) = acks[2].rsplit_once('/').unwrap_or_default();
    let never = format!("{sub}/{}", id.parse::<i64>().unwrap_or(0) + 1000);
    bob.send(&frame(Command::Ack, &[("id", &never), ("receipt", "never")]));
    let e = bob.expect_error_then_close("ACK of an id never sent");
    assert_eq!(e.header("message"), Some("unknown ack id"));
    assert_eq!(e.header("receipt-id"), Some("never"));
}

fn client_cumulative(s: &Server) {
    let room = unique_room("ack-c");
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    subscribe_ack(&mut bob, "c", &topic(&room), "client");
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    for i in 0..5 {
        alice.send_chat(&room, &format!("m{i}"), None);
    }
    let frames: Vec<Frame> = (0..5).map(|_| bob.recv_command(Command::Message)).collect();
    let last = frames[4].header("ack").unwrap_or_default().to_owned();
    bob.send(&frame(Command::Ack, &[("id", &last), ("receipt", "all")]));
    bob.expect_receipt("all");
    // STOMP 1.1 names the MESSAGE by subscription and message-id.
    let message_id = frames[2].header("message-id").unwrap_or_default();
    bob.send(&frame(
        Command::Ack,
        &[("subscription", "c"), ("message-id", message_id), ("receipt", "v11")],
    ));
    bob.expect_receipt("v11");
    bob.send(&frame(Command::Disconnect, &[("receipt", "bye")]));
    bob.expect_receipt("bye");
}

fn ack_violations(s: &Server) {
    let room = unique_room("ack-bad");
    let token = access(s, "bob");
    let mut checks = Checks::new();
    checks.check("auto mode has no ack header and no ACK", || {
        let mut bob = StompClient::connect(s, &token);
        bob.subscribe("auto", &topic(&room));
        let mut alice = StompClient::connect(s, &access(s, "alice"));
        alice.send_chat(&room, "m", Some("r"));
        alice.expect_receipt("r");
        let f = bob.recv_command(Command::Message);
        assert_eq!(f.header("ack"), None, "{}", show(&f));
        let id = format!("auto/{}", f.header("message-id").unwrap_or_default());
        bob.send(&frame(Command::Ack, &[("id", &id)]));
        let e = bob.expect_error_then_close("ACK on an auto subscription");
        assert_eq!(e.header("message"), Some("unknown ack id"));
    });
    for mode in ["", "Client", "server", "client,client-individual"] {
        checks.check(&format!("ack:{mode:?}"), || {
            let mut c = StompClient::connect(s, &token);
            c.send(&frame(
                Command::Subscribe,
                &[("id", "x"), ("destination", &topic(&room)), ("ack", mode)],
            ));
            let e = c.expect_error_then_close("bad ack mode");
            assert_eq!(e.header("message"), Some("invalid ack mode"));
        });
    }
    checks.check("ACK without id", || {
        let mut c = StompClient::connect(s, &token);
        c.send(&frame(Command::Ack, &[]));
        let e = c.expect_error_then_close("ACK without id");
        assert_eq!(e.header("message"), Some("missing id header"));
    });
    checks.check("afterwards", || s.assert_healthy("ack violations"));
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// Header escaping
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_header_escaping() {
    run_on_each_backend(
        "stomp_header_escaping",
        &Config::new(),
        &[
            (
                "every escape round-trips: SUBSCRIBE id → MESSAGE subscription/ack, receipts, ERROR",
                escapes_round_trip,
            ),
            ("CONNECT headers are not unescaped, STOMP's are", connect_exemption),
        ],
    );
}

/// Every character STOMP 1.2 escapes, in one string.
const SPECIALS: &str = "a:b\\c\nd\re";

fn escapes_round_trip(s: &Server) {
    let room = unique_room("escape");
    let mut bob = StompClient::connect(s, &access(s, "bob"));
    let receipt = format!("sub {SPECIALS}");
    bob.send(&frame(
        Command::Subscribe,
        &[
            ("id", SPECIALS),
            ("destination", &topic(&room)),
            ("ack", "client-individual"),
            ("receipt", &receipt),
        ],
    ));
    bob.expect_receipt(&receipt);
    let mut alice = StompClient::connect(s, &access(s, "alice"));
    alice.subscribe("e", "/user/queue/errors");
    let send_receipt = format!("send {SPECIALS}");
    alice.send_chat(&room, "escaped", Some(&send_receipt));
    alice.expect_receipt(&send_receipt);
    // Fan-out MESSAGE: subscription and ack carry the specials back.
    let f = bob.recv_command(Command::Message);
    assert_eq!(f.header("subscription"), Some(SPECIALS), "{}", show(&f));
    let ack = f.header("ack").unwrap_or_default().to_owned();
    assert_eq!(
        ack,
        format!("{SPECIALS}/{}", f.header("message-id").unwrap_or_default())
    );
    let ack_receipt = format!("ack {SPECIALS}");
    bob.send(&frame(Command::Ack, &[("id", &ack), ("receipt", &ack_receipt)]));
    bob.expect_receipt(&ack_receipt);
    // An application error names the SEND's receipt in JSON.
    alice.send_chat(&room, "", Some(SPECIALS));
    let (_, error) = alice.recv_json_message();
    assert_eq!(error["receipt-id"], SPECIALS);
    // ERROR: its receipt-id header.
    let mut c = StompClient::connect(s, &access(s, "alice"));
    c.send(&frame(
        Command::Subscribe,
        &[("id", "x"), ("destination", "/topic/nowhere"), ("receipt", SPECIALS)],
    ));
    let e = c.expect_error_then_close("bad destination");
    assert_eq!(e.header("receipt-id"), Some(SPECIALS), "{}", show(&e));
}

fn connect_exemption(s: &Server) {
    let bearer = format!("Bearer {}", access(s, "alice"));
    // `\t` is no STOMP escape: taken literally in CONNECT, a protocol error in STOMP.
    let mut c = StompClient::open(s, Some("v12.stomp"));
    c.send_text(&format!(
        "CONNECT\naccept-version:1.2\nAuthorization:{bearer}\nx-note:a\\tb\\c\n\n\0"
    ));
    let f = c.recv_command(Command::Connected);
    assert_eq!(f.header("user-name"), Some("alice"));
    let mut c = StompClient::open(s, Some("v12.stomp"));
    c.send_text(&format!(
        "STOMP\naccept-version:1.2\nAuthorization:{bearer}\nx-note:a\\tb\n\n\0"
    ));
    c.expect_error_then_close("bad escape in STOMP");
}

// ---------------------------------------------------------------------------------------------
// Fairness
// ---------------------------------------------------------------------------------------------

#[test]
fn stomp_fairness() {
    run_on_each_backend(
        "stomp_fairness",
        &Config::new(),
        &[(
            "a flooder is held back by TCP; a calm client's receipts stay prompt",
            flood_and_calm,
        )],
    );
}

/// What the flooder sends, as fast as the socket takes it.
const FLOOD: usize = 20_000;
/// The default `chat.max_inflight_sends`.
const MAX_IN_FLIGHT: f64 = 256.0;

fn flood_and_calm(s: &Server) {
    let flood_room = unique_room("flood");
    let calm_room = unique_room("calm");
    let flooder_token = access(s, "alice");
    let calm_token = access(s, "bob");
    let pauses_before = metric_value(&s.metrics(), "herald_stomp_read_pauses_total").unwrap_or(0.0);
    let flooding = std::sync::atomic::AtomicBool::new(true);
    let (flood_errors, calm_latencies, max_depth) = std::thread::scope(|scope| {
        let flooder = scope.spawn(|| {
            let mut c = StompClient::connect(s, &flooder_token);
            c.subscribe("e", "/user/queue/errors");
            // The server stops reading when 256 are in flight: writes block, which is the point.
            let _ = c.ws.get_mut().set_write_timeout(Some(Duration::from_secs(60)));
            for i in 0..FLOOD {
                c.send_chat(&flood_room, &format!("f{i}"), None);
            }
            c.send_chat(&flood_room, "last", Some("last"));
            let got = frames_until_receipt(&mut c, "last", Duration::from_secs(120));
            flooding.store(false, std::sync::atomic::Ordering::Relaxed);
            bodies(&got)
        });
        let calm = scope.spawn(|| {
            let mut c = StompClient::connect(s, &calm_token);
            c.subscribe("e", "/user/queue/errors");
            let mut latencies = Vec::new();
            let mut n = 0;
            while flooding.load(std::sync::atomic::Ordering::Relaxed) || n < 20 {
                let receipt = format!("calm-{n}");
                let sent = Instant::now();
                c.send_chat(&calm_room, &format!("calm {n}"), Some(&receipt));
                let f = c.recv(Duration::from_secs(30));
                assert_eq!(f.command, Command::Receipt, "calm client got {}", show(&f));
                assert_eq!(f.header("receipt-id"), Some(receipt.as_str()));
                latencies.push(sent.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(50).saturating_sub(sent.elapsed()));
            }
            latencies
        });
        // The shared queues never hold much more than one connection's bound.
        let mut max_depth = 0.0f64;
        while !flooder.is_finished() {
            if let Some(depth) = metric_value(&s.metrics(), "herald_store_queue_depth") {
                max_depth = max_depth.max(depth);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let flood_errors = flooder.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let calm_latencies = calm.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (flood_errors, calm_latencies, max_depth)
    });
    let mut sorted = calm_latencies.clone();
    sorted.sort();
    let p = |q: f64| sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1];
    eprintln!(
        "fairness [{}]: calm receipts {} p50 {:?} p95 {:?} max {:?}; flood errors {}; max queue depth {max_depth}",
        s.label(),
        sorted.len(),
        p(0.5),
        p(0.95),
        sorted[sorted.len() - 1],
        flood_errors.len()
    );
    // Every calm SEND was receipted (checked as they came); generous bound for a shared 2-core box.
    assert!(p(0.95) < Duration::from_millis(400), "calm p95 {:?}", p(0.95));
    assert!(
        max_depth <= MAX_IN_FLIGHT + 8.0,
        "the flooder filled the shared queue: depth {max_depth}"
    );
    let pauses = metric_value(&s.metrics(), "herald_stomp_read_pauses_total").unwrap_or(0.0);
    assert!(pauses > pauses_before, "the flooder was never held back");
    // Every flooder message is committed or refused with a clear error — none silently lost.
    for e in &flood_errors {
        assert_eq!(e["code"], "SERVICE_UNAVAILABLE", "{e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    let stored = history(s, &flooder_token, &flood_room).len();
    assert_eq!(
        stored + flood_errors.len(),
        FLOOD + 1,
        "committed {stored}, refused {}",
        flood_errors.len()
    );
    assert_eq!(history(s, &calm_token, &calm_room).len(), calm_latencies.len());
}
