//! `lock_uncontended`: acquire and release a [`Lock`] that no other process wants, in a loop;
//! reports the mean nanoseconds per acquire+release pair, against Python's
//! `multiprocessing.Lock` doing the same and against a bare futex lock in a shared mapping.

use std::hint::black_box;

use multiproc::Lock;

use super::{Better, Ctx, Row, Workload, mean_micros};
use crate::raw_lock::{self, LOCK_BOUND};

pub const WORKLOAD: Workload = Workload {
    name: "lock_uncontended",
    about: "acquire and release a Lock nobody else wants, in a loop (ns per pair)",
    run,
};

const UNIT: &str = "ns";
const VARIANT: &str = "acquire";
const WARMUP: usize = 10_000;

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let n = ctx.pick(20_000_000, 2_000_000);
    let n_python = ctx.pick(2_000_000, 200_000).to_string();
    let warmup = WARMUP.to_string();

    ctx.progress(name, VARIANT, "multiproc");
    let value = ctx.check(name, VARIANT, "multiproc", measure(n));

    ctx.progress(name, VARIANT, "python");
    let python = ctx.python(name, &["--n", &n_python, "--warmup", &warmup], UNIT);

    ctx.progress(name, VARIANT, "raw");
    let measured = raw_lock::uncontended_pair_nanos(WARMUP as u64, n as u64);
    let raw = ctx.check(name, VARIANT, "raw", measured);

    vec![Row {
        workload: name,
        variant: VARIANT.to_string(),
        unit: UNIT,
        better: Better::Lower,
        value,
        python,
        raw,
        bound: LOCK_BOUND,
    }]
}

fn measure(n: usize) -> Result<f64, String> {
    let lock = Lock::new().map_err(|e| format!("Lock::new: {e}"))?;
    let micros = mean_micros(WARMUP, n, || match lock.acquire() {
        Ok(guard) => {
            drop(black_box(guard));
            Ok(())
        }
        // Nobody else holds this lock: a dead holder would be a bug.
        Err(e) => Err(format!("acquire: {e}")),
    })?;
    Ok(micros * 1e3)
}
