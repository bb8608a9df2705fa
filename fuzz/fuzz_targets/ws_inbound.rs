//! Feeds client bytes to the sans-io WebSocket framing (`herald::websocket::Inbound`) in pieces
//! the fuzzer chooses, as the reactor's reads would deliver them, and checks properties, not
//! only the absence of panics:
//!
//! - reading piece by piece hands out the same events, in the same order, with the same outcome
//!   (the same error, or none, and the same unfinished tail held) as reading the whole stream at
//!   once, and as a reference model of RFC 6455 written here, independently of the module;
//! - after an error nothing is pending;
//! - between reads the connection holds no more than one frame's header (14 bytes) plus the
//!   message limit (the fragments assembled so far and the unfinished continuation together)
//!   plus 125 bytes (an unfinished control frame between fragments);
//! - with `Flow::Pause` after every event (each call then hands out at most one), calling
//!   `resume` until it hands out nothing gives the same events as `Flow::Continue`, whether the
//!   next read waits for that or comes while frames are still kept; so does `with_input`;
//! - `feed` and `resume` return whether they handed out an event;
//! - every message of a text opcode is UTF-8;
//! - round trip: with the top bit of the first byte set, the rest of the input is a recipe for a
//!   few client messages (text or binary, masked, split into fragments with pings and pongs in
//!   between, some over the limit or not UTF-8, optionally ending with a close frame); the
//!   frames built from it must decode to exactly those messages, or fail where they must. The
//!   server-side encoders (`text`, `binary`, `pong`, `close`, `header_len`) are checked against
//!   the decoder on the way.
//!
//! Input: the first byte picks the limit (bits 0-1, bits 2-5 for a tiny one), round-trip mode
//! (bit 7) and, in that mode, a closing close frame (bit 6); then a `herald_fuzz::Chunks` plan;
//! then the stream (or the recipe).
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run ws_inbound` from the repository root.

#![no_main]

use herald::websocket::{self, Error, Event, Flow, Inbound, Limits};
use herald_fuzz::Chunks;
use libfuzzer_sys::fuzz_target;

/// The longest frame header: 2 bytes, an 8-byte length and a 4-byte mask.
const MAX_HEADER: usize = 14;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(chunks) = Chunks::new(rest) else {
        return;
    };
    let limits = limits_for(selector);

    if selector & 0x80 == 0 {
        // Arbitrary bytes from a client.
        let model = model(chunks.stream(), &limits);
        check_stream(chunks, &limits, &model);
    } else {
        // A stream built from a recipe, cut by the same plan.
        let plan_len = 1 + usize::from(rest[0] % 8) + 1;
        let built = build(chunks.stream(), &limits, selector & 0x40 != 0);
        let model = model(&built.stream, &limits);
        assert_eq!(
            model.events(),
            built.events,
            "the reference model disagrees with the recipe"
        );
        assert_eq!(
            model.result, built.result,
            "the reference model disagrees with the recipe"
        );
        let mut input = rest[..plan_len].to_vec();
        input.extend_from_slice(&built.stream);
        let chunks = Chunks::new(&input).expect("the plan is whole");
        let whole = check_stream(chunks, &limits, &model);
        // (f) The messages sent are the messages received.
        assert_eq!(whole.events, built.events, "the round trip changed the messages");
        if built.result.is_ok() {
            assert_eq!(whole.pending, 0, "whole frames only, yet something is held");
            assert!(!whole.has_pending, "whole frames only, yet frames are kept");
        }
    }
});

fn limits_for(selector: u8) -> Limits {
    let max_message = match selector & 0b11 {
        // The server's default (chat.max_frame_bytes).
        0 => 64 * 1024,
        // A control frame's longest payload.
        1 => 125,
        // The least the configuration allows.
        2 => 1024,
        // Tiny limits, so that the size checks are reached by small inputs: 0 to 15 bytes.
        _ => usize::from((selector >> 2) & 0x0f),
    };
    Limits { max_message }
}

/// An event, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Message(Vec<u8>),
    Ping(Vec<u8>),
    Close(Option<u16>),
}

fn own(event: Event<'_>) -> Got {
    match event {
        Event::Message(p) => Got::Message(p.to_vec()),
        Event::Ping(p) => Got::Ping(p.to_vec()),
        Event::Close(c) => Got::Close(c),
    }
}

/// The kind of an error, without the protocol error's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TooLarge,
    Protocol,
    NotUtf8,
}

fn kind(result: &Result<(), Error>) -> Result<(), Kind> {
    match result {
        Ok(()) => Ok(()),
        Err(Error::TooLarge) => Err(Kind::TooLarge),
        Err(Error::Protocol(_)) => Err(Kind::Protocol),
        Err(Error::NotUtf8) => Err(Kind::NotUtf8),
    }
}

/// What one way of reading the stream ended with.
#[derive(Debug)]
struct Run {
    events: Vec<Got>,
    result: Result<(), Error>,
    pending: usize,
    has_pending: bool,
}

/// What a connection may hold between reads once every whole frame is handed out: the
/// fragments of a message assembled so far and the unfinished frame, together at most one
/// frame header and the limit (a continuation's header is checked against what is assembled),
/// or the fragments and an unfinished control frame (at most 125 bytes of payload).
fn pending_bound(limits: &Limits) -> usize {
    MAX_HEADER.saturating_add(limits.max_message).saturating_add(125)
}

fn check_bound(inbound: &Inbound, limits: &Limits, what: &str) {
    let held = inbound.pending_bytes();
    assert!(
        held <= pending_bound(limits),
        "{what}: {held} bytes pending with a message limit of {} (bound {})",
        limits.max_message,
        pending_bound(limits)
    );
}

/// One call of `feed` (with `input`) or `resume` (without), collecting the events; checks what
/// holds after any call.
fn call(
    inbound: &mut Inbound,
    input: Option<&[u8]>,
    limits: &Limits,
    flow: Flow,
    events: &mut Vec<Got>,
) -> Result<bool, Error> {
    let before = events.len();
    let on_event = |e: Event<'_>| {
        events.push(own(e));
        flow
    };
    let result = match input {
        Some(input) => inbound.feed(&mut input.to_vec(), limits, on_event),
        None => inbound.resume(limits, on_event),
    };
    let handed = events.len() - before;
    if flow == Flow::Pause {
        assert!(
            handed <= 1,
            "{handed} events handed out by one call, each answered with Pause"
        );
    }
    match result {
        Ok(said) => assert_eq!(said, handed > 0, "returned {said} after handing out {handed} events"),
        Err(e) => {
            // (b) The connection ends: nothing may be kept for it.
            assert_eq!(inbound.pending_bytes(), 0, "{e:?}, yet bytes are pending");
            assert!(!inbound.has_pending(), "{e:?}, yet frames are kept");
        }
    }
    result
}

/// Calls `resume` (Pause after every event) until it hands out nothing; every whole frame is
/// then handed out and what remains must be within the bound.
fn drain(inbound: &mut Inbound, limits: &Limits, events: &mut Vec<Got>, most: usize) -> Result<(), Error> {
    for _ in 0..=most {
        if !call(inbound, None, limits, Flow::Pause, events)? {
            check_bound(inbound, limits, "after resuming until nothing is handed out");
            return Ok(());
        }
    }
    panic!("resume handed out more events than the stream holds frames");
}

fn finish(inbound: &Inbound, events: Vec<Got>, result: Result<(), Error>) -> Run {
    Run {
        events,
        result,
        pending: inbound.pending_bytes(),
        has_pending: inbound.has_pending(),
    }
}

fn assert_same(run: &Run, whole: &Run, how: &str) {
    assert_eq!(
        run.events.len(),
        whole.events.len(),
        "{how}: a different number of events"
    );
    for (i, (a, b)) in run.events.iter().zip(&whole.events).enumerate() {
        assert_eq!(a, b, "{how}: event {i} differs");
    }
    assert_eq!(run.result, whole.result, "{how}: a different outcome");
    assert_eq!(run.pending, whole.pending, "{how}: a different number of bytes pending");
    assert_eq!(run.has_pending, whole.has_pending, "{how}: kept frames differ");
}

/// Reads the stream whole and in pieces, with Continue and with Pause; checks (a) to (e)
/// against each other and the reference model; returns the whole read.
fn check_stream(chunks: Chunks<'_>, limits: &Limits, model: &Model) -> Run {
    let stream = chunks.stream();
    let pieces = coalesce(stream, chunks);
    // Each call with Pause hands out at most one event, and consumes at least a frame's two bytes.
    let most = stream.len() / 2 + 1;

    // The whole stream in one read.
    let mut inbound = Inbound::default();
    let mut events = Vec::new();
    let result = call(&mut inbound, Some(stream), limits, Flow::Continue, &mut events).map(|_| ());
    if result.is_ok() {
        check_bound(&inbound, limits, "the whole stream");
    }
    let whole = finish(&inbound, events, result);

    // Against the reference model. (e) Text messages are UTF-8.
    assert_eq!(whole.events, model.events(), "events differ from the reference model");
    assert_eq!(
        kind(&whole.result),
        model.result,
        "the outcome differs from the reference model"
    );
    if whole.result.is_ok() {
        assert_eq!(
            whole.pending, model.pending,
            "pending bytes differ from the reference model"
        );
        assert_eq!(
            whole.has_pending,
            model.tail > 0,
            "kept frames differ from the reference model"
        );
    }
    for (got, (_, text)) in whole.events.iter().zip(&model.events) {
        if let (Got::Message(payload), true) = (got, text) {
            assert!(std::str::from_utf8(payload).is_ok(), "a text message that is not UTF-8");
        }
    }

    // (a) Piece by piece, each handed out as far as it goes.
    let mut inbound = Inbound::default();
    let mut events = Vec::new();
    let mut result = Ok(());
    for &piece in &pieces {
        if let Err(e) = call(&mut inbound, Some(piece), limits, Flow::Continue, &mut events) {
            result = Err(e);
            break;
        }
        // (c) What is held between reads.
        check_bound(&inbound, limits, "between reads");
    }
    assert_same(&finish(&inbound, events, result), &whole, "piece by piece");

    // (d) Piece by piece, pausing after every event; the next read only once `resume` hands
    // out nothing more (what the reactor does).
    let mut inbound = Inbound::default();
    let mut events = Vec::new();
    let mut result = Ok(());
    for &piece in &pieces {
        let fed = call(&mut inbound, Some(piece), limits, Flow::Pause, &mut events);
        if let Err(e) = fed.and_then(|_| drain(&mut inbound, limits, &mut events, most)) {
            result = Err(e);
            break;
        }
    }
    assert_same(
        &finish(&inbound, events, result),
        &whole,
        "pausing, resuming before each read",
    );

    // (d) Pausing after every event, and reading on while frames are still kept.
    let mut inbound = Inbound::default();
    let mut events = Vec::new();
    let mut result = Ok(());
    for &piece in &pieces {
        if let Err(e) = call(&mut inbound, Some(piece), limits, Flow::Pause, &mut events) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = drain(&mut inbound, limits, &mut events, most);
    }
    assert_same(
        &finish(&inbound, events, result),
        &whole,
        "pausing, reading while frames are kept",
    );

    // Bytes that came with the upgrade request, handed out by `resume`.
    let mut inbound = Inbound::with_input(stream.to_vec());
    let mut events = Vec::new();
    let result = call(&mut inbound, None, limits, Flow::Continue, &mut events).map(|_| ());
    assert_same(&finish(&inbound, events, result), &whole, "with_input then resume");

    whole
}

/// The plan's pieces, merged where the stream is long (round trips build frames over 64 KiB) so
/// that no run makes more than about 512 reads: every cut is still one the fuzzer chose.
fn coalesce<'a>(stream: &'a [u8], chunks: Chunks<'a>) -> Vec<&'a [u8]> {
    let least = stream.len() / 512;
    let mut pieces = Vec::new();
    let (mut start, mut end) = (0, 0);
    for piece in chunks {
        end += piece.len();
        if end - start >= least {
            pieces.push(&stream[start..end]);
            start = end;
        }
    }
    if start < end {
        pieces.push(&stream[start..end]);
    }
    pieces
}

/// RFC 6455 framing as the module documents it, written without it: what reading `stream`
/// whole hands out, and whether (and how) it fails.
struct Model {
    /// Each event, and whether it is a message of a text opcode.
    events: Vec<(Got, bool)>,
    result: Result<(), Kind>,
    /// Bytes after the last whole frame.
    tail: usize,
    /// The tail plus the fragments assembled.
    pending: usize,
}

impl Model {
    fn events(&self) -> Vec<Got> {
        self.events.iter().map(|(g, _)| g.clone()).collect()
    }
}

/// The close codes an endpoint may send (tungstenite's `CloseCode::is_allowed`).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

fn model(stream: &[u8], limits: &Limits) -> Model {
    let mut events = Vec::new();
    let mut fragments: Option<(bool, Vec<u8>)> = None;
    let mut pos = 0;
    let fail = |events, kind| Model {
        events,
        result: Err(kind),
        tail: 0,
        pending: 0,
    };
    loop {
        let b = &stream[pos..];
        if b.len() < 2 {
            break;
        }
        let fin = b[0] & 0x80 != 0;
        let rsv = b[0] & 0x70 != 0;
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (length, mut head) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
            126 | 127 => break,
            n => (u64::from(n), 2),
        };
        if masked {
            if b.len() < head + 4 {
                break;
            }
            head += 4;
        }
        // The header is whole: everything it says is checked before any payload arrives.
        let control = opcode & 0x08 != 0;
        if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) || rsv || !masked || (control && (length > 125 || !fin)) {
            return fail(events, Kind::Protocol);
        }
        if length > limits.max_message as u64 {
            return fail(events, Kind::TooLarge);
        }
        let length = length as usize;
        // So is a continuation that would take the message over the limit.
        if opcode == 0 && fragments.as_ref().is_some_and(|(_, f)| f.len() + length > limits.max_message) {
            return fail(events, Kind::TooLarge);
        }
        if b.len() - head < length {
            break;
        }
        let mask = &b[head - 4..head];
        let payload: Vec<u8> = b[head..head + length]
            .iter()
            .enumerate()
            .map(|(i, x)| x ^ mask[i & 3])
            .collect();
        pos += head + length;
        match opcode {
            0 => {
                let Some((text, assembled)) = fragments.as_mut() else {
                    return fail(events, Kind::Protocol);
                };
                if assembled.len() + length > limits.max_message {
                    return fail(events, Kind::TooLarge);
                }
                assembled.extend_from_slice(&payload);
                if fin {
                    let (text, whole) = (*text, std::mem::take(assembled));
                    fragments = None;
                    if text && std::str::from_utf8(&whole).is_err() {
                        return fail(events, Kind::NotUtf8);
                    }
                    events.push((Got::Message(whole), text));
                }
            }
            1 | 2 => {
                if fragments.is_some() {
                    return fail(events, Kind::Protocol);
                }
                let text = opcode == 1;
                if fin {
                    if text && std::str::from_utf8(&payload).is_err() {
                        return fail(events, Kind::NotUtf8);
                    }
                    events.push((Got::Message(payload), text));
                } else {
                    fragments = Some((text, payload));
                }
            }
            8 => {
                let code = match payload.as_slice() {
                    [] => None,
                    [_] => return fail(events, Kind::Protocol),
                    [hi, lo, reason @ ..] => {
                        let code = u16::from_be_bytes([*hi, *lo]);
                        if !close_code_allowed(code) {
                            return fail(events, Kind::Protocol);
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return fail(events, Kind::NotUtf8);
                        }
                        Some(code)
                    }
                };
                events.push((Got::Close(code), false));
            }
            9 => events.push((Got::Ping(payload), false)),
            _ => {} // a pong
        }
    }
    let tail = stream.len() - pos;
    Model {
        events,
        result: Ok(()),
        tail,
        pending: tail + fragments.map_or(0, |(_, f)| f.len()),
    }
}

/// Reads a recipe a byte at a time; zeros once it is used up.
struct Recipe<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Recipe<'_> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.pos.min(self.bytes.len());
        let end = start.saturating_add(n).min(self.bytes.len());
        self.pos = end;
        &self.bytes[start..end]
    }
}

/// A client frame (masked), its length in the fewest bytes.
fn client_frame(opcode: u8, fin: bool, mask: [u8; 4], payload: &[u8], out: &mut Vec<u8>) {
    out.push(opcode | if fin { 0x80 } else { 0 });
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
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// What a recipe makes: the client's frames, and what reading them must give.
struct Built {
    stream: Vec<u8>,
    events: Vec<Got>,
    result: Result<(), Kind>,
}

/// Why building stops: the frames so far must fail with this.
struct Fails(Kind);

/// A few messages from the recipe. Per message: a byte (bit 0 text, bits 1-2 fragments - 1,
/// bit 3 a ping and bit 4 a pong between fragments, bits 5-6 the length's size class, bit 7 break
/// it: not UTF-8 if text, one byte over the limit if binary), the length, up to 32 bytes repeated
/// as the payload, the cut points, the mask. Then, when asked, a close frame.
fn build(recipe: &[u8], limits: &Limits, close: bool) -> Built {
    let mut r = Recipe { bytes: recipe, pos: 0 };
    let mut built = Built {
        stream: Vec::new(),
        events: Vec::new(),
        result: Ok(()),
    };
    // The close frame's code and reason come first, so that messages use up the rest.
    let close_choice = if close { Some((r.byte(), r.byte())) } else { None };
    if let Err(Fails(kind)) = build_messages(&mut r, limits, &mut built) {
        built.result = Err(kind);
        return built;
    }
    if let Some((which, reason_len)) = close_choice {
        const CODES: [u16; 15] = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999,
        ];
        let code = CODES.get(usize::from(which % 16)).copied();
        let mut payload = Vec::new();
        if let Some(code) = code {
            payload.extend_from_slice(&code.to_be_bytes());
            payload.extend_from_slice("é".repeat(usize::from(reason_len % 32)).as_bytes());
        }
        client_frame(0x8, true, [which, reason_len, 0x5a, 0xa5], &payload, &mut built.stream);
        if payload.len() > limits.max_message {
            built.result = Err(Kind::TooLarge);
        } else {
            built.events.push(Got::Close(code));
        }
        // The server's own close frame reads back as the same close.
        let mut server = Vec::new();
        websocket::close(code, &mut server);
        assert_eq!(server[0], 0x88, "a close frame's first byte");
        if server.len() - 2 <= limits.max_message {
            assert_eq!(
                read_server_frame(&server, limits),
                Ok(vec![Got::Close(code)]),
                "close()"
            );
        }
    }
    built
}

fn build_messages(r: &mut Recipe<'_>, limits: &Limits, built: &mut Built) -> Result<(), Fails> {
    let limit = limits.max_message;
    // One message over 4 KiB at most (one over 64 KiB takes a millisecond to check), the rest
    // are clamped to that.
    let mut big_done = false;
    let mut messages = 0;
    while !r.done() && messages < 8 {
        messages += 1;
        let h = r.byte();
        let text = h & 1 != 0;
        let count = usize::from((h >> 1) & 3) + 1;
        let ping = h & 0x08 != 0;
        let pong = h & 0x10 != 0;
        let broken = h & 0x80 != 0;
        let length = match (h >> 5) & 3 {
            0 => usize::from(r.byte()),
            1 => usize::from(r.u16()),
            // Over 64 KiB: an 8-byte length (clamped to the limit below).
            2 => 65_536 + usize::from(r.u16()),
            _ => limit,
        };
        let mut length = if broken && !text { limit + 1 } else { length.min(limit) };
        if big_done {
            length = length.min(4096);
        }
        big_done |= length > 4096;
        let seed = r.take(length.min(32)).to_vec();
        let seed = if seed.is_empty() { vec![h] } else { seed };
        let mut payload: Vec<u8> = seed.iter().cycle().take(length).copied().collect();
        if text {
            let s = String::from_utf8_lossy(&payload).into_owned();
            let mut cut = length.min(s.len());
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            payload = s.as_bytes()[..cut].to_vec();
            if broken {
                let at = usize::from(r.u16()) % (payload.len() + 1);
                if at < payload.len() {
                    payload[at] = 0xff;
                } else {
                    payload.push(0xff);
                }
            }
        }
        let mut cuts: Vec<usize> = (1..count).map(|_| usize::from(r.u16()) % (payload.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.insert(0, 0);
        cuts.push(payload.len());
        let mask = [r.byte(), r.byte(), r.byte(), r.byte()];

        for j in 0..count {
            let piece = &payload[cuts[j]..cuts[j + 1]];
            let fin = j + 1 == count;
            let opcode = match (j, text) {
                (0, true) => 1,
                (0, false) => 2,
                _ => 0,
            };
            let frame_mask = mask.map(|m| m ^ (j as u8).wrapping_mul(0x3b));
            client_frame(opcode, fin, frame_mask, piece, &mut built.stream);
            // Every fragment's length is checked against what is left of the limit.
            if cuts[j + 1] > limit {
                return Err(Fails(Kind::TooLarge));
            }
            if fin {
                if text && std::str::from_utf8(&payload).is_err() {
                    return Err(Fails(Kind::NotUtf8));
                }
                built.events.push(Got::Message(payload.clone()));
                check_encoder(&payload, text, limits);
                break;
            }
            // Control frames may come between the fragments of a message.
            if ping {
                let n = usize::from(r.byte() % 126);
                let body = r.take(n).to_vec();
                client_frame(0x9, true, mask, &body, &mut built.stream);
                if body.len() > limit {
                    return Err(Fails(Kind::TooLarge));
                }
                let mut server = Vec::new();
                websocket::pong(&body, &mut server);
                assert_eq!(
                    server.len(),
                    websocket::header_len(body.len()) + body.len(),
                    "pong length"
                );
                assert_eq!(server[0], 0x8a, "a pong's first byte");
                built.events.push(Got::Ping(body));
            }
            if pong {
                let n = usize::from(r.byte() % 126);
                let body = r.take(n).to_vec();
                client_frame(0xa, true, mask, &body, &mut built.stream);
                if body.len() > limit {
                    return Err(Fails(Kind::TooLarge));
                }
            }
        }
    }
    Ok(())
}

/// A message as the server would send it, masked as a client would, reads back the same; its
/// header is as long as `header_len` says.
fn check_encoder(payload: &[u8], text: bool, limits: &Limits) {
    let mut server = Vec::new();
    if text {
        websocket::text(payload, &mut server);
        let mut split = Vec::new();
        websocket::text_header(payload.len(), &mut split);
        split.extend_from_slice(payload);
        assert_eq!(split, server, "text_header plus the payload is not text()");
    } else {
        websocket::binary(payload, &mut server);
    }
    assert_eq!(server[0], if text { 0x81 } else { 0x82 }, "a message's first byte");
    assert_eq!(
        server.len(),
        websocket::header_len(payload.len()) + payload.len(),
        "header_len"
    );
    assert_eq!(
        read_server_frame(&server, limits),
        Ok(vec![Got::Message(payload.to_vec())]),
        "a server frame, masked, does not read back"
    );
}

/// Masks one unmasked (server) frame and reads it with a fresh `Inbound`.
fn read_server_frame(frame: &[u8], limits: &Limits) -> Result<Vec<Got>, Error> {
    let head = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    assert_eq!(frame[1] & 0x80, 0, "a server frame must not be masked");
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut client = frame[..head].to_vec();
    client[1] |= 0x80;
    client.extend_from_slice(&mask);
    client.extend(frame[head..].iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    let mut events = Vec::new();
    let mut inbound = Inbound::default();
    inbound.feed(&mut client, limits, |e| {
        events.push(own(e));
        Flow::Continue
    })?;
    assert_eq!(inbound.pending_bytes(), 0, "a whole frame left something pending");
    Ok(events)
}
