//! Synchronisation between processes: [`Lock`], [`RLock`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Condition`], [`Event`] and [`Barrier`], with
//! Python's semantics, guards in `std::sync`'s shape, and a timeout form of
//! every wait.
//!
//! `std::sync` cannot serve here: its futexes are process-private. Every
//! object lives in a shared memory block (`shared/block.rs`) that travels
//! to other processes by descriptor. Locks are glibc's robust
//! process-shared mutexes (see `sys/mutex.rs`): when a holder dies, the
//! kernel itself releases the lock and the next acquirer is told
//! [`OwnerDied`](crate::OwnerDied). Waits that are not on a lock (events,
//! conditions, barriers, semaphores) sleep on shared futex words
//! (`sys/futex.rs`). What the kernel cannot see, a barrier party that dies
//! before arriving, a semaphore permit's holder, is found by waiters that
//! look every 20 ms (`registry.rs`, the slots of `semaphore.rs`).

mod barrier;
mod condition;
mod event;
mod lock;
pub(crate) mod raw;
mod registry;
mod semaphore;

pub use barrier::Barrier;
pub use condition::{Condition, WaitTimeoutResult};
pub use event::Event;
pub use lock::{Lock, LockGuard, RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};

#[cfg(test)]
mod test;
