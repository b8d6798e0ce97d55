//! The calls run on every input of the `channel_frame` target, shared by the
//! fuzz target (`fuzz/fuzz_targets/channel_frame.rs`) and the corpus test
//! (`tests/fuzz_corpus.rs`).
//!
//! The bytes are read as a stream arriving on a `connection::Channel`, a few
//! bytes per read, under two frame limits. Besides "never panics", it
//! asserts that no frame exceeds the limit, that the frames read, written
//! back, are exactly the start of the input, and that a stream is reported
//! as ending cleanly only when it ended on a frame boundary.

use multiproc::{channel_frame_bytes, parse_channel_for_fuzz};

/// The larger of the two limits the inputs are read under.
pub(crate) const MAX: usize = 4096;

/// What an input reads as under the limit [`MAX`]: the frames, and the
/// error that ended the stream (`None`: it ended on a frame boundary).
pub(crate) type Parsed = (Vec<Vec<u8>>, Option<String>);

/// Reads `data` under the limits 16 and [`MAX`]; returns the latter.
///
/// # Panics
///
/// When the reader panics, or breaks one of the properties above.
pub(crate) fn parse_all(data: &[u8]) -> Parsed {
    let _ = parse_checked(data, 16);
    parse_checked(data, MAX)
}

fn parse_checked(data: &[u8], max: usize) -> Parsed {
    let (frames, end) = parse_channel_for_fuzz(data, max);
    assert!(
        frames.iter().all(|f| f.len() <= max),
        "a frame over the limit of {max} was accepted"
    );
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let again = channel_frame_bytes(&refs);
    assert!(
        data.starts_with(&again),
        "the frames read are not the input's start"
    );
    match &end {
        None => assert_eq!(again.len(), data.len(), "a clean end with bytes left over"),
        Some(_) => assert!(
            again.len() < data.len(),
            "an error with nothing left to read"
        ),
    }
    (frames, end)
}
