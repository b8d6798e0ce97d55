//! The Fork start method: `fork()` of the caller itself.
//!
//! The fastest method, and the only one that can run a capturing closure,
//! because the child is a copy of the caller's memory. It is unsound in a
//! multi-threaded process (another thread may hold the allocator's lock at
//! the moment of the fork, and in the child that lock is held forever), so
//! the caller is checked to be single-threaded (`/proc/self/status`) and a
//! typed error is returned otherwise.

use super::child;
use super::handle::ChildInner;
use super::identity::run_caught;
use super::protocol::{ChildInfo, EnvPlan, Report};
use super::registry;
use crate::error::{Error, Kind};
use crate::sys::{self, proc};
use crate::wire::frame;
use serde::Serialize;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// Standard streams of a forked child: `None` keeps the inherited one,
/// `Some(fd)` replaces it.
pub(crate) type StdioPlan = [Option<OwnedFd>; 3];

/// Forks the caller; the child runs `f` and reports its result.
pub(crate) fn fork_child<R: Serialize>(
    info: ChildInfo,
    env: &EnvPlan,
    stdio: StdioPlan,
    f: impl FnOnce() -> R,
) -> Result<ChildInner, Error> {
    let threads = sys::thread_count().map_err(|e| Error::io("counting threads", e))?;
    if threads != 1 {
        return Err(Error::new(Kind::NotSingleThreaded(threads)));
    }
    let (parent_end, child_end) =
        crate::sys::socket::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
    // Data buffered in our stdout would otherwise be written twice.
    let _ = std::io::stdout().flush();
    let parent_pid = sys::getpid();
    // SAFETY: the caller was single-threaded a moment ago and this function
    // starts no thread, so the child is a complete copy in which any code may run.
    match unsafe { proc::fork() }.map_err(|e| Error::start(format!("fork: {e}")))? {
        proc::Forked::Child => {
            drop(parent_end);
            proc::die_with_parent(libc::SIGKILL, parent_pid);
            registry::forget_after_fork();
            for (target, fd) in stdio.iter().enumerate() {
                if let Some(fd) = fd {
                    if sys::dup2(fd.as_raw_fd(), target as i32).is_err() {
                        sys::exit_now(child::EXIT_BOOT);
                    }
                }
            }
            drop(stdio);
            super::apply_env(env);
            child::become_child(&info);
            let _ = frame::send(child_end.as_fd(), &Report::Started, &[], &[], false);
            let outcome = run_caught(f);
            child::finish(child_end, outcome)
        }
        proc::Forked::Parent(pid) => {
            drop(child_end);
            // Our own child, not yet waited for: the pid cannot be reused yet.
            let pidfd = proc::pidfd_open(pid).map_err(|e| Error::io("pidfd_open", e))?;
            Ok(ChildInner::new(
                pid,
                info.name,
                info.daemon,
                pidfd,
                parent_end,
                None,
            ))
        }
    }
}
