//! Values one at a time: a pool chunk's results written one by one as its
//! tasks return, each with where it ends, so that the other side decodes
//! them in one pass or, if one of them is bad, one by one (the bad one
//! fails alone).
//!
//! Each value is encoded with a handle table installed only while it is
//! (and only if it owns a handle): the tasks that run between two values
//! see no table of ours, so that a handle they encode elsewhere fails as
//! it should.

use super::{DECODE_TABLE, ENCODE_TABLE, Install, WireError, codec_error, take_handle_error};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::os::fd::OwnedFd;

/// A postcard flavor appending to a borrowed vector: unlike `to_io` on a
/// `Vec` (a `write_all`, hence a `memmove` call, per byte: half a pool
/// worker's time on a chunk of small results), a push per byte; unlike
/// `to_extend`, the vector stays the caller's when encoding fails.
pub(super) struct Append<'a>(pub(super) &'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        append_bytes(self.0, data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `data` to `v`. Postcard hands every integer over as the few
/// bytes of its varint: for those, `extend_from_slice` (a `memcpy` call)
/// and a loop of `push`es (a length stored per byte) cost several times
/// the copy; this does it in at most three loads and stores.
#[inline]
fn append_bytes(v: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n > 16 {
        v.extend_from_slice(data);
        return;
    }
    v.reserve(16);
    let at = v.len();
    let (s, d) = (data.as_ptr(), v.as_mut_ptr());
    // SAFETY: `v` has room for 16 more bytes, and `n <= 16`: every write
    // is to `d[at..at + n]`, within its capacity; every read is from
    // `s[..n]`, within `data` (the two 8-byte or 4-byte copies overlap in
    // the middle when `n` is not their sum; unaligned reads and writes).
    // The bytes up to `at + n` are then initialized.
    unsafe {
        let d = d.add(at);
        if n >= 8 {
            let (head, tail) = (
                s.cast::<u64>().read_unaligned(),
                s.add(n - 8).cast::<u64>().read_unaligned(),
            );
            d.cast::<u64>().write_unaligned(head);
            d.add(n - 8).cast::<u64>().write_unaligned(tail);
        } else if n >= 4 {
            let (head, tail) = (
                s.cast::<u32>().read_unaligned(),
                s.add(n - 4).cast::<u32>().read_unaligned(),
            );
            d.cast::<u32>().write_unaligned(head);
            d.add(n - 4).cast::<u32>().write_unaligned(tail);
        } else if n > 0 {
            // 1 to 3 bytes: the first, the middle and the last.
            *d = *s;
            *d.add(n / 2) = *s.add(n / 2);
            *d.add(n - 1) = *s.add(n - 1);
        }
        v.set_len(at + n);
    }
}

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
    #[inline(always)]
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), WireError> {
        let (mark, handles) = (self.bytes.len(), self.fds.len());
        // First with no handle table at all (two thread-local stores fewer
        // per value, an eighth of a tiny task's cost): a value that owns a
        // handle fails then, and is written again with the table.
        take_handle_error();
        let done = postcard::serialize_with_flavor(value, Append(&mut self.bytes));
        match (done, u32::try_from(self.bytes.len())) {
            (Ok(()), Ok(end)) => {
                self.ends.push(end);
                Ok(())
            }
            _ => self.push_with_table(value, mark, handles),
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
        let done = postcard::serialize_with_flavor(value, Append(&mut self.bytes));
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
    fn undo(&mut self, e: Option<postcard::Error>, bytes: usize, handles: usize) -> WireError {
        let e = match e {
            Some(e) => codec_error(e),
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
/// (carrying no handles) that end at `ends`, appending them to `out`: far
/// cheaper than one by one into a `Result` each. `false` (and `out` as it
/// was) if any of them fails, or does not take exactly the bytes up to its
/// end: the caller then decodes them one by one, so that a bad one spoils
/// only itself (a value read past its end, even into a neighbour that then
/// decodes, is caught here).
pub(crate) fn decode_run_into<T: DeserializeOwned>(
    bytes: &[u8],
    ends: impl ExactSizeIterator<Item = usize>,
    out: &mut Vec<T>,
) -> bool {
    let mark = out.len();
    out.reserve(ends.len());
    let mut table: Vec<Option<OwnedFd>> = Vec::new();
    // SAFETY: `table` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&DECODE_TABLE, &mut table) };
    take_handle_error();
    let mut start = 0;
    let mut whole = true;
    for end in ends {
        // Each value on its own slice: it must take all of it.
        let value = bytes
            .get(start..end)
            .and_then(|slice| postcard::take_from_bytes::<T>(slice).ok());
        match value {
            Some((v, [])) => out.push(v),
            _ => {
                whole = false;
                break;
            }
        }
        start = end;
    }
    drop(guard);
    take_handle_error();
    if whole && start == bytes.len() {
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
    let mut table: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    // SAFETY: `table` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&DECODE_TABLE, &mut table) };
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
        each(match postcard::take_from_bytes::<T>(slice) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(WireError::Malformed(format!(
                "{} trailing bytes after the value",
                rest.len()
            ))),
            Err(e) => Err(codec_error(e)),
        });
    }
    drop(guard);
}
