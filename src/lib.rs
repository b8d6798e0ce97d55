//! Python's `multiprocessing` model in Rust: run functions in child
//! processes, with typed results, crash isolation, hard timeouts and no leaks.
//!
//! ```
//! use multiproc::Process;
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() {
//!     multiproc::init(); // first line of main: a child never runs the rest
//!     let mut child = Process::spawn(square, 10).unwrap();
//!     assert_eq!(child.join().unwrap(), 100);
//! }
//! ```
//!
//! # Why processes
//! A thread shares everything with its siblings: a segfault in C code, an
//! `abort`, an out-of-memory kill or a runaway loop takes the whole program.
//! A child process fails alone: its parent gets a typed [`Error`] saying
//! whether it panicked ([`Error::is_panic`], with message and location), was
//! killed ([`Error::signal`]) or exited ([`Error::exit_code`]), and can kill
//! it at any moment ([`Process::kill`]).
//!
//! # Tour
//! - [`Process::spawn`] runs `fn(A) -> R` in a child; `A` and `R` are any
//!   serde types. [`Process::builder`] sets the [name](ProcessBuilder::name),
//!   [daemon](ProcessBuilder::daemon) flag, [`StartMethod`], environment and
//!   standard streams. On the handle: [`join`](Process::join),
//!   [`join_timeout`](Process::join_timeout), [`terminate`](Process::terminate),
//!   [`kill`](Process::kill), [`is_alive`](Process::is_alive),
//!   [`exitcode`](Process::exitcode), [`sentinel`](Process::sentinel).
//! - [`StartMethod::ForkServer`] (default), [`StartMethod::Spawn`] and
//!   [`StartMethod::Fork`]; only `Fork` runs capturing closures
//!   ([`Process::fork`]).
//! - [`current_process`], [`parent_pid`], [`cpu_count`], [`active_children`],
//!   [`wait`](wait()) on several sentinels.
//! - [`log_to_stderr`]: children's `log` records, tagged with name and pid.
//! - [`Fd`]: an OS handle that travels inside arguments and results.
//! - [`Pipe`] / [`Connection`], [`Queue`], [`SimpleQueue`],
//!   [`JoinableQueue`]: typed messages over shared-memory rings.
//! - [`Value`], [`Array`] (each with a lock: [`Value::lock`] is Python's
//!   `get_lock()`), [`RawValue`], [`RawArray`] (atomics for integers):
//!   plain data in shared memory.
//! - [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`],
//!   [`Condition`], [`Event`], [`Barrier`]: Python's synchronisation
//!   objects, each with a timeout form. A lock whose holder dies is not
//!   wedged: the next acquirer gets [`OwnerDied`] with the guard; a barrier
//!   whose party dies breaks ([`BarrierError::PartyDied`]).
//! - [`SharedMemory`]: bytes shared between processes, anonymous or named
//!   ([`create`](SharedMemory::create), [`open`](SharedMemory::open));
//!   neither the memory nor the name outlives its last owner, even killed.
//! - [`Pool`]: worker processes for `map`, `imap`, `starmap`, `apply`,
//!   [`submit`](Pool::submit) ([`TaskHandle`]s are futures; see also
//!   [`as_completed`]). A worker that dies (any signal, any exit) fails
//!   only the task it was running and is replaced; per-task timeouts and
//!   [`cancel`](TaskHandle::cancel) kill and replace a worker the same way.
//! - [`Manager`]: shared dicts, lists, namespaces, queues, locks, events,
//!   values and your own [`Managed`](manager::Managed) types in a server
//!   process, used through [proxies](manager) from any process, locally
//!   (over shared memory) or by address and authkey over TCP.
//!
//! Every handle above is a serde value: pass it to [`Process::spawn`] or
//! send it through a [`Pipe`] or [`Queue`], and both processes share the
//! same object.
//!
//! Processes that were not started together, on one machine or across a
//! network, meet through [`connection::Listener`] / [`connection::Client`]:
//! message channels over TCP or Unix sockets, open only to peers that pass
//! an authkey challenge–response (HMAC-SHA256).
//!
//! # Lifecycle guarantees
//! - A child dies with its parent, even when the parent is `SIGKILL`ed (the
//!   fork server watches its socket to the parent; children have
//!   `PR_SET_PDEATHSIG`).
//! - At the normal end of `main`, daemon children are terminated and the
//!   others joined, as in Python.
//! - No zombie, no leaked descriptor: children are reaped through pidfds or
//!   by the fork server.
//!
//! # Tests and doctests
//! Nothing to add: a link-time constructor takes over the copies of a test
//! binary that multiproc starts, before the test harness's `main` runs (see
//! [`init`]).

#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]

mod channel;
pub mod connection;
mod error;
mod logging;
pub mod manager;
mod pool;
mod process;
mod shared;
mod sync;
mod sys;
mod wait;
mod wire;

pub use channel::{Connection, JoinableQueue, Never, Pipe, Queue, SimpleQueue};
pub use error::{
    BarrierError, Error, Fault, LockResult, OwnerDied, PutTimeoutError, RecvError,
    RecvTimeoutError, SendError, TryLockError, TryLockResult, TryPutError, TryRecvError,
};
pub use logging::log_to_stderr;
pub use manager::Manager;
pub use pool::{
    AsCompleted, Imap, MapHandle, Pool, PoolBuilder, PoolProgress, TaskHandle, as_completed,
    with_worker_state,
};
pub use process::{
    ActiveChild, CurrentProcess, ExitStatus, Process, ProcessBuilder, StartMethod, Stdio,
    active_children, cpu_count, current_process, parent_pid,
};
pub use shared::{
    Array, ArrayGuard, AtomicInteger, RawArray, RawValue, SharedMemory, Value, ValueGuard,
};
pub use sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, RLock, RLockGuard, Semaphore,
    SemaphoreGuard, WaitTimeoutResult,
};
pub use wait::{Sentinel, Waitable, wait};

/// The `bytemuck` crate, for `#[derive(Pod, Zeroable)]` on your own
/// `#[repr(C)]` types stored in a [`Value`] or [`Array`]
/// (`#[bytemuck(crate = "multiproc::bytemuck")]` lets the derive find it
/// here without a direct dependency).
pub use bytemuck;
pub use wire::Fd;

#[doc(hidden)]
pub use connection::frame::{channel_frame_bytes, parse_channel_for_fuzz};
#[doc(hidden)]
pub use wire::frame::{inline_frame_bytes, parse_for_fuzz};

/// Hands control to multiproc: call it as the first line of `main`.
///
/// In the main program it returns at once. In a copy of the program started
/// by multiproc (the fork server, a child of the Spawn method) it never
/// returns: that process does its job and exits without running the rest of
/// `main`.
///
/// A link-time constructor normally does this before `main` even starts
/// (which is why tests and doctests need no call); `init` is what makes a
/// program correct when the constructor is disabled
/// (`MULTIPROC_NO_CONSTRUCTOR=1`). Without either, spawning fails with
/// [`Error::is_not_initialized`] rather than re-running `main` in the child.
///
/// # Examples
/// ```
/// fn work(x: u32) -> u32 {
///     x + 1
/// }
///
/// fn main() {
///     multiproc::init(); // a child or the fork server never gets past this line
///     let mut p = multiproc::Process::spawn(work, 1).unwrap();
///     assert_eq!(p.join().unwrap(), 2);
/// }
/// ```
pub fn init() {
    process::init();
}
