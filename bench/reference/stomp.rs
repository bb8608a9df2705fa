//! Sans-io STOMP 1.2 server codec: client frames decoded from a byte slice (borrowing it), server frames encoded.
//!
//! Every input comes from an untrusted peer: decoding never panics and never looks past `max_frame` bytes.

use std::borrow::Cow;

use thiserror::Error;

/// Most header lines a client frame may carry.
const MAX_HEADERS: usize = 32;

/// Why a client's bytes are not a STOMP frame; the session ends with an ERROR frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum StompError {
    /// Broken STOMP 1.2 syntax.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// Over the frame size limit.
    #[error("frame over the size limit")]
    TooLarge,
}

/// The client commands of STOMP 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `CONNECT` or `STOMP`: opens the session (headers are not escaped).
    Connect,
    /// Publishes.
    Send,
    /// Subscribes.
    Subscribe,
    /// Cancels a subscription.
    Unsubscribe,
    /// `ACK`, `NACK`, `BEGIN`, `COMMIT`, `ABORT`: accepted, nothing to do beyond a receipt.
    Accepted,
    /// Ends the session.
    Disconnect,
}

impl Command {
    fn parse(word: &[u8]) -> Option<Self> {
        Some(match word {
            b"CONNECT" | b"STOMP" => Self::Connect,
            b"SEND" => Self::Send,
            b"SUBSCRIBE" => Self::Subscribe,
            b"UNSUBSCRIBE" => Self::Unsubscribe,
            b"ACK" | b"NACK" | b"BEGIN" | b"COMMIT" | b"ABORT" => Self::Accepted,
            b"DISCONNECT" => Self::Disconnect,
            _ => return None,
        })
    }
}

/// One decoded client frame, borrowing the input.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The command.
    pub command: Command,
    headers: [(&'a [u8], &'a [u8]); MAX_HEADERS],
    header_count: usize,
    /// The body, without its NUL.
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The first value of header `name` (STOMP 1.2: the first occurrence wins), unescaped except in CONNECT.
    /// `None` if absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let raw = self.headers[..self.header_count]
            .iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| *v)?;
        if self.command == Command::Connect {
            return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
        }
        unescape(raw)
    }

    /// Like [`Frame::header`], but the name is matched without regard to ASCII case (`Authorization`).
    pub fn header_ignore_case(&self, name: &str) -> Option<&'a [u8]> {
        self.headers[..self.header_count]
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }
}

fn unescape(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b'c') => out.push(b':'),
            Some(b'\\') => out.push(b'\\'),
            // STOMP 1.2: an undefined escape is a protocol error; treated as an absent header.
            _ => return None,
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// What [`parse`] found at the front of the buffer.
#[derive(Debug)]
// The frame keeps its header slices inline (no allocation per inbound frame); it is moved once per frame.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    /// A heart-beat (a bare EOL) of this many bytes.
    HeartBeat(usize),
    /// A full frame and the bytes it used (NUL included).
    Frame(Frame<'a>, usize),
}

/// Parses one heart-beat or frame at the front of `buf`; `Ok(None)` consumes nothing and asks for more bytes.
pub fn parse(buf: &[u8], max_frame: usize) -> Result<Option<Parsed<'_>>, StompError> {
    match buf {
        [] => return Ok(None),
        [b'\n', ..] => return Ok(Some(Parsed::HeartBeat(1))),
        [b'\r', b'\n', ..] => return Ok(Some(Parsed::HeartBeat(2))),
        [b'\r'] => return Ok(None),
        _ => {}
    }
    let window = &buf[..buf.len().min(max_frame)];
    let incomplete = || {
        if buf.len() >= max_frame {
            Err(StompError::TooLarge)
        } else {
            Ok(None)
        }
    };
    let mut pos = 0;
    let next_line = |pos: &mut usize| -> Option<&[u8]> {
        let nl = window[*pos..].iter().position(|&b| b == b'\n')?;
        let line = &window[*pos..*pos + nl];
        *pos += nl + 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    };
    let Some(command_line) = next_line(&mut pos) else {
        return incomplete();
    };
    let command = Command::parse(command_line).ok_or(StompError::Malformed("unknown command"))?;
    let mut headers: [(&[u8], &[u8]); MAX_HEADERS] = [(&[], &[]); MAX_HEADERS];
    let mut header_count = 0;
    loop {
        let Some(line) = next_line(&mut pos) else {
            return incomplete();
        };
        if line.is_empty() {
            break;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(StompError::Malformed("header without a colon"))?;
        let slot = headers
            .get_mut(header_count)
            .ok_or(StompError::Malformed("too many headers"))?;
        *slot = (&line[..colon], &line[colon + 1..]);
        header_count += 1;
    }
    let content_length = headers[..header_count]
        .iter()
        .find(|(k, _)| *k == b"content-length")
        .map(|(_, v)| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(StompError::Malformed("bad content-length"))
        })
        .transpose()?;
    let body_len = match content_length {
        Some(n) if n >= max_frame.saturating_sub(pos) => return Err(StompError::TooLarge),
        Some(n) => match buf.get(pos + n) {
            None => return Ok(None),
            Some(0) => n,
            Some(_) => return Err(StompError::Malformed("body not terminated by NUL")),
        },
        None => match window[pos..].iter().position(|&b| b == 0) {
            Some(n) => n,
            None => return incomplete(),
        },
    };
    let frame = Frame {
        command,
        headers,
        header_count,
        body: &buf[pos..pos + body_len],
    };
    Ok(Some(Parsed::Frame(frame, pos + body_len + 1)))
}

