//! Raw bounds of the lock workloads: a bare futex lock, one 32-bit word in an anonymous
//! `MAP_SHARED` mapping, locked and unlocked by one process (`lock_uncontended`) or by two
//! processes incrementing a shared counter under it (`counter_contended`). It is the floor
//! under any lock shared between processes: no owner tracking, no robust list, no recursion or
//! error check, no timeout, nothing but the word. `bench/README.md` says what each bound
//! measures.
//!
//! The two counter processes are `fork()`s of the bench made by
//! [`RawChild`](crate::raw_ipc::RawChild), with the same rules as the bounds of `raw_ipc.rs`:
//! they touch only the mapping (atomics, futex), `clock_gettime` and `_exit`, allocate nothing,
//! have a deadline, and are killed and reaped whatever happens to the measurement.

use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::raw_ipc::{
    DEADLINE, LINE, RawChild, SPINS_PER_CHECK, SharedMap, futex_wait, futex_wake, futex_wake_n,
    now_ns,
};

/// The `bound` of the rows compared with this lock.
pub const LOCK_BOUND: &str = "shm futex lock";

/// How many processes increment the counter of [`contended_counter_rate`].
pub const COUNTER_PROCESSES: u32 = 2;

/// The lock word: free.
const FREE: u32 = 0;
/// Held, nobody asleep waiting for it.
const LOCKED: u32 = 1;
/// Held, and someone may be asleep on the word: the unlocker must wake one.
const CONTENDED: u32 = 2;
/// Attempts to take a held lock before sleeping: as many as multiproc's locks make
/// (`sys/mutex.rs`), so that the bound spins as long as what it bounds.
const SPIN_TRIES: u32 = 64;

/// A futex lock over a shared 32-bit word, in the three-state form of Drepper's "Futexes Are
/// Tricky": `compare_exchange` 0 → 1 takes a free lock without a system call; a locker that
/// finds it held spins a little, then marks it contended (2) and sleeps in `FUTEX_WAIT`;
/// unlocking `swap`s in 0 and calls `FUTEX_WAKE` only if the word said contended. The futexes
/// are shared (no `FUTEX_PRIVATE_FLAG`): the word lives in a `MAP_SHARED` mapping.
#[derive(Debug, Clone, Copy)]
pub struct RawLock<'a> {
    word: &'a AtomicU32,
}

impl<'a> RawLock<'a> {
    /// The lock whose word is `word` (0: free).
    pub fn new(word: &'a AtomicU32) -> Self {
        RawLock { word }
    }

