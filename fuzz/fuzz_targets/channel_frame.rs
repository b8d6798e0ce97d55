//! Fuzzes the frame reader of `connection::Channel`: arbitrary bytes, read
//! as a stream a few bytes at a time, must give frames within the limit or
//! an error, never a panic or an allocation for a length that never came.
//!
//! The calls live in `../common/channel_frame.rs`, shared with
//! `tests/fuzz_corpus.rs`, which replays the committed corpus as a test.

#![no_main]

#[path = "../common/channel_frame.rs"]
mod channel_frame;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    channel_frame::parse_all(data);
});
