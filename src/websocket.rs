//! WebSocket framing (RFC 6455), server side and sans-io: the data path of a STOMP session.
//!
//! tungstenite answers the opening handshake's key and parses and formats frame headers
//! ([`FrameHeader`]); this module keeps what a connection needs between reads — the unfinished
//! tail of a frame, a fragmented message being assembled — and nothing at all while it is idle.
//! Reads go into the reactor's shared scratch buffer and are handed out from there; only a
//! frame cut by the end of a read is copied into the connection. Outgoing frames are appended
//! straight into the connection's output buffer, so that fan-out writes each subscriber's copy
//! of a MESSAGE with no allocation of its own.

use std::io::Cursor;

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Payload bytes of one message, all its fragments together.
    pub max_message: usize,
}

/// What the client sent, one whole message or control frame at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A data message, text (checked UTF-8) or binary, reassembled from its fragments.
    Message(&'a [u8]),
    /// A ping: the pong must carry the same payload.
    Ping(&'a [u8]),
    /// A close frame, with its status code when it has one.
    Close(Option<u16>),
}

/// Whether the caller wants more events from the input at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Hand out nothing more for now: what is left is kept for [`Inbound::resume`].
    Pause,
}

/// Input the connection must be closed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A message (or a frame's announced length) over [`Limits::max_message`].
    TooLarge,
    /// Framing RFC 6455 forbids (unmasked, reserved bits or opcodes, a control frame that is
    /// long or fragmented, a continuation with no message to continue, a close frame of 1 byte).
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TooLarge => f.write_str("message over the size limit"),
            Error::Protocol(what) => f.write_str(what),
            Error::NotUtf8 => f.write_str("text is not UTF-8"),
        }
    }
}

/// A fragmented message being assembled.
#[derive(Debug)]
struct Fragments {
    text: bool,
    payload: Vec<u8>,
}

/// The inbound side of one connection.
#[derive(Debug, Default)]
pub struct Inbound {
    /// Frames read but not handed out: an unfinished frame, or whole frames kept by a pause.
    /// Unallocated when nothing is pending.
    raw: Vec<u8>,
    /// Where what is not handed out starts in `raw`.
    start: usize,
    fragments: Option<Box<Fragments>>,
}

impl Inbound {
    /// An inbound side that starts with bytes read before the upgrade was answered.
    pub fn with_input(mut raw: Vec<u8>) -> Inbound {
        // The HTTP read buffer it comes from may be much larger than what it holds: an idle
        // session must not keep it.
        if raw.is_empty() {
            raw = Vec::new();
        } else {
            raw.shrink_to_fit();
        }
        Inbound {
            raw,
            start: 0,
            fragments: None,
        }
    }

    /// Input held since the last read: a partial frame or frames kept by a pause.
    pub fn pending_bytes(&self) -> usize {
        self.raw.len() - self.start + self.fragments.as_ref().map_or(0, |f| f.payload.len())
    }

    /// Whether frames kept earlier may be handed out by [`Inbound::resume`].
    pub fn has_pending(&self) -> bool {
        self.start < self.raw.len()
    }

    /// Hands out what was kept (after a pause, or bytes that came with the upgrade request).
    /// Returns whether at least one event was handed out.
    pub fn resume(&mut self, limits: &Limits, on_event: impl FnMut(Event<'_>) -> Flow) -> Result<bool, Error> {
        self.feed(&mut [], limits, on_event)
    }

    /// Hands out every whole message and control frame of what was kept plus `input` (unmasked
    /// in place), in order, until `on_event` says [`Flow::Pause`]; keeps the rest. Returns
    /// whether at least one event was handed out. After an error the connection must end.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        mut on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<bool, Error> {
        if self.has_pending() {
            self.raw.extend_from_slice(input);
            let mut handed = false;
            let result = frames(
                &mut self.raw[self.start..],
                &mut self.fragments,
                limits,
                &mut on_event,
                &mut handed,
            );
            match result {
                Ok(used) => {
                    self.start += used;
                    self.compact();
                    Ok(handed)
                }
                Err(e) => {
                    self.clear();
                    Err(e)
                }
            }
        } else {
            let mut handed = false;
            match frames(input, &mut self.fragments, limits, &mut on_event, &mut handed) {
                Ok(used) => {
                    if used < input.len() {
                        self.raw = input[used..].to_vec();
                        self.start = 0;
                    }
                    Ok(handed)
                }
                Err(e) => {
                    self.clear();
                    Err(e)
                }
            }
        }
    }

