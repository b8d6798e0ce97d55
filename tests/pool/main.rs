//! [`Pool`] at the process level: what happens to a pool when its workers
//! die, hang, panic, are cancelled, are recycled, or outlive their parent;
//! its lazy and asynchronous faces. The unit tests in `src/pool/test.rs`
//! cover the basics once; here each scenario runs with both start methods
//! a pool accepts (ForkServer and Spawn), with timings and leak checks.
//!
//! - `deaths`: a worker SIGKILLed, `exit(3)`, `abort()`ed, segfaulting in
//!   mid-task: that task alone fails, naming pid, signal or exit code and
//!   task index, within [`DETECT_WITHIN`] of the moment it was about to
//!   die; the worker is replaced; a death inside a chunk of 5 fails
//!   exactly one index.
//! - `tasks`: a panic (no process lost), a task past its timeout (its
//!   worker killed and replaced), a result that cannot be encoded in the
//!   worker or decoded in the parent.
//! - `cancel`: cancelling a running, a queued and a finished task.
//! - `lifecycle`: `max_tasks_per_child`; a parent SIGKILLed with a pool
//!   (its workers gone within 1 s); dropping or terminating a busy pool.
//! - `lazy`: `imap` over an endless input (pulls bounded, an early drop
//!   harmless).
//! - `futures`: `TaskHandle` as a `Future` on a hand-written executor;
//!   `as_completed`.
//! - `init`: an initializer whose argument carries handles (a `Queue`, a
//!   `Lock`), and `with_worker_state`.
//! - `wakeups`: the manager never sleeps on results already queued.
//!
//! Deadlines: every wait that has a timeout form uses it (`get_timeout`,
//! `MapHandle::get_timeout`, `Queue::get_timeout`); the calls that have
//! none (`map_chunked`, `imap`, `as_completed`) are covered by a
//! [`Watchdog`] that aborts the binary, so a hang fails CI instead of
//! stalling it.
//!
//! Leaks: every scenario ends with [`end`], which drops the pool (bounded:
//! [`DROP_WITHIN`]) and checks that every worker pid the scenario saw is
//! gone within [`GONE_WITHIN`]; then the harness checks the test process:
//! no zombie child, no more descriptors than before, nothing new in
//! /dev/shm. Those checks measure process-wide state, so the tests of this
//! binary are serialized by a mutex.
//!
//! Tests that fail on library bugs are `#[ignore]`d, with the bug, what was
//! seen and its cause in their docs: run them with
//! `cargo test --test pool -- --ignored`. The scenarios' pools carry a
//! [`SAFETY_NET`] task limit.
//!
//! Cost: about 20 s for the whole binary unoptimised on a 2-core machine;
//! worker processes print the panics of the panic scenarios on stderr.

mod cancel;
#[path = "../common/mod.rs"]
mod common;
mod deaths;
mod depth;
mod futures;
mod init;
mod lazy;
mod lifecycle;
mod tasks;
mod wakeups;

use common::{JOIN, Snapshot, Watchdog, ms, pid_exists, serial};
use multiproc::{Pool, PoolBuilder, RawValue, StartMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Once;
use std::time::{Duration, Instant};

/// How soon a worker's death (or a task's timeout, past its limit) must
/// reach the caller: the design's ~100 ms. Measured from the moment the
/// task wrote the clock, just before dying, to the moment the caller holds
/// the error. `POOL_DETECT_MS` overrides it.
///
/// Margin for a loaded machine: a measurement over the limit is repeated,
/// up to [`ATTEMPTS`] times in all; the best must be within the limit and
/// every one within [`HARD_LIMIT`]. A slow detection path (a polling
/// interval over 100 ms, say) fails every attempt; a CPU hog on a 2-core
/// machine does not fail them all.
const DETECT_WITHIN: Duration = Duration::from_millis(100);
/// Attempts at a latency measurement (see [`DETECT_WITHIN`]).
const ATTEMPTS: usize = 3;
/// No measurement may exceed this, loaded machine or not.
const HARD_LIMIT: Duration = Duration::from_secs(1);
/// How long dropping a pool may take, whatever its workers are doing.
const DROP_WITHIN: Duration = Duration::from_secs(2);
/// How soon a worker must be gone (not even a zombie) once its pool has
/// dropped it or replaced it.
const GONE_WITHIN: Duration = Duration::from_secs(2);
/// How long a scenario may run before the watchdog aborts the binary.
const WATCHDOG: Duration = Duration::from_secs(90);

/// Both start methods a pool accepts.
const METHODS: [StartMethod; 2] = [StartMethod::ForkServer, StartMethod::Spawn];

/// Generates, for each scenario `fn name(StartMethod)` of the calling
/// module, a module `name` with one test per start method.
macro_rules! per_method {
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

            #[test]
            $(#[$attr])*
            fn spawn() {
                crate::pool_test(
                    concat!(module_path!(), "::spawn"),
                    multiproc::StartMethod::Spawn,
                    super::$name,
                );
            }
        }
    )*};
}
pub(crate) use per_method;

