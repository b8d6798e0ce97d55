//! Every child this process started and has not seen end: the source of
//! [`active_children`], and of Python's exit rule.
//!
//! Python's rule at the normal end of a program: daemon children are
//! terminated, non-daemon children are joined. An `atexit` handler, registered
//! at the first spawn, applies it when `main` returns or `std::process::exit`
//! is called; a child applies it to its own children before it exits.
//!
//! A handle dropped before its child ended leaves the child here. Children
//! of the fork server are reaped by the server, so they never become zombies
//! of ours; the registry still drains their reports. Children forked
//! directly ([`StartMethod::Fork`](super::StartMethod::Fork)) are reaped by
//! the sweeps: at [`active_children`], at exit, and at a spawn whenever the
//! list has doubled since the last sweep (amortised O(1) per spawn).

use super::handle::ChildInner;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

static CHILDREN: Mutex<Vec<Arc<ChildInner>>> = Mutex::new(Vec::new());
/// Size of the list after the last full sweep at a spawn (see [`register`]).
static SWEPT_LEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static AT_EXIT: Once = Once::new();

/// How long a daemon child gets to end after `SIGTERM` at exit before `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(2);

fn children() -> MutexGuard<'static, Vec<Arc<ChildInner>>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds a freshly started child (after a sweep of the ended ones).
pub(crate) fn register(child: Arc<ChildInner>) {
    AT_EXIT.call_once(|| {
        // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds.
        unsafe { libc::atexit(at_exit) };
    });
    let mut list = children();
    // A full sweep costs a system call per listed child: run it when the
    // list has doubled since the last one, so that a program holding many
    // running children pays O(1) per spawn, amortised.
    if list.len() >= (2 * SWEPT_LEN.load(Relaxed)).max(16) {
        sweep(&mut list);
        SWEPT_LEN.store(list.len(), Relaxed);
    }
    list.push(child);
}

/// Forgets `child` (its end is known to its handle).
pub(crate) fn remove(child: &Arc<ChildInner>) {
    children().retain(|c| !Arc::ptr_eq(c, child));
}

/// Drops the children whose end is known, reaping what needs reaping. A
/// child whose state is busy (another thread waits on it) is kept.
fn sweep(list: &mut Vec<Arc<ChildInner>>) {
    list.retain(|c| !c.is_ended());
}

/// A child that is still running, as listed by [`active_children`].
#[derive(Clone, Debug)]
pub struct ActiveChild {
    inner: Arc<ChildInner>,
}

impl ActiveChild {
    /// Its operating-system process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid as u32
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether it is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Whether it is still running.
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// Sends it `SIGTERM`.
    ///
    /// # Errors
    /// The signal could not be sent (an operating-system error).
    pub fn terminate(&self) -> Result<(), crate::Error> {
        self.inner.signal(libc::SIGTERM)
    }

    /// Sends it `SIGKILL`.
    ///
    /// # Errors
    /// The signal could not be sent (an operating-system error).
    pub fn kill(&self) -> Result<(), crate::Error> {
        self.inner.signal(libc::SIGKILL)
    }
}

/// The children of this process that are still running, including those
/// whose handle was dropped (Python's `multiprocessing.active_children()`).
/// Listing them also reaps the ones that have ended.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
///
/// # multiproc::init();
/// let mut p = multiproc::Process::spawn(nap, 10_000).unwrap();
/// assert!(multiproc::active_children().iter().any(|c| c.pid() == p.pid()));
/// p.kill().unwrap();
/// let _ = p.join();
/// assert!(!multiproc::active_children().iter().any(|c| c.pid() == p.pid()));
/// ```
pub fn active_children() -> Vec<ActiveChild> {
    let mut list = children();
    sweep(&mut list);
    list.iter()
        .map(|c| ActiveChild {
            inner: Arc::clone(c),
        })
        .collect()
}

/// Python's exit rule: terminate daemon children (killing those that outlive
/// a grace period), join the others, then stop the fork server.
pub(crate) fn shutdown_children() {
    let list = std::mem::take(&mut *children());
    for c in list.iter().filter(|c| c.daemon) {
        let _ = c.signal(libc::SIGTERM);
    }
    for c in &list {
        if c.daemon {
            if c.wait_end(Some(Instant::now() + DAEMON_GRACE)).is_err() {
                let _ = c.signal(libc::SIGKILL);
                let _ = c.wait_end(Some(Instant::now() + DAEMON_GRACE));
            }
        } else {
            if !c.is_ended() {
                log::info!(
                    "joining non-daemon child {} (pid {}) before exit",
                    c.name,
                    c.pid
                );
            }
            let _ = c.wait_end(None);
        }
    }
    super::forkserver::shutdown();
}

/// In a child forked directly from this process: forget the parent's
/// children and fork server (closing our copies of their descriptors, so that
/// the fork server still sees its parent's death).
pub(crate) fn forget_after_fork() {
    drop(std::mem::take(&mut *children()));
    super::forkserver::forget_after_fork();
}

extern "C" fn at_exit() {
    // Never unwind across the C boundary.
    let _ = std::panic::catch_unwind(shutdown_children);
}