    /// Takes the lock, sleeping while another holds it.
    #[inline]
    pub fn lock(self) {
        if self
            .word
            .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(self) {
        for _ in 0..SPIN_TRIES {
            std::hint::spin_loop();
            if self.word.load(Ordering::Relaxed) == FREE
                && self
                    .word
                    .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // Whoever holds it now will see "contended" when unlocking and wake a sleeper. Taking
        // the lock this way leaves it marked contended, which costs at most one useless wake.
        while self.word.swap(CONTENDED, Ordering::Acquire) != FREE {
            futex_wait(self.word, CONTENDED);
        }
    }

    /// Releases the lock, waking one sleeper if there may be one. Only its holder calls it.
    #[inline]
    pub fn unlock(self) {
        if self.word.swap(FREE, Ordering::Release) == CONTENDED {
            futex_wake(self.word);
        }
    }
}

/// Nanoseconds per lock+unlock pair of a [`RawLock`] nobody else uses, `warmup` pairs
/// unmeasured, then the mean over `n`.
pub fn uncontended_pair_nanos(warmup: u64, n: u64) -> io::Result<f64> {
    let map = SharedMap::new(LINE)?;
    // SAFETY: offset 0 is aligned and in bounds; zero is a valid (free) lock word.
    let lock = RawLock::new(unsafe { map.at::<AtomicU32>(0) });
    for _ in 0..warmup {
        lock.lock();
        lock.unlock();
    }
    let n = n.max(1);
    let start = Instant::now();
    for _ in 0..n {
        // `black_box`: the loop must lock the word each time, not be folded.
        let lock = black_box(lock);
        lock.lock();
        lock.unlock();
    }
    Ok(start.elapsed().as_secs_f64() * 1e9 / n as f64)
}

// Where the counter workload's words live: the lock word and the counter share a line (as the
// lock and the data of a multiproc `Value` do), the start and finish words get their own.
const LOCK_AT: usize = 0;
const COUNTER_AT: usize = 8;
const READY_AT: usize = LINE;
const GO_AT: usize = 2 * LINE;
const DONE_AT: usize = 3 * LINE;

/// Increments per second of a counter in shared memory that [`COUNTER_PROCESSES`] forked
/// children each increment `n` times, every increment a plain read and write under a
/// [`RawLock`]. The children wait for a start word; the clock runs from the parent's start
/// signal to the last child's finish signal (a futex wake). The parent sleeps meanwhile, and
/// checks that the counter ends at exactly `COUNTER_PROCESSES * n`.
pub fn contended_counter_rate(n: u64) -> io::Result<f64> {
    let map = SharedMap::new(4 * LINE)?;
    // SAFETY: every offset is aligned for its type and in bounds of the mapping, and zero is a
    // valid value of each (a free lock, a zero counter, nobody ready, no go, nobody done).
    let (word, counter, ready, go, done) = unsafe {
        (
            map.at::<AtomicU32>(LOCK_AT),
            map.at::<AtomicU64>(COUNTER_AT),
            map.at::<AtomicU32>(READY_AT),
            map.at::<AtomicU32>(GO_AT),
            map.at::<AtomicU32>(DONE_AT),
        )
    };
    let lock = RawLock::new(word);
    let deadline = Instant::now() + DEADLINE;
    let child_deadline = now_ns() + DEADLINE.as_nanos() as u64;

    let incrementer = || {
        ready.fetch_add(1, Ordering::SeqCst);
        while go.load(Ordering::Acquire) == 0 {
            futex_wait(go, 0);
            if now_ns() > child_deadline {
                return false;
            }
        }
        for i in 0..n {
            lock.lock();
            // A plain read-modify-write (two relaxed accesses, not an atomic add): only the
            // lock keeps the two processes from losing each other's increments.
            counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            lock.unlock();
            if i.is_multiple_of(u64::from(SPINS_PER_CHECK)) && now_ns() > child_deadline {
                return false;
            }
        }
        if done.fetch_add(1, Ordering::SeqCst) + 1 == COUNTER_PROCESSES {
            futex_wake(done);
        }
        true
    };
    let mut children = Vec::new();
    for _ in 0..COUNTER_PROCESSES {
        // SAFETY: the child touches only the mapping's atomics (futex included) and `now_ns`
        // (clock_gettime), and allocates nothing.
        children.push(unsafe { RawChild::fork(incrementer)? });
    }

    while ready.load(Ordering::SeqCst) < COUNTER_PROCESSES {
        check_children(&mut children, deadline)?;
        std::thread::sleep(Duration::from_micros(100));
    }
    let start = Instant::now();
    go.store(1, Ordering::Release);
    futex_wake_n(go, i32::MAX);
    loop {
        let finished = done.load(Ordering::Acquire);
        if finished == COUNTER_PROCESSES {
            break;
        }
        futex_wait(done, finished);
        check_children(&mut children, deadline)?;
    }
    let elapsed = start.elapsed();
    for child in children {
        child.wait(deadline)?;
    }

    let expected = u64::from(COUNTER_PROCESSES) * n;
    match counter.load(Ordering::SeqCst) {
        total if total == expected => Ok(expected as f64 / elapsed.as_secs_f64()),
        total => Err(io::Error::other(format!(
            "the raw counter ended at {total}, not {expected}: the lock let increments through"
        ))),
    }
}

/// `Err` if the deadline has passed or a child has ended without success (one that ended with
/// status 0 has done all its increments).
fn check_children(children: &mut [RawChild], deadline: Instant) -> io::Result<()> {
    if Instant::now() >= deadline {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "raw counter missed its deadline",
        ));
    }
    for child in children {
        match child.try_reap()? {
            Some(status) if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) => {
                return Err(io::Error::other(format!(
                    "raw counter child {} failed (wait status {status:#x})",
                    child.pid
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_unlock_move_the_word_between_free_and_locked() {
        let word = AtomicU32::new(FREE);
        let lock = RawLock::new(&word);
        lock.lock();
        assert_eq!(word.load(Ordering::SeqCst), LOCKED);
        lock.unlock();
        assert_eq!(word.load(Ordering::SeqCst), FREE);
    }

    #[test]
    fn unlocking_a_contended_lock_frees_it() {
        // As left by a locker that went to sleep; the wake finds nobody, which is harmless.
        let word = AtomicU32::new(CONTENDED);
        RawLock::new(&word).unlock();
        assert_eq!(word.load(Ordering::SeqCst), FREE);
        RawLock::new(&word).lock();
        assert_eq!(word.load(Ordering::SeqCst), LOCKED);
    }

    #[test]
    fn uncontended_pairs_are_measured() {
        let nanos = uncontended_pair_nanos(10, 10_000).unwrap();
        assert!(nanos > 0.0 && nanos.is_finite(), "{nanos}");
    }

    #[test]
    fn two_processes_count_exactly_under_the_lock() {
        // The function itself fails unless the counter ends at exactly 2 × n.
        let rate = contended_counter_rate(200_000).unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
    }

    #[test]
    fn a_failed_child_is_reported() {
        // SAFETY: the body does nothing.
        let mut children = [unsafe { RawChild::fork(|| false).unwrap() }];
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            if let Err(e) = check_children(&mut children, deadline) {
                break e;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(err.to_string().contains("failed"), "{err}");
    }
}
