//! One direction of a channel: a [`Ring`], its two doorbells, and the
//! send and receive logic (waiting is in `wait.rs`) that queues and connections
//! share.

use super::ring::{CARRIER, Consuming, PushError, Ring, Wake};
use super::wait::{Slept, peer_gone, sleep, wait_writable};
use crate::error::Fault;
use crate::sys::{self, eventfd};
use crate::wire::{WireError, frame};
use std::borrow::Cow;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The first chunk of a large connection message: `[total: u64][bytes]`.
const STREAM_HEAD: u32 = 1 << 9;
/// A further chunk of it.
const STREAM_MORE: u32 = 1 << 10;
/// Bytes per chunk of a streamed message.
const STREAM_CHUNK: usize = 32 << 10;

/// A raw-bytes record ([`Connection::send_bytes`](crate::Connection::send_bytes)).
pub(crate) const BYTES: u32 = 2;

/// How long a consumer waits for the socket part of a carrier record that
/// is already committed (it was sent before the record).
const CARRIER_WAIT: Duration = Duration::from_secs(10);

/// Whether an operation may block, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Block {
    /// Fail at once rather than wait.
    Never,
    /// Wait until the deadline (`None`: no limit).
    Until(Option<Instant>),
}

/// Why a send or a receive did not complete.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Full (send) or empty (receive), and the caller would not wait.
    WouldBlock,
    /// The deadline passed.
    TimedOut,
    /// The peer's socket end is closed.
    Hangup,
    /// See the fault.
    Failed(Fault),
}

/// A ring with its doorbells: `data` rings when a record is committed and
/// someone sleeps for data, `space` when a record is taken and someone
/// sleeps for room.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) ring: Ring,
    pub(crate) data_bell: OwnedFd,
    pub(crate) space_bell: OwnedFd,
}

fn broken(e: impl std::fmt::Display) -> Fail {
    Fail::Failed(Fault::broken(e.to_string()))
}

