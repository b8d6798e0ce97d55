//! Synchronisation objects and shared values used by real processes:
//! [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Condition`],
//! [`Event`], [`Barrier`], [`Value`], [`Array`], [`RawValue`], [`RawArray`].
//!
//! - `counters`: mutual exclusion under contention (4 processes × 1M
//!   increments).
//! - `deaths`: a holder `SIGKILL`ed while holding a lock or a permit; the
//!   next locker gets [`OwnerDied`](multiproc::OwnerDied) within 100 ms.
//! - `barrier`: a party killed before arriving breaks the barrier for the
//!   others with [`BarrierError::PartyDied`](multiproc::BarrierError).
//! - `wakeups`: ping-pong stress of `Event` and `Condition` (no lost wake-up).
//! - `travel`: every object sent through a `Queue` and a `Pipe`.
//! - `garbage`: a handle decoded as the wrong kind of object.
//! - `bounds`: a `BoundedSemaphore`'s bound across processes.
//!
//! Two tests are `#[ignore]`d because they fail on library bugs (their
//! docs say what and where): run them with `-- --ignored`.
//!
//! Every wait has a deadline (`*_timeout` forms, `join_timeout`), so that a
//! regression fails instead of hanging, and a [`Watchdog`] aborts the binary
//! for the few calls that have none. The fault scenarios end with a leak
//! check of the test process: no zombie child, no more descriptors than
//! before, nothing new in /dev/shm. Those checks measure process-wide
//! state, so the tests of this binary are serialized by a mutex.
//!
//! Children are daemons held by [`Kid`], which kills and reaps them if the
//! scenario fails half-way.

mod barrier;
mod bounds;
#[path = "../common/mod.rs"]
mod common;
mod counters;
mod deaths;
mod garbage;
mod travel;
mod wakeups;

use common::{JOIN, Kid, Snapshot, Watchdog, builder, double, gettid, ms, secs, serial, victim};
use multiproc::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// One successful spawn with each method (which starts the fork server:
/// its descriptors persist), then a snapshot of what must not grow.
fn warm_baseline() -> Snapshot {
    for m in [StartMethod::ForkServer, StartMethod::Spawn] {
        let mut p = Kid::spawn(builder(m), double, 21);
        assert_eq!(p.finish("warm-up"), 42, "{m:?}: warm-up");
    }
    Snapshot::take()
}

/// Runs `scenario` under the suite's mutex and a [`Watchdog`], and prints
/// how long it took.
fn sync_test(name: &str, scenario: impl FnOnce()) {
    let _guard = serial();
    let _watchdog = Watchdog::start(WATCHDOG, name.to_owned());
    let started = Instant::now();
    scenario();
    eprintln!("{name}: {:?}", started.elapsed());
}

/// As [`sync_test`], with a leak check of the test process around the
/// scenario (which must drop every object it made before returning).
fn fault_test(name: &str, scenario: impl FnOnce()) {
    sync_test(name, || {
        let before = warm_baseline();
        scenario();
        before.assert_no_leaks(name);
    });
}

/// How long a scenario may run before the watchdog gives up on it: longer
/// than any deadline of the scenarios, far shorter than CI's patience.
const WATCHDOG: Duration = Duration::from_secs(90);

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for the whole machine, so
/// that instants taken in two processes can be subtracted.
fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The time from `earlier` to `later` (two [`mono_ns`] readings).
fn between(earlier: u64, later: u64) -> Duration {
    Duration::from_nanos(later.saturating_sub(earlier))
}

/// Waits until every thread of child `pid` sleeps.
fn child_asleep(what: &str, pid: u32) {
    common::child_asleep(what, 5, pid);
}

/// Waits until thread `tid` of this process sleeps.
fn thread_asleep(what: &str, tid: i32) {
    common::thread_asleep(what, 5, tid);
}

/// Sleeps until killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(secs(1));
    }
}

// ----------------------------------------------------------------------- smoke

fn lock_then_report((lock, ev): (multiproc::Lock, multiproc::Event)) -> bool {
    let held = lock.try_acquire().is_ok();
    ev.set();
    held
}

#[test]
fn smoke() {
    sync_test("smoke", || {
        let lock = multiproc::Lock::new().unwrap();
        let ev = multiproc::Event::new().unwrap();
        let guard = lock.acquire().unwrap();
        let mut p = Kid::spawn(
            builder(StartMethod::ForkServer),
            lock_then_report,
            (lock.clone(), ev.clone()),
        );
        assert!(ev.wait_timeout(JOIN));
        assert!(!p.finish("child"), "the child took a lock we hold");
        drop(guard);
        ev.clear();
        let mut p = Kid::spawn(
            builder(StartMethod::ForkServer),
            lock_then_report,
            (lock, ev),
        );
        assert!(p.finish("child"), "the child could not take a free lock");
    });
}
