//! [`Pipe`] and [`Connection`]: a typed two-way (or one-way) link between
//! two processes.

use super::fault_of;
use super::lane::{BYTES, Block, Fail, Lane};
use super::ring::{HEADER_LEN, Ring, Wake};
use super::wait::peer_gone;
use crate::error::{Error, Fault, RecvError, RecvTimeoutError, SendError, TryRecvError};
use crate::sys::{eventfd, shm::Region, socket};
use crate::wait::Waitable;
use crate::wire;
use crate::wire::handles::Handles;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

/// Bytes of each direction's ring: what a sender may get ahead of its
/// receiver before `send` waits (a pipe's buffer, four times Linux's).
const CAP: u64 = 256 << 10;
/// Messages larger than this stream through the ring in chunks.
const INLINE_MAX: usize = (CAP / 4) as usize;
const DATA_OFFSET: usize = 4096;
const REGION_LEN: usize = DATA_OFFSET + 2 * CAP as usize;

/// Creates connected pairs of [`Connection`]s (Python's
/// `multiprocessing.Pipe`).
///
/// # Examples
/// ```
/// use multiproc::{Connection, Pipe, Process};
///
/// fn child(conn: Connection<String>) {
///     let n = conn.recv().unwrap();
///     conn.send(format!("{n}!")).unwrap();
/// }
///
/// # multiproc::init();
/// let (here, there) = Pipe::new().unwrap();
/// let mut p = Process::spawn(child, there).unwrap();
/// here.send("hello".to_string()).unwrap();
/// assert_eq!(here.recv().unwrap(), "hello!");
/// p.join().unwrap();
/// ```
#[derive(Debug)]
pub struct Pipe;

/// A type with no values: the message type of a direction a one-way
/// [`Pipe::simplex`] connection cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Never {}

impl Pipe {
    /// A two-way pair carrying `T` both ways.
    ///
    /// # Errors
    /// The OS refused the shared memory, socket or doorbells.
    #[allow(
        clippy::new_ret_no_self,
        reason = "a pipe is its two ends, as in Python"
    )]
    pub fn new<T>() -> Result<(Connection<T>, Connection<T>), Error> {
        Pipe::with_types()
    }

    /// A two-way pair carrying `A` one way and `B` the other: the first
    /// end sends `A` and receives `B`.
    ///
    /// # Errors
    /// As [`Pipe::new`].
    ///
    /// # Examples
    /// ```
    /// let (a, b) = multiproc::Pipe::with_types::<u32, String>().unwrap();
    /// a.send(3).unwrap();
    /// b.send("three".into()).unwrap();
    /// assert_eq!(b.recv().unwrap(), 3);
    /// assert_eq!(a.recv().unwrap(), "three");
    /// ```
    #[allow(clippy::type_complexity, reason = "the two ends of one pipe")]
    pub fn with_types<A, B>() -> Result<(Connection<A, B>, Connection<B, A>), Error> {
        let io = |ctx| move |e| Error::io(ctx, e);
        let region = Region::create(c"multiproc-pipe", REGION_LEN).map_err(io("pipe memory"))?;
        for i in 0..2 {
            let (hdr, data) = ring_at(&region, i);
            // SAFETY: the region is fresh, zeroed and ours alone, and
            // `ring_at` places header and data area i inside it.
            unsafe { Ring::init(hdr, data, CAP, CAP, u64::MAX) }.map_err(io("pipe lock"))?;
        }
        let (s0, s1) = socket::seqpacket_pair().map_err(io("pipe socket"))?;
        socket::grow_send_buffer(s0.as_fd());
        socket::grow_send_buffer(s1.as_fd());
        let bells = (0..4)
            .map(|_| eventfd::semaphore())
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("pipe doorbell"))?;
        let copies = bells
            .iter()
            .map(|b| b.try_clone())
            .collect::<Result<Vec<_>, _>>()
            .map_err(io("pipe doorbell"))?;
        let second = Region::open(
            region.fd().try_clone().map_err(io("pipe memory"))?,
            REGION_LEN,
        )
        .map_err(io("pipe memory"))?;
        let broken = |e: String| Error::io("pipe ring", std::io::Error::other(e));
        Ok((
            Connection::assemble(region, bells, s0, 0).map_err(broken)?,
            Connection::assemble(second, copies, s1, 1).map_err(broken)?,
        ))
    }

    /// A one-way pair `(receiver, sender)`, as Python's `Pipe(duplex=False)`.
    ///
    /// # Errors
    /// As [`Pipe::new`].
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = multiproc::Pipe::simplex().unwrap();
    /// tx.send(vec![1u8, 2]).unwrap();
    /// assert_eq!(rx.recv().unwrap(), vec![1, 2]);
    /// ```
    #[allow(clippy::type_complexity, reason = "the two ends of one pipe")]
    pub fn simplex<T>() -> Result<(Connection<Never, T>, Connection<T, Never>), Error> {
        let (tx, rx) = Pipe::with_types::<T, Never>()?;
        Ok((rx, tx))
    }
}

