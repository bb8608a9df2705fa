//! One HTTP/1.1 connection's protocol state, sans-io: the bytes read but not yet parsed,
//! pipelining (one request answered at a time, in order), the request that waits on a worker,
//! half-closed clients, and the header and keep-alive timers. The reactor reads into it, asks
//! for the [`Next`] thing to do, and writes the answers.

use std::time::{Duration, Instant};

use super::request::{self, HttpLimits, Request, RequestError};
use super::response::{ApiError, Response};
use crate::text::Text;

/// How to encode a worker's answer when it comes back.
#[derive(Debug)]
pub struct Pending {
    pub keep_alive: bool,
    pub head_only: bool,
    /// Connection-level headers (CORS) the handler did not know about.
    pub extra: Vec<(&'static str, String)>,
}

/// What the connection should do next.
#[derive(Debug)]
// Returned by value and matched at once: boxing the request would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// Serve this request (it has been taken off the input).
    Request(Request),
    /// The input cannot be parsed: send this answer, then close.
    Refuse(Response),
    /// Nothing until more bytes arrive or the worker answers.
    Wait,
    /// The client waits for `100 Continue` before sending the body: write [`CONTINUE`].
    Continue,
    /// The client half-closed and everything is answered: close once the output is flushed.
    CloseWhenFlushed,
    /// Close at once (the client left mid-request: there is nothing to answer).
    CloseNow,
}

/// The interim answer to `Expect: 100-continue` once the head is acceptable.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What a timer tick asks of the connection.
#[derive(Debug)]
pub enum Due {
    Nothing,
    /// The request did not arrive in time: send this 408, then close.
    Timeout(Response),
    /// Idle past the keep-alive timeout: close.
    Close,
}

/// The protocol state of one HTTP connection.
#[derive(Debug)]
pub struct HttpState {
    input: Vec<u8>,
    pending: Option<Pending>,
    /// When the first byte of an unfinished request arrived (header timeout).
    request_started: Option<Instant>,
    last_activity: Instant,
    /// Close once the output is written (an error that leaves the stream out of sync, or
    /// `Connection: close`).
    close_after_write: bool,
    /// The client half-closed: answer what is buffered, then close.
    eof: bool,
    /// `100 Continue` was sent for the request being received.
    continued: bool,
}

impl HttpState {
    /// A connection accepted at `now`.
    pub fn new(now: Instant) -> HttpState {
        HttpState {
            input: Vec::new(),
            pending: None,
            request_started: None,
            last_activity: now,
            close_after_write: false,
            eof: false,
            continued: false,
        }
    }

    /// How much unparsed input one connection may hold: one maximal request and a little of the
    /// next (the parser refuses beyond it).
    pub fn input_limit(limits: &HttpLimits) -> usize {
        limits
            .max_header_bytes
            .saturating_add(limits.max_body_bytes)
            .saturating_add(4096)
    }

    /// The buffer the reactor reads into.
    pub fn input_mut(&mut self) -> &mut Vec<u8> {
        &mut self.input
    }

    /// Bytes were read (and `eof`: the client half-closed). True when the connection should
    /// close at once: a half-close with nothing pending and nothing buffered.
    pub fn on_read(&mut self, eof: bool, now: Instant) -> bool {
        if eof {
            if self.pending.is_none() && self.input.is_empty() {
                return true;
            }
            self.eof = true;
        }
        if !self.input.is_empty() {
            self.last_activity = now;
            self.request_started.get_or_insert(now);
        }
        false
    }

    /// The next request to serve, in order; a request waiting on a worker holds up the ones
    /// pipelined behind it.
    pub fn next(&mut self, limits: &HttpLimits, now: Instant) -> Next {
        if self.pending.is_some() || self.close_after_write || self.input.is_empty() {
            if self.input.is_empty() {
                self.request_started = None;
            }
            if self.eof && self.pending.is_none() {
                // Nothing more can arrive: close once the answers are out.
                self.close_after_write = true;
                return Next::CloseWhenFlushed;
            }
            return Next::Wait;
        }
        match request::parse(&self.input, limits) {
            // Half a request and the client stopped sending: nothing to answer.
            Ok(None) if self.eof => Next::CloseNow,
            // The head passed its limits (an oversized body was refused already): let the body come.
            Ok(None) if !self.continued && request::expects_continue(&self.input, limits) => {
                self.continued = true;
                Next::Continue
            }
            Ok(None) => Next::Wait,
            Ok(Some((req, used))) => {
                self.continued = false;
                self.input.drain(..used);
                self.request_started = if self.input.is_empty() { None } else { Some(now) };
                Next::Request(req)
            }
            Err(e) => {
                self.input.clear();
                let mut response = refusal(e).into_response();
                response.close = true;
                Next::Refuse(response)
            }
        }
    }

