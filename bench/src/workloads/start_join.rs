//! `start_join`: spawn a trivial function and join it, N times in sequence; reports the mean
//! microseconds per spawn+join for each start method, against Python's same start method and
//! against the bare fork (or fork+exec) and waitpid of the same number of processes.

use multiproc::{Process, StartMethod};

use super::{Better, Ctx, Row, Workload, mean_micros};
use crate::raw;

pub const WORKLOAD: Workload = Workload {
    name: "start_join",
    about: "spawn a trivial function and join it, N times in sequence (us per spawn+join)",
    run,
};

const N_FULL: usize = 300;
const N_QUICK: usize = 50;
/// Unmeasured iterations per variant; the first spawn also starts the fork server.
const WARMUP: usize = 10;
const UNIT: &str = "us/op";

/// The child's whole work.
fn trivial(x: u32) -> u32 {
    x + 1
}

/// Which raw OS operation bounds a start method from below.
#[derive(Debug, Clone, Copy)]
enum RawBound {
    /// fork() + waitpid(), the child `_exit(0)`s at once.
    Fork,
    /// fork() + exec of this very binary (which exits at once) + waitpid().
    ForkExec,
}

impl RawBound {
    /// The row's `bound`.
    fn name(self) -> &'static str {
        match self {
            RawBound::Fork => "fork+wait",
            RawBound::ForkExec => "fork+exec+wait",
        }
    }
}

/// One row: a multiproc start method and what it is compared with.
#[derive(Debug)]
struct Variant {
    name: &'static str,
    method: StartMethod,
    /// Python's start method of the same name.
    python: &'static str,
    raw: RawBound,
}

fn variants() -> [Variant; 3] {
    [
        Variant {
            name: "forkserver",
            method: StartMethod::ForkServer,
            python: "forkserver",
            raw: RawBound::Fork,
        },
        Variant {
            name: "spawn",
            method: StartMethod::Spawn,
            python: "spawn",
            raw: RawBound::ForkExec,
        },
        Variant {
            name: "fork",
            method: StartMethod::Fork,
            python: "fork",
            raw: RawBound::Fork,
        },
    ]
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(N_FULL, N_QUICK);
    let n_arg = n.to_string();
    let mut rows = Vec::new();
    for variant in variants() {
        ctx.progress(name, variant.name, "multiproc");
        let measured = measure_multiproc(variant.method, n);
        let value = ctx.check(name, variant.name, "multiproc", measured);

        ctx.progress(name, variant.name, "python");
        let python = ctx.python(
            "start_join",
            &["--method", variant.python, "--n", &n_arg],
            UNIT,
        );

        ctx.progress(name, variant.name, "raw");
        let measured = measure_raw(variant.raw, n);
        let raw = ctx.check(name, variant.name, "raw", measured);

        rows.push(Row {
            workload: name,
            variant: variant.name.to_string(),
            unit: UNIT,
            better: Better::Lower,
            value,
            python,
            raw,
            bound: variant.raw.name(),
        });
    }
    rows
}

fn measure_multiproc(method: StartMethod, n: usize) -> Result<f64, String> {
    mean_micros(WARMUP, n, || {
        let mut p = Process::builder()
            .start_method(method)
            .spawn(trivial, 1u32)
            .map_err(|e| format!("spawn: {e}"))?;
        let r: u32 = p.join().map_err(|e| format!("join: {e}"))?;
        if r == 2 {
            Ok(())
        } else {
            Err(format!("child returned {r}, expected 2"))
        }
    })
}

fn measure_raw(bound: RawBound, n: usize) -> std::io::Result<f64> {
    match bound {
        RawBound::Fork => mean_micros(WARMUP, n, raw::fork_wait),
        RawBound::ForkExec => {
            let exec = raw::ExecSelf::new()?;
            mean_micros(WARMUP, n, || exec.fork_exec_wait())
        }
    }
}
