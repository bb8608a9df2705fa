//! A Server-Sent Events reader over a raw connection: the response has no Content-Length, so
//! blocks (`\n\n`-terminated) are parsed as they arrive. Every wait is bounded.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{Conn, Request, Response};
use super::server::Server;

/// One `event:`/`data:` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// `data` as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {self:?}"))
    }
}

/// One block of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    /// A block of `:` comment lines (`: ping`), text after the colon, trimmed.
    Comment(String),
    /// A block that only sets `retry:`.
    Retry(u64),
}

/// An open event stream.
pub struct SseStream {
    conn: Conn,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    closed: bool,
}

impl SseStream {
    /// `GET target` with `headers`; `Err` carries the whole response when it is not a 200 stream.
    #[track_caller]
    pub fn open(server: &Server, target: &str, headers: &[(&str, &str)]) -> Result<SseStream, Response> {
        let mut req = Request::get(target).header("Accept", "text/event-stream");
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let mut conn = Conn::open(server.addr).expect("connect for the event stream");
        conn.write_raw(&req.to_bytes()).expect("send the stream request");
        let (status, headers) = conn
            .read_head()
            .unwrap_or_else(|e| panic!("GET {target}: no response head: {e}"));
        if status != 200 {
            let length = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let deadline = Instant::now() + super::IO_TIMEOUT;
            while conn.buf.len() < length && Instant::now() < deadline {
                let mut chunk = [0u8; 4096];
                match conn.stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                }
            }
            return Err(Response {
                status,
                headers,
                body: std::mem::take(&mut conn.buf),
            });
        }
        Ok(SseStream {
            conn,
            status,
            headers,
            closed: false,
        })
    }

    /// Opens the stream of the holder of `access` (Bearer header); panics unless 200.
    #[track_caller]
    pub fn open_bearer(server: &Server, access: &str, extra: &[(&str, &str)]) -> SseStream {
        let bearer = format!("Bearer {access}");
        let mut headers = vec![("Authorization", bearer.as_str())];
        headers.extend_from_slice(extra);
        match SseStream::open(server, "/notifications/stream", &headers) {
            Ok(s) => s,
            Err(r) => panic!("event stream refused: {} {}", r.status, r.text()),
        }
    }

    /// First header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next block within `timeout`; `None` on timeout or once the stream has ended.
    pub fn next_item(&mut self, timeout: Duration) -> Option<SseItem> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.take_block() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self.conn.stream.set_read_timeout(Some(left));
            let mut chunk = [0u8; 16 * 1024];
            match self.conn.stream.read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => self.conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => self.closed = true,
            }
        }
    }

    fn take_block(&mut self) -> Option<SseItem> {
        loop {
            let end = self.conn.buf.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.conn.buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block).into_owned();
            let mut event = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            let (mut has_data, mut has_fields) = (false, false);
            let mut comments = Vec::new();
            let mut retry = None;
            for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
                if let Some(comment) = line.strip_prefix(':') {
                    comments.push(comment.trim().to_string());
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                match field {
                    "id" => {
                        event.id = Some(value);
                        has_fields = true;
                    }
                    "event" => {
                        event.event = Some(value);
                        has_fields = true;
                    }
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(&value);
                        has_data = true;
                        has_fields = true;
                    }
                    "retry" => retry = value.parse().ok(),
                    _ => {}
                }
            }
            if has_fields {
                return Some(SseItem::Event(event));
            }
            if !comments.is_empty() {
                return Some(SseItem::Comment(comments.join("\n")));
            }
            if let Some(ms) = retry {
                return Some(SseItem::Retry(ms));
            }
        }
    }

    /// The next event (comments and `retry:` skipped) within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_item(left)? {
                SseItem::Event(e) => return Some(e),
                SseItem::Comment(_) | SseItem::Retry(_) => {}
            }
        }
    }

    /// The next event, which must be `event: <name>`.
    #[track_caller]
    pub fn expect_event(&mut self, name: &str) -> SseEvent {
        let e = self.next_event(super::IO_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "no `event: {name}` within {:?} (closed: {})",
                super::IO_TIMEOUT,
                self.closed
            )
        });
        assert_eq!(e.event.as_deref(), Some(name), "expected event {name}, got {e:?}");
        e
    }

    /// The next `notification` event: `(id from the id: line, data)`; checks id: matches data.id.
    #[track_caller]
    pub fn expect_notification(&mut self) -> (i64, Value) {
        let e = self.expect_event("notification");
        let id: i64 =
            e.id.as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("notification event without a numeric id: line: {e:?}"));
        let data = e.json();
        assert_eq!(data["id"], id, "id: line and data.id differ: {e:?}");
        (id, data)
    }

    /// Notifications received within `period` (for "nothing more" checks).
    pub fn notifications_for(&mut self, period: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(e) if e.event.as_deref() == Some("notification") => got.push(e),
                Some(_) => {}
                None => return got,
            }
        }
    }

    /// True when the server ends the stream within `timeout` (what arrives first is dropped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.next_item(left);
        }
        true
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}
