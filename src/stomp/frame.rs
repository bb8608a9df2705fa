//! STOMP 1.2 frame codec: bytes in, frames out, and back.
//!
//! Sans-io on purpose: the WebSocket session owns the buffers and decides when to read, write and
//! close, so this file can be tested with byte slices and fuzzed. Every input comes from an
//! untrusted peer, so decoding never panics and never looks past `Limits::max_frame_bytes`.

use std::ops::Range;

/// A STOMP command, client or server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Client opens a session (STOMP 1.0 style; headers are not escaped).
    Connect,
    /// Client opens a session (STOMP 1.2 style).
    Stomp,
    /// Server accepts a session (headers are not escaped).
    Connected,
    /// Client publishes to a destination.
    Send,
    /// Client subscribes to a destination.
    Subscribe,
    /// Client cancels a subscription.
    Unsubscribe,
    /// Client acknowledges a message.
    Ack,
    /// Client rejects a message.
    Nack,
    /// Client starts a transaction.
    Begin,
    /// Client commits a transaction.
    Commit,
    /// Client rolls back a transaction.
    Abort,
    /// Client ends the session.
    Disconnect,
    /// Server delivers a message to a subscription.
    Message,
    /// Server confirms a frame that asked for a receipt.
    Receipt,
    /// Server reports an error, then closes.
    Error,
}

/// Length of the longest command name ("UNSUBSCRIBE"); lets `decode` reject junk early.
const LONGEST_COMMAND: usize = 11;

impl Command {
    /// Every command of STOMP 1.2.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a wire command; STOMP commands are case-sensitive.
    pub fn from_bytes(b: &[u8]) -> Option<Command> {
        Some(match b {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"CONNECTED" => Command::Connected,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// STOMP 1.2 exempts CONNECT and CONNECTED from header escaping so 1.0 peers can still connect.
    fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Connected)
    }
}

/// One STOMP frame: a command, ordered headers (repeats kept) and a raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's command.
    pub command: Command,
    /// Headers in wire order, already unescaped; repeats are kept because the first one wins.
    pub headers: Vec<(String, String)>,
    /// The body, raw bytes (may contain NUL when a `content-length` header is present).
    pub body: Vec<u8>,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// First occurrence wins (STOMP 1.2 §Repeated Header Entries). Name match is exact (case-sensitive), as STOMP says.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Appends a header (after any existing ones, so an earlier header of the same name still wins).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Frame {
        self.body = body.into();
        self
    }
}

/// Bounds applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted frame, counting command, headers, body and the closing NUL (default 65536).
    pub max_frame_bytes: usize,
    /// Most header lines accepted in one frame, repeats included (default 64).
    pub max_headers: usize,
}

impl Default for Limits {
    /// 64 KiB frames and 64 headers, the contract's defaults (SPEC §4).
    fn default() -> Limits {
        Limits {
            max_frame_bytes: 65536,
            max_headers: 64,
        }
    }
}

/// What `decode` found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame.
    Frame(Frame),
    /// A lone EOL between frames: proof of life, nothing else.
    HeartBeat,
}

/// A protocol violation by the peer.
///
/// Every variant is fatal to the connection: send an ERROR frame whose `message` header is the
/// variant's `Display` text, then close. The buffer position is unknown after an error, so do
/// not try to resynchronise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The command line is not a STOMP command: send ERROR and close.
    #[error("unknown command")]
    UnknownCommand,
    /// A header line has no colon, an empty name or a stray carriage return: send ERROR and close.
    #[error("malformed header")]
    MalformedHeader,
    /// A header uses an escape other than \r \n \c \\: send ERROR and close.
    #[error("invalid escape sequence in header")]
    BadEscape,
    /// The frame exceeds `Limits::max_frame_bytes` (or announces it will): send ERROR and close.
    #[error("frame too large")]
    FrameTooLarge,
    /// The frame has more than `Limits::max_headers` headers: send ERROR and close.
    #[error("too many headers")]
    TooManyHeaders,
    /// `content-length` is not a non-negative decimal integer: send ERROR and close.
    #[error("invalid content-length")]
    BadContentLength,
    /// The `content-length` bytes of body are not followed by NUL: send ERROR and close.
    #[error("frame not terminated by NUL")]
    MissingNul,
    /// The command or a header is not valid UTF-8: send ERROR and close.
    #[error("invalid UTF-8 in frame")]
    InvalidUtf8,
}

