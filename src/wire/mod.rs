//! Frames and codec: how values cross a process boundary.
//!
//! Values are encoded with serde and [postcard]. Types that own an OS
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

pub(crate) mod fd;
pub(crate) mod frame;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};

pub use fd::Fd;

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
    static ENCODE_TABLE: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static DECODE_TABLE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
    /// The codec drops custom error messages; handle errors are kept here.
    static HANDLE_ERROR: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn note_handle_error(msg: String) -> String {
    let _ = HANDLE_ERROR.try_with(|e| *e.borrow_mut() = Some(msg.clone()));
    msg
}

fn take_handle_error() -> Option<String> {
    HANDLE_ERROR
        .try_with(|h| h.borrow_mut().take())
        .ok()
        .flatten()
}

fn codec_error(e: postcard::Error) -> WireError {
    match take_handle_error() {
        Some(msg) => WireError::Codec(msg),
        None => WireError::Codec(e.to_string()),
    }
}

/// Restores the previous table when encoding or decoding ends, even by panic,
/// so that nested encodes (a value encoded inside a `Serialize` impl) work.
struct Restore<T: 'static> {
    key: &'static std::thread::LocalKey<RefCell<Option<T>>>,
    previous: Option<Option<T>>,
}

impl<T: 'static> Restore<T> {
    /// Installs `table`; while the thread is being torn down there is no
    /// table (values that own handles then fail to encode or decode, with
    /// an error).
    fn install(key: &'static std::thread::LocalKey<RefCell<Option<T>>>, table: T) -> Self {
        let previous = key.try_with(|t| t.replace(Some(table))).ok();
        Restore { key, previous }
    }

    fn finish(mut self) -> Option<T> {
        let prev = self.previous.take()?;
        self.key.try_with(|t| t.replace(prev)).ok().flatten()
    }
}

impl<T: 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        if let Some(prev) = self.previous.take() {
            let _ = self.key.try_with(|t| t.replace(prev));
        }
    }
}

/// Encodes `value`, collecting the descriptors it owns into a handle table.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
) -> Result<(Vec<u8>, Vec<OwnedFd>), WireError> {
    let guard = Restore::install(&ENCODE_TABLE, Vec::new());
    take_handle_error();
    let bytes = postcard::to_allocvec(value).map_err(codec_error);
    let fds = guard.finish().unwrap_or_default();
    Ok((bytes?, fds))
}

thread_local! {
    /// Reused encode buffer of the channels' hot path.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers larger than this are not kept after use.
const SCRATCH_KEEP: usize = 1 << 20;

/// Encodes `value` into a reused per-thread buffer and hands the bytes and
/// the collected handles to `f`: no allocation per message.
pub(crate) fn encode_with<T: Serialize + ?Sized, R>(
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
    let guard = Restore::install(&ENCODE_TABLE, Vec::new());
    take_handle_error();
    let encoded = postcard::to_extend(value, buf).map_err(codec_error);
    let fds = guard.finish().unwrap_or_default();
    let buf = encoded?;
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
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(WireError::Malformed(format!(
            "{} trailing bytes after the value",
            rest.len()
        ))),
        Err(e) => Err(WireError::Codec(e.to_string())),
    }
}

/// Decodes a `T` from `bytes`, with `fds` as the handle table. Trailing
/// bytes are an error; descriptors the value did not claim are closed.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, WireError> {
    let guard = Restore::install(&DECODE_TABLE, fds.into_iter().map(Some).collect());
    take_handle_error();
    let result = postcard::take_from_bytes::<T>(bytes);
    drop(guard.finish());
    match result {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(WireError::Malformed(format!(
            "{} trailing bytes after the value",
            rest.len()
        ))),
        Err(e) => Err(codec_error(e)),
    }
}

/// Called by a resource-owning type's `Serialize`: puts a duplicate of `fd`
/// into the active handle table and returns its index.
pub(crate) fn push_handle(fd: BorrowedFd<'_>) -> Result<u32, String> {
    ENCODE_TABLE
        .try_with(|t| {
            let mut t = t.borrow_mut();
            let table = t
                .as_mut()
                .ok_or("this value owns an OS handle and can only be serialized by multiproc")?;
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
        .unwrap_or_else(|_| Err("no handle table while the thread ends".to_owned()))
        .map_err(note_handle_error)
}

/// Called by a resource-owning type's `Deserialize`: takes the descriptor
/// at `index` out of the active handle table.
pub(crate) fn take_handle(index: u32) -> Result<OwnedFd, String> {
    DECODE_TABLE
        .try_with(|t| {
            let mut t = t.borrow_mut();
            let table = t
                .as_mut()
                .ok_or("this value owns an OS handle and can only be deserialized by multiproc")?;
            let len = table.len();
            table
                .get_mut(index as usize)
                .ok_or_else(|| {
                    format!("handle index {index} out of range (message carried {len})")
                })?
                .take()
                .ok_or_else(|| format!("handle index {index} used twice"))
        })
        .unwrap_or_else(|_| Err("no handle table while the thread ends".to_owned()))
        .map_err(note_handle_error)
}

#[cfg(test)]
mod test;
