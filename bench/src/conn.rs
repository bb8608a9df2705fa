//! One client connection: TCP connect → WebSocket upgrade → STOMP `CONNECT` → ready, and what it does once ready.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use serde::Deserialize;
use socket2::{Domain, Socket, Type};

use crate::cli::{Config, Target};
use crate::shared::{Counters, Shared};
use crate::stats::{Histograms, SubscriberTrack};
use crate::stomp::{self, Parsed};
use crate::ws::{self, Opcode};

/// Bytes buffered from the server before the connection is judged broken.
const MAX_INBOUND: usize = 32 * 1024 * 1024;
/// Linux `EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i32 = 115;
/// Subscription id for the chat topic when every subscriber uses the same one (`--sub-ids shared`).
const SHARED_TOPIC_SUB: &str = "sub-0";
/// Subscription id for `/user/queue/errors`.
const ERRORS_SUB: &str = "err-0";

/// What a connection does once `CONNECTED`.
pub enum Role {
    /// Subscribes to one room and checks what arrives.
    Subscriber(SubscriberTrack),
    /// Sends un-receipted SENDs on the fan-out schedule.
    Publisher {
        /// Global publisher index, carried in each message.
        index: usize,
        /// Messages sent so far by this publisher.
        next_msg: u64,
    },
    /// Sends receipted SENDs to one room.
    Sender {
        /// The room index.
        room: usize,
        /// Next receipt number.
        next_receipt: u64,
        /// Outstanding receipts with their send time (ns).
        outstanding: VecDeque<(u64, u64)>,
    },
}

/// Where a connection is in its life.
enum Stage {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent with this key, waiting for `101`.
    Upgrading(String),
    /// STOMP `CONNECT` sent.
    AwaitConnected,
    /// `CONNECTED` received; subscriptions sent.
    Ready,
}

/// Why a connection ended; the worker counts it.
pub enum Ended {
    /// It never reached `CONNECTED`.
    Failed(String),
    /// It was established and then lost.
    Dropped(String),
}

/// Per-thread context the connections work with.
pub struct Ctx<'a> {
    /// The run's configuration.
    pub cfg: &'a Config,
    /// Shared counters and clock.
    pub shared: &'a Shared,
    /// One access token per user (herald).
    pub tokens: &'a [String],
    /// Latency histograms of this thread.
    pub hist: Histograms,
    /// Read buffer reused by every connection of the thread.
    pub scratch: Vec<u8>,
    rng: u64,
}

impl<'a> Ctx<'a> {
    /// A context with a random mask seed.
    pub fn new(cfg: &'a Config, shared: &'a Shared, tokens: &'a [String]) -> Self {
        let mut seed = [0u8; 8];
        // A failed seed only weakens mask randomness, which a load generator does not need.
        let _ = getrandom::fill(&mut seed);
        Self {
            cfg,
            shared,
            tokens,
            hist: Histograms::new(),
            scratch: vec![0; 64 * 1024],
            rng: u64::from_le_bytes(seed) | 1,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_le_bytes()
    }
}

/// A message body as the server delivers it (herald adds `id`; RabbitMQ echoes what was sent).
#[derive(Deserialize)]
struct Delivered<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// An error pushed to `/user/queue/errors`.
#[derive(Deserialize)]
struct AppError {
    #[serde(rename = "receipt-id")]
    receipt_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

/// One WebSocket/STOMP client connection.
pub struct Connection {
    stream: TcpStream,
    stage: Stage,
    /// What it does once ready.
    pub role: Role,
    user: usize,
    /// Index of this connection in the run (its subscription id is `sub-<global>` with `--sub-ids unique`).
    global: usize,
    /// Index of the node (in `Config::nodes`) this connection talks to.
    node: usize,
    inbuf: Vec<u8>,
    stomp: Vec<u8>,
    out: Vec<u8>,
    heartbeat_every_ns: u64,
    last_write_ns: u64,
}

impl Connection {
    /// Starts a non-blocking connect from `source` to the target.
    pub fn open(
        cfg: &Config,
        source: SocketAddr,
        role: Role,
        user: usize,
        global: usize,
        node: usize,
    ) -> io::Result<Self> {
        let node = node % cfg.nodes.len().max(1);
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.bind(&source.into())?;
        match socket.connect(&cfg.nodes.get(node).unwrap_or(&cfg.ws).addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let stream = TcpStream::from_std(socket.into());
        Ok(Self {
            stream,
            stage: Stage::Connecting,
            role,
            user,
            global,
            node,
            inbuf: Vec::new(),
            stomp: Vec::new(),
            out: Vec::new(),
            heartbeat_every_ns: 0,
            last_write_ns: 0,
        })
    }

    /// The socket, for registration with the poller.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// True once `CONNECTED` has arrived.
    pub fn is_ready(&self) -> bool {
        matches!(self.stage, Stage::Ready)
    }

    /// True while the connection has not reached `CONNECTED`.
    pub fn is_pending(&self) -> bool {
        !self.is_ready()
    }

    fn ended(&self, why: String) -> Ended {
        if self.is_ready() {
            Ended::Dropped(why)
        } else {
            Ended::Failed(why)
        }
    }

    /// Handles a readiness event.
    pub fn on_event(&mut self, ctx: &mut Ctx<'_>, readable: bool, writable: bool) -> Result<(), Ended> {
        if matches!(self.stage, Stage::Connecting) {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(Ended::Failed(format!("connect: {e}")));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.start_upgrade(ctx),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Ended::Failed(format!("connect: {e}"))),
            }
        }
        if readable {
            self.read(ctx).map_err(|why| self.ended(why))?;
        }
        if writable || !self.out.is_empty() {
            self.flush(ctx).map_err(|why| self.ended(why))?;
        }
        Ok(())
    }

