//! [`Condition`]: Python's `multiprocessing.Condition`, in the shape of
//! `std::sync::Condvar`.

use super::lock::{Lock, LockGuard};
use super::raw::Wait;
use crate::error::{Error, LockResult, OwnerDied};
use crate::shared::block::{Block, Elem, Kind, State, shared_serde};
use crate::sys::futex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[repr(C)]
struct CondState {
    /// Bumped by every notify: the futex word waiters sleep on.
    seq: AtomicU32,
    /// How many are (about to be) asleep; as in `Event`, a stale count
    /// after a waiter's death only costs a useless wake-up.
    sleepers: AtomicU32,
}

// SAFETY: repr(C), atomics only, all-zero is "no notification, nobody waits".
unsafe impl State for CondState {}

#[derive(Clone)]
struct Seq {
    block: Block,
}

impl Seq {
    fn from_block(block: Block) -> Seq {
        Seq { block }
    }
}

shared_serde!(Seq, CondState, Kind::Condition, Elem::NONE);

/// Whether a timed wait returned because its timeout passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the timeout passed (rather than a notification arriving).
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

/// A condition variable shared between processes (Python's
/// `multiprocessing.Condition`), tied to one [`Lock`].
///
/// As with `std::sync::Condvar`: take the lock, check your condition, and
/// [`wait`](Self::wait) with the guard while it is false; the wait releases
/// the lock while asleep and takes it back before returning. Change the
/// state under the lock, then [`notify_one`](Self::notify_one),
/// [`notify`](Self::notify) or [`notify_all`](Self::notify_all) (holding
/// the lock or not). No notification is lost, but a wait may also return
/// without one (a spurious wake-up): loop, or use
/// [`wait_while`](Self::wait_while).
///
/// Python's default lock is an `RLock`; here it is a [`Lock`], because a
/// wait must release the lock entirely, which a re-entrant lock taken
/// several times cannot promise.
///
/// # Examples
/// ```
/// use multiproc::{Condition, Process, Value};
///
/// fn producer((cond, ready): (Condition, Value<u8>)) {
///     let _g = cond.acquire().unwrap();
///     ready.set(1);
///     cond.notify_all();
/// }
///
/// let cond = Condition::new().unwrap();
/// let ready = Value::new(0u8).unwrap();
/// let guard = cond.acquire().unwrap();
/// let mut child = Process::spawn(producer, (cond.clone(), ready.clone())).unwrap();
/// let guard = cond.wait_while(guard, |_| ready.get() == 0).unwrap();
/// assert_eq!(ready.get(), 1);
/// drop(guard);
/// child.join().unwrap();
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct Condition {
    lock: Lock,
    seq: Seq,
}

impl Condition {
    /// Creates a condition with a new [`Lock`].
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new() -> Result<Condition, Error> {
        Condition::with_lock(Lock::new()?)
    }

    /// Creates a condition tied to `lock` (Python's `Condition(lock)`).
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn with_lock(lock: Lock) -> Result<Condition, Error> {
        let block = Block::create::<CondState>(Kind::Condition, Elem::NONE, 0, |_| Ok(()))?;
        Ok(Condition {
            lock,
            seq: Seq { block },
        })
    }

    /// The condition's lock.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }

    /// Acquires the condition's lock (see [`Lock::acquire`]).
    ///
    /// # Errors
    /// [`OwnerDied`] if its previous holder died holding it.
    pub fn acquire(&self) -> LockResult<LockGuard<'_>> {
        self.lock.acquire()
    }

    fn state(&self) -> &CondState {
        self.seq.block.state()
    }

    /// Releases the lock held by `guard`, sleeps until notified, and takes
    /// the lock back.
    ///
    /// # Errors
    /// [`OwnerDied`] with the guard if, while this thread slept, a holder
    /// of the lock died holding it.
    ///
    /// # Panics
    /// If `guard` holds another lock than this condition's.
    pub fn wait<'a>(&self, guard: LockGuard<'a>) -> LockResult<LockGuard<'a>> {
        self.wait_until(guard, None).map(|(g, _)| g).map_err(|e| {
            let (g, _) = e.into_inner();
            OwnerDied::new(g)
        })
    }

    /// [`wait`](Self::wait) for at most `timeout`.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout<'a>(
        &self,
        guard: LockGuard<'a>,
        timeout: Duration,
    ) -> LockResult<(LockGuard<'a>, WaitTimeoutResult)> {
        self.wait_until(guard, Wait::timeout(timeout).deadline())
    }

    /// Waits while `condition` holds, re-checking it (under the lock) after
    /// every wake-up; returns with the lock held and the condition false.
    ///
    /// # Errors
    /// As [`wait`](Self::wait); the condition is not re-checked then.
    pub fn wait_while<'a>(
        &self,
        mut guard: LockGuard<'a>,
        mut condition: impl FnMut(&mut LockGuard<'a>) -> bool,
    ) -> LockResult<LockGuard<'a>> {
        while condition(&mut guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait_while`](Self::wait_while) for at most `timeout` in all.
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout_while<'a>(
        &self,
        mut guard: LockGuard<'a>,
        timeout: Duration,
        mut condition: impl FnMut(&mut LockGuard<'a>) -> bool,
    ) -> LockResult<(LockGuard<'a>, WaitTimeoutResult)> {
        let deadline = Wait::timeout(timeout).deadline();
        while condition(&mut guard) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            guard = self.wait_until(guard, deadline)?.0;
        }
        Ok((guard, WaitTimeoutResult(false)))
    }

    fn wait_until<'a>(
        &self,
        guard: LockGuard<'a>,
        deadline: Option<Instant>,
    ) -> LockResult<(LockGuard<'a>, WaitTimeoutResult)> {
        assert!(
            guard.lock().block().same(self.lock.block()),
            "Condition::wait with the guard of another lock"
        );
        let s = self.state();
        // Read under the lock: a notify that follows a state change made
        // under the lock after this point bumps `seq` past `seen`.
        let seen = s.seq.load(SeqCst);
        s.sleepers.fetch_add(1, SeqCst);
        let lock = guard.lock();
        drop(guard);
        futex::wait(&s.seq, seen, deadline);
        s.sleepers.fetch_sub(1, SeqCst);
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d) && s.seq.load(SeqCst) == seen;
        match lock.acquire() {
            Ok(g) => Ok((g, WaitTimeoutResult(timed_out))),
            Err(e) => Err(OwnerDied::new((
                e.into_inner(),
                WaitTimeoutResult(timed_out),
            ))),
        }
    }

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes at most `n` waiters (Python's `notify(n)`).
    pub fn notify(&self, n: u32) {
        let s = self.state();
        s.seq.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            futex::wake(&s.seq, n);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}
