//! One event loop per core. Each reactor owns a `SO_REUSEPORT` listener on the shared port, a
//! `mio::Poll`, a slab of connections and an inbox from workers and other reactors.
//!
//! Every pass of the loop runs the same phases, in order (as Redis's `aeProcessEvents` does):
//!
//! 1. **poll** — wait for readiness, at most until the next timer tick;
//! 2. **readiness** — accept, read and parse, run handlers, queue output;
//! 3. **inbox** — worker replies, committed chat batches, notifications, receipts, room checks
//!    and withdrawals of room access;
//! 4. **flush** — write every connection that got output during this pass, once; events that
//!    reach the inbox while a long flush runs (a large room's next message) join it, so the
//!    connections not yet written take them in the same write;
//! 5. **timers** — header and idle timeouts, heart-beats, token expiry, SSE pings (every 250 ms);
//! 6. **shutdown** — once signalled: stop accepting, say goodbye, exit by the deadline.
//!
//! Tokens carry a generation next to the slab slot, so a reply for a connection that closed and
//! whose slot was reused is dropped instead of reaching a stranger.

mod conn;
mod fanout;
mod http;
mod sse;
mod timers;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::bus::{ConnRef, ReactorMsg};
use crate::http::conn::HttpState;
use crate::shared::Shared;
use conn::Conn;
use fanout::Listeners;

const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
const TICK: Duration = Duration::from_millis(250);
/// Messages read from one WebSocket per pass before others get a turn.
const READ_BUDGET: usize = 256;
/// Connections a flush writes between two looks at the inbox.
const FLUSH_INBOX_STRIDE: usize = 64;

/// A slab entry: the connection and the generation its token must match.
struct Slot {
    generation: u32,
    dirty: bool,
    /// The timer tick this connection is filed under (see `timers`).
    filed: u64,
    conn: Conn,
}

/// What `Reactor::new` needs from the main thread.
pub struct ReactorParts {
    pub id: usize,
    pub poll: Poll,
    pub inbox: Receiver<ReactorMsg>,
    pub listener: std::net::TcpListener,
}

pub struct Reactor {
    id: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    inbox: Receiver<ReactorMsg>,
    shared: Arc<Shared>,
    slots: Slab<Slot>,
    next_generation: u32,
    max_connections: usize,
    /// Who listens to which room and user here.
    listeners: Listeners,
    dirty: Vec<usize>,
    read_again: Vec<usize>,
    /// Every WebSocket read lands here first; a connection keeps only a frame cut by the end
    /// of a read (`chat.ws_read_buffer_bytes`).
    scratch: Vec<u8>,
    /// Connections by the tick at which they next need a look.
    timers: timers::Wheel,
    due: Vec<(usize, u64)>,
}

