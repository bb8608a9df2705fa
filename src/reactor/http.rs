//! HTTP/1.1 on the reactor: read, parse (pipelined), route, answer or hand to a worker, and
//! switch a connection to a WebSocket or an event stream.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conn::{self, Conn, HttpConn, Pending, WsConn};
use super::Reactor;
use crate::api::{self, Handled};
use crate::http::request::{self, Method, Request, RequestError};
use crate::http::response::{ApiError, Response};
use crate::http::router::{self, Route};
use crate::stomp::session::Session;

impl Reactor {
    pub(super) fn http_readable(&mut self, token: usize) {
        let limits = self.shared.http_limits;
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        let Conn::Http(c) = &mut slot.conn else {
            return;
        };
        // Enough for one maximal request (and a little of the next); the parser refuses beyond it.
        let cap = limits.max_header_bytes + limits.max_body_bytes + 4096;
        match conn::read_into(&mut c.stream, &mut c.inbuf, cap) {
            Ok(false) => {}
            Ok(true) => {
                // Half-closed: answer what is buffered, then close.
                if c.pending.is_none() && c.inbuf.is_empty() {
                    self.close(token);
                    return;
                }
                c.eof = true;
            }
            Err(_) => {
                self.close(token);
                return;
            }
        }
        if !c.inbuf.is_empty() {
            c.last_activity = Instant::now();
            c.request_started.get_or_insert_with(Instant::now);
        }
        self.process_http(token);
    }

    /// Parses and serves buffered requests in order until one waits on a worker.
    fn process_http(&mut self, token: usize) {
        let limits = self.shared.http_limits;
        loop {
            let Some(slot) = self.slot_mut(token) else {
                return;
            };
            let Conn::Http(c) = &mut slot.conn else {
                return;
            };
            if c.pending.is_some() || c.close_after_write || c.inbuf.is_empty() {
                if c.inbuf.is_empty() {
                    c.request_started = None;
                }
                if c.eof && c.pending.is_none() {
                    // Nothing more can arrive: close once the answers are out.
                    c.close_after_write = true;
                    self.mark_dirty(token);
                }
                return;
            }
            match request::parse(&c.inbuf, &limits) {
                Ok(None) => {
                    if c.eof {
                        // Half a request and the client stopped sending: nothing to answer.
                        self.close(token);
                    }
                    return;
                }
                Ok(Some((req, used))) => {
                    c.inbuf.drain(..used);
                    c.request_started = if c.inbuf.is_empty() { None } else { Some(Instant::now()) };
                    self.dispatch(token, req);
                }
                Err(e) => {
                    let error = match e {
                        RequestError::Malformed => ApiError::InvalidRequest("잘못된 HTTP 요청입니다".into()),
                        RequestError::HeadersTooLarge => ApiError::PayloadTooLarge { status: 431 },
                        RequestError::BodyTooLarge => ApiError::PayloadTooLarge { status: 413 },
                        RequestError::LengthRequired => ApiError::LengthRequired,
                        RequestError::UnsupportedVersion => ApiError::VersionNotSupported,
                    };
                    c.inbuf.clear();
                    let mut response = error.into_response();
                    response.close = true;
                    self.respond(token, response, false, false, Vec::new());
                    return;
                }
            }
        }
    }