/// Runs `scenario(m)` under the suite's mutex and watchdog, with a leak
/// check of the test process around it, and prints how long it took.
fn pool_test(name: &str, m: StartMethod, scenario: fn(StartMethod)) {
    let _guard = serial();
    let _watchdog = Watchdog::start(WATCHDOG, name.to_owned());
    warm_up();
    let before = Snapshot::take();
    let started = Instant::now();
    scenario(m);
    assert_no_leaks(&before, name);
    eprintln!("{name}: {:?}", started.elapsed());
}

/// [`Snapshot::assert_no_leaks`], except for POSIX named semaphores in
/// /dev/shm (`sem.*`): multiproc never creates any (its locks are futexes
/// in memfd mappings), and other programs on the machine do (Python's
/// `multiprocessing` benchmarks create and remove `sem.mp-*` all the time).
fn assert_no_leaks(before: &Snapshot, name: &str) {
    let now = Snapshot::take();
    let zombies = common::my_zombies();
    let new_shm: Vec<&String> = now
        .shm
        .difference(&before.shm)
        .filter(|n| !n.starts_with("sem."))
        .collect();
    assert!(
        zombies.is_empty() && now.fds.len() <= before.fds.len() && new_shm.is_empty(),
        "{name}: leak detected\n zombies of ours: {zombies:?}\n fds before: {:?}\n fds after: {:?}\n new in /dev/shm: {new_shm:?}",
        before.fds,
        now.fds
    );
}

/// Starts (and drops) a pool of each method once, so that what persists
/// after a first use (the fork server and its socket) is in every
/// baseline.
fn warm_up() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        for m in METHODS {
            let p = pool(m, 1);
            assert_eq!(p.apply(square, 3).expect("warm-up task"), 9);
        }
    });
}

/// A task limit no scenario reaches, set on the pools of the scenarios
/// that are not about timeouts: a task stuck by a regression then fails
/// its test with a timeout error instead of waiting for the watchdog.
/// (It was first added against a lost wake-up, since fixed, that `wakeups`
/// tests on pools without it.)
const SAFETY_NET: Duration = Duration::from_secs(120);

/// A builder for a pool of `n` workers started with `m`, with the
/// [`SAFETY_NET`].
fn builder(m: StartMethod, n: usize) -> PoolBuilder {
    Pool::builder()
        .processes(n)
        .start_method(m)
        .task_timeout(SAFETY_NET)
}

/// A pool of `n` workers started with `m` (with the [`SAFETY_NET`]).
fn pool(m: StartMethod, n: usize) -> Pool {
    builder(m, n)
        .build()
        .unwrap_or_else(|e| panic!("cannot start a {m:?} pool: {e}"))
}

fn square(x: u64) -> u64 {
    x * x
}

