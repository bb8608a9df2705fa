//! One event loop per core, shaped like Herald's: its own `SO_REUSEPORT` listener, `mio::Poll` and slab of
//! connections, and fixed phases per pass: poll → readiness (accept, read, handle) → inbox (fan-out from the hub) →
//! flush every connection that got output, once → timers.
//!
//! What it leaves out on purpose is every piece of application work: no token check, no store, no metrics.
//! Memory per idle connection is the slab entry and its subscriptions: reads go to one scratch buffer per reactor
//! (only a partial frame is kept per connection), and the outbound buffer is freed whenever it has been written.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::hub::{Event, Hub, Receipt, ROOM_PREFIX};
use crate::stomp::{self, Command, Frame, Parsed};
use crate::timer::Wheel;
use crate::ws::{self, Opcode, Upgrade};

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
/// Timer resolution, as Herald's tick.
pub const TICK_MS: u64 = 250;
/// Reads of one connection per pass before others get a turn.
const READS_PER_PASS: usize = 16;
/// Longest heart-beat interval honoured (a day); a client may ask for any number.
const MAX_HEARTBEAT_MS: u64 = 86_400_000;
/// A closing connection that does not read its last bytes is dropped after this long.
const CLOSE_GRACE_MS: u64 = 5000;
/// The WebSocket path, as Herald's.
const WS_PATH: &str = "/ws/chat";
/// The only SEND destination, as Herald's.
const SEND_DESTINATION: &str = "/app/chat.send";
const ERRORS_QUEUE: &str = "/user/queue/errors";
const NOTIFICATIONS_QUEUE: &str = "/user/queue/notifications";

/// Limits and intervals, with Herald's defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Connections held by the whole process.
    pub max_connections: usize,
    /// Heart-beat the server offers both ways in CONNECTED (ms); 0 disables.
    pub heartbeat_ms: u64,
    /// Bound of a connection's unwritten output; over it the client is closed as a slow consumer.
    pub outbound_bytes: usize,
    /// Largest WebSocket payload and STOMP frame accepted.
    pub max_frame_bytes: usize,
    /// Subscriptions per connection.
    pub max_subscriptions: usize,
    /// Longest chat message, in characters.
    pub max_message_chars: usize,
    /// Time allowed from accept to CONNECT (ms).
    pub connect_timeout_ms: u64,
    /// Connections a flush writes between two looks at the inbox (Herald's pass joining); 0 = never.
    pub flush_inbox_stride: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections: 19_800,
            heartbeat_ms: 10_000,
            outbound_bytes: 1024 * 1024,
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            max_message_chars: 2000,
            connect_timeout_ms: 10_000,
            flush_inbox_stride: 64,
        }
    }
}

/// What every reactor shares.
pub struct Shared {
    /// Limits.
    pub settings: Settings,
    /// Fan-out between reactors.
    pub hub: Hub,
    /// Connections open in the process.
    pub open: AtomicUsize,
}

/// What a subscription listens to.
enum Dest {
    Room(Rc<str>),
    Errors,
    Notifications,
}

struct Sub {
    id: Box<str>,
    dest: Dest,
}

