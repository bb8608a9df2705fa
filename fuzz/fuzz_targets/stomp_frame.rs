//! Feeds arbitrary bytes to the STOMP decoder the way a WebSocket session does.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run stomp_frame` from the repository root.

#![no_main]

use herald::stomp::frame::{decode, encode, Decoded, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the limits, so that the size and header-count checks are reached by
    // small inputs too, not only by 64 KiB ones.
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let limits = match selector % 3 {
        0 => Limits::default(),
        1 => Limits {
            max_frame_bytes: 64,
            max_headers: 4,
        },
        _ => Limits {
            max_frame_bytes: usize::from(selector),
            max_headers: usize::from(selector % 8),
        },
    };
    // Re-encoding may grow a frame (a raw colon in a value comes back escaped), so the
    // round-trip check must not trip over the size limits.
    let unbounded = Limits {
        max_frame_bytes: usize::MAX,
        max_headers: usize::MAX,
    };

    let mut pos = 0;
    while let Ok(Some((decoded, consumed))) = decode(&input[pos..], &limits) {
        assert!(consumed > 0, "decode returned Some without consuming");
        assert!(consumed <= input.len() - pos, "decode consumed past the input");
        if let Decoded::Frame(frame) = decoded {
            let mut wire = Vec::new();
            encode(&frame, &mut wire);
            match decode(&wire, &unbounded) {
                Ok(Some((Decoded::Frame(again), used))) => {
                    assert_eq!(used, wire.len(), "re-encoded frame not fully consumed");
                    assert_eq!(again, frame, "encode/decode round trip changed the frame");
                }
                other => panic!("re-encoded frame did not decode: {other:?}"),
            }
        }
        pos += consumed;
    }
});
