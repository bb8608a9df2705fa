//! Sans-io HTTP/1.1 request parsing on top of `httparse`: bytes in, a [`Request`] (or a reason to
//! refuse it) out. Only the headers Herald acts on are kept, so parsing allocates little.

/// Bounds applied while parsing (SPEC §3, `[server]` config).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Request methods Herald routes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    /// Any other token: answered with 405 on known paths.
    Other,
}

impl Method {
    fn from_str(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// A parsed request: the request line, the headers Herald uses, and the body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: Option<Method>,
    /// The path without the query string, still percent-encoded.
    pub path: String,
    /// The raw query string without `?` (empty when absent).
    pub query: String,
    /// HTTP/1.0 closes by default, 1.1 keeps alive by default.
    pub keep_alive: bool,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub origin: Option<String>,
    pub last_event_id: Option<String>,
    /// Every `X-Forwarded-For` value, joined with `, ` in order (see `client_addr`).
    pub forwarded_for: Option<String>,
    /// `Connection: upgrade` together with `Upgrade: websocket`.
    pub wants_websocket: bool,
    pub sec_websocket_key: Option<String>,
    pub sec_websocket_version: Option<String>,
    pub sec_websocket_protocol: Option<String>,
    pub access_control_request_method: Option<String>,
    pub access_control_request_headers: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    /// The method; `Other` when unknown.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Other)
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_param(&self.query, name)
    }
}

/// Why a request cannot be served; each maps to one status and error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Not HTTP at all, or a malformed request line/header: 400, then close.
    #[error("malformed request")]
    Malformed,
    /// Header block over `max_header_bytes` or more than `max_headers` headers: 431, then close.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// Body over `max_body_bytes`: 413, then close (the body is not read).
    #[error("request body too large")]
    BodyTooLarge,
    /// `Transfer-Encoding` on a request: 411 (only Content-Length bodies are accepted), then close.
    #[error("length required")]
    LengthRequired,
    /// An HTTP version other than 1.0/1.1: 505, then close.
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
}

