//! Event counters (`eventfd` in semaphore mode): the doorbells a sleeper in
//! `poll` waits on.
//!
//! A writer adds one token per wake-up; a woken reader takes one. Tokens
//! that nobody needed only cause a spurious wake-up, never a lost one.

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A new non-blocking, close-on-exec eventfd in semaphore mode.
pub(crate) fn semaphore() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; on success the descriptor is fresh
    // and owned by nobody else.
    unsafe {
        let fd = cvt(libc::eventfd(
            0,
            libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// Adds one token. A counter at its maximum already wakes every reader, so a
/// full counter (`EAGAIN`) is not an error.
pub(crate) fn ring(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to a descriptor we borrow.
    unsafe {
        libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8);
    }
}

/// Takes one token if there is one; `false` when there was none.
pub(crate) fn take(fd: BorrowedFd<'_>) -> bool {
    let mut value: u64 = 0;
    // SAFETY: reads at most 8 bytes into a live u64.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    n == 8
}
