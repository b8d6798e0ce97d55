//! Shared (not process-private) futex wait and wake on a 32-bit word in a
//! shared mapping: the sleeping half of every lock-free state machine in
//! `sync/`.
//!
//! `std`'s futexes use `FUTEX_PRIVATE_FLAG`, which keys the wait queue on the
//! process's own address space: a wake from another process never reaches
//! the sleeper. These calls leave the flag out, so the kernel keys the queue
//! on the underlying page, which every process mapping it shares.

use std::sync::atomic::AtomicU32;
use std::time::Instant;

/// Sleeps while `*word == expected`, until woken, until `deadline`, or
/// spuriously. Returns at once if the word already differs. The caller
/// re-checks its condition in every case.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) {
    let timeout = deadline.map(|d| {
        let left = d.saturating_duration_since(Instant::now());
        libc::timespec {
            tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: left.subsec_nanos() as libc::c_long,
        }
    });
    let ts = timeout
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned 32-bit word `word` points to
    // (valid for the call's duration) and the optional relative timespec;
    // every outcome (woken, EAGAIN, ETIMEDOUT, EINTR) only returns.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes at most `n` processes sleeping on `word`; returns how many woke.
pub(crate) fn wake(word: &AtomicU32, n: u32) -> u32 {
    let n = n.min(i32::MAX as u32) as libc::c_int;
    // SAFETY: FUTEX_WAKE only uses the word's address as a key.
    let woke = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    woke.max(0) as u32
}

/// Wakes every process sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) -> u32 {
    wake(word, i32::MAX as u32)
}