/// What a request line that httparse refused for its version is: a version we do not speak
/// (505), a malformed line (400), or not known yet (`None`: the line is unfinished and may still
/// end in `HTTP/<digit>.<digit>`). Decided only when more bytes cannot change the answer, so a
/// request line split across reads gets the answer it gets when read in one piece.
fn version_refusal(buf: &[u8]) -> Option<RequestError> {
    // httparse skips empty lines before the request line and reports a version error only after
    // `method SP target SP`: the version is everything after the second space.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(buf.len());
    let rest = &buf[start..];
    let line_end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &rest[..line_end.unwrap_or(rest.len())];
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or_default();
    let number = version.strip_prefix(b"HTTP/");
    if line_end.is_none() {
        let may_become_version = match number {
            None => b"HTTP/".starts_with(version),
            Some([] | [b'0'..=b'9'] | [b'0'..=b'9', b'.'] | [b'0'..=b'9', b'.', b'0'..=b'9']) => true,
            Some(_) => false,
        };
        if may_become_version {
            return None;
        }
    }
    match number {
        // The versions httparse speaks: the error is elsewhere in the line (a space in the path).
        Some(b"1.0" | b"1.1") => Some(RequestError::Malformed),
        Some([b'0'..=b'9'] | [b'0'..=b'9', b'.', b'0'..=b'9']) => Some(RequestError::UnsupportedVersion),
        _ => Some(RequestError::Malformed),
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6) between optional spaces and tabs. `str::parse`
/// also takes a leading `+` and `str::trim` strips non-ASCII spaces: a length another reader
/// (a proxy in front of Herald) would frame differently must be refused, not guessed at.
fn parse_content_length(value: &[u8]) -> Result<usize, RequestError> {
    let mut digits = value;
    while let [b' ' | b'\t', rest @ ..] = digits {
        digits = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = digits {
        digits = rest;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(RequestError::Malformed);
    }
    digits
        .iter()
        .try_fold(0usize, |n, &d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
        .ok_or(RequestError::Malformed)
}

/// Parses one request from the front of `buf`. `Ok(None)`: incomplete, wait for more bytes.
/// `Ok(Some((request, consumed)))`: a whole request including its body.
pub fn parse(buf: &[u8], limits: &HttpLimits) -> Result<Option<(Request, usize)>, RequestError> {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let header_slots = limits.max_headers.min(storage.len());
    let mut raw = httparse::Request::new(&mut storage[..header_slots]);
    let head_len = match raw.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header_bytes {
                return Err(RequestError::HeadersTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadersTooLarge),
        // httparse knows only HTTP/1.x; a well-formed request line of another version is a 505.
        Err(httparse::Error::Version) => {
            return match version_refusal(buf) {
                Some(e) => Err(e),
                None if buf.len() > limits.max_header_bytes => Err(RequestError::HeadersTooLarge),
                None => Ok(None),
            };
        }
        Err(_) => return Err(RequestError::Malformed),
    };
    if head_len > limits.max_header_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    let version = raw.version.ok_or(RequestError::Malformed)?;
    if version > 1 {
        return Err(RequestError::UnsupportedVersion);
    }
    let target = raw.path.ok_or(RequestError::Malformed)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    if !path.starts_with('/') {
        return Err(RequestError::Malformed);
    }
    let mut req = Request {
        method: raw.method.map(Method::from_str),
        path: path.to_string(),
        query: query.to_string(),
        keep_alive: version == 1,
        ..Request::default()
    };
    let mut content_length: Option<usize> = None;
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    for h in raw.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(RequestError::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::LengthRequired);
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value().to_ascii_lowercase();
            for token in v.split(',').map(str::trim) {
                match token {
                    "close" => req.keep_alive = false,
                    "keep-alive" => req.keep_alive = true,
                    "upgrade" => connection_upgrade = true,
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket = value().eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("authorization") {
            req.authorization = Some(value());
        } else if name.eq_ignore_ascii_case("content-type") {
            req.content_type = Some(value());
        } else if name.eq_ignore_ascii_case("origin") {
            req.origin = Some(value());
        } else if name.eq_ignore_ascii_case("last-event-id") {
            req.last_event_id = Some(value());
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            let v = value();
            match &mut req.forwarded_for {
                Some(all) => {
                    all.push_str(", ");
                    all.push_str(&v);
                }
                None => req.forwarded_for = Some(v),
            }
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            req.sec_websocket_key = Some(value());
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            req.sec_websocket_version = Some(value());
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            req.sec_websocket_protocol = Some(value());
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            req.access_control_request_method = Some(value());
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            req.access_control_request_headers = Some(value());
        }
    }
    req.wants_websocket = upgrade_websocket && connection_upgrade;
    let body_len = content_length.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return Err(RequestError::BodyTooLarge);
    }
    // `max_body_bytes` may be as large as `usize::MAX`.
    let total = head_len.checked_add(body_len).ok_or(RequestError::BodyTooLarge)?;
    if buf.len() < total {
        return Ok(None);
    }
    req.body = buf[head_len..total].to_vec();
    Ok(Some((req, total)))
}

/// Whether `buf` starts with a complete request head that asks `Expect: 100-continue` (its body
/// still to come): the client waits for `100 Continue` before sending the body.
pub fn expects_continue(buf: &[u8], limits: &HttpLimits) -> bool {
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let header_slots = limits.max_headers.min(storage.len());
    let mut raw = httparse::Request::new(&mut storage[..header_slots]);
    match raw.parse(buf) {
        Ok(httparse::Status::Complete(_)) => raw
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue")),
        _ => false,
    }
}

/// The first value of `name` in an `a=b&c=d` query string, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k).as_deref() == Some(name)).then(|| percent_decode(v))?
    })
}

