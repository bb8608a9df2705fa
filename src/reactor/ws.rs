//! STOMP sessions on the socket: WebSocket reads fed through the STOMP decoder into the session,
//! the session's actions applied (room and user index, chat submission, frames out), the
//! bounded outbound buffer with its slow-consumer policy, and the session's timers.
//!
//! Fairness (SPEC §4): while a session has `chat.max_inflight_sends` SENDs waiting for their
//! commit, its socket is left unread (TCP backpressure pushes back on the client); the answers
//! from the chat shards ([`Reactor::chat_acks`]) resume it.

use std::io::{self, Read as _};
use std::sync::atomic::Ordering;
use std::time::Instant;

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
use crate::websocket::{self, Event};

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
    /// A close frame went out already.
    Closed,
}

/// Appends one text frame of `length` payload bytes, written by `payload`, to the session's
/// output, unless that would take what is pending over `cap` bytes.
pub(super) fn queue_text(c: &mut WsConn, cap: usize, length: usize, payload: impl FnOnce(&mut Vec<u8>)) -> Queued {
    if c.close_sent {
        return Queued::Closed;
    }
    let frame = websocket::header_len(length) + length;
    if c.out.pending() + frame > cap {
        return Queued::Full;
    }
    c.out.buf.reserve(frame);
    websocket::text_header(length, &mut c.out.buf);
    payload(&mut c.out.buf);
    Queued::Ok
}

/// Queues the close frame (past the cap: it must follow what is queued); nothing goes after it.
fn queue_close(c: &mut WsConn, code: Option<u16>) {
    if !c.close_sent {
        websocket::close(code, &mut c.out.buf);
        c.close_sent = true;
    }
    c.closing = true;
}

/// The largest drained output buffer a connection keeps until its next timer visit.
const KEEP_OUT_BUFFER: usize = 4096;

