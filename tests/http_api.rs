//! REST API, authentication, input validation, HTTP/1.1 bounds, CORS, health and metrics,
//! graceful shutdown — against a real server on SQLite and on MariaDB (SPEC §3, §7).

mod common;

use std::time::{Duration, Instant};

use common::http::{Conn, Request, Response};
use common::server::{Config, Server};
use common::sse::SseStream;
use common::stomp::StompClient;
use common::tokens::{self, alg_none, claims, claims_for, forge, login, login_response, now_secs, DEV_SECRET};
use common::{metric_value, run_on_each_backend, unique};
use herald::stomp::frame::Command;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Authentication and users
// ---------------------------------------------------------------------------------------------

#[test]
fn auth_and_users() {
    run_on_each_backend(
        "auth_and_users",
        &Config::new(),
        &[
            ("login returns the seed's envelope and a token pair", login_seeded_users),
            ("wrong password or unknown user is 401 UNAUTHORIZED", login_failures),
            ("signup, login, /users/me", signup_login_me),
            ("signup of a taken username is 409 CONFLICT", signup_conflict),
            ("signup validates username and password", signup_validation),
            ("request bodies: content type, JSON, fields", body_validation),
            (
                "reissue rotates; reuse revokes the whole family",
                reissue_rotation_and_reuse,
            ),
            (
                "access and refresh tokens are not interchangeable",
                token_type_confusion,
            ),
            (
                "expired, forged, alg none and other-algorithm tokens",
                forged_and_expired_tokens,
            ),
            ("logout revokes the refresh token", logout_revokes),
            ("protected routes need a token", protected_routes_need_a_token),
            ("error envelopes have exactly success, message, code", envelope_shape),
            ("CORS: the default configuration allows any origin", cors_default),
        ],
    );
}

