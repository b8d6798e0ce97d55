//! Logging from children (seed 003, "log_to_stderr").
//!
//! Python: `logger = multiprocessing.log_to_stderr(logging.INFO)`. Here:
//! `multiproc::log_to_stderr(log::LevelFilter::Info)`, then the ordinary `log`
//! macros, in the parent and in every child started afterwards. Each record
//! is one line on standard error, tagged with the process name and pid:
//!
//! ```text
//! $ cargo run --release --example logging
//! [INFO/MainProcess 4241] starting two workers
//! [INFO/Process-1 4242] child process calling its function
//! [INFO/Process-1 4242] squaring 2
//! [INFO/Process-1 4242] process exiting with exitcode 0
//! [INFO/worker-2 4243] child process calling its function
//! [INFO/worker-2 4243] squaring 3
//! [WARN/worker-2 4243] 3 is larger than 2
//! [INFO/worker-2 4243] process exiting with exitcode 0
//! [INFO/MainProcess 4241] results: [4, 9]
//! ```
//!
//! (The two children's lines may interleave; each line is written whole.)

use multiproc::Process;

fn worker(n: u32) -> u32 {
    log::info!("squaring {n}");
    if n > 2 {
        log::warn!("{n} is larger than 2");
    }
    log::debug!("not shown: below the Info level");
    n * n
}

fn main() {
    multiproc::init();
    multiproc::log_to_stderr(log::LevelFilter::Info);

    log::info!("starting two workers");
    let mut p1 = Process::spawn(worker, 2).expect("cannot start worker 1");
    let mut p2 = Process::builder()
        .name("worker-2")
        .spawn(worker, 3)
        .expect("cannot start worker 2");
    let results = [p1.join().expect("worker 1"), p2.join().expect("worker 2")];
    log::info!("results: {results:?}");
    assert_eq!(results, [4, 9]);
}
