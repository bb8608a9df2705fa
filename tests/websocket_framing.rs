//! WebSocket framing on `/ws/chat` (RFC 6455, `src/websocket.rs`), from a raw socket: the test
//! client below does the upgrade itself, masks its frames and parses the server's, so that it
//! can send what a WebSocket library never would — framing RFC 6455 forbids, frames over
//! `chat.max_frame_bytes`, fragments with control frames between them, a frame cut at any byte.
//!
//! Framing error: STOMP `ERROR` (`malformed websocket frame`, or `frame too large`), a close
//! frame, then the socket closes. After every such case a fresh, normal STOMP session must
//! still CONNECT, SUBSCRIBE and get its SEND's MESSAGE and RECEIPT.
//!
//! The framing itself does not touch the store, but a SEND's RECEIPT does (it is sent after the
//! commit), and the server checks are STOMP sessions that commit; so, like the other suites,
//! this runs on every backend. Two servers run side by side (two `#[test]`s): one with the
//! default limits, one with large frames and a small in-flight bound.
//!
//! Slow consumers (`chat.outbound_buffer_bytes`) are not tested here: `tests/stomp_chat.rs`
//! (`stomp_slow_consumer`, `stomp_minimum_outbound_buffer`) covers them.

mod common;

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::server::{Config, Server};
use common::stomp::{show, StompClient};
use common::tokens::login;
use common::{metric_value, run_on_each_backend, unique_room, Checks, IO_TIMEOUT};
use herald::stomp::frame::{self, Command, Decoded, Frame, Limits};
use serde_json::{json, Value};

/// `chat.max_frame_bytes` by default (`src/config.rs`).
const DEFAULT_MAX_FRAME: usize = 64 * 1024;
/// `chat.max_frame_bytes` of the large-frame server.
const BIG_MAX_FRAME: usize = 128 * 1024;
/// `chat.max_inflight_sends` of the large-frame server: small, so that 500 SENDs in one write
/// certainly pause the reading of their socket with whole frames left in the framing buffer.
const SMALL_INFLIGHT: usize = 16;

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const FIN: u8 = 0x80;

/// The example key of RFC 6455 §1.3 and its accept value.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

#[test]
fn websocket_framing() {
    run_on_each_backend(
        "websocket_framing",
        &Config::new(),
        &[
            (
                "framing RFC 6455 forbids: ERROR malformed websocket frame, close, EOF",
                malformed_frames,
            ),
            (
                "a frame announced over max_frame_bytes (64 KiB): ERROR frame too large from the header alone",
                too_large_at_default_limit,
            ),
            (
                "ping → pong with its payload; close → close echoed, EOF",
                ping_pong_and_close,
            ),
            (
                "a SEND in fragments with a ping between them, and cut at any byte",
                fragmented_and_split_sends,
            ),
            (
                "500 receipted SENDs in one write: 500 RECEIPTs in order",
                many_frames_in_one_write,
            ),
        ],
    );
}

#[test]
fn websocket_large_frames() {
    let config = Config::new()
        .set("chat", "max_frame_bytes", BIG_MAX_FRAME)
        .set("chat", "max_message_chars", 65_536)
        .set("chat", "max_inflight_sends", SMALL_INFLIGHT);
    run_on_each_backend(
        "websocket_large_frames",
        &config,
        &[
            (
                "a 64 KiB SEND body across many server reads, whole and in fragments",
                a_64_kib_send,
            ),
            (
                "a frame announced over max_frame_bytes (128 KiB): ERROR frame too large",
                too_large_at_configured_limit,
            ),
            (
                "500 SENDs in one write past max_inflight_sends = 16: reading pauses, 500 RECEIPTs in order",
                many_frames_with_reading_paused,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// A raw WebSocket client
// ---------------------------------------------------------------------------------------------

/// A fresh masking key for every client frame (xorshift; any key is as good as another, but
/// they must differ, so that a server unmasking with the wrong key or offset shows).
fn mask_key() -> [u8; 4] {
    static STATE: AtomicU32 = AtomicU32::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.subsec_nanos());
    let mut x = STATE.fetch_add(0x9E37_79B9, Ordering::Relaxed) ^ seed ^ 0xA5A5_5A5A;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    let key = x.to_be_bytes();
    // A key of zeros would leave the payload as is: never use one.
    if key == [0; 4] {
        [0x12, 0x34, 0x56, 0x78]
    } else {
        key
    }
}

/// A client frame with `first` as its first byte (FIN, RSV bits, opcode), masked unless `mask`
/// is `None`; the length in the shortest form.
fn raw_frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame.
fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    raw_frame(opcode | if fin { FIN } else { 0 }, payload, Some(mask_key()))
}

/// The header of a masked frame announcing `length` payload bytes (the payload not included).
fn header_only(first: u8, length: u64) -> Vec<u8> {
    let mut out = vec![first, 0x80 | 127];
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&mask_key());
    out
}

/// The bytes of a STOMP frame.
fn stomp_bytes(f: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(f, &mut out);
    out
}

fn connect_frame(token: &str) -> Frame {
    Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "herald")
        .with_header("Authorization", format!("Bearer {token}").as_str())
        .with_header("heart-beat", "0,0")
}

