//! [`Process`]: a function run in a child process, and its handle.
//!
//! See the crate docs for the tour. The pieces, bottom up:
//! `boot` (who takes over a fresh process), `identity` (how a function is
//! named across processes), `protocol` (the control messages), `child` (the
//! child side), `forkserver`, `fork` (the start methods), `handle` (waiting
//! on a child), `registry` (active children and the exit rule).

mod boot;
mod builder;
mod child;
mod current;
mod fork;
mod forkserver;
mod handle;
mod identity;
mod protocol;
mod registry;
mod status;

pub use builder::{ProcessBuilder, Stdio};
pub use current::{CurrentProcess, cpu_count, current_process, parent_pid};
pub use registry::{ActiveChild, active_children};
pub use status::ExitStatus;

pub(crate) use boot::{init, ready};
pub(crate) use child::last_panic_details;
pub(crate) use identity::{address_at, offset_of, panic_message, signature};
pub(crate) use protocol::ROLE_VAR;

use crate::error::Error;
use crate::wait::{Sentinel, Waitable};
use handle::ChildInner;
use protocol::EnvPlan;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a child process is created.
///
/// | method | cost | runs | note |
/// |---|---|---|---|
/// | `ForkServer` (default) | a fork of a small clean server | `fn(A) -> R` | the server is exec'd once, at the first spawn |
/// | `Spawn` | a fork and an exec of the program | `fn(A) -> R` | a fresh image: nothing inherited but the environment |
/// | `Fork` | a fork of the caller | any `FnOnce() -> R` | the caller must be single-threaded |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// Fork a clean, single-threaded server process (started by exec on
    /// first use), which never runs the user's `main`. The default on Linux,
    /// as in Python 3.14.
    #[default]
    ForkServer,
    /// Exec a fresh copy of the program for each child.
    Spawn,
    /// `fork()` the caller itself. Checked at run time: refused with
    /// [`Error::is_not_single_threaded`] when the caller has other threads.
    Fork,
}

/// A child process running a function, and the way to its result.
///
/// Dropping a `Process` neither kills nor detaches in a dangerous way: the
/// child goes on, stays in [`active_children`], is reaped (never left a
/// zombie) and, at the end of `main`, is joined, or terminated if it is a
/// daemon, as in Python.
///
/// # Examples
/// ```
/// use multiproc::Process;
///
/// fn square(x: u64) -> u64 { x * x }
///
/// # multiproc::init();
/// let mut p = Process::spawn(square, 12).unwrap();
/// assert!(p.pid() > 0);
/// assert_eq!(p.join().unwrap(), 144);
/// assert!(!p.is_alive());
/// assert!(p.exitcode().unwrap().success());
/// ```
#[derive(Debug)]
pub struct Process<R> {
    inner: Arc<ChildInner>,
    _result: PhantomData<fn() -> R>,
}

impl Process<()> {
    /// A [`ProcessBuilder`] to set the name, daemon flag, start method,
    /// environment or standard streams before spawning.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Starts a child that runs `f(arg)` with the default settings.
    ///
    /// # Errors
    /// As [`ProcessBuilder::spawn`].
    pub fn spawn<A>(f: fn(A) -> R, arg: A) -> Result<Process<R>, Error>
    where
        A: Serialize + DeserializeOwned,
    {
        ProcessBuilder::new().spawn(f, arg)
    }

    /// Forks the caller to run the capturing closure `f` (see
    /// [`ProcessBuilder::fork`]).
    ///
    /// # Errors
    /// As [`ProcessBuilder::fork`].
    pub fn fork(f: impl FnOnce() -> R) -> Result<Process<R>, Error> {
        ProcessBuilder::new().fork(f)
    }

    /// Waits for the child to end and returns what its function returned.
    ///
    /// # Errors
    /// The child panicked ([`Error::is_panic`], with the message, location
    /// and backtrace), was killed ([`Error::signal`]), exited before
    /// returning ([`Error::exit_code`]), failed to start
    /// ([`Error::is_start_failure`]), or its result could not be decoded
    /// ([`Error::is_decode`]). A second `join` gives
    /// [`Error::is_already_joined`].
    pub fn join(&mut self) -> Result<R, Error> {
        let result = self.inner.join(None);
        registry::remove(&self.inner);
        result
    }

    /// As [`join`](Self::join), but gives up after `timeout` with
    /// [`Error::is_timeout`], leaving the child running and the handle usable.
    ///
    /// # Errors
    /// As [`join`](Self::join), plus the timeout.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// # multiproc::init();
    /// let mut p = multiproc::Process::spawn(nap, 300).unwrap();
    /// assert!(p.join_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), 300);
    /// ```
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<R, Error> {
        let result = self.inner.join(Some(Instant::now() + timeout));
        if !result.as_ref().is_err_and(Error::is_timeout) {
            registry::remove(&self.inner);
        }
        result
    }
}

impl<R> Process<R> {
    fn from_inner(inner: Arc<ChildInner>) -> Self {
        Process {
            inner,
            _result: PhantomData,
        }
    }

    /// The child's operating-system process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid as u32
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the child is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Whether the child is still running.
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// How the child ended: `None` while it runs (or before its end has been
    /// observed), then its exit code or the signal that ended it.
    pub fn exitcode(&self) -> Option<ExitStatus> {
        self.inner.try_status()
    }

    /// Asks the child to stop: `SIGTERM`. A child that has ended is left alone.
    ///
    /// # Errors
    /// The signal could not be sent (an operating-system error).
    pub fn terminate(&self) -> Result<(), Error> {
        self.inner.signal(libc::SIGTERM)
    }

    /// Stops the child at once: `SIGKILL`. A child that has ended is left alone.
    ///
    /// # Errors
    /// The signal could not be sent (an operating-system error).
    pub fn kill(&self) -> Result<(), Error> {
        self.inner.signal(libc::SIGKILL)
    }

    /// Something [`wait`](crate::wait()) can watch: ready once the child has ended.
    pub fn sentinel(&self) -> Sentinel<'_> {
        Sentinel::new(self.inner.pidfd())
    }
}

impl<R> Waitable for Process<R> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.inner.pidfd()
    }
}

/// Applies environment and directory changes in a new child (single-threaded).
fn apply_env(env: &EnvPlan) {
    // SAFETY (for each set_var/remove_var below): this runs in a freshly
    // created child that has exactly one thread, so nothing reads the
    // environment concurrently.
    if env.clear {
        for (k, _) in std::env::vars_os() {
            unsafe { std::env::remove_var(k) };
        }
    }
    for k in &env.remove {
        // SAFETY: see above.
        unsafe { std::env::remove_var(k) };
    }
    for (k, v) in &env.set {
        // SAFETY: see above.
        unsafe { std::env::set_var(k, v) };
    }
    if let Some(dir) = &env.cwd {
        use std::os::unix::ffi::OsStrExt;
        let _ = std::env::set_current_dir(std::ffi::OsStr::from_bytes(dir));
    }
}

#[cfg(test)]
mod test;