/// Where the parts of a complete frame sit in the buffer, found without allocating.
struct Layout {
    command: Command,
    header_count: usize,
    /// Header lines, each with its EOL, excluding the blank line.
    headers: Range<usize>,
    body: Range<usize>,
}

/// Decodes one frame or one heart-beat EOL from the front of `buf`.
///
/// `Ok(None)`: incomplete, nothing consumed (caller waits for more bytes) — but if `buf` already
/// exceeds `max_frame_bytes` without a complete frame, returns `Err(FrameTooLarge)` instead of
/// waiting forever. `Ok(Some((decoded, consumed)))` otherwise; EOLs after the NUL are left for
/// the next call, which reports them as heart-beats.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Decoded, usize)>, FrameError> {
    match buf {
        [] | [b'\r'] => return Ok(None),
        [b'\n', ..] => return Ok(Some((Decoded::HeartBeat, 1))),
        [b'\r', b'\n', ..] => return Ok(Some((Decoded::HeartBeat, 2))),
        _ => {}
    }
    // No acceptable frame reaches past the limit, so never scan beyond it: this bounds the work
    // a peer can cause per call, however much it sends.
    let window = &buf[..buf.len().min(limits.max_frame_bytes)];
    let Some(layout) = scan(window, limits)? else {
        return if buf.len() >= limits.max_frame_bytes {
            Err(FrameError::FrameTooLarge)
        } else {
            Ok(None)
        };
    };
    let consumed = layout.body.end + 1;
    let frame = build(window, layout)?;
    Ok(Some((Decoded::Frame(frame), consumed)))
}

/// Whether an unfinished command line (no EOL yet) is still the start of some command.
fn could_be_command(partial: &[u8]) -> bool {
    // A trailing CR may be the first half of a CRLF.
    let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
    Command::ALL.iter().any(|c| c.as_str().as_bytes().starts_with(partial))
}