fn login_seeded_users(s: &Server) {
    for (user, pass) in [("testuser", "testpass"), ("alice", "alicepass"), ("bob", "bobpass")] {
        let r = login_response(s, user, pass);
        assert_eq!(r.status, 200, "login {user}: {}", r.text());
        assert!(
            r.header("Content-Type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "login content type: {:?}",
            r.header("Content-Type")
        );
        let v = r.json();
        assert_eq!(v["success"], true, "{v}");
        assert_eq!(v["message"], "로그인 성공", "{v}");
        let data = &v["data"];
        assert_eq!(data["tokenType"], "Bearer", "{v}");
        assert_eq!(data["expiresIn"], 900, "{v}");
        let pair = tokens::tokens_of(data);
        assert_ne!(pair.access, pair.refresh);
        let access = claims(&pair.access);
        assert_eq!(access["sub"], user, "{access}");
        assert_eq!(access["typ"], "access", "{access}");
        assert!(access["uid"].is_i64(), "uid claim: {access}");
        assert!(
            access["jti"].as_str().is_some_and(|j| !j.is_empty()),
            "jti claim: {access}"
        );
        let ttl = access["exp"].as_i64().unwrap_or(0) - access["iat"].as_i64().unwrap_or(0);
        assert_eq!(ttl, 900, "access TTL: {access}");
        let iat = access["iat"].as_i64().unwrap_or(0);
        assert!((iat - now_secs()).abs() <= 5, "iat is now: {access}");
        let refresh = claims(&pair.refresh);
        assert_eq!(refresh["typ"], "refresh", "{refresh}");
        assert_eq!(refresh["sub"], user, "{refresh}");
        let refresh_ttl = refresh["exp"].as_i64().unwrap_or(0) - refresh["iat"].as_i64().unwrap_or(0);
        assert_eq!(refresh_ttl, 14 * 24 * 3600, "refresh TTL: {refresh}");
    }
    // Two logins give different tokens (jti).
    let a = login(s, "testuser", "testpass");
    let b = login(s, "testuser", "testpass");
    assert_ne!(a.access, b.access);
    assert_ne!(a.refresh, b.refresh);
}

fn login_failures(s: &Server) {
    login_response(s, "testuser", "wrongpass").assert_error(401, "UNAUTHORIZED");
    login_response(s, "no_such_user_x", "whatever1").assert_error(401, "UNAUTHORIZED");
    login_response(s, "alice", "bobpass").assert_error(401, "UNAUTHORIZED");
    login_response(s, "Alice", "alicepass").assert_error(401, "UNAUTHORIZED");
}

fn signup_login_me(s: &Server) {
    let username = unique("user_", 32);
    let data = tokens::signup_response(s, &username, "s3cret-password").data(201);
    assert_eq!(data["username"], username.as_str(), "{data}");
    let id = data["id"].as_i64().unwrap_or_else(|| panic!("numeric id in {data}"));
    let pair = login(s, &username, "s3cret-password");
    assert_eq!(tokens::uid_of(&pair.access), id);
    let me = s.get("/users/me", Some(&pair.access)).data(200);
    assert_eq!(me, json!({ "id": id, "username": username }));
    // The seeded users are real users too.
    let alice = login(s, "alice", "alicepass");
    let me = s.get("/users/me", Some(&alice.access)).data(200);
    assert_eq!(me["username"], "alice");
    assert_ne!(me["id"], id);
    // A token minted elsewhere with the shared secret (HS256, UTF-8 bytes as key) is honoured.
    let uid = tokens::uid_of(&alice.access);
    let now = now_secs();
    let minted = forge(
        &claims_for("alice", uid, "access", now, now + 60),
        DEV_SECRET,
        Algorithm::HS256,
    );
    let me = s.get("/users/me", Some(&minted)).data(200);
    assert_eq!(me["username"], "alice");
}

fn signup_conflict(s: &Server) {
    let username = unique("dup_", 32);
    tokens::signup_response(s, &username, "password-1").data(201);
    tokens::signup_response(s, &username, "password-2").assert_error(409, "CONFLICT");
    tokens::signup_response(s, "testuser", "password-3").assert_error(409, "CONFLICT");
    // The first password still works, the second does not.
    login(s, &username, "password-1");
    login_response(s, &username, "password-2").assert_error(401, "UNAUTHORIZED");
}

fn signup_validation(s: &Server) {
    let too_long = "u".repeat(33);
    for bad in [
        "ab",
        too_long.as_str(),
        "bad name",
        "한글이름",
        "semi;colon",
        "slash/name",
        "",
    ] {
        tokens::signup_response(s, bad, "long-enough-password").assert_error(400, "INVALID_REQUEST");
    }
    let long_password = "p".repeat(129);
    for bad in ["short7!", long_password.as_str(), ""] {
        let name = unique("pw_", 32);
        tokens::signup_response(s, &name, bad).assert_error(400, "INVALID_REQUEST");
    }
    // Boundaries are accepted (each server has a fresh database, so fixed names are free):
    // 3 and 32 characters of the allowed alphabet, 8 and 128 character passwords.
    tokens::signup_response(s, "x.y", "12345678").data(201);
    login(s, "x.y", "12345678");
    let thirty_two = format!("A.b-_{}", "z".repeat(27));
    tokens::signup_response(s, &thirty_two, &"p".repeat(128)).data(201);
    login(s, &thirty_two, &"p".repeat(128));
    // Passwords are characters, not bytes: 8 Korean characters are 24 bytes and valid.
    let korean = unique("kr_", 32);
    tokens::signup_response(s, &korean, "비밀번호비밀번호").data(201);
    login(s, &korean, "비밀번호비밀번호");
}

fn body_validation(s: &Server) {
    let creds = json!({ "username": "testuser", "password": "testpass" }).to_string();
    // Content type.
    let no_type = Request::post("/auth/login").body(None, creds.clone());
    s.request(&no_type).assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let text = Request::post("/auth/login").body(Some("text/plain"), creds.clone());
    s.request(&text).assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let form = Request::post("/auth/signup").body(Some("application/x-www-form-urlencoded"), "username=a&password=b");
    s.request(&form).assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let charset = Request::post("/auth/login").body(Some("application/json; charset=utf-8"), creds.clone());
    assert_eq!(
        s.request(&charset).status,
        200,
        "application/json with a charset parameter is JSON"
    );
    // Bad JSON, wrong types, missing and unknown fields, on every auth endpoint that takes a body.
    let bodies: [(&str, &[u8]); 8] = [
        ("not JSON", b"{not json"),
        ("empty body", b""),
        ("JSON array", b"[]"),
        ("number for a string", br#"{"username":1,"password":"testpass"}"#),
        ("null for a string", br#"{"username":null,"password":"testpass"}"#),
        ("missing password", br#"{"username":"testuser"}"#),
        (
            "unknown field",
            br#"{"username":"testuser","password":"testpass","admin":true}"#,
        ),
        ("truncated", br#"{"username":"testuser","#),
    ];
    for path in ["/auth/login", "/auth/signup"] {
        for (what, body) in bodies {
            let req = Request::post(path).body(Some("application/json"), body.to_vec());
            let r = s.request(&req);
            assert_eq!(r.status, 400, "{path} with {what}: {}", r.text());
            r.assert_error(400, "INVALID_REQUEST");
        }
    }
    for (what, body) in [
        ("not JSON", "nope"),
        ("missing refreshToken", "{}"),
        ("wrong type", r#"{"refreshToken":42}"#),
        ("unknown field", r#"{"refreshToken":"x.y.z","extra":1}"#),
    ] {
        let req = Request::post("/auth/reissue").body(Some("application/json"), body);
        let r = s.request(&req);
        assert_eq!(r.status, 400, "/auth/reissue with {what}: {}", r.text());
        r.assert_error(400, "INVALID_REQUEST");
    }
    // Invalid UTF-8 inside a JSON string.
    let req = Request::post("/auth/login").body(
        Some("application/json"),
        b"{\"username\":\"\xff\xfe\",\"password\":\"x\"}".to_vec(),
    );
    s.request(&req).assert_error(400, "INVALID_REQUEST");
    s.assert_healthy("invalid bodies");
}

fn reissue_rotation_and_reuse(s: &Server) {
    let first = login(s, "alice", "alicepass");
    let second = tokens::tokens_of(
        &s.post_json("/auth/reissue", None, &json!({ "refreshToken": first.refresh }))
            .data(200),
    );
    assert_ne!(second.refresh, first.refresh, "a NEW refresh token");
    assert_ne!(second.access, first.access, "a NEW access token");
    assert_eq!(claims(&second.access)["sub"], "alice");
    assert_eq!(s.get("/users/me", Some(&second.access)).data(200)["username"], "alice");
    // The alias rotates too.
    let third = tokens::tokens_of(
        &s.post_json("/auth/refresh", None, &json!({ "refreshToken": second.refresh }))
            .data(200),
    );
    // Re-using a spent refresh token is refused and revokes the family: the newest one dies too.
    let reuse = s.post_json("/auth/reissue", None, &json!({ "refreshToken": first.refresh }));
    assert_eq!(reuse.status, 401, "re-used refresh token: {}", reuse.text());
    assert_eq!(reuse.json()["success"], false);
    let after = s.post_json("/auth/reissue", None, &json!({ "refreshToken": third.refresh }));
    assert_eq!(
        after.status,
        401,
        "the family's newest refresh token must be revoked after a reuse: {}",
        after.text()
    );
    // Another login (another family) is unaffected.
    let other = login(s, "alice", "alicepass");
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": other.refresh }))
        .data(200);
}

fn token_type_confusion(s: &Server) {
    let pair = login(s, "bob", "bobpass");
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": pair.access }))
        .assert_error(401, "INVALID_TOKEN");
    s.get("/users/me", Some(&pair.refresh))
        .assert_error(401, "INVALID_TOKEN");
    // The refresh token still works for what it is for.
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": pair.refresh }))
        .data(200);
}

fn forged_and_expired_tokens(s: &Server) {
    let pair = login(s, "bob", "bobpass");
    let uid = tokens::uid_of(&pair.access);
    let now = now_secs();
    let expired_access = forge(
        &claims_for("bob", uid, "access", now - 7200, now - 3600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    s.get("/users/me", Some(&expired_access))
        .assert_error(401, "TOKEN_EXPIRED");
    let expired_refresh = forge(
        &claims_for("bob", uid, "refresh", now - 7200, now - 3600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": expired_refresh }))
        .assert_error(401, "TOKEN_EXPIRED");
    let valid_claims = claims_for("bob", uid, "access", now, now + 600);
    let other_key = forge(&valid_claims, "another-secret-of-at-least-32-bytes!!", Algorithm::HS256);
    let hs512 = forge(&valid_claims, DEV_SECRET, Algorithm::HS512);
    let hs384 = forge(&valid_claims, DEV_SECRET, Algorithm::HS384);
    let none = alg_none(&valid_claims);
    let wrong_typ = forge(
        &claims_for("bob", uid, "admin", now, now + 600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    let mut tampered = pair.access.clone();
    let payload_start = tampered.find('.').map_or(0, |i| i + 1);
    let forged_payload = tokens::b64url(
        claims_for("alice", uid, "access", now, now + 600)
            .to_string()
            .as_bytes(),
    );
    let payload_end = tampered.rfind('.').unwrap_or(tampered.len());
    tampered.replace_range(payload_start..payload_end, &forged_payload);
    for (what, token) in [
        ("signed with another key", other_key.as_str()),
        ("HS512", hs512.as_str()),
        ("HS384", hs384.as_str()),
        ("alg none", none.as_str()),
        ("typ admin", wrong_typ.as_str()),
        ("payload swapped", tampered.as_str()),
        ("garbage", "not-a-jwt"),
        ("three garbage parts", "a.b.c"),
    ] {
        let r = s.get("/users/me", Some(token));
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        r.assert_error(401, "INVALID_TOKEN");
    }
    let none_refresh = alg_none(&claims_for("bob", uid, "refresh", now, now + 600));
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": none_refresh }))
        .assert_error(401, "INVALID_TOKEN");
    // A well-signed refresh token the server never issued is refused.
    let never_issued = forge(
        &claims_for("bob", uid, "refresh", now, now + 600),
        DEV_SECRET,
        Algorithm::HS256,
    );
    let r = s.post_json("/auth/reissue", None, &json!({ "refreshToken": never_issued }));
    assert_eq!(r.status, 401, "unknown refresh token: {}", r.text());
}

fn logout_revokes(s: &Server) {
    let pair = login(s, "testuser", "testpass");
    let body = json!({ "refreshToken": pair.refresh });
    let r = s.post_json("/auth/logout", Some(&pair.access), &body);
    assert_eq!(r.status, 200, "logout: {}", r.text());
    assert_eq!(r.json()["success"], true);
    let r = s.post_json("/auth/reissue", None, &body);
    assert_eq!(r.status, 401, "reissue after logout: {}", r.text());
    // Logout needs a bearer token.
    let other = login(s, "testuser", "testpass");
    s.post_json("/auth/logout", None, &json!({ "refreshToken": other.refresh }))
        .assert_error(401, "UNAUTHORIZED");
    // And did not revoke anything then.
    s.post_json("/auth/reissue", None, &json!({ "refreshToken": other.refresh }))
        .data(200);
}

fn protected_routes_need_a_token(s: &Server) {
    for path in ["/users/me", "/chat/history/room-1", "/notifications"] {
        s.get(path, None).assert_error(401, "UNAUTHORIZED");
    }
    let basic = Request::get("/users/me").header("Authorization", "Basic dGVzdHVzZXI6dGVzdHBhc3M=");
    let r = s.request(&basic);
    assert_eq!(r.status, 401, "Basic credentials are not a bearer token: {}", r.text());
    let empty = Request::get("/users/me").header("Authorization", "Bearer ");
    let r = s.request(&empty);
    assert_eq!(r.status, 401, "empty bearer token: {}", r.text());
    // The scheme name is case-insensitive (RFC 7235).
    let pair = login(s, "testuser", "testpass");
    let lower = Request::get("/users/me").header("Authorization", &format!("bearer {}", pair.access));
    assert_eq!(s.request(&lower).data(200)["username"], "testuser");
}

// ---------------------------------------------------------------------------------------------
// Login rate limiting (its own server: the limits are server-wide)
// ---------------------------------------------------------------------------------------------

#[test]
fn login_rate_limits() {
    let config =
        Config::new()
            .set("auth", "login_per_username_per_minute", 3)
            .set("auth", "login_per_ip_per_minute", 8);
    run_on_each_backend(
        "login_rate_limits",
        &config,
        &[("per username, then per IP, with Retry-After", login_rate_limit)],
    );
}

#[track_caller]
fn assert_too_many(r: &Response, what: &str) {
    assert_eq!(r.status, 429, "{what}: {}", r.text());
    r.assert_error(429, "TOO_MANY_REQUESTS");
    let retry = r
        .header("Retry-After")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"));
    let secs: u64 = retry
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not delta-seconds"));
    // A sliding one-minute window may ask for more than 60 s, never more than two windows.
    assert!((1..=120).contains(&secs), "{what}: Retry-After {secs}");
}

fn login_rate_limit(s: &Server) {
    // Three attempts per username per minute, failed or not.
    login(s, "alice", "alicepass");
    login_response(s, "alice", "wrong-password").assert_error(401, "UNAUTHORIZED");
    login(s, "alice", "alicepass");
    assert_too_many(&login_response(s, "alice", "alicepass"), "4th login of alice");
    // Another username is not limited by alice's attempts.
    login(s, "bob", "bobpass");
    // The per-IP limit (8) catches a client that rotates usernames.
    let mut limited_after = None;
    for i in 0..10 {
        let r = login_response(s, &format!("nobody{i}"), "whatever-pass");
        if r.status == 429 {
            assert_too_many(&r, "login from an IP over its limit");
            limited_after = Some(i);
            break;
        }
        r.assert_error(401, "UNAUTHORIZED");
    }
    assert!(
        limited_after.is_some(),
        "10 logins with fresh usernames from one IP, over login_per_ip_per_minute=8, were never limited"
    );
}

// ---------------------------------------------------------------------------------------------
// Chat history endpoint: parameters (the contents are tested with real messages in stomp_chat.rs)
// ---------------------------------------------------------------------------------------------

#[test]
fn chat_history_parameters() {
    run_on_each_backend(
        "chat_history_parameters",
        &Config::new(),
        &[("limit, before, after and roomId are validated", history_parameters)],
    );
}

fn history_parameters(s: &Server) {
    let t = login(s, "testuser", "testpass").access;
    let room = common::unique_room("empty");
    let r = s.get(&format!("/chat/history/{room}"), Some(&t));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!([]),
        "an unknown room has an empty history, as a bare array"
    );
    let max_room = "r".repeat(64);
    for query in [
        "",
        "?limit=1",
        "?limit=500",
        "?after=0",
        "?before=10",
        "?after=1&before=9&limit=5",
    ] {
        let r = s.get(&format!("/chat/history/{max_room}{query}"), Some(&t));
        assert_eq!(r.status, 200, "history{query}: {}", r.text());
        assert!(r.json().is_array(), "bare array expected: {}", r.text());
    }
    for query in [
        "?limit=0",
        "?limit=501",
        "?limit=-1",
        "?limit=abc",
        "?limit=",
        "?before=abc",
        "?after=x",
        "?after=-5",
    ] {
        let r = s.get(&format!("/chat/history/{room}{query}"), Some(&t));
        assert_eq!(r.status, 400, "history{query}: {}", r.text());
        r.assert_error(400, "INVALID_REQUEST");
    }
    let too_long = "r".repeat(65);
    for bad in ["room%20x", too_long.as_str(), "room.1", "%zz", "r%C3%A9"] {
        let r = s.get(&format!("/chat/history/{bad}"), Some(&t));
        assert_eq!(r.status, 400, "roomId {bad:?}: {}", r.text());
        r.assert_error(400, "INVALID_REQUEST");
    }
    // Percent-encoding of allowed characters is decoded.
    let r = s.get("/chat/history/room%2D1", Some(&t));
    assert_eq!(r.status, 200, "percent-encoded roomId: {}", r.text());
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 handling: bounds, malformed input, timeouts, keep-alive, pipelining, CORS, ops
// ---------------------------------------------------------------------------------------------

#[test]
fn http_protocol_and_bounds() {
    let config = Config::new().set("server", "header_timeout_ms", 500).set(
        "server",
        "cors_allowed_origins",
        r#"["https://app.example"]"#,
    );
    run_on_each_backend(
        "http_protocol_and_bounds",
        &config,
        &[
            ("health and metrics", health_and_metrics),
            ("unknown route 404, wrong method 405 with Allow", routing_errors),
            ("header block over 16 KiB or over 64 headers is 431", header_bounds),
            ("body over 64 KiB is 413", body_bound),
            ("chunked request body is 411", chunked_body),
            ("garbage bytes are 400 then close", garbage_input),
            ("HTTP/2.0 request line is 505", unsupported_version),
            ("slowloris gets 408 and is closed; others are served", slowloris),
            ("keep-alive serves several requests on one connection", keep_alive),
            ("pipelined requests are answered in order", pipelining),
            ("HTTP/1.0 and Connection: close end the connection", connection_close),
            ("CORS: allowed origin, other origin, preflight", cors),
        ],
    );
}

fn health_and_metrics(s: &Server) {
    let r = s.get("/health", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({ "status": "UP" }));
    let head = s.request(&Request::new("HEAD", "/health"));
    assert_eq!(head.status, 200, "HEAD /health");
    assert!(head.body.is_empty(), "HEAD has no body");
    let r = s.get("/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let content_type = r.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "metrics content type {content_type:?}"
    );
    let text = r.text();
    for name in [
        "herald_connections_open",
        "herald_websockets_open",
        "herald_event_streams_open",
        "herald_stomp_frames_in_total",
        "herald_chat_messages_committed_total",
        "herald_slow_consumer_closes_total",
        "herald_store_queue_depth",
    ] {
        assert!(
            metric_value(&text, name).is_some(),
            "metric {name} missing from /metrics:\n{text}"
        );
    }
    let open = metric_value(&text, "herald_connections_open").unwrap_or(0.0);
    assert!(open >= 1.0, "the scraping connection itself is open: {open}");
    assert!(
        text.contains("# TYPE herald_connections_open gauge"),
        "Prometheus TYPE lines expected"
    );
}

fn routing_errors(s: &Server) {
    for path in [
        "/nope",
        "/auth",
        "/auth/login/extra",
        "/chat/history",
        "/users/me/more",
        "/web/no-such-file.js",
    ] {
        let r = s.get(path, None);
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        r.assert_error(404, "NOT_FOUND");
    }
    // `/` is the web client in dev mode (SPEC §9), no longer a 404.
    let r = s.get("/", None);
    assert_eq!(r.status, 200, "GET /: {}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text().contains("data-testid=\"message-list\""),
        "GET / is the web client"
    );
    let r = s.get("/auth/login", None);
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    let allow = r.header("Allow").unwrap_or_else(|| panic!("405 without Allow"));
    assert!(allow.contains("POST"), "Allow {allow:?}");
    let r = s.request(&Request::new("DELETE", "/notifications"));
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    let allow = r.header("Allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow {allow:?}");
    let r = s.request(&Request::new("PUT", "/users/me").body(Some("application/json"), "{}"));
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    assert!(r.header("Allow").unwrap_or_default().contains("GET"));
    let r = s.request(&Request::post("/health").body(Some("application/json"), "{}"));
    r.assert_error(405, "METHOD_NOT_ALLOWED");
    s.assert_healthy("routing errors");
}

/// Sends raw bytes on a fresh connection and reads one response.
#[track_caller]
fn raw(s: &Server, bytes: &[u8]) -> (Response, Conn) {
    let mut conn = Conn::open(s.addr).expect("connect");
    conn.write_raw(bytes).expect("write");
    let r = conn.read_response(false).unwrap_or_else(|e| {
        panic!(
            "no response to {:?}: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        )
    });
    (r, conn)
}

fn header_bounds(s: &Server) {
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let (r, mut conn) = raw(s, big.as_bytes());
    r.assert_error(431, "PAYLOAD_TOO_LARGE");
    assert!(conn.closed_within(Duration::from_secs(3)), "closed after 431");
    s.assert_healthy("a 17 KiB header block");

    let mut many = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..70 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (r, _) = raw(s, many.as_bytes());
    r.assert_error(431, "PAYLOAD_TOO_LARGE");
    s.assert_healthy("71 headers");

    // Within the bounds: 60 headers and a 15 KiB header block are fine.
    let mut ok = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..59 {
        ok.push_str(&format!("X-H{i}: v\r\n"));
    }
    ok.push_str("\r\n");
    let (r, _) = raw(s, ok.as_bytes());
    assert_eq!(r.status, 200, "60 headers: {}", r.text());
    let fine = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    let (r, _) = raw(s, fine.as_bytes());
    assert_eq!(r.status, 200, "15 KiB header block: {}", r.text());
}

fn body_bound(s: &Server) {
    // Announce 70 000 bytes but send only the first KiB: the server refuses on the header.
    let head =
        "POST /auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 70000\r\n\r\n";
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(b' ', 1024));
    let (r, mut conn) = raw(s, &bytes);
    r.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert!(conn.closed_within(Duration::from_secs(3)), "closed after 413");
    s.assert_healthy("a 70 000-byte body");
    // Just under the limit: a whole 64 KiB JSON body is read (and refused for its content only).
    let padding = " ".repeat(64 * 1024 - 64);
    let body = format!(r#"{{"username":"testuser",{padding}"password":"testpass"}}"#);
    assert!(body.len() <= 64 * 1024);
    let r = s.request(&Request::post("/auth/login").body(Some("application/json"), body));
    assert_eq!(r.status, 200, "a body within 64 KiB: {}", r.text());
}

fn chunked_body(s: &Server) {
    let req =
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
               2f\r\n{\"username\":\"testuser\",\"password\":\"testpass\"}\r\n0\r\n\r\n";
    let (r, _) = raw(s, req.as_bytes());
    r.assert_error(411, "LENGTH_REQUIRED");
    s.assert_healthy("a chunked body");
}

fn garbage_input(s: &Server) {
    let inputs: [&[u8]; 4] = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
        b"hello there\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET\x00/health HTTP/1.1\r\n\r\n",
    ];
    for input in inputs {
        let (r, mut conn) = raw(s, input);
        assert_eq!(
            r.status,
            400,
            "garbage {:?}: {}",
            String::from_utf8_lossy(input),
            r.text()
        );
        r.assert_error(400, "INVALID_REQUEST");
        assert!(
            conn.closed_within(Duration::from_secs(3)),
            "connection closed after garbage {:?}",
            String::from_utf8_lossy(input)
        );
        s.assert_healthy("garbage input");
    }
}

fn unsupported_version(s: &Server) {
    let (r, mut conn) = raw(s, b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 505, "HTTP/2.0: {}", r.text());
    assert_eq!(r.json()["success"], false, "error envelope: {}", r.text());
    assert!(conn.closed_within(Duration::from_secs(3)), "closed after 505");
    // HTTP/1.0 is still HTTP/1.
    let (r, _) = raw(s, b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "HTTP/1.0: {}", r.text());
    s.assert_healthy("HTTP/2.0");
}

fn slowloris(s: &Server) {
    let started = Instant::now();
    let mut slow = Conn::open(s.addr).expect("connect");
    slow.write_raw(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        .expect("write");
    // Meanwhile other clients are served at once.
    for _ in 0..3 {
        let t = Instant::now();
        s.assert_healthy("an unfinished request on another connection");
        assert!(t.elapsed() < Duration::from_millis(400), "served in {:?}", t.elapsed());
    }
    // Keep trickling bytes: a header timeout must not be reset by each byte.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(150));
        if slow.write_raw(b"X-More: 1\r\n").is_err() {
            break;
        }
    }
    let r = slow
        .read_response(false)
        .unwrap_or_else(|e| panic!("no 408 for an unfinished request head: {e}"));
    let waited = started.elapsed();
    r.assert_error(408, "REQUEST_TIMEOUT");
    assert!(
        waited >= Duration::from_millis(450) && waited <= Duration::from_secs(3),
        "408 after {waited:?} with header_timeout_ms = 500"
    );
    assert!(slow.closed_within(Duration::from_secs(3)), "closed after 408");
    s.assert_healthy("a slowloris");
}

fn keep_alive(s: &Server) {
    let mut conn = Conn::open(s.addr).expect("connect");
    let token = login(s, "testuser", "testpass").access;
    for i in 0..5 {
        let r = conn
            .send(&Request::get("/health"))
            .expect("health on a kept-alive connection");
        assert_eq!(r.status, 200, "request {i}");
        assert_ne!(r.header("Connection"), Some("close"), "request {i} kept alive");
        let r = conn
            .send(&Request::get("/users/me").bearer(&token))
            .expect("me on a kept-alive connection");
        assert_eq!(r.data(200)["username"], "testuser");
    }
    // An error that leaves the stream in sync does not close the connection.
    let r = conn
        .send(&Request::get("/nope"))
        .expect("404 on a kept-alive connection");
    r.assert_error(404, "NOT_FOUND");
    let r = conn.send(&Request::get("/health")).expect("after a 404");
    assert_eq!(r.status, 200);
}

fn pipelining(s: &Server) {
    let token = login(s, "alice", "alicepass").access;
    let mut bytes = Vec::new();
    // A slow one (argon2 on a worker) first, then instant ones, then store-backed ones.
    bytes.extend(
        Request::post("/auth/login")
            .json(&json!({ "username": "testuser", "password": "testpass" }))
            .to_bytes(),
    );
    bytes.extend(Request::get("/health").to_bytes());
    bytes.extend(Request::get("/nope").to_bytes());
    bytes.extend(Request::get("/users/me").bearer(&token).to_bytes());
    bytes.extend(Request::get("/users/me").to_bytes());
    bytes.extend(Request::get("/chat/history/pipelined").bearer(&token).to_bytes());
    let mut conn = Conn::open(s.addr).expect("connect");
    conn.write_raw(&bytes).expect("write the pipeline");
    let mut next = |what: &str| {
        conn.read_response(false)
            .unwrap_or_else(|e| panic!("pipelined response for {what}: {e}"))
    };
    let login = next("login");
    assert_eq!(login.data(200)["tokenType"], "Bearer", "1st response is the login");
    let health = next("health");
    assert_eq!(health.json(), json!({ "status": "UP" }), "2nd response is /health");
    next("/nope").assert_error(404, "NOT_FOUND");
    assert_eq!(next("me").data(200)["username"], "alice", "4th response is /users/me");
    next("me without token").assert_error(401, "UNAUTHORIZED");
    let history = next("history");
    assert_eq!(history.status, 200);
    assert_eq!(history.json(), json!([]), "6th response is the history");
}

fn connection_close(s: &Server) {
    let (r, mut conn) = raw(s, b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        conn.closed_within(Duration::from_secs(3)),
        "HTTP/1.0 without keep-alive closes"
    );
    let (r, mut conn) = raw(s, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(conn.closed_within(Duration::from_secs(3)), "Connection: close closes");
}

fn cors(s: &Server) {
    let allowed = "https://app.example";
    let r = s.request(&Request::get("/health").header("Origin", allowed));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some(allowed),
        "ACAO on a simple request"
    );
    // Errors carry CORS headers too, so the browser can read them.
    let r = s.request(&Request::get("/users/me").header("Origin", allowed));
    r.assert_error(401, "UNAUTHORIZED");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some(allowed), "ACAO on a 401");
    // Other origins get no grant.
    let r = s.request(&Request::get("/health").header("Origin", "https://evil.example"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        None,
        "no ACAO for an unlisted origin"
    );
    // Preflight.
    let preflight = Request::new("OPTIONS", "/auth/login")
        .header("Origin", allowed)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type, authorization");
    let r = s.request(&preflight);
    assert_eq!(r.status, 204, "preflight: {}", r.text());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some(allowed));
    let methods = r
        .header("Access-Control-Allow-Methods")
        .unwrap_or_else(|| panic!("preflight without Access-Control-Allow-Methods: {:?}", r.headers));
    assert!(methods.contains("POST"), "Allow-Methods {methods:?}");
    let headers = r
        .header("Access-Control-Allow-Headers")
        .unwrap_or_else(|| panic!("preflight without Access-Control-Allow-Headers: {:?}", r.headers))
        .to_ascii_lowercase();
    assert!(
        headers == "*" || (headers.contains("content-type") && headers.contains("authorization")),
        "Allow-Headers {headers:?}"
    );
    let preflight = Request::new("OPTIONS", "/notifications")
        .header("Origin", allowed)
        .header("Access-Control-Request-Method", "GET");
    let r = s.request(&preflight);
    assert_eq!(r.status, 204, "preflight on /notifications: {}", r.text());
    assert!(r.header("Access-Control-Allow-Methods").is_some());
}

fn cors_default(s: &Server) {
    let origin = "http://localhost:5173";
    let r = s.request(&Request::get("/health").header("Origin", origin));
    let allowed = r.header("Access-Control-Allow-Origin").unwrap_or_default();
    assert!(allowed == origin || allowed == "*", "ACAO {allowed:?} for {origin}");
    let preflight = Request::new("OPTIONS", "/auth/signup")
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type");
    let r = s.request(&preflight);
    assert_eq!(r.status, 204, "preflight: {}", r.text());
    assert!(r
        .header("Access-Control-Allow-Methods")
        .unwrap_or_default()
        .contains("POST"));
}

/// Error bodies are the plain envelope and leak no internals (SPEC §3).
fn envelope_shape(s: &Server) {
    let responses = [
        s.get("/nope", None),
        s.get("/users/me", None),
        login_response(s, "testuser", "bad-password"),
        s.request(&Request::post("/auth/login").body(Some("application/json"), "{")),
    ];
    for r in responses {
        let v: Value = r.json();
        let keys: Vec<&String> = v.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        let mut keys: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "message", "success"], "error envelope keys: {v}");
        let message = v["message"].as_str().unwrap_or_default();
        for leak in ["rusqlite", "mysql", "panicked", "src/", "SQL"] {
            assert!(!message.contains(leak), "error message leaks {leak:?}: {message}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown (SPEC §7): its own server, which does not survive the scenario
// ---------------------------------------------------------------------------------------------

#[test]
fn graceful_shutdown() {
    let config = Config::new().set("server", "shutdown_deadline_ms", 2000);
    run_on_each_backend(
        "graceful_shutdown",
        &config,
        &[("SIGTERM closes sessions and streams, then the process exits", shutdown)],
    );
}

fn shutdown(s: &Server) {
    let room = common::unique_room("shutdown");
    let mut chat = StompClient::connect(s, &login(s, "alice", "alicepass").access);
    chat.subscribe("s", &format!("/topic/chat.{room}"));
    chat.send_chat(&room, "before shutdown", Some("r"));
    let mut frames = [
        chat.recv(common::IO_TIMEOUT).command,
        chat.recv(common::IO_TIMEOUT).command,
    ];
    frames.sort_by_key(|c| c.as_str());
    assert_eq!(frames, [Command::Message, Command::Receipt]);
    let mut stream = SseStream::open_bearer(s, &login(s, "bob", "bobpass").access, &[]);
    stream.expect_event("connected");
    let mut idle = Conn::open(s.addr).expect("connect");
    assert_eq!(idle.send(&Request::get("/health")).expect("health").status, 200);

    let started = Instant::now();
    let status = s.terminate(Duration::from_secs(6));
    let took = started.elapsed();
    let status = status.unwrap_or_else(|| panic!("herald still runs 6 s after SIGTERM (shutdown_deadline_ms = 2000)"));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        took <= Duration::from_secs(4),
        "exit took {took:?} with shutdown_deadline_ms = 2000"
    );
    assert!(
        chat.closed_within(Duration::from_secs(1)),
        "the STOMP session was not closed"
    );
    assert!(
        stream.closed_within(Duration::from_secs(1)),
        "the event stream was not ended"
    );
    assert!(
        idle.closed_within(Duration::from_secs(1)),
        "an idle keep-alive connection was not closed"
    );
    assert!(Conn::open(s.addr).is_err(), "still accepting connections after exit");
}

// ---------------------------------------------------------------------------------------------
// server.max_connections is one bound for the whole process, whichever reactor accepts
// ---------------------------------------------------------------------------------------------

#[test]
fn connection_limit() {
    let config = Config::new().set("server", "max_connections", 6);
    run_on_each_backend(
        "connection_limit",
        &config,
        &[(
            "the connection over max_connections is closed at once",
            connections_over_the_limit,
        )],
    );
}

fn connections_over_the_limit(s: &Server) {
    // Six idle connections fill the limit, whichever of the two reactors took them.
    let mut held: Vec<Conn> = (0..6)
        .map(|i| Conn::open(s.addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    // Let every reactor register its accepts before the next connection arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut over = Conn::open(s.addr).expect("the kernel still completes the handshake");
    assert!(
        over.closed_within(Duration::from_secs(2)),
        "the 7th connection was kept open"
    );
    // The held ones still work, and a slot freed is a slot usable again.
    let r = held[0]
        .send(&Request::get("/health"))
        .expect("a held connection is served");
    assert_eq!(r.status, 200);
    drop(held.pop());
    assert!(
        common::eventually(Duration::from_secs(2), || s
            .try_request(&Request::get("/health"))
            .is_ok_and(|r| r.status == 200)),
        "a freed slot was not reusable"
    );
}
