//! [`Queue`], [`SimpleQueue`] and [`JoinableQueue`]: multi-producer,
//! multi-consumer queues across any number of processes.

use super::lane::{Block, Fail, Lane};
use super::ring::{HEADER_LEN, Ring, Wake};
use super::{fault_of, new_lane};
use crate::error::{
    Error, Fault, PutTimeoutError, RecvError, RecvTimeoutError, SendError, TryPutError,
    TryRecvError,
};
use crate::sys::{eventfd, shm::Region, socket};
use crate::wait::Waitable;
use crate::wire;
use crate::wire::handles::Handles;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Address space a queue may grow into; only pages in use cost memory.
const RESERVE: u64 = 1 << 30;
/// The ring's starting size.
const INITIAL: u64 = 256 << 10;
/// Messages larger than this travel as shared-memory files, not in the ring
/// (which grows to hold smaller ones).
const INLINE_MAX: usize = 16 << 20;
const DATA_OFFSET: usize = 4096;
const REGION_LEN: usize = DATA_OFFSET + RESERVE as usize;

#[derive(Debug)]
pub(super) struct Shared {
    lane: Lane,
    join_bell: OwnedFd,
    /// Producers send carriers here …
    tx: OwnedFd,
    /// … and consumers take them from here.
    rx: OwnedFd,
    /// `close` was called on a handle of this process.
    closed: AtomicBool,
    // Last: the ring points into it.
    region: Region,
}

impl Shared {
    fn create(bound: u64) -> Result<Shared, Error> {
        let io = |ctx| move |e| Error::io(ctx, e);
        let region = Region::create(c"multiproc-queue", REGION_LEN).map_err(io("queue memory"))?;
        // SAFETY: the region is fresh, zeroed, page-aligned and ours alone;
        // the header and the reserve both lie inside it, and `Shared` keeps
        // the region alive as long as the ring.
        let ring = unsafe {
            Ring::init(
                region.ptr(),
                region.ptr().add(DATA_OFFSET),
                INITIAL,
                RESERVE,
                bound,
            )
        }
        .map_err(io("queue lock"))?;
        let (tx, rx) = socket::seqpacket_pair().map_err(io("queue socket"))?;
        // Frames (messages carrying handles, or over 16 MiB) wait here until
        // a consumer takes them; `put` waits when it is full.
        socket::grow_send_buffer(tx.as_fd());
        Ok(Shared {
            lane: new_lane(ring)?,
            join_bell: eventfd::semaphore().map_err(io("queue doorbell"))?,
            tx,
            rx,
            closed: AtomicBool::new(false),
            region,
        })
    }
}

/// A first-in first-out queue shared by any number of processes (Python's
/// `multiprocessing.Queue`).
///
/// Clone it, pass it to [`Process::spawn`](crate::Process::spawn) as (part
/// of) the argument, or send it through another channel: every copy is the
/// same queue. Messages live in shared memory: when `put` returns, the
/// message is there, even if the putting process exits at once (Python's
/// feeder thread could lose it). A queue from [`Queue::new`] never blocks a
/// producer until it holds 1 GiB of messages; [`Queue::bounded`] blocks
/// producers at `n` messages.
///
/// Faults: a process killed while it holds the queue's lock (in the middle
/// of `put` or `get`) does not wedge the others, who go on as soon as the
/// kernel has released its lock. At most the one message in flight is lost:
/// a `put` cut short was never committed, a `get` cut short either left the
/// message in the queue or took it with it.
///
/// # Examples
/// ```
/// use multiproc::{Process, Queue};
///
/// fn produce(q: Queue<String>) {
///     for i in 0..3 {
///         q.put(format!("message {i}")).unwrap();
///     }
/// }
///
/// # multiproc::init();
/// let q = Queue::new().unwrap();
/// let mut child = Process::spawn(produce, q.clone()).unwrap();
/// child.join().unwrap();
/// // Everything put before the child exited is there.
/// assert_eq!(q.len(), 3);
/// assert_eq!(q.get().unwrap(), "message 0");
/// assert_eq!(q.get().unwrap(), "message 1");
/// assert_eq!(q.get().unwrap(), "message 2");
/// ```
pub struct Queue<T> {
    pub(super) shared: Arc<Shared>,
    pub(super) _type: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            shared: self.shared.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish()
    }
}

