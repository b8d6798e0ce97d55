//! Every raw operating-system call multiproc makes, and nothing else.
//!
//! The rest of the crate sees safe wrappers returning [`std::io::Result`]; the
//! `unsafe` needed to talk to the kernel lives here, each block with the facts
//! it rests on. Linux is the supported platform; the module boundary is where
//! another Unix would plug in.

pub(crate) mod eventfd;
pub(crate) mod futex;
pub(crate) mod memfd;
pub(crate) mod mutex;
pub(crate) mod proc;
pub(crate) mod shm;
pub(crate) mod socket;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// Turns a `-1` return into the current `errno` as an [`io::Error`].
pub(crate) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a `-1` return of a `long`-returning call (such as `syscall`) into an error.
pub(crate) fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Duplicates `fd` into a new descriptor with close-on-exec set.
pub(crate) fn dup_cloexec(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed (hence open) descriptor has no
    // memory-safety preconditions; on success it returns a fresh descriptor
    // that nobody else owns, so wrapping it in OwnedFd is sound.
    unsafe {
        let new = cvt(libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3))?;
        Ok(OwnedFd::from_raw_fd(new))
    }
}

/// Duplicates descriptor number `fd` (which may be closed: an error).
pub(crate) fn dup_cloexec_raw(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on any number is safe: a closed one is EBADF;
    // on success the new descriptor is fresh and ours alone.
    unsafe {
        let new = cvt(libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3))?;
        Ok(OwnedFd::from_raw_fd(new))
    }
}

/// Device and inode of the file open at descriptor number `fd`, if any.
pub(crate) fn fd_identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is valid storage for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid writable storage; a closed `fd` is EBADF.
    let ret = unsafe { libc::fstat(fd, &mut st) };
    (ret == 0).then_some((st.st_dev, st.st_ino))
}

/// Sets or clears `FD_CLOEXEC` on `fd`.
pub(crate) fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and write the descriptor flags.
    unsafe {
        let flags = cvt(libc::fcntl(fd, libc::F_GETFD))?;
        let new = if on {
            flags | libc::FD_CLOEXEC
        } else {
            flags & !libc::FD_CLOEXEC
        };
        if new != flags {
            cvt(libc::fcntl(fd, libc::F_SETFD, new))?;
        }
    }
    Ok(())
}

/// Closes every descriptor numbered 3 or more except those in `keep`
/// (`close_range`, Linux 5.9; on older kernels nothing is closed).
///
/// # Safety
/// No live value of the process owns a descriptor that this closes: call
/// it in a fresh process (after exec, before anything opened files of its
/// own) to drop what the exec'ing process leaked into it.
pub(crate) unsafe fn close_fds_except(keep: &[RawFd]) {
    let close_range = |first: u32, last: u32| {
        // SAFETY: close_range takes no pointers; the caller guarantees that
        // nothing owns the descriptors it closes.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    };
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    let mut first = 3;
    for fd in keep {
        if fd > first {
            close_range(first, fd - 1);
        }
        first = first.max(fd + 1);
    }
    close_range(first, u32::MAX);
}

/// `dup2(src, dst)`, retried on `EINTR`. The new descriptor has close-on-exec clear.
pub(crate) fn dup2(src: RawFd, dst: RawFd) -> io::Result<()> {
    loop {
        // SAFETY: dup2 only manipulates the descriptor table. The caller owns
        // `dst` as a slot (0, 1, 2 in a freshly forked child).
        match cvt(unsafe { libc::dup2(src, dst) }) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(drop),
        }
    }
}

/// Opens `/dev/null` for reading and writing, close-on-exec.
pub(crate) fn open_dev_null() -> io::Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(file.into())
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: forever).
///
/// Returns, for each descriptor, whether it is ready (readable, hung up or in
/// error). `EINTR` is retried with the remaining time.
pub(crate) fn poll(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => timeout_ms(d.saturating_duration_since(Instant::now())),
        };
        // SAFETY: `pfds` is a valid, exclusively borrowed array of
        // `pfds.len()` pollfd structures for the whole call.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        match cvt(ret) {
            Ok(_) => {
                return Ok(pfds
                    .iter()
                    .map(|p| {
                        p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL)
                            != 0
                    })
                    .collect());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// As [`poll`], but first polls without sleeping for up to `spin`, yielding