/// Finds the frame's structure, reporting structural errors as soon as they are certain.
///
/// Allocation and UTF-8/escape checks wait for `build`, so a frame trickling in over many reads
/// costs only a byte scan per read.
fn scan(window: &[u8], limits: &Limits) -> Result<Option<Layout>, FrameError> {
    let Some((command_line, headers_start)) = next_line(window, 0) else {
        // No command fits in a line this long, and bytes that no command starts with will never
        // become one: fail now rather than wait for more.
        return if window.len() > LONGEST_COMMAND + 1 || !could_be_command(window) {
            Err(FrameError::UnknownCommand)
        } else {
            Ok(None)
        };
    };
    let command = parse_command(command_line)?;

    let mut header_count = 0;
    let mut content_length = None;
    let mut pos = headers_start;
    let body_start = loop {
        let Some((line, next)) = next_line(window, pos) else {
            return Ok(None);
        };
        if line.is_empty() {
            break next;
        }
        header_count += 1;
        if header_count > limits.max_headers {
            return Err(FrameError::TooManyHeaders);
        }
        let (name, value) = split_header(line)?;
        // Escapes can only produce `\`, `:`, CR or LF, none of which fit in "content-length" or in
        // a number, so matching the raw bytes gives the same answer as matching unescaped text.
        if content_length.is_none() && name == b"content-length" {
            content_length = Some(parse_content_length(value)?);
        }
        pos = next;
    };
    let headers = headers_start..pos;

    let body_end = match content_length {
        Some(len) => {
            let end = body_start.checked_add(len).ok_or(FrameError::FrameTooLarge)?;
            // The NUL at `end` must fit too; rejecting now spares waiting for a body we would refuse.
            if end >= limits.max_frame_bytes {
                return Err(FrameError::FrameTooLarge);
            }
            match window.get(end) {
                None => return Ok(None),
                Some(0) => end,
                Some(_) => return Err(FrameError::MissingNul),
            }
        }
        None => {
            let body = window.get(body_start..).unwrap_or_default();
            match body.iter().position(|&b| b == 0) {
                Some(len) => body_start + len,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Layout {
        command,
        header_count,
        headers,
        body: body_start..body_end,
    }))
}

/// Builds the owned frame from a complete layout, validating UTF-8 and escapes.
fn build(window: &[u8], layout: Layout) -> Result<Frame, FrameError> {
    let escaped = layout.command.escapes_headers();
    let block = window.get(layout.headers).unwrap_or_default();
    let mut headers = Vec::with_capacity(layout.header_count);
    let mut pos = 0;
    while let Some((line, next)) = next_line(block, pos) {
        let (name, value) = split_header(line)?;
        headers.push((header_text(name, escaped)?, header_text(value, escaped)?));
        pos = next;
    }
    Ok(Frame {
        command: layout.command,
        headers,
        body: window.get(layout.body).unwrap_or_default().to_vec(),
    })
}

/// Returns the line starting at `from` without its EOL (`\n` or `\r\n`), and where the next begins.
fn next_line(buf: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(from..)?;
    let len = rest.iter().position(|&b| b == b'\n')?;
    let line = rest.get(..len)?;
    Some((line.strip_suffix(b"\r").unwrap_or(line), from + len + 1))
}

fn parse_command(line: &[u8]) -> Result<Command, FrameError> {
    Command::from_bytes(line).ok_or_else(|| match std::str::from_utf8(line) {
        Ok(_) => FrameError::UnknownCommand,
        Err(_) => FrameError::InvalidUtf8,
    })
}

/// Splits `name:value` at the first colon: a literal colon cannot occur in an escaped name, and
/// STOMP 1.0 peers put unescaped colons in values (`a:b:c` is name `a`, value `b:c`).
fn split_header(line: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(FrameError::MalformedHeader)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // A CR left inside the line is not part of an EOL and STOMP forbids it in names and values.
    if name.is_empty() || line.contains(&b'\r') {
        return Err(FrameError::MalformedHeader);
    }
    Ok((name, value))
}

fn parse_content_length(value: &[u8]) -> Result<usize, FrameError> {
    // Strict digits only: `str::parse` would also take a leading `+`, which STOMP does not allow.
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadContentLength);
    }
    // All digits, so the only way to fail is overflow, which is certainly past any frame limit.
    value
        .iter()
        .try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
        .ok_or(FrameError::FrameTooLarge)
}

fn header_text(raw: &[u8], escaped: bool) -> Result<String, FrameError> {
    let text = std::str::from_utf8(raw).map_err(|_| FrameError::InvalidUtf8)?;
    if !escaped || !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('r') => '\r',
            Some('n') => '\n',
            Some('c') => ':',
            Some('\\') => '\\',
            _ => return Err(FrameError::BadEscape),
        });
    }
    Ok(out)
}

/// Appends the wire form of `frame` (escaping header names/values except for CONNECT/CONNECTED
/// frames, per STOMP 1.2), a blank line, the body, and NUL.
///
/// Headers are written as given: add `content-length` yourself when the body may contain NUL.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let command = frame.command.as_str();
    let headers_len: usize = frame.headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    out.reserve(command.len() + headers_len + frame.body.len() + 3);
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    let escaped = frame.command.escapes_headers();
    for (name, value) in &frame.headers {
        if escaped {
            escape_into(name, out);
            out.push(b':');
            escape_into(value, out);
        } else {
            // CR and LF cannot be represented without escapes; writing them would let a value
            // inject headers, so they are dropped (as is a colon in a name, which would split it).
            out.extend(name.bytes().filter(|b| !matches!(b, b'\r' | b'\n' | b':')));
            out.push(b':');
            out.extend(value.bytes().filter(|b| !matches!(b, b'\r' | b'\n')));
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&frame.body);
    out.push(0);
}

/// The length of `s` once escaped by [`escape_into`].
pub fn escaped_len(s: &str) -> usize {
    s.len() + s.bytes().filter(|b| matches!(b, b'\\' | b'\n' | b'\r' | b':')).count()
}

