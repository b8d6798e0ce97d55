//! The calls run on every input of the `manager_request` target, shared by
//! the fuzz target (`fuzz/fuzz_targets/manager_request.rs`) and the corpus
//! test (`tests/fuzz_corpus.rs`).
//!
//! The bytes are read as request frames arriving on one connection of a
//! manager's server, decoded and applied to a fresh object table. Besides
//! "never panics", it asserts that every frame gets exactly one reply.

use multiproc::manager::manager_requests_for_fuzz;

/// Runs `data` through the server's request path; returns the replies.
///
/// # Panics
///
/// When the server panics, or a frame goes unanswered.
pub(crate) fn run(data: &[u8]) -> Vec<String> {
    let replies = manager_requests_for_fuzz(data);
    let mut frames = 0;
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        rest = &rest[4 + len.min(rest.len() - 4)..];
        frames += 1;
    }
    assert_eq!(replies.len(), frames, "every frame gets one reply");
    replies
}