impl Lane {
    /// Sends one encoded message: inline in the ring, or — when it carries
    /// handles or is larger than `inline_max` — through `sock` with a
    /// carrier record in the ring.
    #[allow(
        clippy::too_many_arguments,
        reason = "internal, called from two places"
    )]
    pub(crate) fn send(
        &self,
        kind: u32,
        bytes: &[u8],
        fds: &[OwnedFd],
        sock: BorrowedFd<'_>,
        inline_max: usize,
        block: Block,
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<(), Fail> {
        let large = bytes.len() > inline_max;
        if large && fds.is_empty() && watch.is_some() {
            return self.send_stream(kind, bytes, watch);
        }
        let carrier = !fds.is_empty() || large;
        let deadline = match block {
            Block::Never => None,
            Block::Until(d) => d,
        };
        let mut last_try = false;
        loop {
            let pushed = if carrier {
                self.ring.push(kind | CARRIER, &[], deadline, |id| {
                    // Never block under the lock: a full socket is
                    // waited for below, without it.
                    frame::send(sock, &id, bytes, fds, true).map_err(|e| match e {
                        WireError::Io(e) => e,
                        other => io::Error::other(other.to_string()),
                    })
                })
            } else {
                self.ring.push(kind, &[bytes], deadline, |_| Ok(()))
            };
            match pushed {
                Ok(()) => {
                    self.ring.fence();
                    if self.ring.should_ring(Wake::Data) {
                        eventfd::ring(self.data_bell.as_fd());
                    }
                    // Pass the baton: a producer that slept for room may
                    // find some now (woken sleepers drain the bell).
                    if self.ring.should_ring(Wake::Space) {
                        eventfd::ring(self.space_bell.as_fd());
                    }
                    return Ok(());
                }
                Err(PushError::TimedOut) => return Err(Fail::TimedOut),
                Err(PushError::Fatal(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(Fail::Hangup);
                }
                Err(PushError::Fatal(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket's buffer is full of frames not yet taken.
                    let Block::Until(deadline) = block else {
                        return Err(Fail::WouldBlock);
                    };
                    if !wait_writable(sock, deadline).map_err(broken)? {
                        return Err(Fail::TimedOut);
                    }
                }
                Err(PushError::Fatal(e)) => return Err(broken(e)),
                Err(PushError::Full) => {
                    let Block::Until(deadline) = block else {
                        return Err(Fail::WouldBlock);
                    };
                    if last_try {
                        return Err(Fail::TimedOut);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        // Past the deadline, whatever `has_room` says: one
                        // more try, never a loop.
                        last_try = true;
                        continue;
                    }
                    let bell = self.space_bell.as_fd();
                    // The record's payload: a carrier's is its 8-byte id.
                    let need = if carrier { 8 } else { bytes.len() as u64 };
                    match sleep(&self.ring, Wake::Space, bell, watch, deadline, |spinning| {
                        self.ring.has_room(need, spinning, true)
                    })
                    .map_err(broken)?
                    {
                        Slept::Retry => {}
                        // One last try: room may have appeared since the
                        // sleep's last look.
                        Slept::Timeout => last_try = true,
                        Slept::Hangup => return Err(Fail::Hangup),
                    }
                }
            }
        }
    }

    /// Receives one message and hands its kind, bytes (owned when it came in
    /// chunks) and handles to `decode`. A peer hang-up (`watch`) is reported only once every
    /// message committed before it has been received.
    pub(crate) fn recv<R>(
        &self,
        sock: BorrowedFd<'_>,
        block: Block,
        watch: Option<BorrowedFd<'_>>,
        mut decode: impl FnMut(u32, Cow<'_, [u8]>, Vec<OwnedFd>) -> Result<R, Fault>,
    ) -> Result<R, Fail> {
        let deadline = match block {
            Block::Never => None,
            Block::Until(d) => d,
        };
        let mut hung_up = false;
        loop {
            let popped = self.ring.consuming(deadline).and_then(|c| {
                let first = c.take(|flags, payload| {
                    if flags & STREAM_MORE != 0 {
                        // The rest of a message whose receiver gave up.
                        return Ok(None);
                    }
                    if flags & STREAM_HEAD != 0 {
                        return Ok(Some(Err(Stream::start(flags & !STREAM_HEAD, payload))));
                    }
                    if flags & CARRIER == 0 {
                        return decode(flags, Cow::Borrowed(payload), Vec::new())
                            .map(|v| Some(Ok(v)));
                    }
                    let mut frame = take_carrier(sock, payload)?;
                    let fds = frame.take_fds();
                    decode(flags & !CARRIER, Cow::Borrowed(frame.payload()), fds)
                        .map(|v| Some(Ok(v)))
                })?;
                Ok(match first {
                    None => None,
                    Some(Err(f)) => Some(Err(f)),
                    // Skipped: look again (the ring is not empty, or sleep).
                    Some(Ok(None)) => None,
                    Some(Ok(Some(Ok(value)))) => Some(Ok(value)),
                    Some(Ok(Some(Err(stream)))) => match self.finish_stream(&c, stream, watch) {
                        Ok((kind, bytes)) => Some(decode(kind, Cow::Owned(bytes), Vec::new())),
                        Err(Fail::Hangup) => {
                            return Err(PushError::Fatal(io::ErrorKind::BrokenPipe.into()));
                        }
                        Err(Fail::Failed(f)) => Some(Err(f)),
                        Err(_) => Some(Err(Fault::broken("message cut short"))),
                    },
                })
            });
            match popped {
                Ok(Some(out)) => {
                    self.ring.fence();
                    if self.ring.should_ring(Wake::Space) {
                        eventfd::ring(self.space_bell.as_fd());
                    }
                    // Pass the baton: a woken sleeper drains the bell, so
                    // another sleeper may still need waking for what is left.
                    if self.ring.sleepers(Wake::Data).load(Ordering::Relaxed) > 0
                        && !self.ring.is_empty()
                        && self.ring.should_ring(Wake::Data)
                    {
                        eventfd::ring(self.data_bell.as_fd());
                    }
                    return out.map_err(Fail::Failed);
                }
                Ok(None) => {}
                Err(PushError::TimedOut) => return Err(Fail::TimedOut),
                Err(PushError::Fatal(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                    return Err(Fail::Hangup);
                }
                Err(PushError::Fatal(e)) => return Err(broken(e)),
                Err(PushError::Full) => return Err(broken("a receive reported a full ring")),
            }
            if hung_up {
                return Err(Fail::Hangup);
            }
            let Block::Until(deadline) = block else {
                return Err(match watch.map(peer_gone) {
                    Some(true) => Fail::Hangup,
                    _ => Fail::WouldBlock,
                });
            };
            let bell = self.data_bell.as_fd();
            match sleep(&self.ring, Wake::Data, bell, watch, deadline, |_| {
                !self.ring.is_empty()
            })
            .map_err(broken)?
            {
                Slept::Retry => {}
                Slept::Timeout => return Err(Fail::TimedOut),
                // One more look: what the peer committed before it went.
                Slept::Hangup => hung_up = true,
            }
        }
    }
}

/// A large message being received in chunks.
struct Stream {
    kind: u32,
    total: usize,
    /// `None`: the memory could not be had; the chunks are skipped.
    buf: Option<Vec<u8>>,
    got: usize,
}

impl Stream {
    fn start(kind: u32, payload: &[u8]) -> Stream {
        let (total, first) = match payload.split_first_chunk::<8>() {
            Some((t, rest)) => (u64::from_le_bytes(*t), rest),
            None => (0, &[][..]),
        };
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let mut buf = Vec::new();
        let buf = buf.try_reserve_exact(total).ok().map(|()| {
            // SAFETY: the spare capacity is memory the Vec owns.
            unsafe { crate::sys::shm::prefault(buf.as_mut_ptr(), buf.capacity()) };
            buf
        });
        let mut s = Stream {
            kind,
            total,
            buf,
            got: 0,
        };
        s.push(first);
        s
    }

    fn push(&mut self, chunk: &[u8]) {
        self.got = self.got.saturating_add(chunk.len());
        if self.got > self.total {
            self.buf = None;
        }
        if let Some(b) = &mut self.buf {
            b.extend_from_slice(chunk);
        }
    }
}

impl Lane {
    /// Sends a large message through the ring in chunks, holding the
    /// producers' lock throughout and waiting for room as the receiver
    /// takes them: both copies run at once, through a ring that stays in
    /// cache. Only for connections, whose `watch` socket tells a dead
    /// receiver.
    fn send_stream(
        &self,
        kind: u32,
        bytes: &[u8],
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<(), Fail> {
        let producing = self.ring.producing(None).map_err(|e| match e {
            PushError::Fatal(e) => broken(e),
            _ => Fail::TimedOut,
        })?;
        let total = (bytes.len() as u64).to_le_bytes();
        let mut chunks = bytes.chunks(STREAM_CHUNK);
        let mut head = true;
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let (flags, parts): (u32, [&[u8]; 2]) = if head {
                (kind | STREAM_HEAD, [&total, chunk])
            } else {
                (STREAM_MORE, [chunk, &[]])
            };
            loop {
                match producing.append(flags, &parts, None, |_| Ok(())) {
                    Ok(()) => break,
                    Err(PushError::Full) => {}
                    Err(PushError::Fatal(e)) => return Err(broken(e)),
                    Err(PushError::TimedOut) => return Err(Fail::TimedOut),
                }
                let need = parts.iter().map(|p| p.len() as u64).sum();
                match sleep(
                    &self.ring,
                    Wake::Space,
                    self.space_bell.as_fd(),
                    watch,
                    None,
                    |spinning| self.ring.has_room(need, spinning, false),
                )
                .map_err(broken)?
                {
                    Slept::Hangup => return Err(Fail::Hangup),
                    Slept::Retry | Slept::Timeout => {}
                }
            }
            self.ring.fence();
            if self.ring.should_ring(Wake::Data) {
                eventfd::ring(self.data_bell.as_fd());
            }
            head = false;
            if chunks.len() == 0 {
                return Ok(());
            }
        }
    }

    /// Takes the remaining chunks of `stream`, holding the consumers' lock.
    fn finish_stream(
        &self,
        consuming: &Consuming<'_>,
        mut stream: Stream,
        watch: Option<BorrowedFd<'_>>,
    ) -> Result<(u32, Vec<u8>), Fail> {
        while stream.got < stream.total {
            self.ring.fence();
            if self.ring.should_ring(Wake::Space) {
                eventfd::ring(self.space_bell.as_fd());
            }
            let took = consuming
                .take(|flags, payload| {
                    if flags & STREAM_MORE != 0 {
                        stream.push(payload);
                        true
                    } else {
                        false
                    }
                })
                .map_err(|e| match e {
                    PushError::Fatal(e) => broken(e),
                    _ => broken("stream"),
                })?;
            match took {
                Some(true) => continue,
                Some(false) => return Err(Fail::Failed(Fault::broken("a message was cut short"))),
                None => {}
            }
            match sleep(
                &self.ring,
                Wake::Data,
                self.data_bell.as_fd(),
                watch,
                None,
                |_| !self.ring.is_empty(),
            )
            .map_err(broken)?
            {
                Slept::Hangup if self.ring.is_empty() => return Err(Fail::Hangup),
                // The sender holds its lock until the last chunk is in: a
                // free lock and still no chunk means it died mid-message
                // (seen even when another copy of its end keeps the socket
                // open).
                _ if self.ring.is_empty() && self.ring.producers_gone() => {
                    if !self.ring.is_empty() {
                        continue;
                    }
                    return Err(Fail::Failed(Fault::broken(
                        "the sender died in the middle of a message",
                    )));
                }
                _ => {}
            }
        }
        match stream.buf {
            Some(buf) => Ok((stream.kind, buf)),
            None => Err(Fail::Failed(Fault::codec(format!(
                "cannot hold a message of {} bytes",
                stream.total
            )))),
        }
    }
}

impl Lane {
    /// For [`wait`](crate::wait) after a wake-up that found nothing: takes
    /// the stale tokens, and puts one back if a message arrived meanwhile
    /// (for the sleeper it may be meant for).
    pub(crate) fn settle_data_bell(&self) {
        let bell = self.data_bell.as_fd();
        while eventfd::take(bell) {}
        if !self.ring.is_empty() {
            eventfd::ring(bell);
        }
    }
}

/// Receives the socket part of the carrier record whose payload is `id`.
/// Parts of earlier ids are orphans (their sender died between sending the
/// part and committing the record) and are dropped.
fn take_carrier(sock: BorrowedFd<'_>, id: &[u8]) -> Result<frame::Frame, Fault> {
    let id: [u8; 8] = id
        .try_into()
        .map_err(|_| Fault::broken("carrier record of the wrong size"))?;
    let id = u64::from_le_bytes(id);
    let deadline = Instant::now() + CARRIER_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = sys::poll(&[sock], Some(left)).map_err(|e| Fault::broken(e.to_string()))?;
        if !ready[0] {
            return Err(Fault::broken(format!(
                "the data of message {id} never arrived"
            )));
        }
        let frame = match frame::recv(sock, true) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(Fault::broken("channel socket closed")),
            Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Fault::broken(e.to_string())),
        };
        let got: u64 = frame.envelope().map_err(|e| Fault::broken(e.to_string()))?;
        if got == id {
            return Ok(frame);
        }
        if got > id {
            return Err(Fault::broken(format!(
                "the data of message {id} is missing (found {got})"
            )));
        }
    }
}
