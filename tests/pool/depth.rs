//! Deep worker queues: once the chunks of a task function have been tiny,
//! the pool queues up to 64 of them in a worker instead of 4 (see
//! `src/pool/mod.rs`). What deep queues must not change:
//!
//! - a task cancelled while it waits in a worker's queue never runs, however
//!   deep the queue, and cancelling it again takes no more of the worker's
//!   room for cancellations;
//! - `shutdown(_, cancel_pending)` cancels the tasks waiting in the workers'
//!   queues, not only those the pool had not handed out yet;
//! - a finished result that nobody has read does not keep its (large)
//!   argument buffer alive;
//! - how deep a queue may be is learned per task function: after tiny tasks
//!   of one function, long tasks of another spread to the idle workers
//!   instead of queueing behind a busy one.
//!
//! The scenarios about deep queues first warm the pool up with [`WARM_UP`]
//! one-task chunks of a function that does nothing, which is what deepens
//! them. One more guards an older bug: tasks with large arguments stalled
//! the whole pool behind a long task (see
//! [`large_arguments_do_not_stall_the_pool`]).

use crate::common::{JOIN, ms};
use crate::{DROP_WITHIN, assert_gone, end, per_method, pool, worker_pids};
use multiproc::{Event, Pool, RawValue, StartMethod, TaskHandle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// As [`per_method!`], with the first start method only: for the scenarios
/// about the manager's bookkeeping, which is the same whatever started the
/// workers.
macro_rules! forkserver_only {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            $(#[$attr])*
            fn forkserver() {
                crate::pool_test(
                    concat!(module_path!(), "::forkserver"),
                    multiproc::StartMethod::ForkServer,
                    super::$name,
                );
            }
        }
    )*};
}

/// One-task chunks of a no-op function in a warm-up: enough for the pool's
/// moving average of that function's chunk time to fall to microseconds.
const WARM_UP: usize = 2000;

/// Runs [`WARM_UP`] one-task chunks of `f(arg)`, so that the pool queues
/// `f`'s chunks deep.
fn warm_up<A, R>(pool: &Pool, f: fn(A) -> R, arg: A)
where
    A: Clone + Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    let started = Instant::now();
    let got = pool
        .map_chunked(f, vec![arg; WARM_UP], 1)
        .expect("warm-up map");
    assert_eq!(got.len(), WARM_UP);
    eprintln!("warm-up: {WARM_UP} tasks in {:?}", started.elapsed());
}

/// What a [`step`] does: set bit `tag` of `ran` (if any), then sleep `ms`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Step {
    tag: u32,
    ran: Option<RawValue<u64>>,
    ms: u64,
}

impl Step {
    /// A warm-up step: nothing at all.
    fn idle() -> Step {
        Step {
            tag: 0,
            ran: None,
            ms: 0,
        }
    }

    /// Sets bit `tag` of `ran`, then sleeps `ms`.
    fn mark(tag: u32, ran: &RawValue<u64>, ms: u64) -> Step {
        Step {
            tag,
            ran: Some(ran.clone()),
            ms,
        }
    }
}

/// Does what `s` says; the worker's pid.
fn step(s: Step) -> u32 {
    if let Some(ran) = &s.ran {
        ran.atomic().fetch_or(1 << s.tag, SeqCst);
    }
    if s.ms > 0 {
        std::thread::sleep(ms(s.ms));
    }
    std::process::id()
}

/// The bits `tags` of a `ran` mask.
fn bits(tags: impl IntoIterator<Item = u32>) -> u64 {
    tags.into_iter().map(|t| 1u64 << t).sum()
}

/// A running task's controls: it says it started, then waits to be
/// released.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Gate {
    started: Event,
    release: Event,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            started: Event::new().expect("Event"),
            release: Event::new().expect("Event"),
        }
    }

    fn wait_started(&self) {
        assert!(
            self.started.wait_timeout(JOIN),
            "the gated task never started"
        );
    }
}

/// Says it started, waits for the release (at most [`JOIN`]); the worker's
/// pid.
fn gated(gate: Gate) -> u32 {
    gate.started.set();
    gate.release.wait_timeout(JOIN);
    std::process::id()
}

/// Tasks queued behind the gated one in [`cancel_deep`], tags `1..=QUEUED`.
const QUEUED: u32 = 30;
/// Of which the first `CANCELLED` are cancelled: more than the 8 queued
/// chunks a worker could once have marked cancelled.
const CANCELLED: u32 = 20;

