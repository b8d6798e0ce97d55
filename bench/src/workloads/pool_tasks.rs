//! What the pool workloads share: the task functions their workers run, the pool they measure,
//! and the statistics of their rounds (median, percentiles).

use std::hint::black_box;
use std::time::Duration;

use multiproc::Pool;

/// The trivial task of the throughput and latency workloads (Python: `def inc(x): return x + 1`).
pub fn inc(x: u64) -> u64 {
    x + 1
}

/// Naive recursive Fibonacci: the CPU-bound task of `pool_cpu` (the same code as Python's).
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// `fib(n)` with `n` hidden from the optimiser, so that a constant input is not folded away.
pub fn fib_task(n: u32) -> u64 {
    fib(black_box(n))
}

/// Sleeps `ms` milliseconds, then says which process ran it: finds the pids of a pool's workers.
pub fn pid_after_ms(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

/// The number of worker processes every pool workload uses on both sides: one per CPU this
/// process may run on (2 on the machine of `RESULTS.md`). Python gets the same number.
pub fn processes() -> usize {
    multiproc::cpu_count()
}

/// A pool of `processes` workers whose workers have all started and run a few tasks, so that no
/// measurement pays for start-up.
pub fn warm_pool(processes: usize) -> Result<Pool, String> {
    let pool = Pool::new(processes).map_err(|e| format!("Pool::new({processes}): {e}"))?;
    let out = pool
        .map_chunked(inc, 0..1_000u64, 1)
        .map_err(|e| format!("warm-up map: {e}"))?;
    if out.last() != Some(&1_000) {
        return Err(format!("warm-up map returned {:?}", out.last()));
    }
    Ok(pool)
}

/// Checks that `got` is `inc(i)` for task `i`.
pub fn check_inc(i: u64, got: u64) -> Result<(), String> {
    if got == inc(i) {
        Ok(())
    } else {
        Err(format!("task {i} returned {got}, expected {}", inc(i)))
    }
}

/// Runs `round` `rounds` times (at least once); the median value, with every round said on
/// stderr under `label`.
pub fn median_of(
    label: &str,
    unit: &str,
    rounds: usize,
    mut round: impl FnMut() -> Result<f64, String>,
) -> Result<f64, String> {
    let mut values = Vec::new();
    for _ in 0..rounds.max(1) {
        values.push(round()?);
    }
    let shown: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    eprintln!("[{label}] rounds ({unit}): {}", shown.join(", "));
    Ok(median(values))
}

/// The middle value (the upper middle of an even count, as the Python scripts).
///
/// # Panics
/// On an empty list.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The `p`-th percentile (0 < `p` ≤ 100) of `sorted` (ascending) by the nearest-rank method: the
/// smallest value with at least `p`% of the values at or below it; `None` for an empty list.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_is_fibonacci() {
        let first: Vec<u64> = (0..10).map(fib).collect();
        assert_eq!(first, [0, 1, 1, 2, 3, 5, 8, 13, 21, 34]);
        assert_eq!(fib_task(20), 6765);
    }

    #[test]
    fn median_takes_the_upper_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(vec![7.0]), 7.0);
    }

    #[test]
    fn median_of_stops_at_the_first_failure() {
        let mut calls = 0;
        let r = median_of("test", "u", 5, || {
            calls += 1;
            if calls == 2 {
                Err("boom".into())
            } else {
                Ok(1.0)
            }
        });
        assert_eq!(r, Err("boom".to_string()));
        assert_eq!(calls, 2);
        assert_eq!(median_of("test", "u", 0, || Ok(4.0)), Ok(4.0));
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        let few = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&few, 50.0), Some(2.0));
        assert_eq!(percentile(&few, 99.0), Some(3.0));
        assert_eq!(percentile(&few, 0.1), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn check_inc_names_the_wrong_task() {
        assert!(check_inc(4, 5).is_ok());
        assert!(check_inc(4, 4).unwrap_err().contains("task 4"));
    }
}
