//! A worker that dies in mid-task: SIGKILL, `exit(3)`, `abort()`, a real
//! segfault. That task, and only it, fails with an error naming the pid,
//! the signal or exit code and the task index, within [`DETECT_WITHIN`]
//! (see there for the margin) of the moment the task was about to die; the
//! worker is replaced; every other task completes, the pool goes on.
//!
//! Each death is seen three ways: one task alone (the latency is measured
//! there), a death at position 2 of a chunk of 5 through `imap` (each other
//! result checked), and the same through `map_chunked` (exactly one
//! failure).
//!
//! [`DETECT_WITHIN`]: crate::DETECT_WITHIN

use crate::common::{self, JOIN};
use crate::{
    Probe, assert_gone, assert_usable, end, measure_latency, now_ns, per_method, pool, worker_pids,
};
use multiproc::{Error, StartMethod};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a task kills its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Death {
    Kill,
    Exit3,
    Abort,
    Segfault,
}

impl Death {
    /// Dies that way.
    fn die(self) -> ! {
        common::no_core_dumps();
        match self {
            Death::Kill => {
                // SAFETY: raise only sends a signal to this process.
                unsafe { libc::raise(libc::SIGKILL) };
                unreachable!("SIGKILL cannot be caught")
            }
            Death::Exit3 => std::process::exit(3),
            Death::Abort => std::process::abort(),
            Death::Segfault => {
                // SAFETY: none, on purpose: address 8 is never mapped (the
                // kernel keeps the first pages unmappable), so this store
                // faults and the kernel kills the worker with SIGSEGV, as a
                // bug in foreign code would. The volatile store cannot be
                // optimised away.
                unsafe { std::ptr::without_provenance_mut::<u8>(8).write_volatile(1) };
                unreachable!("the store above faults")
            }
        }
    }

    /// Asserts that `e` reports this death of task `index`.
    fn check(self, e: &Error, index: usize) {
        let (signal, code) = match self {
            Death::Kill => (Some(libc::SIGKILL), None),
            Death::Exit3 => (None, Some(3)),
            Death::Abort => (Some(libc::SIGABRT), None),
            Death::Segfault => (Some(libc::SIGSEGV), None),
        };
        assert_eq!(e.signal(), signal, "{self:?}: {e}");
        assert_eq!(e.exit_code(), code, "{self:?}: {e}");
        assert_eq!(e.task_index(), Some(index), "{self:?}: {e}");
        let pid = e.pid().unwrap_or_else(|| panic!("{self:?}: no pid in {e}"));
        assert_ne!(pid, std::process::id(), "{self:?}: {e}");
        assert!(e.to_string().contains(&pid.to_string()), "{self:?}: {e}");
        assert!(!e.is_panic() && !e.is_timeout() && !e.is_cancelled(), "{e}");
    }
}

/// A task: `10 × x`, unless `x` is the victim: then it marks its probe
/// (if it has one) and dies.
fn maybe_die((x, victim, how, probe): (u64, u64, Death, Option<Probe>)) -> u64 {
    if x == victim {
        if let Some(p) = probe {
            p.mark();
        }
        how.die();
    }
    x * 10
}

/// The inputs `0..n` for [`maybe_die`], `victim` dying `how`.
fn inputs(
    n: u64,
    victim: u64,
    how: Death,
) -> impl Iterator<Item = (u64, u64, Death, Option<Probe>)> {
    (0..n).map(move |x| (x, victim, how, None))
}

fn scenario(m: StartMethod, how: Death) {
    let what = format!("{how:?} {m:?}");
    let pool = pool(m, 2);
    let before = worker_pids(&pool);
    let mut dead = BTreeSet::new();

    // One task alone: how soon the death reaches the caller.
    measure_latency(&format!("{what}: death detected after"), || {
        let probe = Probe::new();
        let mut h = pool
            .submit(maybe_die, (1, 1, how, Some(probe.clone())))
            .expect("submit");
        let err = h
            .get_timeout(JOIN)
            .expect_err("a task whose worker died returned");
        let seen = now_ns();
        how.check(&err, 0);
        assert_eq!(err.pid(), Some(probe.pid()), "{what}: {err}");
        if dead.is_empty() {
            assert!(before.contains(&probe.pid()), "{what}: {err} ({before:?})");
        }
        dead.insert(probe.pid());
        probe.since(seen)
    });

    // A death at position 2 of a chunk of 5 (tasks 5..10): only task 7.
    let results: Vec<Result<u64, Error>> = pool
        .imap(maybe_die, inputs(20, 7, how))
        .chunksize(5)
        .collect();
    assert_eq!(results.len(), 20, "{what}");
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, 10 * i as u64, "{what}: task {i}"),
            Err(e) if i == 7 => {
                how.check(e, 7);
                dead.extend(e.pid());
            }
            Err(e) => panic!("{what}: task {i} failed too: {e}"),
        }
    }
    assert!(results[7].is_err(), "{what}: task 7 did not fail");

    // Through map_chunked: exactly one failure, index 12.
    let err = pool
        .map_chunked(maybe_die, inputs(20, 12, how), 5)
        .expect_err("map with a dying task succeeded");
    assert_eq!(err.failures().len(), 1, "{what}: {err}");
    how.check(&err.failures()[0], 12);
    dead.extend(err.failures()[0].pid());

    // Replaced: as many workers as before, none of the dead; the dead are
    // gone (reaped, not zombies).
    let after = worker_pids(&pool);
    assert!(
        after.is_disjoint(&dead),
        "{what}: {after:?} vs dead {dead:?}"
    );
    assert_gone(&dead, &format!("{what}: dead workers"));
    assert_usable(&pool, &what);
    end(pool, before.into_iter().chain(after));
}

fn sigkill(m: StartMethod) {
    scenario(m, Death::Kill);
}

fn exit_3(m: StartMethod) {
    scenario(m, Death::Exit3);
}

fn abort(m: StartMethod) {
    scenario(m, Death::Abort);
}

fn segfault(m: StartMethod) {
    scenario(m, Death::Segfault);
}

per_method!(sigkill, exit_3, abort, segfault);
