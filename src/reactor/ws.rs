//! STOMP sessions on the socket: WebSocket reads fed through the STOMP decoder into the session,
//! the session's actions applied (room and user index, chat submission, frames out), the
//! bounded outbound buffer with its slow-consumer policy, and the session's timers.
//!
//! Fairness (SPEC §4): while a session has `chat.max_inflight_sends` SENDs waiting for their
//! commit, its socket is left unread (TCP backpressure pushes back on the client); the answers
//! from the chat shards ([`Reactor::chat_acks`]) resume it.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tungstenite::{Error as WsError, Message};

use super::conn::{Conn, Flush, WsConn};
use super::{Reactor, READ_BUDGET};
use crate::bus::MembershipEvent;
use crate::chat::{self, ChatAck, ChatAnswer, ChatError, StompHost};
use crate::stomp::decoder::Flow;
use crate::stomp::frame::{Command, Frame};
use crate::stomp::liveness::Due;
use crate::stomp::outbound;
use crate::stomp::session::{error_frame, Action, AppError};
use crate::store::model::NewChatMessage;

pub(super) type Actions = Vec<Action<NewChatMessage>>;

/// How a session is told that its SEND was not stored.
fn app_error_of(e: ChatError) -> AppError {
    AppError {
        code: e.code(),
        message: e.message(),
    }
}

/// What happened to a write into the session's bounded outbound buffer.
pub(super) enum Queued {
    Ok,
    /// Over `outbound_buffer_bytes`: the client does not read fast enough.
    Full,
    Closed,
}

pub(super) fn queue(c: &mut WsConn, message: Message) -> Queued {
    match c.ws.write(message) {
        Ok(()) => Queued::Ok,
        Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Queued::Ok,
        Err(WsError::WriteBufferFull(_)) => Queued::Full,
        Err(_) => Queued::Closed,
    }
}

