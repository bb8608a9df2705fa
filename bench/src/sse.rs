//! The `sse` scenario (herald only): `--connections` Server-Sent Event streams on `GET /notifications/stream`, one
//! user each, and `--publishers` HTTP clients that create direct notifications (`POST /notifications`) to those users
//! at `--rate` per second in total. Measures create → receive latency (the text carries the send time), the `201`
//! latency, and what was missing.
//!
//! Streams run on `--threads` mio loops ([`run_streams`]); each publisher is a blocking keep-alive client on its own
//! thread ([`run_publisher`]) that keeps an absolute schedule (it never drops a slot; when the server is slower than the
//! schedule it falls behind, and the achieved rate shows it).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Deserialize;
use socket2::{Domain, Socket, Type};

use crate::cli::Config;
use crate::endpoint::source_addr;
use crate::shared::{Counters, Shared, UNSET};
use crate::stats::{Histograms, MessageFields};

/// Linux `EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i32 = 115;
/// Longest sleep in `poll`, so stop is noticed promptly.
const MAX_POLL: Duration = Duration::from_millis(50);
/// Bytes buffered from one stream before it is judged broken.
const MAX_INBOUND: usize = 4 * 1024 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// What a stream thread or a publisher thread hands back.
pub struct SseResult {
    /// Create → receive (`delivery`) and POST → `201` (`receipt`) latencies.
    pub hist: Histograms,
    /// Notifications received per stream user index (streams only).
    pub received: Vec<(usize, u64)>,
    /// Notifications created (`201`) per recipient user index (publishers only).
    pub created: Vec<usize>,
}

/// The name of bench user `i`.
pub fn user_name(cfg: &Config, i: usize) -> String {
    format!("{}{i}", cfg.user_prefix)
}

/// A notification as the `data:` line carries it; only the fields the bench reads.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

enum Stage {
    Connecting,
    Head,
    Streaming,
}

struct Stream {
    stream: TcpStream,
    stage: Stage,
    user: usize,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    received: u64,
}

/// Runs one thread's share of the streams (`users` are this thread's user indices) until [`Shared::stop`].
pub fn run_streams(cfg: &Config, shared: &Shared, tokens: &[String], users: Vec<usize>) -> SseResult {
    let mut hist = Histograms::new();
    let mut result = SseResult {
        hist: Histograms::new(),
        received: Vec::new(),
        created: Vec::new(),
    };
    let Ok(mut poll) = Poll::new() else {
        shared.note_error("cannot create poller".into());
        shared.counters.failed.fetch_add(users.len() as u64, Ordering::Relaxed);
        return result;
    };
    let total = cfg.connections.max(1) as f64;
    let mine = users.len() as f64;
    let rate = cfg.connect_rate * mine / total;
    let max_pending = (cfg.max_pending as f64 * mine / total).ceil().max(1.0) as usize;
    let mut streams: Vec<Option<Stream>> = (0..users.len()).map(|_| None).collect();
    let mut done: Vec<(usize, u64)> = Vec::new();
    let (mut opened, mut pending) = (0usize, 0usize);
    let ramp_start = shared.now_ns();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        let now = shared.now_ns();
        if !shared.stop_ramp.load(Ordering::Relaxed) {
            let allowed = ((now - ramp_start) as f64 / 1e9 * rate) as usize + 1;
            while opened < users.len() && opened < allowed && pending < max_pending {
                let idx = opened;
                opened += 1;
                Counters::bump(&shared.counters.attempted);
                match open(cfg, tokens, users[idx], &mut poll, idx) {
                    Ok(s) => {
                        streams[idx] = Some(s);
                        pending += 1;
                    }
                    Err(e) => {
                        Counters::bump(&shared.counters.failed);
                        shared.note_error(format!("connect: {e}"));
                    }
                }
            }
        }
        let wait = if opened < users.len() && !shared.stop_ramp.load(Ordering::Relaxed) {
            Duration::from_millis(1)
        } else {
            MAX_POLL
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                shared.note_error(format!("poll failed: {e}"));
                break;
            }
        }
        for event in events.iter() {
            let idx = event.token().0;
            let Some(s) = streams.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            let was_pending = !matches!(s.stage, Stage::Streaming);
            let outcome = s.on_event(shared, &mut hist, &mut scratch);
            let now_streaming = matches!(s.stage, Stage::Streaming);
            if was_pending && (outcome.is_err() || now_streaming) {
                pending = pending.saturating_sub(1);
            }
            if let Err(why) = outcome {
                let s = streams[idx].take().expect("present");
                if was_pending && !now_streaming {
                    Counters::bump(&shared.counters.failed);
                    shared.note_error(format!("stream failed: {why}"));
                } else {
                    Counters::bump(&shared.counters.dropped);
                    shared.note_error(format!("stream dropped: {why}"));
                    done.push((s.user, s.received));
                }
            }
        }
    }
    for s in streams.into_iter().flatten() {
        if matches!(s.stage, Stage::Streaming) {
            done.push((s.user, s.received));
        }
    }
    result.hist = hist;
    result.received = done;
    result
}

