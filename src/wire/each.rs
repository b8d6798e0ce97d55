//! Values one at a time: a pool chunk's results written one by one as its
//! tasks return, each with where it ends, so that the other side decodes
//! them in one pass or, if one of them is bad, one by one (the bad one
//! fails alone).
//!
//! Each value is encoded with a handle table installed only while it is
//! (and only if it owns a handle): the tasks that run between two values
//! see no table of ours, so that a handle they encode elsewhere fails as
//! it should.

use super::de::Decoder;
use super::ser::{EncodeError, encode_to};
use super::{
    DECODE_TABLE, ENCODE_TABLE, Install, WireError, encode_error, read_whole, take_handle_error,
    with_handles,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::OwnedFd;

/// What an [`EachWriter`] wrote: the values' bytes, their handles, and
/// where each one ends.
pub(crate) type Parts = (Vec<u8>, Vec<OwnedFd>, Vec<u32>);

/// Values encoded one at a time, back to back under one handle table, and
/// where each one ends: what [`decode_each`] and [`decode_run_into`] read.
#[derive(Debug, Default)]
pub(crate) struct EachWriter {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    ends: Vec<u32>,
}

impl EachWriter {
    /// Room for `items` values of `bytes` bytes in all.
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Self {
        EachWriter {
            bytes: Vec::with_capacity(bytes),
            fds: Vec::new(),
            ends: Vec::with_capacity(items),
        }
    }

    /// Appends `value`; if it cannot be encoded, nothing of it is kept.
    ///
    /// Not to be called inside another encode (whose handle table the
    /// first attempt would fill).
    #[inline(always)]
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WireError> {
        debug_assert!(
            ENCODE_TABLE.get().is_null(),
            "EachWriter::push inside an encode"
        );
        let (mark, handles) = (self.bytes.len(), self.fds.len());
        // First with no handle table at all (two thread-local stores fewer
        // per value, an eighth of a tiny task's cost): a value that owns a
        // handle fails then, and is written again with the table (after
        // the error noted by this attempt is cleared).
        let done = encode_to(value, &mut self.bytes);
        match (done, u32::try_from(self.bytes.len())) {
            (Ok(()), Ok(end)) => {
                self.ends.push(end);
                Ok(())
            }
            (Ok(()), Err(_)) => Err(self.undo(None, mark, handles)),
            (Err(_), _) => self.push_with_table(value, mark, handles),
        }
    }

    #[cold]
    fn push_with_table<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        mark: usize,
        handles: usize,
    ) -> Result<(), WireError> {
        self.bytes.truncate(mark);
        // SAFETY: `self.fds` outlives the guard and is touched only through
        // the thread-local pointer until the guard is dropped, below.
        let guard = unsafe { Install::new(&ENCODE_TABLE, &mut self.fds) };
        take_handle_error();
        let done = encode_to(value, &mut self.bytes);
        drop(guard);
        match (done, u32::try_from(self.bytes.len())) {
            (Ok(()), Ok(end)) => {
                self.ends.push(end);
                Ok(())
            }
            (done, _) => Err(self.undo(done.err(), mark, handles)),
        }
    }

    /// A value could not be written (`e`), or took the bytes past 4 GiB:
    /// back to `bytes` and `handles`.
    #[cold]
    fn undo(&mut self, e: Option<EncodeError>, bytes: usize, handles: usize) -> WireError {
        let e = match e {
            Some(e) => encode_error(e),
            None => WireError::Malformed("the values of a message take over 4 GiB".to_owned()),
        };
        self.bytes.truncate(bytes);
        self.fds.truncate(handles);
        e
    }

    /// Puts `tag` before each value written so far (when values turn out
    /// to need an envelope, such as `Done(value)`, whose postcard encoding
    /// is its variant's tag and then the value).
    pub(crate) fn tag_each(&mut self, tag: &[u8]) -> Result<(), WireError> {
        let mut bytes = Vec::with_capacity(self.bytes.len() + tag.len() * self.ends.len());
        let mut ends = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for &end in &self.ends {
            bytes.extend_from_slice(tag);
            bytes.extend_from_slice(&self.bytes[start..end as usize]);
            start = end as usize;
            let end = u32::try_from(bytes.len()).map_err(|_| {
                WireError::Malformed("the values of a message take over 4 GiB".to_owned())
            })?;
            ends.push(end);
        }
        self.bytes = bytes;
        self.ends = ends;
        Ok(())
    }

    /// The values' bytes, their handles, and where each one ends.
    pub(crate) fn into_parts(self) -> Parts {
        (self.bytes, self.fds, self.ends)
    }
}

/// Decodes the values of `T` written back to back by an [`EachWriter`]
/// (carrying no handles) of the given `lengths`, appending them to `out`: far
/// cheaper than one by one into a `Result` each. `false` (and `out` as it
/// was) if any of them fails, or does not take exactly the bytes up to its
/// end: the caller then decodes them one by one, so that a bad one spoils
/// only itself (a value read past its end, even into a neighbour that then
/// decodes, is caught here).
pub(crate) fn decode_run_into<T: DeserializeOwned>(
    bytes: &[u8],
    lengths: impl ExactSizeIterator<Item = usize>,
    out: &mut Vec<T>,
) -> bool {
    let mark = out.len();
    out.reserve(lengths.len());
    let mut table: Vec<Option<OwnedFd>> = Vec::new();
    // SAFETY: `table` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&DECODE_TABLE, &mut table) };
    take_handle_error();
    // One reader over them all, each value's end checked against the
    // table: a value must take exactly its own bytes.
    let mut de = Decoder::new(bytes);
    let mut end = 0usize;
    let mut whole = true;
    for len in lengths {
        end = end.saturating_add(len);
        match T::deserialize(&mut de) {
            Ok(v) if de.position() == end => out.push(v),
            _ => {
                whole = false;
                break;
            }
        }
    }
    let rest = de.rest();
    drop(guard);
    take_handle_error();
    if whole && rest.is_empty() {
        return true;
    }
    out.truncate(mark);
    false
}

/// Decodes what an [`EachWriter`] wrote, handing each item's result to
/// `each` in order.
pub(crate) fn decode_each<T: DeserializeOwned>(
    bytes: &[u8],
    ends: impl Iterator<Item = usize>,
    fds: Vec<OwnedFd>,
    mut each: impl FnMut(Result<T, WireError>),
) {
    with_handles(fds, || {
        let mut start = 0usize;
        for end in ends {
            let Some(slice) = bytes.get(start..end) else {
                each(Err(WireError::Malformed(format!(
                    "item ends at {end}, outside the {} bytes received",
                    bytes.len()
                ))));
                continue;
            };
            start = end;
            each(read_whole(slice));
        }
    });
}
