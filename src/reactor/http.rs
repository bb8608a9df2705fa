//! HTTP/1.1 on the socket: read into the connection's protocol state, serve the requests it hands
//! out (at once or through a worker), write the answers, and switch a connection to a WebSocket
//! or an event stream.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::conn::{self, Conn, HttpConn, WsConn};
use super::Reactor;
use crate::api::{self, Caller, Handled};
use crate::http::conn::{Due, HttpState, Next, Pending, CONTINUE};
use crate::http::request::{Method, Request};
use crate::http::response::{ApiError, Response};
use crate::http::router::{self, Route};
use crate::stomp::decoder::Decoder;
use crate::stomp::liveness::Liveness;
use crate::stomp::session::Session;
use crate::text::Text;
use crate::websocket::Inbound;

impl Reactor {
    pub(super) fn http_readable(&mut self, token: usize) {
        let limits = self.shared.http_limits;
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        let eof = match conn::read_into(&mut c.stream, c.state.input_mut(), HttpState::input_limit(&limits)) {
            Ok(eof) => eof,
            Err(_) => return self.close(token),
        };
        if c.state.on_read(eof, Instant::now()) {
            return self.close(token);
        }
        self.process_http(token);
    }

    /// Serves buffered requests in order until one waits on a worker or more input is needed.
    fn process_http(&mut self, token: usize) {
        let limits = self.shared.http_limits;
        loop {
            let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
                return;
            };
            match c.state.next(&limits, Instant::now()) {
                Next::Request(req) => self.dispatch(token, req),
                Next::Refuse(response) => return self.respond(token, response, false, false, Vec::new()),
                Next::Wait => return,
                Next::Continue => {
                    c.out.buf.extend_from_slice(CONTINUE);
                    return self.mark_dirty(token);
                }
                Next::CloseWhenFlushed => return self.mark_dirty(token),
                Next::CloseNow => return self.close(token),
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
                let response = Response::text(204, "text/plain", Vec::new());
                return self.respond(token, response, keep_alive, false, headers);
            }
            _ => {}
        }
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &s.conn) else {
            return;
        };
        let peer = c.peer.ip();
        // Behind a trusted proxy the client is named by X-Forwarded-For (SPEC §7).
        let client = self.shared.trusted_proxies.client(peer, req.forwarded_for.as_deref());
        let ip = client.to_string();
        let caller = Caller {
            conn: self.conn_ref(token),
            ip: &ip,
            is_loopback: client.is_loopback(),
        };
        let shared = std::sync::Arc::clone(&self.shared);
        match api::handle(&shared, caller, route, req) {
            Handled::Now(response) => self.respond(token, response, keep_alive, head_only, cors),
            Handled::Pending => {
                if let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) {
                    c.state.wait_for_worker(Pending {
                        keep_alive,
                        head_only,
                        extra: cors,
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
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        response.encode(&mut c.out.buf, keep_alive, head_only, &extra);
        c.state.answered(!keep_alive || response.close, Instant::now());
        self.mark_dirty(token);
    }

    /// A worker's answer arrives: write it, then serve any pipelined request behind it.
    pub(super) fn http_reply(&mut self, token: usize, response: Response) {
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return; // the client left; its slot may belong to someone else now
        };
        let Some(pending) = c.state.take_pending() else {
            return;
        };
        self.respond(token, response, pending.keep_alive, pending.head_only, pending.extra);
        self.process_http(token);
    }

    pub(super) fn http_tick(&mut self, token: usize, now: Instant) {
        let header_timeout = self.shared.config.header_timeout();
        let keepalive = self.shared.config.keepalive_timeout();
        let Some(Conn::Http(c)) = self.slot_mut(token).map(|s| &mut s.conn) else {
            return;
        };
        match c.state.on_timer(now, header_timeout, keepalive, c.out.is_empty()) {
            Due::Nothing => {}
            Due::Timeout(response) => self.respond(token, response, false, false, Vec::new()),
            Due::Close => self.close(token),
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
            let e = ApiError::InvalidRequest(Text::WebSocketUpgradeRequired.ko().into());
            let mut response = e.into_response();
            response.close = true;
            return self.respond(token, response, false, false, Vec::new());
        };
        let protocol = negotiate_subprotocol(req.sec_websocket_protocol.as_deref());
        let Some(slot) = self.slot_mut(token).filter(|s| matches!(s.conn, Conn::Http(_))) else {
            return;
        };
        let Conn::Http(http) = std::mem::replace(&mut slot.conn, Conn::Switching) else {
            return;
        };
        let HttpConn {
            stream, state, mut out, ..
        } = *http;
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
        // Bytes that came with the upgrade request (a CONNECT sent right away) are kept, and
        // handed out by the `read_again` below.
        let inbound = Inbound::with_input(state.into_input());
        slot.conn = Conn::Ws(Box::new(WsConn {
            stream,
            out,
            inbound,
            session: Session::new(),
            decoder: Decoder::new(),
            liveness: Liveness::new(Instant::now()),
            closing: false,
            close_sent: false,
            user: None,
            read_paused: false,
            receiving: false,
        }));
        self.shared.metrics.count_status(101);
        self.shared.metrics.websockets_open.fetch_add(1, Ordering::Relaxed);
        self.mark_dirty(token);
        self.schedule_timer(token, Instant::now());
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
