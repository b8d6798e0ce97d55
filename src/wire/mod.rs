//! Frames and codec: how values cross a process boundary.
//!
//! Values are encoded with serde in [postcard]'s format: written by our
//! own serializer ([`ser`], byte for byte postcard's, without its copy per
//! integer), read by our own decoder ([`de`]) for pool results and headers
//! and by postcard's for channel messages (see [`decode`]). Types that own an OS
//! resource (a descriptor) cannot be written as bytes, so while a value is
//! encoded a thread-local **handle table** is active: such a type pushes a
//! duplicate of its descriptor into the table and writes only the index
//! ([`Fd`] is the first such type; pipes, queues and shared memory reuse the
//! mechanism). The transport sends the table with `SCM_RIGHTS`; on the other
//! side decoding runs with the received descriptors installed, and each index
//! is taken out of the table exactly once. An out-of-range or reused index is
//! a decode error, never a panic, and descriptors nobody claimed are closed.
//!
//! [`frame`] puts an encoded value on a `SOCK_SEQPACKET` socket: small ones
//! inline in one message, large ones in a sealed memfd sent by descriptor,
//! so that a sender never blocks on a reader for the size of its payload.

mod de;
mod each;
pub(crate) mod fd;
pub(crate) mod frame;
pub(crate) mod handles;
mod ser;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use de::{DecodeError, Decoder};
pub(crate) use each::{EachWriter, decode_each, decode_run_into};
pub use fd::Fd;
use ser::{EncodeError, Fixed, encode_to};

/// Why bytes from another process could not be turned back into a value.
#[derive(Debug)]
pub(crate) enum WireError {
    /// The message is shorter than its header says, or has trailing bytes.
    Malformed(String),
    /// The codec refused the bytes (wrong type, bad variant, bad UTF-8...).
    Codec(String),
    /// The transport failed.
    Io(std::io::Error),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed(m) => write!(f, "malformed frame: {m}"),
            WireError::Codec(m) => write!(f, "undecodable value: {m}"),
            WireError::Io(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        WireError::Io(e)
    }
}

thread_local! {
    /// The active encode table: a pointer to the `Vec` on the stack of the
    /// innermost `encode` running on this thread (null: none). A plain
    /// pointer in a `const` thread-local costs two stores per message,
    /// which matters on the channels' hot path.
    static ENCODE_TABLE: Cell<*mut Vec<OwnedFd>> = const { Cell::new(std::ptr::null_mut()) };
    static DECODE_TABLE: Cell<*mut Vec<Option<OwnedFd>>> = const { Cell::new(std::ptr::null_mut()) };
    /// A decode error's message, noted where it happens: postcard's reader
    /// (still [`decode`]'s) drops custom messages. Every entry point clears
    /// it first.
    static HANDLE_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Whether `HANDLE_ERROR` may hold something (saves a look-up per message).
    static HAS_HANDLE_ERROR: Cell<bool> = const { Cell::new(false) };
}

fn note_handle_error(msg: String) -> String {
    let _ = HANDLE_ERROR.try_with(|e| *e.borrow_mut() = Some(msg.clone()));
    HAS_HANDLE_ERROR.set(true);
    msg
}

fn take_handle_error() -> Option<String> {
    if !HAS_HANDLE_ERROR.replace(false) {
        return None;
    }
    HANDLE_ERROR
        .try_with(|h| h.borrow_mut().take())
        .ok()
        .flatten()
}

/// Why a value could not be encoded: its own message (which the
/// encoder, unlike postcard's, keeps), the noted one cleared.
fn encode_error(e: EncodeError) -> WireError {
    let noted = take_handle_error();
    match e {
        EncodeError::Custom(msg) => WireError::Codec(msg),
        EncodeError::Full => WireError::Codec(noted.unwrap_or_else(|| e.to_string())),
    }
}

/// Makes `table` the active one for its lifetime and restores the previous
/// one when dropped, even by panic, so that nested encodes (a value encoded
/// inside a `Serialize` impl) work.
struct Install<T: 'static> {
    key: &'static std::thread::LocalKey<Cell<*mut T>>,
    previous: *mut T,
}

impl<T: 'static> Install<T> {
    /// # Safety
    /// `table` must stay valid, and be touched only through the thread-local
    /// pointer, until the returned guard is dropped.
    unsafe fn new(key: &'static std::thread::LocalKey<Cell<*mut T>>, table: *mut T) -> Self {
        Install {
            key,
            previous: key.replace(table),
        }
    }
}

impl<T: 'static> Drop for Install<T> {
    fn drop(&mut self) {
        self.key.set(self.previous);
    }
}

