//! [`Lock`] and [`RLock`]: Python's `multiprocessing.Lock` and `RLock`, as
//! guards.

use super::raw::{RawMutex, Wait, lock_result, try_result};
use crate::error::{Error, LockResult, TryLockResult};
use crate::shared::block::{Block, Elem, Kind, shared_serde};
use crate::sys::mutex::Type;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

macro_rules! define_lock {
    (
        $(#[$doc:meta])*
        $name:ident, $guard:ident, $kind:expr, $type:expr, $what:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            block: Block,
        }

        impl $name {
            #[doc = concat!("Creates an unlocked ", $what, ".")]
            ///
            /// # Errors
            /// If the shared memory cannot be created (out of memory or of
            /// descriptors).
            pub fn new() -> Result<$name, Error> {
                Block::create::<RawMutex>($kind, Elem::NONE, 0, |m| m.init($type))
                    .map(Self::from_block)
            }

            fn from_block(block: Block) -> Self {
                $name { block }
            }

            fn raw(&self) -> &RawMutex {
                self.block.state::<RawMutex>()
            }

            fn guard(&self) -> $guard<'_> {
                $guard {
                    lock: self,
                    _not_send: PhantomData,
                }
            }

            /// Waits until the lock is free and takes it; the guard releases
            /// it when dropped.
            ///
            /// # Errors
            /// [`OwnerDied`](crate::OwnerDied), holding the guard, if the
            /// previous holder died holding the lock.
            ///
            /// # Panics
            /// If the calling thread already holds a `Lock` (it would wait
            /// forever, as `std::sync::Mutex` would).
            pub fn acquire(&self) -> LockResult<$guard<'_>> {
                match self.raw().acquire(Wait::Forever) {
                    Some(a) => lock_result(a, self.guard()),
                    None => unreachable!("an unbounded acquire returns only once it holds the lock"),
                }
            }

            /// Takes the lock if it is free now.
            ///
            /// # Errors
            /// [`TryLockError::WouldBlock`](crate::TryLockError::WouldBlock)
            /// if someone holds it; `OwnerDied` as for
            /// [`acquire`](Self::acquire).
            pub fn try_acquire(&self) -> TryLockResult<$guard<'_>> {
                try_result(self.raw().acquire(Wait::Never), || self.guard())
            }

            /// Waits at most `timeout` for the lock.
            ///
            /// # Errors
            /// [`TryLockError::WouldBlock`](crate::TryLockError::WouldBlock)
            /// if the timeout passed; `OwnerDied` as for
            /// [`acquire`](Self::acquire).
            pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<$guard<'_>> {
                try_result(self.raw().acquire(Wait::timeout(timeout)), || self.guard())
            }

            #[allow(dead_code)] // used by `Condition`, which takes a `Lock` only
            pub(crate) fn block(&self) -> &Block {
                &self.block
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        shared_serde!($name, RawMutex, $kind, Elem::NONE);

        #[doc = concat!("Proof that this thread holds a [`", stringify!($name), "`]; dropping it releases the lock.")]
        ///
        /// Not `Send`: the lock belongs to the thread that took it.
        #[must_use = "the lock is released as soon as the guard is dropped"]
        pub struct $guard<'a> {
            lock: &'a $name,
            _not_send: PhantomData<*const ()>,
        }

        impl<'a> $guard<'a> {
            #[doc = concat!("The [`", stringify!($name), "`] this guard holds.")]
            pub fn lock(&self) -> &'a $name {
                self.lock
            }
        }

        impl Drop for $guard<'_> {
            fn drop(&mut self) {
                // SAFETY: the guard exists only while this thread holds it.
                unsafe { self.lock.raw().release() }
            }
        }

        impl fmt::Debug for $guard<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard)).finish_non_exhaustive()
            }
        }
    };
}

define_lock!(
    /// A lock shared between processes (Python's `multiprocessing.Lock`):
    /// at most one thread of one process holds it at a time.
    ///
    /// [`acquire`](Self::acquire) returns a guard that releases the lock
    /// when dropped. If a holder dies holding it (a `SIGKILL`, a crash), the
    /// kernel releases it at once and the next acquirer gets
    /// [`OwnerDied`](crate::OwnerDied) carrying the guard: see there how to
    /// recover. Taking it twice in one thread panics rather than deadlock.
    ///
    /// A `Lock` is a handle: clones, and copies sent to other processes (as
    /// a [`Process::spawn`](crate::Process::spawn) argument, through a
    /// [`Pipe`](crate::Pipe) or a [`Queue`](crate::Queue)), are the same lock.
    ///
    /// # Examples
    /// ```
    /// use multiproc::{Lock, Process};
    /// use std::time::Duration;
    ///
    /// fn try_in_child(lock: Lock) -> bool {
    ///     lock.acquire_timeout(Duration::from_millis(50)).is_ok()
    /// }
    ///
    /// let lock = Lock::new().unwrap();
    /// let guard = lock.acquire().unwrap();
    /// let held = Process::spawn(try_in_child, lock.clone()).unwrap().join().unwrap();
    /// assert!(!held, "the child could not take it while we hold it");
    /// drop(guard);
    /// assert!(Process::spawn(try_in_child, lock).unwrap().join().unwrap());
    /// ```
    Lock, LockGuard, Kind::Lock, Type::ErrorCheck, "lock"
);

define_lock!(
    /// A re-entrant lock shared between processes (Python's
    /// `multiprocessing.RLock`): the thread holding it may take it again,
    /// and it is free once every guard is dropped.
    ///
    /// Owner death is handled as for [`Lock`]: the next acquirer gets
    /// [`OwnerDied`](crate::OwnerDied), whatever depth the dead holder had
    /// reached.
    ///
    /// # Examples
    /// ```
    /// use multiproc::RLock;
    ///
    /// let lock = RLock::new().unwrap();
    /// let outer = lock.acquire().unwrap();
    /// let inner = lock.acquire().unwrap(); // the same thread: no deadlock
    /// drop(inner);
    /// drop(outer);
    /// assert!(lock.try_acquire().is_ok());
    /// ```
    RLock, RLockGuard, Kind::RLock, Type::Recursive, "re-entrant lock"
);