fn subscribe_frame(id: &str, room: &str, receipt: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .with_header("id", id)
        .with_header("destination", topic(room).as_str())
        .with_header("receipt", receipt)
}

fn send_frame(room: &str, message: &str, receipt: &str) -> Frame {
    let body = json!({ "roomId": room, "message": message }).to_string();
    Frame::new(Command::Send)
        .with_header("destination", "/app/chat.send")
        .with_header("content-type", "application/json")
        .with_header("receipt", receipt)
        .with_body(body.into_bytes())
}

fn topic(room: &str) -> String {
    format!("/topic/chat.{room}")
}

fn access(s: &Server) -> String {
    login(s, "alice", "alicepass").access
}

/// A frame the server sent: every one must be final, unmasked, with no RSV bit.
#[derive(Debug)]
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
}

/// What reading the socket came to.
#[derive(Debug)]
enum Got {
    Frame(ServerFrame),
    /// The server closed the TCP connection (FIN or RST).
    Eof,
    Timeout,
}

fn describe(got: &Got) -> String {
    match got {
        Got::Frame(f) if matches!(f.opcode, TEXT | BINARY) => {
            format!(
                "opcode {} {:?}",
                f.opcode,
                String::from_utf8_lossy(&f.payload[..f.payload.len().min(300)])
            )
        }
        Got::Frame(f) => format!("opcode {} payload {:?}", f.opcode, f.payload),
        other => format!("{other:?}"),
    }
}

struct RawWs {
    stream: TcpStream,
    /// Bytes read and not yet parsed into frames.
    input: Vec<u8>,
    /// Payload of data frames not yet decoded into STOMP frames.
    stomp: Vec<u8>,
}

impl RawWs {
    /// Upgrades a fresh connection to `/ws/chat` offering `v12.stomp`; `pipelined` is written in
    /// the same write as the upgrade request, before the server answered it.
    #[track_caller]
    fn open_with(s: &Server, pipelined: &[u8]) -> RawWs {
        let stream = TcpStream::connect_timeout(&s.addr, IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut ws = RawWs {
            stream,
            input: Vec::new(),
            stomp: Vec::new(),
        };
        let mut request = format!(
            "GET /ws/chat HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n",
            s.addr
        )
        .into_bytes();
        request.extend_from_slice(pipelined);
        ws.write(&request);
        let deadline = Instant::now() + IO_TIMEOUT;
        let end = loop {
            if let Some(i) = ws.input.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                ws.fill(deadline) == Fill::Data,
                "no complete upgrade answer: {:?}",
                String::from_utf8_lossy(&ws.input)
            );
        };
        let head = String::from_utf8_lossy(&ws.input[..end]).into_owned();
        ws.input.drain(..end);
        assert!(head.starts_with("HTTP/1.1 101 "), "upgrade refused: {head}");
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        assert_eq!(header("sec-websocket-accept").as_deref(), Some(WS_ACCEPT), "{head}");
        assert_eq!(header("sec-websocket-protocol").as_deref(), Some("v12.stomp"), "{head}");
        ws
    }

    #[track_caller]
    fn open(s: &Server) -> RawWs {
        RawWs::open_with(s, &[])
    }

    /// A CONNECTed session (heart-beats off).
    #[track_caller]
    fn connect(s: &Server, token: &str) -> RawWs {
        let mut ws = RawWs::open(s);
        ws.send_stomp(&connect_frame(token));
        let f = ws.recv_stomp("CONNECT");
        assert_eq!(f.command, Command::Connected, "CONNECT answered with {}", show(&f));
        ws
    }