/// Where ring `i`'s header and data area are in a pipe's region.
fn ring_at(region: &Region, i: usize) -> (*mut u8, *mut u8) {
    debug_assert_eq!(region.len(), REGION_LEN);
    // SAFETY: both offsets are inside the REGION_LEN-byte mapping.
    unsafe {
        (
            region.ptr().add(i * HEADER_LEN),
            region.ptr().add(DATA_OFFSET + i * CAP as usize),
        )
    }
}

/// Sends `S`, receives `R`; `Send + Sync` whatever they are (values are
/// only ever encoded and decoded, never stored).
type Directions<S, R> = (fn(S), fn() -> R);

/// One end of a [`Pipe`]: sends `S`, receives `R`.
///
/// Messages are any serde types (including ones that own OS handles, such
/// as [`Fd`](crate::Fd), a [`Queue`](crate::Queue) or another
/// `Connection`); they are encoded into a shared-memory ring, so a `send`
/// that the peer is waiting for costs no system call. `send` waits while the
/// ring (256 KiB each way) is full.
///
/// A connection travels to a child as (part of) the argument of
/// [`Process::spawn`](crate::Process::spawn); one end should be used by one
/// process. When every copy of the other end is closed (dropped, or its
/// process died), `recv` returns what was sent before and then
/// [`RecvError::Disconnected`]; `send` reports
/// [`SendError::Disconnected`] once it has to wait for room (a send that
/// fits in the ring of a dead peer succeeds, as a write into a pipe buffer
/// does before the reader's exit is noticed).
///
/// As with an OS pipe, two ends that both `send` more than the ring holds
/// before either receives wait for each other for ever: let one side
/// receive (or use a thread) when both have large messages to send.
pub struct Connection<S, R = S> {
    lanes: [Lane; 2],
    sock: OwnedFd,
    side: u8,
    // Last: the rings point into it.
    region: Region,
    _types: PhantomData<Directions<S, R>>,
}

impl<S, R> std::fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<S, R> Connection<S, R> {
    /// Builds an end from its own mapping of the pipe's region, the four
    /// doorbells (data and space of ring 0, then of ring 1), its socket and
    /// its side.
    fn assemble(
        region: Region,
        bells: Vec<OwnedFd>,
        sock: OwnedFd,
        side: u8,
    ) -> Result<Self, String> {
        if side > 1 {
            return Err("connection side out of range".into());
        }
        let [d0, s0, d1, s1] =
            <[OwnedFd; 4]>::try_from(bells).map_err(|_| "connection doorbells".to_string())?;
        let lane = |i: usize, data_bell, space_bell| -> Result<Lane, String> {
            let (hdr, data) = ring_at(&region, i);
            // SAFETY: `ring_at` places the ring inside the region, which is
            // size-sealed at REGION_LEN; the connection keeps the region
            // alive as long as its rings; attach validates the contents.
            let ring = unsafe { Ring::attach(hdr, data, CAP) }?;
            Ok(Lane {
                ring,
                data_bell,
                space_bell,
            })
        };
        let lanes = [lane(0, d0, s0)?, lane(1, d1, s1)?];
        Ok(Connection {
            lanes,
            sock,
            side,
            region,
            _types: PhantomData,
        })
    }

