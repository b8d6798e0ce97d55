//! One framed message on a `SOCK_SEQPACKET` socket.
//!
//! Layout of every message:
//!
//! ```text
//! magic u32 "MPF1" | storage u8 | 3 reserved bytes | envelope_len u32 | payload_len u64
//! then, when storage = INLINE: envelope bytes ++ payload bytes (the rest of the message)
//!       when storage = MEMFD:  nothing; the last attached descriptor is a sealed
//!                              memfd holding envelope ++ payload
//! ```
//!
//! The *envelope* is a small control value (which message this is); the
//! *payload* is an encoded user value whose handle table is the list of
//! descriptors attached to the message (minus the memfd). Nothing in the
//! header is trusted: lengths are checked against what actually arrived, the
//! memfd's seals and size are checked before it is mapped, and every
//! descriptor received is owned at once so that a rejected message leaks none.

use super::WireError;
use crate::sys::memfd::{Mapping, sealed_with};
use crate::sys::socket::{MAX_FDS, recv_msg, send_msg};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

const MAGIC: u32 = u32::from_le_bytes(*b"MPF1");
const HEADER: usize = 20;
/// Largest envelope + payload sent inline; larger bodies go through a memfd.
pub(crate) const INLINE_MAX: usize = 64 * 1024;
const INLINE: u8 = 0;
const MEMFD: u8 = 1;

fn header(storage: u8, env_len: usize, payload_len: usize) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4] = storage;
    h[8..12].copy_from_slice(&(env_len as u32).to_le_bytes());
    h[12..20].copy_from_slice(&(payload_len as u64).to_le_bytes());
    h
}

/// Sends `envelope` with an already-encoded `payload` and its handle table.
/// With `nonblocking`, a full socket buffer fails with `WouldBlock`.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    envelope: &impl Serialize,
    payload: &[u8],
    fds: &[OwnedFd],
    nonblocking: bool,
) -> Result<(), WireError> {
    let env = postcard::to_allocvec(envelope).map_err(|e| WireError::Codec(e.to_string()))?;
    let mut raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    if env.len() + payload.len() <= INLINE_MAX {
        let h = header(INLINE, env.len(), payload.len());
        send_msg(sock, &[&h, &env, payload], &raw, nonblocking)?;
    } else {
        let memfd = sealed_with(&[&env, payload])?;
        raw.push(memfd.as_raw_fd());
        let h = header(MEMFD, env.len(), payload.len());
        send_msg(sock, &[&h], &raw, nonblocking)?;
    }
    Ok(())
}

/// Encodes `value` as the payload (collecting its handles) and sends it.
pub(crate) fn send_value<T: Serialize + ?Sized>(
    sock: BorrowedFd<'_>,
    envelope: &impl Serialize,
    value: &T,
) -> Result<(), WireError> {
    let (bytes, fds) = super::encode(value)?;
    send(sock, envelope, &bytes, &fds, false)
}

#[derive(Debug)]
enum Body {
    Inline(Vec<u8>),
    Mapped(Mapping),
}

/// A received message: envelope, payload and the payload's handle table.
#[derive(Debug)]
pub(crate) struct Frame {
    body: Body,
    env_len: usize,
    payload_len: usize,
    fds: Vec<OwnedFd>,
}

impl Frame {
    /// Decodes the envelope.
    pub(crate) fn envelope<E: DeserializeOwned>(&self) -> Result<E, WireError> {
        super::decode_plain(&self.bytes()[..self.env_len])
    }

    fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Inline(v) => v,
            Body::Mapped(m) => m.as_slice(),
        }
    }

    /// The payload bytes.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.bytes()[self.env_len..self.env_len + self.payload_len]
    }

    /// Takes the descriptors attached to the message (the payload's handle table).
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }

    /// Decodes the payload as a `T`, consuming the handle table.
    pub(crate) fn decode_payload<T: DeserializeOwned>(&mut self) -> Result<T, WireError> {
        let fds = std::mem::take(&mut self.fds);
        super::decode(self.payload(), fds)
    }
}

thread_local! {
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; HEADER + INLINE_MAX + 1]);
}

