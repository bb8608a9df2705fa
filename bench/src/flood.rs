//! The `flood` scenario (herald only): fairness of the SEND path (SPEC §4, `chat.max_inflight_sends`).
//!
//! `--flooders` connections send receipted SENDs as fast as Herald reads them (at most `--window` unanswered each),
//! while `--connections` calm clients send one receipted SEND every `--interval-ms` on an absolute schedule. Every
//! connection has its own user and room. Reported: the calm SEND → RECEIPT latency (p50/p95/p99/max), and what became
//! of every flooder SEND: committed (RECEIPT), refused (an error on `/user/queue/errors`), or unanswered.
//!
//! Each connection is a blocking socket driven by two threads: a writer, which Herald's TCP backpressure blocks when
//! it stops reading the flooder (that is what is measured), and a reader.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::cli::Config;
use crate::report::{round2, Report};
use crate::stomp::{self, Parsed};
use crate::ws::{self, Opcode};

/// How long a blocking read waits before it looks at the stop flag.
const READ_TICK: Duration = Duration::from_millis(100);
/// Bytes read before the upgrade response or `CONNECTED` is judged missing.
const MAX_HANDSHAKE: usize = 64 * 1024;

/// What one side (calm or flood) did; updated live by the threads.
#[derive(Default)]
struct Side {
    sent: AtomicU64,
    receipts: AtomicU64,
    refused: AtomicU64,
}

impl Side {
    fn answered(&self) -> u64 {
        self.receipts.load(Ordering::Relaxed) + self.refused.load(Ordering::Relaxed)
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Everything the threads of a run share.
struct Run<'a> {
    cfg: &'a Config,
    base: Instant,
    calm: Side,
    flood: Side,
    stomp_errors: AtomicU64,
    dropped: AtomicU64,
    /// Calm SEND → RECEIPT, in microseconds.
    calm_latency: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<String>>,
    /// Writers stop at this instant (ns since `base`).
    publish_end_ns: AtomicU64,
    stop: AtomicBool,
}

impl Run<'_> {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn note(&self, text: String) {
        let mut errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if errors.len() < 5 {
            errors.push(text);
        }
    }
}

/// One connection's own counts, for the flooder's window.
#[derive(Default)]
struct Own {
    sent: AtomicU64,
    answered: AtomicU64,
    /// Calm send times by receipt number (ns since the run's base).
    sent_at: Mutex<HashMap<u64, u64>>,
}

/// One connection's handshake result: the socket and what was read past `CONNECTED`.
struct Link {
    stream: TcpStream,
    leftover: Vec<u8>,
}

/// A small xorshift for WebSocket masks (their randomness does not matter to a load generator).
struct Masks(u64);

impl Masks {
    fn new() -> Masks {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Masks(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 as u32).to_le_bytes()
    }
}

/// Encodes one STOMP frame as one masked WebSocket text message.
fn message(masks: &mut Masks, command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(body.len() + 128);
    stomp::encode(&mut frame, command, headers, body);
    let mut out = Vec::with_capacity(frame.len() + 14);
    ws::encode_frame(&mut out, Opcode::Text, &frame, masks.next());
    out
}