    #[track_caller]
    fn write(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes).and_then(|()| self.stream.flush()) {
            panic!("writing {} bytes: {e}", bytes.len());
        }
    }

    /// Sends a STOMP frame as one masked text frame.
    #[track_caller]
    fn send_stomp(&mut self, f: &Frame) {
        self.write(&client_frame(TEXT, true, &stomp_bytes(f)));
    }

    /// Reads once more from the socket, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Fill {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Fill::Timeout;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut chunk) {
                Ok(0) => return Fill::Eof,
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    return Fill::Data;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Fill::Eof
                }
                Err(e) => panic!("reading the socket: {e}"),
            }
        }
    }

    /// The next server frame, EOF, or a timeout.
    #[track_caller]
    fn read_frame(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(f) = self.parse_frame() {
                return Got::Frame(f);
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof => {
                    assert!(
                        self.input.is_empty(),
                        "the connection ended inside a server frame: {:?}",
                        self.input
                    );
                    return Got::Eof;
                }
                Fill::Timeout => return Got::Timeout,
            }
        }
    }

    /// One whole server frame off the front of `input`; checks that it is a server frame.
    #[track_caller]
    fn parse_frame(&mut self) -> Option<ServerFrame> {
        let buf = &self.input;
        if buf.len() < 2 {
            return None;
        }
        let (b0, b1) = (buf[0], buf[1]);
        assert_eq!(
            b0 & 0xF0,
            FIN,
            "server frame not final or with RSV bits: first byte {b0:#04x}"
        );
        assert_eq!(b1 & 0x80, 0, "masked server frame: second byte {b1:#04x}");
        let (length, head) = match b1 & 0x7F {
            126 => {
                if buf.len() < 4 {
                    return None;
                }
                (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return None;
                }
                let mut n = [0u8; 8];
                n.copy_from_slice(&buf[2..10]);
                (usize::try_from(u64::from_be_bytes(n)).expect("frame length"), 10)
            }
            n => (usize::from(n), 2),
        };
        if buf.len() < head + length {
            return None;
        }
        let payload = buf[head..head + length].to_vec();
        self.input.drain(..head + length);
        Some(ServerFrame {
            opcode: b0 & 0x0F,
            payload,
        })
    }

    /// The next STOMP frame (heart-beats skipped); panics on anything else.
    #[track_caller]
    fn recv_stomp(&mut self, what: &str) -> Frame {
        let deadline = Instant::now() + IO_TIMEOUT;
        let limits = Limits {
            max_frame_bytes: 16 << 20,
            max_headers: 1024,
        };
        loop {
            match frame::decode(&self.stomp, &limits) {
                Ok(Some((decoded, used))) => {
                    self.stomp.drain(..used);
                    match decoded {
                        Decoded::Frame(f) => return f,
                        Decoded::HeartBeat => continue,
                    }
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "{what}: undecodable STOMP from the server ({e}): {:?}",
                    String::from_utf8_lossy(&self.stomp)
                ),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Got::Frame(f) if matches!(f.opcode, TEXT | BINARY) => self.stomp.extend_from_slice(&f.payload),
                other => panic!("{what}: waiting for a STOMP frame, got {}", describe(&other)),
            }
        }
    }

    #[track_caller]
    fn expect_receipt(&mut self, id: &str) {
        let f = self.recv_stomp(&format!("RECEIPT {id}"));
        assert_eq!(f.command, Command::Receipt, "expected RECEIPT {id}, got {}", show(&f));
        assert_eq!(f.header("receipt-id"), Some(id), "{}", show(&f));
    }

    /// The MESSAGE of a chat message; returns its text.
    #[track_caller]
    fn expect_message(&mut self, room: &str) -> String {
        let f = self.recv_stomp("MESSAGE");
        assert_eq!(f.command, Command::Message, "expected MESSAGE, got {}", show(&f));
        assert_eq!(f.header("destination"), Some(topic(room).as_str()), "{}", show(&f));
        let body: Value =
            serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("MESSAGE body not JSON ({e}): {}", show(&f)));
        assert_eq!(body["sender"], "alice", "{body}");
        body["message"].as_str().unwrap_or_default().to_string()
    }

    /// SUBSCRIBE to a room, waiting for the RECEIPT.
    #[track_caller]
    fn subscribe(&mut self, id: &str, room: &str) {
        let receipt = format!("sub-{id}");
        self.send_stomp(&subscribe_frame(id, room, &receipt));
        self.expect_receipt(&receipt);
    }

    /// The next frame must be a pong carrying `payload`.
    #[track_caller]
    fn expect_pong(&mut self, payload: &[u8]) {
        match self.read_frame(IO_TIMEOUT) {
            Got::Frame(f) if f.opcode == PONG => assert_eq!(f.payload, payload, "pong payload"),
            other => panic!("expected a pong, got {}", describe(&other)),
        }
    }

    /// The next frame must be a close frame; returns its payload.
    #[track_caller]
    fn expect_close(&mut self, what: &str) -> Vec<u8> {
        assert!(
            self.stomp.is_empty(),
            "{what}: partial STOMP data before the close: {:?}",
            String::from_utf8_lossy(&self.stomp)
        );
        match self.read_frame(IO_TIMEOUT) {
            Got::Frame(f) if f.opcode == CLOSE => f.payload,
            other => panic!("{what}: expected a close frame, got {}", describe(&other)),
        }
    }

    /// The server must close the TCP connection, with nothing more sent.
    #[track_caller]
    fn expect_eof(&mut self, what: &str) {
        match self.read_frame(IO_TIMEOUT) {
            Got::Eof => {}
            other => panic!("{what}: expected the connection to end, got {}", describe(&other)),
        }
    }

    /// STOMP `ERROR` with `message`, then a close frame (empty or with a status code), then EOF.
    #[track_caller]
    fn expect_error_then_close(&mut self, what: &str, message: &str) {
        let f = self.recv_stomp(what);
        assert_eq!(f.command, Command::Error, "{what}: expected ERROR, got {}", show(&f));
        assert_eq!(f.header("message"), Some(message), "{what}: {}", show(&f));
        let close = self.expect_close(what);
        assert!(
            close.is_empty() || close.len() >= 2,
            "{what}: close frame payload of {} byte(s)",
            close.len()
        );
        self.expect_eof(what);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Fill {
    Data,
    Eof,
    Timeout,
}

/// A room for one scenario, kept watched by the node while the scenario runs.
///
/// When a room's last local listener leaves and another arrives, the node starts the room again
/// from the store, and may deliver a message committed just before the new SUBSCRIBE (never miss
/// one after it: see `bus::sync`). The checks below open one session after another on the same
/// room and expect exactly their own MESSAGE: an anchor session subscribes first and commits one
/// SEND, and stays subscribed, so that the room is never started again during the scenario.
struct WarmRoom {
    name: String,
    _anchor: StompClient,
}

#[track_caller]
fn warm_room(s: &Server, token: &str, prefix: &str) -> WarmRoom {
    let name = unique_room(prefix);
    let mut anchor = StompClient::connect(s, token);
    anchor.subscribe("anchor", &topic(&name));
    anchor.send_chat(&name, "warm-up", Some("warm-up"));
    let (_, body) = anchor.recv_json_message();
    assert_eq!(body["message"], "warm-up", "warming up {name}: {body}");
    anchor.expect_receipt("warm-up");
    WarmRoom { name, _anchor: anchor }
}

/// A fresh, normal session (the harness's own WebSocket client) still CONNECTs, SUBSCRIBEs and
/// gets its SEND back as MESSAGE, then RECEIPT; `GET /health` still answers.
#[track_caller]
fn assert_serves(s: &Server, token: &str, room: &WarmRoom, after: &str) {
    s.assert_healthy(after);
    let mut c = StompClient::connect(s, token);
    c.subscribe("after", &topic(&room.name));
    c.send_chat(&room.name, "still serving", Some("after"));
    let (_, body) = c.recv_json_message();
    assert_eq!(body["message"], "still serving", "after {after}: {body}");
    c.expect_receipt("after");
}

// ---------------------------------------------------------------------------------------------
// 1. Framing RFC 6455 forbids
// ---------------------------------------------------------------------------------------------

/// How a malformed case reaches the server.
#[derive(Clone, Copy)]
enum Setup {
    /// CONNECTed and subscribed to a room first, then the bytes are written.
    Connected,
    /// CONNECT and the bytes are written with the upgrade request, in one write: CONNECTED
    /// must come first, then the ERROR.
    Pipelined,
}

fn malformed_frames(s: &Server) {
    let token = access(s);
    let room = warm_room(s, &token, "after-malformed");
    let key = mask_key;
    let ping = |n: usize| raw_frame(FIN | PING, &vec![b'p'; n], Some(key()));
    let cases: Vec<(&str, Setup, Vec<u8>)> = vec![
        (
            "unmasked text frame",
            Setup::Connected,
            raw_frame(FIN | TEXT, b"\n", None),
        ),
        (
            "unmasked SEND, with CONNECT, in the upgrade request's write",
            Setup::Pipelined,
            raw_frame(FIN | TEXT, &stomp_bytes(&send_frame("r", "m", "x")), None),
        ),
        (
            "RSV1 set",
            Setup::Connected,
            raw_frame(FIN | 0x40 | TEXT, b"\n", Some(key())),
        ),
        (
            "RSV2 set",
            Setup::Connected,
            raw_frame(FIN | 0x20 | TEXT, b"\n", Some(key())),
        ),
        (
            "RSV3 set on a ping",
            Setup::Connected,
            raw_frame(FIN | 0x10 | PING, b"", Some(key())),
        ),
        ("reserved data opcode 3", Setup::Connected, client_frame(3, true, b"")),
        (
            "reserved control opcode 11",
            Setup::Connected,
            client_frame(11, true, b"x"),
        ),
        (
            "reserved opcode 3, pipelined",
            Setup::Pipelined,
            client_frame(3, true, b""),
        ),
        ("a ping of 126 bytes", Setup::Connected, ping(126)),
        (
            "a fragmented ping (FIN clear)",
            Setup::Connected,
            client_frame(PING, false, b"p"),
        ),
        (
            "a fragmented close (FIN clear)",
            Setup::Connected,
            client_frame(CLOSE, false, b""),
        ),
        (
            "a continuation with no message started",
            Setup::Connected,
            client_frame(CONTINUATION, true, b"\n"),
        ),
        (
            "a new text frame while a fragmented one is in progress",
            Setup::Connected,
            [
                client_frame(TEXT, false, b"SUBSCRIBE\nid:x\n"),
                client_frame(TEXT, true, b"\n"),
            ]
            .concat(),
        ),
        (
            "a binary frame while a fragmented text is in progress",
            Setup::Connected,
            [client_frame(TEXT, false, b"\n"), client_frame(BINARY, false, b"\n")].concat(),
        ),
        (
            "invalid UTF-8 in a text frame",
            Setup::Connected,
            client_frame(
                TEXT,
                true,
                b"SEND\ndestination:/app/chat.send\n\n{\"roomId\":\"r\",\"message\":\"\xff\xfe\"}\0",
            ),
        ),
        (
            "invalid UTF-8 across the fragments of a text message",
            Setup::Connected,
            [
                client_frame(TEXT, false, &[b'\n', 0xe2, 0x82]),
                client_frame(CONTINUATION, true, b"("),
            ]
            .concat(),
        ),
        (
            "a close frame of 1 byte",
            Setup::Connected,
            client_frame(CLOSE, true, &[0x03]),
        ),
        (
            "a close frame with code 1005 (never sent)",
            Setup::Connected,
            client_frame(CLOSE, true, &[0x03, 0xED]),
        ),
        (
            "a close reason that is not UTF-8",
            Setup::Connected,
            client_frame(CLOSE, true, &[0x03, 0xE8, 0xff]),
        ),
    ];
    let mut checks = Checks::new();
    for (what, setup, bytes) in cases {
        checks.check(what, || {
            let mut ws = match setup {
                Setup::Connected => {
                    let mut ws = RawWs::connect(s, &token);
                    ws.subscribe("m", &unique_room("malformed"));
                    ws.write(&bytes);
                    ws
                }
                Setup::Pipelined => {
                    let pipelined = [client_frame(TEXT, true, &stomp_bytes(&connect_frame(&token))), bytes].concat();
                    let mut ws = RawWs::open_with(s, &pipelined);
                    let f = ws.recv_stomp(what);
                    assert_eq!(f.command, Command::Connected, "{what}: {}", show(&f));
                    ws
                }
            };
            ws.expect_error_then_close(what, "malformed websocket frame");
            assert_serves(s, &token, &room, what);
        });
    }
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// 2. Over max_frame_bytes
// ---------------------------------------------------------------------------------------------

fn too_large_at_default_limit(s: &Server) {
    too_large(s, DEFAULT_MAX_FRAME);
}

fn too_large_at_configured_limit(s: &Server) {
    too_large(s, BIG_MAX_FRAME);
}

/// Frames over `max` payload bytes are refused with `frame too large`: a single frame from its
/// header alone (none of its payload is ever sent), and a fragmented message once its fragments
/// add up to more. A message of exactly `max` bytes is taken.
fn too_large(s: &Server, max: usize) {
    let token = access(s);
    let room = warm_room(s, &token, "large");
    let mut checks = Checks::new();
    let over = max as u64 + 1;
    for (what, first, length) in [
        ("a text frame of max_frame_bytes + 1, header only", FIN | TEXT, over),
        ("a binary frame of max_frame_bytes + 1, header only", FIN | BINARY, over),
        ("a first fragment of max_frame_bytes + 1, header only", TEXT, over),
        ("a text frame announcing 1 TiB, header only", FIN | TEXT, 1 << 40),
    ] {
        checks.check(what, || {
            let mut ws = RawWs::connect(s, &token);
            ws.write(&header_only(first, length));
            ws.expect_error_then_close(what, "frame too large");
            assert_serves(s, &token, &room, what);
        });
    }
    checks.check("fragments adding up to max_frame_bytes + 1", || {
        let mut ws = RawWs::connect(s, &token);
        let half = vec![b'\n'; max / 2];
        let rest = vec![b'\n'; max - max / 2 + 1];
        ws.write(
            &[
                client_frame(TEXT, false, &half),
                client_frame(CONTINUATION, true, &rest),
            ]
            .concat(),
        );
        ws.expect_error_then_close("fragments over the limit", "frame too large");
        assert_serves(s, &token, &room, "fragments over the limit");
    });
    checks.check("a message of exactly max_frame_bytes is taken", || {
        // STOMP heart-beat EOLs: a valid message of any length.
        let mut ws = RawWs::connect(s, &token);
        ws.write(&client_frame(TEXT, true, &vec![b'\n'; max]));
        ws.subscribe("exact", &room.name);
        let half = vec![b'\n'; max / 2];
        ws.write(
            &[
                client_frame(TEXT, false, &half),
                client_frame(CONTINUATION, true, &half),
            ]
            .concat(),
        );
        ws.send_stomp(&send_frame(&room.name, "after the largest messages", "exact"));
        assert_eq!(ws.expect_message(&room.name), "after the largest messages");
        ws.expect_receipt("exact");
    });
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// 3. Ping and close
// ---------------------------------------------------------------------------------------------

fn ping_pong_and_close(s: &Server) {
    let token = access(s);
    let room = warm_room(s, &token, "ping");
    let mut checks = Checks::new();
    checks.check("pings answered with their payload, session unaffected", || {
        let mut ws = RawWs::connect(s, &token);
        for payload in [&b"hello, herald"[..], b"", &[0u8, 0xff, 0x80, b'\n'], &[b'z'; 125]] {
            ws.write(&client_frame(PING, true, payload));
            ws.expect_pong(payload);
        }
        // An unsolicited pong is taken silently; the session goes on.
        ws.write(&client_frame(PONG, true, b"unsolicited"));
        ws.subscribe("p", &room.name);
        ws.send_stomp(&send_frame(&room.name, "after pings", "p1"));
        assert_eq!(ws.expect_message(&room.name), "after pings");
        ws.expect_receipt("p1");
    });
    checks.check("a ping before CONNECT", || {
        let mut ws = RawWs::open(s);
        ws.write(&client_frame(PING, true, b"early"));
        ws.expect_pong(b"early");
        ws.send_stomp(&connect_frame(&token));
        let f = ws.recv_stomp("CONNECT after a ping");
        assert_eq!(f.command, Command::Connected, "{}", show(&f));
    });
    for (what, code, reason) in [
        ("close 1000 echoed", Some(1000u16), &b"bye"[..]),
        ("close 4000 (application code) echoed", Some(4000), b""),
        ("an empty close answered with an empty close", None, b""),
    ] {
        checks.check(what, || {
            let mut ws = RawWs::connect(s, &token);
            ws.subscribe("c", &unique_room("close"));
            let mut payload = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
            payload.extend_from_slice(reason);
            ws.write(&client_frame(CLOSE, true, &payload));
            let echoed = ws.expect_close(what);
            let expected = code.map(|c| c.to_be_bytes().to_vec()).unwrap_or_default();
            assert_eq!(echoed, expected, "{what}: close frame payload");
            ws.expect_eof(what);
        });
    }
    checks.check("close 1000 before CONNECT", || {
        let mut ws = RawWs::open(s);
        ws.write(&client_frame(CLOSE, true, &1000u16.to_be_bytes()));
        assert_eq!(ws.expect_close("close before CONNECT"), 1000u16.to_be_bytes());
        ws.expect_eof("close before CONNECT");
    });
    checks.check("afterwards", || assert_serves(s, &token, &room, "pings and closes"));
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// 4. Fragments and frames cut anywhere
// ---------------------------------------------------------------------------------------------

fn fragmented_and_split_sends(s: &Server) {
    let token = access(s);
    // A short room id, so that a SEND fits in a frame with a 7-bit length.
    let warm = warm_room(s, &token, "s");
    let room = warm.name.clone();
    let mut checks = Checks::new();
    checks.check("a SEND in four fragments with a ping between them", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("f", &room);
        let bytes = stomp_bytes(&send_frame(&room, "in fragments ✓", "frag"));
        let (a, rest) = bytes.split_at(5);
        let (b, c) = rest.split_at(rest.len() / 2);
        // Each frame in its own write: the server sees them in separate reads.
        ws.write(&client_frame(TEXT, false, a));
        ws.write(&client_frame(PING, true, b"between"));
        ws.write(&client_frame(CONTINUATION, false, b));
        ws.write(&client_frame(CONTINUATION, false, b""));
        ws.write(&client_frame(CONTINUATION, true, c));
        ws.expect_pong(b"between");
        assert_eq!(ws.expect_message(&room), "in fragments ✓");
        ws.expect_receipt("frag");
    });
    checks.check("the same fragments and ping in one write", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("f", &room);
        let bytes = stomp_bytes(&send_frame(&room, "fragments at once", "frag1"));
        let parts: Vec<&[u8]> = bytes.chunks(bytes.len() / 3 + 1).collect();
        let mut out = client_frame(TEXT, false, parts[0]);
        out.extend(client_frame(PING, true, b"in between"));
        out.extend(client_frame(CONTINUATION, false, parts[1]));
        out.extend(client_frame(PONG, true, b"unsolicited"));
        out.extend(client_frame(CONTINUATION, true, parts[2]));
        ws.write(&out);
        ws.expect_pong(b"in between");
        assert_eq!(ws.expect_message(&room), "fragments at once");
        ws.expect_receipt("frag1");
    });
    checks.check("CONNECT and SUBSCRIBE pipelined with the upgrade request", || {
        let pipelined = [
            client_frame(TEXT, true, &stomp_bytes(&connect_frame(&token))),
            client_frame(TEXT, true, &stomp_bytes(&subscribe_frame("f", &room, "sub-pipelined"))),
        ]
        .concat();
        let mut ws = RawWs::open_with(s, &pipelined);
        let f = ws.recv_stomp("pipelined CONNECT");
        assert_eq!(f.command, Command::Connected, "{}", show(&f));
        ws.expect_receipt("sub-pipelined");
    });
    checks.check("a SEND cut at byte offsets, with a pause between the parts", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("f", &room);
        // A short frame (7-bit length: 6-byte header) and one with a 16-bit length (8 bytes).
        for (kind, padding) in [("short", 0), ("medium", 150)] {
            let frame_of = |cut: usize| {
                let text = format!("{cut}{}", "m".repeat(padding));
                let receipt = format!("{kind}-{cut}");
                let send = Frame::new(Command::Send)
                    .with_header("destination", "/app/chat.send")
                    .with_header("receipt", receipt.as_str())
                    .with_body(json!({ "roomId": room, "message": text }).to_string().into_bytes());
                let payload = stomp_bytes(&send);
                let header = if payload.len() < 126 { 6 } else { 8 };
                (client_frame(TEXT, true, &payload), header, text, receipt)
            };
            let (probe, header, _, _) = frame_of(99);
            assert_eq!(
                header,
                if padding == 0 { 6 } else { 8 },
                "{kind}: frame of {} bytes",
                probe.len()
            );
            let mut cuts = vec![1, 2, header - 1, header, header + 1, probe.len() / 2, probe.len() - 1];
            if header == 8 {
                cuts.extend([3, 4]);
            }
            for cut in cuts {
                let (frame, _, text, receipt) = frame_of(cut);
                ws.write(&frame[..cut]);
                std::thread::sleep(Duration::from_millis(15));
                ws.write(&frame[cut..]);
                assert_eq!(ws.expect_message(&room), text, "{kind} cut at {cut}");
                ws.expect_receipt(&receipt);
            }
        }
    });
    checks.check("a SEND written one byte at a time", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("f", &room);
        let frame = client_frame(TEXT, true, &stomp_bytes(&send_frame(&room, "byte by byte", "bytes")));
        for b in &frame {
            ws.write(std::slice::from_ref(b));
        }
        assert_eq!(ws.expect_message(&room), "byte by byte");
        ws.expect_receipt("bytes");
    });
    checks.check("two SENDs, the write cut inside the second's header", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("f", &room);
        let first = client_frame(TEXT, true, &stomp_bytes(&send_frame(&room, "first", "two-1")));
        let second = client_frame(TEXT, true, &stomp_bytes(&send_frame(&room, "second", "two-2")));
        let both = [first.clone(), second].concat();
        let cut = first.len() + 3;
        ws.write(&both[..cut]);
        assert_eq!(ws.expect_message(&room), "first");
        ws.expect_receipt("two-1");
        ws.write(&both[cut..]);
        assert_eq!(ws.expect_message(&room), "second");
        ws.expect_receipt("two-2");
    });
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// 5. A 64 KiB SEND
// ---------------------------------------------------------------------------------------------