/// One worker, warmed up, runs a gated task with [`QUEUED`] tasks queued
/// in its deep queue behind it; the first [`CANCELLED`] are cancelled,
/// `repeats` times each: every cancel returns true, the handles fail as
/// cancelled, and none of those tasks ever runs (not while the gated task
/// runs, not after it, not by the time a task submitted behind them all
/// has run), while all the others do, on that worker.
fn cancel_deep(m: StartMethod, repeats: usize) {
    let pool = pool(m, 1);
    warm_up(&pool, step, Step::idle());
    let ran = RawValue::new(0u64).expect("RawValue");
    let gate = Gate::new();
    let mut running = pool.submit(gated, gate.clone()).expect("submit");
    gate.wait_started();
    let mut queued: Vec<_> = (1..=QUEUED)
        .map(|tag| {
            let h = pool.submit(step, Step::mark(tag, &ran, 0)).expect("submit");
            (tag, h)
        })
        .collect();
    // Time for the pool to hand them to the worker: it is the cancelling
    // of tasks in a worker's queue that is tested, not in the pool's.
    std::thread::sleep(ms(100));
    for (tag, h) in queued.iter_mut().filter(|(tag, _)| *tag <= CANCELLED) {
        for n in 1..=repeats {
            assert!(
                h.cancel(),
                "cancel #{n} of queued task {tag} returned false"
            );
        }
        let err = h
            .get_timeout(ms(500))
            .expect_err("a cancelled task returned");
        assert!(err.is_cancelled(), "task {tag}: {err}");
    }
    assert_eq!(ran.get(), 0, "tasks ran behind the gated one");

    gate.release.set();
    let pid = running.get_timeout(JOIN).expect("the gated task");
    for (tag, h) in queued.iter_mut().filter(|(tag, _)| *tag > CANCELLED) {
        let got = h.get_timeout(JOIN).expect("a queued task");
        assert_eq!(got, pid, "task {tag}");
    }
    // Whatever was still to run has run: one more task behind it all.
    let last = pool
        .apply(step, Step::mark(QUEUED + 1, &ran, 0))
        .expect("apply");
    assert_eq!(last, pid);
    let cancelled = bits(1..=CANCELLED);
    assert_eq!(
        ran.get() & cancelled,
        0,
        "cancelled tasks ran: {:#b}",
        ran.get() & cancelled
    );
    assert_eq!(
        ran.get(),
        bits(CANCELLED + 1..=QUEUED + 1),
        "{:#b}",
        ran.get()
    );
    end(pool, [pid]);
}

/// Tasks cancelled once each while they wait in a deep queue never run.
fn cancelled_queued_tasks_never_run(m: StartMethod) {
    cancel_deep(m, 1);
}

/// Tasks cancelled 4 times each never run either: a repeated cancel
/// returns true and takes none of the worker's 63 cancel slots (one per
/// chunk it can have queued), which 80 cancels of 20 tasks would exhaust.
fn repeated_cancels_take_no_room(m: StartMethod) {
    cancel_deep(m, 4);
}

/// Tasks queued behind the gated one in
/// [`shutdown_cancels_queued_tasks`], tags `1..=BEHIND`.
const BEHIND: u32 = 40;
/// How many of them may start (and so run) while the shutdown cancels the
/// others: none, unless the manager is slower than the 200 ms the gate
/// stays closed.
const MAY_START: u32 = 5;

