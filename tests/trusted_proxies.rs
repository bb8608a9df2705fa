//! `server.trusted_proxies` (SPEC §7) against a real server: behind a trusted proxy each client
//! gets its own per-IP login limit, named by `X-Forwarded-For`; from an untrusted peer the header
//! changes nothing, and a client cannot forge its way out of its limit.

mod common;

use common::http::{Request, Response};
use common::server::{Backend, Config, Server};
use serde_json::json;

/// A failed login (unknown user) as if forwarded for `forwarded_for`.
fn login_via(s: &Server, forwarded_for: Option<&str>) -> Response {
    let mut req = Request::post("/auth/login").json(&json!({"username": "nobody_here", "password": "whatever-pass"}));
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    s.request(&req)
}

fn config(trusted: &str) -> Config {
    Config::new()
        .set("auth", "login_per_ip_per_minute", 2)
        .set("auth", "login_per_username_per_minute", 100_000)
        .set("server", "trusted_proxies", trusted)
}

#[test]
fn trusted_proxy_names_each_client() {
    // The test client connects from 127.0.0.1: here that is the trusted proxy.
    let s = Server::start(Backend::Sqlite, &config(r#"["127.0.0.1/32", "10.0.0.0/8"]"#));
    for _ in 0..2 {
        assert_eq!(login_via(&s, Some("203.0.113.1")).status, 401);
    }
    assert_eq!(
        login_via(&s, Some("203.0.113.1")).status,
        429,
        "third login of 203.0.113.1"
    );
    assert_eq!(
        login_via(&s, Some("203.0.113.2")).status,
        401,
        "another client behind the same proxy has its own limit"
    );
    // The client forged "203.0.113.2" in front; our proxies (10.x) appended what they saw.
    assert_eq!(login_via(&s, Some("203.0.113.2, 10.0.0.9")).status, 401);
    assert_eq!(
        login_via(&s, Some("203.0.113.2, 10.0.0.9")).status,
        429,
        "the right-most untrusted entry is 203.0.113.2: its third login"
    );
    // A forged chain cannot move 203.0.113.1 out of its limit: the right-most untrusted entry
    // is what the proxy saw.
    assert_eq!(
        login_via(&s, Some("198.51.100.77, 203.0.113.1")).status,
        429,
        "a forged left part changes nothing"
    );
}

#[test]
fn untrusted_peer_cannot_pick_its_address() {
    // Nobody is trusted (the default): the header is ignored, every attempt counts for 127.0.0.1.
    let s = Server::start(Backend::Sqlite, &config("[]"));
    assert_eq!(login_via(&s, Some("203.0.113.1")).status, 401);
    assert_eq!(login_via(&s, Some("203.0.113.2")).status, 401);
    assert_eq!(
        login_via(&s, Some("203.0.113.3")).status,
        429,
        "rotating X-Forwarded-For from an untrusted peer does not escape the limit"
    );
    assert_eq!(login_via(&s, None).status, 429);
}
