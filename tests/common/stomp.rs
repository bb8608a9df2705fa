//! A STOMP 1.2 client over a `tungstenite` WebSocket on a blocking `TcpStream`, using Herald's own
//! frame codec. Every wait is bounded.

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use herald::stomp::frame::{self, Command, Decoded, Frame, Limits};
use serde_json::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error as WsError, Message, WebSocket};

use super::server::Server;
use super::IO_TIMEOUT;

/// What the server sent next.
#[derive(Debug)]
pub enum StompEvent {
    Frame(Frame),
    /// An EOL between frames.
    HeartBeat,
    /// The WebSocket or TCP connection ended.
    Closed,
}

/// One STOMP session.
pub struct StompClient {
    pub ws: WebSocket<TcpStream>,
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol`).
    pub protocol: Option<String>,
    inbox: Vec<u8>,
    /// Heart-beats received so far.
    pub heartbeats: usize,
    closed: bool,
}

fn limits() -> Limits {
    Limits {
        max_frame_bytes: 16 * 1024 * 1024,
        max_headers: 1024,
    }
}

impl StompClient {
    /// A WebSocket to `/ws/chat` offering `protocols` (e.g. `"v12.stomp"`), not yet CONNECTed.
    #[track_caller]
    pub fn open(server: &Server, protocols: Option<&str>) -> StompClient {
        let stream = TcpStream::connect_timeout(&server.addr, IO_TIMEOUT).expect("connect to /ws/chat");
        StompClient::open_on(stream, server, protocols)
    }

    /// Like [`StompClient::open`] over a socket the caller prepared (small buffers, say).
    #[track_caller]
    pub fn open_on(stream: TcpStream, server: &Server, protocols: Option<&str>) -> StompClient {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut request = format!("ws://{}/ws/chat", server.addr)
            .into_client_request()
            .expect("ws request");
        if let Some(p) = protocols {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(p).expect("header value"),
            );
        }
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let (ws, response) = match tungstenite::client::client_with_config(request, stream, Some(config)) {
            Ok(pair) => pair,
            Err(e) => panic!("WebSocket handshake on /ws/chat failed ({}): {e}", server.label()),
        };
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        StompClient {
            ws,
            protocol,
            inbox: Vec::new(),
            heartbeats: 0,
            closed: false,
        }
    }

    /// Opens a WebSocket offering `v12.stomp` and sends CONNECT with `headers`; returns the
    /// client and the first frame the server answered with.
    #[track_caller]
    pub fn connect_with(server: &Server, headers: &[(&str, &str)]) -> (StompClient, Frame) {
        let mut client = StompClient::open(server, Some("v12.stomp"));
        let mut connect = Frame::new(Command::Connect);
        for (name, value) in headers {
            connect = connect.with_header(*name, *value);
        }
        client.send(&connect);
        let first = client.recv(IO_TIMEOUT);
        (client, first)
    }

    /// A CONNECTed session for the holder of `access` (heart-beats off).
    #[track_caller]
    pub fn connect(server: &Server, access: &str) -> StompClient {
        StompClient::connect_heartbeat(server, access, "0,0")
    }

    /// A CONNECTed session with the given client `heart-beat` header.
    #[track_caller]
    pub fn connect_heartbeat(server: &Server, access: &str, heart_beat: &str) -> StompClient {
        let bearer = format!("Bearer {access}");
        let (client, first) = StompClient::connect_with(
            server,
            &[
                ("accept-version", "1.2"),
                ("host", "herald"),
                ("Authorization", &bearer),
                ("heart-beat", heart_beat),
            ],
        );
        assert_eq!(
            first.command,
            Command::Connected,
            "CONNECT answered with {}",
            show(&first)
        );
        client
    }

    /// Sends a frame (text WebSocket message when it is UTF-8).
    #[track_caller]
    pub fn send(&mut self, f: &Frame) {
        let mut bytes = Vec::new();
        frame::encode(f, &mut bytes);
        match String::from_utf8(bytes) {
            Ok(text) => self.send_message(Message::Text(text.into())),
            Err(e) => self.send_message(Message::Binary(e.into_bytes().into())),
        }
    }

    /// Sends a text WebSocket message as is.
    #[track_caller]
    pub fn send_text(&mut self, text: &str) {
        self.send_message(Message::Text(text.to_string().into()));
    }

    /// Sends a binary WebSocket message as is.
    #[track_caller]
    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.send_message(Message::Binary(bytes.to_vec().into()));
    }

    /// Sends a message; a failure because the server already closed is tolerated (the caller
    /// then sees `Closed`), anything else panics.
    #[track_caller]
    pub fn send_message(&mut self, message: Message) {
        match self.ws.send(message) {
            Ok(()) => {}
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => self.closed = true,
            Err(WsError::Io(e)) if matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => {
                self.closed = true
            }
            Err(e) => panic!("WebSocket send failed: {e}"),
        }
    }

    /// SUBSCRIBE with a receipt, waiting for the RECEIPT.
    #[track_caller]
    pub fn subscribe(&mut self, id: &str, destination: &str) {
        let receipt = format!("sub-{id}");
        self.send(
            &Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("receipt", receipt.as_str()),
        );
        self.expect_receipt(&receipt);
    }

    /// SEND to `/app/chat.send` with body `{"roomId","message"}` and an optional receipt.
    #[track_caller]
    pub fn send_chat(&mut self, room: &str, message: &str, receipt: Option<&str>) {
        let body = serde_json::json!({ "roomId": room, "message": message }).to_string();
        self.send_chat_body(&body, receipt);
    }

    /// SEND to `/app/chat.send` with a raw body.
    #[track_caller]
    pub fn send_chat_body(&mut self, body: &str, receipt: Option<&str>) {
        let mut f = Frame::new(Command::Send)
            .with_header("destination", "/app/chat.send")
            .with_header("content-type", "application/json");
        if let Some(r) = receipt {
            f = f.with_header("receipt", r);
        }
        self.send(&f.with_body(body.as_bytes().to_vec()));
    }

    /// The next frame, heart-beat or close within `timeout`; `None` when nothing came.
    #[track_caller]
    pub fn next_event(&mut self, timeout: Duration) -> Option<StompEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            match frame::decode(&self.inbox, &limits()) {
                Ok(Some((decoded, used))) => {
                    self.inbox.drain(..used);
                    return Some(match decoded {
                        Decoded::Frame(f) => StompEvent::Frame(f),
                        Decoded::HeartBeat => {
                            self.heartbeats += 1;
                            StompEvent::HeartBeat
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "server sent an undecodable STOMP frame ({e}): {:?}",
                    String::from_utf8_lossy(&self.inbox)
                ),
            }
            if self.closed {
                return Some(StompEvent::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = self.ws.get_mut().set_read_timeout(Some(left));
            match self.ws.read() {
                Ok(Message::Text(t)) => self.inbox.extend_from_slice(t.as_bytes()),
                Ok(Message::Binary(b)) => self.inbox.extend_from_slice(&b),
                Ok(Message::Close(_)) => self.closed = true,
                Ok(_) => {}
                Err(WsError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next frame (heart-beats skipped); panics on timeout or close.
    #[track_caller]
    pub fn recv(&mut self, timeout: Duration) -> Frame {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(StompEvent::Frame(f)) => return f,
                Some(StompEvent::HeartBeat) => {}
                Some(StompEvent::Closed) => panic!("connection closed while waiting for a frame"),
                None => panic!("no frame within {timeout:?}"),
            }
        }
    }

    /// The next frame, which must be `command`.
    #[track_caller]
    pub fn recv_command(&mut self, command: Command) -> Frame {
        let f = self.recv(IO_TIMEOUT);
        assert_eq!(f.command, command, "expected {}, got {}", command.as_str(), show(&f));
        f
    }

    /// The next frame must be `RECEIPT receipt-id:<id>`.
    #[track_caller]
    pub fn expect_receipt(&mut self, id: &str) {
        let f = self.recv_command(Command::Receipt);
        assert_eq!(f.header("receipt-id"), Some(id), "wrong receipt: {}", show(&f));
    }

    /// The next frame is a MESSAGE with a JSON body; returns it and the parsed body.
    #[track_caller]
    pub fn recv_json_message(&mut self) -> (Frame, Value) {
        let f = self.recv_command(Command::Message);
        let body =
            serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("MESSAGE body is not JSON ({e}): {}", show(&f)));
        (f, body)
    }

    /// The server must send `ERROR` (with a `message` header) and then close the connection.
    /// Returns the ERROR frame.
    #[track_caller]
    pub fn expect_error_then_close(&mut self, what: &str) -> Frame {
        let deadline = Instant::now() + IO_TIMEOUT;
        let f = loop {
            match self.next_event(deadline.saturating_duration_since(Instant::now())) {
                Some(StompEvent::Frame(f)) => break f,
                Some(StompEvent::HeartBeat) => {}
                Some(StompEvent::Closed) => panic!("{what}: connection closed without an ERROR frame"),
                None => panic!("{what}: neither an ERROR frame nor a close within {IO_TIMEOUT:?}"),
            }
        };
        assert_eq!(f.command, Command::Error, "{what}: expected ERROR, got {}", show(&f));
        assert!(
            f.header("message").is_some_and(|m| !m.is_empty()),
            "{what}: ERROR without a message header: {}",
            show(&f)
        );
        assert!(
            self.closed_within(IO_TIMEOUT),
            "{what}: the server did not close the connection after ERROR"
        );
        f
    }

    /// The next frame, or `None` when the connection closed first; panics on timeout.
    #[track_caller]
    pub fn next_frame_or_close(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(StompEvent::Frame(f)) => return Some(f),
                Some(StompEvent::HeartBeat) => {}
                Some(StompEvent::Closed) => return None,
                None => panic!("neither a frame nor a close within {timeout:?}"),
            }
        }
    }

    /// True when the connection ends within `timeout`; frames that arrive first are dropped.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(StompEvent::Closed) => return true,
                Some(_) => {}
                None => return false,
            }
        }
    }

    /// Panics if a frame (not a heart-beat) arrives within `period`, or the connection closes.
    #[track_caller]
    pub fn expect_no_frame(&mut self, period: Duration, what: &str) {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                None => return,
                Some(StompEvent::HeartBeat) => {}
                Some(StompEvent::Frame(f)) => panic!("{what}: unexpected frame {}", show(&f)),
                Some(StompEvent::Closed) => panic!("{what}: the connection closed"),
            }
        }
    }
}

/// A frame as text for messages: command, headers, and the body (cut to 300 bytes).
pub fn show(f: &Frame) -> String {
    let headers: Vec<String> = f.headers.iter().map(|(n, v)| format!("{n}:{v}")).collect();
    let body = String::from_utf8_lossy(&f.body[..f.body.len().min(300)]).into_owned();
    format!("{} [{}] {body:?}", f.command.as_str(), headers.join(", "))
}
