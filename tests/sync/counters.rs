//! Section 1: mutual exclusion under contention.
//!
//! Four processes add one to a shared counter a million times each, all
//! at once: under a `Value`'s lock, and with `RawValue::atomic().fetch_add`.
//! A single lost update shows as a total short of 4M. The full count runs
//! in debug builds too: under a second there (about 180 ns per locked
//! increment unoptimised, 50 ns optimised, on the 2-core test machine).

use super::*;
use multiproc::{Event, RawValue, Value};
use std::sync::atomic::Ordering;

const PROCS: u64 = 4;

/// Increments per process.
const INCREMENTS: u64 = 1_000_000;

/// Waits for `go`, then adds one `n` times under the value's lock.
fn add_locked((v, go, n): (Value<u64>, Event, u64)) {
    assert!(go.wait_timeout(JOIN), "no start signal");
    for _ in 0..n {
        *v.lock().expect("nobody dies here") += 1;
    }
}

/// Waits for `go`, then adds one `n` times atomically.
fn add_atomic((v, go, n): (RawValue<u64>, Event, u64)) {
    assert!(go.wait_timeout(JOIN), "no start signal");
    for _ in 0..n {
        v.atomic().fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts [`PROCS`] children running `f` on `arg`, releases them at once,
/// and joins them.
fn race<A: Clone + Serialize + DeserializeOwned>(
    what: &str,
    f: fn((A, Event, u64)),
    arg: A,
) -> Duration {
    let go = Event::new().unwrap();
    let mut kids: Vec<Kid<()>> = (0..PROCS)
        .map(|_| {
            Kid::spawn(
                builder(StartMethod::ForkServer),
                f,
                (arg.clone(), go.clone(), INCREMENTS),
            )
        })
        .collect();
    let started = Instant::now();
    go.set();
    for k in &mut kids {
        k.finish(what);
    }
    let took = started.elapsed();
    eprintln!(
        "{what}: {PROCS} x {INCREMENTS} increments in {took:?} ({:?} each)",
        took / (PROCS * INCREMENTS) as u32
    );
    took
}

#[test]
fn locked_value_counts_every_increment() {
    sync_test("locked_value_counts_every_increment", || {
        let v = Value::new(0u64).unwrap();
        race("locked Value<u64>", add_locked, v.clone());
        assert_eq!(v.get(), PROCS * INCREMENTS);
        // The lock is free again and clean.
        assert!(v.try_lock().is_ok());
    });
}

#[test]
fn atomic_raw_value_counts_every_increment() {
    sync_test("atomic_raw_value_counts_every_increment", || {
        let v = RawValue::new(0u64).unwrap();
        race("RawValue<u64>::atomic", add_atomic, v.clone());
        assert_eq!(v.get(), PROCS * INCREMENTS);
        assert_eq!(v.atomic().load(Ordering::SeqCst), PROCS * INCREMENTS);
    });
}