    fn out_lane(&self) -> &Lane {
        &self.lanes[self.side as usize]
    }

    fn in_lane(&self) -> &Lane {
        &self.lanes[1 - self.side as usize]
    }

    fn send_raw(&self, kind: u32, bytes: &[u8], fds: &[OwnedFd]) -> Result<(), Fail> {
        let sock = self.sock.as_fd();
        self.out_lane().send(
            kind,
            bytes,
            fds,
            sock,
            INLINE_MAX,
            Block::Until(None),
            Some(sock),
        )
    }

    /// Sends `bytes` as they are, without encoding (Python's `send_bytes`);
    /// the peer takes them with [`recv_bytes`](Connection::recv_bytes).
    ///
    /// # Errors
    /// As [`send`](Connection::send).
    ///
    /// # Examples
    /// ```
    /// let (a, b) = multiproc::Pipe::new::<u8>().unwrap();
    /// a.send_bytes(b"raw").unwrap();
    /// assert_eq!(b.recv_bytes().unwrap(), b"raw");
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<(), SendError<()>> {
        match self.send_raw(BYTES, bytes, &[]) {
            Ok(()) => Ok(()),
            Err(Fail::Failed(f)) => Err(SendError::Failed((), f)),
            Err(_) => Err(SendError::Disconnected(())),
        }
    }

    fn recv_with<T>(
        &self,
        block: Block,
        decode: impl FnMut(u32, Cow<'_, [u8]>, Vec<OwnedFd>) -> Result<T, Fault>,
    ) -> Result<T, Fail> {
        let sock = self.sock.as_fd();
        self.in_lane().recv(sock, block, Some(sock), decode)
    }

    /// Receives the next message's bytes as they were sent (or as they were
    /// encoded, for a message sent with [`send`](Connection::send)).
    ///
    /// # Errors
    /// As [`recv`](Connection::recv).
    pub fn recv_bytes(&self) -> Result<Vec<u8>, RecvError> {
        self.recv_with(Block::Until(None), |_, bytes, _| Ok(bytes.into_owned()))
            .map_err(recv_error)
    }

    /// As [`recv_bytes`](Connection::recv_bytes), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_timeout`](Connection::recv_timeout).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = multiproc::Pipe::new::<u8>().unwrap();
    /// assert!(b.recv_bytes_timeout(Duration::from_millis(1)).is_err());
    /// a.send_bytes(b"raw").unwrap();
    /// assert_eq!(b.recv_bytes_timeout(Duration::from_secs(10)).unwrap(), b"raw");
    /// ```
    pub fn recv_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>, RecvTimeoutError> {
        self.recv_with(Block::Until(deadline(timeout)), |_, bytes, _| {
            Ok(bytes.into_owned())
        })
        .map_err(recv_timeout_error)
    }

    /// Whether a message (or the peer's end-of-file) can be received within
    /// `timeout` (`None`: wait for ever), as Python's `poll`. An OS failure
    /// counts as ready, so that the next receive reports it.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = multiproc::Pipe::new().unwrap();
    /// assert!(!b.poll(Some(Duration::ZERO)));
    /// a.send(1u8).unwrap();
    /// assert!(b.poll(Some(Duration::from_secs(10))));
    /// drop(a);
    /// assert_eq!(b.recv().unwrap(), 1);
    /// assert!(b.poll(None)); // end-of-file
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> bool {
        match crate::wait::wait(&[self], timeout) {
            Ok(ready) => !ready.is_empty(),
            Err(_) => true,
        }
    }

    /// Closes this end (the same as dropping it): once every copy is closed,
    /// the peer's receives end with `Disconnected`.
    pub fn close(self) {}
}

fn recv_error(e: Fail) -> RecvError {
    match e {
        Fail::Failed(f) => RecvError::Failed(f),
        _ => RecvError::Disconnected,
    }
}

fn decode_value<R: DeserializeOwned>(
    kind: u32,
    bytes: Cow<'_, [u8]>,
    fds: Vec<OwnedFd>,
) -> Result<R, Fault> {
    if kind == BYTES {
        return Err(Fault::codec(
            "the message was sent with send_bytes: receive it with recv_bytes",
        ));
    }
    wire::decode(&bytes, fds).map_err(fault_of)
}

impl<S: Serialize, R> Connection<S, R> {
    /// Sends `value`, waiting while the ring is full.
    ///
    /// # Errors
    /// [`SendError::Disconnected`] when the peer is gone (see the type's
    /// docs); [`SendError::Failed`] when `value` cannot be encoded. The
    /// value comes back in the error.
    pub fn send(&self, value: S) -> Result<(), SendError<S>> {
        let sent = wire::encode_with(&value, |bytes, fds| self.send_raw(0, bytes, &fds))
            .map_err(|e| Fail::Failed(Fault::codec(e.to_string())))
            .and_then(|r| r);
        match sent {
            Ok(()) => Ok(()),
            Err(Fail::Failed(f)) => Err(SendError::Failed(value, f)),
            Err(_) => Err(SendError::Disconnected(value)),
        }
    }
}

impl<S, R: DeserializeOwned> Connection<S, R> {
    /// Receives the next message, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] when the peer is gone and everything it
    /// sent has been received; [`RecvError::Failed`] when the message is
    /// not a valid `R` (it is consumed).
    pub fn recv(&self) -> Result<R, RecvError> {
        self.recv_with(Block::Until(None), decode_value)
            .map_err(recv_error)
    }