/// Writes what is queued. True when the connection should go (done closing, or the socket failed).
pub(super) fn flush(c: &mut WsConn) -> bool {
    match c.out.flush_to(&mut c.stream) {
        Flush::Done => {
            // A subscriber receiving fan-out keeps a small buffer from one message to the next
            // (allocating and freeing it per delivery makes the allocator return and refault
            // pages); its next timer visit frees it (`ws_tick`). Any other connection gives its
            // buffer back at once, so an idle one holds none.
            if !c.receiving || c.out.buf.capacity() > KEEP_OUT_BUFFER {
                c.out.release_if_drained();
            }
            c.closing
        }
        Flush::Blocked => false,
        Flush::Failed => true,
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

/// What one pass over a session's input came to.
enum Input {
    /// Events were handed to the session; its actions are to be applied.
    Handled,
    /// Nothing more to read now.
    Drained,
    /// End the session with this ERROR.
    Fail(&'static str, &'static str),
    /// The peer is gone: drop the socket.
    Gone,
}

/// The ERROR a session ends with for input the WebSocket layer refuses.
fn failure_of(e: websocket::Error) -> Input {
    match e {
        websocket::Error::TooLarge => Input::Fail("frame too large", "WebSocket message over the frame limit"),
        websocket::Error::Protocol(_) | websocket::Error::NotUtf8 => {
            Input::Fail("malformed websocket frame", "the WebSocket framing is invalid")
        }
    }
}

impl Reactor {
    fn ws_conn(&mut self, token: usize) -> Option<&mut WsConn> {
        ws_in(&mut self.slots, token)
    }

    pub(super) fn ws_readable(&mut self, token: usize) {
        let mut actions = Actions::new();
        let mut budget = READ_BUDGET;
        while budget > 0 {
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
            let input = session_input(c, shared, &mut self.scratch, &mut budget, &mut actions);
            match input {
                Input::Handled => {}
                Input::Drained => {
                    // A pong or close reply may have been queued on the way.
                    self.run_actions(token, &mut actions);
                    return self.mark_dirty(token);
                }
                Input::Fail(message, detail) => {
                    self.run_actions(token, &mut actions);
                    return self.ws_fail(token, message, detail);
                }
                Input::Gone => return self.close(token),
            }
            self.mark_dirty(token);
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
                    // The token's expiry and the heart-beats are known now.
                    self.schedule_timer(token, Instant::now());
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
                        queue_close(c, None);
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
        let cap = self.shared.config.chat.outbound_buffer_bytes;
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if f.command == Command::Error {
            metrics.stomp_errors.fetch_add(1, Ordering::Relaxed);
        }
        metrics.stomp_frames_out.fetch_add(1, Ordering::Relaxed);
        c.liveness.wrote(Instant::now());
        let bytes = outbound::wire(f);
        match queue_text(c, cap, bytes.len(), |out| out.extend_from_slice(&bytes)) {
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
        // Past the cap: the ERROR and the close frame follow what the client has not read.
        let error = outbound::wire(&error_frame("slow consumer", "outbound buffer limit exceeded", None));
        let _ = queue_text(c, usize::MAX, error.len(), |out| out.extend_from_slice(&error));
        queue_close(c, None);
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
        let cap = self.shared.config.chat.outbound_buffer_bytes;
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if c.read_paused {
            // The server, not the peer, is holding its input back: it is not silent.
            c.liveness.read(now);
        }
        // Whether it is still receiving or not, a drained buffer goes back; fan-out marks it
        // again if it is.
        c.receiving = false;
        c.out.release_if_drained();
        match c
            .liveness
            .on_timer(&c.session, c.closing, now, now_secs, connect_timeout, super::TICK)
        {
            Due::Nothing => {}
            Due::Drop => self.close(token),
            Due::Fail { message, detail } => self.ws_fail(token, message, detail),
            Due::Heartbeat => match queue_text(c, cap, outbound::HEARTBEAT.len(), |out| {
                out.extend_from_slice(outbound::HEARTBEAT)
            }) {
                Queued::Ok => self.mark_dirty(token),
                Queued::Full => self.slow_consumer(token),
                Queued::Closed => self.close(token),
            },
        }
    }
}

/// One pass over a session's input: what was kept from earlier reads is handed out first; when
/// none of it makes a whole frame, the socket is read into the reactor's scratch buffer. Every
/// whole message goes through the STOMP decoder into the session, whose actions pile up in
/// `actions`; pings are answered, a close frame is answered and ends the session.
fn session_input(
    c: &mut WsConn,
    shared: &crate::shared::Shared,
    scratch: &mut [u8],
    budget: &mut usize,
    actions: &mut Actions,
) -> Input {
    let limits = shared.stomp_limits;
    let ws_limits = shared.ws_limits;
    let cap = shared.config.chat.outbound_buffer_bytes;
    let WsConn {
        stream,
        out,
        inbound,
        session,
        decoder,
        liveness,
        closing,
        close_sent,
        ..
    } = c;
    let mut host = StompHost::new(shared);
    let mut stomp_failed = false;
    // Frames held back by the last pause go first, before anything new is read.
    if decoder.is_paused() {
        *budget = budget.saturating_sub(1);
        let on_frame = |frame| stomp_flow(session, frame, shared, &mut host, actions);
        if let Err(e) = decoder.resume(&limits, on_frame) {
            session.fail(&e.to_string(), "the STOMP frame could not be decoded", None, actions);
        }
        return Input::Handled;
    }
    let mut on_event = |event: Event<'_>| -> websocket::Flow {
        *budget = budget.saturating_sub(1);
        match event {
            Event::Message(payload) => {
                liveness.read(Instant::now());
                shared.metrics.stomp_frames_in.fetch_add(1, Ordering::Relaxed);
                let on_frame = |frame| stomp_flow(session, frame, shared, &mut host, actions);
                if let Err(e) = decoder.feed(payload, &limits, on_frame) {
                    session.fail(&e.to_string(), "the STOMP frame could not be decoded", None, actions);
                    stomp_failed = true;
                }
            }
            Event::Ping(payload) => {
                if !*close_sent && out.pending() + payload.len() + 2 <= cap {
                    websocket::pong(payload, &mut out.buf);
                }
            }
            Event::Close(code) => {
                if !*close_sent {
                    websocket::close(code, &mut out.buf);
                    *close_sent = true;
                }
                *closing = true;
                return websocket::Flow::Pause;
            }
        }
        let more = *budget > 0
            && !stomp_failed
            && !decoder.is_paused()
            && !session.is_closed()
            && !session.is_waiting()
            && session.wants_read(&shared.session);
        if more {
            websocket::Flow::Continue
        } else {
            websocket::Flow::Pause
        }
    };
    if inbound.has_pending() {
        match inbound.resume(&ws_limits, &mut on_event) {
            Ok(true) => return Input::Handled,
            Ok(false) => {}
            Err(e) => return failure_of(e),
        }
    }
    let n = loop {
        match stream.read(scratch) {
            // The peer went away (with or without a close frame): nothing to tell it.
            Ok(0) => return Input::Gone,
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Input::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Input::Gone,
        }
    };
    match inbound.feed(&mut scratch[..n], &ws_limits, &mut on_event) {
        Ok(_) => Input::Handled,
        Err(e) => failure_of(e),
    }
}

/// Hands one STOMP frame to the session, and says whether the decoder may go on.
fn stomp_flow(
    session: &mut crate::stomp::session::Session<NewChatMessage>,
    frame: Frame,
    shared: &crate::shared::Shared,
    host: &mut StompHost<'_>,
    actions: &mut Actions,
) -> Flow {
    session.on_frame(frame, &shared.session, host, actions);
    if session.is_closed() {
        Flow::Stop
    } else if !session.wants_read(&shared.session) {
        Flow::Pause
    } else {
        Flow::Continue
    }
}