pub(super) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue with no bound on the number of messages.
    ///
    /// # Errors
    /// The OS refused the shared memory, socket or doorbells.
    pub fn new() -> Result<Queue<T>, Error> {
        Queue::create(u64::MAX)
    }

    /// A queue that holds at most `n` messages: [`put`](Queue::put) waits
    /// while it is full.
    ///
    /// # Errors
    /// `n == 0` ([`Error::is_misuse`]); or as [`Queue::new`].
    ///
    /// # Examples
    /// ```
    /// let q = multiproc::Queue::bounded(1).unwrap();
    /// q.put(1u8).unwrap();
    /// assert!(q.is_full());
    /// assert!(matches!(q.try_put(2), Err(multiproc::TryPutError::Full(2))));
    /// ```
    pub fn bounded(n: usize) -> Result<Queue<T>, Error> {
        if n == 0 {
            return Err(Error::misuse(
                "a bounded queue needs room for at least one message",
            ));
        }
        Queue::create(n as u64)
    }

    fn create(bound: u64) -> Result<Queue<T>, Error> {
        Ok(Queue {
            shared: Arc::new(Shared::create(bound)?),
            _type: PhantomData,
        })
    }

    fn send(&self, value: &T, block: Block) -> Result<(), Fail> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Fail::Hangup);
        }
        let s = &*self.shared;
        wire::encode_with(value, |bytes, fds| {
            s.lane
                .send(0, bytes, &fds, s.tx.as_fd(), INLINE_MAX, block, None)
        })
        .map_err(|e| Fail::Failed(Fault::codec(e.to_string())))?
    }

    /// Puts `value` at the end, waiting while a bounded queue is full.
    ///
    /// # Errors
    /// [`SendError::Disconnected`] after [`close`](Queue::close);
    /// [`SendError::Failed`] if `value` cannot be encoded or the queue is
    /// broken. The value comes back in the error.
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        match self.send(&value, Block::Until(None)) {
            Ok(()) => Ok(()),
            Err(Fail::Failed(f)) => Err(SendError::Failed(value, f)),
            Err(_) => Err(SendError::Disconnected(value)),
        }
    }

    /// As [`put`](Queue::put), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`PutTimeoutError::Timeout`] when the queue stayed full; otherwise as
    /// [`put`](Queue::put).
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), PutTimeoutError<T>> {
        match self.send(&value, Block::Until(deadline(timeout))) {
            Ok(()) => Ok(()),
            Err(Fail::TimedOut | Fail::WouldBlock) => Err(PutTimeoutError::Timeout(value)),
            Err(Fail::Hangup) => Err(PutTimeoutError::Closed(value)),
            Err(Fail::Failed(f)) => Err(PutTimeoutError::Failed(value, f)),
        }
    }

    /// Puts `value` only if there is room now.
    ///
    /// # Errors
    /// [`TryPutError::Full`] when a bounded queue is full; otherwise as
    /// [`put`](Queue::put).
    pub fn try_put(&self, value: T) -> Result<(), TryPutError<T>> {
        match self.send(&value, Block::Never) {
            Ok(()) => Ok(()),
            Err(Fail::TimedOut | Fail::WouldBlock) => Err(TryPutError::Full(value)),
            Err(Fail::Hangup) => Err(TryPutError::Closed(value)),
            Err(Fail::Failed(f)) => Err(TryPutError::Failed(value, f)),
        }
    }

    fn recv(&self, block: Block) -> Result<T, Fail> {
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(Fail::Hangup);
        }
        let s = &*self.shared;
        s.lane.recv(s.rx.as_fd(), block, None, |_, bytes, fds| {
            wire::decode(&bytes, fds).map_err(fault_of)
        })
    }

    /// Takes the first message, waiting for one.
    ///
    /// # Errors
    /// [`RecvError::Disconnected`] after [`close`](Queue::close);
    /// [`RecvError::Failed`] if the message cannot be decoded as a `T` (it
    /// is consumed) or the queue is broken.
    pub fn get(&self) -> Result<T, RecvError> {
        self.recv(Block::Until(None)).map_err(|e| match e {
            Fail::Failed(f) => RecvError::Failed(f),
            _ => RecvError::Disconnected,
        })
    }

    /// As [`get`](Queue::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvTimeoutError::Timeout`] when nothing came; otherwise as
    /// [`get`](Queue::get).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let q = multiproc::Queue::<u8>::new().unwrap();
    /// let e = q.get_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(e, multiproc::RecvTimeoutError::Timeout);
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.recv(Block::Until(deadline(timeout)))
            .map_err(|e| match e {
                Fail::TimedOut | Fail::WouldBlock => RecvTimeoutError::Timeout,
                Fail::Hangup => RecvTimeoutError::Disconnected,
                Fail::Failed(f) => RecvTimeoutError::Failed(f),
            })
    }

    /// Takes the first message if there is one now.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when there is none; otherwise as
    /// [`get`](Queue::get).
    pub fn try_get(&self) -> Result<T, TryRecvError> {
        self.recv(Block::Never).map_err(|e| match e {
            Fail::TimedOut | Fail::WouldBlock => TryRecvError::Empty,
            Fail::Hangup => TryRecvError::Disconnected,
            Fail::Failed(f) => TryRecvError::Failed(f),
        })
    }
}

impl<T> Queue<T> {
    /// How many messages the queue holds now (approximate while others put
    /// and get, as Python's `qsize`).
    pub fn len(&self) -> usize {
        self.shared.lane.ring.len() as usize
    }

