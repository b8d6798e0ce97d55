//! Process-shared, robust mutexes: glibc's `pthread_mutex_t` with
//! `PTHREAD_PROCESS_SHARED` and `PTHREAD_MUTEX_ROBUST`, placed in shared
//! memory.
//!
//! Why not our own futex word: a lock whose holder is `SIGKILL`ed must not
//! wedge the others, and the kernel's robust-futex list is the one mechanism
//! that releases a dead thread's locks at the moment it dies (the kernel
//! walks the list on exit, marks each held lock `FUTEX_OWNER_DIED` and wakes
//! a waiter). A thread has a single robust list and glibc already owns it,
//! so the robust list is reached through glibc's robust mutexes. The next
//! locker then learns that the owner died (`EOWNERDEAD`) and decides whether
//! the protected state is usable.

use std::io;
use std::time::{Duration, Instant};

unsafe extern "C" {
    // glibc >= 2.30; the libc crate does not declare it yet.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// From a live owner, or free.
    Clean,
    /// Its previous owner died holding it; the mutex has been made
    /// consistent again, the state it protects may not be.
    OwnerDied,
}

/// Looks this many times (trying when it looks free) before sleeping in
/// the kernel, pausing twice as long after each miss up to 64 pauses: some
/// 4,000 pauses in all (tens to a couple of hundred microseconds), longer
/// than most critical sections. The growing pause matters under
/// contention: a waiter that looks at the line less often leaves its
/// holder longer runs (two processes incrementing a locked `Value` went
/// from ~5 to ~15 million a second).
const SPIN_TRIES: u32 = 64;

/// Initialises a process-shared robust mutex at `m`.
///
/// # Safety
/// `m` must be valid for writes, suitably aligned, not in use by anyone, and
/// stay mapped at that address in this process while it is used here.
pub(crate) unsafe fn init(m: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: forwarded.
    unsafe { init_typed(m, Type::Normal) }
}

/// What a mutex does when its owner locks it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// Deadlocks (cheapest; only for internal locks that never nest).
    Normal,
    /// Fails with `EDEADLK`.
    ErrorCheck,
    /// Counts the nesting; the mutex is free again after as many unlocks.
    Recursive,
}

/// [`init`] with a nesting behaviour.
///
/// # Safety
/// As [`init`].
pub(crate) unsafe fn init_typed(m: *mut libc::pthread_mutex_t, kind: Type) -> io::Result<()> {
    let kind = match kind {
        Type::Normal => libc::PTHREAD_MUTEX_NORMAL,
        Type::ErrorCheck => libc::PTHREAD_MUTEX_ERRORCHECK,
        Type::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
    };
    // SAFETY: [1] the attribute object is initialised before use and
    // destroyed after; [2] `m` is valid and unused per this fn's contract.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        check(libc::pthread_mutexattr_init(&mut attr))?;
        let r = (|| {
            check(libc::pthread_mutexattr_setpshared(
                &mut attr,
                libc::PTHREAD_PROCESS_SHARED,
            ))?;
            check(libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))?;
            check(libc::pthread_mutexattr_settype(&mut attr, kind))?;
            check(libc::pthread_mutex_init(m, &attr))
        })();
        libc::pthread_mutexattr_destroy(&mut attr);
        r
    }
}

