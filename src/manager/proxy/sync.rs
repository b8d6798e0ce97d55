//! [`LockProxy`] (with [`ManagedLockGuard`]) and [`EventProxy`].

use super::{Handle, expect_bool, expect_done, proxy_traits, unexpected};
use crate::error::Error;
use crate::manager::client::{Link, Transport};
use crate::manager::protocol::{Kind, Op, Reply, Request};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

/// A lock in a manager's server: Python's `manager.Lock()`, reachable by
/// every process that has the proxy, on this machine or another.
///
/// A guard holds one connection to the server for as long as the lock is
/// held, and the server releases the lock when that connection ends: a
/// holder that dies (even `SIGKILL`ed) does not wedge the lock, and the
/// next holder learns of it through
/// [`previous_owner_died`](ManagedLockGuard::previous_owner_died).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let manager = multiproc::Manager::start()?;
/// let lock = manager.lock()?;
/// let guard = lock.acquire()?;
/// assert!(lock.try_acquire()?.is_none()); // held
/// assert!(lock.acquire_timeout(Duration::from_millis(10))?.is_none());
/// guard.release()?;
/// let again = lock.try_acquire()?.expect("free");
/// assert!(!again.previous_owner_died());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct LockProxy {
    handle: Handle,
    _types: PhantomData<()>,
}

proxy_traits!(LockProxy, Kind::Lock, ());

impl LockProxy {
    /// Waits for the lock and takes it.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn acquire(&self) -> Result<ManagedLockGuard, Error> {
        self.acquire_inner(None)?.ok_or_else(Error::timeout)
    }

    /// As [`acquire`](LockProxy::acquire), waiting at most `timeout`;
    /// `None` when the lock stayed held.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<ManagedLockGuard>, Error> {
        self.acquire_inner(Some(timeout))
    }

    /// Takes the lock if it is free now.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn try_acquire(&self) -> Result<Option<ManagedLockGuard>, Error> {
        self.acquire_inner(Some(Duration::ZERO))
    }

    fn acquire_inner(&self, wait: Option<Duration>) -> Result<Option<ManagedLockGuard>, Error> {
        let link = &self.handle.link;
        let mut t = link.take()?;
        let request = Request::Op {
            id: self.handle.id,
            op: Op::LockAcquire(wait),
        };
        match Link::call_on(&mut t, &request, None) {
            Ok(Reply::Acquired(died)) => Ok(Some(ManagedLockGuard {
                link: link.clone(),
                id: self.handle.id,
                pid: std::process::id(),
                transport: Some(t),
                died,
            })),
            Ok(other) => Err(unexpected(other)),
            Err(e) if e.is_timeout() => {
                link.give_back(t);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A held [`LockProxy`]: released by [`release`](ManagedLockGuard::release)
/// or when dropped (a failure to release on drop is ignored: the server
/// releases the lock anyway when the guard's connection closes).
///
/// The lock belongs to the process that acquired it: a copy of the guard
/// that a [`fork`](crate::Process::fork) child inherits releases nothing
/// and leaves the connection alone.
pub struct ManagedLockGuard {
    link: Arc<Link>,
    id: u64,
    /// The process that acquired the lock: a copy of the guard in another
    /// (a `fork` child's) must not use the connection.
    pid: u32,
    /// The connection that holds the lock.
    transport: Option<Transport>,
    died: bool,
}

impl fmt::Debug for ManagedLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedLockGuard")
            .field("id", &self.id)
            .field("previous_owner_died", &self.died)
            .finish_non_exhaustive()
    }
}

impl ManagedLockGuard {
    /// Whether the previous holder's process (or connection) ended while
    /// it held the lock, so that what the lock protects may be half-done.
    pub fn previous_owner_died(&self) -> bool {
        self.died
    }

    /// Releases the lock.
    ///
    /// # Errors
    /// [`Error::is_disconnected`] when the server is gone (the lock went
    /// with it).
    pub fn release(mut self) -> Result<(), Error> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), Error> {
        let Some(mut t) = self.transport.take() else {
            return Ok(());
        };
        if self.pid != std::process::id() {
            // A copy made by fork: the connection is the acquirer's (closing
            // this process's descriptors of it does not close it).
            drop(t);
            return Ok(());
        }
        let request = Request::Op {
            id: self.id,
            op: Op::LockRelease,
        };
        let reply = Link::call_on(&mut t, &request, None)?;
        self.link.give_back(t);
        expect_done(reply)
    }
}

impl Drop for ManagedLockGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

/// An event in a manager's server: Python's `manager.Event()`.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let manager = multiproc::Manager::start()?;
/// let event = manager.event()?;
/// assert!(!event.is_set()?);
/// assert!(!event.wait_timeout(Duration::from_millis(10))?);
/// event.set()?;
/// event.wait()?;
/// event.clear()?;
/// assert!(!event.is_set()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct EventProxy {
    handle: Handle,
    _types: PhantomData<()>,
}

proxy_traits!(EventProxy, Kind::Event, ());

impl EventProxy {
    /// Sets the flag, waking every waiter.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn set(&self) -> Result<(), Error> {
        expect_done(self.handle.op(Op::EventSet)?)
    }

    /// Clears the flag.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn clear(&self) -> Result<(), Error> {
        expect_done(self.handle.op(Op::EventClear)?)
    }

    /// Whether the flag is set.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn is_set(&self) -> Result<bool, Error> {
        expect_bool(self.handle.op(Op::EventIsSet)?)
    }

    /// Waits until the flag is set.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn wait(&self) -> Result<(), Error> {
        expect_bool(self.handle.op(Op::EventWait(None))?).map(drop)
    }

    /// Waits at most `timeout` for the flag; whether it is set.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        expect_bool(self.handle.op(Op::EventWait(Some(timeout)))?)
    }
}
