//! Notifications (SPEC §5): the REST endpoints and the Server-Sent Events stream — live delivery,
//! replay after `Last-Event-ID` without gap or duplicate, pings, auth, rate limits, expiry.

mod common;

use std::time::{Duration, Instant};

use common::http::Request;
use common::server::{Config, Server};
use common::sse::{SseItem, SseStream};
use common::stomp::StompClient;
use common::tokens::{self, claims_for, forge, login, new_user, now_secs, Tokens, DEV_SECRET};
use common::{is_iso8601_millis, run_on_each_backend, unique_room, Checks};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const STREAM: &str = "/notifications/stream";

fn alice(s: &Server) -> Tokens {
    login(s, "alice", "alicepass")
}

/// `POST /notifications` from `sender` to `recipient`; returns the 201 `data`.
#[track_caller]
fn notify(s: &Server, sender: &str, recipient: &str, message: &str) -> Value {
    let r = s.post_json(
        "/notifications",
        Some(sender),
        &json!({ "recipient": recipient, "message": message }),
    );
    r.data(201)
}

fn id_of(n: &Value) -> i64 {
    n["id"].as_i64().unwrap_or_else(|| panic!("numeric id in {n}"))
}

/// `data` of `GET /notifications{query}` as a list.
#[track_caller]
fn list(s: &Server, token: &str, query: &str) -> Vec<Value> {
    match s.get(&format!("/notifications{query}"), Some(token)).data(200) {
        Value::Array(items) => items,
        other => panic!("GET /notifications{query}: data is not a list: {other}"),
    }
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(id_of).collect()
}

/// Checks the JSON shape of a notification.
#[track_caller]
fn check_notification(n: &Value, kind: &str, recipient: &str, sender: &str, message: &str) {
    let mut keys: Vec<&str> = n
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "createdAt",
            "id",
            "message",
            "read",
            "recipient",
            "roomId",
            "sender",
            "type"
        ],
        "notification fields: {n}"
    );
    assert!(id_of(n) > 0, "{n}");
    assert_eq!(n["type"], kind, "{n}");
    assert_eq!(n["recipient"], recipient, "{n}");
    assert_eq!(n["sender"], sender, "{n}");
    assert_eq!(n["message"], message, "{n}");
    assert_eq!(n["read"], false, "{n}");
    let created = n["createdAt"].as_str().unwrap_or_default();
    assert!(is_iso8601_millis(created), "createdAt {created:?}: {n}");
}

/// Opens the stream and consumes the `connected` event.
#[track_caller]
fn open_connected(s: &Server, access: &str, extra: &[(&str, &str)]) -> SseStream {
    let mut stream = SseStream::open_bearer(s, access, extra);
    stream.expect_event("connected");
    stream
}

#[test]
fn notifications_and_streams() {
    let config = Config::new().set("notifications", "ping_interval_ms", 300);
    run_on_each_backend(
        "notifications_and_streams",
        &config,
        &[
            ("stream headers and the connected event", stream_headers),
            ("stream authentication and parameter errors", stream_errors),
            (
                "POST /notifications is stored and pushed live",
                direct_notification_live,
            ),
            ("POST /notifications validation", post_errors),
            (": ping comments every ping_interval_ms", pings),
            (
                "Last-Event-ID header replays what was missed, then live",
                replay_with_header,
            ),
            ("lastEventId query replays too", replay_with_query),
            (
                "replay racing live notifications: no gap, no duplicate",
                replay_races_live,
            ),
            ("every open stream of the recipient gets it", several_streams),
            ("GET /notifications, unread, limit, before; mark read", list_and_read),
            ("an @mention in chat reaches the event stream", mention_reaches_stream),
        ],
    );
}