/// Locks `m`, waiting at most until `deadline` (`None`: no limit). A passed
/// deadline is [`io::ErrorKind::TimedOut`].
///
/// # Safety
/// `m` must point to a mutex initialised by [`init`] (in any process) that
/// stays mapped while this call runs and while the lock is held.
#[inline]
pub(crate) unsafe fn lock(
    m: *mut libc::pthread_mutex_t,
    deadline: Option<Instant>,
) -> io::Result<Acquired> {
    // SAFETY: the lock word is the first `int` of the mutex (see
    // `owner_died_hint`), only ever accessed atomically.
    let word = unsafe { &*m.cast::<std::sync::atomic::AtomicU32>() };
    for i in 0..SPIN_TRIES {
        // Test before test-and-set: while someone holds it, only read the
        // word (a shared cache line), so the holder's unlock is not slowed
        // by our writes; try when it looks free (or its owner died).
        let w = word.load(std::sync::atomic::Ordering::Relaxed);
        if w == 0 || w & libc::FUTEX_OWNER_DIED != 0 {
            // SAFETY: per this fn's contract.
            if let Some(a) = unsafe { try_lock(m)? } {
                return Ok(a);
            }
        }
        // Back off more after each miss: fewer looks at a contended line
        // leave its holder longer runs.
        for _ in 0..(1u32 << i.min(6)) {
            std::hint::spin_loop();
        }
    }
    let r = match deadline {
        // SAFETY: per this fn's contract.
        None => unsafe { libc::pthread_mutex_lock(m) },
        Some(d) => {
            let abs = monotonic_after(d.saturating_duration_since(Instant::now()));
            // SAFETY: per this fn's contract; `abs` is a valid timespec.
            unsafe { pthread_mutex_clocklock(m, libc::CLOCK_MONOTONIC, &abs) }
        }
    };
    // SAFETY: per this fn's contract.
    unsafe { settle(m, r) }?.ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}

/// Locks `m` if it is free now; `None` if someone holds it.
///
/// # Safety
/// As [`lock`].
#[inline]
pub(crate) unsafe fn try_lock(m: *mut libc::pthread_mutex_t) -> io::Result<Option<Acquired>> {
    // SAFETY: per this fn's contract.
    unsafe { settle(m, libc::pthread_mutex_trylock(m)) }
}

/// Maps a lock call's result; makes an owner-died mutex consistent.
///
/// # Safety
/// As [`lock`].
#[inline]
unsafe fn settle(m: *mut libc::pthread_mutex_t, r: libc::c_int) -> io::Result<Option<Acquired>> {
    match r {
        0 => Ok(Some(Acquired::Clean)),
        libc::EOWNERDEAD => {
            // SAFETY: we hold the lock (EOWNERDEAD grants it).
            check(unsafe { libc::pthread_mutex_consistent(m) })?;
            Ok(Some(Acquired::OwnerDied))
        }
        libc::EBUSY | libc::ETIMEDOUT => Ok(None),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Whether the kernel has marked `m` as left behind by a dead owner
/// (`FUTEX_OWNER_DIED` in its lock word) and nobody has locked it since: a
/// cheap check with no system call, exact only while nobody locks `m`.
///
/// # Safety
/// As [`lock`].
pub(crate) unsafe fn owner_died_hint(m: *mut libc::pthread_mutex_t) -> bool {
    // The lock word is the first `int` of glibc's `pthread_mutex_t` (its
    // `__data.__lock`, part of the ABI): the robust-futex word the kernel
    // marks when the owner dies.
    // SAFETY: `m` is a valid, aligned mutex (contract); its first four bytes
    // are the futex word, only ever accessed atomically.
    let word = unsafe { &*m.cast::<std::sync::atomic::AtomicU32>() };
    word.load(std::sync::atomic::Ordering::Relaxed) & libc::FUTEX_OWNER_DIED != 0
}

/// Unlocks `m`.
///
/// # Safety
/// The calling thread must hold `m`.
#[inline]
pub(crate) unsafe fn unlock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: per this fn's contract; unlocking a held mutex cannot fail.
    unsafe {
        libc::pthread_mutex_unlock(m);
    }
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}

/// `CLOCK_MONOTONIC` now plus `d`, saturating.
fn monotonic_after(d: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `now`.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    let secs = d.as_secs().min(i32::MAX as u64) as libc::time_t;
    let mut ts = libc::timespec {
        tv_sec: now.tv_sec.saturating_add(secs),
        tv_nsec: now.tv_nsec + d.subsec_nanos() as libc::c_long,
    };
    if ts.tv_nsec >= 1_000_000_000 {
        ts.tv_nsec -= 1_000_000_000;
        ts.tv_sec = ts.tv_sec.saturating_add(1);
    }
    ts
}