    fn dispatch(&mut self, token: usize, req: Request) {
        let cors = self.shared.cors.headers(req.origin.as_deref());
        let head_only = req.method() == Method::Head;
        let keep_alive = req.keep_alive;
        let route = match router::route(req.method(), &req.path) {
            Ok(r) => r,
            Err(e) => return self.respond(token, e.into_response(), keep_alive, head_only, cors),
        };
        match route {
            Route::WsChat => return self.upgrade(token, req),
            Route::NotificationStream => return self.open_event_stream(token, req, cors),
            Route::Preflight => {
                let headers = self
                    .shared
                    .cors
                    .preflight_headers(req.origin.as_deref(), req.access_control_request_headers.as_deref());
                return self.respond(
                    token,
                    Response::text(204, "text/plain", Vec::new()),
                    keep_alive,
                    false,
                    headers,
                );
            }
            _ => {}
        }
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &s.conn) else {
            return;
        };
        let peer = c.peer;
        let client_ip = peer.ip().to_string();
        let shared = std::sync::Arc::clone(&self.shared);
        match api::handle(
            &shared,
            self.conn_ref(token),
            &client_ip,
            peer.ip().is_loopback(),
            route,
            req,
        ) {
            Handled::Now(response) => self.respond(token, response, keep_alive, head_only, cors),
            Handled::Pending => {
                if let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) {
                    c.pending = Some(Pending {
                        keep_alive,
                        head_only,
                        cors,
                    });
                }
            }
        }
    }

    /// Encodes a response into the connection's output and schedules the flush.
    pub(super) fn respond(
        &mut self,
        token: usize,
        response: Response,
        keep_alive: bool,
        head_only: bool,
        extra: Vec<(&'static str, String)>,
    ) {
        self.shared.metrics.count_status(response.status);
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        let Conn::Http(c) = &mut slot.conn else {
            return;
        };
        response.encode(&mut c.out.buf, keep_alive, head_only, &extra);
        if !keep_alive || response.close {
            c.close_after_write = true;
        }
        c.last_activity = Instant::now();
        self.mark_dirty(token);
    }

    /// A worker's answer arrives: write it, then serve any pipelined request behind it.
    pub(super) fn http_reply(&mut self, token: usize, response: Response) {
        let Some(slot) = self.slot_mut(token) else {
            return; // the client left; its slot may belong to someone else now
        };
        let Conn::Http(c) = &mut slot.conn else {
            return;
        };
        let Some(pending) = c.pending.take() else {
            return;
        };
        self.respond(token, response, pending.keep_alive, pending.head_only, pending.cors);
        self.process_http(token);
    }

    pub(super) fn http_tick(&mut self, token: usize, now: Instant) {
        let header_timeout = self.shared.config.header_timeout();
        let keepalive = self.shared.config.keepalive_timeout();
        let Some(slot) = self.slot_mut(token) else {
            return;
        };
        let Conn::Http(c) = &mut slot.conn else {
            return;
        };
        if c.pending.is_some() || c.close_after_write {
            return;
        }
        if let Some(started) = c.request_started {
            if now.duration_since(started) >= header_timeout {
                c.inbuf.clear();
                let mut response = ApiError::RequestTimeout.into_response();
                response.close = true;
                self.respond(token, response, false, false, Vec::new());
            }
        } else if c.out.is_empty() && now.duration_since(c.last_activity) >= keepalive {
            self.close(token);
        }
    }

    /// Answers the upgrade with 101 and turns the connection into a STOMP-over-WebSocket session.
    fn upgrade(&mut self, token: usize, req: Request) {
        let version_ok = req.sec_websocket_version.as_deref().map(str::trim) == Some("13");
        let Some(key) = req
            .sec_websocket_key
            .clone()
            .filter(|_| req.wants_websocket && version_ok)
        else {
            let e = ApiError::InvalidRequest("WebSocket 업그레이드 요청이 필요합니다".into());
            let mut response = e.into_response();
            response.close = true;
            return self.respond(token, response, false, false, Vec::new());
        };
        let protocol = negotiate_subprotocol(req.sec_websocket_protocol.as_deref());
        let ws_config = tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(self.shared.config.chat.ws_read_buffer_bytes)
            // Output accumulates during a loop pass and is written once; the cap must stay above it.
            .write_buffer_size((self.shared.config.chat.outbound_buffer_bytes / 2).min(64 * 1024))
            .max_write_buffer_size(self.shared.config.chat.outbound_buffer_bytes)
            .max_message_size(Some(self.shared.config.chat.max_frame_bytes))
            .max_frame_size(Some(self.shared.config.chat.max_frame_bytes));
        let Some(slot) = self.slot_mut(token).filter(|s| matches!(s.conn, Conn::Http(_))) else {
            return;
        };
        let Conn::Http(http) = std::mem::replace(&mut slot.conn, Conn::Switching) else {
            return;
        };
        let HttpConn {
            stream, inbuf, mut out, ..
        } = http;
        // Anything answered before (pipelined) goes first, then the 101.
        if out.written > 0 {
            out.buf.drain(..out.written);
            out.written = 0;
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        out.buf.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
        );
        out.buf.extend_from_slice(accept.as_bytes());
        if let Some(p) = protocol {
            out.buf.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
            out.buf.extend_from_slice(p.as_bytes());
        }
        out.buf.extend_from_slice(b"\r\n\r\n");
        let now = Instant::now();
        let ws = tungstenite::WebSocket::from_partially_read(
            stream,
            inbuf,
            tungstenite::protocol::Role::Server,
            Some(ws_config),
        );
        slot.conn = Conn::Ws(Box::new(WsConn {
            ws,
            handshake: out,
            session: Session::new(),
            stomp_in: Vec::new(),
            opened: now,
            last_read: now,
            last_write: now,
            closing: false,
            indexed_user: None,
        }));
        self.shared.metrics.count_status(101);
        self.shared.metrics.websockets_open.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(token);
        // Bytes that came with the upgrade request (a CONNECT sent right away) are read now.
        self.read_again.push(token);
    }
}

/// The first STOMP subprotocol the client offers that Herald speaks (newest first).
fn negotiate_subprotocol(offered: Option<&str>) -> Option<&'static str> {
    let offered: Vec<&str> = offered?.split(',').map(str::trim).collect();
    ["v12.stomp", "v11.stomp", "v10.stomp"]
        .into_iter()
        .find(|p| offered.contains(p))
}