fn stream_headers(s: &Server) {
    let bob = login(s, "bob", "bobpass");
    let mut stream = SseStream::open_bearer(s, &bob.access, &[]);
    assert_eq!(stream.status, 200);
    let content_type = stream.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/event-stream"),
        "Content-Type {content_type:?}"
    );
    assert_eq!(stream.header("Cache-Control"), Some("no-cache"));
    assert_eq!(stream.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(
        stream.header("Content-Length"),
        None,
        "an event stream has no Content-Length"
    );
    let first = stream
        .next_event(common::IO_TIMEOUT)
        .unwrap_or_else(|| panic!("no event on a fresh stream"));
    assert_eq!(first.event.as_deref(), Some("connected"), "first event: {first:?}");
    // EventSource cannot set headers: the token may come in the query.
    let target = format!("{STREAM}?access_token={}", bob.access);
    let mut by_query = SseStream::open(s, &target, &[]).unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    assert_eq!(by_query.status, 200);
    by_query.expect_event("connected");
}

fn stream_errors(s: &Server) {
    let bob = login(s, "bob", "bobpass");
    let uid = tokens::uid_of(&bob.access);
    let now = now_secs();
    let expired = forge(
        &claims_for("bob", uid, "access", now - 7200, now - 3600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    let bearer = format!("Bearer {}", bob.access);
    let bearer_refresh = format!("Bearer {}", bob.refresh);
    let bearer_expired = format!("Bearer {expired}");
    let with_query = format!("{STREAM}?access_token={}", bob.access);
    let bad_query = format!("{STREAM}?access_token=not-a-token");
    let mut checks = Checks::new();
    let mut refused = |what: &str, target: &str, headers: &[(&str, &str)], status: u16, code: &str| {
        checks.check(what, || match SseStream::open(s, target, headers) {
            Ok(_) => panic!("{what}: the stream was opened"),
            Err(r) => r.assert_error(status, code),
        });
    };
    refused("no token", STREAM, &[], 401, "UNAUTHORIZED");
    refused(
        "garbage bearer",
        STREAM,
        &[("Authorization", "Bearer nope")],
        401,
        "INVALID_TOKEN",
    );
    refused("garbage query token", &bad_query, &[], 401, "INVALID_TOKEN");
    refused(
        "expired",
        STREAM,
        &[("Authorization", &bearer_expired)],
        401,
        "TOKEN_EXPIRED",
    );
    refused(
        "refresh token",
        STREAM,
        &[("Authorization", &bearer_refresh)],
        401,
        "INVALID_TOKEN",
    );
    refused(
        "token twice",
        &with_query,
        &[("Authorization", &bearer)],
        400,
        "INVALID_REQUEST",
    );
    let last_event_id = |value| [("Authorization", bearer.as_str()), ("Last-Event-ID", value)];
    refused(
        "non-numeric Last-Event-ID",
        STREAM,
        &last_event_id("abc"),
        400,
        "INVALID_REQUEST",
    );
    refused(
        "negative Last-Event-ID",
        STREAM,
        &last_event_id("-3"),
        400,
        "INVALID_REQUEST",
    );
    let query = format!("{STREAM}?lastEventId=x1");
    refused(
        "non-numeric lastEventId",
        &query,
        &[("Authorization", &bearer)],
        400,
        "INVALID_REQUEST",
    );
    checks.finish();
    s.assert_healthy("refused event streams");
}

fn direct_notification_live(s: &Server) {
    let (user, tokens) = new_user(s, "live_");
    let mut stream = open_connected(s, &tokens.access, &[]);
    let text = "배포 끝났어요 ✅ \"ok\"\nline two";
    let data = notify(s, &alice(s).access, &user, text);
    check_notification(&data, "direct", &user, "alice", text);
    assert_eq!(
        data["roomId"],
        Value::Null,
        "a direct notification has roomId null: {data}"
    );
    let (id, pushed) = stream.expect_notification();
    assert_eq!(id, id_of(&data));
    assert_eq!(pushed, data, "the pushed notification is the created one");
    assert!(
        stream.notifications_for(Duration::from_millis(400)).is_empty(),
        "one notification, one event"
    );
    // Stored once, for the recipient.
    let listed = list(s, &tokens.access, "");
    assert_eq!(listed, vec![data], "stored for the recipient");
}

fn post_errors(s: &Server) {
    let token = alice(s).access;
    let post = |body: Value| s.post_json("/notifications", Some(&token), &body);
    post(json!({ "recipient": "nobody_here", "message": "hi" })).assert_error(404, "NOT_FOUND");
    post(json!({ "recipient": "bob", "message": "" })).assert_error(400, "INVALID_REQUEST");
    post(json!({ "recipient": "bob", "message": "x".repeat(2001) })).assert_error(400, "INVALID_REQUEST");
    post(json!({ "recipient": "bob" })).assert_error(400, "INVALID_REQUEST");
    post(json!({ "message": "hi" })).assert_error(400, "INVALID_REQUEST");
    post(json!({ "recipient": "bob", "message": 7 })).assert_error(400, "INVALID_REQUEST");
    post(json!({ "recipient": "bob", "message": "hi", "type": "mention" })).assert_error(400, "INVALID_REQUEST");
    let n = post(json!({ "recipient": "bob", "message": "x".repeat(2000) })).data(201);
    assert_eq!(n["message"].as_str().map(str::len), Some(2000));
    s.post_json("/notifications", None, &json!({ "recipient": "bob", "message": "hi" }))
        .assert_error(401, "UNAUTHORIZED");
    let text = Request::post("/notifications")
        .bearer(&token)
        .body(Some("text/plain"), r#"{"recipient":"bob","message":"hi"}"#);
    s.request(&text).assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
}

fn pings(s: &Server) {
    let bob = login(s, "bob", "bobpass");
    let mut stream = open_connected(s, &bob.access, &[]);
    let started = Instant::now();
    let mut last = started;
    let mut gaps = Vec::new();
    while started.elapsed() < Duration::from_millis(1500) {
        match stream.next_item(Duration::from_millis(1500).saturating_sub(started.elapsed())) {
            Some(SseItem::Comment(c)) => {
                assert_eq!(c, "ping", "comment {c:?}");
                gaps.push(last.elapsed());
                last = Instant::now();
            }
            Some(other) => panic!("unexpected {other:?} on an idle stream"),
            None => break,
        }
    }
    assert!(
        !stream.is_closed(),
        "the stream closed while idle (pings: {})",
        gaps.len()
    );
    assert!(
        gaps.len() >= 3,
        "{} pings in 1.5 s with ping_interval_ms = 300",
        gaps.len()
    );
    let worst = gaps.iter().max().copied().unwrap_or_default();
    assert!(worst <= Duration::from_millis(650), "ping gap {worst:?}: {gaps:?}");
}

fn replay_with_header(s: &Server) {
    let (user, tokens) = new_user(s, "replay_");
    let sender = alice(s).access;
    let sent: Vec<i64> = (1..=3)
        .map(|i| id_of(&notify(s, &sender, &user, &format!("n{i}"))))
        .collect();
    assert!(sent.windows(2).all(|w| w[0] < w[1]), "ids ascend: {sent:?}");
    let first = sent[0].to_string();
    let mut stream = open_connected(s, &tokens.access, &[("Last-Event-ID", &first)]);
    let (id2, n2) = stream.expect_notification();
    let (id3, n3) = stream.expect_notification();
    assert_eq!([id2, id3], [sent[1], sent[2]], "replayed after Last-Event-ID {first}");
    assert_eq!(n2["message"], "n2");
    assert_eq!(n3["message"], "n3");
    let live = id_of(&notify(s, &sender, &user, "n4"));
    let (id4, _) = stream.expect_notification();
    assert_eq!(id4, live, "then live");
    let extra = stream.notifications_for(Duration::from_millis(500));
    assert!(extra.is_empty(), "duplicates after the replay: {extra:?}");
    // Nothing missed: replay from the latest id gives nothing.
    let mut caught_up = open_connected(s, &tokens.access, &[("Last-Event-ID", &live.to_string())]);
    assert!(caught_up.notifications_for(Duration::from_millis(500)).is_empty());
}

fn replay_with_query(s: &Server) {
    let (user, tokens) = new_user(s, "query_");
    let sender = alice(s).access;
    let sent: Vec<i64> = (1..=4)
        .map(|i| id_of(&notify(s, &sender, &user, &format!("q{i}"))))
        .collect();
    let mut stream = SseStream::open(
        s,
        &format!("{STREAM}?access_token={}&lastEventId={}", tokens.access, sent[1]),
        &[],
    )
    .unwrap_or_else(|r| panic!("{} {}", r.status, r.text()));
    stream.expect_event("connected");
    let got: Vec<i64> = (0..2).map(|_| stream.expect_notification().0).collect();
    assert_eq!(got, sent[2..], "lastEventId={}", sent[1]);
    let mut from_zero = open_connected(s, &tokens.access, &[("Last-Event-ID", "0")]);
    let got: Vec<i64> = (0..4).map(|_| from_zero.expect_notification().0).collect();
    assert_eq!(got, sent, "Last-Event-ID: 0 replays everything");
    assert!(from_zero.notifications_for(Duration::from_millis(300)).is_empty());
}

fn replay_races_live(s: &Server) {
    let (user, tokens) = new_user(s, "race_");
    let sender = alice(s).access;
    let before: Vec<i64> = (0..5)
        .map(|i| id_of(&notify(s, &sender, &user, &format!("b{i}"))))
        .collect();
    let last_seen = before[1];
    let (live, got) = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            (0..30)
                .map(|i| id_of(&notify(s, &sender, &user, &format!("l{i}"))))
                .collect::<Vec<i64>>()
        });
        // Connect while the writer is busy.
        std::thread::sleep(Duration::from_millis(30));
        let mut stream = open_connected(s, &tokens.access, &[("Last-Event-ID", &last_seen.to_string())]);
        let live = writer.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let expected = 3 + live.len();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < expected && Instant::now() < deadline {
            match stream.next_event(deadline.saturating_duration_since(Instant::now())) {
                Some(e) if e.event.as_deref() == Some("notification") => {
                    got.push(e.id.as_deref().and_then(|i| i.parse::<i64>().ok()).unwrap_or(-1));
                }
                Some(other) => panic!("unexpected event {other:?}"),
                None => break,
            }
        }
        got.extend(
            stream
                .notifications_for(Duration::from_millis(300))
                .iter()
                .map(|e| e.id.as_deref().and_then(|i| i.parse::<i64>().ok()).unwrap_or(-1)),
        );
        (live, got)
    });
    let mut expected: Vec<i64> = before[2..].to_vec();
    expected.extend(&live);
    assert_eq!(
        got, expected,
        "replay + live after Last-Event-ID {last_seen}: exactly once each, in order"
    );
}

