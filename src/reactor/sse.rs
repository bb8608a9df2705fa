//! Server-Sent Events on the socket: open an authenticated stream, read the replay it asked for
//! (Last-Event-ID) page by page, deliver live notifications, ping, expire. The protocol state
//! and the replay merge are `crate::sse`'s; this file moves bytes.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conn::{Conn, HttpConn, SseConn};
use super::Reactor;
use crate::api::notifications::stream_request;
use crate::bus::NotificationEvent;
use crate::http::request::Request;
use crate::http::response::{ApiError, Response};
use crate::notify;
use crate::sse::{self, EventStream};

impl Reactor {
    fn reject_stream(&mut self, token: usize, e: ApiError, cors: Vec<(&'static str, String)>) {
        let mut response: Response = e.into_response();
        response.close = true;
        self.respond(token, response, false, false, cors);
    }

    pub(super) fn open_event_stream(&mut self, token: usize, req: Request, cors: Vec<(&'static str, String)>) {
        let opened = match stream_request(&self.shared, &req) {
            Ok(o) => o,
            Err(e) => return self.reject_stream(token, e, cors),
        };
        let user = opened.claims.sub.as_str();
        // Listen before the first replay page is read, so that whatever commits after the read
        // arrives live (the replay merge drops what arrives twice).
        self.index_user(user, token);
        if let Some(after) = opened.replay_after {
            if !self.shared.pool.is_up() || !self.read_replay_page(token, user, after) {
                self.unindex_user(user, token);
                return self.reject_stream(token, ApiError::ServiceUnavailable, cors);
            }
        }
        let now = Instant::now();
        let state = EventStream::new(user, opened.claims.exp, opened.replay_after.is_some(), now);
        let Some(slot) = self.slot_mut(token).filter(|s| matches!(s.conn, Conn::Http(_))) else {
            return;
        };
        let Conn::Http(http) = std::mem::replace(&mut slot.conn, Conn::Switching) else {
            return;
        };
        let HttpConn { stream, mut out, .. } = *http;
        out.buf
            .extend_from_slice(sse::wire::opening(&opened.claims.sub, &cors).as_bytes());
        slot.conn = Conn::Sse(Box::new(SseConn { stream, out, state }));
        self.shared.metrics.count_status(200);
        self.shared.metrics.event_streams_open.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(token);
        self.schedule_timer(token, std::time::Instant::now());
    }

    /// Queues the read of the next replay page on a worker; false when the queue is full.
    fn read_replay_page(&self, token: usize, user: &str, after: i64) -> bool {
        let limit = self.shared.config.notifications.replay_limit.max(1);
        let shared = &self.shared;
        notify::read_replay_page(&shared.pool, &shared.bus, self.conn_ref(token), user, after, limit).is_ok()
    }

    /// Appends event text within the outbound cap; a reader that fell behind is closed.
    fn sse_append(&mut self, token: usize, text: &str) {
        let cap = self.shared.config.chat.outbound_buffer_bytes;
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        if c.out.pending() + text.len() > cap {
            self.shared.metrics.slow_consumer_closes.fetch_add(1, Ordering::Relaxed);
            return self.close(token);
        }
        c.out.buf.extend_from_slice(text.as_bytes());
        c.state.wrote(Instant::now());
        self.mark_dirty(token);
    }

    pub(super) fn sse_notify(&mut self, token: usize, id: i64, body: &str) {
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        let Some(text) = c.state.on_live(id, body) else {
            return; // waits for the replay, or the replay sent it already
        };
        self.shared
            .metrics
            .notifications_delivered
            .fetch_add(1, Ordering::Relaxed);
        self.sse_append(token, &text);
    }

    /// A replay page arrived: write it, and read the next one when it was full.
    pub(super) fn sse_replay(&mut self, token: usize, replay: Option<Vec<NotificationEvent>>) {
        let page_size = self.shared.config.notifications.replay_limit.max(1) as usize;
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        let now = Instant::now();
        let page = c.state.on_page(
            replay.as_ref().map(|p| p.iter().map(|n| (n.id, &*n.body))),
            page_size,
            now,
        );
        if let Some(after) = page.next_after {
            let user = c.state.user.clone();
            if !self.read_replay_page(token, &user, after) {
                if let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) {
                    c.state.end(now);
                }
            }
        }
        self.shared
            .metrics
            .notifications_delivered
            .fetch_add(page.count, Ordering::Relaxed);
        if !page.text.is_empty() {
            self.sse_append(token, &page.text);
        }
        self.mark_dirty(token);
    }

    pub(super) fn sse_tick(&mut self, token: usize, now: Instant, now_secs: i64) {
        let ping = std::time::Duration::from_millis(self.shared.config.notifications.ping_interval_ms);
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        match c.state.on_timer(now, now_secs, ping, super::TICK) {
            sse::Due::Nothing => {}
            sse::Due::Ping => self.sse_append(token, sse::PING),
            sse::Due::End => self.mark_dirty(token),
            sse::Due::Drop => self.close(token),
        }
    }
}
