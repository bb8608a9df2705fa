//! Sans-io WebSocket server codec (RFC 6455): the upgrade answer, masked client frames in, unmasked server frames out.
//!
//! Client frames are unmasked in place, so a frame read into the reactor's scratch buffer is never copied.

use thiserror::Error;

/// Largest request head accepted before the upgrade is complete.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Why the peer's bytes cannot be a WebSocket stream; every variant ends the connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WsError {
    /// RFC 6455 framing broken (reserved bits, unknown opcode, unmasked client frame, bad control frame);
    /// answer with a close frame and drop the connection.
    #[error("bad frame: {0}")]
    Frame(&'static str),
    /// A frame over the configured payload limit; answer with a close frame and drop the connection.
    #[error("frame of {0} bytes over the limit")]
    TooLarge(u64),
}

/// The opcodes of RFC 6455.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A later fragment of a data message.
    Continuation,
    /// UTF-8 data.
    Text,
    /// Binary data.
    Binary,
    /// The peer is closing.
    Close,
    /// Asks for a pong with the same payload.
    Ping,
    /// Answer to a ping (or unsolicited); ignored.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Where one complete client frame sits in the buffer given to [`parse_frame`].
#[derive(Debug, PartialEq, Eq)]
pub struct FrameAt {
    /// The frame's opcode.
    pub opcode: Opcode,
    /// Last frame of its message.
    pub fin: bool,
    /// Start of the (now unmasked) payload.
    pub payload_start: usize,
    /// End of the payload, which is also the end of the frame.
    pub end: usize,
}