    /// The request just taken waits on a worker; pipelined ones wait behind it.
    pub fn wait_for_worker(&mut self, pending: Pending) {
        self.pending = Some(pending);
    }

    /// The worker answered: how to encode its response (`None` if nothing was waiting).
    pub fn take_pending(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// Whether a request waits on a worker.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A response was queued; `close` when the connection must end after it.
    pub fn answered(&mut self, close: bool, now: Instant) {
        if close {
            self.close_after_write = true;
        }
        self.last_activity = now;
    }

    /// Whether the connection ends once its output is written.
    pub fn closes_after_write(&self) -> bool {
        self.close_after_write
    }

    /// What is due at `now`; `output_empty` says whether anything waits to be written.
    /// When [`HttpState::on_timer`] may next have something to do, as of `now`: the running
    /// request's header deadline or the idle connection's keep-alive end, and at the latest the
    /// shorter of the two timeouts from now (a deadline a later request creates is never nearer).
    pub fn next_check(
        &self,
        now: Instant,
        header_timeout: Duration,
        keepalive: Duration,
        output_empty: bool,
    ) -> Instant {
        let mut next = now + header_timeout.min(keepalive);
        if self.pending.is_none() && !self.close_after_write {
            if let Some(started) = self.request_started {
                next = next.min(started + header_timeout);
            } else if output_empty {
                next = next.min(self.last_activity + keepalive);
            }
        }
        next
    }

    pub fn on_timer(&mut self, now: Instant, header_timeout: Duration, keepalive: Duration, output_empty: bool) -> Due {
        if self.pending.is_some() || self.close_after_write {
            return Due::Nothing;
        }
        if let Some(started) = self.request_started {
            if now.duration_since(started) >= header_timeout {
                self.input.clear();
                let mut response = ApiError::RequestTimeout.into_response();
                response.close = true;
                return Due::Timeout(response);
            }
        } else if output_empty && now.duration_since(self.last_activity) >= keepalive {
            return Due::Close;
        }
        Due::Nothing
    }

    /// The server is shutting down: true to close at once (idle), otherwise the connection
    /// closes after its answer is written.
    pub fn goodbye(&mut self, output_empty: bool) -> bool {
        if self.pending.is_none() && output_empty {
            return true;
        }
        self.close_after_write = true;
        false
    }

    /// The unparsed input, handed to the protocol the connection upgrades to.
    pub fn into_input(self) -> Vec<u8> {
        self.input
    }
}

/// The answer to input that cannot be served.
fn refusal(e: RequestError) -> ApiError {
    match e {
        RequestError::Malformed => ApiError::InvalidRequest(Text::MalformedHttp.ko().into()),
        RequestError::HeadersTooLarge => ApiError::PayloadTooLarge { status: 431 },
        RequestError::BodyTooLarge => ApiError::PayloadTooLarge { status: 413 },
        RequestError::LengthRequired => ApiError::LengthRequired,
        RequestError::UnsupportedVersion => ApiError::VersionNotSupported,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits::default()
    }

    fn feed(state: &mut HttpState, bytes: &[u8], eof: bool, now: Instant) -> bool {
        state.input_mut().extend_from_slice(bytes);
        state.on_read(eof, now)
    }

    fn path(next: Next) -> String {
        match next {
            Next::Request(r) => r.path,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn pipelined_requests_wait_behind_a_pending_one() {
        let t0 = Instant::now();
        let mut s = HttpState::new(t0);
        feed(
            &mut s,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c",
            false,
            t0,
        );
        assert_eq!(path(s.next(&limits(), t0)), "/a");
        s.wait_for_worker(Pending {
            keep_alive: true,
            head_only: false,
            extra: vec![],
        });
        assert!(matches!(s.next(&limits(), t0), Next::Wait), "/b waits for /a's answer");
        assert!(s.take_pending().is_some());
        s.answered(false, t0);
        assert_eq!(path(s.next(&limits(), t0)), "/b");
        assert!(matches!(s.next(&limits(), t0), Next::Wait), "/c is incomplete");
        feed(&mut s, b" HTTP/1.1\r\n\r\n", false, t0);
        assert_eq!(path(s.next(&limits(), t0)), "/c");
    }

    #[test]
    fn a_half_closed_client_gets_its_answers_then_the_close() {
        let t0 = Instant::now();
        let mut s = HttpState::new(t0);
        assert!(!feed(&mut s, b"GET /a HTTP/1.1\r\n\r\n", true, t0));
        assert_eq!(path(s.next(&limits(), t0)), "/a");
        s.answered(false, t0);
        assert!(matches!(s.next(&limits(), t0), Next::CloseWhenFlushed));
        assert!(s.closes_after_write());
        // Half a request, then EOF: nothing to answer.
        let mut s = HttpState::new(t0);
        feed(&mut s, b"GET /a HT", true, t0);
        assert!(matches!(s.next(&limits(), t0), Next::CloseNow));
        // EOF on an idle connection closes at once.
        assert!(HttpState::new(t0).on_read(true, t0));
    }

    #[test]
    fn garbage_is_refused_and_closes() {
        let t0 = Instant::now();
        let mut s = HttpState::new(t0);
        feed(&mut s, b"\x16\x03\x01garbage\r\n\r\n", false, t0);
        match s.next(&limits(), t0) {
            Next::Refuse(r) => assert_eq!((r.status, r.close), (400, true)),
            other => panic!("{other:?}"),
        }
        let mut s = HttpState::new(t0);
        feed(&mut s, b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n", false, t0);
        assert!(matches!(s.next(&limits(), t0), Next::Refuse(r) if r.status == 413));
    }

    #[test]
    fn expect_continue_gets_one_interim_answer_or_the_final_error() {
        let t0 = Instant::now();
        let mut s = HttpState::new(t0);
        feed(
            &mut s,
            b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            false,
            t0,
        );
        assert!(matches!(s.next(&limits(), t0), Next::Continue));
        assert!(matches!(s.next(&limits(), t0), Next::Wait), "once per request");
        feed(&mut s, b"abcd", false, t0);
        assert_eq!(path(s.next(&limits(), t0)), "/a");
        // Too large: the final error at once, no 100.
        let mut s = HttpState::new(t0);
        feed(
            &mut s,
            b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
            false,
            t0,
        );
        assert!(matches!(s.next(&limits(), t0), Next::Refuse(r) if r.status == 413));
    }

    #[test]
    fn header_and_keepalive_timers() {
        let t0 = Instant::now();
        let (header, keepalive) = (Duration::from_secs(10), Duration::from_secs(75));
        let mut s = HttpState::new(t0);
        feed(&mut s, b"GET /slow", false, t0);
        assert!(matches!(s.next(&limits(), t0), Next::Wait));
        assert!(matches!(
            s.on_timer(t0 + Duration::from_secs(9), header, keepalive, true),
            Due::Nothing
        ));
        match s.on_timer(t0 + header, header, keepalive, true) {
            Due::Timeout(r) => assert_eq!((r.status, r.close), (408, true)),
            other => panic!("{other:?}"),
        }
        let mut idle = HttpState::new(t0);
        assert!(
            matches!(idle.on_timer(t0 + keepalive, header, keepalive, false), Due::Nothing),
            "output pending"
        );
        assert!(matches!(
            idle.on_timer(t0 + keepalive, header, keepalive, true),
            Due::Close
        ));
    }

    #[test]
    fn goodbye_waits_for_pending_answers() {
        let t0 = Instant::now();
        assert!(HttpState::new(t0).goodbye(true));
        let mut s = HttpState::new(t0);
        s.wait_for_worker(Pending {
            keep_alive: true,
            head_only: false,
            extra: vec![],
        });
        assert!(!s.goodbye(true));
        assert!(s.closes_after_write());
    }
}
