//! Process control: fork, exec, pidfds, reaping, signals and parent-death.

use super::{cvt, cvt_long};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// How a process ended, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum RawExit {
    /// It called `exit(code)` (or returned from `main`).
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

/// Opens a pidfd for `pid`: readable once the process has ended, and a
/// race-free target for signals even after the pid is reused.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // (close-on-exec by definition) that nobody else owns.
    unsafe {
        let fd = cvt_long(libc::syscall(libc::SYS_pidfd_open, pid, 0))?;
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// Sends `signal` to the process behind `pidfd`. A process that has already
/// ended is not an error.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a null siginfo is allowed (the kernel fills in a default one).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match cvt_long(ret) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        other => other.map(drop),
    }
}

fn decode_siginfo(info: &libc::siginfo_t) -> Option<RawExit> {
    // SAFETY: after a successful waitid the si_pid/si_status union members
    // are the ones the kernel filled in for a child event.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return None;
    }
    match info.si_code {
        libc::CLD_EXITED => Some(RawExit::Code(status)),
        _ => Some(RawExit::Signal(status)),
    }
}

/// Reaps the child behind `pidfd` (our own child). With `nohang`, returns
/// `None` while it still runs.
pub(crate) fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<RawExit>> {
    const P_PIDFD: libc::idtype_t = 3;
    loop {
        // SAFETY: an all-zero siginfo is valid storage for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | if nohang { libc::WNOHANG } else { 0 };
        // SAFETY: `info` is valid writable storage for the call.
        let ret =
            unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        match cvt(ret) {
            Ok(_) => return Ok(decode_siginfo(&info)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reaps any one ended child without blocking: `Some((pid, how))`, or
/// `None` when no child has ended (or there is no child at all).
pub(crate) fn reap_any() -> Option<(i32, RawExit)> {
    // SAFETY: an all-zero siginfo is valid storage for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is valid writable storage for the call.
    let ret = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG) };
    if ret == -1 {
        return None;
    }
    // SAFETY: see decode_siginfo.
    let pid = unsafe { info.si_pid() };
    decode_siginfo(&info).map(|how| (pid, how))
}

/// Result of [`fork`] as seen by each side.
#[derive(Debug)]
pub(crate) enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child has this pid.
    Parent(i32),
}

/// `fork()`.
///
/// # Safety
/// The caller must be single-threaded, or the child must restrict itself to
/// async-signal-safe calls until it execs or exits: another thread may have
/// held a lock (the allocator's, stdio's) at the moment of the fork, and in
/// the child that lock is held forever.
pub(crate) unsafe fn fork() -> io::Result<Forked> {
    // SAFETY: forwarded to the caller (see `# Safety`).
    let pid = cvt(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid)
    })
}

/// Asks the kernel to send `signal` to us when our parent (precisely: the
/// parent *thread* that forked us) ends, then checks that the parent is still
/// `expected_parent`; if it already changed, the signal will never come, so
/// we exit at once.
pub(crate) fn die_with_parent(signal: i32, expected_parent: i32) {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is involved.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    if super::getppid() != expected_parent {
        super::exit_now(1);
    }
}

/// Sets the kernel's short name of the calling thread (what `ps -o comm` shows).
pub(crate) fn set_process_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    bytes.push(0);
    // SAFETY: `bytes` is NUL-terminated and at most 16 bytes, as PR_SET_NAME requires.
    unsafe { libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

/// Leaves the caller's session and process group (`setsid`), so that a
/// terminal's signals aimed at its starter do not reach it, and moves to
/// `/` so that it keeps no directory busy.
pub(crate) fn detach() -> io::Result<()> {
    // SAFETY: setsid takes no arguments; it fails only for a group leader.
    cvt(unsafe { libc::setsid() })?;
    // SAFETY: the path is a valid NUL-terminated string.
    cvt(unsafe { libc::chdir(c"/".as_ptr()) }).map(drop)
}

/// Raises the soft limit on open descriptors to `want`, or to the hard
/// limit if that is lower. Returns the soft limit now in force.
pub(crate) fn raise_fd_limit(want: u64) -> io::Result<u64> {
    // SAFETY: an all-zero rlimit is valid storage for getrlimit to fill.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is valid writable storage.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let target = want.min(lim.rlim_max);
    if lim.rlim_cur < target {
        lim.rlim_cur = target;
        // SAFETY: `lim` is a valid rlimit; the soft limit stays within the hard one.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    }
    Ok(lim.rlim_cur)
}

/// Sends `signal` to `pid` (for processes we hold no pidfd of).
pub(crate) fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    cvt(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Blocks `SIGCHLD` in the calling thread and returns a non-blocking
/// signalfd that becomes readable when a child ends.
pub(crate) fn sigchld_fd() -> io::Result<OwnedFd> {
    // SAFETY: [1] an all-zero sigset is valid storage that sigemptyset then
    // initialises; [2] sigprocmask and signalfd only read that set; [3] the
    // returned descriptor is fresh and ours alone.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        cvt(libc::sigprocmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Empties a signalfd (its only use is as a doorbell).
pub(crate) fn drain_signalfd(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; std::mem::size_of::<libc::signalfd_siginfo>() * 8];
    loop {
        // SAFETY: `buf` is valid writable storage of the stated length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
    }
}

/// Unblocks every signal and resets the dispositions a child must not
/// inherit from the fork server (`SIGCHLD` blocked, `SIGPIPE` ignored is kept
/// as Rust programs expect).
pub(crate) fn reset_signals_for_child() {
    // SAFETY: [1] an all-zero sigset is valid storage, then initialised;
    // [2] sigprocmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Ignores `SIGPIPE`, as the Rust runtime does before `main`, so that a
/// write to a closed pipe is an `EPIPE` error rather than a silent death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a standard disposition for SIGPIPE is always allowed.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Replaces the process image with `/proc/self/exe` (the same binary), with
/// `argv0` as its only argument and the current environment plus `extra_env`.
/// Returns only on failure.
pub(crate) fn exec_self(argv0: &str, extra_env: &[(String, String)]) -> io::Error {
    let to_c = |s: String| CString::new(s).unwrap_or_else(|_| CString::from(c"?"));
    let arg0 = to_c(argv0.to_owned());
    let argv = [arg0.as_ptr(), std::ptr::null()];
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| {
            !extra_env
                .iter()
                .any(|(ek, _)| k.as_encoded_bytes() == ek.as_bytes())
        })
        .map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv).unwrap_or_else(|_| CString::from(c"MULTIPROC_BAD_ENV=1"))
        })
        .collect();
    env.extend(extra_env.iter().map(|(k, v)| to_c(format!("{k}={v}"))));
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: `argv` and `envp` are NUL-terminated arrays of pointers to
    // NUL-terminated strings, all alive for the duration of the call.
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Whether process `pid` exists and has not ended, and when it started (in
/// clock ticks since boot, from `/proc/<pid>/stat`): `None` if there is no
/// such process or it is a zombie (ended, not yet reaped). The start time
/// tells a live process from a later one that reused the number.
pub(crate) fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and ')' included: the fields we want follow its last ')'.
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return None;
    }
    // Field 22 (starttime); `state` was field 3.
    fields.nth(22 - 4)?.parse().ok()
}
