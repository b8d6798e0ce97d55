//! What a pool does when tasks go wrong (where Python's pools hang or
//! break): one task SIGKILLs its own worker, one panics, one overstays its
//! timeout; every other task succeeds, and the pool goes on.
//!
//! ```text
//! $ cargo run --release --example pool_faults
//! task 0: ok 0
//! task 1: ok 10
//! task 2: worker killed: task 0: child process 4711 was killed by SIGKILL before returning a result (detected in 1.2ms)
//! task 3: panicked: task 0: child process 4712 panicked at examples/pool_faults.rs:31:13: task 3 refuses to work (in 250µs)
//! task 4: timed out: task 0: timed out (detected 6.3ms after the limit)
//! task 5: ok 50
//! ...
//! the pool still works: [0, 1, 4]
//! ```

use multiproc::Pool;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(300);

fn task(i: u64) -> u64 {
    match i {
        2 => {
            // SAFETY: raise only sends a signal to this process.
            unsafe { libc::raise(libc::SIGKILL) };
            unreachable!()
        }
        3 => panic!("task 3 refuses to work"),
        4 => loop {
            std::thread::sleep(Duration::from_secs(1)); // never ends
        },
        _ => i * 10,
    }
}

fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    multiproc::init();
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(TIMEOUT)
        .build()
        .expect("cannot start the pool");
    // Concurrently, as a real workload would...
    let handles: Vec<_> = (0..8)
        .map(|i| pool.submit(task, i).expect("submit"))
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|mut h| h.get()).collect();
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 5);
    // ...then one at a time, to show how long each fault takes to surface
    // (for the timeout: the time past the limit).
    let mut ok = 0;
    for i in 0..8 {
        let started = Instant::now();
        let r = pool.apply(task, i);
        let took = started.elapsed();
        match r {
            Ok(v) => {
                ok += 1;
                println!("task {i}: ok {v}");
            }
            Err(e) if e.signal().is_some() => {
                println!("task {i}: worker killed: {e} (detected in {took:.1?})")
            }
            Err(e) if e.is_panic() => println!("task {i}: panicked: {e} (in {took:.1?})"),
            Err(e) if e.is_timeout() => println!(
                "task {i}: timed out: {e} (detected {:.1?} after the limit)",
                took.saturating_sub(TIMEOUT)
            ),
            Err(e) => println!("task {i}: failed: {e}"),
        }
    }
    assert_eq!(ok, 5, "every other task succeeded");
    let after = pool.map(square, 0..3).expect("the pool still works");
    println!("the pool still works: {after:?}");
    assert_eq!(after, [0, 1, 4]);
}
