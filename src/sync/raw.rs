//! The robust process-shared mutex every lock here is made of, and the
//! mapping from its outcomes to the public results.

use crate::error::{LockResult, OwnerDied, TryLockError, TryLockResult};
use crate::shared::block::State;
use crate::sys::mutex::{self, Acquired, Type};
use std::cell::UnsafeCell;
use std::io;
use std::time::{Duration, Instant};

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// Until it gets the lock.
    Forever,
    /// Until the deadline.
    Until(Instant),
    /// Not at all.
    Never,
}

impl Wait {
    /// `Until(now + timeout)`, or `Forever` if that is beyond representation.
    pub(crate) fn timeout(timeout: Duration) -> Wait {
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }

    /// The deadline, if any (`Never`: now).
    pub(crate) fn deadline(self) -> Option<Instant> {
        match self {
            Wait::Forever => None,
            Wait::Until(d) => Some(d),
            Wait::Never => Some(Instant::now()),
        }
    }
}

/// A glibc robust, process-shared mutex in shared memory (see
/// `sys/mutex.rs` for why this and not a hand-made futex lock).
#[repr(C)]
pub(crate) struct RawMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: repr(C); a zeroed pthread_mutex_t is a valid (default) mutex
// before `init` makes it robust and shared; it is only touched through the
// pthread calls, which synchronise across processes.
unsafe impl State for RawMutex {}
// SAFETY: a process-shared mutex is made to be used from many threads.
unsafe impl Sync for RawMutex {}

impl RawMutex {
    /// Makes the mutex robust and process-shared, of type `kind`. Only on
    /// a fresh block, before anyone else can see it.
    pub(crate) fn init(&self, kind: Type) -> io::Result<()> {
        // SAFETY: the mutex lives in a fresh block nobody else uses yet.
        unsafe { mutex::init_typed(self.0.get(), kind) }
    }

    /// Acquires it, waiting as `wait` says; `None` if it could not.
    ///
    /// # Panics
    /// If this thread already holds a non-recursive lock (waiting would
    /// deadlock, as for `std::sync::Mutex`), or if the lock's memory was
    /// corrupted (only possible through `unsafe` code writing over it).
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Option<Acquired> {
        let m = self.0.get();
        // SAFETY: an initialised mutex in a mapping that outlives `self`.
        let r = unsafe {
            match wait {
                Wait::Never => mutex::try_lock(m),
                Wait::Forever => mutex::lock(m, None).map(Some),
                Wait::Until(d) => match mutex::lock(m, Some(d)) {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
                    other => other.map(Some),
                },
            }
        };
        match r {
            Ok(got) => got,
            // This thread holds it already: a try is simply refused, as
            // `std`'s `try_lock` would be.
            Err(e) if e.raw_os_error() == Some(libc::EDEADLK) && matches!(wait, Wait::Never) => {
                None
            }
            Err(e) if e.raw_os_error() == Some(libc::EDEADLK) => {
                panic!("this thread already holds this lock: acquiring it again would deadlock")
            }
            Err(e) => panic!("a shared lock is unusable (its memory was overwritten?): {e}"),
        }
    }

    /// Releases it.
    ///
    /// # Safety
    /// The calling thread holds it.
    #[inline]
    pub(crate) unsafe fn release(&self) {
        // SAFETY: per the contract.
        unsafe { mutex::unlock(self.0.get()) }
    }

    /// Whether its holder died and nobody has taken it since (no syscall).
    pub(crate) fn owner_died(&self) -> bool {
        // SAFETY: an initialised mutex in a mapping that outlives `self`.
        unsafe { mutex::owner_died_hint(self.0.get()) }
    }
}

/// The result of a blocking acquire that got `a`, with guard `g`.
pub(crate) fn lock_result<G>(a: Acquired, g: G) -> LockResult<G> {
    match a {
        Acquired::Clean => Ok(g),
        Acquired::OwnerDied => Err(OwnerDied::new(g)),
    }
}

/// The result of a try or timed acquire that got `a`.
pub(crate) fn try_result<G>(a: Option<Acquired>, g: impl FnOnce() -> G) -> TryLockResult<G> {
    match a {
        None => Err(TryLockError::WouldBlock),
        Some(a) => lock_result(a, g()).map_err(TryLockError::OwnerDied),
    }
}