fn several_streams(s: &Server) {
    let (user, tokens) = new_user(s, "multi_");
    let by_query = format!("{STREAM}?access_token={}", tokens.access);
    let mut streams = [
        open_connected(s, &tokens.access, &[]),
        open_connected(s, &tokens.access, &[]),
        SseStream::open(s, &by_query, &[]).unwrap_or_else(|r| panic!("{} {}", r.status, r.text())),
    ];
    streams[2].expect_event("connected");
    // Another user's stream must not see it.
    let bob = login(s, "bob", "bobpass");
    let mut bystander = open_connected(s, &bob.access, &[]);
    let n = notify(s, &alice(s).access, &user, "to all my tabs");
    for (i, stream) in streams.iter_mut().enumerate() {
        let (id, data) = stream.expect_notification();
        assert_eq!(id, id_of(&n), "stream {i}");
        assert_eq!(data, n, "stream {i}");
    }
    let leaked = bystander.notifications_for(Duration::from_millis(400));
    assert!(leaked.is_empty(), "another user's stream got {leaked:?}");
}

fn list_and_read(s: &Server) {
    let (user, tokens) = new_user(s, "list_");
    let sender = alice(s).access;
    let sent: Vec<Value> = (1..=4)
        .map(|i| notify(s, &sender, &user, &format!("item {i}")))
        .collect();
    let sent_ids = ids(&sent);
    let (a, b, c, d) = (sent_ids[0], sent_ids[1], sent_ids[2], sent_ids[3]);
    let all = list(s, &tokens.access, "");
    assert_eq!(ids(&all), [d, c, b, a], "newest first");
    for (n, original) in all.iter().rev().zip(&sent) {
        assert_eq!(n, original);
    }
    assert_eq!(ids(&list(s, &tokens.access, "?limit=2")), [d, c], "limit");
    assert_eq!(ids(&list(s, &tokens.access, &format!("?before={c}"))), [b, a], "before");
    assert_eq!(
        ids(&list(s, &tokens.access, &format!("?before={d}&limit=1"))),
        [c],
        "before + limit"
    );
    // Mark one read.
    let read = s.post_json(&format!("/notifications/{b}/read"), Some(&tokens.access), &json!({}));
    let data = read.data(200);
    assert_eq!(data["id"], b, "{data}");
    assert_eq!(data["read"], true, "{data}");
    let mark_without_body = Request::post(&format!("/notifications/{c}/read")).bearer(&tokens.access);
    let data = s.request(&mark_without_body).data(200);
    assert_eq!(data["read"], true, "marking needs no body: {data}");
    assert_eq!(ids(&list(s, &tokens.access, "?unread=true")), [d, a], "unread only");
    let all = list(s, &tokens.access, "");
    let read_flags: Vec<bool> = all.iter().map(|n| n["read"] == true).collect();
    assert_eq!(read_flags, [false, true, true, false], "read flags of [d, c, b, a]");
    // Only the recipient may mark it; bad ids.
    let bob = login(s, "bob", "bobpass").access;
    s.post_json(&format!("/notifications/{a}/read"), Some(&bob), &json!({}))
        .assert_error(404, "NOT_FOUND");
    assert_eq!(
        ids(&list(s, &tokens.access, "?unread=true")),
        [d, a],
        "bob could not mark it"
    );
    s.post_json("/notifications/abc/read", Some(&tokens.access), &json!({}))
        .assert_error(400, "INVALID_REQUEST");
    s.post_json("/notifications/999999999/read", Some(&tokens.access), &json!({}))
        .assert_error(404, "NOT_FOUND");
    s.post_json(&format!("/notifications/{a}/read"), None, &json!({}))
        .assert_error(401, "UNAUTHORIZED");
    // Other users' lists do not show them.
    let bobs = list(s, &bob, "?limit=500");
    assert!(
        !bobs.iter().any(|n| sent_ids.contains(&id_of(n))),
        "bob's list shows {user}'s notifications"
    );
}

