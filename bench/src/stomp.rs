//! Sans-io STOMP 1.2 client codec: frame encoding with header escaping, and frame parsing from a byte stream.

use std::borrow::Cow;

use thiserror::Error;

/// Largest STOMP frame accepted from the server.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

/// A STOMP frame the server sent that this client cannot parse; the connection is dropped.
#[derive(Debug, Error)]
pub enum StompError {
    /// The frame broke STOMP 1.2 syntax.
    #[error("malformed STOMP frame: {0}")]
    Malformed(&'static str),
    /// The frame is bigger than [`MAX_FRAME`].
    #[error("STOMP frame larger than {MAX_FRAME} bytes")]
    TooLarge,
}

/// One parsed frame, borrowing the input buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    /// The command, e.g. `MESSAGE`.
    pub command: &'a str,
    headers: Vec<(&'a [u8], &'a [u8])>,
    /// The body bytes (without the NUL terminator).
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The first value of header `name`, unescaped (STOMP 1.2: the first occurrence wins).
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        self.headers
            .iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| unescape(v))
    }
}

/// What [`parse`] found at the front of the buffer.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A heart-beat (a bare EOL) of this many bytes.
    HeartBeat(usize),
    /// A full frame and the number of bytes it used.
    Frame(Frame<'a>, usize),
}

/// Appends a frame; header values are escaped except in `CONNECT`, as STOMP 1.2 requires.
pub fn encode(out: &mut Vec<u8>, command: &str, headers: &[(&str, &str)], body: &[u8]) {
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    let escape = command != "CONNECT" && command != "STOMP";
    for (name, value) in headers {
        push_escaped(out, name, escape);
        out.push(b':');
        push_escaped(out, value, escape);
        out.push(b'\n');
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
}

fn push_escaped(out: &mut Vec<u8>, s: &str, escape: bool) {
    if !escape {
        out.extend_from_slice(s.as_bytes());
        return;
    }
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

fn unescape(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'\\') {
        return String::from_utf8_lossy(raw);
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
            Some(&other) => out.push(other),
            None => {}
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Parses a heart-beat or one frame from the front of `buf`; `Ok(None)` consumes nothing and asks for more bytes.
pub fn parse(buf: &[u8]) -> Result<Option<Parsed<'_>>, StompError> {
    match buf.first() {
        None => return Ok(None),
        Some(b'\n') => return Ok(Some(Parsed::HeartBeat(1))),
        Some(b'\r') if buf.get(1) == Some(&b'\n') => return Ok(Some(Parsed::HeartBeat(2))),
        Some(b'\r') if buf.len() < 2 => return Ok(None),
        Some(_) => {}
    }
    let mut lines_end = 0;
    let mut lines = Vec::new();
    // Header block: lines up to the first empty line.
    loop {
        let Some(nl) = buf[lines_end..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_FRAME {
                Err(StompError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let mut line = &buf[lines_end..lines_end + nl];
        lines_end += nl + 1;
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let Some((command, header_lines)) = lines.split_first() else {
        return Err(StompError::Malformed("no command"));
    };
    let command = std::str::from_utf8(command).map_err(|_| StompError::Malformed("command not UTF-8"))?;
    let mut headers = Vec::with_capacity(header_lines.len());
    for line in header_lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(StompError::Malformed("header without colon"))?;
        headers.push((&line[..colon], &line[colon + 1..]));
    }
    let content_length = headers
        .iter()
        .find(|(k, _)| *k == b"content-length")
        .map(|(_, v)| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(StompError::Malformed("bad content-length"))
        })
        .transpose()?;
    let rest = &buf[lines_end..];
    let body_len = match content_length {
        Some(n) if n > MAX_FRAME => return Err(StompError::TooLarge),
        Some(n) if rest.len() <= n => return Ok(None),
        Some(n) if rest[n] != 0 => return Err(StompError::Malformed("body not NUL-terminated")),
        Some(n) => n,
        None => match rest.iter().position(|&b| b == 0) {
            Some(n) => n,
            None if buf.len() > MAX_FRAME => return Err(StompError::TooLarge),
            None => return Ok(None),
        },
    };
    let frame = Frame {
        command,
        headers,
        body: &rest[..body_len],
    };
    Ok(Some(Parsed::Frame(frame, lines_end + body_len + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> (Frame<'_>, usize) {
        match parse(buf).unwrap() {
            Some(Parsed::Frame(f, n)) => (f, n),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn encodes_and_parses_with_escapes() {
        let mut out = Vec::new();
        encode(
            &mut out,
            "SEND",
            &[("destination", "/a:b"), ("receipt", "r\n1")],
            b"{\"x\":1}",
        );
        let (f, n) = one(&out);
        assert_eq!(n, out.len());
        assert_eq!(f.command, "SEND");
        assert_eq!(f.header("destination").as_deref(), Some("/a:b"));
        assert_eq!(f.header("receipt").as_deref(), Some("r\n1"));
        assert_eq!(f.body, b"{\"x\":1}");
    }

    #[test]
    fn heart_beats_partial_and_nul_terminated_bodies() {
        assert!(matches!(parse(b"\n").unwrap(), Some(Parsed::HeartBeat(1))));
        assert!(matches!(parse(b"\r\n").unwrap(), Some(Parsed::HeartBeat(2))));
        assert!(parse(b"MESSAGE\nid:1\n").unwrap().is_none());
        assert!(parse(b"MESSAGE\ncontent-length:5\n\nab").unwrap().is_none());
        let (f, n) = one(b"RECEIPT\r\nreceipt-id:7\r\n\r\n\0tail");
        assert_eq!(
            (f.command, f.header("receipt-id").as_deref(), n),
            ("RECEIPT", Some("7"), 26)
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse(b"MESSAGE\nnocolon\n\n\0").is_err());
        assert!(parse(b"MESSAGE\ncontent-length:x\n\n\0").is_err());
        assert!(parse(b"MESSAGE\ncontent-length:1\n\nab").is_err());
    }
}
