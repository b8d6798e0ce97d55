//! Daemon and non-daemon children (seed 003, "daemon").
//!
//! A daemon child beats every 100 ms, forever; a non-daemon child does a short
//! job. `main` returns after ~350 ms without joining either, and Python's exit
//! rule, applied by multiproc's `atexit` handler, takes over: the daemon is
//! terminated (it never stops by itself), the non-daemon is waited for.
//!
//! ```text
//! $ cargo run --release --example daemon
//! daemon pid: 4242
//! non-daemon pid: 4243
//! Starting: daemon 4242
//! Starting: non-daemon 4243
//! daemon 4242: heartbeat 1
//! daemon 4242: heartbeat 2
//! daemon 4242: heartbeat 3
//! main returns now: multiproc terminates the daemon (pid 4242) and waits for the non-daemon (pid 4243) before the program exits
//! Exiting : non-daemon 4243
//! ```
//!
//! Check afterwards that the daemon is gone: `ps -p 4242` lists nothing.

use multiproc::Process;
use std::time::Duration;

/// Beats forever: only the parent's exit stops it.
fn daemon(_: ()) {
    let me = multiproc::current_process();
    println!("Starting: {} {}", me.name(), me.pid());
    for beat in 1.. {
        std::thread::sleep(Duration::from_millis(100));
        println!("{} {}: heartbeat {beat}", me.name(), me.pid());
    }
}

/// Short work that outlives `main`: the program waits for it at exit.
fn non_daemon(_: ()) {
    let me = multiproc::current_process();
    println!("Starting: {} {}", me.name(), me.pid());
    std::thread::sleep(Duration::from_millis(600));
    println!("Exiting : {} {}", me.name(), me.pid());
}

fn main() {
    multiproc::init();

    let d = Process::builder()
        .name("daemon")
        .daemon(true)
        .spawn(daemon, ())
        .expect("cannot start the daemon");
    let n = Process::builder()
        .name("non-daemon")
        .daemon(false)
        .spawn(non_daemon, ())
        .expect("cannot start the non-daemon");
    assert!(d.is_daemon() && !n.is_daemon());
    println!("daemon pid: {}", d.pid());
    println!("non-daemon pid: {}", n.pid());

    std::thread::sleep(Duration::from_millis(350));
    assert!(d.is_alive(), "the daemon stopped by itself");

    println!(
        "main returns now: multiproc terminates the daemon (pid {}) and waits for the \
         non-daemon (pid {}) before the program exits",
        d.pid(),
        n.pid()
    );
    // Neither handle is joined: dropping them leaves both children to the exit rule.
}
