//! The bytes of an event stream (the SSE spec's `text/event-stream` format).

use std::fmt::Write as _;

/// How long a client should wait before reconnecting after losing the stream (`retry:`), in ms.
pub const RETRY_MS: u64 = 3000;

/// A comment line that keeps idle proxies from closing the stream.
pub const PING: &str = ": ping\n\n";

/// The response head of a stream, with `extra` (CORS) headers, then `retry:` and the
/// `event: connected` event naming the user.
pub fn opening(username: &str, extra: &[(&'static str, String)]) -> String {
    let mut head = String::with_capacity(256);
    head.push_str(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\nConnection: keep-alive\r\n",
    );
    for (name, value) in extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let connected = serde_json::json!({ "username": username });
    let _ = write!(head, "\r\nretry: {RETRY_MS}\n\nevent: connected\ndata: {connected}\n\n");
    head
}

/// Appends one notification event (`id:`, `event: notification`, `data:` the JSON body).
pub fn notification(out: &mut String, id: i64, body: &str) {
    let _ = write!(out, "id: {id}\nevent: notification\ndata: {body}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_then_events() {
        let head = opening("bob", &[("Access-Control-Allow-Origin", "*".into())]);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"));
        assert!(head.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(head.ends_with("\r\n\r\nretry: 3000\n\nevent: connected\ndata: {\"username\":\"bob\"}\n\n"));
        let mut out = String::new();
        notification(&mut out, 7, "{}");
        assert_eq!(out, "id: 7\nevent: notification\ndata: {}\n\n");
    }
}
