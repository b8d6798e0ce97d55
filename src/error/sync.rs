//! The errors of the locks and of [`Barrier`](crate::Barrier), in
//! `std::sync`'s style: a lock whose previous holder died hands its guard
//! back inside the error, as [`std::sync::PoisonError`] does.

use std::fmt;

/// The lock was acquired, but its previous holder died holding it (killed,
/// crashed, or exited without releasing it).
///
/// The lock itself is fine and is now held through the guard inside; what
/// it protects may have been left half-updated by the dead holder. Check or
/// repair that state, then carry on with [`into_inner`](Self::into_inner).
/// Only the first locker after the death sees this error: the lock is
/// healthy again for everybody after it.
///
/// # Examples
/// ```
/// use multiproc::{Lock, OwnerDied};
///
/// let lock = Lock::new().unwrap();
/// // The usual recovery: accept the state as the dead holder left it.
/// let guard = lock.acquire().unwrap_or_else(OwnerDied::into_inner);
/// drop(guard);
/// ```
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> OwnerDied<G> {
        OwnerDied { guard }
    }

    /// The guard: the lock is held.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// A mutable reference to the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the previous holder of the lock died holding it")
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// What a blocking acquire returns: the guard, or the guard inside
/// [`OwnerDied`].
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// Why a non-blocking or timed acquire did not simply succeed.
pub enum TryLockError<G> {
    /// Acquired, after a holder's death (see [`OwnerDied`]).
    OwnerDied(OwnerDied<G>),
    /// Not acquired: someone holds it (`try_` forms) or the timeout passed
    /// (`_timeout` forms).
    WouldBlock,
}

impl<G> TryLockError<G> {
    /// Whether the lock was not acquired.
    pub fn is_would_block(&self) -> bool {
        matches!(self, TryLockError::WouldBlock)
    }
}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(e: OwnerDied<G>) -> Self {
        TryLockError::OwnerDied(e)
    }
}

impl<G> fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::OwnerDied(e) => fmt::Debug::fmt(e, f),
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
        }
    }
}

impl<G> fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryLockError::OwnerDied(e) => fmt::Display::fmt(e, f),
            TryLockError::WouldBlock => f.write_str("the lock is held by someone else"),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

/// What a non-blocking or timed acquire returns.
pub type TryLockResult<G> = Result<G, TryLockError<G>>;

/// Why [`Barrier::wait`](crate::Barrier::wait) did not pass: the barrier is
/// broken (Python's `BrokenBarrierError`), and stays broken for every party
/// until [`Barrier::reset`](crate::Barrier::reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BarrierError {
    /// It was already broken, or broken while waiting by
    /// [`abort`](crate::Barrier::abort), [`reset`](crate::Barrier::reset) or
    /// another party's timeout.
    Broken,
    /// This wait's own timeout passed; the barrier is now broken for all.
    Timeout,
    /// A process holding the barrier (pid inside) died without arriving,
    /// so the barrier could never fill; it is now broken for all.
    PartyDied(u32),
}

impl fmt::Display for BarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BarrierError::Broken => f.write_str("the barrier is broken"),
            BarrierError::Timeout => f.write_str("timed out waiting at the barrier; it is broken"),
            BarrierError::PartyDied(pid) => {
                write!(f, "process {pid} holding the barrier died; it is broken")
            }
        }
    }
}

impl std::error::Error for BarrierError {}