/// A message text whose every position differs from its neighbours (a mask applied at a wrong
/// offset, or a piece of one read lost or repeated, changes it).
fn patterned(len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + i / ALPHABET.len()) % ALPHABET.len()] as char)
        .collect()
}

/// A SEND whose body is 64 KiB: the server reads a socket 2 KiB at a time
/// (`chat.ws_read_buffer_bytes`), so the frame crosses some 32 reads and is kept, partial,
/// between them.
fn a_64_kib_send(s: &Server) {
    let token = access(s);
    let warm = warm_room(s, &token, "big");
    let room = warm.name.clone();
    let overhead = json!({ "roomId": room, "message": "" }).to_string().len();
    // A body of exactly 64 KiB (the message stays under MySQL's TEXT bound of 65,535 bytes).
    let text = patterned(64 * 1024 - overhead);
    let frame = send_frame(&room, &text, "big");
    assert_eq!(frame.body.len(), 64 * 1024);
    let bytes = stomp_bytes(&frame);
    let mut checks = Checks::new();
    checks.check("one text frame (8-byte length), one write", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("b", &room);
        ws.write(&client_frame(TEXT, true, &bytes));
        let got = ws.expect_message(&room);
        assert!(
            got == text,
            "the 64 KiB message came back altered ({} bytes)",
            got.len()
        );
        ws.expect_receipt("big");
    });
    checks.check("17 fragments of 4 KiB or less, in writes of 1000 bytes", || {
        let mut ws = RawWs::connect(s, &token);
        ws.subscribe("b", &room);
        let chunks: Vec<&[u8]> = bytes.chunks(4096).collect();
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { TEXT } else { CONTINUATION };
            out.extend(client_frame(opcode, i + 1 == chunks.len(), chunk));
        }
        for piece in out.chunks(1000) {
            ws.write(piece);
        }
        let got = ws.expect_message(&room);
        assert!(got == text, "the fragmented 64 KiB message came back altered");
        ws.expect_receipt("big");
    });
    checks.check("afterwards", || assert_serves(s, &token, &warm, "64 KiB SENDs"));
    checks.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. Many frames in one write
