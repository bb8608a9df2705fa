//! The three kinds of connection a reactor holds, and their socket I/O.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use crate::http::conn::HttpState;
use crate::sse::EventStream;
use crate::stomp::decoder::Decoder;
use crate::stomp::liveness::Liveness;
use crate::stomp::session::Session;
use crate::websocket::Inbound;

/// An HTTP/1.1 connection: its socket, output, and protocol state.
pub struct HttpConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub out: OutBuf,
    pub state: HttpState,
}

/// A STOMP session over a WebSocket. Idle, it holds no buffer: reads go through the reactor's
/// scratch buffer, and `out` is freed each time it is drained.
pub struct WsConn {
    pub stream: TcpStream,
    /// What waits for the socket: the 101 (and answers pipelined before it), then WebSocket
    /// frames, appended in place.
    pub out: OutBuf,
    /// WebSocket input not handed out yet (a frame cut by the end of a read).
    pub inbound: Inbound,
    pub session: Session<crate::store::model::NewChatMessage>,
    /// STOMP input of a frame split across WebSocket messages.
    pub decoder: Decoder,
    pub liveness: Liveness,
    /// Close once everything is flushed.
    pub closing: bool,
    /// A close frame is queued: nothing may follow it.
    pub close_sent: bool,
    /// The user, once authenticated (indexed for `/user/queue/notifications`).
    pub user: Option<Box<str>>,
    /// The socket is left unread until the session's SENDs in flight drop under the bound.
    pub read_paused: bool,
    /// Fan-out wrote to it since its last timer visit: its drained output buffer is kept for
    /// the next message instead of being freed and allocated again.
    pub receiving: bool,
}

/// An SSE stream: the response head is written, events follow until either side closes.
pub struct SseConn {
    pub stream: TcpStream,
    pub out: OutBuf,
    pub state: EventStream,
}

/// Every kind boxed: a slab slot stays a few words, whatever the kind (slots are allocated for
/// the most connections a reactor has held at once).
pub enum Conn {
    Http(Box<HttpConn>),
    Ws(Box<WsConn>),
    Sse(Box<SseConn>),
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

    /// Writes until done or the socket would block; frees a large buffer once it is drained.
    pub fn flush_to<W: Write>(&mut self, w: &mut W) -> Flush {
        while self.written < self.buf.len() {
            match w.write(&self.buf[self.written..]) {
                Ok(0) => return Flush::Failed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Drop what the socket took, so that the buffer holds only what is pending.
                    if self.written >= 16 * 1024 && self.written * 2 >= self.buf.len() {
                        self.buf.drain(..self.written);
                        self.written = 0;
                    }
                    return Flush::Blocked;
                }
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

impl OutBuf {
    /// Gives the memory back once everything is written (an idle WebSocket keeps no buffer).
    pub fn release_if_drained(&mut self) {
        if self.is_empty() && self.buf.capacity() > 0 {
            *self = OutBuf::default();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes, then would block.
    struct Socket {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn memory_is_returned_after_a_burst_and_only_the_pending_part_is_kept_meanwhile() {
        let mut out = OutBuf::default();
        let burst: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        out.buf.extend_from_slice(&burst);
        let mut socket = Socket {
            taken: Vec::new(),
            room: 150_000,
        };
        // The socket takes part of it: what was written is dropped from the buffer.
        assert_eq!(out.flush_to(&mut socket), Flush::Blocked);
        assert_eq!(out.pending(), 50_000);
        assert_eq!(out.buf.len(), 50_000, "the written part is not kept");
        // The client reads the rest: everything arrives once, in order, and the memory goes back.
        socket.room = usize::MAX;
        assert_eq!(out.flush_to(&mut socket), Flush::Done);
        out.release_if_drained();
        assert_eq!(out.buf.capacity(), 0, "a drained buffer holds no memory");
        assert_eq!(socket.taken, burst);
        // Nothing pending: releasing is a no-op, and a small write is kept until it is written.
        out.buf.extend_from_slice(b"x");
        out.release_if_drained();
        assert_eq!(out.pending(), 1);
    }
}
