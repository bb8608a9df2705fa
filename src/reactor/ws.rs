//! STOMP sessions on the reactor: WebSocket reads into the session state machine, its actions
//! (room index, persistence, frames), fan-out of committed messages and the session timers.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::Utf8Bytes;
use tungstenite::{Error as WsError, Message};

use super::conn::{Conn, Flush, WsConn};
use super::{Reactor, READ_BUDGET};
use crate::hub::{ChatAck, ChatEvent, ChatOutcome, NotificationEvent};
use crate::stomp::frame::{self, Command, Decoded, Frame};
use crate::stomp::session::{Action, NOTIFICATIONS_QUEUE, ROOM_PREFIX};
use crate::store::pool::ChatJob;

/// What happened to a write into the session's bounded outbound buffer.
enum Queued {
    Ok,
    /// Over `outbound_buffer_bytes`: the client does not read fast enough.
    Full,
    Closed,
}

fn queue(c: &mut WsConn, message: Message) -> Queued {
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

fn frame_message(f: &Frame) -> Message {
    let mut f = f.clone();
    if !f.body.is_empty() && f.header("content-length").is_none() {
        let len = f.body.len().to_string();
        f.headers.push(("content-length".into(), len));
    }
    let mut bytes = Vec::with_capacity(64 + f.body.len());
    frame::encode(&f, &mut bytes);
    match String::from_utf8(bytes) {
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

impl Reactor {
    fn ws_conn(&mut self, token: usize) -> Option<&mut WsConn> {
        ws_in(&mut self.slots, token)
    }

    pub(super) fn ws_readable(&mut self, token: usize) {
        let limits = self.shared.stomp_limits;
        let mut actions = Vec::new();
        for _ in 0..READ_BUDGET {
            let Some(c) = ws_in(&mut self.slots, token) else {
                return;
            };
            if c.closing {
                return;
            }
            let message = match c.ws.read() {
                Ok(m) => m,
                Err(WsError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // A pong or close reply may have been queued by the read.
                    self.mark_dirty(token);
                    return;
                }
                Err(WsError::Capacity(_)) => {
                    return self.ws_fail(token, "frame too large", "WebSocket message over the frame limit");
                }
                Err(WsError::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake)) => {
                    // The peer went away without a close frame: nothing to tell it.
                    return self.close(token);
                }
                Err(WsError::Protocol(_) | WsError::Utf8(_)) => {
                    return self.ws_fail(token, "malformed websocket frame", "the WebSocket framing is invalid");
                }
                Err(_) => return self.close(token),
            };
            c.last_read = Instant::now();
            let payload: tungstenite::Bytes = match message {
                Message::Text(t) => t.into(),
                Message::Binary(b) => b,
                Message::Close(_) => {
                    c.closing = true;
                    self.mark_dirty(token);
                    return;
                }
                _ => {
                    self.mark_dirty(token);
                    continue;
                }
            };
            self.shared.metrics.stomp_frames_in.fetch_add(1, Ordering::Relaxed);
            // Frames are decoded straight from the message; only a frame split across messages
            // is copied into `stomp_in` (so an idle session holds no parse buffer).
            let split_before = !c.stomp_in.is_empty();
            if split_before {
                c.stomp_in.extend_from_slice(&payload);
            }
            let mut newly_connected: Option<Box<str>> = None;
            let mut used = 0;
            let mut failed = false;
            {
                let input: &[u8] = if split_before { &c.stomp_in } else { &payload };
                loop {
                    match frame::decode(&input[used..], &limits) {
                        Ok(None) => break,
                        Ok(Some((Decoded::HeartBeat, n))) => used += n,
                        Ok(Some((Decoded::Frame(f), n))) => {
                            used += n;
                            let was_connected = c.session.principal().is_some();
                            let shared = &self.shared;
                            c.session.on_frame(
                                f,
                                &shared.session,
                                crate::clock::now_ms(),
                                |t| shared.principal(t),
                                &mut actions,
                            );
                            if !was_connected {
                                if let Some(p) = c.session.principal() {
                                    let user: Box<str> = p.username.as_str().into();
                                    c.indexed_user = Some(user.clone());
                                    newly_connected = Some(user);
                                }
                            }
                            if c.session.principal().is_none() && matches!(actions.last(), Some(Action::Close)) {
                                failed = true;
                                break;
                            }
                        }
                        Err(e) => {
                            failed = true;
                            c.session.fail(
                                &e.to_string(),
                                "the STOMP frame could not be decoded",
                                None,
                                &mut actions,
                            );
                            break;
                        }
                    }
                }
            }
            if failed {
                c.stomp_in = Vec::new();
            } else if split_before {
                c.stomp_in.drain(..used);
                if c.stomp_in.is_empty() {
                    c.stomp_in = Vec::new();
                }
            } else if used < payload.len() {
                c.stomp_in.extend_from_slice(&payload[used..]);
            }
            if let Some(user) = newly_connected {
                self.index_user(&user, token);
            }
            let closing = self.run_actions(token, &mut actions);
            if closing {
                return;
            }
        }
        // Budget spent: let other connections run, come back on the next pass.
        self.read_again.push(token);
    }

    /// Applies a session's actions. True when the session is closing.
    fn run_actions(&mut self, token: usize, actions: &mut Vec<Action>) -> bool {
        let mut closing = false;
        for action in actions.drain(..) {
            match action {
                Action::Send(f) => self.ws_send(token, &f),
                Action::JoinRoom { room, subscription } => self.join_room(token, &room, &subscription),
                Action::LeaveRoom { room, subscription } => self.leave_room(token, &room, &subscription),
                Action::Publish { message, receipt } => {
                    let job = ChatJob {
                        message,
                        origin: self.conn_ref(token),
                        receipt: receipt.clone().map(String::into_boxed_str),
                    };
                    let accepted = self.shared.pool.is_up() && self.shared.pool.submit_chat(job).is_ok();
                    if !accepted {
                        // Reported like a failed commit: nothing was stored, nothing broadcast.
                        self.shared
                            .metrics
                            .chat_messages_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        let mut more = Vec::new();
                        if let Some(c) = self.ws_conn(token) {
                            c.session.app_error(
                                "SERVICE_UNAVAILABLE",
                                "메시지를 저장할 수 없습니다. 잠시 후 다시 시도하세요",
                                receipt.as_deref(),
                                &mut more,
                            );
                        }
                        for a in more {
                            if let Action::Send(f) = a {
                                self.ws_send(token, &f);
                            }
                        }
                    }
                }
                Action::Close => {
                    closing = true;
                    if let Some(c) = self.ws_conn(token) {
                        // The ERROR (or RECEIPT) is queued already; the close frame follows it.
                        let _ = c.ws.close(None);
                        c.closing = true;
                        c.last_write = Instant::now();
                    }
                    self.mark_dirty(token);
                }
            }
        }
        closing
    }

    fn ws_send(&mut self, token: usize, f: &Frame) {
        let metrics = std::sync::Arc::clone(&self.shared.metrics);
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if f.command == Command::Error {
            metrics.stomp_errors.fetch_add(1, Ordering::Relaxed);
        }
        metrics.stomp_frames_out.fetch_add(1, Ordering::Relaxed);
        c.last_write = Instant::now();
        match queue(c, frame_message(f)) {
            Queued::Ok => self.mark_dirty(token),
            Queued::Full => self.slow_consumer(token),
            Queued::Closed => self.close(token),
        }
    }

    /// Ends a session with an ERROR frame, then closes it.
    pub(super) fn ws_fail(&mut self, token: usize, message: &str, detail: &str) {
        let mut actions = Vec::new();
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        c.session.fail(message, detail, None, &mut actions);
        self.run_actions(token, &mut actions);
    }

    /// A subscriber over its outbound cap: it gets no more messages, an ERROR frame and a close
    /// frame are queued behind what it has not read, and the socket goes once that is flushed or
    /// after a grace period — whichever comes first. Counted once per connection.
    fn slow_consumer(&mut self, token: usize) {
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if c.closing {
            return;
        }
        c.ws.set_config(|cfg| cfg.max_write_buffer_size = usize::MAX);
        let error = crate::stomp::session::error_frame("slow consumer", "outbound buffer limit exceeded", None);
        let _ = c.ws.write(frame_message(&error));
        let _ = c.ws.close(None);
        c.closing = true;
        c.last_write = Instant::now();
        self.shared.metrics.slow_consumer_closes.fetch_add(1, Ordering::Relaxed);
        self.shared.metrics.stomp_errors.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(token);
    }

    /// Appends committed messages to every local subscriber of their rooms, one encoding per
    /// (message, subscription id) pair.
    pub(super) fn deliver_chat(&mut self, events: &[ChatEvent]) {
        let mut slow = Vec::new();
        let mut delivered = 0u64;
        let mut cache: Vec<(std::rc::Rc<str>, Utf8Bytes)> = Vec::new();
        for event in events {
            let Some(subs) = self.rooms.get(&event.room) else {
                continue;
            };
            cache.clear();
            for sub in subs {
                let (slot_key, generation) = super::slot_of(sub.token);
                let Some(slot) = self.slots.get_mut(slot_key).filter(|s| s.generation == generation) else {
                    continue;
                };
                let Conn::Ws(c) = &mut slot.conn else {
                    continue;
                };
                if c.closing {
                    continue;
                }
                let bytes = match cache.iter().find(|(id, _)| **id == *sub.subscription) {
                    Some((_, b)) => b.clone(),
                    None => {
                        let b = encode_message(event, &sub.subscription);
                        cache.push((sub.subscription.clone(), b.clone()));
                        b
                    }
                };
                c.last_write = Instant::now();
                match queue(c, Message::Text(bytes)) {
                    Queued::Ok => {
                        delivered += 1;
                        if !slot.dirty {
                            slot.dirty = true;
                            self.dirty.push(sub.token);
                        }
                    }
                    Queued::Full | Queued::Closed => slow.push(sub.token),
                }
            }
        }
        self.shared
            .metrics
            .fanout_deliveries
            .fetch_add(delivered, Ordering::Relaxed);
        self.shared
            .metrics
            .stomp_frames_out
            .fetch_add(delivered, Ordering::Relaxed);
        for token in slow {
            self.slow_consumer(token);
        }
    }

    /// Delivers notifications to the user's STOMP subscriptions and SSE streams on this reactor.
    pub(super) fn deliver_notifications(&mut self, events: &[NotificationEvent]) {
        for event in events {
            let Some(tokens) = self.users.get(&event.recipient).cloned() else {
                continue;
            };
            for token in tokens {
                match self.slot_mut(token).map(|s| &mut s.conn) {
                    Some(Conn::Ws(c)) => {
                        let Some(sub) = c.session.notifications_subscription().map(str::to_owned) else {
                            continue;
                        };
                        let message_id = c.session.next_message_id();
                        let f = Frame::new(Command::Message)
                            .with_header("destination", NOTIFICATIONS_QUEUE)
                            .with_header("subscription", sub)
                            .with_header("message-id", message_id)
                            .with_header("content-type", "application/json")
                            .with_body(event.body.as_bytes().to_vec());
                        self.ws_send(token, &f);
                        self.shared
                            .metrics
                            .notifications_delivered
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Conn::Sse(_)) => self.sse_notify(token, event.id, &event.body),
                    _ => {}
                }
            }
        }
    }

    /// RECEIPTs for committed SENDs, JSON errors for failed ones.
    pub(super) fn chat_acks(&mut self, acks: Vec<ChatAck>) {
        for ack in acks {
            let mut actions = Vec::new();
            let Some(c) = self.ws_conn(ack.token) else {
                continue;
            };
            match ack.outcome {
                ChatOutcome::Committed => {
                    if let Some(r) = ack.receipt {
                        actions.push(Action::Send(Frame::new(Command::Receipt).with_header("receipt-id", r)));
                    }
                }
                ChatOutcome::Failed { code, message } => {
                    c.session.app_error(code, message, ack.receipt.as_deref(), &mut actions)
                }
            }
            self.run_actions(ack.token, &mut actions);
        }
    }

    pub(super) fn ws_tick(&mut self, token: usize, now: Instant, now_secs: i64) {
        let header_timeout = self.shared.config.header_timeout();
        let Some(c) = self.ws_conn(token) else {
            return;
        };
        if c.closing {
            // Flushed on writability; a peer that never reads is dropped after a grace period.
            if now.duration_since(c.last_write) > Duration::from_secs(5) {
                self.close(token);
            }
            return;
        }
        let Some(principal) = c.session.principal() else {
            if now.duration_since(c.opened) >= header_timeout {
                self.ws_fail(token, "connect timeout", "no CONNECT frame received in time");
            }
            return;
        };
        if now_secs >= principal.expires_at_secs {
            return self.ws_fail(token, "token expired", "reconnect with a fresh access token");
        }
        let expect = c.session.expect_heartbeat_ms;
        if expect > 0 && now.duration_since(c.last_read) > Duration::from_millis(expect * 2) {
            return self.ws_fail(token, "heart-beat timeout", "no frame or heart-beat received in time");
        }
        let send = c.session.send_heartbeat_ms;
        // Send a little early so that the client (which allows some slack) never times out.
        if send > 0 && now.duration_since(c.last_write) + super::TICK >= Duration::from_millis(send) {
            c.last_write = now;
            match queue(c, Message::Text(Utf8Bytes::from_static("\n"))) {
                Queued::Ok => self.mark_dirty(token),
                Queued::Full => self.slow_consumer(token),
                Queued::Closed => self.close(token),
            }
        }
    }
}

/// `MESSAGE` for one subscriber id: `destination`, `content-type`, `subscription`, `message-id`,
/// `content-length`, body, NUL.
fn encode_message(event: &ChatEvent, subscription: &str) -> Utf8Bytes {
    use std::io::Write;
    let mut out = Vec::with_capacity(160 + subscription.len() + event.room.len() + event.body.len());
    out.extend_from_slice(b"MESSAGE\ndestination:");
    out.extend_from_slice(ROOM_PREFIX.as_bytes());
    out.extend_from_slice(event.room.as_bytes());
    out.extend_from_slice(b"\ncontent-type:application/json\nsubscription:");
    frame::escape_into(subscription, &mut out);
    let _ = write!(
        out,
        "\nmessage-id:{}\ncontent-length:{}\n\n",
        event.id,
        event.body.len()
    );
    out.extend_from_slice(event.body.as_bytes());
    out.push(0);
    // Everything appended is UTF-8 (room ids are ASCII, the body is JSON text).
    Utf8Bytes::try_from(out).unwrap_or_else(|_| Utf8Bytes::from_static(""))
}
