//! `pool_tiny_chunk1`: 100k trivial tasks (`fn(u64) -> u64`, `x + 1`) through a [`Pool`], one
//! task per message: the pool's per-task overhead with nothing to amortise it. Reports thousand
//! tasks per second for `submit` of every task (then `get` of every handle), for
//! `imap(..).chunksize(1)` and for `map_chunked(.., 1)`, against `ProcessPoolExecutor.submit`
//! and `Pool.map(chunksize=1)`; and the round-trip latency of one `apply` (median and 99th
//! percentile) against Python's `Pool.apply`.
//!
//! Both sides use one pool of [`processes()`](pool_tasks::processes) workers, started and warmed
//! up before any clock starts. There is no raw bound.

use std::time::Instant;

use multiproc::Pool;

use super::pool_tasks::{self, check_inc, inc, median_of, percentile};
use super::{Better, Ctx, Row, Workload};

pub const WORKLOAD: Workload = Workload {
    name: "pool_tiny_chunk1",
    about: "100k trivial pool tasks, one per message: submit, imap(chunksize 1) (ktask/s); apply latency",
    run,
};

const RATE_UNIT: &str = "ktask/s";
const LATENCY_UNIT: &str = "us";
/// Unmeasured `apply` round trips before the latency loop.
const LATENCY_WARMUP: usize = 200;

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let processes = pool_tasks::processes();
    let n = ctx.pick(100_000, 10_000) as u64;
    let rounds = ctx.pick(3, 1);
    let n_latency = ctx.pick(5_000, 500);
    // The same number of tasks on the Python side (~10 s for the executor), one round each.
    let n_python = n.to_string();
    let n_python_latency = ctx.pick(2_000, 200).to_string();
    let procs = processes.to_string();
    eprintln!("[{name}] {processes} worker processes on each side (cpu_count)");

    let pool = pool_tasks::warm_pool(processes);
    let measure = |ctx: &mut Ctx, variant: &str, f: fn(&Pool, u64) -> Result<f64, String>| {
        ctx.progress(name, variant, "multiproc");
        let label = format!("{name}/{variant}");
        let measured = pool
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|pool| median_of(&label, RATE_UNIT, rounds, || f(pool, n)));
        ctx.check(name, variant, "multiproc", measured)
    };

    let submit = measure(ctx, "submit", submit_rate);
    let imap = measure(ctx, "imap", imap_rate);
    let map_chunked = measure(ctx, "map_chunked", map_chunked_rate);

    ctx.progress(name, "apply", "multiproc");
    let latencies = pool
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|pool| apply_latencies(pool, n_latency));
    let p50 = ctx.check(name, "apply_p50", "multiproc", stat(&latencies, 50.0));
    let p99 = ctx.check(name, "apply_p99", "multiproc", stat(&latencies, 99.0));
    drop(pool);

    let python_rate = |ctx: &mut Ctx, variant: &str, mode: &str, n: &str| {
        ctx.progress(name, variant, "python");
        let args = [
            "--processes",
            &procs,
            "--mode",
            mode,
            "--n",
            n,
            "--rounds",
            "1",
        ];
        ctx.python(name, &args, RATE_UNIT)
    };
    let python_submit = python_rate(ctx, "submit", "submit", &n_python);
    let python_map = python_rate(ctx, "imap", "map", &n_python);
    let python_latency = |ctx: &mut Ctx, variant: &str, stat: &str| {
        ctx.progress(name, variant, "python");
        let args = [
            "--processes",
            &procs,
            "--mode",
            "apply",
            "--stat",
            stat,
            "--n",
            &n_python_latency,
            "--warmup",
            "100",
        ];
        ctx.python(name, &args, LATENCY_UNIT)
    };
    let python_p50 = python_latency(ctx, "apply_p50", "p50");
    let python_p99 = python_latency(ctx, "apply_p99", "p99");

    let row = |variant: &str, unit, better, value, python| Row {
        workload: name,
        variant: variant.to_string(),
        unit,
        better,
        value,
        python,
        raw: None,
        bound: "",
    };
    vec![
        row("submit", RATE_UNIT, Better::Higher, submit, python_submit),
        row("imap", RATE_UNIT, Better::Higher, imap, python_map),
        row(
            "map_chunked",
            RATE_UNIT,
            Better::Higher,
            map_chunked,
            python_map,
        ),
        row("apply_p50", LATENCY_UNIT, Better::Lower, p50, python_p50),
        row("apply_p99", LATENCY_UNIT, Better::Lower, p99, python_p99),
    ]
}

