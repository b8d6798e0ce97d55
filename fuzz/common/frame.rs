//! The decoder calls run on every input, shared by the fuzz target
//! (`fuzz/fuzz_targets/frame.rs`) and the corpus test (`tests/fuzz_corpus.rs`)
//! so that the test replays exactly what the fuzzer ran.
//!
//! The same bytes are decoded as several envelope/payload type pairs. Besides
//! "never panics", two properties are asserted:
//! - a value that decodes survives a round trip: re-encoded with
//!   [`inline_frame_bytes`] it decodes to an equal value;
//! - a payload that claims a descriptor ([`Fd`]) never decodes, since a frame
//!   parsed from bare bytes carries none.

use multiproc::{Fd, inline_frame_bytes, parse_for_fuzz};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// The nested envelope/payload pair: a named call with an optional body.
pub(crate) type Nested = (String, (u8, Option<Vec<u8>>));

/// What one input decoded to, per type pair; `None` where it was refused.
#[derive(Debug, Default, PartialEq)]
#[allow(
    dead_code,
    reason = "the fuzz target only runs the calls; the corpus test reads the values"
)]
pub(crate) struct Decoded {
    /// Envelope `u8`, payload `String`.
    pub(crate) u8_string: Option<(u8, String)>,
    /// Envelope `u32`, payload `Vec<u64>`.
    pub(crate) u32_vec: Option<(u32, Vec<u64>)>,
    /// Envelope `String`, payload `(u8, Option<Vec<u8>>)`.
    pub(crate) nested: Option<Nested>,
}

/// Runs the decoder on `data` with every type pair.
///
/// # Panics
///
/// When the decoder panics, when a decoded value does not survive a round
/// trip, or when a descriptor decodes out of a frame that carried none.
pub(crate) fn decode_all(data: &[u8]) -> Decoded {
    assert!(
        parse_for_fuzz::<u8, Fd>(data).is_err(),
        "a descriptor decoded out of a frame that carried none"
    );
    Decoded {
        u8_string: round_trip(data),
        u32_vec: round_trip(data),
        nested: round_trip(data),
    }
}

/// Decodes `data` as `(E, P)`; a value that decodes must decode again,
/// unchanged, from the frame [`inline_frame_bytes`] builds for it.
fn round_trip<E, P>(data: &[u8]) -> Option<(E, P)>
where
    E: Serialize + DeserializeOwned + PartialEq + Debug,
    P: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let value = parse_for_fuzz::<E, P>(data).ok()?;
    let again = parse_for_fuzz::<E, P>(&inline_frame_bytes(&value.0, &value.1));
    assert_eq!(again.as_ref(), Ok(&value), "round trip changed the value");
    Some(value)
}
