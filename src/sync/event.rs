//! [`Event`]: Python's `multiprocessing.Event`.

use super::raw::Wait;
use crate::error::Error;
use crate::shared::block::{Block, Elem, Kind, State, shared_serde};
use crate::sys::futex;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

#[repr(C)]
struct EventState {
    /// 1 when set: also the futex word waiters sleep on.
    flag: AtomicU32,
    /// How many are (about to be) asleep: `set` skips the wake-up system
    /// call when nobody waits. A waiter that dies asleep leaves it one too
    /// high, which only costs a useless wake-up.
    sleepers: AtomicU32,
}

// SAFETY: repr(C), atomics only, all-zero is "clear, nobody waiting".
unsafe impl State for EventState {}

/// A flag that processes can set, clear and wait for (Python's
/// `multiprocessing.Event`).
///
/// [`wait`](Self::wait) returns as soon as the flag is set, at once if it
/// already is. No wake-up is ever lost: a `set` that races with a `wait`
/// either is seen by the waiter's check or wakes it.
///
/// # Examples
/// ```
/// use multiproc::{Event, Process};
///
/// fn starter(go: Event) {
///     go.set();
/// }
///
/// let go = Event::new().unwrap();
/// assert!(!go.is_set());
/// let mut child = Process::spawn(starter, go.clone()).unwrap();
/// go.wait();
/// assert!(go.is_set());
/// child.join().unwrap();
/// go.clear();
/// assert!(!go.wait_timeout(std::time::Duration::from_millis(10)));
/// ```
#[derive(Clone)]
pub struct Event {
    block: Block,
}

impl Event {
    /// Creates a clear event.
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new() -> Result<Event, Error> {
        Block::create::<EventState>(Kind::Event, Elem::NONE, 0, |_| Ok(())).map(Self::from_block)
    }

    fn from_block(block: Block) -> Self {
        Event { block }
    }

    fn state(&self) -> &EventState {
        self.block.state()
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state().flag.load(SeqCst) == 1
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        let s = self.state();
        if s.flag.swap(1, SeqCst) == 0 && s.sleepers.load(SeqCst) > 0 {
            futex::wake_all(&s.flag);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.state().flag.store(0, SeqCst);
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        self.wait_until(Wait::Forever);
    }

    /// Waits at most `timeout` for the flag; returns whether it is set.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Wait::timeout(timeout))
    }

    fn wait_until(&self, wait: Wait) -> bool {
        let s = self.state();
        let deadline = wait.deadline();
        loop {
            if s.flag.load(SeqCst) == 1 {
                return true;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return false;
            }
            // Announce the sleep before the kernel re-checks the flag: with
            // both sides SeqCst, either `set` sees a sleeper or the futex
            // sees the flag set.
            s.sleepers.fetch_add(1, SeqCst);
            futex::wait(&s.flag, 0, deadline);
            s.sleepers.fetch_sub(1, SeqCst);
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

shared_serde!(Event, EventState, Kind::Event, Elem::NONE);
