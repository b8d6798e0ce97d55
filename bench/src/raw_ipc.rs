//! Raw bounds of the channel workloads: two processes that share one anonymous `MAP_SHARED`
//! mapping and talk through it with atomics, and, for the ping-pongs that sleep, bare futexes.
//! No library, no allocation, no system call on the fast paths: the floor under any pipe or
//! queue. `bench/README.md` says what each bound measures.
//!
//! The child of every bound here is a `fork()` of the bench that runs a closure and `_exit`s.
//! That closure touches only the shared mapping (atomics, plain copies), `clock_gettime`,
//! `futex`, `sched_yield`, `getppid` and `prctl`, all async-signal-safe, and allocates nothing,
//! so the fork is sound even if the parent had other threads. Every child has a deadline, dies
//! with the parent (`PR_SET_PDEATHSIG`), and is killed and reaped by its [`RawChild`] handle
//! whatever happens to the measurement: no zombie is left behind.
//!
//! The lock bounds (`raw_lock.rs`) use the same mapping, child and futex helpers.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long any raw measurement may take, child included, before it is abandoned.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);
/// Spins between two looks at the clock (and at the child) in a busy loop.
pub(crate) const SPINS_PER_CHECK: u32 = 1 << 12;
/// Spins of one wait before [`relax`] starts giving the CPU away.
const SPINS_BEFORE_YIELD: u32 = 1 << 10;

/// The message of the throughput bounds: as large as the workloads' (16 bytes).
pub type Msg = [u8; 16];

/// The `i`th message: `i` in its first 8 bytes (little-endian), `!i` in the last 8.
pub fn msg(i: u64) -> Msg {
    let mut m = [0; 16];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m[8..].copy_from_slice(&(!i).to_le_bytes());
    m
}

/// The sequence number of a message made by [`msg`].
pub fn msg_seq(m: &Msg) -> u64 {
    let mut head = [0; 8];
    head.copy_from_slice(&m[..8]);
    u64::from_le_bytes(head)
}

// ---------------------------------------------------------------------------------------------
// Shared mapping and child process

/// An anonymous `MAP_SHARED` mapping: after `fork` parent and child see the same pages.
#[derive(Debug)]
pub(crate) struct SharedMap {
    ptr: *mut u8,
    len: usize,
}

impl SharedMap {
    /// `len` zeroed bytes, page-aligned.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(SharedMap {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The shared `T` at byte `offset`.
    ///
    /// # Safety
    /// `offset` is a multiple of `T`'s alignment, `offset + size_of::<T>() <= len`, and all
    /// zero bytes are a valid `T` (the mapping starts zeroed). The caller accesses it only in
    /// ways that are sound when another process does the same (atomics, or plain accesses
    /// ordered by atomics).
    pub(crate) unsafe fn at<T>(&self, offset: usize) -> &T {
        debug_assert!(
            offset.is_multiple_of(align_of::<T>()) && offset + size_of::<T>() <= self.len
        );
        // SAFETY: in bounds and aligned (the caller's contract; the mapping is page-aligned),
        // valid when zeroed, and it lives as long as `self`.
        unsafe { &*self.ptr.add(offset).cast::<T>() }
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once; no reference into it outlives
        // `self` (`at` borrows `self`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A forked child running a raw bound. Dropping it kills and reaps the child unless it was
/// already reaped.
#[derive(Debug)]
pub(crate) struct RawChild {
    pub(crate) pid: libc::pid_t,
    /// The wait status, once reaped.
    status: Option<libc::c_int>,
}

impl RawChild {
    /// Forks a child that runs `body` and `_exit`s with 0 if it returned `true`, 1 otherwise
    /// (101 if it unwound).
    ///
    /// # Safety
    /// `body` runs in a forked child of a possibly multi-threaded process: it must call only
    /// async-signal-safe functions and must not allocate.
    pub(crate) unsafe fn fork(body: impl FnOnce() -> bool) -> io::Result<Self> {
        // SAFETY: `getpid` has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only `prctl`, `getppid`, `body` (async-signal-safe by the
        // caller's contract) and `_exit`.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                /// Should `body` unwind, it must never return into the parent's code.
                struct ExitOnUnwind;
                impl Drop for ExitOnUnwind {
                    fn drop(&mut self) {
                        // SAFETY: `_exit` is async-signal-safe and never returns.
                        unsafe { libc::_exit(101) }
                    }
                }
                let guard = ExitOnUnwind;
                // SAFETY: [1] PR_SET_PDEATHSIG only sets a flag of this process; [2] the
                // `getppid` check closes the race with a parent that died before it was set.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        libc::_exit(3);
                    }
                }
                let ok = body();
                std::mem::forget(guard);
                // SAFETY: `_exit` is async-signal-safe and never returns.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            pid => Ok(RawChild { pid, status: None }),
        }
    }

    /// The child's wait status if it has ended (reaping it), `None` while it runs.
    pub(crate) fn try_reap(&mut self) -> io::Result<Option<libc::c_int>> {
        while self.status.is_none() {
            let mut status = 0;
            // SAFETY: `status` is a valid place for the wait status.
            match unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } {
                0 => break,
                -1 => {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::Interrupted {
                        return Err(err);
                    }
                }
                _ => self.status = Some(status),
            }
        }
        Ok(self.status)
    }

    /// Waits until `deadline` for the child to exit; `Err` unless it exited with status 0. On
    /// timeout the child is killed (by `Drop`).
    pub(crate) fn wait(mut self, deadline: Instant) -> io::Result<()> {
        loop {
            match self.try_reap()? {
                Some(status) if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => {
                    return Ok(());
                }
                Some(status) => {
                    return Err(io::Error::other(format!(
                        "raw child {} failed (wait status {status:#x})",
                        self.pid
                    )));
                }
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                None => return Err(io::Error::other("raw child missed its deadline")),
            }
        }
    }
}