/// the CPU between tries. A wake-up from sleep costs tens of microseconds on
/// a virtual machine (an inter-processor interrupt); an answer expected
/// within microseconds is cheaper to catch awake. The yield lets a process
/// that shares the core (the one we wait for, often) run meanwhile.
pub(crate) fn poll_spin(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    spin: Duration,
) -> io::Result<Vec<bool>> {
    let start = Instant::now();
    let spin = timeout.map_or(spin, |t| t.min(spin));
    loop {
        let ready = poll(fds, Some(Duration::ZERO))?;
        if ready.iter().any(|r| *r) {
            return Ok(ready);
        }
        let spent = start.elapsed();
        if spent >= spin {
            return poll(fds, timeout.map(|t| t.saturating_sub(spent)));
        }
        std::thread::yield_now();
    }
}

/// `poll` on caller-built entries (their `revents` are filled in),
/// retrying on `EINTR`; returns how many entries have events.
pub(crate) fn poll_events(
    fds: &mut [libc::pollfd],
    timeout: Option<Duration>,
) -> io::Result<usize> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => timeout_ms(d.saturating_duration_since(Instant::now())),
        };
        // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd
        // structures for the whole call.
        let ret = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        match cvt(ret) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Rounds a duration up to whole milliseconds for `poll`, saturating.
fn timeout_ms(d: Duration) -> libc::c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.min(libc::c_int::MAX as u128) as libc::c_int
}

/// The calling process's id.
pub(crate) fn getpid() -> i32 {
    // SAFETY: getpid cannot fail and has no preconditions.
    unsafe { libc::getpid() }
}

/// The calling process's real user id.
pub(crate) fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

/// The calling process's operating-system parent.
pub(crate) fn getppid() -> i32 {
    // SAFETY: getppid cannot fail and has no preconditions.
    unsafe { libc::getppid() }
}

/// Number of threads in the calling process, read from `/proc/self/status`.
pub(crate) fn thread_count() -> io::Result<usize> {
    use std::io::Read;
    // Usually one read into a buffer larger than the file (about 1.5 KiB),
    // not a `read_to_string`'s size query and growing reads: this runs on
    // every `Fork` start. Only whole lines count (a line cut by the buffer
    // could read `Threads: 12` as 1); a file longer than the buffer (a
    // `Groups:` line of hundreds of groups) is read whole.
    let mut buf = [0u8; 8192];
    let mut file = std::fs::File::open("/proc/self/status")?;
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    match threads_in(&buf[..len]) {
        Some(n) => Ok(n),
        None if len == buf.len() => {
            let all = std::fs::read("/proc/self/status")?;
            threads_in(&all).ok_or_else(no_threads_line)
        }
        None => Err(no_threads_line()),
    }
}

/// The count of the `Threads:` line among the whole lines (those ending in
/// a newline) of `status`, if there is one.
pub(crate) fn threads_in(status: &[u8]) -> Option<usize> {
    let end = status.iter().rposition(|&b| b == b'\n')?;
    String::from_utf8_lossy(&status[..end])
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn no_threads_line() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "no Threads: line in /proc/self/status",
    )
}

/// Ends the calling process at once with `code`, running no destructor and
/// no `atexit` handler (`_exit`). Only async-signal-safe.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Writes all of `bytes` to `fd` with raw `write` calls (no locking, no
/// allocation), ignoring errors: for last-gasp messages in a failing child.
pub(crate) fn write_all_raw(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Identity of the running executable image: device, inode, size and
/// modification time of the file `/proc/self/exe` points at.
pub(crate) fn exe_identity() -> io::Result<[u64; 4]> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/exe")?;
    Ok([
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime_nsec() as u64 ^ ((m.mtime() as u64) << 30),
    ])
}

#[cfg(test)]
mod test;

/// Nanoseconds on `CLOCK_MONOTONIC`: one clock for every process of the
/// machine, so a stamp written by one process means the same in another.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
