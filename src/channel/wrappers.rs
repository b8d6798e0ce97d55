//! [`SimpleQueue`] and [`JoinableQueue`]: a [`Queue`] with fewer methods,
//! and one that counts unfinished tasks.

use super::queue::{Queue, deadline};
use super::ring::Wake;
use super::wait::sleep;
use crate::error::{Error, RecvError, SendError};
use crate::sys::eventfd;
use crate::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A queue with only `put`, `get`, `is_empty` and `close` (Python's
/// `multiprocessing.SimpleQueue`): a [`Queue`] without the bound and the
/// timeouts.
///
/// # Examples
/// ```
/// let q = multiproc::SimpleQueue::new().unwrap();
/// q.put((1u8, "one".to_string())).unwrap();
/// assert!(!q.is_empty());
/// assert_eq!(q.get().unwrap(), (1, "one".to_string()));
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct SimpleQueue<T> {
    queue: Queue<T>,
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<SimpleQueue<T>, Error> {
        Ok(SimpleQueue {
            queue: Queue::new()?,
        })
    }

    /// As [`Queue::put`].
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        self.queue.put(value)
    }

    /// As [`Queue::get`].
    ///
    /// # Errors
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T, RecvError> {
        self.queue.get()
    }
}

impl<T> SimpleQueue<T> {
    /// As [`Queue::is_empty`].
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// As [`Queue::close`].
    pub fn close(&self) {
        self.queue.close()
    }
}

/// A [`Queue`] that also counts unfinished tasks (Python's
/// `JoinableQueue`): every `put` adds one, every
/// [`task_done`](JoinableQueue::task_done) removes one, and
/// [`join`](JoinableQueue::join) waits until none is left.
///
/// It derefs to its [`Queue`] for `put`, `get` and the rest.
///
/// A consumer that dies between `get` and `task_done` leaves its task
/// unfinished for ever: use [`join_timeout`](JoinableQueue::join_timeout)
/// where that can happen.
///
/// # Examples
/// ```
/// use multiproc::{JoinableQueue, Process};
///
/// fn worker(q: JoinableQueue<u32>) {
///     while let Ok(n) = q.get() {
///         assert!(n < 10);
///         q.task_done().unwrap();
///     }
/// }
///
/// # multiproc::init();
/// let q = JoinableQueue::new().unwrap();
/// let w = Process::builder().daemon(true).spawn(worker, q.clone()).unwrap();
/// for n in 0..10 {
///     q.put(n).unwrap();
/// }
/// q.join_timeout(std::time::Duration::from_secs(30)).unwrap();
/// assert!(q.is_empty());
/// w.kill().unwrap();
/// ```
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> std::ops::Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new() -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue holding at most `n` messages.
    ///
    /// # Errors
    /// As [`Queue::bounded`].
    pub fn bounded(n: usize) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            queue: Queue::bounded(n)?,
        })
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task taken from the queue as finished.
    ///
    /// # Errors
    /// Called more times than messages were put ([`Error::is_misuse`]).
    pub fn task_done(&self) -> Result<(), Error> {
        let ring = self.queue.ring();
        let done = ring.done();
        let mut d = done.load(Ordering::Acquire);
        loop {
            if d >= ring.put_count() {
                return Err(Error::misuse(
                    "task_done() called more times than there were tasks",
                ));
            }
            match done.compare_exchange_weak(d, d + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => d = now,
            }
        }
        ring.fence();
        if ring.should_ring(Wake::Join) {
            eventfd::ring(self.queue.join_bell());
        }
        Ok(())
    }

    fn all_done(&self) -> bool {
        let ring = self.queue.ring();
        ring.done().load(Ordering::Acquire) >= ring.put_count()
    }

    fn wait_done(&self, deadline: Option<Instant>) -> Result<(), Error> {
        loop {
            if self.all_done() {
                return Ok(());
            }
            let slept = sleep(
                self.queue.ring(),
                Wake::Join,
                self.queue.join_bell(),
                None,
                deadline,
                |_| self.all_done(),
            )
            .map_err(|e| Error::io("waiting for the queue's tasks", e))?;
            if slept == super::wait::Slept::Timeout {
                return Err(Error::timeout());
            }
        }
    }

    /// Waits until every message put has been marked done.
    ///
    /// # Errors
    /// Only if the OS fails the wait.
    pub fn join(&self) -> Result<(), Error> {
        self.wait_done(None)
    }

    /// As [`join`](JoinableQueue::join), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::is_timeout`] when tasks were still unfinished at the deadline.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.wait_done(deadline(timeout))
    }
}

/// `Clone` and [`Waitable`] for the wrappers around a [`Queue`]: the
/// inner queue's.
macro_rules! delegate_to_queue {
    ($($name:ident),*) => {$(
        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name {
                    queue: self.queue.clone(),
                }
            }
        }

        impl<T> Waitable for $name<T> {
            fn ready_fd(&self) -> BorrowedFd<'_> {
                self.queue.ready_fd()
            }
            fn arm(&self, on: bool) {
                self.queue.arm(on)
            }
            fn ready_now(&self) -> Option<bool> {
                self.queue.ready_now()
            }
            fn settle(&self) {
                self.queue.settle()
            }
        }
    )*};
}

delegate_to_queue!(SimpleQueue, JoinableQueue);