impl Drop for RawChild {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let mut status = 0;
        // SAFETY: [1] `pid` is our unreaped child, so the signal cannot reach another process;
        // [2] `status` is a valid place for the wait status.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            while libc::waitpid(self.pid, &mut status, 0) == -1
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
    }
}

/// One turn of a spin-wait that has already spun `spins` times: a CPU pause, or, after
/// [`SPINS_BEFORE_YIELD`] fruitless turns, `sched_yield` (async-signal-safe). While both sides
/// have a core to themselves a wait never gets that far; when they share one (a busy machine),
/// yielding lets the peer run instead of burning the rest of the time slice.
#[inline]
fn relax(spins: u32) {
    if spins < SPINS_BEFORE_YIELD {
        std::hint::spin_loop();
    } else {
        // SAFETY: `sched_yield` has no preconditions.
        unsafe { libc::sched_yield() };
    }
}

/// Monotonic nanoseconds, from `clock_gettime` (async-signal-safe; usable in a raw child).
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The parent's watch over a busy loop: every [`SPINS_PER_CHECK`] calls it checks the clock
/// against the deadline and that the child still runs.
#[derive(Debug)]
struct Watch<'a> {
    child: &'a mut RawChild,
    deadline: Instant,
    spins: u32,
}

impl<'a> Watch<'a> {
    fn new(child: &'a mut RawChild, deadline: Instant) -> Self {
        Watch {
            child,
            deadline,
            spins: 0,
        }
    }

    /// Call once per turn of a loop waiting for `done`: every [`SPINS_PER_CHECK`] turns,
    /// [`check`](Self::check)s.
    #[inline]
    fn tick(&mut self, done: impl FnOnce() -> bool) -> io::Result<()> {
        self.spins = self.spins.wrapping_add(1);
        if self.spins.is_multiple_of(SPINS_PER_CHECK) {
            self.check(done)
        } else {
            Ok(())
        }
    }