fn mention_reaches_stream(s: &Server) {
    let (user, tokens) = new_user(s, "men_");
    let mut stream = open_connected(s, &tokens.access, &[]);
    let room = unique_room("sse-mention");
    let mut chat = StompClient::connect(s, &alice(s).access);
    let text = format!("hey @{user}, look");
    chat.send_chat(&room, &text, Some("m"));
    chat.expect_receipt("m");
    let (_, n) = stream.expect_notification();
    check_notification(&n, "mention", &user, "alice", &text);
    assert_eq!(n["roomId"], room.as_str(), "{n}");
}

// ---------------------------------------------------------------------------------------------
// Rate limit on direct notifications (own server: the limit is server-wide)
// ---------------------------------------------------------------------------------------------

#[test]
fn direct_notification_rate_limit() {
    let config = Config::new().set("notifications", "direct_per_sender_per_minute", 3);
    run_on_each_backend(
        "direct_notification_rate_limit",
        &config,
        &[("the 4th direct notification in a minute is 429", direct_rate_limit)],
    );
}

fn direct_rate_limit(s: &Server) {
    let alice = alice(s).access;
    for i in 0..3 {
        notify(s, &alice, "bob", &format!("allowed {i}"));
    }
    let r = s.post_json(
        "/notifications",
        Some(&alice),
        &json!({ "recipient": "bob", "message": "one too many" }),
    );
    r.assert_error(429, "TOO_MANY_REQUESTS");
    let retry = r
        .header("Retry-After")
        .unwrap_or_else(|| panic!("429 without Retry-After"));
    let secs: u64 = retry
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry:?} is not delta-seconds"));
    assert!(secs >= 1, "Retry-After {secs}");
    // Nothing was stored for the refused one.
    let bob = login(s, "bob", "bobpass").access;
    let bobs = list(s, &bob, "");
    assert!(
        !bobs.iter().any(|n| n["message"] == "one too many"),
        "a refused notification was stored"
    );
    // The limit is per sender.
    let testuser = login(s, "testuser", "testpass").access;
    notify(s, &testuser, "bob", "from someone else");
}