/// Runs `f` with the active table of `key`, if there is one.
fn with_table<T: 'static, R>(
    key: &'static std::thread::LocalKey<Cell<*mut T>>,
    f: impl FnOnce(&mut T) -> Result<R, String>,
) -> Result<R, String> {
    let ptr = key.get();
    if ptr.is_null() {
        return Err("this value owns an OS handle and can only be sent by multiproc".to_owned());
    }
    // SAFETY: a non-null pointer was installed by `Install::new`, whose
    // caller keeps the table alive and untouched until the guard is dropped
    // (which resets the pointer); `f` gets the only reference while it runs
    // (a nested encode installs a different table).
    f(unsafe { &mut *ptr })
}

/// Encodes `value`, collecting the descriptors it owns into a handle table.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
) -> Result<(Vec<u8>, Vec<OwnedFd>), WireError> {
    encode_into(value, Vec::new())
}

/// As [`encode`], appending to `buf` (whose spare room is kept: a caller
/// that knows about how large the bytes will be allocates once).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: Vec<u8>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), WireError> {
    let mut fds = Vec::new();
    // SAFETY: `fds` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&ENCODE_TABLE, &mut fds) };
    take_handle_error();
    let mut bytes = buf;
    let done = encode_to(value, &mut bytes).map_err(encode_error);
    drop(guard);
    done?;
    Ok((bytes, fds))
}

/// Appends `value`, which owns no handle (a header), to `out`; on failure
/// `out` is left as it was.
pub(crate) fn encode_plain_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let mark = out.len();
    encode_to(value, out).map_err(|e| {
        out.truncate(mark);
        encode_error(e)
    })
}

thread_local! {
    /// Reused encode buffer of the channels' hot path.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers larger than this are not kept after use.
const SCRATCH_KEEP: usize = 1 << 20;

/// Bytes of the stack buffer a small message is first encoded into.
const SMALL: usize = 512;

thread_local! {
    /// This thread's last message did not fit in [`SMALL`] bytes: the next
    /// one goes straight to the vector.
    static LAST_LARGE: Cell<bool> = const { Cell::new(false) };
}

/// Encodes `value` and hands the bytes and the collected handles to `f`,
/// with no allocation per message: into an uninitialised stack buffer
/// when it fits in [`SMALL`] bytes (no thread-local vector to borrow and
/// give back), else into a reused per-thread buffer. A value that does not fit is serialized a second time
/// (into the vector; its handles are collected anew), unless this thread's
/// previous message was large too.
pub(crate) fn encode_with<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8], Vec<OwnedFd>) -> R,
) -> Result<R, WireError> {
    if !LAST_LARGE.try_with(Cell::get).unwrap_or(false) {
        let mut small = [MaybeUninit::<u8>::uninit(); SMALL];
        let mut fds = Vec::new();
        // SAFETY: `fds` outlives the guard and is not used until it is dropped.
        let guard = unsafe { Install::new(&ENCODE_TABLE, &mut fds) };
        take_handle_error();
        let mut out = Fixed::new(&mut small);
        let encoded = encode_to(value, &mut out);
        drop(guard);
        if encoded.is_ok() {
            return Ok(f(out.written(), fds));
        }
        // Too large (whatever error says so: a `Serialize` impl may turn
        // our `Full` into an error of its own), or a real error, which the
        // vector's pass reports. What was collected is closed.
    }
    encode_large(value, f)
}

/// [`encode_with`] for a message over [`SMALL`] bytes.
fn encode_large<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8], Vec<OwnedFd>) -> R,
) -> Result<R, WireError> {
    let mut buf = SCRATCH
        .try_with(|s| {
            s.try_borrow_mut()
                .map(|mut b| std::mem::take(&mut *b))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    buf.clear();
    let mut fds = Vec::new();
    // SAFETY: `fds` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&ENCODE_TABLE, &mut fds) };
    take_handle_error();
    let encoded = encode_to(value, &mut buf).map_err(encode_error);
    drop(guard);
    encoded?;
    let _ = LAST_LARGE.try_with(|l| l.set(buf.len() > SMALL));
    let out = f(&buf, fds);
    if buf.capacity() <= SCRATCH_KEEP {
        let _ = SCRATCH.try_with(|s| {
            if let Ok(mut b) = s.try_borrow_mut() {
                *b = buf;
            }
        });
    }
    Ok(out)
}

/// Decodes a `T` that owns no handle (a control envelope), with no handle
/// table: usable at any moment, even in an `atexit` handler.
pub(crate) fn decode_plain<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    match take_plain::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(trailing(rest.len())),
        Err(e) => Err(WireError::Codec(e.0)),
    }
}

/// Decodes a `T` that owns no handle (a header) from the front of `bytes`:
/// the value and the bytes after it.
#[inline]
pub(crate) fn take_plain<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), DecodeError> {
    let mut de = Decoder::new(bytes);
    let value = T::deserialize(&mut de)?;
    Ok((value, de.rest()))
}