/// Decodes `%XX` escapes and `+`; `None` when the result is not UTF-8 or an escape is broken.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                // `from_str_radix` alone would also take a sign: `%+1` is not an escape.
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits::default()
    }

    #[test]
    fn parses_a_get_with_query_and_headers() {
        let raw = b"GET /chat/history/room-1?limit=5&after=3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n";
        let (req, used) = parse(raw, &limits()).expect("ok").expect("complete");
        assert_eq!(used, raw.len());
        assert_eq!(req.method(), Method::Get);
        assert_eq!(req.path, "/chat/history/room-1");
        assert_eq!(req.query_param("limit").as_deref(), Some("5"));
        assert_eq!(req.query_param("after").as_deref(), Some("3"));
        assert_eq!(req.query_param("before"), None);
        assert_eq!(req.authorization.as_deref(), Some("Bearer abc"));
        assert!(req.keep_alive);
    }

    #[test]
    fn keeps_every_forwarded_for_value_in_order() {
        let raw =
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.2\r\nHost: x\r\nx-forwarded-for:  10.0.0.3 \r\n\r\n";
        let (req, _) = parse(raw, &limits()).expect("ok").expect("complete");
        assert_eq!(req.forwarded_for.as_deref(), Some("1.2.3.4, 10.0.0.2, 10.0.0.3"));
        let (plain, _) = parse(b"GET / HTTP/1.1\r\n\r\n", &limits())
            .expect("ok")
            .expect("complete");
        assert_eq!(plain.forwarded_for, None);
    }

    #[test]
    fn waits_for_the_whole_body_and_leaves_pipelined_bytes() {
        let raw = b"POST /auth/login HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /health HTTP/1.1\r\n\r\n";
        for cut in 0..44 {
            assert!(parse(&raw[..cut], &limits()).expect("no error").is_none(), "cut {cut}");
        }
        let (req, used) = parse(raw, &limits()).expect("ok").expect("complete");
        assert_eq!(req.body, b"abcd");
        let (next, _) = parse(&raw[used..], &limits()).expect("ok").expect("complete");
        assert_eq!(next.path, "/health");
    }

    #[test]
    fn refuses_what_crosses_a_bound() {
        let mut l = limits();
        l.max_body_bytes = 3;
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
        assert_eq!(parse(raw, &l).unwrap_err(), RequestError::BodyTooLarge);
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked, &limits()).unwrap_err(), RequestError::LengthRequired);
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(20_000));
        assert_eq!(
            parse(big.as_bytes(), &limits()).unwrap_err(),
            RequestError::HeadersTooLarge
        );
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..65 {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            parse(many.as_bytes(), &limits()).unwrap_err(),
            RequestError::HeadersTooLarge
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x00garbage\r\n\r\n", &limits()).unwrap_err(),
            RequestError::Malformed
        );
        let bad_len = b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(bad_len, &limits()).unwrap_err(), RequestError::Malformed);
    }

    #[test]
    fn connection_and_upgrade_headers() {
        let raw = b"GET /ws/chat HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
        let (req, _) = parse(raw, &limits()).expect("ok").expect("complete");
        assert!(req.wants_websocket);
        let raw = b"GET / HTTP/1.0\r\n\r\n";
        let (req, _) = parse(raw, &limits()).expect("ok").expect("complete");
        assert!(!req.keep_alive);
        let raw = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let (req, _) = parse(raw, &limits()).expect("ok").expect("complete");
        assert!(!req.keep_alive);
    }

    #[test]
    fn expect_continue_is_seen_once_the_head_is_complete() {
        let head = b"POST /auth/login HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
        assert!(expects_continue(head, &limits()));
        assert!(!expects_continue(&head[..head.len() - 2], &limits()), "head incomplete");
        assert!(!expects_continue(
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            &limits()
        ));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%E3%85%8E").as_deref(), Some("ㅎ"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(
            query_param("access_token=a%2Eb&x", "access_token").as_deref(),
            Some("a.b")
        );
        assert_eq!(query_param("x", "x").as_deref(), Some(""));
    }

    // Fuzzing (http_request) found `Content-Length: +2` accepted; a non-ASCII space around the
    // digits was too. Another reader (a proxy in front) would frame such a request differently.
    #[test]
    fn content_length_is_digits_only() {
        for value in ["+4", "4\u{a0}", "\u{a0}4", "4 4", "0x4", "4.0", ""] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\nabcd");
            assert_eq!(
                parse(raw.as_bytes(), &limits()).err(),
                Some(RequestError::Malformed),
                "{value:?}"
            );
        }
        let raw = b"POST / HTTP/1.1\r\nContent-Length: \t4 \r\n\r\nabcd";
        let (req, used) = parse(raw, &limits()).expect("ok").expect("complete");
        assert_eq!((req.body.as_slice(), used), (&b"abcd"[..], raw.len()));
    }

    // With `max_body_bytes` at `usize::MAX` (the http_request target's unbounded limits), the
    // head length plus a Content-Length near `usize::MAX` overflowed and panicked.
    #[test]
    fn a_body_length_at_the_top_of_usize_does_not_overflow() {
        let unbounded = HttpLimits {
            max_header_bytes: usize::MAX,
            max_headers: usize::MAX,
            max_body_bytes: usize::MAX,
        };
        let raw = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", usize::MAX);
        assert_eq!(
            parse(raw.as_bytes(), &unbounded).err(),
            Some(RequestError::BodyTooLarge)
        );
    }

    // `%+1` decoded to U+0001 (the http_request target checks that broken escapes never decode).
    #[test]
    fn a_signed_escape_is_broken() {
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%-0"), None);
        assert_eq!(query_param("a=%+1", "a"), None);
    }

    // Fuzzing (http_conn) found the answer to a bad request line depending on where the reads
    // split it (400 or 505); a malformed line ending in HTTP/1.1 was also a 505.
    #[test]
    fn a_bad_request_line_is_judged_whole() {
        let limits = limits();
        assert_eq!(
            parse(b"GET /a b HTTP/1.1\r\n\r\n", &limits).err(),
            Some(RequestError::Malformed),
            "a space in the path is not a version problem"
        );
        let line = b"\r\nGET / HTTP/2.0\r\n\r\n";
        let eol = line.len() - 4;
        for cut in 0..=eol {
            assert!(matches!(parse(&line[..cut], &limits), Ok(None)), "cut at {cut}");
        }
        for cut in eol + 1..=line.len() {
            assert_eq!(
                parse(&line[..cut], &limits).err(),
                Some(RequestError::UnsupportedVersion),
                "cut at {cut}"
            );
        }
        let bad = b"GET / x HTTP/1.1\r\n";
        for cut in 8..=bad.len() {
            assert!(
                matches!(parse(&bad[..cut], &limits), Ok(None) | Err(RequestError::Malformed)),
                "cut at {cut}"
            );
        }
        assert_eq!(parse(bad, &limits).err(), Some(RequestError::Malformed));
        // A later space must not turn a line already judged malformed back into "wait".
        let spaced = b"QeOPTIONS CQeOPTIONS Conn%Q ection: ";
        for cut in 0..spaced.len() {
            assert!(
                matches!(parse(&spaced[..cut], &limits), Ok(None) | Err(RequestError::Malformed)),
                "cut at {cut}"
            );
        }
        assert_eq!(parse(spaced, &limits).err(), Some(RequestError::Malformed));
        assert_eq!(parse(b"GET / HTTP/2.0x", &limits).err(), Some(RequestError::Malformed));
        let small = HttpLimits {
            max_header_bytes: 16,
            ..limits
        };
        assert_eq!(
            parse(b"GET /xxxxxxxxxxxxxxx HTTP/2", &small).err(),
            Some(RequestError::HeadersTooLarge),
            "waiting for the end of the line is bounded"
        );
    }

    #[test]
    fn other_http_versions_are_505_not_400() {
        let limits = HttpLimits::default();
        assert_eq!(
            parse(b"GET / HTTP/2.0\r\n\r\n", &limits).err(),
            Some(RequestError::UnsupportedVersion)
        );
        assert_eq!(
            parse(b"GET / HTTP/3\r\n\r\n", &limits).err(),
            Some(RequestError::UnsupportedVersion)
        );
        assert_eq!(
            parse(b"GET / FOO/1.1\r\n\r\n", &limits).err(),
            Some(RequestError::Malformed)
        );
    }
}