/// TCP connect, WebSocket upgrade, STOMP CONNECT (waiting for CONNECTED), SUBSCRIBE to the errors queue.
fn open(cfg: &Config, token: &str, masks: &mut Masks) -> Result<Link, String> {
    let mut stream =
        TcpStream::connect_timeout(&cfg.ws.addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let key = tungstenite::handshake::client::generate_key();
    let upgrade = ws::upgrade_request(&cfg.ws.host_header(), &cfg.ws.path, &key, "v12.stomp");
    stream.write_all(&upgrade).map_err(|e| format!("upgrade: {e}"))?;
    let mut buf = Vec::new();
    let head = loop {
        read_some(&mut stream, &mut buf).map_err(|e| format!("upgrade: {e}"))?;
        if let Some(n) = ws::parse_upgrade_response(&buf, &key).map_err(|e| e.to_string())? {
            break n;
        }
    };
    buf.drain(..head);
    let auth = format!("Bearer {token}");
    let connect = message(
        masks,
        "CONNECT",
        &[
            ("accept-version", "1.2"),
            ("host", cfg.ws.host.as_str()),
            ("heart-beat", "0,0"),
            ("Authorization", auth.as_str()),
        ],
        b"",
    );
    stream.write_all(&connect).map_err(|e| format!("CONNECT: {e}"))?;
    let mut stomp_bytes = Vec::new();
    loop {
        while let Some((frame, used)) = ws::parse_frame(&buf).map_err(|e| e.to_string())? {
            stomp_bytes.extend_from_slice(&frame.payload);
            buf.drain(..used);
        }
        match stomp::parse(&stomp_bytes).map_err(|e| e.to_string())? {
            Some(Parsed::Frame(f, used)) if f.command == "CONNECTED" => {
                stomp_bytes.drain(..used);
                break;
            }
            Some(Parsed::Frame(f, _)) => return Err(format!("CONNECT answered with {}", f.command)),
            Some(Parsed::HeartBeat(n)) => {
                stomp_bytes.drain(..n);
            }
            None => read_some(&mut stream, &mut buf).map_err(|e| format!("CONNECTED: {e}"))?,
        }
    }
    let subscribe = message(
        masks,
        "SUBSCRIBE",
        &[("id", "err-0"), ("destination", "/user/queue/errors")],
        b"",
    );
    stream.write_all(&subscribe).map_err(|e| format!("SUBSCRIBE: {e}"))?;
    let _ = stream.set_read_timeout(Some(READ_TICK));
    // Whatever followed CONNECTED (nothing, normally) is handed to the reader still WebSocket-framed.
    if !stomp_bytes.is_empty() {
        return Err("unexpected frames after CONNECTED".into());
    }
    Ok(Link { stream, leftover: buf })
}

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed by server"));
    }
    buf.extend_from_slice(&chunk[..n]);
    if buf.len() > MAX_HANDSHAKE {
        return Err(io::Error::other("no answer in the first 64 KiB"));
    }
    Ok(())
}

/// Reads RECEIPTs and errors until the run stops.
fn reader(run: &Run<'_>, mut link: Link, calm: bool, own: &Own) {
    let side = if calm { &run.calm } else { &run.flood };
    let mut inbuf = std::mem::take(&mut link.leftover);
    let mut stomp_bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !run.stop.load(Ordering::Relaxed) {
        match link.stream.read(&mut chunk) {
            Ok(0) => {
                run.dropped.fetch_add(1, Ordering::Relaxed);
                run.note("connection closed by the server".into());
                return;
            }
            Ok(n) => inbuf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                run.dropped.fetch_add(1, Ordering::Relaxed);
                run.note(format!("read: {e}"));
                return;
            }
        }
        let mut used = 0;
        while let Ok(Some((frame, n))) = ws::parse_frame(&inbuf[used..]) {
            used += n;
            if matches!(frame.opcode, Opcode::Text | Opcode::Binary | Opcode::Continuation) {
                stomp_bytes.extend_from_slice(&frame.payload);
            }
        }
        inbuf.drain(..used);
        let mut pos = 0;
        while let Ok(Some(parsed)) = stomp::parse(&stomp_bytes[pos..]) {
            match parsed {
                Parsed::HeartBeat(n) => pos += n,
                Parsed::Frame(f, n) => {
                    pos += n;
                    on_frame(run, side, calm, own, &f);
                }
            }
        }
        stomp_bytes.drain(..pos);
    }
}

fn on_frame(run: &Run<'_>, side: &Side, calm: bool, own: &Own, f: &stomp::Frame<'_>) {
    match f.command {
        "RECEIPT" => {
            side.receipts.fetch_add(1, Ordering::Relaxed);
            own.answered.fetch_add(1, Ordering::Relaxed);
            if calm {
                let n = f.header("receipt-id").and_then(|r| r.parse::<u64>().ok());
                let sent = n.and_then(|n| own.sent_at.lock().ok()?.remove(&n));
                if let Some(sent) = sent {
                    let us = (run.now_ns().saturating_sub(sent) / 1000).max(1);
                    if let Ok(mut h) = run.calm_latency.lock() {
                        h.saturating_record(us);
                    }
                }
            }
        }
        "MESSAGE" => {
            side.refused.fetch_add(1, Ordering::Relaxed);
            own.answered.fetch_add(1, Ordering::Relaxed);
            let body: Value = serde_json::from_slice(f.body).unwrap_or(Value::Null);
            run.note(format!(
                "{} SEND refused: {} {}",
                if calm { "calm" } else { "flooder" },
                body["code"].as_str().unwrap_or("?"),
                body["message"].as_str().unwrap_or("?")
            ));
        }
        "ERROR" => {
            run.stomp_errors.fetch_add(1, Ordering::Relaxed);
            run.note(format!("ERROR {}", f.header("message").unwrap_or_default()));
        }
        _ => {}
    }
}

