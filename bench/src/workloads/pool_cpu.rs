//! `pool_cpu`: naive recursive `fib(32)` for each of 64 inputs, through
//! [`Pool::map`](multiproc::Pool::map) on [`processes()`](pool_tasks::processes) workers and
//! serially in this process; reports the pool's wall time against the ideal (the serial time
//! divided by the number of workers) and the speedup over serial.
//!
//! The same `fib(32)` in a Python pool would take minutes, so Python runs `fib(24)` instead (a
//! task of about the same time, ~4 ms, on the machine of `RESULTS.md`) and reports its own
//! pool's speedup over its own serial loop: the python column of the `speedup` row compares how
//! well the two pools turn workers into speed, not the two languages.
//!
//! Serial and pool rounds alternate, so that a disturbance of the machine hits both; each side
//! reports its median.

use std::hint::black_box;
use std::time::Instant;

use multiproc::Pool;

use super::pool_tasks::{self, fib, fib_task, median};
use super::{Better, Ctx, Row, Workload};

pub const WORKLOAD: Workload = Workload {
    name: "pool_cpu",
    about: "fib(32) for 64 inputs on a pool of cpu_count workers vs serially (ms, speedup)",
    run,
};

const FIB_N: u32 = 32;
/// Python's task: about as long in Python as `fib(32)` in Rust.
const PYTHON_FIB_N: u32 = 24;
const TIME_UNIT: &str = "ms";
const SPEEDUP_UNIT: &str = "×";
const SERIAL_BOUND: &str = "serial ÷ workers";

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let processes = pool_tasks::processes();
    let tasks = ctx.pick(64, 16);
    let rounds = ctx.pick(3, 1);
    eprintln!("[{name}] {processes} worker processes (cpu_count), {tasks} tasks of fib({FIB_N})");

    ctx.progress(name, "pool", "multiproc and serial");
    let measured = pool_tasks::warm_pool(processes)
        .and_then(|pool| measure(&pool, tasks, rounds))
        .map(|(pool, serial)| {
            eprintln!(
                "[{name}] serial {serial:.1} ms ({:.2} ms per task), pool {pool:.1} ms",
                serial / tasks as f64
            );
            (pool, serial)
        });
    let (pool_ms, serial_ms) = match measured {
        Ok((pool, serial)) => (Some(pool), Some(serial)),
        Err(e) => {
            ctx.check::<String>(name, "pool", "multiproc", Err(e));
            (None, None)
        }
    };
    let speedup = pool_ms.zip(serial_ms).map(|(pool, serial)| serial / pool);

    ctx.progress(name, "speedup", "python");
    let args = [
        "--processes",
        &processes.to_string(),
        "--tasks",
        &tasks.to_string(),
        "--fib",
        &PYTHON_FIB_N.to_string(),
        "--rounds",
        &rounds.to_string(),
    ];
    let python_speedup = ctx.python(name, &args, SPEEDUP_UNIT);

    vec![
        Row {
            workload: name,
            variant: "pool".to_string(),
            unit: TIME_UNIT,
            better: Better::Lower,
            value: pool_ms,
            python: None,
            raw: serial_ms.map(|serial| serial / processes as f64),
            bound: SERIAL_BOUND,
        },
        Row {
            workload: name,
            variant: "speedup".to_string(),
            unit: SPEEDUP_UNIT,
            better: Better::Higher,
            value: speedup,
            python: python_speedup,
            raw: None,
            bound: "",
        },
    ]
}

/// `rounds` alternating rounds of the serial loop and the pool; the median milliseconds of each:
/// `(pool, serial)`.
fn measure(pool: &Pool, tasks: usize, rounds: usize) -> Result<(f64, f64), String> {
    let expected = fib(FIB_N);
    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let mut sum = 0u64;
        for _ in 0..tasks {
            sum += fib_task(FIB_N);
        }
        serial.push(started.elapsed().as_secs_f64() * 1e3);
        if black_box(sum) != expected * tasks as u64 {
            return Err(format!(
                "serial sum {sum}, expected {}",
                expected * tasks as u64
            ));
        }

        let started = Instant::now();
        let out = pool
            .map(fib_task, vec![FIB_N; tasks])
            .map_err(|e| format!("map: {e}"))?;
        parallel.push(started.elapsed().as_secs_f64() * 1e3);
        if out.len() != tasks || out.iter().any(|&v| v != expected) {
            return Err(format!(
                "the pool returned {out:?}, expected {tasks} × {expected}"
            ));
        }
    }
    let shown = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "[{}] rounds (ms): serial {}; pool {}",
        WORKLOAD.name,
        shown(&serial),
        shown(&parallel)
    );
    Ok((median(parallel), median(serial)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_both_sides() {
        let pool = pool_tasks::warm_pool(2).unwrap();
        let (pool_ms, serial_ms) = measure(&pool, 2, 2).unwrap();
        assert!(pool_ms > 0.0 && serial_ms > 0.0, "{pool_ms} {serial_ms}");
    }
}
