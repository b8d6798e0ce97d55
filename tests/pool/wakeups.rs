//! The manager must never sleep on results that are already there: rounds
//! of small maps over 4 workers (more workers than this machine's 2 cores,
//! so that a worker is often preempted between committing a result and
//! ringing the doorbell), each round under a deadline.

use crate::common::secs;
use crate::{end, per_method};
use multiproc::{Pool, StartMethod};
use std::time::{Duration, Instant};

/// How long the stress runs.
const STRESS: Duration = Duration::from_secs(5);

/// `x + 1` after 2 ms: the workers, given the same tasks at the same
/// time, finish them in lockstep, committing results at the same moment.
fn inc_after_2ms(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x + 1
}

/// BUG (ignored until fixed in `src/wait.rs` / `src/channel/queue.rs`): a
/// pool without `task_timeout` can hang forever with finished results in
/// its result queue. Seen here within a few seconds, and in about 1 run in
/// 15 of the `deaths` scenarios (their `worker_pids` round never returned).
/// A hung pool, read from its shared memory: the result ring held 8 records
/// committed, 2 taken; its `sleepers.data` was 1 (the manager, asleep in
/// `wait` with no timeout), `data_armed` was 0 and the data doorbell had no
/// token; both workers' task rings were empty (4 put, 4 taken): they had
/// run everything and sent the results.
///
/// Cause: `should_ring` rings only when it flips `data_armed` from 1 to 0,
/// and only `Ring::register` sets it back to 1. A producer that commits
/// while the manager sleeps in one `wait` and is preempted before it rings
/// (so the manager drains that result on another wake-up) then flips the
/// flag set by the manager's *next* `wait` and rings. That `wait` wakes,
/// finds the ring empty (`ready_now` false) and takes the "stale doorbell"
/// path of `wait_armed`: `Queue::settle` takes the token and the loop polls
/// again, still registered but with `data_armed` at 0, so no later commit
/// ever rings. A fix: re-arm in that path (`o.arm(false); o.arm(true)`, or
/// let `settle` store 1 in `data_armed` while a sleeper is registered)
/// before looking at the ring again; and, as a second line, give the
/// manager's `wait` a finite timeout.
fn results_are_never_stranded(m: StartMethod) {
    // No task limit: its periodic look-around would hide the bug.
    let pool = Pool::builder()
        .processes(4)
        .start_method(m)
        .build()
        .expect("pool");
    let started = Instant::now();
    let mut rounds = 0u64;
    while started.elapsed() < STRESS {
        let handles: Vec<_> = (0..16)
            .map(|x| pool.submit(inc_after_2ms, x).expect("submit"))
            .collect();
        for (x, mut h) in handles.into_iter().enumerate() {
            match h.get_timeout(secs(5)) {
                Ok(v) => assert_eq!(v, x as u64 + 1),
                Err(e) => panic!("round {rounds}, task {x}: {e} (a result stranded?)"),
            }
        }
        rounds += 1;
    }
    eprintln!("wakeups {m:?}: {rounds} rounds in {STRESS:?}");
    end(pool, []);
}

per_method!(
    #[ignore = "library bug: the pool's manager can sleep forever on results already queued (see the scenario's docs)"]
    results_are_never_stranded,
);
