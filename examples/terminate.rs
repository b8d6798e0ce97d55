//! Terminating a process (seed 003, "terminate()").
//!
//! ```text
//! $ cargo run --release --example terminate
//! DURING: Process-1 (pid 4242) is alive: true
//! Starting long work in pid 4242
//! TERMINATED: Process-1 (pid 4242) is alive: true
//! join: child process 4242 was killed by SIGTERM before returning a result
//! JOINED: Process-1 (pid 4242) is alive: false
//! exitcode: Some(Signal(15)) (Python's exitcode: -15)
//! ```
//!
//! As the seed says, join the process after terminating it: `terminate` only
//! sends `SIGTERM`; `join` waits for the end and records it. Here `join`
//! returns an error, since the function never returned a value. Just after
//! `terminate` the child may still be alive (the signal takes a moment).

use multiproc::{ExitStatus, Process};
use std::time::Duration;

/// Would run for a minute.
fn slow_worker(_: ()) -> u32 {
    println!("Starting long work in pid {}", std::process::id());
    std::thread::sleep(Duration::from_secs(60));
    println!("Finished long work");
    42
}

fn main() {
    multiproc::init();

    let mut p = Process::spawn(slow_worker, ()).expect("cannot start the worker");
    println!(
        "DURING: {} (pid {}) is alive: {}",
        p.name(),
        p.pid(),
        p.is_alive()
    );
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);

    // Let it reach its function: a child killed during its start-up reports a
    // start failure (`is_start_failure`) rather than a killed function.
    std::thread::sleep(Duration::from_millis(100));

    p.terminate().expect("cannot send SIGTERM");
    println!(
        "TERMINATED: {} (pid {}) is alive: {}",
        p.name(),
        p.pid(),
        p.is_alive()
    );

    let err = p.join().expect_err("a terminated worker has no result");
    println!("join: {err}");
    assert_eq!(err.signal(), Some(libc::SIGTERM));

    println!(
        "JOINED: {} (pid {}) is alive: {}",
        p.name(),
        p.pid(),
        p.is_alive()
    );
    assert!(!p.is_alive());

    let status = p.exitcode();
    println!(
        "exitcode: {status:?} (Python's exitcode: {})",
        status.expect("the end is known after join").as_python()
    );
    assert_eq!(status, Some(ExitStatus::Signal(libc::SIGTERM)));
    assert_eq!(status.map(ExitStatus::as_python), Some(-15));
}