/// Sleeps `ms`, then says which worker ran it.
fn pid_after(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// The pids of the pool's workers: rounds of 10 ms tasks, one per chunk,
/// twice as many each round, until every worker has answered. (Rounds,
/// not one batch: how many chunks the pool queues on one worker before it
/// gives the next any is its own business, see
/// `futures::idle_workers_take_new_tasks`.)
fn worker_pids(pool: &Pool) -> BTreeSet<u32> {
    let pids = answering_pids(pool);
    let n = pool.processes();
    assert_eq!(pids.len(), n, "more workers than the pool has: {pids:?}");
    pids
}

/// As [`worker_pids`], for a pool whose workers may be replaced while they
/// answer (`max_tasks_per_child`): at least `processes` pids.
fn answering_pids(pool: &Pool) -> BTreeSet<u32> {
    let n = pool.processes();
    let mut pids = BTreeSet::new();
    let mut tasks = 4 * n;
    while pids.len() < n {
        assert!(
            tasks <= 64 * n,
            "only {} of {n} workers answered: {pids:?}",
            pids.len()
        );
        let handles: Vec<_> = (0..tasks)
            .map(|_| pool.submit(pid_after, 10).expect("submit"))
            .collect();
        for mut h in handles {
            pids.insert(h.get_timeout(JOIN).expect("collecting the worker pids"));
        }
        tasks *= 2;
    }
    pids
}

/// Checks that the pool still computes.
fn assert_usable(pool: &Pool, what: &str) {
    let got = pool
        .map_async(square, 0..8)
        .expect("map_async")
        .get_timeout(JOIN)
        .unwrap_or_else(|e| panic!("{what}: the pool no longer works: {e}"));
    assert_eq!(got, [0, 1, 4, 9, 16, 25, 36, 49], "{what}");
}

/// Waits until none of `pids` exists any more (zombies count as existing),
/// at most [`GONE_WITHIN`].
fn assert_gone(pids: &BTreeSet<u32>, what: &str) {
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let alive: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|&p| pid_exists(p as i32))
            .collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still there {GONE_WITHIN:?} later: {alive:?} (of {pids:?})"
        );
        std::thread::sleep(ms(5));
    }
}

/// The end of every scenario: drops the pool (within [`DROP_WITHIN`]) and
/// checks that its current workers and every other worker pid in `seen`
/// are gone.
fn end(pool: Pool, seen: impl IntoIterator<Item = u32>) {
    let mut pids: BTreeSet<u32> = seen.into_iter().collect();
    pids.extend(answering_pids(&pool));
    let started = Instant::now();
    drop(pool);
    let took = started.elapsed();
    assert!(took < DROP_WITHIN, "dropping an idle pool took {took:?}");
    assert_gone(&pids, "workers of a dropped pool");
}

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock every process of the
/// machine shares (the pool's workers stamp their progress with it too).
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where a task says, just before doing something fatal, who it is and
/// when it was: shared cells the test reads afterwards.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Probe {
    pid: RawValue<u64>,
    at_ns: RawValue<u64>,
}

impl Probe {
    fn new() -> Probe {
        Probe {
            pid: RawValue::new(0).expect("RawValue"),
            at_ns: RawValue::new(0).expect("RawValue"),
        }
    }

    /// Called by the task: this process, now.
    fn mark(&self) {
        self.pid.set(u64::from(std::process::id()));
        self.at_ns.set(now_ns());
    }

    /// The pid of the marking worker.
    fn pid(&self) -> u32 {
        let pid = self.pid.get();
        assert_ne!(pid, 0, "the task never marked its probe");
        pid as u32
    }

    /// Time from the mark to `now_ns`.
    fn since(&self, now_ns: u64) -> Duration {
        let at = self.at_ns.get();
        assert_ne!(at, 0, "the task never marked its probe");
        Duration::from_nanos(now_ns.saturating_sub(at))
    }
}

/// The detection limit, [`DETECT_WITHIN`] unless `POOL_DETECT_MS` says.
fn detect_within() -> Duration {
    std::env::var("POOL_DETECT_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(DETECT_WITHIN, Duration::from_millis)
}

/// Runs `measure` (one latency measurement) until one is within
/// [`detect_within`], at most [`ATTEMPTS`] times; each must be under
/// [`HARD_LIMIT`]. Prints and returns the measurements.
fn measure_latency(what: &str, mut measure: impl FnMut() -> Duration) -> Vec<Duration> {
    let limit = detect_within();
    let mut got = Vec::new();
    while got.len() < ATTEMPTS {
        let d = measure();
        assert!(d < HARD_LIMIT, "{what}: took {d:?} (all so far: {got:?})");
        got.push(d);
        if d <= limit {
            break;
        }
    }
    eprintln!("{what}: {got:?}");
    assert!(
        got.iter().any(|d| *d <= limit),
        "{what}: over {limit:?} in all {ATTEMPTS} attempts: {got:?}"
    );
    got
}

#[test]
fn smoke() {
    for m in METHODS {
        pool_test("smoke", m, |m| {
            let p = pool(m, 2);
            let pids = worker_pids(&p);
            assert!(!pids.contains(&std::process::id()));
            assert_usable(&p, "smoke");
            end(p, pids);
        });
    }
}