/// Runs `read` with `fds` installed as the decode handle table, and
/// closes the descriptors the value did not claim. No table is built for
/// a message without handles: a fifth of a small message's decoding went
/// to this function's own costs.
#[inline(always)]
fn with_handles<R>(fds: Vec<OwnedFd>, read: impl FnOnce() -> R) -> R {
    let mut table: Vec<Option<OwnedFd>> = match fds.is_empty() {
        true => Vec::new(),
        false => fds.into_iter().map(Some).collect(),
    };
    // SAFETY: `table` outlives the guard and is not used until it is dropped.
    let guard = unsafe { Install::new(&DECODE_TABLE, &mut table) };
    take_handle_error();
    let out = read();
    drop(guard);
    drop(table);
    out
}

/// Decodes a `T` from `bytes`, with `fds` as the handle table. Trailing
/// bytes are an error; descriptors the value did not claim are closed.
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, WireError> {
    // Postcard's reader here, not ours ([`de`]): with ours, a queue's
    // consumer caught up with its producer more often, and the pair fell
    // into a mode (both on one CPU, it seems) three times slower, in most
    // runs of `queue_throughput`; see `bench/RESULTS.md`, 2026-11-25.
    with_handles(fds, || {
        let mut de = postcard::Deserializer::from_bytes(bytes);
        match (T::deserialize(&mut de), de.finalize()) {
            (Ok(value), Ok([])) => Ok(value),
            (Ok(_), Ok(rest)) => Err(trailing(rest.len())),
            (Err(e), _) | (_, Err(e)) => Err(codec_error(e)),
        }
    })
}

/// As [`decode`], read by our own decoder ([`de`]): for a pool chunk's
/// arguments, decoded by a worker that does nothing else meanwhile (the
/// reason [`decode`] keeps postcard's does not arise there).
pub(crate) fn decode_fast<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<T, WireError> {
    with_handles(fds, || read_whole(bytes))
}

/// Reads a `T` that must take all of `bytes` with our decoder, under the
/// handle table installed (if any).
#[inline]
fn read_whole<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    take_handle_error();
    let mut de = Decoder::new(bytes);
    match (T::deserialize(&mut de), de.rest()) {
        (Ok(value), []) => Ok(value),
        (Ok(_), rest) => Err(trailing(rest.len())),
        (Err(e), _) => Err(decode_error(e)),
    }
}

/// Why postcard refused bytes: the message noted where it happened (a
/// handle's, or [`remember_error`]'s), else postcard's own.
#[cold]
fn codec_error(e: postcard::Error) -> WireError {
    match take_handle_error() {
        Some(msg) => WireError::Codec(msg),
        None => WireError::Codec(e.to_string()),
    }
}

/// Keeps a decode error's message for the caller of [`decode`]: postcard
/// drops the messages of `serde::de::Error::custom`.
pub(crate) fn remember_error(msg: String) -> String {
    note_handle_error(msg)
}

/// Why a value could not be decoded: its own message (which our decoder,
/// unlike postcard's, keeps), the noted one cleared.
#[cold]
fn decode_error(e: DecodeError) -> WireError {
    take_handle_error();
    WireError::Codec(e.0)
}

#[cold]
fn trailing(n: usize) -> WireError {
    WireError::Malformed(format!("{n} trailing bytes after the value"))
}

/// Called by a resource-owning type's `Serialize`: puts a duplicate of `fd`
/// into the active handle table and returns its index.
pub(crate) fn push_handle(fd: BorrowedFd<'_>) -> Result<u32, String> {
    with_table(&ENCODE_TABLE, |table| {
        if table.len() >= crate::sys::socket::MAX_FDS {
            return Err(format!(
                "a message can carry at most {} handles",
                crate::sys::socket::MAX_FDS
            ));
        }
        let dup =
            crate::sys::dup_cloexec(fd).map_err(|e| format!("cannot duplicate handle: {e}"))?;
        table.push(dup);
        Ok((table.len() - 1) as u32)
    })
    .map_err(note_handle_error)
}

/// Called by a resource-owning type's `Deserialize`: takes the descriptor
/// at `index` out of the active handle table.
pub(crate) fn take_handle(index: u32) -> Result<OwnedFd, String> {
    with_table(&DECODE_TABLE, |table| {
        let len = table.len();
        table
            .get_mut(index as usize)
            .ok_or_else(|| format!("handle index {index} out of range (message carried {len})"))?
            .take()
            .ok_or_else(|| format!("handle index {index} used twice"))
    })
    .map_err(note_handle_error)
}

#[cfg(test)]
mod test;