// ---------------------------------------------------------------------------------------------
// The stream ends when its access token expires
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_token_expiry() {
    let config = Config::new()
        .set("jwt", "access_ttl_secs", 2)
        .set("notifications", "ping_interval_ms", 300);
    run_on_each_backend(
        "stream_token_expiry",
        &config,
        &[(
            "the event stream is closed when the access token expires",
            stream_expires,
        )],
    );
}

fn stream_expires(s: &Server) {
    let logged_in = Instant::now();
    let bob = login(s, "bob", "bobpass");
    let mut stream = open_connected(s, &bob.access, &[]);
    assert!(
        stream.closed_within(Duration::from_secs(5)),
        "the stream outlived its 2 s access token by 3 s"
    );
    let closed_at = logged_in.elapsed();
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at <= Duration::from_millis(3500),
        "closed {closed_at:?} after login with access_ttl_secs = 2"
    );
    // With a fresh token the client reconnects.
    let fresh = login(s, "bob", "bobpass");
    open_connected(s, &fresh.access, &[]);
}

// ---------------------------------------------------------------------------------------------
// The replay is paged by replay_limit, and a reconnect past several pages misses nothing
// ---------------------------------------------------------------------------------------------

#[test]
fn replay_crosses_the_page_size() {
    let config = Config::new().set("notifications", "replay_limit", 2);
    run_on_each_backend(
        "replay_crosses_the_page_size",
        &config,
        &[("seven missed notifications replay over four pages of two", replay_pages)],
    );
}

