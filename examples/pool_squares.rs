//! The pool example of seed 004 ("5.0. Pool example"): a pool of
//! `cpu_count() * 2` workers, each announcing itself from its initializer,
//! squaring 0..10.
//!
//! ```text
//! $ cargo run --release --example pool_squares
//! Start PoolWorker-1
//! Start PoolWorker-2
//! Start PoolWorker-3
//! Start PoolWorker-4
//! Outputs: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
//! ```
//!
//! Python's version:
//!
//! ```python
//! def do_work(data):
//!     time.sleep(1)
//!     return data**2
//!
//! def start_process():
//!     print("Start", multiprocessing.current_process().name)
//!
//! pool = multiprocessing.Pool(processes=multiprocessing.cpu_count() * 2,
//!                             initializer=start_process)
//! outputs = pool.map(do_work, list(range(10)))
//! pool.close()
//! pool.join()
//! print("Outputs:", outputs)
//! ```

use multiproc::{Pool, cpu_count, current_process};
use std::time::Duration;

fn do_work(data: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100)); // the seed sleeps 1 s
    data * data
}

fn start_process(_: ()) {
    println!("Start {}", current_process().name());
}

fn main() {
    multiproc::init();
    let pool = Pool::builder()
        .processes(cpu_count() * 2)
        .initializer(start_process, ())
        .build()
        .expect("cannot start the pool");
    let outputs = pool.map(do_work, 0..10).expect("a task failed");
    pool.close(); // no more tasks accepted
    pool.join().expect("join after close"); // wait for the workers to exit
    println!("Outputs: {outputs:?}");
    assert_eq!(outputs, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
}
