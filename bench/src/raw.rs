//! Raw OS bounds: the work of a workload done with bare system calls and nothing else, the floor
//! that multiproc's cost is compared with.

use std::ffi::CString;
use std::hint::black_box;
use std::io;
use std::ptr;
use std::time::Instant;

/// Makes this binary exit at once, before anything else (see `main`): the child side of
/// [`ExecSelf::fork_exec_wait`].
pub const EXEC_CHILD_ARG: &str = "--raw-exec-child";

/// Whether this process is the child of [`ExecSelf::fork_exec_wait`].
pub fn is_exec_child() -> bool {
    std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == EXEC_CHILD_ARG)
}

/// fork(), the child `_exit(0)`s at once, waitpid() for it.
pub fn fork_wait() -> io::Result<()> {
    // SAFETY: the child calls nothing but `_exit`, which is async-signal-safe.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: `_exit` never returns and touches no state of this process.
        0 => unsafe { libc::_exit(0) },
        pid => wait_success(pid),
    }
}

/// fork() + execv() of this very binary with [`EXEC_CHILD_ARG`] + waitpid(): the floor under
/// any start method that executes a fresh program.
#[derive(Debug)]
pub struct ExecSelf {
    path: CString,
    arg0: CString,
    arg1: CString,
}

impl ExecSelf {
    pub fn new() -> io::Result<Self> {
        let exe = |s: &str| CString::new(s).map_err(io::Error::other);
        Ok(ExecSelf {
            path: exe("/proc/self/exe")?,
            arg0: exe("multiproc-bench")?,
            arg1: exe(EXEC_CHILD_ARG)?,
        })
    }

    /// One fork+exec+wait; fails unless the child exited with status 0.
    pub fn fork_exec_wait(&self) -> io::Result<()> {
        // Built before fork(): the child must not allocate.
        let argv = [self.arg0.as_ptr(), self.arg1.as_ptr(), ptr::null()];
        // SAFETY: the child calls only `execv` and `_exit`, both async-signal-safe, on memory
        // prepared before the fork.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => unsafe {
                libc::execv(self.path.as_ptr(), argv.as_ptr());
                libc::_exit(127)
            },
            pid => wait_success(pid),
        }
    }
}

/// waitpid() for `pid`; an error unless it exited with status 0.
fn wait_success(pid: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid place for the wait status.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "raw child {pid} ended with wait status {status:#x}"
        )))
    }
}

/// GiB/s of one in-process `memcpy` of `len` bytes into a buffer whose pages are already
/// mapped (no page fault is timed): the best of `rounds` copies, after one unmeasured copy. The
/// floor under moving `len` bytes from one process to another, which copies them at least once.
pub fn memcpy_gib_per_s(len: usize, rounds: usize) -> f64 {
    let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut dst = vec![1u8; len];
    let mut best = f64::INFINITY;
    for round in 0..=rounds.max(1) {
        let start = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        let secs = start.elapsed().as_secs_f64();
        if round > 0 {
            best = best.min(secs);
        }
    }
    len as f64 / f64::from(1u32 << 30) / best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_wait_reaps_a_child() {
        fork_wait().unwrap();
    }

    #[test]
    fn memcpy_has_a_bandwidth() {
        let rate = memcpy_gib_per_s(1 << 20, 2);
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
    }
}