/// Appends `s` with STOMP 1.2 header escaping.
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b':' => out.extend_from_slice(b"\\c"),
            _ => out.push(b),
        }
    }
}

/// Appends a server frame; header values are escaped except in `CONNECTED`, and `content-length` is added for a body.
pub fn push_frame(out: &mut Vec<u8>, command: &str, headers: &[(&str, &str)], body: &[u8]) {
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    let escape = command != "CONNECTED";
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        if escape {
            push_escaped(out, value);
        } else {
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'\n');
    }
    if !body.is_empty() {
        out.extend_from_slice(b"content-length:");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> (Frame<'_>, usize) {
        match parse(buf, 65536) {
            Ok(Some(Parsed::Frame(f, n))) => (f, n),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn decodes_send_with_content_length_and_escapes() {
        let raw = b"SEND\r\ndestination:/app/chat.send\r\nreceipt:a\\cb\r\ncontent-length:3\r\n\r\nx\0y\0\n";
        let (f, n) = frame(raw);
        assert_eq!(f.command, Command::Send);
        assert_eq!(f.header("destination").as_deref(), Some("/app/chat.send"));
        assert_eq!(f.header("receipt").as_deref(), Some("a:b"));
        assert_eq!((f.body, n), (&b"x\0y"[..], raw.len() - 1));
        assert!(matches!(parse(&raw[n..], 65536), Ok(Some(Parsed::HeartBeat(1)))));
    }

    #[test]
    fn connect_headers_are_not_unescaped() {
        let (f, _) = frame(b"CONNECT\nAuthorization:Bearer a\\cb\n\n\0");
        assert_eq!(f.header_ignore_case("authorization"), Some(&b"Bearer a\\cb"[..]));
        assert_eq!(f.header("Authorization").as_deref(), Some("Bearer a\\cb"));
    }

    #[test]
    fn every_prefix_of_a_frame_asks_for_more() {
        let raw = b"SUBSCRIBE\nid:sub-1\ndestination:/topic/chat.r\n\n\0";
        for cut in 0..raw.len() {
            assert!(parse(&raw[..cut], 65536).unwrap().is_none(), "cut {cut}");
        }
        let with_len = b"SEND\ncontent-length:5\n\nabcde\0";
        for cut in 0..with_len.len() {
            assert!(parse(&with_len[..cut], 65536).unwrap().is_none(), "cut {cut}");
        }
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert!(parse(b"HELLO\n\n\0", 100).is_err());
        assert!(parse(b"SEND\nnocolon\n\n\0", 100).is_err());
        assert!(parse(b"SEND\ncontent-length:x\n\n\0", 100).is_err());
        assert!(parse(b"SEND\ncontent-length:1\n\nab\0", 100).is_err());
        assert_eq!(
            parse(b"SEND\ncontent-length:1000\n\n", 100).unwrap_err(),
            StompError::TooLarge
        );
        assert_eq!(parse(&[b'S'; 200], 100).unwrap_err(), StompError::TooLarge);
        let mut body = b"SEND\n\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 200));
        assert_eq!(parse(&body, 100).unwrap_err(), StompError::TooLarge);
        let many: String = (0..40).map(|i| format!("h{i}:v\n")).collect();
        assert!(parse(format!("SEND\n{many}\n\0").as_bytes(), 65536).is_err());
        let (f, _) = frame(b"SEND\nreceipt:bad\\t\n\n\0");
        assert_eq!(f.header("receipt"), None);
        let mut rng = 0x1234_5678_u64;
        for _ in 0..2000 {
            let len = (rng % 64) as usize;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    b"SEND\n:\0\\cx"[(rng % 10) as usize]
                })
                .collect();
            let _ = parse(&junk, 32);
        }
    }

    #[test]
    fn server_frames_escape_except_connected() {
        let mut out = Vec::new();
        push_frame(&mut out, "RECEIPT", &[("receipt-id", "a:b\n")], b"");
        assert_eq!(out, b"RECEIPT\nreceipt-id:a\\cb\\n\n\n\0");
        out.clear();
        push_frame(&mut out, "CONNECTED", &[("server", "x:y")], b"hi");
        assert_eq!(out, b"CONNECTED\nserver:x:y\ncontent-length:2\n\nhi\0");
    }
}