/// A subscriber of a room on this reactor, with its id already escaped for the `subscription` header.
struct RoomSub {
    token: usize,
    escaped_id: Box<[u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the upgrade request.
    Http,
    /// WebSocket, before CONNECT.
    Ws,
    /// WebSocket, after CONNECT.
    Connected,
}

struct Conn {
    stream: TcpStream,
    generation: u32,
    phase: Phase,
    /// Bytes of an unfinished request head or WebSocket frame; empty (unallocated) otherwise.
    inbuf: Vec<u8>,
    /// Bytes of a STOMP frame split across WebSocket frames; empty (unallocated) otherwise.
    stomp_in: Vec<u8>,
    /// Output not yet written; freed once written.
    out: Vec<u8>,
    written: usize,
    in_fragmented_message: bool,
    subs: Vec<Sub>,
    user: Box<str>,
    next_queue_id: u64,
    send_heartbeat_ms: u64,
    expect_heartbeat_ms: u64,
    opened_ms: u64,
    last_read_ms: u64,
    last_write_ms: u64,
    /// The wheel tick this connection is filed under (0: none).
    timer_tick: u64,
    dirty: bool,
    /// Flush what is queued, then close.
    closing: bool,
}

impl Conn {
    fn pending_out(&self) -> usize {
        self.out.len() - self.written
    }
}

/// The parts a reactor is built from.
pub struct Parts {
    /// Reactor index.
    pub id: usize,
    /// Its poller (its waker is registered as [`WAKER`] by the caller).
    pub poll: Poll,
    /// Its own listener on the shared port.
    pub listener: std::net::TcpListener,
    /// Messages from the hub.
    pub inbox: Receiver<Arc<Event>>,
}

/// The waker token every reactor's poller must use for its hub waker.
pub fn waker_token() -> Token {
    WAKER
}

/// One event loop.
pub struct Reactor {
    id: usize,
    poll: Poll,
    listener: TcpListener,
    inbox: Receiver<Arc<Event>>,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    next_generation: u32,
    rooms: HashMap<Rc<str>, Vec<RoomSub>>,
    dirty: Vec<usize>,
    read_again: Vec<usize>,
    scratch: Vec<u8>,
    frame: Vec<u8>,
    wheel: Wheel,
    start: Instant,
    now_ms: u64,
}

fn token_of(key: usize, generation: u32) -> usize {
    ((generation as usize) << 32) | key
}

fn key_of(token: usize) -> (usize, u32) {
    (token & 0xFFFF_FFFF, (token >> 32) as u32)
}

/// Room ids as Herald accepts them: `[A-Za-z0-9_-]{1,64}`.
fn valid_room(room: &str) -> bool {
    (1..=64).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// User names that may go into a header and a JSON string unescaped.
fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl Reactor {
    /// A reactor over its parts.
    pub fn new(parts: Parts, shared: Arc<Shared>) -> io::Result<Reactor> {
        let mut listener = TcpListener::from_std(parts.listener);
        parts
            .poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Reactor {
            id: parts.id,
            poll: parts.poll,
            listener,
            inbox: parts.inbox,
            shared,
            conns: Slab::new(),
            next_generation: 1,
            rooms: HashMap::new(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            // One frame at the limit plus its header fits in one read.
            scratch: vec![0; 64 * 1024 + 16],
            frame: Vec::new(),
            wheel: Wheel::new(),
            start: Instant::now(),
            now_ms: 0,
        })
    }

    /// Runs forever (the process ends on a signal).
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            // 1. poll, at most until the next tick
            let now = self.clock();
            let next_tick_ms = (now / TICK_MS + 1) * TICK_MS;
            let timeout = if self.read_again.is_empty() && self.dirty.is_empty() {
                Duration::from_millis(next_tick_ms - now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("herald-reference: reactor {}: poll failed: {e}", self.id);
                    return;
                }
            }
            self.clock();
            // 2. readiness
            for token in std::mem::take(&mut self.read_again) {
                self.readable(token);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    Token(token) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.readable(token);
                        }
                        if event.is_writable() {
                            self.mark_dirty(token);
                        }
                    }
                }
            }
            // 3. inbox
            self.drain_inbox();
            // 4. flush
            self.flush_dirty();
            // 5. timers
            for (token, tick) in self.wheel.advance(self.now_ms / TICK_MS) {
                self.on_timer(token, tick);
            }
            self.flush_dirty();
        }
    }

    fn clock(&mut self) -> u64 {
        self.now_ms = self.start.elapsed().as_millis() as u64;
        self.now_ms
    }

    fn conn(&mut self, token: usize) -> Option<&mut Conn> {
        let (key, generation) = key_of(token);
        self.conns.get_mut(key).filter(|c| c.generation == generation)
    }

    fn mark_dirty(&mut self, token: usize) {
        let (key, generation) = key_of(token);
        if let Some(c) = self.conns.get_mut(key).filter(|c| c.generation == generation) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    fn schedule(&mut self, token: usize, due_ms: u64) {
        let (key, generation) = key_of(token);
        if let Some(c) = self.conns.get_mut(key).filter(|c| c.generation == generation) {
            self.wheel.schedule(token, &mut c.timer_tick, due_ms / TICK_MS + 1);
        }
    }

    fn accept(&mut self) {
        loop {
            let (mut stream, _) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("herald-reference: reactor {}: accept failed: {e}", self.id);
                    return;
                }
            };
            if self.shared.open.load(Ordering::Relaxed) >= self.shared.settings.max_connections {
                continue;
            }
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            let token = token_of(entry.key(), generation);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
            {
                eprintln!("herald-reference: reactor {}: register failed: {e}", self.id);
                continue;
            }
            entry.insert(Conn {
                stream,
                generation,
                phase: Phase::Http,
                inbuf: Vec::new(),
                stomp_in: Vec::new(),
                out: Vec::new(),
                written: 0,
                in_fragmented_message: false,
                subs: Vec::new(),
                user: "".into(),
                next_queue_id: 0,
                send_heartbeat_ms: 0,
                expect_heartbeat_ms: 0,
                opened_ms: self.now_ms,
                last_read_ms: self.now_ms,
                last_write_ms: self.now_ms,
                timer_tick: 0,
                dirty: false,
                closing: false,
            });
            self.shared.open.fetch_add(1, Ordering::Relaxed);
            self.schedule(token, self.now_ms + self.shared.settings.connect_timeout_ms);
        }
    }

    fn readable(&mut self, token: usize) {
        let now = self.now_ms;
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut budget_spent = true;
        for _ in 0..READS_PER_PASS {
            let Some(c) = self.conn(token).filter(|c| !c.closing) else {
                budget_spent = false;
                break;
            };
            let n = match c.stream.read(&mut scratch) {
                Ok(0) => {
                    self.close(token);
                    budget_spent = false;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    budget_spent = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.close(token);
                    budget_spent = false;
                    break;
                }
            };
            c.last_read_ms = now;
            if c.inbuf.is_empty() {
                // The usual case: whole frames straight from the scratch buffer; only a partial tail is kept.
                let used = self.process(token, &mut scratch[..n]);
                if let Some(c) = self.conn(token).filter(|c| !c.closing) {
                    c.inbuf.extend_from_slice(&scratch[used..n]);
                }
            } else {
                c.inbuf.extend_from_slice(&scratch[..n]);
                let mut inbuf = std::mem::take(&mut c.inbuf);
                let used = self.process(token, &mut inbuf);
                if let Some(c) = self.conn(token).filter(|c| !c.closing) {
                    inbuf.drain(..used);
                    if !inbuf.is_empty() {
                        c.inbuf = inbuf;
                    }
                }
            }
            if n < scratch.len() {
                // A short read drained the socket; edge-triggered readiness reports any later bytes.
                budget_spent = false;
                break;
            }
        }
        if budget_spent && self.conn(token).is_some() {
            // Bytes may be left: come back on the next pass instead of starving the others.
            self.read_again.push(token);
        }
        self.scratch = scratch;
    }

    /// Handles the complete requests and frames at the front of `data`; returns the bytes used.
    fn process(&mut self, token: usize, data: &mut [u8]) -> usize {
        let max_frame = self.shared.settings.max_frame_bytes;
        let mut pos = 0;
        loop {
            let Some(c) = self.conn(token) else {
                return pos;
            };
            if c.closing {
                return pos;
            }
            if c.phase == Phase::Http {
                match ws::parse_upgrade(&data[pos..], WS_PATH) {
                    None => return pos,
                    Some(Upgrade::Refuse(answer)) => {
                        c.out.extend_from_slice(answer);
                        c.closing = true;
                        self.mark_dirty(token);
                        return pos;
                    }
                    Some(Upgrade::Accept { response, head_len }) => {
                        c.out.extend_from_slice(&response);
                        c.phase = Phase::Ws;
                        pos += head_len;
                        self.mark_dirty(token);
                        continue;
                    }
                }
            }
            let frame = match ws::parse_frame(&mut data[pos..], max_frame) {
                Ok(None) => return pos,
                Ok(Some(f)) => f,
                Err(e) => {
                    let code: u16 = if matches!(e, ws::WsError::TooLarge(_)) {
                        1009
                    } else {
                        1002
                    };
                    self.fail(token, "malformed websocket frame", &e.to_string(), Some(code));
                    return pos;
                }
            };
            let (start, end) = (pos + frame.payload_start, pos + frame.end);
            pos = end;
            match frame.opcode {
                Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                    let continuation = frame.opcode == Opcode::Continuation;
                    if continuation != c.in_fragmented_message {
                        self.fail(token, "malformed websocket frame", "bad fragment sequence", Some(1002));
                        return pos;
                    }
                    c.in_fragmented_message = !frame.fin;
                    self.stomp_bytes(token, &data[start..end]);
                }
                Opcode::Ping => {
                    ws::push_frame(&mut c.out, Opcode::Pong, &data[start..end]);
                    self.mark_dirty(token);
                }
                Opcode::Pong => {}
                Opcode::Close => {
                    let echo = data.get(start..start + 2).unwrap_or(&[]);
                    ws::push_frame(&mut c.out, Opcode::Close, echo);
                    c.closing = true;
                    self.mark_dirty(token);
                    return pos;
                }
            }
        }
    }

    /// Feeds WebSocket payload bytes to the STOMP decoder of the connection.
    fn stomp_bytes(&mut self, token: usize, bytes: &[u8]) {
        let max_frame = self.shared.settings.max_frame_bytes;
        let Some(c) = self.conn(token) else {
            return;
        };
        let split = !c.stomp_in.is_empty();
        let owned = if split {
            c.stomp_in.extend_from_slice(bytes);
            std::mem::take(&mut c.stomp_in)
        } else {
            Vec::new()
        };
        let input: &[u8] = if split { &owned } else { bytes };
        let mut used = 0;
        loop {
            match stomp::parse(&input[used..], max_frame) {
                Ok(None) => break,
                Ok(Some(Parsed::HeartBeat(n))) => used += n,
                Ok(Some(Parsed::Frame(frame, n))) => {
                    used += n;
                    if !self.on_frame(token, &frame) {
                        return;
                    }
                }
                Err(e) => {
                    self.fail(token, "malformed frame", &e.to_string(), None);
                    return;
                }
            }
        }
        if let Some(c) = self.conn(token).filter(|c| !c.closing) {
            if used < input.len() {
                c.stomp_in.extend_from_slice(&input[used..]);
            }
        }
    }

    /// Handles one client frame; false when the session is closing.
    fn on_frame(&mut self, token: usize, frame: &Frame<'_>) -> bool {
        let Some(c) = self.conn(token) else {
            return false;
        };
        let receipt = frame.header("receipt");
        match (c.phase, frame.command) {
            (Phase::Ws, Command::Connect) => self.connect(token, frame),
            (Phase::Ws, _) => self.fail(token, "not connected", "send CONNECT first", None),
            (_, Command::Connect) => self.fail(token, "already connected", "CONNECT was already received", None),
            (_, Command::Subscribe) => self.subscribe(token, frame),
            (_, Command::Unsubscribe) => {
                if let Some(id) = frame.header("id") {
                    self.unsubscribe(token, &id);
                }
                self.receipt(token, receipt.as_deref());
            }
            (_, Command::Send) => self.send(token, frame),
            (_, Command::Accepted) => self.receipt(token, receipt.as_deref()),
            (_, Command::Disconnect) => {
                self.receipt(token, receipt.as_deref());
                if let Some(c) = self.conn(token) {
                    c.closing = true;
                }
                // Flushing a closing connection with nothing left to write closes it.
                self.mark_dirty(token);
            }
        }
        self.conn(token).is_some_and(|c| !c.closing)
    }

    fn connect(&mut self, token: usize, frame: &Frame<'_>) {
        let version = match frame.header("accept-version") {
            None => "1.0",
            Some(v) => match ["1.2", "1.1", "1.0"]
                .into_iter()
                .find(|ok| v.split(',').any(|o| o.trim() == *ok))
            {
                Some(ok) => ok,
                None => return self.fail(token, "unsupported protocol version", "supported: 1.2, 1.1, 1.0", None),
            },
        };
        let heart_beat = match frame.header("heart-beat") {
            None => Some((0, 0)),
            Some(v) => v
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))),
        };
        let Some((client_tx, client_rx)) = heart_beat else {
            return self.fail(
                token,
                "invalid heart-beat header",
                "expected heart-beat:<cx>,<cy>",
                None,
            );
        };
        // No token check: the user name is read from an unverified JWT `sub`, or `login`, for the body's sender.
        let user = frame
            .header_ignore_case("authorization")
            .and_then(jwt_subject)
            .or_else(|| frame.header("login").filter(|l| valid_user(l)).map(Cow::into_owned))
            .unwrap_or_else(|| "anonymous".to_string());
        let server = self.shared.settings.heartbeat_ms;
        let negotiate = |client: u64| {
            if server == 0 || client == 0 {
                0
            } else {
                server.max(client).min(MAX_HEARTBEAT_MS)
            }
        };
        let heart_beat = format!("{server},{server}");
        self.frame.clear();
        stomp::push_frame(
            &mut self.frame,
            "CONNECTED",
            &[
                ("version", version),
                ("heart-beat", &heart_beat),
                ("server", concat!("herald-reference/", env!("CARGO_PKG_VERSION"))),
                ("user-name", &user),
            ],
            b"",
        );
        let Some(c) = self.conn(token) else {
            return;
        };
        c.phase = Phase::Connected;
        c.send_heartbeat_ms = negotiate(client_rx);
        c.expect_heartbeat_ms = negotiate(client_tx);
        c.user = user.into_boxed_str();
        let due = self.next_timer(token);
        self.queue_frame(token);
        if let Some(due) = due {
            self.schedule(token, due);
        }
    }

    fn subscribe(&mut self, token: usize, frame: &Frame<'_>) {
        let receipt = frame.header("receipt");
        let Some(id) = frame.header("id").filter(|id| !id.is_empty()) else {
            return self.fail(token, "missing id header", "SUBSCRIBE needs an id", None);
        };
        let Some(destination) = frame.header("destination") else {
            return self.fail(
                token,
                "missing destination header",
                "SUBSCRIBE needs a destination",
                None,
            );
        };
        let max = self.shared.settings.max_subscriptions;
        let Some(c) = self.conn(token) else {
            return;
        };
        if c.subs.iter().any(|s| *s.id == *id) {
            return self.fail(token, "duplicate subscription id", &id, None);
        }
        if c.subs.len() >= max {
            return self.fail(token, "too many subscriptions", "subscription limit reached", None);
        }
        let dest = match &*destination {
            ERRORS_QUEUE => Dest::Errors,
            NOTIFICATIONS_QUEUE => Dest::Notifications,
            d => match d.strip_prefix(ROOM_PREFIX) {
                Some(room) if valid_room(room) => {
                    let room: Rc<str> = match self.rooms.get_key_value(room) {
                        Some((k, _)) => Rc::clone(k),
                        None => room.into(),
                    };
                    let mut escaped = Vec::with_capacity(id.len());
                    stomp::push_escaped(&mut escaped, &id);
                    self.rooms.entry(Rc::clone(&room)).or_default().push(RoomSub {
                        token,
                        escaped_id: escaped.into_boxed_slice(),
                    });
                    Dest::Room(room)
                }
                Some(_) => return self.fail(token, "invalid room id", &destination, None),
                None => return self.fail(token, "unknown destination", &destination, None),
            },
        };
        if let Some(c) = self.conn(token) {
            c.subs.push(Sub { id: id.into(), dest });
        }
        self.receipt(token, receipt.as_deref());
    }

    fn unsubscribe(&mut self, token: usize, id: &str) {
        let Some(c) = self.conn(token) else {
            return;
        };
        let Some(pos) = c.subs.iter().position(|s| &*s.id == id) else {
            return;
        };
        let sub = c.subs.swap_remove(pos);
        self.leave(token, sub);
    }

    fn leave(&mut self, token: usize, sub: Sub) {
        let Dest::Room(room) = sub.dest else {
            return;
        };
        let mut escaped = Vec::with_capacity(sub.id.len());
        stomp::push_escaped(&mut escaped, &sub.id);
        if let Some(subs) = self.rooms.get_mut(&room) {
            if let Some(i) = subs.iter().position(|s| s.token == token && *s.escaped_id == *escaped) {
                subs.swap_remove(i);
            }
            if subs.is_empty() {
                self.rooms.remove(&room);
            }
        }
    }

    fn send(&mut self, token: usize, frame: &Frame<'_>) {
        let receipt = frame.header("receipt");
        match frame.header("destination").as_deref() {
            Some(SEND_DESTINATION) => {}
            Some(other) => {
                let detail = format!("SEND is only accepted to {SEND_DESTINATION}, not {other}");
                return self.fail(token, "invalid destination", &detail, None);
            }
            None => return self.fail(token, "missing destination header", "SEND needs a destination", None),
        }
        #[derive(serde::Deserialize)]
        struct ChatSend<'a> {
            #[serde(rename = "roomId", borrow)]
            room_id: Option<Cow<'a, str>>,
            #[serde(borrow)]
            message: Option<Cow<'a, str>>,
        }
        let max_chars = self.shared.settings.max_message_chars;
        let checked = match serde_json::from_slice::<ChatSend<'_>>(frame.body) {
            Err(_) => Err("the body is not {\"roomId\",\"message\"} JSON"),
            Ok(ChatSend {
                room_id: Some(room),
                message: Some(message),
            }) => {
                let chars = message.chars().count();
                if !valid_room(&room) {
                    Err("roomId: invalid")
                } else if chars == 0 || chars > max_chars || message.trim().is_empty() {
                    Err("message: empty or too long")
                } else {
                    Ok((room, message))
                }
            }
            Ok(_) => Err("roomId and message are required"),
        };
        let (room, message) = match checked {
            Ok(pair) => pair,
            Err(why) => return self.app_error(token, why, receipt.as_deref()),
        };
        let (key, generation) = key_of(token);
        let Some(c) = self.conns.get(key).filter(|c| c.generation == generation) else {
            return;
        };
        let receipt = receipt.map(|id| Receipt {
            reactor: self.id,
            token,
            id: id.into(),
        });
        self.shared.hub.publish(&room, &c.user, &message, receipt);
    }

    /// A JSON error on `/user/queue/errors`, if the client subscribed to it (as Herald does).
    fn app_error(&mut self, token: usize, why: &str, receipt: Option<&str>) {
        let Some(c) = self.conn(token) else {
            return;
        };
        let Some(sub_id) = c
            .subs
            .iter()
            .find(|s| matches!(s.dest, Dest::Errors))
            .map(|s| s.id.clone())
        else {
            return;
        };
        c.next_queue_id += 1;
        let message_id = format!("q-{}", c.next_queue_id);
        let body = serde_json::json!({"code": "INVALID_REQUEST", "message": why, "receipt-id": receipt}).to_string();
        self.frame.clear();
        stomp::push_frame(
            &mut self.frame,
            "MESSAGE",
            &[
                ("destination", ERRORS_QUEUE),
                ("subscription", &sub_id),
                ("message-id", &message_id),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        );
        self.queue_frame(token);
    }

    fn receipt(&mut self, token: usize, receipt: Option<&str>) {
        let Some(id) = receipt else {
            return;
        };
        self.frame.clear();
        stomp::push_frame(&mut self.frame, "RECEIPT", &[("receipt-id", id)], b"");
        self.queue_frame(token);
    }

    /// An ERROR frame, then (with `ws_close`) a WebSocket close frame, then the connection goes.
    fn fail(&mut self, token: usize, message: &str, detail: &str, ws_close: Option<u16>) {
        self.frame.clear();
        stomp::push_frame(
            &mut self.frame,
            "ERROR",
            &[("message", message), ("content-type", "text/plain")],
            detail.as_bytes(),
        );
        self.queue_frame(token);
        let Some(c) = self.conn(token) else {
            return;
        };
        ws::push_frame(&mut c.out, Opcode::Close, &ws_close.unwrap_or(1000).to_be_bytes());
        c.closing = true;
        self.mark_dirty(token);
    }

    /// Queues `self.frame` as one WebSocket text frame; over the outbound bound the client is a slow consumer.
    fn queue_frame(&mut self, token: usize) {
        let limit = self.shared.settings.outbound_bytes;
        let (key, generation) = key_of(token);
        let Some(c) = self.conns.get_mut(key).filter(|c| c.generation == generation) else {
            return;
        };
        if c.pending_out() + self.frame.len() > limit && !c.closing {
            return self.slow_consumer(token);
        }
        ws::push_frame(&mut c.out, Opcode::Text, &self.frame);
        c.last_write_ms = self.now_ms;
        self.mark_dirty(token);
    }

    /// Over the outbound bound: no more messages, an ERROR and a close frame behind what is queued, then close.
    fn slow_consumer(&mut self, token: usize) {
        let now = self.now_ms;
        let Some(c) = self.conn(token) else {
            return;
        };
        if c.closing {
            return;
        }
        c.closing = true;
        let mut error = Vec::new();
        stomp::push_frame(
            &mut error,
            "ERROR",
            &[("message", "slow consumer"), ("content-type", "text/plain")],
            b"outbound buffer limit exceeded",
        );
        ws::push_frame(&mut c.out, Opcode::Text, &error);
        ws::push_frame(&mut c.out, Opcode::Close, &1008u16.to_be_bytes());
        c.last_write_ms = now;
        self.mark_dirty(token);
        self.schedule(token, now + CLOSE_GRACE_MS);
    }

    fn drain_inbox(&mut self) {
        self.shared.hub.clear_wake(self.id);
        while let Ok(event) = self.inbox.try_recv() {
            self.deliver(&event);
        }
    }

    /// Appends the message to every local subscriber of its room: WebSocket header, shared head, the subscriber's
    /// escaped id, shared tail. No allocation per subscriber beyond its outbound buffer's growth.
    fn deliver(&mut self, event: &Event) {
        let limit = self.shared.settings.outbound_bytes;
        let mut slow = Vec::new();
        if let Some(subs) = self.rooms.get(&*event.room) {
            let shared_len = event.head.len() + event.tail.len();
            for sub in subs {
                let (key, generation) = key_of(sub.token);
                let Some(c) = self.conns.get_mut(key).filter(|c| c.generation == generation) else {
                    continue;
                };
                if c.closing {
                    continue;
                }
                let len = shared_len + sub.escaped_id.len();
                if c.pending_out() + len > limit {
                    slow.push(sub.token);
                    continue;
                }
                c.out.reserve(len + 10);
                ws::push_header(&mut c.out, Opcode::Text, len);
                c.out.extend_from_slice(&event.head);
                c.out.extend_from_slice(&sub.escaped_id);
                c.out.extend_from_slice(&event.tail);
                c.last_write_ms = self.now_ms;
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(sub.token);
                }
            }
        }
        for token in slow {
            self.slow_consumer(token);
        }
        if let Some(r) = event.receipt.as_ref().filter(|r| r.reactor == self.id) {
            self.receipt(r.token, Some(&r.id));
        }
    }

    /// Writes every dirty connection; every `flush_inbox_stride` connections, messages that reached the inbox
    /// meanwhile join the pass, as in Herald. Connections written before they arrived stay dirty for the next pass.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        let stride = self.shared.settings.flush_inbox_stride;
        for (i, &token) in dirty.iter().enumerate() {
            if stride > 0 && i % stride == stride - 1 && !self.inbox.is_empty() {
                self.drain_inbox();
            }
            let Some(c) = self.conn(token) else {
                continue;
            };
            c.dirty = false;
            let mut failed = false;
            while c.written < c.out.len() {
                match c.stream.write(&c.out[c.written..]) {
                    Ok(0) => {
                        failed = true;
                        break;
                    }
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            let drained = c.written == c.out.len();
            if drained {
                c.out = Vec::new();
                c.written = 0;
            }
            if failed || (drained && c.closing) {
                self.close(token);
            } else if c.closing {
                // A peer that never reads its last bytes is dropped after a grace period.
                let due = c.last_write_ms + CLOSE_GRACE_MS;
                self.schedule(token, due);
            }
        }
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    /// When the connection's next timer is due, if it has one.
    fn next_timer(&mut self, token: usize) -> Option<u64> {
        let connect_timeout = self.shared.settings.connect_timeout_ms;
        let c = self.conn(token)?;
        if c.closing {
            return Some(c.last_write_ms + CLOSE_GRACE_MS);
        }
        if c.phase != Phase::Connected {
            return Some(c.opened_ms + connect_timeout);
        }
        let read_due = (c.expect_heartbeat_ms > 0).then(|| c.last_read_ms + 2 * c.expect_heartbeat_ms);
        let write_due =
            (c.send_heartbeat_ms > 0).then(|| (c.last_write_ms + c.send_heartbeat_ms).saturating_sub(TICK_MS));
        match (read_due, write_due) {
            (Some(r), Some(w)) => Some(r.min(w)),
            (r, w) => r.or(w),
        }
    }

    /// A connection's timer fired: enforce the connect and heart-beat deadlines, send a heart-beat if due.
    fn on_timer(&mut self, token: usize, tick: u64) {
        let now = self.now_ms;
        match self.conn(token) {
            // Filed again at another tick since: this entry is stale.
            Some(c) if c.timer_tick == tick => c.timer_tick = 0,
            _ => return,
        }
        let Some(due) = self.next_timer(token) else {
            return;
        };
        if due > now {
            return self.schedule(token, due);
        }
        let Some(c) = self.conn(token) else {
            return;
        };
        if c.closing || c.phase == Phase::Http {
            return self.close(token);
        }
        if c.phase != Phase::Connected {
            return self.fail(token, "connect timeout", "no CONNECT frame received in time", None);
        }
        if c.expect_heartbeat_ms > 0 && now >= c.last_read_ms + 2 * c.expect_heartbeat_ms {
            return self.fail(
                token,
                "heart-beat timeout",
                "no frame or heart-beat received in time",
                None,
            );
        }
        if c.send_heartbeat_ms > 0 && now + TICK_MS >= c.last_write_ms + c.send_heartbeat_ms {
            self.frame.clear();
            self.frame.push(b'\n');
            self.queue_frame(token);
        }
        if let Some(due) = self.next_timer(token) {
            self.schedule(token, due.max(now + 1));
        }
    }

    fn close(&mut self, token: usize) {
        let (key, generation) = key_of(token);
        if self.conns.get(key).is_none_or(|c| c.generation != generation) {
            return;
        }
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        for sub in std::mem::take(&mut c.subs) {
            self.leave(token, sub);
        }
    }
}

/// The `sub` claim of a bearer JWT, read without verifying it (the reference does no auth), if it is a plain name.
fn jwt_subject(authorization: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(authorization).ok()?.trim();
    let token = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map_or(value, |_| value[7..].trim());
    let payload = token.split('.').nth(1)?;
    let json = base64url_decode(payload)?;
    #[derive(serde::Deserialize)]
    struct Claims {
        sub: String,
    }
    let claims: Claims = serde_json::from_slice(&json).ok()?;
    valid_user(&claims.sub).then_some(claims.sub)
}

/// Decodes unpadded (or padded) base64url; `None` on any other character.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subject_of_an_unverified_jwt() {
        // {"alg":"HS256"} . {"sub":"bench_user_3","exp":1} . signature
        let jwt = b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaF91c2VyXzMiLCJleHAiOjF9.c2ln";
        assert_eq!(jwt_subject(jwt).as_deref(), Some("bench_user_3"));
        assert_eq!(jwt_subject(b"Bearer nonsense"), None);
        assert_eq!(jwt_subject(b"Bearer a.!!!.c"), None);
        assert_eq!(jwt_subject(&[0xFF, 0xFE]), None);
        // a subject that could break a header or the JSON body is refused
        assert_eq!(jwt_subject(b"x.eyJzdWIiOiJhXG5iIn0.y"), None);
    }

    #[test]
    fn base64url_round_values() {
        assert_eq!(base64url_decode("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64url_decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64url_decode("_-8").as_deref(), Some(&[0xFF, 0xEF][..]));
    }

    #[test]
    fn room_and_user_names() {
        assert!(valid_room("bench-room-0") && valid_room("a_B-9"));
        assert!(!valid_room("") && !valid_room("a.b") && !valid_room(&"a".repeat(65)));
        assert!(valid_user("bench_user_1") && valid_user("a.b"));
        assert!(!valid_user("a\nb") && !valid_user("a\"b") && !valid_user(""));
    }
}