    /// Receives a message if one is there now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when there is none; otherwise as
    /// [`recv`](Connection::recv).
    pub fn try_recv(&self) -> Result<R, TryRecvError> {
        self.recv_with(Block::Never, decode_value)
            .map_err(|e| match e {
                Fail::TimedOut | Fail::WouldBlock => TryRecvError::Empty,
                Fail::Hangup => TryRecvError::Disconnected,
                Fail::Failed(f) => TryRecvError::Failed(f),
            })
    }

    /// As [`recv`](Connection::recv), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] when nothing came; otherwise as
    /// [`recv`](Connection::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<R, RecvTimeoutError> {
        self.recv_with(Block::Until(deadline(timeout)), decode_value)
            .map_err(recv_timeout_error)
    }
}

fn recv_timeout_error(e: Fail) -> RecvTimeoutError {
    match e {
        Fail::TimedOut | Fail::WouldBlock => RecvTimeoutError::Timeout,
        Fail::Hangup => RecvTimeoutError::Disconnected,
        Fail::Failed(f) => RecvTimeoutError::Failed(f),
    }
}

impl<S, R> Waitable for Connection<S, R> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.in_lane().data_bell.as_fd()
    }

    fn hangup_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.sock.as_fd())
    }

    fn arm(&self, on: bool) {
        let ring = &self.in_lane().ring;
        if on {
            ring.register(Wake::Data);
        } else {
            ring.unregister(Wake::Data);
        }
    }

    fn ready_now(&self) -> Option<bool> {
        Some(!self.in_lane().ring.is_empty() || peer_gone(self.sock.as_fd()))
    }

    fn settle(&self) {
        self.in_lane().settle_data_bell();
    }
}

impl<S, R> Serialize for Connection<S, R> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        let [l0, l1] = &self.lanes;
        Handles::serialize(
            &[
                self.region.as_fd(),
                l0.data_bell.as_fd(),
                l0.space_bell.as_fd(),
                l1.data_bell.as_fd(),
                l1.space_bell.as_fd(),
                self.sock.as_fd(),
            ],
            self.side,
            s,
        )
    }
}

impl<'de, S, R> Deserialize<'de> for Connection<S, R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let (mut fds, side) = Handles::deserialize(d, 6)?;
        if fds.len() != 6 {
            return Err(D::Error::custom("connection handles"));
        }
        let sock = fds
            .pop()
            .ok_or_else(|| D::Error::custom("connection handles"))?;
        let region = Region::open(fds.remove(0), REGION_LEN).map_err(D::Error::custom)?;
        Connection::assemble(region, fds, sock, side).map_err(D::Error::custom)
    }
}
