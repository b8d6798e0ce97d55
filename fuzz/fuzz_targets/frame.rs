//! Fuzzes the frame decoder: arbitrary bytes, read as a message received on
//! a socket (with no descriptors attached), must be refused with an error or
//! decode to a value that survives a round trip, never panic.
//!
//! The calls live in `../common/frame.rs`, shared with `tests/fuzz_corpus.rs`,
//! which replays the committed corpus as a regular test.

#![no_main]

#[path = "../common/frame.rs"]
mod frame;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    frame::decode_all(data);
});