    fn clear(&mut self) {
        self.raw = Vec::new();
        self.start = 0;
        self.fragments = None;
    }

    /// Frees what was handed out: all of it when nothing is left (the usual case), else the
    /// handed-out head, so that a connection keeps no more than its unfinished frames.
    fn compact(&mut self) {
        if self.start == self.raw.len() {
            self.raw = Vec::new();
            self.start = 0;
        } else if self.start > 0 {
            self.raw.drain(..self.start);
            self.start = 0;
            if self.raw.capacity() > 4 * self.raw.len().max(1024) {
                self.raw.shrink_to_fit();
            }
        }
    }
}

/// Hands out the whole frames at the start of `buf`; returns how many bytes they took.
fn frames(
    buf: &mut [u8],
    fragments: &mut Option<Box<Fragments>>,
    limits: &Limits,
    on_event: &mut impl FnMut(Event<'_>) -> Flow,
    handed: &mut bool,
) -> Result<usize, Error> {
    let mut used = 0;
    loop {
        let mut cursor = Cursor::new(&buf[used..]);
        let (header, length) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(used),
            Err(_) => return Err(Error::Protocol("reserved opcode")),
        };
        let head = cursor.position() as usize;
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Error::Protocol("reserved bits set"));
        }
        let Some(mask) = header.mask else {
            return Err(Error::Protocol("unmasked client frame"));
        };
        let control = matches!(header.opcode, OpCode::Control(_));
        if control && (length > 125 || !header.is_final) {
            return Err(Error::Protocol("control frame over 125 bytes or fragmented"));
        }
        let length = match usize::try_from(length) {
            Ok(n) if n <= limits.max_message => n,
            _ => return Err(Error::TooLarge),
        };
        // A continuation is refused from its header too when the message would go over the
        // limit: a connection never holds more than the limit of one message (and a control
        // frame) however its fragments come.
        if header.opcode == OpCode::Data(Data::Continue)
            && fragments
                .as_ref()
                .is_some_and(|f| f.payload.len() + length > limits.max_message)
        {
            return Err(Error::TooLarge);
        }
        let end = used + head + length;
        if buf.len() < end {
            return Ok(used);
        }
        let payload = &mut buf[used + head..end];
        unmask(payload, mask);
        let flow = match header.opcode {
            OpCode::Data(Data::Continue) => {
                let Some(f) = fragments.as_mut() else {
                    return Err(Error::Protocol("continuation frame without a message"));
                };
                if f.payload.len() + length > limits.max_message {
                    return Err(Error::TooLarge);
                }
                f.payload.extend_from_slice(payload);
                if header.is_final {
                    let whole = std::mem::take(&mut f.payload);
                    let text = f.text;
                    *fragments = None;
                    if text && std::str::from_utf8(&whole).is_err() {
                        return Err(Error::NotUtf8);
                    }
                    *handed = true;
                    on_event(Event::Message(&whole))
                } else {
                    Flow::Continue
                }
            }
            OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                if fragments.is_some() {
                    return Err(Error::Protocol("new message inside a fragmented one"));
                }
                let text = data == Data::Text;
                if header.is_final {
                    if text && std::str::from_utf8(payload).is_err() {
                        return Err(Error::NotUtf8);
                    }
                    *handed = true;
                    on_event(Event::Message(payload))
                } else {
                    *fragments = Some(Box::new(Fragments {
                        text,
                        payload: payload.to_vec(),
                    }));
                    Flow::Continue
                }
            }
            OpCode::Control(Control::Ping) => {
                *handed = true;
                on_event(Event::Ping(payload))
            }
            OpCode::Control(Control::Pong) => Flow::Continue,
            OpCode::Control(Control::Close) => {
                let code = close_code(payload)?;
                *handed = true;
                on_event(Event::Close(code))
            }
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return Err(Error::Protocol("reserved opcode"));
            }
        };
        used = end;
        if flow == Flow::Pause {
            return Ok(used);
        }
    }
}