fn replay_pages(s: &Server) {
    let (name, tokens) = new_user(s, "pages_");
    let sender = alice(s);
    let first = id_of(&notify(s, &sender.access, &name, "before the gap"));
    let missed: Vec<i64> = (0..7)
        .map(|i| id_of(&notify(s, &sender.access, &name, &format!("missed {i}"))))
        .collect();
    let mut stream = open_connected(s, &tokens.access, &[("Last-Event-ID", &first.to_string())]);
    let mut got: Vec<i64> = Vec::new();
    while got.len() < missed.len() {
        match stream.next_event(Duration::from_secs(5)) {
            Some(e) if e.event.as_deref() == Some("notification") => {
                got.push(e.id.as_deref().and_then(|i| i.parse().ok()).unwrap_or(-1));
            }
            other => panic!("expected a replayed notification, got {other:?} after {got:?}"),
        }
    }
    assert_eq!(got, missed, "every missed notification, in order, once");
    // Then the stream is live.
    let live = id_of(&notify(s, &sender.access, &name, "live"));
    let after: Vec<i64> = stream
        .notifications_for(Duration::from_millis(500))
        .iter()
        .map(|e| e.id.as_deref().and_then(|i| i.parse().ok()).unwrap_or(-1))
        .collect();
    assert_eq!(after, vec![live]);
}