/// The body of SEND `n` to `room`.
fn chat_body(room: &str, n: u64, size: usize) -> Vec<u8> {
    let mut text = format!("flood n={n}");
    if size > 0 {
        text.push(' ');
        text.extend(std::iter::repeat_n('x', size));
    }
    serde_json::json!({ "roomId": room, "message": text })
        .to_string()
        .into_bytes()
}

/// A flooder: receipted SENDs as fast as the socket takes them, at most `--window` unanswered.
fn flooder(run: &Run<'_>, mut stream: TcpStream, room: &str, mut masks: Masks, own: &Own) {
    let _ = stream.set_write_timeout(None);
    let end = run.publish_end_ns.load(Ordering::Relaxed);
    let mut n = 0u64;
    while run.now_ns() < end && !run.stop.load(Ordering::Relaxed) {
        if n.saturating_sub(Side::get(&own.answered)) >= run.cfg.window as u64 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let receipt = n.to_string();
        let bytes = message(
            &mut masks,
            "SEND",
            &[
                ("destination", "/app/chat.send"),
                ("content-type", "application/json"),
                ("receipt", &receipt),
            ],
            &chat_body(room, n, run.cfg.message_size),
        );
        if let Err(e) = stream.write_all(&bytes) {
            run.note(format!("flooder write: {e}"));
            return;
        }
        run.flood.sent.fetch_add(1, Ordering::Relaxed);
        own.sent.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

/// A calm client: one receipted SEND every `--interval-ms`, on an absolute schedule.
fn calm(run: &Run<'_>, mut stream: TcpStream, room: &str, mut masks: Masks, own: &Own) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let end = run.publish_end_ns.load(Ordering::Relaxed);
    let interval = run.cfg.interval.as_nanos() as u64;
    let start = run.now_ns();
    for n in 0u64.. {
        let due = start + n * interval;
        if due >= end || run.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = run.now_ns();
        if due > now {
            std::thread::sleep(Duration::from_nanos(due - now));
        }
        let receipt = n.to_string();
        let bytes = message(
            &mut masks,
            "SEND",
            &[
                ("destination", "/app/chat.send"),
                ("content-type", "application/json"),
                ("receipt", &receipt),
            ],
            &chat_body(room, n, run.cfg.message_size),
        );
        if let Ok(mut map) = own.sent_at.lock() {
            map.insert(n, run.now_ns());
        }
        if let Err(e) = stream.write_all(&bytes) {
            run.note(format!("calm write: {e}"));
            return;
        }
        run.calm.sent.fetch_add(1, Ordering::Relaxed);
        own.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the scenario and builds its report.
pub fn run(cfg: &Config, tokens: &[String], server_pid: Option<&str>) -> Result<Report, String> {
    let rss_before = server_pid.and_then(crate::procfs::vm_rss_kib);
    let run = Run {
        cfg,
        base: Instant::now(),
        calm: Side::default(),
        flood: Side::default(),
        stomp_errors: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        calm_latency: Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| format!("histogram: {e}"))?,
        ),
        errors: Mutex::new(Vec::new()),
        publish_end_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
    };
    // Calm clients are users/rooms 0..connections, flooders the rest.
    let total = cfg.connections + cfg.flooders;
    let mut links = Vec::with_capacity(total);
    for i in 0..total {
        let mut masks = Masks::new();
        let token = tokens.get(i).map(String::as_str).unwrap_or_default();
        let link = open(cfg, token, &mut masks).map_err(|e| format!("connection {i}: {e}"))?;
        links.push((i, link, masks));
    }
    let ramp = Duration::from_nanos(run.now_ns());
    let owns: Vec<Own> = (0..total).map(|_| Own::default()).collect();
    let (publish_s, drain_s, committed_in_window) = std::thread::scope(|s| {
        let run = &run;
        let mut writers = Vec::new();
        let mut readers = Vec::new();
        let publish_start = run.now_ns() + cfg.settle.as_nanos() as u64;
        let publish_end = publish_start + cfg.duration.as_nanos() as u64;
        run.publish_end_ns.store(publish_end, Ordering::Relaxed);
        for (i, link, masks) in links {
            let is_calm = i < cfg.connections;
            let room = cfg.room(i);
            let own = &owns[i];
            let writer_stream = link.stream.try_clone();
            readers.push(s.spawn(move || reader(run, link, is_calm, own)));
            let Ok(stream) = writer_stream else {
                run.note("cannot clone a socket".into());
                continue;
            };
            writers.push(s.spawn(move || {
                let now = run.now_ns();
                if publish_start > now {
                    std::thread::sleep(Duration::from_nanos(publish_start - now));
                }
                if is_calm {
                    calm(run, stream, &room, masks, own);
                } else {
                    flooder(run, stream, &room, masks, own);
                }
            }));
        }
        let mut last = [0u64; 2];
        let mut next_print = run.now_ns() + 1_000_000_000;
        let mut committed_at_end = None;
        let mut drain_start = None;
        let drain_deadline = publish_end + cfg.drain.as_nanos() as u64;
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = run.now_ns();
            if now >= publish_end && committed_at_end.is_none() {
                committed_at_end = Some(Side::get(&run.flood.receipts));
                drain_start = Some(now);
            }
            if now >= next_print {
                next_print += 1_000_000_000;
                let current = [Side::get(&run.flood.sent), Side::get(&run.flood.receipts)];
                eprintln!(
                    "[{:6.1}s] flood sent/s {} committed/s {} refused {} | calm sent {} receipts {} refused {} | ERROR {}",
                    now as f64 / 1e9,
                    current[0] - last[0],
                    current[1] - last[1],
                    Side::get(&run.flood.refused),
                    Side::get(&run.calm.sent),
                    Side::get(&run.calm.receipts),
                    Side::get(&run.calm.refused),
                    Side::get(&run.stomp_errors),
                );
                last = current;
            }
            let writers_done = writers.iter().all(|w| w.is_finished());
            let all_answered =
                run.calm.answered() >= Side::get(&run.calm.sent) && run.flood.answered() >= Side::get(&run.flood.sent);
            let lost = Side::get(&run.dropped) as usize >= total;
            if now >= publish_end && writers_done && (all_answered || now >= drain_deadline || lost) {
                run.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        for w in writers.into_iter().chain(readers) {
            let _ = w.join();
        }
        let end = run.now_ns();
        (
            cfg.duration.as_secs_f64(),
            drain_start.map_or(0.0, |d| (end.saturating_sub(d)) as f64 / 1e9),
            committed_at_end.unwrap_or(0),
        )
    });
    let rss_after = server_pid.and_then(crate::procfs::vm_rss_kib);
    let h = run.calm_latency.lock().map_err(|_| "histogram lock".to_string())?;
    let ms = |q: f64| round2(h.value_at_quantile(q) as f64 / 1000.0);
    let mut r = Report::default();
    r.add("scenario", "flood");
    r.add("url", format!("ws://{}{}", cfg.ws.host_header(), cfg.ws.path));
    r.add("calm_connections", cfg.connections);
    r.add("flooders", cfg.flooders);
    r.add("calm_interval_ms", cfg.interval.as_millis() as u64);
    r.add("flood_window", cfg.window);
    r.add("connect_s", round2(ramp.as_secs_f64()));
    r.add("publish_s", round2(publish_s));
    r.add("drain_s", round2(drain_s));
    r.add("calm_sent", Side::get(&run.calm.sent));
    r.add("calm_receipts", Side::get(&run.calm.receipts));
    r.add("calm_refused", Side::get(&run.calm.refused));
    r.add("calm_p50_ms", ms(0.50));
    r.add("calm_p95_ms", ms(0.95));
    r.add("calm_p99_ms", ms(0.99));
    r.add("calm_max_ms", round2(h.max() as f64 / 1000.0));
    let flood_sent = Side::get(&run.flood.sent);
    let flood_receipts = Side::get(&run.flood.receipts);
    let flood_refused = Side::get(&run.flood.refused);
    r.add("flood_sent", flood_sent);
    r.add("flood_committed", flood_receipts);
    r.add("flood_refused", flood_refused);
    r.add(
        "flood_unanswered",
        flood_sent.saturating_sub(flood_receipts + flood_refused),
    );
    r.add(
        "flood_committed_per_s",
        round2(committed_in_window as f64 / publish_s.max(1e-3)),
    );
    r.add("stomp_error_frames", Side::get(&run.stomp_errors));
    r.add("connections_dropped", Side::get(&run.dropped));
    r.add("first_errors", run.errors.lock().map(|e| e.clone()).unwrap_or_default());
    let kib = |v: Option<u64>| v.map(Value::from).unwrap_or(Value::Null);
    r.add("server_rss_before_kib", kib(rss_before));
    r.add("server_rss_after_kib", kib(rss_after));
    Ok(r)
}
