//! Fuzzes a manager server's request path: arbitrary bytes, read as
//! request frames of one connection, must each get a reply (an error for
//! garbage), never a panic, a hang or a huge allocation.
//!
//! The calls live in `../common/manager_request.rs`, shared with
//! `tests/fuzz_corpus.rs`, which replays the committed corpus as a test.

#![no_main]

#[path = "../common/manager_request.rs"]
mod manager_request;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    manager_request::run(data);
});