/// Writes the handshake bytes, then the WebSocket buffer. True when the connection should go.
pub(super) fn flush(c: &mut WsConn) -> bool {
    if !c.handshake.is_empty() {
        match c.handshake.flush_to(c.ws.get_mut()) {
            Flush::Done => c.handshake = Default::default(),
            Flush::Blocked => return false,
            Flush::Failed => return true,
        }
    }
    match c.ws.flush() {
        Ok(()) => c.closing,
        Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}

/// A frame as a WebSocket message: text when it is UTF-8 (always, for what Herald sends),
/// binary otherwise.
fn message_of(f: &Frame) -> Message {
    match String::from_utf8(outbound::wire(f)) {
        Ok(text) => Message::Text(text.into()),
        Err(e) => Message::Binary(e.into_bytes().into()),
    }
}

/// The WebSocket connection of a live token, borrowing only the slab.
fn ws_in(slots: &mut slab::Slab<super::Slot>, token: usize) -> Option<&mut WsConn> {
    let (key, generation) = super::slot_of(token);
    match slots
        .get_mut(key)
        .filter(|s| s.generation == generation)
        .map(|s| &mut s.conn)
    {
        Some(Conn::Ws(c)) => Some(c),
        _ => None,
    }
}

/// What one WebSocket read came to.
enum Read {
    /// A STOMP payload (text or binary message).
    Payload(tungstenite::Bytes),
    /// A control frame was handled by tungstenite (a pong may be queued).
    Control,
    /// Nothing more to read now.
    Drained,
    /// The peer sent a close frame.
    Closing,
    /// End the session with this ERROR.
    Fail(&'static str, &'static str),
    /// The peer is gone: drop the socket.
    Gone,
}

fn read_one(c: &mut WsConn) -> Read {
    match c.ws.read() {
        Ok(Message::Text(t)) => Read::Payload(t.into()),
        Ok(Message::Binary(b)) => Read::Payload(b),
        Ok(Message::Close(_)) => Read::Closing,
        Ok(_) => Read::Control,
        Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Read::Drained,
        Err(WsError::Capacity(_)) => Read::Fail("frame too large", "WebSocket message over the frame limit"),
        // The peer went away without a close frame: nothing to tell it.
        Err(WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => Read::Gone,
        Err(WsError::Protocol(_) | WsError::Utf8(_)) => {
            Read::Fail("malformed websocket frame", "the WebSocket framing is invalid")
        }
        Err(_) => Read::Gone,
    }
}

impl Reactor {
    fn ws_conn(&mut self, token: usize) -> Option<&mut WsConn> {
        ws_in(&mut self.slots, token)
    }

    pub(super) fn ws_readable(&mut self, token: usize) {
        let limits = self.shared.stomp_limits;
        let mut actions = Actions::new();
        for _ in 0..READ_BUDGET {
            let Some(c) = ws_in(&mut self.slots, token) else {
                return;
            };
            // A SUBSCRIBE waiting for its room check holds what follows it: read nothing more
            // until it is answered (`room_checked` resumes reading).
            if c.closing || c.session.is_waiting() {
                return;
            }
            let shared = &self.shared;
            if !c.session.wants_read(&shared.session) {
                // Too many SENDs in flight (or a DISCONNECT draining): leave the socket unread
                // until the shards answer; `chat_acks` resumes it.
                if !c.read_paused {
                    c.read_paused = true;
                    shared.metrics.stomp_read_pauses.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            // Frames held back by the last pause go first, before anything new is read.
            let payload = if c.decoder.is_paused() {
                None
            } else {
                match read_one(c) {
                    Read::Payload(p) => Some(p),
                    Read::Control => {
                        self.mark_dirty(token);
                        continue;
                    }
                    // A pong or close reply may have been queued by the read.
                    Read::Drained => return self.mark_dirty(token),
                    Read::Closing => {
                        c.closing = true;
                        return self.mark_dirty(token);
                    }
                    Read::Fail(message, detail) => return self.ws_fail(token, message, detail),
                    Read::Gone => return self.close(token),
                }
            };
            if payload.is_some() {
                c.liveness.read(Instant::now());
                shared.metrics.stomp_frames_in.fetch_add(1, Ordering::Relaxed);
            }
            let (session, decoder) = (&mut c.session, &mut c.decoder);
            let mut host = StompHost::new(shared);
            let on_frame = |frame| {
                session.on_frame(frame, &shared.session, &mut host, &mut actions);
                if session.is_closed() {
                    Flow::Stop
                } else if !session.wants_read(&shared.session) {
                    Flow::Pause
                } else {
                    Flow::Continue
                }
            };
            let decoded = match &payload {
                Some(p) => decoder.feed(p, &limits, on_frame),
                None => decoder.resume(&limits, on_frame),
            };
            if let Err(e) = decoded {
                session.fail(
                    &e.to_string(),
                    "the STOMP frame could not be decoded",
                    None,
                    &mut actions,
                );
            }
            if self.run_actions(token, &mut actions) {
                return;
            }
        }
        // Budget spent: let other connections run, come back on the next pass.
        self.read_again.push(token);
    }

    /// Applies a session's actions. True when the session is closing.
    fn run_actions(&mut self, token: usize, actions: &mut Actions) -> bool {
        let mut closing = false;
        for action in actions.drain(..) {
            match action {
                Action::Send(f) => self.ws_send(token, &f),
                Action::Authenticated { username } => {
                    if let Some(c) = self.ws_conn(token) {
                        c.user = Some(username.as_str().into());
                    }
                    self.index_user(&username, token);
                }
                Action::CheckRoom { room, subscription } => {
                    self.hold_room(token, &room, &subscription);
                    let origin = self.conn_ref(token);
                    let asked = match self.ws_conn(token).and_then(|c| c.user.clone()) {
                        Some(user) => crate::rooms::check_subscription(&self.shared, origin, &user, &room).is_ok(),
                        None => false,
                    };
                    if !asked {
                        // The store is down or its queue is full: answered at once, like a failed check.
                        closing |= self.resolve_room_check(token, &room, None);
                    }
                }
                Action::JoinRoom {
                    room,
                    subscription,
                    client_ack,
                } => self.join_room(token, &room, &subscription, client_ack),
                Action::LeaveRoom { room, subscription } => self.leave_room(token, &room, &subscription),
                Action::Publish { send, receipt } => {
                    let origin = self.conn_ref(token);
                    let boxed = receipt.as_deref().map(Box::from);
                    if let Err(e) = chat::submit(&self.shared, origin, send, boxed) {
                        // Settled at once like a failed commit: nothing was stored, nothing broadcast.
                        let mut more = Actions::new();
                        if let Some(c) = self.ws_conn(token) {
                            c.session
                                .send_settled(receipt.as_deref(), Err(app_error_of(e)), &mut more);
                        }
                        self.run_actions(token, &mut more);
                    }
                }
                Action::CommitGroup { sends, receipt } => {
                    let origin = self.conn_ref(token);
                    let receipts: Vec<Option<String>> = sends.iter().map(|h| h.receipt.clone()).collect();
                    let boxed = receipt.map(String::into_boxed_str);
                    if let Err(e) = chat::submit_group(&self.shared, origin, sends, boxed) {
                        // One error per SEND, no receipt: nothing of the group was stored.
                        let mut more = Actions::new();
                        if let Some(c) = self.ws_conn(token) {
                            c.session
                                .group_settled(&receipts, None, Err(app_error_of(e)), &mut more);
                        }
                        self.run_actions(token, &mut more);
                    }
                }
                Action::Close => {
                    closing = true;
                    if let Some(c) = self.ws_conn(token) {
                        // The ERROR (or RECEIPT) is queued already; the close frame follows it.
                        let _ = c.ws.close(None);
                        c.closing = true;
                        c.liveness.wrote(Instant::now());
                    }
                    self.mark_dirty(token);
                }
            }
        }
        closing
    }

    /// The store's answer to a session's room SUBSCRIBE; the session runs the frames it held
    /// and, unless it waits again or closes, reading resumes.
    pub(super) fn room_checked(&mut self, token: usize, room: &str, allowed: Option<bool>) {
        if self.resolve_room_check(token, room, allowed) {
            return;
        }
        if self
            .ws_conn(token)
            .is_some_and(|c| !c.session.is_waiting() && !c.closing)
        {
            self.read_again.push(token);
        }
    }

    /// Hands a room check's answer to the session and applies what follows. True when the
    /// session is closing.
    fn resolve_room_check(&mut self, token: usize, room: &str, allowed: Option<bool>) -> bool {
        if allowed == Some(false) {
            self.shared
                .metrics
                .room_subscribes_forbidden
                .fetch_add(1, Ordering::Relaxed);
        }
        let mut actions = Actions::new();
        let Some(c) = ws_in(&mut self.slots, token) else {
            return true;
        };
        let (shared, session) = (&self.shared, &mut c.session);
        let mut host = StompHost::new(shared);
        session.room_checked(room, allowed, &shared.session, &mut host, &mut actions);
        self.run_actions(token, &mut actions)
    }

    /// Ends this session's subscriptions to a room its user may no longer enter.
    pub(super) fn withdraw_room(&mut self, token: usize, event: &MembershipEvent) {
        let mut actions = Actions::new();
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        let Some(user) = c.user.as_deref() else {
            return;
        };
        if !event.withdraws(user) {
            return;
        }
        if c.session.room_access_withdrawn(event.room(), &mut actions) {
            self.shared
                .metrics
                .room_subscriptions_revoked
                .fetch_add(1, Ordering::Relaxed);
        }
        self.run_actions(token, &mut actions);
    }

    pub(super) fn ws_send(&mut self, token: usize, f: &Frame) {
        let metrics = std::sync::Arc::clone(&self.shared.metrics);
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if f.command == Command::Error {
            metrics.stomp_errors.fetch_add(1, Ordering::Relaxed);
        }
        metrics.stomp_frames_out.fetch_add(1, Ordering::Relaxed);
        c.liveness.wrote(Instant::now());
        match queue(c, message_of(f)) {
            Queued::Ok => self.mark_dirty(token),
            Queued::Full => self.slow_consumer(token),
            Queued::Closed => self.close(token),
        }
    }

    /// Ends a session with an ERROR frame, then closes it.
    pub(super) fn ws_fail(&mut self, token: usize, message: &str, detail: &str) {
        let mut actions = Actions::new();
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        c.session.fail(message, detail, None, &mut actions);
        self.run_actions(token, &mut actions);
    }

    /// A subscriber over its outbound cap: it gets no more messages, an ERROR frame and a close
    /// frame are queued behind what it has not read, and the socket goes once that is flushed or
    /// after a grace period — whichever comes first. Counted once per connection.
    pub(super) fn slow_consumer(&mut self, token: usize) {
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if c.closing {
            return;
        }
        c.ws.set_config(|cfg| cfg.max_write_buffer_size = usize::MAX);
        let error = error_frame("slow consumer", "outbound buffer limit exceeded", None);
        let _ = c.ws.write(message_of(&error));
        let _ = c.ws.close(None);
        c.closing = true;
        c.liveness.wrote(Instant::now());
        self.shared.metrics.slow_consumer_closes.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.stomp_errors.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(token);
    }

    /// RECEIPTs for committed SENDs, JSON errors for failed ones, and the in-flight count of each
    /// session brought down; a session whose reading was paused resumes once under its bound.
    pub(super) fn chat_acks(&mut self, acks: Vec<ChatAck>) {
        let shared = std::sync::Arc::clone(&self.shared);
        let mut resume = Vec::new();
        for ack in acks {
            let mut actions = Actions::new();
            let Some(c) = ws_in(&mut self.slots, ack.token) else {
                continue;
            };
            match ack.answer {
                ChatAnswer::Committed { count } => c.session.sends_committed(count, &mut actions),
                ChatAnswer::Send { receipt, outcome } => {
                    let outcome = outcome.map_err(app_error_of);
                    c.session.send_settled(receipt.as_deref(), outcome, &mut actions);
                }
                ChatAnswer::Group {
                    receipts,
                    receipt,
                    outcome,
                } => {
                    let outcome = outcome.map_err(app_error_of);
                    c.session
                        .group_settled(&receipts, receipt.as_deref(), outcome, &mut actions);
                }
            }
            if c.read_paused && c.session.wants_read(&shared.session) {
                c.read_paused = false;
                resume.push(ack.token);
            }
            self.run_actions(ack.token, &mut actions);
        }
        // Read them again on the next pass: their sockets may hold data that raised no new event.
        self.read_again.extend(resume);
    }

    pub(super) fn ws_tick(&mut self, token: usize, now: Instant, now_secs: i64) {
        let connect_timeout = self.shared.config.header_timeout();
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if c.read_paused {
            // The server, not the peer, is holding its input back: it is not silent.
            c.liveness.read(now);
        }
        match c
            .liveness
            .on_timer(&c.session, c.closing, now, now_secs, connect_timeout, super::TICK)
        {
            Due::Nothing => {}
            Due::Drop => self.close(token),
            Due::Fail { message, detail } => self.ws_fail(token, message, detail),
            Due::Heartbeat => match queue(c, Message::Text(super::fanout::text(outbound::HEARTBEAT.to_vec()))) {
                Queued::Ok => self.mark_dirty(token),
                Queued::Full => self.slow_consumer(token),
                Queued::Closed => self.close(token),
            },
        }
    }
}