/// Thousand tasks per second over `rate` tasks done in `started.elapsed()`.
fn ktasks_per_s(n: u64, started: Instant) -> f64 {
    n as f64 / started.elapsed().as_secs_f64() / 1e3
}

/// `submit` every task, then `get` every handle in order.
fn submit_rate(pool: &Pool, n: u64) -> Result<f64, String> {
    let started = Instant::now();
    let handles = (0..n)
        .map(|x| pool.submit(inc, x).map_err(|e| format!("submit {x}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    for (x, mut handle) in (0..n).zip(handles) {
        check_inc(x, handle.get().map_err(|e| format!("get {x}: {e}"))?)?;
    }
    Ok(ktasks_per_s(n, started))
}

/// `imap(inc, 0..n).chunksize(1)`, every result consumed in order.
fn imap_rate(pool: &Pool, n: u64) -> Result<f64, String> {
    let started = Instant::now();
    let mut count = 0;
    for (x, result) in (0..n).zip(pool.imap(inc, 0..n).chunksize(1)) {
        check_inc(x, result.map_err(|e| format!("imap task {x}: {e}"))?)?;
        count += 1;
    }
    if count != n {
        return Err(format!("imap yielded {count} results for {n} tasks"));
    }
    Ok(ktasks_per_s(n, started))
}

/// `map_chunked(inc, 0..n, 1)`: Python's `Pool.map(chunksize=1)`, call for call.
fn map_chunked_rate(pool: &Pool, n: u64) -> Result<f64, String> {
    let started = Instant::now();
    let out = pool
        .map_chunked(inc, 0..n, 1)
        .map_err(|e| format!("map_chunked: {e}"))?;
    let rate = ktasks_per_s(n, started);
    if out.len() as u64 != n {
        return Err(format!(
            "map_chunked returned {} results for {n}",
            out.len()
        ));
    }
    for (x, got) in (0..n).zip(out) {
        check_inc(x, got)?;
    }
    Ok(rate)
}

/// The microseconds of `n` `apply` round trips in a row, after [`LATENCY_WARMUP`] unmeasured
/// ones, sorted.
fn apply_latencies(pool: &Pool, n: usize) -> Result<Vec<f64>, String> {
    for x in 0..LATENCY_WARMUP as u64 {
        check_inc(
            x,
            pool.apply(inc, x).map_err(|e| format!("apply {x}: {e}"))?,
        )?;
    }
    let mut micros = Vec::with_capacity(n);
    for x in 0..n as u64 {
        let started = Instant::now();
        let got = pool.apply(inc, x).map_err(|e| format!("apply {x}: {e}"))?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
        check_inc(x, got)?;
    }
    micros.sort_by(f64::total_cmp);
    eprintln!(
        "[{}/apply] {n} round trips: min {:.1} us, max {:.1} us",
        WORKLOAD.name,
        micros.first().copied().unwrap_or(f64::NAN),
        micros.last().copied().unwrap_or(f64::NAN)
    );
    Ok(micros)
}

/// The `p`-th percentile of sorted latencies, or why there is none.
fn stat(latencies: &Result<Vec<f64>, String>, p: f64) -> Result<f64, String> {
    match latencies {
        Ok(sorted) => percentile(sorted, p).ok_or_else(|| "no round trip measured".to_string()),
        Err(e) => Err(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_measures_a_small_pool() {
        let pool = pool_tasks::warm_pool(2).unwrap();
        for f in [submit_rate, imap_rate, map_chunked_rate] {
            let rate = f(&pool, 300).unwrap();
            assert!(rate > 0.0 && rate.is_finite(), "{rate}");
        }
        let latencies = Ok(apply_latencies(&pool, 50).unwrap());
        let p50 = stat(&latencies, 50.0).unwrap();
        let p99 = stat(&latencies, 99.0).unwrap();
        assert!(0.0 < p50 && p50 <= p99, "{p50} {p99}");
        assert!(stat(&Ok(Vec::new()), 50.0).is_err());
        assert_eq!(stat(&Err("no pool".into()), 50.0), Err("no pool".into()));
    }
}
