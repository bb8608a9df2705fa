//! Server-Sent Events on the reactor: open an authenticated stream, replay what the client
//! missed (Last-Event-ID) without gap or duplicate, deliver live notifications, ping, expire.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conn::{Conn, HttpConn, SseConn};
use super::Reactor;
use crate::api::bearer_token;
use crate::auth::jwt::JwtError;
use crate::http::request::Request;
use crate::http::response::{ApiError, Response};
use crate::hub::{NotificationEvent, ReactorMsg};
use crate::views;

/// How often a client should retry after losing the stream (the `retry:` field), in ms.
const RETRY_MS: u64 = 3000;

fn event_text(out: &mut String, id: i64, body: &str) {
    let _ = write!(out, "id: {id}\nevent: notification\ndata: {body}\n\n");
}

impl Reactor {
    fn reject_stream(&mut self, token: usize, e: ApiError, cors: Vec<(&'static str, String)>) {
        let mut response: Response = e.into_response();
        response.close = true;
        self.respond(token, response, false, false, cors);
    }

    pub(super) fn open_event_stream(&mut self, token: usize, req: Request, cors: Vec<(&'static str, String)>) {
        let header_token = bearer_token(&req).map(str::to_owned);
        let query_token = req.query_param("access_token");
        let token_text = match (header_token, query_token) {
            (Some(_), Some(_)) => {
                let e = ApiError::InvalidRequest(
                    "토큰은 Authorization 헤더나 access_token 중 하나로만 보내야 합니다".into(),
                );
                return self.reject_stream(token, e, cors);
            }
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return self.reject_stream(token, ApiError::Unauthorized("인증이 필요합니다"), cors),
        };
        let claims = match self.shared.verify_access(&token_text) {
            Ok(c) => c,
            Err(JwtError::Expired) => return self.reject_stream(token, ApiError::TokenExpired, cors),
            Err(_) => return self.reject_stream(token, ApiError::InvalidToken, cors),
        };
        let last_id = match req.last_event_id.clone().or_else(|| req.query_param("lastEventId")) {
            None => None,
            Some(v) if v.trim().is_empty() => None,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    let e = ApiError::InvalidRequest("Last-Event-ID: 0 이상의 정수여야 합니다".into());
                    return self.reject_stream(token, e, cors);
                }
            },
        };
        if let Some(after) = last_id {
            if !self.shared.pool.is_up() || !self.submit_replay(token, &claims.sub, after) {
                return self.reject_stream(token, ApiError::ServiceUnavailable, cors);
            }
        }
        let Some(slot) = self.slot_mut(token).filter(|s| matches!(s.conn, Conn::Http(_))) else {
            return;
        };
        let Conn::Http(http) = std::mem::replace(&mut slot.conn, Conn::Switching) else {
            return;
        };
        let HttpConn { stream, mut out, .. } = http;
        let mut head = String::with_capacity(256);
        head.push_str(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             X-Accel-Buffering: no\r\nConnection: keep-alive\r\n",
        );
        for (name, value) in &cors {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let connected = serde_json::json!({ "username": claims.sub });
        let _ = write!(head, "\r\nretry: {RETRY_MS}\n\nevent: connected\ndata: {connected}\n\n");
        out.buf.extend_from_slice(head.as_bytes());
        slot.conn = Conn::Sse(SseConn {
            stream,
            out,
            user: claims.sub.as_str().into(),
            expires_at_secs: claims.exp,
            last_write: Instant::now(),
            replaying: last_id.map(|_| Vec::new()),
            replayed: None,
            closing: false,
        });
        self.shared.metrics.count_status(200);
        self.shared.metrics.event_streams_open.fetch_add(1, Ordering::Relaxed);
        self.index_user(&claims.sub, token);
        self.mark_dirty(token);
    }

    /// Reads the next page of the user's notifications after `after` on a worker.
    fn submit_replay(&self, token: usize, user: &str, after: i64) -> bool {
        let (shared, conn, user) = (
            std::sync::Arc::clone(&self.shared),
            self.conn_ref(token),
            user.to_owned(),
        );
        let limit = self.shared.config.notifications.replay_limit.max(1);
        let job = Box::new(move |worker: &mut crate::store::pool::Worker| {
            let replay = worker
                .with(|db| db.notifications_after(&user, after, limit))
                .ok()
                .map(|list| list.iter().map(views::notification_event).collect());
            shared.hub.send(
                conn.reactor,
                ReactorMsg::SseReplay {
                    token: conn.token,
                    replay,
                },
            );
        });
        self.shared.pool.submit(job).is_ok()
    }

    /// Appends one event within the outbound cap; a reader that fell behind is closed.
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
        c.last_write = Instant::now();
        self.mark_dirty(token);
    }

