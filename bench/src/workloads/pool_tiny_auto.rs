//! `pool_tiny_auto`: [`Pool::map`](multiproc::Pool::map) of a trivial task (`fn(u64) -> u64`,
//! `x + 1`) over 1M items with the automatic chunk size, against Python's `Pool.map` with its
//! default chunk size. Both cut the input into `ceil(n / (4 × processes))`-item chunks (125,000
//! on 2 cores): what is measured is moving 1M arguments and results through the pool, in a few
//! large messages. Reports million tasks per second, from the call to the returned results
//! (the input collected, every result decoded), the median of nine rounds on each side.

use std::time::Instant;

use multiproc::Pool;

use super::pool_tasks::{self, check_inc, inc, median_of};
use super::{Better, Ctx, Row, Workload};

pub const WORKLOAD: Workload = Workload {
    name: "pool_tiny_auto",
    about: "Pool::map of a trivial task over 1M items, automatic chunks (million tasks/s)",
    run,
};

const UNIT: &str = "Mtask/s";
const VARIANT: &str = "map";

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let processes = pool_tasks::processes();
    let n = ctx.pick(1_000_000, 100_000) as u64;
    let rounds = ctx.pick(9, 1);
    eprintln!(
        "[{name}] {processes} worker processes on each side (cpu_count), chunks of {} items",
        n.div_ceil(4 * processes as u64)
    );

    ctx.progress(name, VARIANT, "multiproc");
    let label = format!("{name}/{VARIANT}");
    let measured = pool_tasks::warm_pool(processes)
        .and_then(|pool| median_of(&label, UNIT, rounds, || map_rate(&pool, n)));
    let value = ctx.check(name, VARIANT, "multiproc", measured);

    ctx.progress(name, VARIANT, "python");
    let args = [
        "--processes",
        &processes.to_string(),
        "--n",
        &n.to_string(),
        "--rounds",
        &rounds.to_string(),
    ];
    let python = ctx.python(name, &args, UNIT);

    vec![Row {
        workload: name,
        variant: VARIANT.to_string(),
        unit: UNIT,
        better: Better::Higher,
        value,
        python,
        raw: None,
        bound: "",
    }]
}

/// One `map(inc, 0..n)`: million tasks per second.
fn map_rate(pool: &Pool, n: u64) -> Result<f64, String> {
    let started = Instant::now();
    let out = pool.map(inc, 0..n).map_err(|e| format!("map: {e}"))?;
    let rate = n as f64 / started.elapsed().as_secs_f64() / 1e6;
    if out.len() as u64 != n {
        return Err(format!("map returned {} results for {n}", out.len()));
    }
    for (x, got) in (0..n).zip(out) {
        check_inc(x, got)?;
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_small_input() {
        let pool = pool_tasks::warm_pool(2).unwrap();
        let rate = map_rate(&pool, 10_000).unwrap();
        assert!(rate > 0.0 && rate.is_finite(), "{rate}");
    }
}
