//! Drives the sans-io HTTP connection core the way the reactor does: bytes arrive in pieces the
//! fuzzer chooses, requests are taken with `next()`, some wait on a "worker" while later ones
//! are pipelined behind them. The requests handed out must be exactly those that parsing the
//! whole stream at once yields, in order, and a stream that cannot be parsed must be refused.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run http_conn` from the repository root.

#![no_main]

use std::time::Instant;

use herald::http::conn::{HttpState, Next, Pending};
use herald::http::request::{parse, HttpLimits, Request, RequestError};
use herald_fuzz::Chunks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the limits (low two bits), whether each request waits on a worker (bit 2),
    // and whether the last piece comes with the client's half-close (bit 3).
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(chunks) = Chunks::new(rest) else {
        return;
    };
    let limits = limits_for(selector);
    let use_worker = selector & 0b100 != 0;
    let half_close = selector & 0b1000 != 0;
    let (expected, expected_end) = parse_whole(chunks.stream(), &limits);

    let now = Instant::now();
    let mut state = HttpState::new(now);
    let mut got = Vec::new();
    let mut end = End::Open;
    let mut pieces = chunks.peekable();
    'reads: while let Some(piece) = pieces.next() {
        state.input_mut().extend_from_slice(piece);
        let eof = half_close && pieces.peek().is_none();
        if state.on_read(eof, now) {
            end = End::Closed;
            break;
        }
        loop {
            match state.next(&limits, now) {
                Next::Request(req) => {
                    got.push(describe(&req));
                    if use_worker {
                        state.wait_for_worker(Pending {
                            keep_alive: req.keep_alive,
                            head_only: false,
                            extra: Vec::new(),
                        });
                        // Whatever is pipelined waits for the worker's answer.
                        assert!(
                            matches!(state.next(&limits, now), Next::Wait),
                            "served past a pending request"
                        );
                        assert!(state.take_pending().is_some(), "the pending request was lost");
                    }
                    state.answered(false, now);
                }
                Next::Refuse(response) => {
                    assert!(response.close, "a refusal must close the connection");
                    end = End::Refused(response.status);
                    break 'reads;
                }
                Next::Wait => break,
                // `100 Continue` for a head that asked for it: the next call waits for the body.
                Next::Continue => {}
                Next::CloseWhenFlushed | Next::CloseNow => {
                    end = End::Closed;
                    break 'reads;
                }
            }
        }
    }

    assert_eq!(got, expected, "requests differ from parsing the whole stream at once");
    match (expected_end, end) {
        // A head can be both malformed and too long: read in pieces, the length bound may be
        // crossed before the malformed byte arrives. Either answer refuses and closes.
        (Err(e), End::Refused(status)) => assert!(
            status == status_of(e) || status == 431,
            "refused with {status}, the whole stream fails with {e:?}"
        ),
        (Err(e), other) => panic!("the whole stream fails with {e:?}, the connection ended {other:?}"),
        (Ok(()), End::Refused(status)) => panic!("refused with {status} a stream that parses"),
        (Ok(()), End::Open | End::Closed) => {}
    }
});

#[derive(Debug)]
enum End {
    /// Every piece was read; the connection waits for more.
    Open,
    Refused(u16),
    Closed,
}

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
        _ => HttpLimits {
            max_header_bytes: 512,
            max_headers: 128,
            max_body_bytes: 1 << 20,
        },
    }
}

/// Every complete request of the stream parsed in one go, and how the stream ends.
fn parse_whole(stream: &[u8], limits: &HttpLimits) -> (Vec<String>, Result<(), RequestError>) {
    let mut requests = Vec::new();
    let mut pos = 0;
    loop {
        match parse(&stream[pos..], limits) {
            Ok(Some((req, used))) => {
                requests.push(describe(&req));
                pos += used;
            }
            Ok(None) => return (requests, Ok(())),
            Err(e) => return (requests, Err(e)),
        }
    }
}

/// `Request` has no `PartialEq`; its debug form shows every field.
fn describe(req: &Request) -> String {
    format!("{req:?}")
}

/// The status `HttpState` answers each parse error with.
fn status_of(e: RequestError) -> u16 {
    match e {
        RequestError::Malformed => 400,
        RequestError::HeadersTooLarge => 431,
        RequestError::BodyTooLarge => 413,
        RequestError::LengthRequired => 411,
        RequestError::UnsupportedVersion => 505,
    }
}