    pub(super) fn sse_notify(&mut self, token: usize, id: i64, body: &str) {
        let mut text = String::with_capacity(body.len() + 48);
        event_text(&mut text, id, body);
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        if let Some(buffered) = c.replaying.as_mut() {
            buffered.push((id, text));
            return;
        }
        if c.replayed.as_ref().is_some_and(|(ids, _)| ids.contains(&id)) {
            return; // already sent by the replay
        }
        self.shared
            .metrics
            .notifications_delivered
            .fetch_add(1, Ordering::Relaxed);
        self.sse_append(token, &text);
    }

    /// A page of the replay has been read: send it; when it was a full page, read the next one
    /// (live events keep waiting); otherwise send what arrived live meanwhile, minus duplicates.
    pub(super) fn sse_replay(&mut self, token: usize, replay: Option<Vec<NotificationEvent>>) {
        let page_size = self.shared.config.notifications.replay_limit.max(1) as usize;
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        let Some(mut buffered) = c.replaying.take() else {
            return;
        };
        let Some(replay) = replay else {
            // The store failed: end the stream; the client reconnects with the same Last-Event-ID.
            c.closing = true;
            c.last_write = Instant::now();
            return self.mark_dirty(token);
        };
        let mut text = String::new();
        let mut seen = HashSet::with_capacity(replay.len());
        for n in &replay {
            seen.insert(n.id);
            event_text(&mut text, n.id, &n.body);
        }
        buffered.retain(|(id, _)| !seen.contains(id));
        let mut count = replay.len() as u64;
        let more = match replay.last() {
            Some(last) if replay.len() >= page_size => Some(last.id),
            _ => None,
        };
        if let Some(after) = more {
            c.replaying = Some(buffered);
            let user = c.user.clone();
            if !self.submit_replay(token, &user, after) {
                if let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) {
                    c.closing = true;
                }
            }
        } else {
            for (_, event) in &buffered {
                text.push_str(event);
                count += 1;
            }
            c.replayed = Some((seen, Instant::now()));
        }
        self.shared
            .metrics
            .notifications_delivered
            .fetch_add(count, Ordering::Relaxed);
        if !text.is_empty() {
            self.sse_append(token, &text);
        }
        self.mark_dirty(token);
    }

    pub(super) fn sse_tick(&mut self, token: usize, now: Instant, now_secs: i64) {
        let ping = Duration::from_millis(self.shared.config.notifications.ping_interval_ms);
        let Some(Conn::Sse(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        if c.closing {
            if now.duration_since(c.last_write) > Duration::from_secs(5) {
                self.close(token);
            }
            return;
        }
        if c.replayed
            .as_ref()
            .is_some_and(|(_, at)| now.duration_since(*at) > Duration::from_secs(5))
        {
            c.replayed = None;
        }
        if now_secs >= c.expires_at_secs {
            // The client reconnects with a fresh token (EventSource retries on its own).
            c.closing = true;
            c.last_write = now;
            return self.mark_dirty(token);
        }
        if !ping.is_zero() && now.duration_since(c.last_write) + super::TICK / 2 >= ping {
            self.sse_append(token, ": ping\n\n");
        }
    }
}