/// Escapes one header value/name per STOMP 1.2 (\\ \n \r \c) into `out` — exposed because fan-out pre-encodes headers.
pub fn escape_into(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b':' => b"\\c",
            _ => continue,
        };
        // Copy unescaped runs in one go; header values are mostly plain text.
        out.extend_from_slice(&bytes[plain_from..i]);
        out.extend_from_slice(escape);
        plain_from = i + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    /// Decodes a buffer that must hold exactly one complete frame.
    fn decode_one(bytes: &[u8]) -> Frame {
        match decode(bytes, &limits()) {
            Ok(Some((Decoded::Frame(frame), consumed))) => {
                assert_eq!(consumed, bytes.len(), "consumed");
                frame
            }
            other => panic!("expected one frame, got {other:?}"),
        }
    }

    fn decode_err(bytes: &[u8]) -> FrameError {
        decode_err_with(bytes, &limits())
    }

    fn decode_err_with(bytes: &[u8], limits: &Limits) -> FrameError {
        match decode(bytes, limits) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Decodes everything in `buf` the way the session does, stopping at the first incomplete frame.
    fn decode_all(buf: &[u8], limits: &Limits) -> Result<(Vec<Decoded>, usize), FrameError> {
        let mut items = Vec::new();
        let mut pos = 0;
        while let Some((item, consumed)) = decode(&buf[pos..], limits)? {
            assert!(consumed > 0 && consumed <= buf.len() - pos);
            items.push(item);
            pos += consumed;
        }
        Ok((items, pos))
    }

    fn encoded(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode(frame, &mut out);
        out
    }

    #[test]
    fn command_names_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
        }
        assert_eq!(
            Command::ALL.iter().map(|c| c.as_str().len()).max(),
            Some(LONGEST_COMMAND)
        );
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b"SEND "), None);
        assert_eq!(Command::from_bytes(b""), None);
    }

    #[test]
    fn decodes_every_command() {
        for c in Command::ALL {
            let wire = format!("{}\n\n\0", c.as_str());
            assert_eq!(decode_one(wire.as_bytes()), Frame::new(c));
            let crlf = format!("{}\r\n\r\n\0", c.as_str());
            assert_eq!(decode_one(crlf.as_bytes()), Frame::new(c));
        }
    }

    #[test]
    fn decodes_headers_and_body() {
        let frame =
            decode_one(b"SEND\ndestination:/app/chat.send\ncontent-type:application/json\n\n{\"roomId\":\"room-1\"}\0");
        assert_eq!(frame.command, Command::Send);
        assert_eq!(frame.header("destination"), Some("/app/chat.send"));
        assert_eq!(frame.header("content-type"), Some("application/json"));
        assert_eq!(frame.header("Destination"), None);
        assert_eq!(frame.body, b"{\"roomId\":\"room-1\"}");
    }

    #[test]
    fn crlf_line_endings() {
        let frame = decode_one(b"MESSAGE\r\nsubscription:sub-0\r\nmessage-id:7\r\n\r\nhi\0");
        assert_eq!(
            frame,
            Frame::new(Command::Message)
                .with_header("subscription", "sub-0")
                .with_header("message-id", "7")
                .with_body("hi")
        );
    }

    #[test]
    fn header_value_keeps_later_colons() {
        let frame = decode_one(b"SEND\na:b:c\nempty:\n\n\0");
        assert_eq!(frame.headers[0], ("a".into(), "b:c".into()));
        assert_eq!(frame.header("empty"), Some(""));
    }

    #[test]
    fn repeated_headers_first_wins() {
        let frame = decode_one(b"SEND\nfoo:1\nfoo:2\n\n\0");
        assert_eq!(frame.header("foo"), Some("1"));
        assert_eq!(frame.headers.len(), 2, "repeats are kept");
        // The first content-length governs the body, and a later bogus one is ignored.
        let frame = decode_one(b"SEND\ncontent-length:3\ncontent-length:x\n\na\0b\0");
        assert_eq!(frame.body, b"a\0b");
    }

    #[test]
    fn escape_into_escapes_the_four_specials() {
        let mut out = Vec::new();
        escape_into("a:b\\c\nd\re", &mut out);
        assert_eq!(out, b"a\\cb\\\\c\\nd\\re");
        out.clear();
        escape_into("plain é", &mut out);
        assert_eq!(out, "plain é".as_bytes());
        out.clear();
        escape_into("", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn escaping_round_trips() {
        let frame = Frame::new(Command::Message)
            .with_header("we:ird\\name", "line1\nline2\r:\\")
            .with_body("x");
        let wire = encoded(&frame);
        assert_eq!(wire, b"MESSAGE\nwe\\cird\\\\name:line1\\nline2\\r\\c\\\\\n\nx\0");
        assert_eq!(decode_one(&wire), frame);
    }

    #[test]
    fn connect_headers_are_not_unescaped() {
        for c in [Command::Connect, Command::Connected] {
            let wire = format!("{}\nlogin:a\\cb\\t\n\n\0", c.as_str());
            assert_eq!(decode_one(wire.as_bytes()).header("login"), Some("a\\cb\\t"));
        }
        // STOMP is the 1.2 handshake and follows the normal rule.
        assert_eq!(decode_one(b"STOMP\nlogin:a\\cb\n\n\0").header("login"), Some("a:b"));
    }

    #[test]
    fn connect_headers_are_not_escaped() {
        let frame = Frame::new(Command::Connected)
            .with_header("version", "1.2")
            .with_header("server", "herald/0.1:x\\y");
        let wire = encoded(&frame);
        assert_eq!(wire, b"CONNECTED\nversion:1.2\nserver:herald/0.1:x\\y\n\n\0");
        assert_eq!(decode_one(&wire), frame);
        // A line break cannot be written raw; dropping it keeps it from injecting a header.
        let hostile = Frame::new(Command::Connected).with_header("user-name", "eve\r\nadmin:1");
        assert_eq!(encoded(&hostile), b"CONNECTED\nuser-name:eveadmin:1\n\n\0");
    }

    /// Every STOMP 1.2 escape, as written on the wire and as meant.
    const ESCAPES: [(&str, &str); 4] = [("\\c", ":"), ("\\n", "\n"), ("\\r", "\r"), ("\\\\", "\\")];

    #[test]
    fn every_escape_decodes_and_encodes_in_names_and_values_of_every_escaping_command() {
        for command in Command::ALL.into_iter().filter(|c| c.escapes_headers()) {
            for (wire, meant) in ESCAPES {
                let bytes = format!("{}\nx{wire}y:a{wire}b{wire}\n\n\0", command.as_str());
                let f = decode_one(bytes.as_bytes());
                assert_eq!(
                    f.headers,
                    vec![(format!("x{meant}y"), format!("a{meant}b{meant}"))],
                    "{} {wire}",
                    command.as_str()
                );
                assert_eq!(encoded(&f), bytes.as_bytes(), "{} {wire} back", command.as_str());
            }
            // All four in one value, next to each other.
            let f = decode_one(format!("{}\nh:\\c\\n\\r\\\\\n\n\0", command.as_str()).as_bytes());
            assert_eq!(f.header("h"), Some(":\n\r\\"));
        }
    }

    #[test]
    fn connect_and_connected_take_every_escape_literally() {
        for command in [Command::Connect, Command::Connected] {
            for (wire, _) in ESCAPES {
                let bytes = format!("{}\nx{wire}y:a{wire}b\n\n\0", command.as_str());
                let f = decode_one(bytes.as_bytes());
                assert_eq!(
                    f.headers,
                    vec![(format!("x{wire}y"), format!("a{wire}b"))],
                    "{} keeps {wire}",
                    command.as_str()
                );
                assert_eq!(
                    encoded(&f),
                    bytes.as_bytes(),
                    "{} writes {wire} as is",
                    command.as_str()
                );
            }
        }
    }

    #[test]
    fn content_length_allows_nul_in_body() {
        let frame = decode_one(b"SEND\ncontent-length:5\n\na\0b\0c\0");
        assert_eq!(frame.body, b"a\0b\0c");
        assert_eq!(decode_one(b"SEND\ncontent-length:0\n\n\0").body, b"");
        assert_eq!(decode_one(b"SEND\ncontent-length:002\n\nab\0").body, b"ab");
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let frames: [&[u8]; 4] = [
            b"SEND\ndestination:/app/chat.send\ncontent-length:5\n\na\0b\0c\0",
            b"MESSAGE\r\nsubscription:s\\c1\r\n\r\nbody\0",
            b"CONNECT\naccept-version:1.2\nAuthorization:Bearer x.y.z\n\n\0",
            b"DISCONNECT\n\n\0",
        ];
        for wire in frames {
            for cut in 0..wire.len() {
                assert_eq!(decode(&wire[..cut], &limits()), Ok(None), "cut at {cut}");
            }
            decode_one(wire);
        }
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let mut buf = encoded(&Frame::new(Command::Send).with_header("a", "1"));
        buf.extend_from_slice(b"SEND\ncontent-length:1\n\n\0\0");
        buf.extend_from_slice(b"ACK\nid:9\n\n\0");
        let (items, used) = decode_all(&buf, &limits()).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            items,
            vec![
                Decoded::Frame(Frame::new(Command::Send).with_header("a", "1")),
                Decoded::Frame(
                    Frame::new(Command::Send)
                        .with_header("content-length", "1")
                        .with_body(*b"\0")
                ),
                Decoded::Frame(Frame::new(Command::Ack).with_header("id", "9")),
            ]
        );
    }

    #[test]
    fn heart_beats_between_frames() {
        let buf = b"\nSEND\n\n\0\r\n\nACK\n\n\0\n\r";
        let (items, used) = decode_all(buf, &limits()).unwrap();
        assert_eq!(
            items,
            vec![
                Decoded::HeartBeat,
                Decoded::Frame(Frame::new(Command::Send)),
                Decoded::HeartBeat,
                Decoded::HeartBeat,
                Decoded::Frame(Frame::new(Command::Ack)),
                Decoded::HeartBeat,
            ]
        );
        // The trailing CR may still become a CRLF heart-beat, so it stays unconsumed.
        assert_eq!(used, buf.len() - 1);
        assert_eq!(decode(b"\r\n", &limits()), Ok(Some((Decoded::HeartBeat, 2))));
        assert_eq!(decode(b"\r", &limits()), Ok(None));
        assert_eq!(decode(b"", &limits()), Ok(None));
    }

    #[test]
    fn unknown_command() {
        assert_eq!(decode_err(b"FOO\n\n\0"), FrameError::UnknownCommand);
        assert_eq!(decode_err(b"send\n\n\0"), FrameError::UnknownCommand);
        assert_eq!(decode_err(b"\rSEND\n\n\0"), FrameError::UnknownCommand);
        assert_eq!(decode_err(b"SEND \n\n\0"), FrameError::UnknownCommand);
        // Reported as soon as the line is complete, before the rest of the frame arrives.
        assert_eq!(decode_err(b"GET / HTTP/1.1\r\n"), FrameError::UnknownCommand);
        // And without waiting for an EOL once the line is longer than any command.
        assert_eq!(decode_err(b"GET / HTTP/1.1"), FrameError::UnknownCommand);
        assert_eq!(decode(b"UNSUBSCRIBE\r", &limits()), Ok(None));
    }

    #[test]
    fn malformed_header() {
        assert_eq!(decode_err(b"SEND\nno-colon\n\n\0"), FrameError::MalformedHeader);
        assert_eq!(decode_err(b"SEND\n:value\n\n\0"), FrameError::MalformedHeader);
        assert_eq!(decode_err(b"SEND\na:b\rc\n\n\0"), FrameError::MalformedHeader);
        assert_eq!(decode_err(b"SEND\na:b\r\r\n\n\0"), FrameError::MalformedHeader);
        // Known as soon as the line ends.
        assert_eq!(decode_err(b"SEND\nno-colon\n"), FrameError::MalformedHeader);
    }

    #[test]
    fn bad_escape() {
        assert_eq!(decode_err(b"SEND\na:b\\tc\n\n\0"), FrameError::BadEscape);
        assert_eq!(decode_err(b"SEND\na:b\\\n\n\0"), FrameError::BadEscape);
        assert_eq!(decode_err(b"SEND\na\\x:b\n\n\0"), FrameError::BadEscape);
    }

    #[test]
    fn frame_too_large() {
        let small = Limits {
            max_frame_bytes: 16,
            ..Limits::default()
        };
        // Exactly at the limit is fine, one byte more is not.
        let at_limit = b"SEND\n\n012345678\0";
        assert_eq!(at_limit.len(), 16);
        assert!(matches!(decode(at_limit, &small), Ok(Some((_, 16)))));
        assert_eq!(
            decode_err_with(b"SEND\n\n0123456789\0", &small),
            FrameError::FrameTooLarge
        );
        // No NUL yet, but already over the limit: no point waiting.
        assert_eq!(
            decode_err_with(b"SEND\n\n0123456789X", &small),
            FrameError::FrameTooLarge
        );
        assert_eq!(
            decode_err_with(b"SEND\nlong-header:0123456", &small),
            FrameError::FrameTooLarge
        );
        // A content-length past the limit fails before the body arrives.
        let medium = Limits {
            max_frame_bytes: 64,
            ..Limits::default()
        };
        assert_eq!(
            decode_err_with(b"SEND\ncontent-length:40\n\n", &medium),
            FrameError::FrameTooLarge
        );
        assert_eq!(decode(b"SEND\ncontent-length:39\n\n", &medium), Ok(None));
        assert_eq!(
            decode_err(b"SEND\ncontent-length:99999999999999999999999999\n\n"),
            FrameError::FrameTooLarge
        );
        let big = vec![b'x'; 70_000];
        let mut wire = b"SEND\n\n".to_vec();
        wire.extend_from_slice(&big);
        assert_eq!(decode_err(&wire), FrameError::FrameTooLarge);
    }

    #[test]
    fn too_many_headers() {
        let two = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        assert!(decode(b"SEND\na:1\nb:2\n\n\0", &two).unwrap().is_some());
        assert_eq!(
            decode_err_with(b"SEND\na:1\nb:2\nc:3\n\n\0", &two),
            FrameError::TooManyHeaders
        );
        // Counted while headers arrive, not after the frame completes.
        assert_eq!(
            decode_err_with(b"SEND\na:1\na:1\na:1\n", &two),
            FrameError::TooManyHeaders
        );
    }

    #[test]
    fn bad_content_length() {
        for value in ["abc", "-1", "", "+5", " 5", "5 ", "1.0", "0x10"] {
            let wire = format!("SEND\ncontent-length:{value}\n\n\0");
            assert_eq!(decode_err(wire.as_bytes()), FrameError::BadContentLength, "{value:?}");
        }
    }

    #[test]
    fn missing_nul() {
        assert_eq!(decode_err(b"SEND\ncontent-length:2\n\nabc\0"), FrameError::MissingNul);
        assert_eq!(decode_err(b"SEND\ncontent-length:0\n\nx"), FrameError::MissingNul);
    }

    #[test]
    fn invalid_utf8() {
        assert_eq!(decode_err(b"SEND\na:\xff\n\n\0"), FrameError::InvalidUtf8);
        assert_eq!(decode_err(b"SEND\n\xc3:b\n\n\0"), FrameError::InvalidUtf8);
        assert_eq!(decode_err(b"CONNECT\na:\xff\n\n\0"), FrameError::InvalidUtf8);
        assert_eq!(decode_err(b"SE\xffND\n\n\0"), FrameError::InvalidUtf8);
        // The body is raw bytes and needs no UTF-8.
        assert_eq!(decode_one(b"SEND\n\n\xff\xfe\0").body, b"\xff\xfe");
    }

    #[test]
    fn error_messages_fit_a_stomp_header() {
        let all = [
            FrameError::UnknownCommand,
            FrameError::MalformedHeader,
            FrameError::BadEscape,
            FrameError::FrameTooLarge,
            FrameError::TooManyHeaders,
            FrameError::BadContentLength,
            FrameError::MissingNul,
            FrameError::InvalidUtf8,
        ];
        for e in all {
            let text = e.to_string();
            assert!(!text.is_empty());
            assert!(!text.contains(['\n', '\r', ':', '\\']), "{text:?}");
        }
        assert_eq!(FrameError::FrameTooLarge.to_string(), "frame too large");
    }

    /// A tiny xorshift64 generator: deterministic, dependency-free randomness for tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }

        fn text(&mut self, alphabet: &[char], max_len: usize) -> String {
            (0..self.below(max_len + 1)).map(|_| self.pick(alphabet)).collect()
        }
    }

    fn random_frame(rng: &mut Rng) -> Frame {
        const ANY: &[char] = &['a', 'Z', '0', '-', ' ', ':', '\\', '\n', '\r', 'é', '字', '\t'];
        // CONNECT/CONNECTED cannot carry CR or LF, nor a colon in a name.
        const RAW_NAME: &[char] = &['a', 'Z', '0', '-', ' ', '\\', 'é', '\t'];
        const RAW_VALUE: &[char] = &['a', 'Z', '0', '-', ' ', ':', '\\', 'é', '\t'];
        let command = rng.pick(&Command::ALL);
        let (names, values) = if command.escapes_headers() {
            (ANY, ANY)
        } else {
            (RAW_NAME, RAW_VALUE)
        };
        let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
        let mut frame = Frame::new(command);
        if body.contains(&0) || rng.below(2) == 0 {
            frame = frame.with_header("content-length", body.len().to_string());
        }
        for _ in 0..rng.below(6) {
            let mut name = rng.text(names, 8);
            if name.is_empty() || name == "content-length" {
                name.insert(0, 'h');
            }
            frame = frame.with_header(name, rng.text(values, 12));
        }
        frame.with_body(body)
    }

    #[test]
    fn random_frames_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for _ in 0..500 {
            let frame = random_frame(&mut rng);
            let wire = encoded(&frame);
            assert_eq!(decode_one(&wire), frame, "wire {wire:?}");
            stream.extend_from_slice(&wire);
            expected.push(Decoded::Frame(frame));
            if rng.below(3) == 0 {
                stream.extend_from_slice(rng.pick(&[&b"\n"[..], b"\r\n"]));
                expected.push(Decoded::HeartBeat);
            }
        }
        let (items, used) = decode_all(&stream, &limits()).unwrap();
        assert_eq!(used, stream.len());
        assert_eq!(items, expected);
    }

    /// Stands in for the fuzzer on stable: garbage and damaged frames must never panic.
    #[test]
    fn hostile_input_never_panics() {
        const BYTES: &[u8] = b"\n\n\r\0::\\\\cnrtSENDCONNECTcontent-length09\xff\xc3";
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        let tight = Limits {
            max_frame_bytes: 48,
            max_headers: 3,
        };
        let zero = Limits {
            max_frame_bytes: 0,
            max_headers: 0,
        };
        for round in 0..3000 {
            let input: Vec<u8> = if round % 2 == 0 {
                (0..rng.below(120)).map(|_| rng.pick(BYTES)).collect()
            } else {
                let mut wire = encoded(&random_frame(&mut rng));
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(wire.len());
                    wire[at] = rng.pick(BYTES);
                }
                wire.truncate(rng.below(wire.len() + 1));
                wire
            };
            for l in [limits(), tight, zero] {
                // decode_all asserts progress and bounds; errors are fine, panics are not.
                if let Ok((items, _)) = decode_all(&input, &l) {
                    for item in items {
                        if let Decoded::Frame(frame) = item {
                            assert_eq!(decode_one(&encoded(&frame)), frame);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn partial_garbage_fails_at_once() {
        let limits = Limits::default();
        assert_eq!(
            decode(b"\xde\xad\xbe\xef\xff\x00", &limits),
            Err(FrameError::UnknownCommand)
        );
        assert_eq!(decode(b"SUBS", &limits), Ok(None));
        assert_eq!(decode(b"SEND\r", &limits), Ok(None));
        assert_eq!(decode(b"SENX", &limits), Err(FrameError::UnknownCommand));
    }
}
