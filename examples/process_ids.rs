//! Process ids of the parent and of two children (seed 002, `multiprocessing_s1_e2.py`).
//!
//! ```text
//! $ cargo run --release --example process_ids
//! ID of main process: 73414
//! ID of process p1: 73416
//! ID of process p2: 73417
//! ID of process running worker1: 73416
//! ID of process running worker2: 73417
//! Both processes finished execution!
//! Process p1 is alive: false
//! Process p2 is alive: false
//! ```
//!
//! Each child prints its own `std::process::id()` (Python's `os.getpid()`) and returns
//! it, and the parent checks that it is the pid its handle reports (`p1.pid`).

use multiproc::Process;

fn worker1(_: ()) -> u32 {
    let pid = std::process::id();
    println!("ID of process running worker1: {pid}");
    pid
}

fn worker2(_: ()) -> u32 {
    let pid = std::process::id();
    println!("ID of process running worker2: {pid}");
    pid
}

fn main() {
    multiproc::init();

    println!("ID of main process: {}", std::process::id());

    let mut p1 = Process::spawn(worker1, ()).expect("cannot start p1");
    let mut p2 = Process::spawn(worker2, ()).expect("cannot start p2");

    println!("ID of process p1: {}", p1.pid());
    println!("ID of process p2: {}", p2.pid());

    // `join` hands back what the function returned: here, the pid the child saw.
    let seen_by_p1 = p1.join().expect("p1 failed");
    let seen_by_p2 = p2.join().expect("p2 failed");
    assert_eq!(seen_by_p1, p1.pid(), "p1 reported another pid");
    assert_eq!(seen_by_p2, p2.pid(), "p2 reported another pid");
    assert_ne!(p1.pid(), std::process::id());

    println!("Both processes finished execution!");

    println!("Process p1 is alive: {}", p1.is_alive());
    println!("Process p2 is alive: {}", p2.is_alive());
    assert!(!p1.is_alive() && !p2.is_alive());
}
