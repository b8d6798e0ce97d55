//! The manager must never sleep on results that are already there: rounds
//! of small maps over 4 workers (more workers than this machine's 2 cores,
//! so that a worker is often preempted between committing a result and
//! ringing the doorbell), each round under a deadline.

use crate::common::secs;
use crate::{end, per_method};
use multiproc::{Pool, StartMethod};
use std::time::{Duration, Instant};

/// How long the stress runs.
const STRESS: Duration = Duration::from_secs(3);

/// `x + 1` after 2 ms: the workers, given the same tasks at the same
/// time, finish them in lockstep, committing results at the same moment.
fn inc_after_2ms(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    x + 1
}

/// A pool without `task_timeout` never strands finished results in its
/// result queue. (It did: a producer preempted between committing a result
/// and ringing could use up the arming of the manager's *next* `wait`,
/// whose stale-doorbell path then polled on without re-arming, so no later
/// result rang. Seen here within seconds, and in about 1 run in 15 of the
/// `deaths` scenarios. `wait` now re-arms after a stale wake-up, and the
/// manager's waits have a finite backstop.)
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

per_method!(results_are_never_stranded,);
