//! Waiting on a ring: spin (looking at the other side less and less
//! often, yielding now and then), then sleep in `poll` on a doorbell,
//! registered as a sleeper so that the other side rings it.

use super::ring::{Ring, Wake};
use crate::sys::{self, eventfd};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How long a waiter checks the ring before it sleeps: a peer that answers
/// within this is met without any system call.
const SPIN: Duration = Duration::from_micros(50);
/// Spins this many times with a pause hint before yielding the CPU.
const SPIN_HOT: u32 = 2_000;
/// The spin yields the CPU once every this many turns: the peer may wait
/// for this very CPU, and would otherwise run only after the whole spin.
/// A yield with nobody else to run returns at once. (A hot start before
/// yielding made same-CPU round trips 2.7–5× slower, for no pool gain.)
const YIELD_EVERY: u32 = 32;
/// How long a producer waiting for room waits for a batch of it (see
/// `Ring::has_room`) before it takes what there is.
const BATCH_WAIT: Duration = Duration::from_micros(10);
/// Most pause hints between two looks of a producer waiting for room.
const SPACE_GAP_MAX: u32 = 16;
/// As `SPACE_GAP_MAX`, for a consumer waiting for data (its wake-up is a
/// round trip's latency, so it looks more often).
const DATA_GAP_MAX: u32 = 4;
/// Longest single sleep before looking at the ring again.
const SLICE: Duration = Duration::from_millis(100);
/// As `SLICE`, for `JoinableQueue::join`, whose bell every joiner drains.
const JOIN_SLICE: Duration = Duration::from_millis(20);

/// How a sleep ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Slept {
    /// Something may have changed: try again.
    Retry,
    /// The deadline passed.
    Timeout,
    /// The peer's end of `watch` is closed.
    Hangup,
}

/// Waits until `ready(..)` or the deadline: spins for [`SPIN`], then sleeps
/// in `poll` on `bell` (and `watch`, whose hang-up ends the wait),
/// registered as a sleeper on `what` so that the other side rings the bell.
///
/// `ready(true)` is asked during the first [`BATCH_WAIT`] of a producer's
/// spin and may wait for more than it needs (a batch of room: see
/// [`Ring::has_room`]); `ready(false)`, asked after that, once registered and at the
/// deadline, must be exactly what the other side rings the bell for (room
/// for one record): the bell rings once per sleep, so a sleeper that waited
/// for more would miss a wake-up.
pub(crate) fn sleep(
    ring: &Ring,
    what: Wake,
    bell: BorrowedFd<'_>,
    watch: Option<BorrowedFd<'_>>,
    deadline: Option<Instant>,
    ready: impl Fn(bool) -> bool,
) -> io::Result<Slept> {
    let start = Instant::now();
    let mut spins = 0u32;
    // A producer waiting for room looks at the consumers' line less and
    // less often: each look takes the line away from the consumer, who
    // writes it on every record taken.
    let mut gap = 1u32;
    // A producer waits for a batch of room for `BATCH_WAIT` at most (then
    // for any room): a batch saves contention, not a stalled consumer's
    // last free slot.
    let mut batching = what == Wake::Space;
    loop {
        // The clock is read once per 32 hot turns (it is most of a turn's
        // cost), after every yield (which may last a time slice), and
        // while batching.
        if batching || spins >= SPIN_HOT || spins.is_multiple_of(YIELD_EVERY) {
            let spent = start.elapsed();
            if spent >= SPIN {
                break;
            }
            batching = batching && spent < BATCH_WAIT;
        }
        if ready(batching) {
            return Ok(Slept::Retry);
        }
        spins = spins.wrapping_add(1);
        if spins < SPIN_HOT && !spins.is_multiple_of(YIELD_EVERY) {
            for _ in 0..gap {
                std::hint::spin_loop();
            }
            gap = (gap * 2).min(if what == Wake::Space {
                SPACE_GAP_MAX
            } else {
                DATA_GAP_MAX
            });
        } else {
            std::thread::yield_now();
        }
    }
    ring.register(what);
    let result = (|| {
        if ready(false) {
            return Ok(Slept::Retry);
        }
        // A passed deadline still polls once, without waiting: a peer that
        // hung up is reported as such, not as a timeout.
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut fds = vec![libc::pollfd {
            fd: bell.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(w) = watch {
            fds.push(libc::pollfd {
                fd: w.as_raw_fd(),
                events: 0,
                revents: 0,
            });
        }
        // A backstop: sleep in slices, so that a wake-up lost (a bug, a
        // sleeper that died registered) costs a delay, never a hang.
        let slice = if what == Wake::Join {
            JOIN_SLICE
        } else {
            SLICE
        };
        sys::poll_events(&mut fds, Some(timeout.map_or(slice, |t| t.min(slice))))?;
        if fds[0].revents & libc::POLLIN != 0 {
            // Take every token: stale ones (from a sleeper that died
            // registered) would otherwise wake us again and again. Whoever
            // takes a message passes the baton to the next sleeper; for
            // that, and for the next commit or take, to ring again, re-arm
            // the bell if others sleep on it (the ring that woke us disarmed
            // it, and the token we took may have been theirs too).
            while eventfd::take(bell) {}
            if ring.sleepers(what).load(Ordering::SeqCst) > 1 {
                ring.rearm(what);
            }
        }
        if fds
            .get(1)
            .is_some_and(|p| p.revents & (libc::POLLHUP | libc::POLLERR) != 0)
        {
            return Ok(Slept::Hangup);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) && !ready(false) {
            return Ok(Slept::Timeout);
        }
        Ok(Slept::Retry)
    })();
    ring.unregister(what);
    result
}

/// Waits until socket `s` can take a message (`false`: the deadline
/// passed), in slices, so that a missed wake-up costs a delay only.
pub(crate) fn wait_writable(s: BorrowedFd<'_>, deadline: Option<Instant>) -> io::Result<bool> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    if left.is_some_and(|l| l.is_zero()) {
        return Ok(false);
    }
    let mut fds = [libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    }];
    sys::poll_events(&mut fds, Some(left.map_or(SLICE, |l| l.min(SLICE))))?;
    Ok(true)
}

/// Whether the peer's end of socket `s` is closed (checked without waiting).
pub(crate) fn peer_gone(s: BorrowedFd<'_>) -> bool {
    let mut fds = [libc::pollfd {
        fd: s.as_raw_fd(),
        events: 0,
        revents: 0,
    }];
    sys::poll_events(&mut fds, Some(Duration::ZERO)).is_ok()
        && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0
}
