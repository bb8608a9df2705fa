//! Feeds arbitrary payloads to the decoder of what arrives from Redis (another node's envelope,
//! or anything a stranger published on a Herald channel): it must refuse or accept, never panic,
//! and what it accepts must be a well-formed, ascending sequence.
//!
//! Run with `cargo +nightly fuzz run cluster_envelope` from the repository root.

#![no_main]

use herald::bus::cluster::wire::{decode, Incoming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the channel, so that both kinds and a mismatched channel are reached.
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let channel = match selector % 3 {
        0 => "herald:room:r",
        1 => "herald:user:u",
        _ => "herald:room:other",
    };
    let ids: Vec<(i64, i64)> = match decode(channel, payload, "me") {
        Ok(Incoming::Chat(events)) => events.iter().map(|e| (e.id, e.prev)).collect(),
        Ok(Incoming::Notifications(events)) => events.iter().map(|e| (e.id, e.prev)).collect(),
        _ => return,
    };
    let mut last = 0;
    for (id, prev) in ids {
        assert!(prev >= 0 && id > prev && id > last, "accepted an out-of-sequence event");
        last = id;
    }
});
