//! Feeds arbitrary bytes to the stateful STOMP decoder in pieces the fuzzer chooses, as
//! WebSocket messages would deliver them. Decoding piece by piece must hand out the same frames
//! as decoding the whole stream at once, fail where it fails, and never hold more than one
//! frame's worth of partial input.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run stomp_decoder` from the repository root.

#![no_main]

use herald::stomp::decoder::{Decoder, Flow};
use herald::stomp::frame::{Frame, FrameError, Limits};
use herald_fuzz::Chunks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limits (as in `stomp_frame`), the rest is a chunk plan and the stream.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some(chunks) = Chunks::new(rest) else {
        return;
    };
    let limits = limits_for(selector);
    let stream = chunks.stream();

    let mut whole_frames = Vec::new();
    let mut whole = Decoder::new();
    let whole_result = whole.feed(stream, &limits, |f| {
        whole_frames.push(f);
        Flow::Continue
    });
    if whole_result.is_err() {
        assert_eq!(whole.pending_bytes(), 0, "an error must drop what is pending");
    }
    check_pending(&whole, &limits);

    let mut piece_frames = Vec::new();
    let mut pieces = Decoder::new();
    let mut piece_result: Result<(), FrameError> = Ok(());
    for piece in chunks {
        piece_result = pieces.feed(piece, &limits, |f| {
            piece_frames.push(f);
            Flow::Continue
        });
        if piece_result.is_err() {
            assert_eq!(pieces.pending_bytes(), 0, "an error must drop what is pending");
            break;
        }
        check_pending(&pieces, &limits);
    }

    assert_frames_eq(&piece_frames, &whole_frames);
    match (&whole_result, &piece_result) {
        (Ok(()), Ok(())) => assert_eq!(
            pieces.pending_bytes(),
            whole.pending_bytes(),
            "a different unfinished tail is held"
        ),
        (Err(_), Err(_)) => {}
        _ => panic!("the whole stream gives {whole_result:?}, piece by piece gives {piece_result:?}"),
    }

    // A session that stops after its first frame hands out nothing more and holds nothing.
    if !whole_frames.is_empty() {
        let mut stopped = Decoder::new();
        let mut seen = 0;
        let result = stopped.feed(stream, &limits, |_| {
            seen += 1;
            Flow::Stop
        });
        assert_eq!(result, Ok(()), "a stop is not an error");
        assert_eq!(seen, 1, "frames were handed out after Stop");
        assert_eq!(stopped.pending_bytes(), 0, "a stop must drop what is pending");
    }
});

fn limits_for(selector: u8) -> Limits {
    match selector % 3 {
        0 => Limits::default(),
        1 => Limits {
            max_frame_bytes: 64,
            max_headers: 4,
        },
        _ => Limits {
            max_frame_bytes: usize::from(selector),
            max_headers: usize::from(selector % 8),
        },
    }
}

/// What a decoder may hold between inputs: the start of one frame that is still under the limit
/// (or a lone CR that may start a CRLF heart-beat), never a whole frame plus more.
fn check_pending(decoder: &Decoder, limits: &Limits) {
    let held = decoder.pending_bytes();
    assert!(
        held < limits.max_frame_bytes || held <= 1,
        "{held} bytes pending with a frame limit of {}",
        limits.max_frame_bytes
    );
}

fn assert_frames_eq(pieces: &[Frame], whole: &[Frame]) {
    assert_eq!(
        pieces.len(),
        whole.len(),
        "piece by piece gave {} frames, the whole stream {}",
        pieces.len(),
        whole.len()
    );
    for (i, (a, b)) in pieces.iter().zip(whole).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
}