/// `shutdown(wait, cancel_pending)` on a warmed-up worker that runs a gated
/// task with [`BEHIND`] 20 ms tasks in its deep queue: those fail as
/// cancelled (all but [`MAY_START`] at most), none of those that say so has
/// run, the gated task finishes, and the worker exits.
fn shutdown_cancels_queued_tasks(m: StartMethod) {
    let pool = pool(m, 1);
    warm_up(&pool, step, Step::idle());
    let ran = RawValue::new(0u64).expect("RawValue");
    let gate = Gate::new();
    let mut running = pool.submit(gated, gate.clone()).expect("submit");
    gate.wait_started();
    let queued: Vec<_> = (1..=BEHIND)
        .map(|tag| {
            let h = pool
                .submit(step, Step::mark(tag, &ran, 20))
                .expect("submit");
            (tag, h)
        })
        .collect();
    // Time for the pool to hand them to the worker (see `cancel_deep`).
    std::thread::sleep(ms(100));
    let took = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(ms(200));
            gate.release.set();
        });
        let started = Instant::now();
        pool.shutdown(true, true);
        started.elapsed()
    });
    let pid = running.get_timeout(ms(0)).expect("the gated task");
    let mut cancelled = Vec::new();
    for (tag, mut h) in queued {
        assert!(h.is_ready(), "task {tag} unanswered after shutdown(wait)");
        match h.get_timeout(ms(0)) {
            Ok(got) => {
                assert_eq!(got, pid, "task {tag}");
                assert_ne!(ran.get() & bits([tag]), 0, "task {tag} returned unrun");
            }
            Err(e) if e.is_cancelled() => cancelled.push(tag),
            Err(e) => panic!("task {tag}: {e}"),
        }
    }
    eprintln!(
        "shutdown {m:?}: {} of {BEHIND} queued tasks cancelled, took {took:?}",
        cancelled.len()
    );
    assert_eq!(
        ran.get() & bits(cancelled.iter().copied()),
        0,
        "tasks that failed as cancelled ran: {:#b}",
        ran.get()
    );
    assert!(
        cancelled.len() as u32 >= BEHIND - MAY_START,
        "only {} of {BEHIND} queued tasks cancelled: {cancelled:?}",
        cancelled.len()
    );
    let started = Instant::now();
    drop(pool);
    let dropped = started.elapsed();
    assert!(
        dropped < DROP_WITHIN,
        "dropping a shut-down pool took {dropped:?}"
    );
    assert_gone(&BTreeSet::from([pid]), "the worker of a shut-down pool");
}

per_method!(
    cancelled_queued_tasks_never_run,
    repeated_cancels_take_no_room,
    shutdown_cancels_queued_tasks,
);

/// Argument bytes of each task in [`unread_results_do_not_keep_their_arguments`].
const ARG_BYTES: usize = 8 << 20;
/// Tasks in it.
const BIG_TASKS: usize = 100;
/// How much the test process may grow while their results wait: a few
/// arguments' worth, far from all of them.
const GROWTH_MAX_MB: u64 = 200;

/// The length of `s`. (A `String`, not a `Vec<u8>`: serde encodes and
/// decodes a string in one copy, a vector byte by byte, which takes 0.3 s
/// per 8 MB unoptimised.)
fn length(s: String) -> u64 {
    s.len() as u64
}

/// This process's resident memory, in MiB.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in kB");
    kb / 1024
}

/// [`BIG_TASKS`] tasks of [`ARG_BYTES`] of argument each and 8 bytes of
/// result, one after the other, each finished but not read: the test
/// process grows by less than [`GROWTH_MAX_MB`] (it held every argument,
/// 800 MB, when a result kept its chunk's argument buffer); then every
/// result reads intact.
fn unread_results_do_not_keep_their_arguments(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let arg = "x".repeat(ARG_BYTES);
    let base = rss_mb();
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..BIG_TASKS {
        let h = pool.submit(length, arg.clone()).expect("submit");
        let deadline = Instant::now() + JOIN;
        while !h.is_ready() {
            assert!(Instant::now() < deadline, "a task never finished");
            std::thread::sleep(ms(1));
        }
        handles.push(h);
    }
    let grown = rss_mb().saturating_sub(base);
    eprintln!(
        "big arguments {m:?}: {BIG_TASKS} tasks in {:?}, unread: +{grown} MiB",
        started.elapsed()
    );
    assert!(
        grown < GROWTH_MAX_MB,
        "{BIG_TASKS} finished, unread results of {} MiB arguments: +{grown} MiB",
        ARG_BYTES >> 20
    );
    for mut h in handles {
        assert_eq!(h.get_timeout(JOIN).expect("a result"), ARG_BYTES as u64);
    }
    end(pool, pids);
}

/// A task's `(worker pid, started, ended)`, on the clock every process
/// shares.
type Run = (u32, u64, u64);

/// Sleeps `ms`; where and when it ran.
fn nap(ms: u64) -> Run {
    let started = crate::now_ns();
    std::thread::sleep(Duration::from_millis(ms));
    (std::process::id(), started, crate::now_ns())
}

/// Sleeps `ms` (of `(ms, payload)`), as [`nap`].
fn nap_with((ms, _payload): (u64, String)) -> Run {
    nap(ms)
}

/// Does nothing (warms up a function other than [`nap`]).
fn noop(x: u32) -> u32 {
    x
}