/// Parses one masked client frame at the front of `buf`, unmasking its payload in place.
/// `Ok(None)` means more bytes are needed; nothing is changed then.
pub fn parse_frame(buf: &mut [u8], max_payload: usize) -> Result<Option<FrameAt>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(WsError::Frame("reserved bits set"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(WsError::Frame("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(WsError::Frame("client frame not masked"));
    }
    let (len, mut pos) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (u64::from_be_bytes(a), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (len > 125 || !fin) {
        return Err(WsError::Frame("control frame fragmented or over 125 bytes"));
    }
    if len > max_payload as u64 {
        return Err(WsError::TooLarge(len));
    }
    let Some(mask) = buf.get(pos..pos + 4).map(|m| [m[0], m[1], m[2], m[3]]) else {
        return Ok(None);
    };
    pos += 4;
    let end = pos + len as usize;
    let Some(payload) = buf.get_mut(pos..end) else {
        return Ok(None);
    };
    unmask(payload, mask);
    Ok(Some(FrameAt {
        opcode,
        fin,
        payload_start: pos,
        end,
    }))
}

fn unmask(bytes: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = bytes.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Appends the header of a final, unmasked server frame whose payload is `len` bytes long.
pub fn push_header(out: &mut Vec<u8>, opcode: Opcode, len: usize) {
    let bits = match opcode {
        Opcode::Continuation => 0x0,
        Opcode::Text => 0x1,
        Opcode::Binary => 0x2,
        Opcode::Close => 0x8,
        Opcode::Ping => 0x9,
        Opcode::Pong => 0xA,
    };
    out.push(0x80 | bits);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends one complete unmasked server frame.
pub fn push_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    push_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// What the upgrade request asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Upgrade {
    /// A valid upgrade on the right path: the 101 answer to write, and the bytes of the head consumed.
    Accept {
        /// The full `101 Switching Protocols` response.
        response: Vec<u8>,
        /// Length of the request head; bytes after it are already WebSocket frames.
        head_len: usize,
    },
    /// Not an acceptable request: write this answer, then close.
    Refuse(&'static [u8]),
}

/// Parses an HTTP upgrade request at the front of `buf`; `Ok(None)` asks for more bytes.
pub fn parse_upgrade(buf: &[u8], path: &str) -> Option<Upgrade> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_REQUEST_HEAD => return None,
        Ok(httparse::Status::Partial) => return Some(Upgrade::Refuse(TOO_LARGE)),
        Err(_) => return Some(Upgrade::Refuse(BAD_REQUEST)),
    };
    let target = req.path.unwrap_or("");
    let target = target.split_once('?').map_or(target, |(p, _)| p);
    if target != path {
        return Some(Upgrade::Refuse(NOT_FOUND));
    }
    if req.method != Some("GET") {
        return Some(Upgrade::Refuse(BAD_REQUEST));
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let upgrade_ok = header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection_ok =
        header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    let version_ok = header("sec-websocket-version") == Some("13");
    let Some(key) = header("sec-websocket-key").filter(|_| upgrade_ok && connection_ok && version_ok) else {
        return Some(Upgrade::Refuse(BAD_REQUEST));
    };
    let protocol = header("sec-websocket-protocol").and_then(|offered| {
        ["v12.stomp", "v11.stomp", "v10.stomp"]
            .into_iter()
            .find(|p| offered.split(',').any(|o| o.trim() == *p))
    });
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = Vec::with_capacity(160);
    response.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    response.extend_from_slice(accept.as_bytes());
    if let Some(p) = protocol {
        response.extend_from_slice(b"\r\nSec-WebSocket-Protocol: ");
        response.extend_from_slice(p.as_bytes());
    }
    response.extend_from_slice(b"\r\n\r\n");
    Some(Upgrade::Accept { response, head_len })
}

const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(opcode_bits: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode_bits];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 65535 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn unmasks_in_place_at_every_length_and_waits_on_partial_input() {
        for len in [0usize, 1, 3, 4, 5, 125, 126, 127, 1000, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut frame = masked(0x1, &payload, [9, 8, 7, 6]);
            for cut in [0, 1, 2, frame.len() / 2, frame.len() - 1] {
                if cut < frame.len() {
                    let mut part = frame[..cut].to_vec();
                    assert_eq!(parse_frame(&mut part, 1 << 20), Ok(None), "len {len} cut {cut}");
                }
            }
            let at = parse_frame(&mut frame, 1 << 20).unwrap().unwrap();
            assert_eq!((at.opcode, at.end), (Opcode::Text, frame.len()));
            assert_eq!(&frame[at.payload_start..at.end], &payload[..]);
        }
    }

    #[test]
    fn hostile_frames_are_errors() {
        let mut unmasked = vec![0x81, 0x01, b'x'];
        assert!(parse_frame(&mut unmasked, 100).is_err());
        let mut reserved = masked(0x1, b"x", [1, 2, 3, 4]);
        reserved[0] |= 0x40;
        assert!(parse_frame(&mut reserved, 100).is_err());
        let mut opcode = masked(0x3, b"x", [1, 2, 3, 4]);
        assert!(parse_frame(&mut opcode, 100).is_err());
        let mut big_ping = masked(0x9, &[0; 126], [1, 2, 3, 4]);
        assert!(parse_frame(&mut big_ping, 1000).is_err());
        let mut fragmented_close = masked(0x8, b"", [1, 2, 3, 4]);
        fragmented_close[0] &= 0x7F;
        assert!(parse_frame(&mut fragmented_close, 100).is_err());
        let mut huge = vec![
            0x82,
            0x80 | 127,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            1,
            2,
            3,
            4,
        ];
        assert_eq!(parse_frame(&mut huge, 1 << 16), Err(WsError::TooLarge(u64::MAX)));
        let mut over = masked(0x2, &[0; 101], [1, 2, 3, 4]);
        assert_eq!(parse_frame(&mut over, 100), Err(WsError::TooLarge(101)));
    }

    #[test]
    fn server_frames_are_unmasked_with_the_right_length_form() {
        for (len, head) in [(5usize, 2usize), (126, 4), (65535, 4), (65536, 10)] {
            let mut out = Vec::new();
            push_frame(&mut out, Opcode::Text, &vec![b'a'; len]);
            assert_eq!(out.len(), head + len);
            assert_eq!(out[0], 0x81);
            assert_eq!(out[1] & 0x80, 0);
        }
    }

    #[test]
    fn upgrade_answers_101_with_accept_and_subprotocol() {
        let req = b"GET /ws/chat?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Protocol: v10.stomp, v12.stomp\r\n\r\n\x81";
        let Some(Upgrade::Accept { response, head_len }) = parse_upgrade(req, "/ws/chat") else {
            panic!("expected an accepted upgrade");
        };
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: v12.stomp\r\n"));
        assert_eq!(head_len, req.len() - 1);
        assert_eq!(parse_upgrade(&req[..30], "/ws/chat"), None);
        assert_eq!(parse_upgrade(req, "/other"), Some(Upgrade::Refuse(NOT_FOUND)));
        assert_eq!(
            parse_upgrade(b"GET /ws/chat HTTP/1.1\r\nHost: a\r\n\r\n", "/ws/chat"),
            Some(Upgrade::Refuse(BAD_REQUEST))
        );
        assert_eq!(
            parse_upgrade(b"\x00\x01garbage\r\n\r\n", "/ws/chat"),
            Some(Upgrade::Refuse(BAD_REQUEST))
        );
        assert!(matches!(
            parse_upgrade(&vec![b'a'; MAX_REQUEST_HEAD + 1], "/ws/chat"),
            Some(Upgrade::Refuse(_))
        ));
    }
}
