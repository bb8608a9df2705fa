//! Feeds arbitrary bytes to the HTTP/1.1 request parser, pipelined requests included.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run http_request` from the repository root.

#![no_main]

use herald::http::request::{parse, percent_decode, HttpLimits, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limits, so that the header, header-count and body bounds are
    // reached by small inputs too.
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = limits_for(selector);
    let mut pos = 0;
    while let Ok(Some((req, used))) = parse(&input[pos..], &limits) {
        let buf = &input[pos..];
        assert!(used > 0, "parse returned a request without consuming");
        assert!(used <= buf.len(), "parse consumed past the input");
        check_request(&req, &buf[..used], &limits);
        check_prefixes(&buf[..used], req.body.len(), &limits);
        pos += used;
    }
});

fn limits_for(selector: u8) -> HttpLimits {
    match selector % 4 {
        0 => HttpLimits::default(),
        1 => HttpLimits {
            max_header_bytes: 64,
            max_headers: 2,
            max_body_bytes: 8,
        },
        2 => HttpLimits {
            max_header_bytes: usize::from(selector) * 2,
            max_headers: usize::from(selector % 8),
            max_body_bytes: usize::from(selector % 32),
        },
        // `HttpLimits` takes any value: the parser must not do arithmetic that overflows on them.
        _ => HttpLimits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
            max_body_bytes: usize::MAX,
        },
    }
}

/// What must hold for every request the parser accepts; `wire` is exactly the bytes it used.
fn check_request(req: &Request, wire: &[u8], limits: &HttpLimits) {
    assert!(
        req.body.len() <= limits.max_body_bytes,
        "body of {} bytes over the limit of {}",
        req.body.len(),
        limits.max_body_bytes
    );
    assert!(wire.ends_with(&req.body), "the body is not the tail of the request");
    assert!(req.path.starts_with('/'), "path {:?} does not start with /", req.path);
    assert!(!req.path.contains('?'), "the query leaked into the path {:?}", req.path);
    for text in [&req.path, &req.query] {
        if percent_decode(text).is_some() {
            assert!(escapes_are_whole(text), "{text:?} has a broken %-escape yet decodes");
        }
    }
    let _ = req.query_param("access_token");
    let head = &wire[..wire.len() - req.body.len()];
    assert!(head.len() <= limits.max_header_bytes, "head over max_header_bytes");
    assert_eq!(
        req.body.len(),
        framed_body_len(head),
        "the body length is not the one the head announces"
    );
}

/// The body length an RFC 9112 reader would take from a complete, accepted head: the value of
/// `Content-Length` (1*DIGIT after trimming spaces and tabs; repeats must agree), else 0. A
/// request whose framing another reader would see differently must not be accepted at all:
/// a proxy in front of Herald and Herald itself would disagree on where the next request starts.
fn framed_body_len(head: &[u8]) -> usize {
    let mut storage = [httparse::EMPTY_HEADER; 256];
    let mut raw = httparse::Request::new(&mut storage);
    match raw.parse(head) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len(), "head re-parsed to another length"),
        other => panic!("accepted head does not re-parse: {other:?}"),
    }
    let mut length = None;
    for h in raw.headers.iter() {
        assert!(
            !h.name.eq_ignore_ascii_case("transfer-encoding"),
            "a request with Transfer-Encoding was accepted"
        );
        if !h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        let value = trim_ows(h.value);
        assert!(
            !value.is_empty() && value.iter().all(u8::is_ascii_digit),
            "accepted Content-Length {:?} is not 1*DIGIT",
            String::from_utf8_lossy(h.value)
        );
        let n: usize = std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("an accepted Content-Length fits in usize");
        assert!(
            length.is_none_or(|prev| prev == n),
            "disagreeing Content-Length repeats accepted"
        );
        length = Some(n);
    }
    length.unwrap_or(0)
}

/// Whether every `%` is followed by two hex digits (RFC 3986 pct-encoded).
fn escapes_are_whole(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Every shorter cut of a complete request must read as "incomplete": a request split across
/// reads at an unlucky point must neither be refused nor mistaken for another request. Checks
/// every cut of short requests and a spread of cuts (the head/body boundary included) of long ones.
fn check_prefixes(wire: &[u8], body_len: usize, limits: &HttpLimits) {
    let head_len = wire.len() - body_len;
    let step = (wire.len() / 128).max(1);
    let boundary = head_len.saturating_sub(2)..(head_len + 2).min(wire.len());
    for cut in (0..wire.len()).step_by(step).chain(boundary).chain([wire.len() - 1]) {
        match parse(&wire[..cut], limits) {
            Ok(None) => {}
            other => panic!(
                "a cut at {cut} of a complete {}-byte request gave {other:?}",
                wire.len()
            ),
        }
    }
}
