//! Sans-io WebSocket client codec: the upgrade request, the 101 check, masked frame encoding and frame parsing.

use std::borrow::Cow;

use thiserror::Error;

/// Largest frame payload accepted from the server; a bigger frame is a protocol error.
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// Largest upgrade response accepted before the `101` is complete.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// What went wrong on the WebSocket layer; every variant closes the connection.
#[derive(Debug, Error)]
pub enum WsError {
    /// The upgrade response was not a valid `101 Switching Protocols`; check the URL path.
    #[error("handshake refused: {0}")]
    Handshake(String),
    /// The server broke RFC 6455 framing; nothing to retry.
    #[error("bad frame: {0}")]
    Frame(&'static str),
}

/// WebSocket opcodes this client cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A fragment continuing the previous data frame.
    Continuation,
    /// A UTF-8 data frame.
    Text,
    /// A binary data frame.
    Binary,
    /// The peer is closing.
    Close,
    /// The peer asks for a pong.
    Ping,
    /// Answer to a ping; ignored.
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }
}

/// One parsed frame; the payload borrows the input unless the server (wrongly) masked it.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The frame's opcode.
    pub opcode: Opcode,
    /// Unmasked payload bytes.
    pub payload: Cow<'a, [u8]>,
}

/// Builds the HTTP upgrade request for `path` on `host` offering `subprotocol`.
pub fn upgrade_request(host: &str, path: &str, key: &str, subprotocol: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    )
    .into_bytes()
}

/// Checks the upgrade response; `Ok(None)` means more bytes are needed, `Ok(Some(n))` that `n` bytes were the head.
pub fn parse_upgrade_response(buf: &[u8], key: &str) -> Result<Option<usize>, WsError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(WsError::Handshake("response head too large".into()))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WsError::Handshake(format!("unparsable response: {e}"))),
    };
    if response.code != Some(101) {
        return Err(WsError::Handshake(format!(
            "status {} {}",
            response.code.unwrap_or(0),
            response.reason.unwrap_or("")
        )));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accept = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(expected.as_bytes()) {
        return Err(WsError::Handshake("missing or wrong Sec-WebSocket-Accept".into()));
    }
    Ok(Some(head_len))
}

/// Appends one final, masked client frame carrying `payload` to `out`.
pub fn encode_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: [u8; 4]) {
    out.push(0x80 | opcode.bits());
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Parses one frame from the front of `buf`; `Ok(None)` consumes nothing and asks for more bytes.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, WsError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x70 != 0 {
        return Err(WsError::Frame("reserved bits set"));
    }
    let opcode = Opcode::from_bits(buf[0] & 0x0F).ok_or(WsError::Frame("unknown opcode"))?;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut pos) = match buf[1] & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            (u64::from_be_bytes(a), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > MAX_PAYLOAD {
        return Err(WsError::Frame("payload too large"));
    }
    let mask = if masked {
        let Some(m) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    let end = pos + len as usize;
    let Some(raw) = buf.get(pos..end) else {
        return Ok(None);
    };
    let payload = match mask {
        None => Cow::Borrowed(raw),
        Some(m) => {
            let mut owned = raw.to_vec();
            apply_mask(&mut owned, m);
            Cow::Owned(owned)
        }
    };
    Ok(Some((Frame { opcode, payload }, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frame_round_trips_through_parser() {
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            encode_frame(&mut out, Opcode::Text, &payload, [1, 2, 3, 4]);
            let (frame, used) = parse_frame(&out).unwrap().unwrap();
            assert_eq!(used, out.len());
            assert_eq!(frame.opcode, Opcode::Text);
            assert_eq!(&*frame.payload, &payload[..]);
            assert!(parse_frame(&out[..out.len() - 1]).unwrap().is_none() || len == 0);
        }
    }

    #[test]
    fn unmasked_server_frame_parses_and_partial_waits() {
        let buf = [0x81, 0x03, b'a', b'b', b'c', 0x89];
        let (frame, used) = parse_frame(&buf).unwrap().unwrap();
        assert_eq!((frame.opcode, &*frame.payload, used), (Opcode::Text, &b"abc"[..], 5));
        assert!(parse_frame(&buf[5..]).unwrap().is_none());
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        assert!(parse_frame(&[0xF1, 0x00]).is_err());
        assert!(parse_frame(&[0x83, 0x00]).is_err());
        let huge = [0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(parse_frame(&huge).is_err());
    }

    #[test]
    fn upgrade_response_checks_accept_key() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81";
        assert_eq!(parse_upgrade_response(ok, key).unwrap(), Some(ok.len() - 1));
        assert!(parse_upgrade_response(&ok[..20], key).unwrap().is_none());
        assert!(parse_upgrade_response(b"HTTP/1.1 404 Not Found\r\n\r\n", key).is_err());
    }
}