/// The long task of [`spread`], in ms.
const LONG_MS: u64 = 800;
/// The short tasks submitted behind it: how many, and how long each.
const SHORT: usize = 16;
const SHORT_MS: u64 = 40;
/// A worker with no task for longer than this idles (less is the time to
/// hand it the next one, on a loaded machine).
const SLACK_NS: u64 = SHORT_MS * 1_000_000;
/// How many short tasks may wait while a worker idles: those a busy worker
/// is handed before the pool knows how long its function's tasks take (4
/// chunks in flight), less the long one.
const MAY_WAIT: usize = 3;

/// The short tasks that waited while a worker idled: those that started
/// more than [`SLACK_NS`] after some worker of `pids` ran out of work
/// (since `from_ns`, when they were submitted).
fn waited_on_idle(from_ns: u64, pids: &BTreeSet<u32>, runs: &[Run], shorts: &[Run]) -> usize {
    let mut idle = Vec::new();
    for &pid in pids {
        let mut mine: Vec<&Run> = runs.iter().filter(|r| r.0 == pid).collect();
        mine.sort_by_key(|r| r.1);
        let mut free = from_ns;
        for r in mine {
            if r.1 > free {
                idle.push((free, r.1));
            }
            free = free.max(r.2);
        }
        idle.push((free, u64::MAX));
    }
    shorts
        .iter()
        .filter(|s| {
            idle.iter()
                .any(|&(from, to)| to.min(s.1).saturating_sub(from) > SLACK_NS)
        })
        .count()
}

/// On a pool of two workers (`pids`), submits a [`LONG_MS`] task, then
/// [`SHORT`] tasks that `short` submits: at most [`MAY_WAIT`] of these wait
/// while a worker idles (behind the long one while the other worker has
/// nothing to do, say).
fn spread(pool: &Pool, pids: &BTreeSet<u32>, what: &str, short: impl Fn() -> TaskHandle<Run>) {
    let from_ns = crate::now_ns();
    let submitted = Instant::now();
    let mut long = pool.submit(nap, LONG_MS).expect("submit");
    let handles: Vec<_> = (0..SHORT).map(|_| short()).collect();
    let mut shorts = Vec::new();
    for mut h in handles {
        shorts.push(h.get_timeout(JOIN).expect("a short task"));
    }
    let long = long.get_timeout(JOIN).expect("the long task");
    let done = submitted.elapsed();
    let mut runs = shorts.clone();
    runs.push(long);
    let waited = waited_on_idle(from_ns, pids, &runs, &shorts);
    let behind = shorts.iter().filter(|s| s.0 == long.0).count();
    eprintln!(
        "{what}: all done after {done:?}, {behind} of {SHORT} short tasks on the long one's \
         worker, {waited} waited while a worker idled"
    );
    assert!(
        waited <= MAY_WAIT,
        "{what}: {waited} short tasks waited while a worker idled ({behind} of {SHORT} ran on \
         the long one's worker, all done after {done:?})"
    );
}

/// Two workers warmed up with a no-op function; then a [`LONG_MS`] task
/// and [`SHORT`] tasks of [`SHORT_MS`], of another function: the short
/// tasks go to the idle worker instead of queueing deep behind the long
/// one.
fn long_tasks_spread(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    warm_up(&pool, noop, 0);
    spread(&pool, &pids, "another function", || {
        pool.submit(nap, SHORT_MS).expect("submit")
    });
    end(pool, pids);
}

/// Argument bytes of each short task in
/// [`large_arguments_do_not_stall_the_pool`].
const SHORT_ARG_BYTES: usize = 100 << 10;

/// A long task, then [`SHORT`] tasks of [`SHORT_MS`] with 100 KiB
/// arguments each, on two workers: the short tasks run on the idle worker
/// meanwhile.
///
/// Guards a fixed bug, older than deep queues: a worker ran its chunk
/// inside the queue's `get_raw` callback, holding its task queue's read
/// lock while the task ran, and the manager's send of a chunk that did not
/// fit the ring (which grows it, under that lock) blocked the manager
/// thread until the long task ended: the idle worker ran 3 short tasks,
/// then nothing until 800 ms (with 1 MiB arguments, nothing after the
/// first). Workers now copy each message out before running it.
fn large_arguments_do_not_stall_the_pool(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let payload = "x".repeat(SHORT_ARG_BYTES);
    spread(&pool, &pids, "large arguments", || {
        pool.submit(nap_with, (SHORT_MS, payload.clone()))
            .expect("submit")
    });
    end(pool, pids);
}

forkserver_only!(
    unread_results_do_not_keep_their_arguments,
    long_tasks_spread,
    large_arguments_do_not_stall_the_pool,
);