/// Receives one frame. `Ok(None)`: the peer closed the socket. With
/// `nonblocking`, an empty socket is `Err(Io(WouldBlock))`.
pub(crate) fn recv(sock: BorrowedFd<'_>, nonblocking: bool) -> Result<Option<Frame>, WireError> {
    // The per-thread buffer is gone while the thread (or, in an `atexit`
    // handler, the process) is being torn down: fall back to a fresh one.
    RECV_BUF
        .try_with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => recv_into(sock, &mut buf, nonblocking),
            Err(_) => recv_into(sock, &mut vec![0u8; HEADER + INLINE_MAX + 1], nonblocking),
        })
        .unwrap_or_else(|_| recv_into(sock, &mut vec![0u8; HEADER + INLINE_MAX + 1], nonblocking))
}

fn recv_into(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblocking: bool,
) -> Result<Option<Frame>, WireError> {
    let got = recv_msg(sock, buf, MAX_FDS, nonblocking)?;
    if got.truncated {
        return Err(WireError::Malformed(
            "message larger than the frame limit or too many descriptors".into(),
        ));
    }
    if got.len == 0 && got.fds.is_empty() {
        return Ok(None);
    }
    parse(&buf[..got.len], got.fds).map(Some)
}

/// Checks a received message and builds the frame (the decoder's entry point,
/// fuzzed through [`parse_for_fuzz`]).
fn parse(msg: &[u8], mut fds: Vec<OwnedFd>) -> Result<Frame, WireError> {
    if msg.len() < HEADER {
        return Err(WireError::Malformed(format!(
            "{} bytes is shorter than a frame header",
            msg.len()
        )));
    }
    let magic = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
    if magic != MAGIC {
        return Err(WireError::Malformed(format!("bad magic {magic:#010x}")));
    }
    let env_len = u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]) as usize;
    let payload_len = u64::from_le_bytes(msg[12..20].try_into().unwrap_or([0xff; 8]));
    let total = (env_len as u64)
        .checked_add(payload_len)
        .filter(|t| *t <= isize::MAX as u64)
        .ok_or_else(|| WireError::Malformed("frame lengths overflow".into()))?
        as usize;
    let payload_len = payload_len as usize;
    match msg[4] {
        INLINE => {
            let body = &msg[HEADER..];
            if body.len() != total {
                return Err(WireError::Malformed(format!(
                    "header announces {total} body bytes, message carries {}",
                    body.len()
                )));
            }
            Ok(Frame {
                body: Body::Inline(body.to_vec()),
                env_len,
                payload_len,
                fds,
            })
        }
        MEMFD => {
            if msg.len() != HEADER {
                return Err(WireError::Malformed("memfd frame with inline bytes".into()));
            }
            let memfd = fds
                .pop()
                .ok_or_else(|| WireError::Malformed("memfd frame without a descriptor".into()))?;
            let map = Mapping::of_sealed(memfd.as_fd(), total)
                .map_err(|e| WireError::Malformed(e.to_string()))?;
            Ok(Frame {
                body: Body::Mapped(map),
                env_len,
                payload_len,
                fds,
            })
        }
        other => Err(WireError::Malformed(format!(
            "unknown storage kind {other}"
        ))),
    }
}

/// Runs the frame decoder on arbitrary bytes (no descriptors), then decodes
/// the envelope as `E` and the payload as `P`. For fuzzing and for the
/// garbage-input tests; never panics.
#[doc(hidden)]
pub fn parse_for_fuzz<E: DeserializeOwned, P: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(E, P), String> {
    let mut frame = parse(bytes, Vec::new()).map_err(|e| e.to_string())?;
    let env = frame.envelope::<E>().map_err(|e| e.to_string())?;
    let payload = frame.decode_payload::<P>().map_err(|e| e.to_string())?;
    Ok((env, payload))
}

/// Builds the bytes of an inline frame, as [`send`] would (for tests and the fuzz corpus).
#[doc(hidden)]
pub fn inline_frame_bytes(envelope: &impl Serialize, payload: &impl Serialize) -> Vec<u8> {
    let env = postcard::to_allocvec(envelope).unwrap_or_default();
    let pay = postcard::to_allocvec(payload).unwrap_or_default();
    let mut v = header(INLINE, env.len(), pay.len()).to_vec();
    v.extend_from_slice(&env);
    v.extend_from_slice(&pay);
    v
}

impl From<WireError> for io::Error {
    fn from(e: WireError) -> io::Error {
        match e {
            WireError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}
