//! A counter shared by several processes (seed 003: "data can be stored in a
//! shared memory using Value or Array"), then the shared objects of seed 004
//! ("7.0. Value").
//!
//! ```text
//! $ cargo run --release --example shared_value
//! 4 processes add 1 to a Value<u64>, 100000 times each, under its lock
//! process 4243 added 100000
//! ...
//! total: 400000 (exact)
//!
//! The same with a RawValue<u64> and atomic().fetch_add: 400000 (exact)
//! With get() + set() and no lock, 4 x 2000000: 4254831 (3745169 updates lost)
//!
//! Seed 004's objects:
//! counter = Value('i')                     -> Value::new(0i32): 0, then 4
//! is_running = Value(c_bool, lock=False)   -> RawValue::new(0u8): 1 while a child ran
//! size_counter = Value('l', lock=my_lock)  -> a Lock beside a RawValue<i64>: 4096
//! ```
//!
//! The children's lines come in any order, and how many updates the unlocked
//! `get() + set()` loses changes from run to run (its children start
//! together at a `Barrier` and run long enough to race): that part shows why
//! the others take a lock or use an atomic. Python's version of the first
//! part:
//!
//! ```python
//! def add(counter):
//!     for _ in range(100_000):
//!         with counter.get_lock():
//!             counter.value += 1
//!
//! counter = Value('Q', 0)
//! procs = [Process(target=add, args=(counter,)) for _ in range(4)]
//! for p in procs: p.start()
//! for p in procs: p.join()
//! print(counter.value)
//! ```
//!
//! and of seed 004's part:
//!
//! ```python
//! counter = Value('i')  # shared object of type int, defaults to 0
//! # shared object of type boolean, defaulting to False, unsynchronized
//! is_running = Value(ctypes.c_bool, False, lock=False)
//! my_lock = multiprocessing.Lock()
//! # Shared object of type long, with a lock specified
//! size_counter = Value('l', 0, lock=my_lock)
//! ```
//!
//! `counter.lock()` is the Rust form of `with counter.get_lock():`, and its
//! guard is the value: `*guard += 1` is `counter.value += 1`, done while the
//! lock is held. A `Value` always has its own lock; Python's `lock=my_lock`
//! (one lock for several values) is a [`Lock`] kept beside [`RawValue`]s,
//! taken around every access to them.

use multiproc::{Barrier, Lock, Process, RawValue, Value};
use std::sync::atomic::Ordering;

const PROCESSES: u64 = 4;
const ADDS: u64 = 100_000;
/// More for the race: each loop must last long enough to overlap the others.
const RACY_ADDS: u64 = 2_000_000;

/// Adds 1 to the counter `ADDS` times, each under the lock; returns its pid.
fn add_locked(counter: Value<u64>) -> u32 {
    for _ in 0..ADDS {
        *counter.lock().expect("a holder of the counter died") += 1;
    }
    let pid = std::process::id();
    println!("process {pid} added {ADDS}");
    pid
}

/// Adds 1 `ADDS` times with one atomic instruction each: no lock needed.
fn add_atomic(counter: RawValue<u64>) {
    for _ in 0..ADDS {
        counter.atomic().fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads, then writes the value plus one: another process may write between
/// the two, and its update is then overwritten. The children start together
/// (at the barrier), so that they do race.
fn add_racy((counter, start): (RawValue<u64>, Barrier)) {
    start.wait().expect("a child died before the start");
    for _ in 0..RACY_ADDS {
        counter.set(counter.get() + 1);
    }
}

/// Runs `f(arg)` in `PROCESSES` children and joins them all.
fn in_children<A, R>(f: fn(A) -> R, arg: &A) -> Vec<R>
where
    A: Clone + serde::Serialize + serde::de::DeserializeOwned,
    R: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut children: Vec<Process<R>> = (0..PROCESSES)
        .map(|_| Process::spawn(f, arg.clone()).expect("cannot start a child"))
        .collect();
    children
        .iter_mut()
        .map(|c| c.join().expect("a child failed"))
        .collect()
}

/// Seed 004's objects, used by a child: counts itself in `counter`, raises
/// `is_running` while it works, and adds 1024 to `size_counter` under
/// `my_lock`.
fn use_seed_objects(
    (counter, is_running, my_lock, size_counter): (Value<i32>, RawValue<u8>, Lock, RawValue<i64>),
) {
    is_running.set(1);
    *counter.lock().expect("a holder of the counter died") += 1;
    {
        let _held = my_lock.acquire().expect("a holder of my_lock died");
        size_counter.set(size_counter.get() + 1024);
    }
}

fn main() {
    multiproc::init();
    let total = PROCESSES * ADDS;

    println!("{PROCESSES} processes add 1 to a Value<u64>, {ADDS} times each, under its lock");
    let counter = Value::new(0u64).expect("cannot create the counter");
    let pids = in_children(add_locked, &counter);
    assert_eq!(pids.len() as u64, PROCESSES);
    let locked = counter.get();
    println!("total: {locked} (exact)");
    assert_eq!(locked, total);

    let atomic = RawValue::new(0u64).expect("cannot create the counter");
    in_children(add_atomic, &atomic);
    let sum = atomic.get();
    println!("\nThe same with a RawValue<u64> and atomic().fetch_add: {sum} (exact)");
    assert_eq!(sum, total);

    let racy = RawValue::new(0u64).expect("cannot create the counter");
    let start = Barrier::new(PROCESSES as u32).expect("cannot create the barrier");
    in_children(add_racy, &(racy.clone(), start));
    let sum = racy.get();
    let racy_total = PROCESSES * RACY_ADDS;
    println!(
        "With get() + set() and no lock, {PROCESSES} x {RACY_ADDS}: {sum} ({} updates lost)",
        racy_total - sum
    );
    assert!(
        (RACY_ADDS..=racy_total).contains(&sum),
        "{sum} is not a possible total"
    );

    println!("\nSeed 004's objects:");
    let counter = Value::new(0i32).expect("cannot create counter"); // Value('i'): 0
    let is_running = RawValue::new(0u8).expect("cannot create is_running"); // no bool: u8
    let my_lock = Lock::new().expect("cannot create my_lock");
    let size_counter = RawValue::new(0i64).expect("cannot create size_counter");
    let before = counter.get();
    in_children(
        use_seed_objects,
        &(
            counter.clone(),
            is_running.clone(),
            my_lock.clone(),
            size_counter.clone(),
        ),
    );
    let after = counter.get();
    println!(
        "counter = Value('i')                     -> Value::new(0i32): {before}, then {after}"
    );
    assert_eq!((before, after), (0, PROCESSES as i32));
    let running = is_running.get();
    println!(
        "is_running = Value(c_bool, lock=False)   -> RawValue::new(0u8): {running} while a child ran"
    );
    assert_eq!(running, 1);
    let size = {
        let _held = my_lock.acquire().expect("a holder of my_lock died");
        size_counter.get()
    };
    println!("size_counter = Value('l', lock=my_lock)  -> a Lock beside a RawValue<i64>: {size}");
    assert_eq!(size, 1024 * PROCESSES as i64);
}