    /// Whether the queue holds no message now.
    pub fn is_empty(&self) -> bool {
        self.shared.lane.ring.is_empty()
    }

    /// Whether a bounded queue is at its bound now (never, unbounded).
    pub fn is_full(&self) -> bool {
        self.shared.lane.ring.is_full()
    }

    /// Closes the queue for this process (every clone in it): later `put`
    /// and `get` here fail as disconnected. Other processes are not
    /// affected, and nothing already put is lost (Python's `close`).
    ///
    /// # Examples
    /// ```
    /// let q = multiproc::Queue::new().unwrap();
    /// q.close();
    /// assert!(matches!(q.put(1u8), Err(multiproc::SendError::Disconnected(1))));
    /// ```
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn ring(&self) -> &Ring {
        &self.shared.lane.ring
    }

    pub(crate) fn join_bell(&self) -> BorrowedFd<'_> {
        self.shared.join_bell.as_fd()
    }

    /// Puts a message already encoded (its handles indexed from 0 in `fds`).
    pub(crate) fn put_raw(&self, bytes: &[u8], fds: &[OwnedFd]) -> Result<(), Fault> {
        let s = &*self.shared;
        s.lane
            .send(
                0,
                bytes,
                fds,
                s.tx.as_fd(),
                INLINE_MAX,
                Block::Until(None),
                None,
            )
            .map_err(|e| match e {
                Fail::Failed(f) => f,
                _ => Fault::broken("the queue is closed"),
            })
    }

    /// Takes a message if there is one now (see [`get_raw`](Self::get_raw)).
    pub(crate) fn try_get_raw<R>(
        &self,
        mut f: impl FnMut(&[u8], Vec<OwnedFd>) -> R,
    ) -> Result<R, RecvTimeoutError> {
        let s = &*self.shared;
        s.lane
            .recv(s.rx.as_fd(), Block::Never, None, |_, bytes, fds| {
                Ok(f(&bytes, fds))
            })
            .map_err(|e| match e {
                Fail::TimedOut | Fail::WouldBlock => RecvTimeoutError::Timeout,
                Fail::Hangup => RecvTimeoutError::Disconnected,
                Fail::Failed(f) => RecvTimeoutError::Failed(f),
            })
    }

    /// Takes a message and hands its bytes and handles to `f`, waiting
    /// until `deadline` (`None`: no limit).
    pub(crate) fn get_raw<R>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&[u8], Vec<OwnedFd>) -> R,
    ) -> Result<R, RecvTimeoutError> {
        let s = &*self.shared;
        s.lane
            .recv(
                s.rx.as_fd(),
                Block::Until(deadline),
                None,
                |_, bytes, fds| Ok(f(&bytes, fds)),
            )
            .map_err(|e| match e {
                Fail::TimedOut | Fail::WouldBlock => RecvTimeoutError::Timeout,
                Fail::Hangup => RecvTimeoutError::Disconnected,
                Fail::Failed(f) => RecvTimeoutError::Failed(f),
            })
    }
}

impl<T> Waitable for Queue<T> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.shared.lane.data_bell.as_fd()
    }

    fn arm(&self, on: bool) {
        if on {
            self.ring().register(Wake::Data);
        } else {
            self.ring().unregister(Wake::Data);
        }
    }

    fn ready_now(&self) -> Option<bool> {
        Some(!self.is_empty())
    }

    fn settle(&self) {
        self.shared.lane.settle_data_bell();
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let q = &*self.shared;
        Handles::serialize(
            &[
                q.region.as_fd(),
                q.lane.data_bell.as_fd(),
                q.lane.space_bell.as_fd(),
                q.join_bell.as_fd(),
                q.tx.as_fd(),
                q.rx.as_fd(),
            ],
            0,
            s,
        )
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let (fds, _) = Handles::deserialize(d, 6)?;
        let [region, data_bell, space_bell, join_bell, tx, rx] =
            <[OwnedFd; 6]>::try_from(fds).map_err(|_| D::Error::custom("queue handles"))?;
        let region = Region::open(region, REGION_LEN).map_err(D::Error::custom)?;
        // SAFETY: the region was checked to be size-sealed at REGION_LEN, so
        // the header and reserve lie inside it; `Shared` keeps it alive as
        // long as the ring; the header's contents are validated by attach.
        let ring = unsafe { Ring::attach(region.ptr(), region.ptr().add(DATA_OFFSET), RESERVE) }
            .map_err(D::Error::custom)?;
        Ok(Queue {
            shared: Arc::new(Shared {
                lane: Lane {
                    ring,
                    data_bell,
                    space_bell,
                },
                join_bell,
                tx,
                rx,
                closed: AtomicBool::new(false),
                region,
            }),
            _type: PhantomData,
        })
    }
}

const _: () = assert!(HEADER_LEN <= DATA_OFFSET);