    fn start_upgrade(&mut self, ctx: &mut Ctx<'_>) {
        let _ = self.stream.set_nodelay(true);
        let key = tungstenite::handshake::client::generate_key();
        let endpoint = ctx.cfg.nodes.get(self.node).unwrap_or(&ctx.cfg.ws);
        self.out.extend_from_slice(&ws::upgrade_request(
            &endpoint.host_header(),
            &endpoint.path,
            &key,
            "v12.stomp",
        ));
        self.stage = Stage::Upgrading(key);
    }

    fn read(&mut self, ctx: &mut Ctx<'_>) -> Result<(), String> {
        loop {
            match self.stream.read(&mut ctx.scratch) {
                Ok(0) => return Err("closed by server".into()),
                Ok(n) => {
                    self.inbuf.extend_from_slice(&ctx.scratch[..n]);
                    self.process(ctx)?;
                    if self.inbuf.len() > MAX_INBOUND {
                        return Err("inbound buffer over limit".into());
                    }
                    // A short read drained the socket; with edge-triggered epoll any later data raises a new
                    // event, so the extra read that would only return WouldBlock is skipped.
                    if n < ctx.scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Writes pending bytes until done or `WouldBlock`.
    pub fn flush(&mut self, ctx: &Ctx<'_>) -> Result<(), String> {
        if matches!(self.stage, Stage::Connecting) {
            return Ok(());
        }
        let mut written = 0;
        let result = loop {
            if written == self.out.len() {
                break Ok(());
            }
            match self.stream.write(&self.out[written..]) {
                Ok(0) => break Err("write returned 0".into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("write: {e}")),
            }
        };
        if written > 0 {
            self.out.drain(..written);
            self.last_write_ns = ctx.shared.now_ns();
        }
        result
    }

    fn process(&mut self, ctx: &mut Ctx<'_>) -> Result<(), String> {
        if let Stage::Upgrading(key) = &self.stage {
            match ws::parse_upgrade_response(&self.inbuf, key) {
                Ok(None) => return Ok(()),
                Ok(Some(n)) => {
                    self.inbuf.drain(..n);
                    self.stage = Stage::AwaitConnected;
                    self.send_connect(ctx);
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut pos = 0;
        let mut result = Ok(());
        loop {
            match ws::parse_frame(&self.inbuf[pos..]) {
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    pos += used;
                    match frame.opcode {
                        Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                            self.stomp.extend_from_slice(&frame.payload)
                        }
                        Opcode::Ping => ws::encode_frame(&mut self.out, Opcode::Pong, &frame.payload, ctx.mask()),
                        Opcode::Pong => {}
                        Opcode::Close => {
                            ws::encode_frame(&mut self.out, Opcode::Close, &[], ctx.mask());
                            result = Err("WebSocket close from server".to_string());
                            break;
                        }
                    }
                }
                Err(e) => {
                    Counters::bump(&ctx.shared.counters.protocol_errors);
                    result = Err(e.to_string());
                    break;
                }
            }
        }
        self.inbuf.drain(..pos);
        let stomp_result = self.process_stomp(ctx);
        result.and(stomp_result)
    }

    fn process_stomp(&mut self, ctx: &mut Ctx<'_>) -> Result<(), String> {
        let buf = std::mem::take(&mut self.stomp);
        let mut pos = 0;
        let result = loop {
            match stomp::parse(&buf[pos..]) {
                Ok(None) => break Ok(()),
                Ok(Some(Parsed::HeartBeat(n))) => pos += n,
                Ok(Some(Parsed::Frame(frame, n))) => {
                    pos += n;
                    if let Err(e) = self.on_frame(ctx, &frame) {
                        break Err(e);
                    }
                }
                Err(e) => {
                    Counters::bump(&ctx.shared.counters.protocol_errors);
                    break Err(e.to_string());
                }
            }
        };
        self.stomp = buf;
        self.stomp.drain(..pos);
        result
    }

    fn on_frame(&mut self, ctx: &mut Ctx<'_>, frame: &stomp::Frame<'_>) -> Result<(), String> {
        let shared = ctx.shared;
        match frame.command {
            "CONNECTED" => self.on_connected(ctx, frame),
            "MESSAGE" => {
                let now = shared.now_ns();
                let is_error_queue = frame.header("subscription").as_deref() == Some(ERRORS_SUB)
                    || frame
                        .header("destination")
                        .is_some_and(|d| d.starts_with("/user/queue/errors"));
                if is_error_queue {
                    self.on_app_error(ctx, frame.body);
                } else if let Role::Subscriber(track) = &mut self.role {
                    Counters::bump(&shared.counters.delivered);
                    match serde_json::from_slice::<Delivered<'_>>(frame.body) {
                        Ok(d) => {
                            if let Some(sent) = track.observe(d.id, &d.message) {
                                ctx.hist.record_delivery(now.saturating_sub(sent));
                            }
                        }
                        Err(_) => track.unparsable += 1,
                    }
                }
                Ok(())
            }
            "RECEIPT" => {
                let now = shared.now_ns();
                if let (Role::Sender { outstanding, .. }, Some(id)) = (&mut self.role, frame.header("receipt-id")) {
                    if let Some(sent) = take_outstanding(outstanding, &id) {
                        Counters::bump(&shared.counters.receipts);
                        ctx.hist.record_receipt(now.saturating_sub(sent));
                    }
                }
                Ok(())
            }
            "ERROR" => {
                Counters::bump(&shared.counters.stomp_errors);
                let message = frame.header("message").unwrap_or_default();
                let body = String::from_utf8_lossy(&frame.body[..frame.body.len().min(200)]);
                Err(format!("STOMP ERROR: {message} {}", body.trim()))
            }
            _ => Ok(()),
        }
    }

    fn on_connected(&mut self, ctx: &mut Ctx<'_>, frame: &stomp::Frame<'_>) -> Result<(), String> {
        let shared = ctx.shared;
        let cfg = ctx.cfg;
        let server_wants = frame
            .header("heart-beat")
            .and_then(|hb| hb.split(',').nth(1).and_then(|v| v.trim().parse::<u64>().ok()))
            .unwrap_or(0);
        let (cx, _) = cfg.heart_beat;
        if cx > 0 && server_wants > 0 {
            self.heartbeat_every_ns = cx.max(server_wants) * 1_000_000;
        }
        self.stage = Stage::Ready;
        Counters::bump(&shared.counters.established);
        shared
            .counters
            .last_established_ns
            .fetch_max(shared.now_ns(), std::sync::atomic::Ordering::Relaxed);
        if !matches!(self.role, Role::Subscriber(_)) {
            Counters::bump(&shared.counters.senders_ready);
        }
        let mut frame_bytes = Vec::new();
        match &self.role {
            Role::Subscriber(track) => {
                let dest = format!("/topic/chat.{}", cfg.room(track.room));
                let id = if cfg.unique_sub_ids {
                    format!("sub-{}", self.global)
                } else {
                    SHARED_TOPIC_SUB.to_string()
                };
                stomp::encode(
                    &mut frame_bytes,
                    "SUBSCRIBE",
                    &[("id", &id), ("destination", &dest)],
                    b"",
                );
                Counters::bump(&shared.subscribers_per_room[track.room]);
            }
            Role::Publisher { .. } | Role::Sender { .. } if cfg.target.speaks_herald() => {
                stomp::encode(
                    &mut frame_bytes,
                    "SUBSCRIBE",
                    &[("id", ERRORS_SUB), ("destination", "/user/queue/errors")],
                    b"",
                );
            }
            _ => {}
        }
        if !frame_bytes.is_empty() {
            ws::encode_frame(&mut self.out, Opcode::Text, &frame_bytes, ctx.mask());
        }
        Ok(())
    }

    fn on_app_error(&mut self, ctx: &mut Ctx<'_>, body: &[u8]) {
        let shared = ctx.shared;
        Counters::bump(&shared.counters.app_errors);
        let parsed: Option<AppError> = serde_json::from_slice(body).ok();
        if let (Role::Sender { outstanding, .. }, Some(id)) =
            (&mut self.role, parsed.as_ref().and_then(|e| e.receipt_id.as_deref()))
        {
            take_outstanding(outstanding, id);
        }
        let text = match parsed {
            Some(e) => format!(
                "app error {}: {}",
                e.code.unwrap_or_default(),
                e.message.unwrap_or_default()
            ),
            None => format!("app error: {}", String::from_utf8_lossy(&body[..body.len().min(200)])),
        };
        shared.note_error(text);
    }

    fn send_connect(&mut self, ctx: &mut Ctx<'_>) {
        let cfg = ctx.cfg;
        let hb = format!("{},{}", cfg.heart_beat.0, cfg.heart_beat.1);
        let mut frame = Vec::new();
        match cfg.target {
            Target::Herald | Target::Reference => {
                let auth = format!("Bearer {}", ctx.tokens.get(self.user).map(String::as_str).unwrap_or(""));
                let headers = [
                    ("accept-version", "1.2"),
                    ("host", cfg.ws.host.as_str()),
                    ("heart-beat", hb.as_str()),
                    ("Authorization", auth.as_str()),
                ];
                stomp::encode(&mut frame, "CONNECT", &headers, b"");
            }
            Target::Rabbitmq => {
                let headers = [
                    ("accept-version", "1.2"),
                    ("host", cfg.vhost.as_str()),
                    ("heart-beat", hb.as_str()),
                    ("login", cfg.login.as_str()),
                    ("passcode", cfg.passcode.as_str()),
                ];
                stomp::encode(&mut frame, "CONNECT", &headers, b"");
            }
        }
        ws::encode_frame(&mut self.out, Opcode::Text, &frame, ctx.mask());
    }

    /// True if this connection may send one more message now.
    pub fn can_send(&self, window: usize) -> bool {
        self.is_ready()
            && match &self.role {
                Role::Subscriber(_) => false,
                Role::Publisher { .. } => true,
                Role::Sender { outstanding, .. } => outstanding.len() < window,
            }
    }

    /// Queues and writes this connection's next SEND; returns the room it went to.
    pub fn send_next(&mut self, ctx: &mut Ctx<'_>) -> Result<Option<usize>, Ended> {
        let cfg = ctx.cfg;
        let rooms = cfg.rooms;
        let now = ctx.shared.now_ns();
        let (room, text, receipt) = match &mut self.role {
            Role::Subscriber(_) => return Ok(None),
            Role::Publisher { index, next_msg } => {
                let k = *next_msg;
                *next_msg += 1;
                let room = (*index + k as usize) % rooms;
                (room, format!("t={now} p={index} s={}", k / rooms as u64), None)
            }
            Role::Sender {
                room,
                next_receipt,
                outstanding,
            } => {
                let r = *next_receipt;
                *next_receipt += 1;
                outstanding.push_back((r, now));
                (*room, format!("t={now} r={r}"), Some(r.to_string()))
            }
        };
        let mut text = text;
        if cfg.message_size > 0 {
            text.push(' ');
            text.extend(std::iter::repeat_n('x', cfg.message_size));
        }
        if let Some(user) = &cfg.mention {
            text.push_str(" @");
            text.push_str(user);
        }
        let room_name = cfg.room(room);
        let body = serde_json::json!({"roomId": room_name, "message": text}).to_string();
        let dest = match cfg.target {
            Target::Herald | Target::Reference => "/app/chat.send".to_string(),
            Target::Rabbitmq => format!("/topic/chat.{room_name}"),
        };
        let mut headers = vec![("destination", dest.as_str()), ("content-type", "application/json")];
        if let Some(r) = &receipt {
            headers.push(("receipt", r.as_str()));
        }
        let mut frame = Vec::with_capacity(body.len() + 128);
        stomp::encode(&mut frame, "SEND", &headers, body.as_bytes());
        ws::encode_frame(&mut self.out, Opcode::Text, &frame, ctx.mask());
        Counters::bump(&ctx.shared.counters.sent);
        Counters::bump(&ctx.shared.sent_per_room[room]);
        self.flush(ctx).map_err(|why| self.ended(why))?;
        Ok(Some(room))
    }

    /// Sends a heart-beat if the negotiated interval is close to passing.
    pub fn heartbeat(&mut self, ctx: &mut Ctx<'_>, now_ns: u64) -> Result<(), Ended> {
        if self.heartbeat_every_ns == 0 || now_ns.saturating_sub(self.last_write_ns) < self.heartbeat_every_ns * 3 / 4 {
            return Ok(());
        }
        ws::encode_frame(&mut self.out, Opcode::Text, b"\n", ctx.mask());
        self.flush(ctx).map_err(|why| self.ended(why))
    }
}

fn take_outstanding(outstanding: &mut VecDeque<(u64, u64)>, id: &str) -> Option<u64> {
    let id: u64 = id.trim().parse().ok()?;
    let pos = outstanding.iter().position(|(r, _)| *r == id)?;
    outstanding.remove(pos).map(|(_, sent)| sent)
}
