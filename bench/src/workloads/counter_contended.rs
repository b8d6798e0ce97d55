//! `counter_contended`: two child processes each increment a shared `Value<u64>` N times, every
//! increment under the value's lock; reports million increments per second (both processes
//! together), against Python's `multiprocessing.Value('Q')` incremented the same way and against
//! the same two processes around a bare futex lock.
//!
//! How fast a lock goes when two processes do nothing but take it depends on how often it
//! changes hands: the locks here, glibc's and the raw one alike, let the process that just
//! released it take it again at once, so a round may see a handful of hand-offs in a million
//! increments (each process running nearly alone, for milliseconds at a time) or one every few
//! dozen (a sleep and a wake-up each). That varies from round to round and with the load on the
//! other cores, so each side is measured over several rounds and reports the median; every
//! round goes to stderr.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use multiproc::{Barrier, Event, Process, RawValue, Value};

use super::peer::{self, FIRST_MESSAGE_TIMEOUT, PeerResult};
use super::pool_tasks::median_of;
use super::{Better, Ctx, Row, Workload};
use crate::raw_lock::{self, COUNTER_PROCESSES, LOCK_BOUND};

pub const WORKLOAD: Workload = Workload {
    name: "counter_contended",
    about: "2 processes increment a locked Value<u64> N times each (million increments/s)",
    run,
};

const UNIT: &str = "Mops/s";
const VARIANT: &str = "lock";
/// How long the increments may take once started, before the measurement is abandoned.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Rounds per side; the median is reported.
const ROUNDS: usize = 5;
const ROUNDS_QUICK: usize = 3;

/// What an incrementing child gets: the counter, its number of increments, the start barrier
/// (the children and the parent), how many children are done, and the event the last one sets.
type Args = (Value<u64>, u64, Barrier, RawValue<u32>, Event);

fn increment((value, n, start, done, finished): Args) -> PeerResult {
    start
        .wait_timeout(FIRST_MESSAGE_TIMEOUT)
        .map_err(|e| format!("start barrier: {e}"))?;
    for i in 0..n {
        *value.lock().map_err(|e| format!("increment {i}: {e}"))? += 1;
    }
    if done.atomic().fetch_add(1, Ordering::SeqCst) + 1 == COUNTER_PROCESSES {
        finished.set();
    }
    Ok(())
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(2_000_000, 500_000) as u64;
    let n_python = ctx.pick(100_000, 10_000).to_string();
    let n_raw = ctx.pick(5_000_000, 500_000) as u64;
    let rounds = ctx.pick(ROUNDS, ROUNDS_QUICK);

    ctx.progress(name, VARIANT, "multiproc");
    let label = format!("{name}/{VARIANT} multiproc");
    let measured = median_of(&label, UNIT, rounds, || measure(n));
    let value = ctx.check(name, VARIANT, "multiproc", measured);

    ctx.progress(name, VARIANT, "python");
    let args = ["--n", &n_python, "--rounds", &rounds.to_string()];
    let python = ctx.python(name, &args, UNIT);

    ctx.progress(name, VARIANT, "raw");
    let label = format!("{name}/{VARIANT} raw");
    let measured = median_of(&label, UNIT, rounds, || {
        raw_lock::contended_counter_rate(n_raw)
            .map(|rate| rate / 1e6)
            .map_err(|e| e.to_string())
    });
    let raw = ctx.check(name, VARIANT, "raw", measured);

    vec![Row {
        workload: name,
        variant: VARIANT.to_string(),
        unit: UNIT,
        better: Better::Higher,
        value,
        python,
        raw,
        bound: LOCK_BOUND,
    }]
}

fn measure(n: u64) -> Result<f64, String> {
    let value = Value::new(0u64).map_err(|e| format!("Value::new: {e}"))?;
    let start = Barrier::new(COUNTER_PROCESSES + 1).map_err(|e| format!("Barrier::new: {e}"))?;
    let done = RawValue::new(0u32).map_err(|e| format!("RawValue::new: {e}"))?;
    let finished = Event::new().map_err(|e| format!("Event::new: {e}"))?;
    let mut children = Vec::new();
    for _ in 0..COUNTER_PROCESSES {
        let args = (
            value.clone(),
            n,
            start.clone(),
            done.clone(),
            finished.clone(),
        );
        match Process::spawn(increment, args) {
            Ok(child) => children.push(child),
            Err(e) => {
                // The children already started wait at the barrier: break it for them.
                start.abort();
                let outcome = Err(format!("spawn: {e}"));
                return children
                    .into_iter()
                    .fold(outcome, |outcome, child| peer::settle(child, outcome));
            }
        }
    }

    let outcome = (|| {
        // A child that dies holding the barrier breaks it within ~20 ms; the timeout covers one
        // that died before receiving it.
        start
            .wait_timeout(FIRST_MESSAGE_TIMEOUT)
            .map_err(|e| format!("start barrier: {e}"))?;
        let clock = Instant::now();
        if !finished.wait_timeout(RUN_TIMEOUT) {
            return Err(format!("the increments did not end within {RUN_TIMEOUT:?}"));
        }
        let elapsed = clock.elapsed();
        let expected = u64::from(COUNTER_PROCESSES) * n;
        match value.get() {
            total if total == expected => Ok(expected as f64 / elapsed.as_secs_f64() / 1e6),
            total => Err(format!("the counter ended at {total}, not {expected}")),
        }
    })();
    children
        .into_iter()
        .fold(outcome, |outcome, child| peer::settle(child, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_children_count_exactly() {
        let rate = measure(10_000).unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
    }
}
