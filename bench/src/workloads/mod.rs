//! The registry of workloads and what they share: the measuring context, the row they report,
//! and the timing loop.
//!
//! Adding a workload: write `workloads/<name>.rs` exposing `pub const WORKLOAD: Workload`, add
//! `mod <name>;` and `<name>::WORKLOAD` to [`ALL`] below, and its Python counterpart
//! `bench/python/<name>.py`.

mod bulk_64mib;
mod counter_contended;
mod idle_worker_rss;
mod lock_uncontended;
mod manager_dict_ops;
mod peer;
mod pipe_roundtrip;
mod pipe_throughput;
mod pool_cpu;
mod pool_tasks;
mod pool_tiny_auto;
mod pool_tiny_chunk1;
mod queue_roundtrip;
mod queue_throughput;
mod start_join;

use std::fmt::Display;
use std::time::Instant;

use crate::python::Python;

/// Every workload, in the order a full run measures them.
pub const ALL: &[Workload] = &[
    start_join::WORKLOAD,
    queue_throughput::WORKLOAD,
    pipe_throughput::WORKLOAD,
    pipe_roundtrip::WORKLOAD,
    queue_roundtrip::WORKLOAD,
    bulk_64mib::WORKLOAD,
    lock_uncontended::WORKLOAD,
    counter_contended::WORKLOAD,
    pool_tiny_chunk1::WORKLOAD,
    pool_tiny_auto::WORKLOAD,
    pool_cpu::WORKLOAD,
    idle_worker_rss::WORKLOAD,
    manager_dict_ops::WORKLOAD,
];

/// One benchmark: measures one or more variants and reports a [`Row`] for each.
#[derive(Debug)]
pub struct Workload {
    /// The name given on the command line.
    pub name: &'static str,
    /// One line for `--list`.
    pub about: &'static str,
    /// Measures every variant (multiproc, Python and raw) and returns their rows.
    pub run: fn(&mut Ctx) -> Vec<Row>,
}

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

/// All workload names, comma-separated.
pub fn names() -> String {
    ALL.iter().map(|w| w.name).collect::<Vec<_>>().join(", ")
}

/// Whether a smaller or a larger value is the better one; decides which way ratios go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latencies, costs per operation (`us/op`).
    Lower,
    /// Throughputs (`Mmsg/s`, `GiB/s`).
    Higher,
}

/// One measured variant of a workload. A value is `None` where it could not be measured (the
/// reason went to stderr) or does not apply.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: &'static str,
    pub variant: String,
    pub unit: &'static str,
    pub better: Better,
    /// multiproc's value.
    pub value: Option<f64>,
    /// Python 3 `multiprocessing`'s value for the same work.
    pub python: Option<f64>,
    /// The raw OS bound: the same work done with bare system calls.
    pub raw: Option<f64>,
    /// What `raw` measured, in a few words (`"fork+wait"`, `"futex ping-pong"`); a workload
    /// compared with two bounds reports one row per bound, told apart by this.
    pub bound: &'static str,
}

impl Row {
    /// How many times better multiproc is than Python (> 1 = multiproc wins).
    pub fn vs_python(&self) -> Option<f64> {
        match self.better {
            Better::Lower => ratio(self.python?, self.value?),
            Better::Higher => ratio(self.value?, self.python?),
        }
    }

    /// How many times the raw bound's cost multiproc pays (1 = at the bound).
    pub fn vs_raw(&self) -> Option<f64> {
        match self.better {
            Better::Lower => ratio(self.value?, self.raw?),
            Better::Higher => ratio(self.raw?, self.value?),
        }
    }
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    let r = numerator / denominator;
    (denominator > 0.0 && r.is_finite()).then_some(r)
}

/// What every workload gets: the run's settings, the Python runner, and error accounting.
#[derive(Debug)]
pub struct Ctx {
    quick: bool,
    python: Python,
    errors: usize,
}

impl Ctx {
    pub fn new(quick: bool) -> Self {
        Ctx {
            quick,
            python: Python::default(),
            errors: 0,
        }
    }

    /// `full` normally, `quick` under `--quick`.
    pub fn pick(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// Runs `bench/python/<script>.py` with `args`; `None` (said on stderr) where Python is
    /// missing or the script failed.
    pub fn python(&mut self, script: &str, args: &[&str], unit: &str) -> Option<f64> {
        self.python.run(script, args, unit)
    }

    /// Tells stderr what is being measured now.
    pub fn progress(&self, workload: &str, variant: &str, side: &str) {
        eprintln!("[{workload}/{variant}] {side}...");
    }

    /// Keeps a measured value, or reports why there is none and counts the failure.
    pub fn check<E: Display>(
        &mut self,
        workload: &str,
        variant: &str,
        side: &str,
        result: Result<f64, E>,
    ) -> Option<f64> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                eprintln!("error: {workload}/{variant} ({side}): {e}");
                self.errors += 1;
                None
            }
        }
    }

    /// How many measurements failed so far.
    pub fn errors(&self) -> usize {
        self.errors
    }
}

/// Runs `op` `warmup` times unmeasured, then `n` times (at least once); the mean microseconds
/// per call of those `n`.
pub fn mean_micros<E>(
    warmup: usize,
    n: usize,
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<f64, E> {
    let n = n.max(1);
    for _ in 0..warmup {
        op()?;
    }
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better) -> Row {
        Row {
            workload: "w",
            variant: "v".into(),
            unit: "u",
            better,
            value: Some(10.0),
            python: Some(40.0),
            raw: Some(5.0),
            bound: "b",
        }
    }

    #[test]
    fn ratios_follow_which_way_is_better() {
        let lower = row(Better::Lower);
        assert_eq!(lower.vs_python(), Some(4.0));
        assert_eq!(lower.vs_raw(), Some(2.0));
        let higher = row(Better::Higher);
        assert_eq!(higher.vs_python(), Some(0.25));
        assert_eq!(higher.vs_raw(), Some(0.5));
    }

    #[test]
    fn missing_or_zero_values_give_no_ratio() {
        let mut r = row(Better::Lower);
        r.python = None;
        r.raw = Some(0.0);
        assert_eq!(r.vs_python(), None);
        assert_eq!(r.vs_raw(), None);
    }

    #[test]
    fn names_are_unique() {
        for (i, w) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|o| o.name != w.name), "{}", w.name);
            assert!(find(w.name).is_some());
        }
    }
}