/// Fails with `AddrInUse` when anything already listens on `addr` — another process included.
///
/// The reactors' listeners share the port through `SO_REUSEPORT`, which the kernel would also
/// grant to a second process of the same user, splitting connections between two servers with
/// different stores. A socket bound *without* that option cannot share the port with anyone, so
/// binding one first (and closing it) proves the port is free. Two processes starting within
/// the same instant could still both pass; anything already running is always detected.
pub fn ensure_port_free(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restart bind while old connections sit in TIME_WAIT; a listener still blocks it.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

/// Binds a listener with `SO_REUSEPORT` so that every reactor accepts on the same port.
pub fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

fn token_of(slot: usize, generation: u32) -> usize {
    ((generation as usize) << 32) | slot
}

fn slot_of(token: usize) -> (usize, u32) {
    (token & 0xFFFF_FFFF, (token >> 32) as u32)
}

impl Reactor {
    pub fn new(parts: ReactorParts, shared: Arc<Shared>) -> io::Result<Reactor> {
        let mut listener = TcpListener::from_std(parts.listener);
        parts
            .poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        // A process-wide bound, counted across reactors (the kernel may spread accepts unevenly).
        let max_connections = shared.config.server.max_connections;
        let scratch_bytes = shared.config.chat.ws_read_buffer_bytes.max(1024);
        Ok(Reactor {
            id: parts.id,
            poll: parts.poll,
            listener: Some(listener),
            inbox: parts.inbox,
            shared,
            slots: Slab::new(),
            next_generation: 1,
            max_connections,
            listeners: Listeners::default(),
            dirty: Vec::new(),
            read_again: Vec::new(),
            scratch: vec![0; scratch_bytes],
            timers: timers::Wheel::new(Instant::now(), TICK),
            due: Vec::new(),
        })
    }

    /// Runs until shutdown completes.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = Instant::now() + TICK;
        let mut shutdown_deadline: Option<Instant> = None;
        let mut goodbye_said = false;
        loop {
            // 1. poll
            let now = Instant::now();
            let timeout = if self.read_again.is_empty() && self.dirty.is_empty() {
                next_tick.saturating_duration_since(now)
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("reactor {}: poll failed: {e}", self.id);
                    return;
                }
            }
            // 2. readiness
            for token in std::mem::take(&mut self.read_again) {
                self.on_readable(token);
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(),
                    Token(token) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(token);
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
            let now = Instant::now();
            if now >= next_tick {
                self.on_tick(now);
                self.flush_dirty();
                next_tick = now + TICK;
            }
            // 6. shutdown: stop accepting at once; let SENDs already accepted commit and be
            // receipted (up to half the deadline), then end every session and stream.
            if self.shared.shutdown.load(Ordering::Acquire) {
                let budget = Duration::from_millis(self.shared.config.server.shutdown_deadline_ms);
                let deadline = *shutdown_deadline.get_or_insert_with(|| {
                    self.stop_accepting();
                    now + budget
                });
                if !goodbye_said && (self.shared.chat.in_flight() == 0 || now + budget / 2 >= deadline) {
                    self.say_goodbye();
                    goodbye_said = true;
                }
                self.flush_dirty();
                if (goodbye_said && self.slots.is_empty()) || now >= deadline {
                    log::info!("reactor {}: stopped ({} connections left)", self.id, self.slots.len());
                    return;
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log and let the next readiness try again.
                    log::warn!("reactor {}: accept failed: {e}", self.id);
                    return;
                }
            };
            let metrics = &self.shared.metrics;
            if metrics.connections_open.load(Ordering::Relaxed) >= self.max_connections as i64 {
                metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let entry = self.slots.vacant_entry();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1).max(1);
            let token = token_of(entry.key(), generation);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(token), Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("reactor {}: register failed: {e}", self.id);
                continue;
            }
            entry.insert(Slot {
                generation,
                dirty: false,
                filed: 0,
                conn: Conn::Http(Box::new(conn::HttpConn {
                    stream,
                    peer,
                    out: conn::OutBuf::default(),
                    state: HttpState::new(Instant::now()),
                })),
            });
            metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            metrics.connections_open.fetch_add(1, Ordering::Relaxed);
            self.schedule_timer(token, Instant::now());
        }
    }

    /// The slot of a live token (generation checked).
    fn slot_mut(&mut self, token: usize) -> Option<&mut Slot> {
        let (slot, generation) = slot_of(token);
        self.slots.get_mut(slot).filter(|s| s.generation == generation)
    }

    fn conn_ref(&self, token: usize) -> ConnRef {
        ConnRef {
            reactor: self.id,
            token,
        }
    }

    fn mark_dirty(&mut self, token: usize) {
        if let Some(slot) = self.slot_mut(token) {
            if !slot.dirty {
                slot.dirty = true;
                self.dirty.push(token);
            }
        }
    }

    fn on_readable(&mut self, token: usize) {
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        match &mut slot.conn {
            Conn::Http(_) => self.http_readable(token),
            Conn::Ws(_) => self.ws_readable(token),
            Conn::Sse(sse) => {
                if conn::drain(&mut sse.stream) {
                    self.close(token);
                }
            }
            Conn::Switching => {}
        }
    }

    fn drain_inbox(&mut self) {
        self.shared.bus.clear_wake(self.id);
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ReactorMsg::Reply { token, response } => self.http_reply(token, response),
                ReactorMsg::Chat(events) => self.deliver_chat(&events),
                ReactorMsg::Notifications(events) => self.deliver_notifications(&events),
                ReactorMsg::ChatAcks(acks) => self.chat_acks(acks),
                ReactorMsg::Membership(events) => self.membership_changed(&events),
                ReactorMsg::RoomChecked { token, room, allowed } => self.room_checked(token, &room, allowed),
                ReactorMsg::SseReplay { token, replay } => self.sse_replay(token, replay),
            }
        }
    }

    /// Writes every connection that got output. Every [`FLUSH_INBOX_STRIDE`] connections it
    /// looks at the inbox: what arrived meanwhile is queued at once, so the connections this pass
    /// has yet to write carry it in the same write (a 10,000-subscriber room's second message
    /// costs no second write to most of them, and does not wait for the first one's whole pass).
    /// Connections already written that got output again are left dirty for the next pass,
    /// which runs without waiting for readiness.
    fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for (i, token) in dirty.iter().enumerate() {
            if i % FLUSH_INBOX_STRIDE == FLUSH_INBOX_STRIDE - 1 && !self.inbox.is_empty() {
                self.shared.metrics.flush_inbox_joins.fetch_add(1, Ordering::Relaxed);
                self.drain_inbox();
            }
            let Some(slot) = self.slot_mut(*token) else {
                continue;
            };
            slot.dirty = false;
            let done = match &mut slot.conn {
                Conn::Http(c) => match c.out.flush_to(&mut c.stream) {
                    conn::Flush::Done => c.state.closes_after_write(),
                    conn::Flush::Blocked => false,
                    conn::Flush::Failed => true,
                },
                Conn::Sse(c) => match c.out.flush_to(&mut c.stream) {
                    conn::Flush::Done => {
                        // An idle stream keeps no buffer either.
                        c.out.release_if_drained();
                        c.state.is_closing()
                    }
                    conn::Flush::Blocked => false,
                    conn::Flush::Failed => true,
                },
                Conn::Ws(c) => ws::flush(c),
                Conn::Switching => false,
            };
            if done {
                self.close(*token);
            }
        }
        // Keep the larger allocation; carry over what became dirty again during the pass.
        dirty.clear();
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
    }

    /// Looks at the connections that are due (not at every connection), and files each again
    /// under the tick of its next deadline.
    fn on_tick(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.timers.due(now, &mut due);
        let now_secs = crate::clock::now_secs();
        for (token, tick) in due.drain(..) {
            let Some(slot) = self.slot_mut(token).filter(|s| s.filed == tick) else {
                // Closed, or filed earlier since: this entry is stale.
                continue;
            };
            match &slot.conn {
                Conn::Http(_) => self.http_tick(token, now),
                Conn::Ws(_) => self.ws_tick(token, now, now_secs),
                Conn::Sse(_) => self.sse_tick(token, now, now_secs),
                Conn::Switching => {}
            }
            self.schedule_timer(token, now);
        }
        self.due = due;
    }

    /// Files a connection under the tick of its nearest deadline (if nearer than where it is
    /// filed): after it opens, changes kind, or a CONNECT set its token's expiry and heart-beats.
    fn schedule_timer(&mut self, token: usize, now: Instant) {
        let config = &self.shared.config;
        let (key, generation) = slot_of(token);
        let Some(slot) = self.slots.get_mut(key).filter(|s| s.generation == generation) else {
            return;
        };
        let at = match &slot.conn {
            Conn::Http(c) => c.state.next_check(
                now,
                config.header_timeout(),
                config.keepalive_timeout(),
                c.out.is_empty(),
            ),
            Conn::Ws(c) => c.liveness.next_check(
                &c.session,
                c.closing,
                now,
                crate::clock::now_secs(),
                config.header_timeout(),
                TICK,
            ),
            Conn::Sse(c) => c.state.next_check(
                now,
                crate::clock::now_secs(),
                Duration::from_millis(config.notifications.ping_interval_ms),
                TICK,
            ),
            Conn::Switching => now + TICK,
        };
        self.timers.schedule(token, at, &mut slot.filed);
    }

    fn stop_accepting(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    /// Asks every connection to end (STOMP ERROR and close frame, SSE end of stream).
    fn say_goodbye(&mut self) {
        let tokens: Vec<usize> = self.slots.iter().map(|(k, s)| token_of(k, s.generation)).collect();
        for token in tokens {
            let Some(slot) = self.slot_mut(token) else {
                continue;
            };
            match &mut slot.conn {
                Conn::Http(c) => {
                    if c.state.goodbye(c.out.is_empty()) {
                        self.close(token);
                    }
                }
                Conn::Ws(_) => self.ws_fail(token, "server shutting down", "reconnect shortly"),
                Conn::Sse(c) => {
                    c.state.end(Instant::now());
                    self.mark_dirty(token);
                }
                Conn::Switching => {}
            }
        }
    }

    /// Forgets a connection: room and user indexes, metrics, the socket.
    fn close(&mut self, token: usize) {
        let (slot_key, generation) = slot_of(token);
        if self.slots.get(slot_key).is_none_or(|s| s.generation != generation) {
            return;
        }
        let slot = self.slots.remove(slot_key);
        let metrics = Arc::clone(&self.shared.metrics);
        metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        let registry = self.poll.registry();
        match slot.conn {
            Conn::Http(mut c) => {
                let _ = registry.deregister(&mut c.stream);
            }
            Conn::Ws(mut c) => {
                metrics.websockets_open.fetch_sub(1, Ordering::Relaxed);
                let _ = registry.deregister(&mut c.stream);
                let mut actions = ws::Actions::new();
                c.session.leave_all(&mut actions);
                for action in actions {
                    if let crate::stomp::session::Action::LeaveRoom { room, subscription } = action {
                        self.leave_room(token, &room, &subscription);
                    }
                }
                if let Some(user) = c.user.take() {
                    self.unindex_user(&user, token);
                }
            }
            Conn::Sse(mut c) => {
                metrics.event_streams_open.fetch_sub(1, Ordering::Relaxed);
                let _ = registry.deregister(&mut c.stream);
                let user = c.state.user.clone();
                self.unindex_user(&user, token);
            }
            Conn::Switching => {}
        }
    }
}