// ---------------------------------------------------------------------------------------------

fn many_frames_in_one_write(s: &Server) {
    many_frames(s, false);
}

fn many_frames_with_reading_paused(s: &Server) {
    many_frames(s, true);
}

/// 500 receipted SENDs in one `write_all` (written by a thread while this one reads): 500
/// RECEIPTs in order, and the last one is in the history.
fn many_frames(s: &Server, must_pause: bool) {
    const SENDS: usize = 500;
    let pauses = |s: &Server| metric_value(&s.metrics(), "herald_stomp_read_pauses_total").unwrap_or(0.0);
    let baseline = pauses(s);
    let token = access(s);
    let room = unique_room("many");
    let mut ws = RawWs::connect(s, &token);
    let all: Vec<u8> = (0..SENDS)
        .flat_map(|i| {
            client_frame(
                TEXT,
                true,
                &stomp_bytes(&send_frame(&room, &format!("n{i}"), &format!("m{i}"))),
            )
        })
        .collect();
    let mut writer = ws.stream.try_clone().expect("clone the socket");
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || writer.write_all(&all).and_then(|()| writer.flush()));
        let deadline = Instant::now() + Duration::from_secs(15);
        for i in 0..SENDS {
            assert!(Instant::now() < deadline, "only {i} RECEIPTs within 15 s");
            ws.expect_receipt(&format!("m{i}"));
        }
        writing
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .expect("write the 500 SENDs");
    });
    let history = s.get(&format!("/chat/history/{room}?limit=1"), Some(&token));
    assert_eq!(history.status, 200, "{}", history.text());
    assert_eq!(
        history.json()[0]["message"],
        format!("n{}", SENDS - 1),
        "{}",
        history.text()
    );
    if must_pause {
        assert!(
            pauses(s) > baseline,
            "500 SENDs past max_inflight_sends = {SMALL_INFLIGHT} never paused the reading (read pauses {baseline} → {})",
            pauses(s)
        );
    }
    // The SENDs' room has no subscriber: their RECEIPTs do not wait for any delivery.
    assert_serves(s, &token, &warm_room(s, &token, "after-many"), "500 SENDs in one write");
}
