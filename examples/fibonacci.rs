//! Fibonacci terms for several inputs, computed in parallel (seed 000:
//! "Using multiprocessing to compute Fibonacci series terms with multiple
//! inputs"): one task per input, results printed per input as they finish.
//!
//! ```text
//! $ cargo run --release --example fibonacci
//! fib(25) = 75025 (worker 4242)
//! fib(30) = 832040 (worker 4243)
//! ...
//! in input order: [75025, 832040, 1346269, 2178309, 3524578, 5702887]
//! ```

use multiproc::{Pool, as_completed, cpu_count};

/// The naive recursive definition: deliberately expensive.
fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

fn fib_with_pid(n: u32) -> (u32, u64, u32) {
    (n, fib(n), std::process::id())
}

fn main() {
    multiproc::init();
    let inputs = [25, 30, 31, 32, 33, 34];
    let pool = Pool::new(cpu_count()).expect("cannot start the pool");

    // One handle per input; print each as soon as it is done.
    let handles: Vec<_> = inputs
        .iter()
        .map(|&n| pool.submit(fib_with_pid, n).expect("submit"))
        .collect();
    for mut h in as_completed(handles) {
        let (n, value, pid) = h.get().expect("a task failed");
        println!("fib({n}) = {value} (worker {pid})");
        assert_eq!(value, fib_fast(n));
    }

    // The same through map: results in input order.
    let all = pool.map(fib, inputs).expect("a task failed");
    println!("in input order: {all:?}");
    assert_eq!(all, inputs.map(fib_fast));
}

fn fib_fast(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}