/// The status code of a close frame's payload (none when empty), its reason checked UTF-8.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(Error::Protocol("close frame of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(Error::Protocol("close code not allowed"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Error::NotUtf8);
            }
            Ok(Some(code))
        }
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let mut words = payload.chunks_exact_mut(4);
    for word in &mut words {
        for (b, m) in word.iter_mut().zip(mask) {
            *b ^= m;
        }
    }
    for (b, m) in words.into_remainder().iter_mut().zip(mask) {
        *b ^= m;
    }
}

/// The bytes of a server frame's header (final, unmasked) for a payload of `length` bytes.
pub fn header_len(length: usize) -> usize {
    match length {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

fn write_header(opcode: OpCode, length: usize, out: &mut Vec<u8>) {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    // Formatting into a Vec cannot fail.
    let _ = header.format(length as u64, out);
}

/// Appends the header of a text frame of `length` payload bytes; the payload must follow.
pub fn text_header(length: usize, out: &mut Vec<u8>) {
    write_header(OpCode::Data(Data::Text), length, out);
}

/// Appends a whole text frame.
pub fn text(payload: &[u8], out: &mut Vec<u8>) {
    text_header(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends a binary frame.
pub fn binary(payload: &[u8], out: &mut Vec<u8>) {
    write_header(OpCode::Data(Data::Binary), payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends the pong answering a ping with this payload.
pub fn pong(payload: &[u8], out: &mut Vec<u8>) {
    write_header(OpCode::Control(Control::Pong), payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends a close frame, with a status code or empty.
pub fn close(code: Option<u16>, out: &mut Vec<u8>) {
    match code {
        Some(code) => {
            write_header(OpCode::Control(Control::Close), 2, out);
            out.extend_from_slice(&code.to_be_bytes());
        }
        None => write_header(OpCode::Control(Control::Close), 0, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_message: 64 * 1024 };

    /// A client frame: masked with a fixed key.
    fn client(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Message(Vec<u8>),
        Ping(Vec<u8>),
        Close(Option<u16>),
    }

    fn feed_all(inbound: &mut Inbound, input: &[u8], got: &mut Vec<Got>) -> Result<bool, Error> {
        let mut input = input.to_vec();
        inbound.feed(&mut input, &LIMITS, |e| {
            got.push(match e {
                Event::Message(p) => Got::Message(p.to_vec()),
                Event::Ping(p) => Got::Ping(p.to_vec()),
                Event::Close(c) => Got::Close(c),
            });
            Flow::Continue
        })
    }

    fn events(input: &[u8]) -> Result<Vec<Got>, Error> {
        let mut got = Vec::new();
        feed_all(&mut Inbound::default(), input, &mut got)?;
        Ok(got)
    }

    #[test]
    fn a_frame_split_at_every_byte_offset_comes_out_once_and_whole() {
        let mut stream = client(1, true, b"SEND\ndestination:/app/chat.send\n\n{}\0");
        stream.extend(client(9, true, b"p"));
        stream.extend(client(2, true, &[0, 1, 2, 255]));
        for cut in 0..=stream.len() {
            let mut inbound = Inbound::default();
            let mut got = Vec::new();
            feed_all(&mut inbound, &stream[..cut], &mut got).expect("first part");
            feed_all(&mut inbound, &stream[cut..], &mut got).expect("second part");
            assert_eq!(
                got,
                vec![
                    Got::Message(b"SEND\ndestination:/app/chat.send\n\n{}\0".to_vec()),
                    Got::Ping(b"p".to_vec()),
                    Got::Message(vec![0, 1, 2, 255]),
                ],
                "cut at {cut}"
            );
            assert_eq!(inbound.pending_bytes(), 0, "cut at {cut}");
            assert_eq!(inbound.raw.capacity(), 0, "nothing kept once handed out (cut at {cut})");
        }
    }

    #[test]
    fn every_byte_in_its_own_read() {
        let stream = [client(1, false, b"he"), client(0, false, b"ll"), client(0, true, b"o")].concat();
        let mut inbound = Inbound::default();
        let mut got = Vec::new();
        for b in &stream {
            feed_all(&mut inbound, std::slice::from_ref(b), &mut got).expect("byte");
        }
        assert_eq!(got, vec![Got::Message(b"hello".to_vec())]);
        assert_eq!(inbound.pending_bytes(), 0);
    }

    #[test]
    fn a_64_kib_message_and_its_limit() {
        let big = vec![b'x'; 64 * 1024];
        assert_eq!(events(&client(1, true, &big)), Ok(vec![Got::Message(big.clone())]));
        let over = vec![b'x'; 64 * 1024 + 1];
        assert_eq!(events(&client(1, true, &over)), Err(Error::TooLarge));
        // Refused from the header alone: nothing of the payload needs to arrive.
        assert_eq!(events(&client(1, true, &over)[..14]), Err(Error::TooLarge));
        // The same bound across fragments.
        let half = vec![b'x'; 32 * 1024 + 1];
        let fragmented = [client(2, false, &half), client(0, true, &half)].concat();
        assert_eq!(events(&fragmented), Err(Error::TooLarge));
        // The continuation that would cross it is refused from its header: the connection does
        // not hold the first fragment plus most of the second.
        let first = client(2, false, &half);
        let second = client(0, true, &half);
        assert_eq!(events(&[&first[..], &second[..14]].concat()), Err(Error::TooLarge));
    }

    #[test]
    fn the_upgrade_requests_read_buffer_is_not_kept() {
        let inbound = Inbound::with_input(Vec::with_capacity(8192));
        assert_eq!(inbound.raw.capacity(), 0);
        let mut early = Vec::with_capacity(8192);
        early.extend_from_slice(&client(1, true, b"CONNECT\n\n\0"));
        let mut inbound = Inbound::with_input(early);
        assert!(inbound.raw.capacity() < 64);
        let mut got = Vec::new();
        assert_eq!(
            inbound.resume(&LIMITS, |e| {
                got.push(format!("{e:?}"));
                Flow::Continue
            }),
            Ok(true)
        );
        assert_eq!(got.len(), 1);
        assert_eq!(inbound.raw.capacity(), 0);
    }

    #[test]
    fn many_small_frames_in_one_read() {
        let stream: Vec<u8> = (0..1000)
            .flat_map(|i| client(1, true, format!("m{i}").as_bytes()))
            .collect();
        let got = events(&stream).expect("frames");
        assert_eq!(got.len(), 1000);
        assert_eq!(got[999], Got::Message(b"m999".to_vec()));
    }

    #[test]
    fn a_pause_keeps_the_rest_in_order_for_resume() {
        let stream: Vec<u8> = (0..5)
            .flat_map(|i| client(1, true, format!("m{i}").as_bytes()))
            .collect();
        let mut inbound = Inbound::default();
        let mut input = stream.clone();
        let mut got = Vec::new();
        let handed = inbound
            .feed(&mut input, &LIMITS, |e| {
                if let Event::Message(p) = e {
                    got.push(p.to_vec());
                }
                Flow::Pause
            })
            .expect("feed");
        assert!(handed);
        assert_eq!(got, vec![b"m0".to_vec()]);
        assert!(inbound.has_pending());
        while inbound.has_pending() {
            inbound
                .resume(&LIMITS, |e| {
                    if let Event::Message(p) = e {
                        got.push(p.to_vec());
                    }
                    Flow::Pause
                })
                .expect("resume");
        }
        let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("m{i}").into_bytes()).collect();
        assert_eq!(got, expected);
        assert_eq!(inbound.raw.capacity(), 0);
    }

    #[test]
    fn control_frames_and_close_codes() {
        assert_eq!(events(&client(9, true, b"abc")), Ok(vec![Got::Ping(b"abc".to_vec())]));
        assert_eq!(events(&client(10, true, b"x")), Ok(vec![]), "a pong is taken silently");
        assert_eq!(events(&client(8, true, b"")), Ok(vec![Got::Close(None)]));
        assert_eq!(
            events(&client(8, true, &[3, 232, b'o', b'k'])),
            Ok(vec![Got::Close(Some(1000))])
        );
        // A ping between the fragments of a message.
        let stream = [client(1, false, b"a"), client(9, true, b""), client(0, true, b"b")].concat();
        assert_eq!(
            events(&stream),
            Ok(vec![Got::Ping(vec![]), Got::Message(b"ab".to_vec())])
        );
    }

    #[test]
    fn framing_rfc_6455_forbids_is_refused() {
        let unmasked = [0x81, 0x01, b'x'];
        assert!(matches!(events(&unmasked), Err(Error::Protocol(_))));
        let mut rsv = client(1, true, b"x");
        rsv[0] |= 0x40;
        assert!(matches!(events(&rsv), Err(Error::Protocol(_))));
        for opcode in [3, 7, 11, 15] {
            assert!(
                matches!(events(&client(opcode, true, b"")), Err(Error::Protocol(_))),
                "{opcode}"
            );
        }
        assert!(matches!(events(&client(9, true, &[0; 126])), Err(Error::Protocol(_))));
        assert!(matches!(events(&client(9, false, b"")), Err(Error::Protocol(_))));
        assert!(matches!(events(&client(0, true, b"x")), Err(Error::Protocol(_))));
        let twice = [client(1, false, b"a"), client(1, true, b"b")].concat();
        assert!(matches!(events(&twice), Err(Error::Protocol(_))));
        assert!(matches!(events(&client(8, true, &[3])), Err(Error::Protocol(_))));
        assert!(matches!(events(&client(8, true, &[0, 0])), Err(Error::Protocol(_))));
        assert_eq!(events(&client(1, true, &[0xff, 0xfe])), Err(Error::NotUtf8));
        let split_bad = [client(1, false, &[0xe2, 0x82]), client(0, true, &[0x28])].concat();
        assert_eq!(events(&split_bad), Err(Error::NotUtf8));
        // UTF-8 cut between fragments is fine.
        let split_good = [client(1, false, &[0xe2, 0x82]), client(0, true, &[0xac])].concat();
        assert_eq!(events(&split_good), Ok(vec![Got::Message("€".as_bytes().to_vec())]));
        assert_eq!(events(&client(8, true, &[3, 232, 0xff])), Err(Error::NotUtf8));
    }

    #[test]
    fn server_frames_are_what_tungstenite_reads() {
        let mut out = Vec::new();
        text(b"MESSAGE\n\n\0", &mut out);
        let big = vec![b'y'; 70_000];
        text(&big, &mut out);
        binary(&[1, 2], &mut out);
        pong(b"p", &mut out);
        close(Some(1000), &mut out);
        close(None, &mut out);
        assert_eq!(header_len(10) + 10 + header_len(70_000) + 70_000, 12 + 10 + 70_000);
        let mut cursor = Cursor::new(&out[..]);
        let mut seen = Vec::new();
        while let Ok(Some((header, length))) = FrameHeader::parse(&mut cursor) {
            assert!(header.is_final && header.mask.is_none());
            seen.push((header.opcode, length));
            cursor.set_position(cursor.position() + length);
        }
        assert_eq!(
            seen,
            vec![
                (OpCode::Data(Data::Text), 10),
                (OpCode::Data(Data::Text), 70_000),
                (OpCode::Data(Data::Binary), 2),
                (OpCode::Control(Control::Pong), 1),
                (OpCode::Control(Control::Close), 2),
                (OpCode::Control(Control::Close), 0),
            ]
        );
        assert_eq!(cursor.position() as usize, out.len());
        for n in [0, 125, 126, 0xFFFF, 0x10000] {
            let mut h = Vec::new();
            text_header(n, &mut h);
            assert_eq!(h.len(), header_len(n), "{n}");
        }
    }
}