    /// `Err` if the deadline has passed, or if the child has ended and what the loop waits for
    /// is still not `done` (asked after seeing the exit, so a child that did its last step and
    /// exited is not mistaken for one that died).
    fn check(&mut self, done: impl FnOnce() -> bool) -> io::Result<()> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "raw measurement missed its deadline",
            ));
        }
        match self.child.try_reap()? {
            Some(status) if !done() => Err(io::Error::other(format!(
                "raw child {} ended early (wait status {status:#x})",
                self.child.pid
            ))),
            _ => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SPSC ring

/// The `bound` of the rows compared with [`spsc_ring_rate`].
pub const RING_BOUND: &str = "shm spsc ring";

/// Slots of the ring: 4096 × 16 bytes = 64 KiB, well inside L2.
const RING_SLOTS: usize = 4096;
/// Head and tail each get 128 bytes, so that neither they nor the slots share a cache line
/// (or the adjacent line the prefetcher pulls in).
pub(crate) const LINE: usize = 128;
const HEAD_AT: usize = 0;
const TAIL_AT: usize = LINE;
const SLOTS_AT: usize = 2 * LINE;

/// Messages per second through a shared-memory single-producer single-consumer ring: a forked
/// child writes `n + 1` messages of 16 bytes, the parent reads them and checks their order. The
/// clock starts when the first message arrives (so the child's start-up is not counted) and
/// stops at the last: `n / elapsed`.
///
/// The ring is the textbook bound: head and tail indices on their own cache lines, each side
/// keeps a cached copy of the other's index and reloads it only when the ring looks full
/// (producer) or empty (consumer), and both spin ([`relax`]); no system call between the first
/// and the last message unless a wait outlasts the spin budget.
pub fn spsc_ring_rate(n: u64) -> io::Result<f64> {
    let map = SharedMap::new(SLOTS_AT + RING_SLOTS * size_of::<Msg>())?;
    let deadline = Instant::now() + DEADLINE;
    let total = n + 1;
    // SAFETY: offsets aligned and in bounds of the mapping; zero is a valid u64.
    let (head, tail) = unsafe { (map.at::<AtomicU64>(HEAD_AT), map.at::<AtomicU64>(TAIL_AT)) };
    // SAFETY: SLOTS_AT is inside the mapping; slots are reached only through `slot`.
    let slots = unsafe { map.ptr.add(SLOTS_AT).cast::<Msg>() };
    // SAFETY: index masked into the ring.
    let slot = |i: u64| unsafe { slots.add(i as usize & (RING_SLOTS - 1)) };
    let child_deadline = now_ns() + DEADLINE.as_nanos() as u64;

    let producer = || {
        let mut cached_tail = 0u64;
        for i in 0..total {
            let mut spins = 0u32;
            while i - cached_tail == RING_SLOTS as u64 {
                cached_tail = tail.load(Ordering::Acquire);
                spins = spins.wrapping_add(1);
                relax(spins);
                if spins.is_multiple_of(SPINS_PER_CHECK) && now_ns() > child_deadline {
                    return false;
                }
            }
            // SAFETY: slot `i` is free: the consumer published (Release) a tail past its
            // previous occupant, which we loaded (Acquire).
            unsafe { ptr::write_volatile(slot(i), msg(i)) };
            head.store(i + 1, Ordering::Release);
        }
        true
    };
    // SAFETY: the producer touches only the mapping's atomics and slots and `now_ns`
    // (clock_gettime), and allocates nothing.
    let mut child = unsafe { RawChild::fork(producer)? };

    let mut watch = Watch::new(&mut child, deadline);
    let mut cached_head = 0u64;
    let mut start = None;
    for i in 0..total {
        let mut spins = 0u32;
        while cached_head == i {
            cached_head = head.load(Ordering::Acquire);
            spins = spins.wrapping_add(1);
            relax(spins);
            watch.tick(|| head.load(Ordering::Acquire) != i)?;
        }
        // SAFETY: slot `i` is written: the producer published (Release) a head past it, which
        // we loaded (Acquire); it is not overwritten before our tail store below.
        let m = unsafe { ptr::read_volatile(slot(i)) };
        tail.store(i + 1, Ordering::Release);
        if msg_seq(&m) != i {
            return Err(io::Error::other(format!(
                "ring message {i} carried {}",
                msg_seq(&m)
            )));
        }
        if i == 0 {
            start = Some(Instant::now());
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    child.wait(deadline)?;
    Ok(n as f64 / elapsed.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Ping-pongs

/// How the two sides of a ping-pong wait for their turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingPong {
    /// Sleep in `FUTEX_WAIT` (shared, not private: the word is in a shared mapping) and
    /// `FUTEX_WAKE` the peer on every hand-off: the floor of a round trip between two sleepers.
    Futex,
    /// Spin on the word with atomic loads ([`relax`]): the floor of a round trip between two
    /// processes that stay awake on their own cores.
    Spin,
}

impl PingPong {
    /// The `bound` of the rows compared with it.
    pub fn name(self) -> &'static str {
        match self {
            PingPong::Futex => "futex ping-pong",
            PingPong::Spin => "spin ping-pong",
        }
    }
}

/// Microseconds per round trip: the parent flips a shared word to "ping" and waits until the
/// child has flipped it to "pong", `warmup` times unmeasured, then `n` times. The word counts
/// hand-offs: the parent writes odd values, the child even ones.
pub fn ping_pong_micros(how: PingPong, warmup: u64, n: u64) -> io::Result<f64> {
    let map = SharedMap::new(LINE)?;
    // SAFETY: offset 0 is aligned and in bounds; zero is a valid u32.
    let word = unsafe { map.at::<AtomicU32>(0) };
    let deadline = Instant::now() + DEADLINE;
    let child_deadline = now_ns() + DEADLINE.as_nanos() as u64;
    let rounds = warmup + n;
    // The word wraps after 2^31 rounds; far beyond any run.
    let ping = |r: u64| (2 * r + 1) as u32;
    let pong = |r: u64| (2 * r + 2) as u32;

    let ponger = || {
        for r in 0..rounds {
            // What the word holds until the parent pings: our previous pong.
            let before = if r == 0 { 0 } else { pong(r - 1) };
            let mut spins = 0u32;
            while word.load(Ordering::Acquire) != ping(r) {
                spins = spins.wrapping_add(1);
                if how == PingPong::Futex {
                    futex_wait(word, before);
                } else {
                    relax(spins);
                }
                if (how == PingPong::Futex || spins.is_multiple_of(SPINS_PER_CHECK))
                    && now_ns() > child_deadline
                {
                    return false;
                }
            }
            word.store(pong(r), Ordering::Release);
            if how == PingPong::Futex {
                futex_wake(word);
            }
        }
        true
    };
    // SAFETY: the child touches only the shared word (atomics, futex) and `now_ns`.
    let mut child = unsafe { RawChild::fork(ponger)? };

    let mut watch = Watch::new(&mut child, deadline);
    let mut start = Instant::now();
    for r in 0..rounds {
        if r == warmup {
            start = Instant::now();
        }
        word.store(ping(r), Ordering::Release);
        if how == PingPong::Futex {
            futex_wake(word);
        }
        let mut spins = 0u32;
        while word.load(Ordering::Acquire) != pong(r) {
            if how == PingPong::Futex {
                futex_wait(word, ping(r));
                watch.check(|| word.load(Ordering::Acquire) == pong(r))?;
            } else {
                spins = spins.wrapping_add(1);
                relax(spins);
                watch.tick(|| word.load(Ordering::Acquire) == pong(r))?;
            }
        }
    }
    let elapsed = start.elapsed();
    child.wait(deadline)?;
    Ok(elapsed.as_secs_f64() * 1e6 / n.max(1) as f64)
}

/// Sleeps while `word` holds `expected`, for at most 50 ms (so callers can check deadlines).
/// Returns at once if it holds anything else; spurious returns are the caller's to handle.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 50_000_000,
    };
    // SAFETY: [1] `word` is a live, aligned u32 (in a shared mapping, hence no
    // FUTEX_PRIVATE_FLAG); [2] `timeout` outlives the call. Failures (EAGAIN when the value
    // already changed, EINTR, ETIMEDOUT) all mean "look again", which every caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes one process sleeping on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    futex_wake_n(word, 1);
}

/// Wakes up to `n` processes sleeping on `word` (`i32::MAX`: all of them).
pub(crate) fn futex_wake_n(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE reads nothing else.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_sequence_number() {
        assert_eq!(msg_seq(&msg(0)), 0);
        assert_eq!(msg_seq(&msg(123_456_789)), 123_456_789);
        assert_ne!(msg(1), msg(2));
    }

    #[test]
    fn ring_moves_more_messages_than_it_holds() {
        let rate = spsc_ring_rate(10 * RING_SLOTS as u64).unwrap();
        assert!(rate > 0.0, "{rate}");
    }

    #[test]
    fn ping_pongs_complete() {
        assert!(ping_pong_micros(PingPong::Futex, 10, 100).unwrap() > 0.0);
        assert!(ping_pong_micros(PingPong::Spin, 10, 100).unwrap() > 0.0);
    }

    #[test]
    fn a_child_that_dies_early_is_an_error_not_a_hang() {
        // SAFETY: the body does nothing.
        let mut child = unsafe { RawChild::fork(|| false).unwrap() };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut watch = Watch::new(&mut child, deadline);
        let err = loop {
            if let Err(e) = watch.check(|| false) {
                break e;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(err.to_string().contains("ended early"), "{err}");
    }
}