fn open(cfg: &Config, tokens: &[String], user: usize, poll: &mut Poll, idx: usize) -> io::Result<Stream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&source_addr(user, cfg.sources).into())?;
    match socket.connect(&cfg.http.addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let mut stream = TcpStream::from_std(socket.into());
    poll.registry()
        .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)?;
    let token = tokens.get(user).map(String::as_str).unwrap_or("");
    let out = format!(
        "GET /notifications/stream HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
         Authorization: Bearer {token}\r\n\r\n",
        cfg.http.host_header()
    )
    .into_bytes();
    Ok(Stream {
        stream,
        stage: Stage::Connecting,
        user,
        out,
        inbuf: Vec::new(),
        received: 0,
    })
}

impl Stream {
    fn on_event(&mut self, shared: &Shared, hist: &mut Histograms, scratch: &mut [u8]) -> Result<(), String> {
        if matches!(self.stage, Stage::Connecting) {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(format!("connect: {e}"));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.stage = Stage::Head,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Err("closed by server".into()),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    self.process(shared, hist)?;
                    if self.inbuf.len() > MAX_INBOUND {
                        return Err("inbound buffer over limit".into());
                    }
                    if n < scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn process(&mut self, shared: &Shared, hist: &mut Histograms) -> Result<(), String> {
        if matches!(self.stage, Stage::Head) {
            let Some(end) = find(&self.inbuf, b"\r\n\r\n") else {
                if self.inbuf.len() > MAX_HEAD {
                    return Err("response head too large".into());
                }
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.inbuf[..end]).into_owned();
            let status = head.split(' ').nth(1).unwrap_or("");
            if status != "200" || !head.to_ascii_lowercase().contains("text/event-stream") {
                let body = String::from_utf8_lossy(&self.inbuf[end + 4..]);
                return Err(format!("HTTP {status}: {}", body.chars().take(200).collect::<String>()));
            }
            self.inbuf.drain(..end + 4);
            self.stage = Stage::Streaming;
            Counters::bump(&shared.counters.established);
            shared
                .counters
                .last_established_ns
                .fetch_max(shared.now_ns(), Ordering::Relaxed);
        }
        let mut pos = 0;
        while let Some(end) = find(&self.inbuf[pos..], b"\n\n") {
            let event = &self.inbuf[pos..pos + end];
            pos += end + 2;
            let mut is_notification = false;
            let mut data: Vec<u8> = Vec::new();
            for line in event.split(|b| *b == b'\n') {
                if line == b"event: notification" {
                    is_notification = true;
                } else if let Some(d) = line.strip_prefix(b"data: ") {
                    data.extend_from_slice(d);
                }
            }
            if !is_notification {
                continue;
            }
            let now = shared.now_ns();
            Counters::bump(&shared.counters.delivered);
            self.received += 1;
            match serde_json::from_slice::<Event<'_>>(&data) {
                Ok(e) => {
                    if let Some(f) = MessageFields::parse(&e.message) {
                        hist.record_delivery(now.saturating_sub(f.sent_ns));
                    }
                }
                Err(_) => Counters::bump(&shared.counters.protocol_errors),
            }
        }
        self.inbuf.drain(..pos);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One publisher: a keep-alive HTTP client sending `POST /notifications` to user `k % users` for its share `k` of the
/// global sequence (`index`, `index + publishers`, …) at `rate / publishers` per second during the publish window.
pub fn run_publisher(cfg: &Config, shared: &Shared, tokens: &[String], index: usize) -> SseResult {
    let mut result = SseResult {
        hist: Histograms::new(),
        received: Vec::new(),
        created: Vec::new(),
    };
    // The sender is a bench user that has no stream of its own when possible (user index `connections + index`).
    let sender = tokens
        .get(cfg.connections + index)
        .or_else(|| tokens.get(index))
        .cloned()
        .unwrap_or_default();
    let mut conn = match HttpClient::connect(cfg, index) {
        Ok(c) => c,
        Err(e) => {
            shared.note_error(format!("publisher {index}: connect: {e}"));
            Counters::bump(&shared.counters.failed);
            return result;
        }
    };
    Counters::bump(&shared.counters.senders_ready);
    let per = cfg.rate / cfg.publishers.max(1) as f64;
    let mut n: u64 = 0;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let start = shared.publish_start_ns.load(Ordering::Relaxed);
        let end = shared.publish_end_ns.load(Ordering::Relaxed);
        let now = shared.now_ns();
        if start == UNSET || now < start {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if now >= end {
            break;
        }
        let due = start + (n as f64 / per * 1e9) as u64;
        if due > now {
            std::thread::sleep(Duration::from_nanos((due - now).min(5_000_000)));
            continue;
        }
        let k = n as usize * cfg.publishers + index;
        n += 1;
        let recipient = k % cfg.connections.max(1);
        let t = shared.now_ns();
        let body = serde_json::json!({
            "recipient": user_name(cfg, recipient),
            "message": format!("t={t} p={index} s={n}"),
        })
        .to_string();
        Counters::bump(&shared.counters.sent);
        match conn.post("/notifications", &sender, &body) {
            Ok((201, _)) => {
                let done = shared.now_ns();
                Counters::bump(&shared.counters.receipts);
                result.hist.record_receipt(done.saturating_sub(t));
                result.created.push(recipient);
            }
            Ok((status, text)) => {
                Counters::bump(&shared.counters.app_errors);
                shared.note_error(format!(
                    "POST /notifications: HTTP {status} {}",
                    text.chars().take(200).collect::<String>()
                ));
            }
            Err(e) => {
                Counters::bump(&shared.counters.app_errors);
                shared.note_error(format!("POST /notifications: {e}"));
                match HttpClient::connect(cfg, index) {
                    Ok(c) => conn = c,
                    Err(_) => break,
                }
            }
        }
    }
    result
}

/// A blocking keep-alive HTTP/1.1 client for `POST`s with small JSON answers.
struct HttpClient {
    stream: StdTcpStream,
    host: String,
    buf: Vec<u8>,
}

impl HttpClient {
    fn connect(cfg: &Config, index: usize) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.bind(&source_addr(index, cfg.sources).into())?;
        let addr: SocketAddr = cfg.http.addr;
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let stream: StdTcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream,
            host: cfg.http.host_header(),
            buf: Vec::new(),
        })
    }

