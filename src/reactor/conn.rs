//! The three kinds of connection a reactor holds, and their socket I/O.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use tungstenite::WebSocket;

use crate::stomp::session::Session;

/// An HTTP/1.1 connection between requests or waiting on a worker.
pub struct HttpConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub inbuf: Vec<u8>,
    pub out: OutBuf,
    /// The request being answered by a worker, if any (pipelined requests wait behind it).
    pub pending: Option<Pending>,
    /// When the first byte of an unfinished request arrived (header timeout).
    pub request_started: Option<Instant>,
    pub last_activity: Instant,
    /// Close once `out` is written (an error that leaves the stream out of sync, or `Connection: close`).
    pub close_after_write: bool,
    /// The client half-closed: answer what is buffered, then close.
    pub eof: bool,
}

/// How to encode the worker's answer when it comes back.
pub struct Pending {
    pub keep_alive: bool,
    pub head_only: bool,
    pub cors: Vec<(&'static str, String)>,
}

/// A STOMP session over a WebSocket.
pub struct WsConn {
    pub ws: WebSocket<TcpStream>,
    /// The 101 response (and anything answered before it) still to be written before WebSocket frames.
    pub handshake: OutBuf,
    pub session: Session,
    /// STOMP bytes of a frame split across WebSocket messages.
    pub stomp_in: Vec<u8>,
    pub opened: Instant,
    pub last_read: Instant,
    pub last_write: Instant,
    /// Close once everything is flushed.
    pub closing: bool,
    /// Registered in the reactor's user index (for `/user/queue/notifications`).
    pub indexed_user: Option<Box<str>>,
}

/// An SSE stream: the response head is written, events follow until either side closes.
pub struct SseConn {
    pub stream: TcpStream,
    pub out: OutBuf,
    pub user: Box<str>,
    pub expires_at_secs: i64,
    pub last_write: Instant,
    /// While the replay is read from the store, live notifications wait here (id, event text).
    pub replaying: Option<Vec<(i64, String)>>,
    /// Ids of the last replay page, kept a few seconds: a notification committed just before the
    /// replay read may still be on its way here live, and must not be sent twice.
    pub replayed: Option<(std::collections::HashSet<i64>, Instant)>,
    pub closing: bool,
}

pub enum Conn {
    Http(HttpConn),
    Ws(Box<WsConn>),
    Sse(SseConn),
    /// Transient, while an HTTP connection becomes a WebSocket or a stream.
    Switching,
}

/// Bytes waiting to be written, with the part already written.
#[derive(Default)]
pub struct OutBuf {
    pub buf: Vec<u8>,
    pub written: usize,
}

/// The result of writing as much as the socket takes.
#[derive(Debug, PartialEq, Eq)]
pub enum Flush {
    Done,
    Blocked,
    Failed,
}

impl OutBuf {
    pub fn pending(&self) -> usize {
        self.buf.len() - self.written
    }

    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes until done or the socket would block; frees the buffer once it is drained.
    pub fn flush_to<W: Write>(&mut self, w: &mut W) -> Flush {
        while self.written < self.buf.len() {
            match w.write(&self.buf[self.written..]) {
                Ok(0) => return Flush::Failed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flush::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flush::Failed,
            }
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
        Flush::Done
    }
}

/// Reads what the socket has into `buf`, up to `limit` bytes in total. `Ok(true)` on EOF.
pub fn read_into(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    let mut chunk = [0u8; 8192];
    while buf.len() < limit {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Reads and discards (an SSE client has nothing to say). `true` when the peer is gone.
pub fn drain(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}