    fn post(&mut self, path: &str, token: &str, body: &str) -> io::Result<(u16, String)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.write_all(request.as_bytes())?;
        let mut scratch = [0u8; 8192];
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(head)) = response.parse(&self.buf) {
                let len = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if self.buf.len() >= head + len {
                    let status = response.code.unwrap_or(0);
                    let text = String::from_utf8_lossy(&self.buf[head..head + len]).into_owned();
                    self.buf.drain(..head + len);
                    return Ok((status, text));
                }
            }
            let n = self.stream.read(&mut scratch)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by server"));
            }
            self.buf.extend_from_slice(&scratch[..n]);
        }
    }
}

/// Merges the latency histograms of all threads.
pub fn merge(results: &[SseResult]) -> Histograms {
    let mut h = Histograms::new();
    for r in results {
        h.merge(&r.hist);
    }
    h
}

/// Missing and extra deliveries: per stream user, notifications created for it vs received.
pub fn missing_extra(results: &[SseResult]) -> (u64, u64, u64) {
    let mut created: std::collections::HashMap<usize, u64> = std::collections::HashMap::new();
    for r in results {
        for u in &r.created {
            *created.entry(*u).or_default() += 1;
        }
    }
    let (mut missing, mut extra, mut streams) = (0u64, 0u64, 0u64);
    for r in results {
        for (u, got) in &r.received {
            streams += 1;
            let want = created.remove(u).unwrap_or(0);
            missing += want.saturating_sub(*got);
            extra += got.saturating_sub(want);
        }
    }
    // Notifications created for users whose stream never came up (or came up twice) are missing too.
    missing += created.values().sum::<u64>();
    (missing, extra, streams)
}
