//! A guided tour of multiproc: every capability, run, explained, and checked.
//!
//! ```text
//! cargo run --release --example tour
//! ```
//!
//! Each numbered section says in one line what it shows, runs it and prints
//! the outcome. Every outcome is also asserted: if the library misbehaves,
//! the tour stops with a panic and a non-zero exit status. It takes a couple
//! of seconds.
//!
//! The tour starts no thread until its last section, so that
//! [`StartMethod::Fork`] (which forks the caller, and refuses a
//! multi-threaded one) can be shown from `main`.

use multiproc::{ExitStatus, Fd, Process, StartMethod, Stdio};
use serde::{Deserialize, Serialize};

mod channels;
mod manager;
mod pool;
mod shared;
use std::io::Read;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The functions the children run. Spawned children run `fn` items (or
// non-capturing closures); arguments and results are any serde types.
// ---------------------------------------------------------------------------

/// A typed result: any serde type crosses the process boundary.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    count: usize,
    sum: u64,
    max: Option<u64>,
}

fn summarize(values: Vec<u64>) -> Summary {
    Summary {
        count: values.len(),
        sum: values.iter().sum(),
        max: values.iter().copied().max(),
    }
}

/// Who am I, seen from inside the child.
#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    name: String,
    pid: u32,
    is_main: bool,
    is_daemon: bool,
    parent_pid: Option<u32>,
    os_parent_pid: u32,
}

fn identity(_: ()) -> Identity {
    let me = multiproc::current_process();
    Identity {
        name: me.name().to_owned(),
        pid: me.pid(),
        is_main: me.is_main(),
        is_daemon: me.is_daemon(),
        parent_pid: multiproc::parent_pid(),
        os_parent_pid: std::os::unix::process::parent_id(),
    }
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn sleep_forever(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn check_answer(x: u32) -> u32 {
    if x != 42 {
        panic!("wrong answer: {x}");
    }
    x
}

/// No core file for the crashes the tour provokes on purpose.
fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `setrlimit` only reads the struct we pass, which outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

fn abort(_: ()) {
    no_core_dump();
    std::process::abort();
}

fn exit_3(_: ()) {
    std::process::exit(3);
}

fn segfault(_: ()) {
    no_core_dump();
    // SAFETY: none; this is the bug the child is here to have. The write is
    // volatile so that the compiler keeps it.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) };
}

fn write_into(fd: Fd) -> usize {
    use std::io::Write;
    let mut file = std::fs::File::from(fd);
    let text = format!("hello through a pipe from pid {}", std::process::id());
    file.write_all(text.as_bytes())
        .expect("cannot write to the socket");
    text.len()
}

fn log_some(n: u32) -> u32 {
    log::info!("an info record from a child (n = {n})");
    log::warn!("a warning from a child");
    log::debug!("a debug record: below the level, not shown");
    n + 1
}

const BIG: usize = 64 << 20;

fn big_buffer(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// The tour.
// ---------------------------------------------------------------------------

fn section(n: u32, title: &str, what: &str) {
    println!("\n{n}. {title}\n   {what}");
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    multiproc::init();
    let started = Instant::now();
    let me = std::process::id();
    println!("multiproc tour: this is the main process, pid {me}");

    section(
        1,
        "spawn and join",
        "Process::spawn(f, arg) runs f(arg) in a child; join() returns f's typed result.",
    );
    let mut p = Process::spawn(summarize, vec![3, 1, 4, 1, 5, 9, 2, 6]).expect("spawn");
    let summary = p.join().expect("join");
    println!("   child {} returned {summary:?}", p.pid());
    assert_eq!(
        summary,
        Summary {
            count: 8,
            sum: 31,
            max: Some(9)
        }
    );
    let again = p.join().expect_err("a second join has nothing left");
    println!("   a second join: {again}");
    assert!(again.is_already_joined());

    section(
        2,
        "the builder: name, daemon flag, start method",
        "ForkServer (default) forks a small clean server; Spawn execs the program anew; \
         Fork forks the caller\n   (allowed here because the tour has started no thread).",
    );
    for method in [
        StartMethod::ForkServer,
        StartMethod::Spawn,
        StartMethod::Fork,
    ] {
        let name = format!("tour-{method:?}").to_lowercase();
        let t = Instant::now();
        let mut p = Process::builder()
            .name(&name)
            .daemon(true)
            .start_method(method)
            .spawn(identity, ())
            .expect("spawn with the builder");
        let id = p.join().expect("join");
        println!(
            "   {:<10} child {:>7} named {:<16} daemon={} in {}",
            format!("{method:?}"),
            id.pid,
            id.name,
            id.is_daemon,
            ms(t.elapsed())
        );
        assert_eq!((id.name.as_str(), id.pid), (name.as_str(), p.pid()));
        assert!(id.is_daemon && p.is_daemon() && !id.is_main);
    }
    let offset = 1000;
    let mut p = Process::fork(move || offset + 234).expect("fork");
    let forked = p.join().expect("join");
    println!("   Process::fork runs a capturing closure (it captured {offset}): returned {forked}");
    assert_eq!(forked, 1234);

    section(
        3,
        "who am I: current_process, parent_pid, cpu_count",
        "A child knows its name, its pid and its logical parent; the OS parent is the fork server.",
    );
    let main_view = multiproc::current_process();
    println!(
        "   here: name={} pid={} is_main={} parent_pid={:?}",
        main_view.name(),
        main_view.pid(),
        main_view.is_main(),
        multiproc::parent_pid()
    );
    assert!(main_view.is_main() && main_view.name() == "MainProcess" && main_view.pid() == me);
    assert_eq!(multiproc::parent_pid(), None);
    for method in [StartMethod::ForkServer, StartMethod::Fork] {
        let id = Process::builder()
            .start_method(method)
            .spawn(identity, ())
            .expect("spawn")
            .join()
            .expect("join");
        println!(
            "   {:<10} child: name={} pid={} is_main={} parent_pid={:?} OS parent={}",
            format!("{method:?}"),
            id.name,
            id.pid,
            id.is_main,
            id.parent_pid,
            id.os_parent_pid
        );
        assert!(!id.is_main && id.name.starts_with("Process-"));
        assert_eq!(id.parent_pid, Some(me));
        if method == StartMethod::Fork {
            assert_eq!(id.os_parent_pid, me);
        } else {
            assert_ne!(id.os_parent_pid, me, "the fork server is the OS parent");
        }
    }
    let cpus = multiproc::cpu_count();
    println!("   cpu_count() = {cpus} (the CPUs this process may run on)");
    assert!(cpus >= 1);

    section(
        4,
        "is_alive and exitcode",
        "exitcode() is None while the child runs, then an ExitStatus (as_python() gives Python's int).",
    );
    let mut p = Process::spawn(nap, 200).expect("spawn");
    println!(
        "   running: is_alive={} exitcode={:?}",
        p.is_alive(),
        p.exitcode()
    );
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(p.join().expect("join"), 200);
    let status = p.exitcode().expect("known after join");
    println!(
        "   joined:  is_alive={} exitcode={status:?} ({status}; Python: {})",
        p.is_alive(),
        status.as_python()
    );
    assert!(!p.is_alive() && status.success() && status.as_python() == 0);

    section(
        5,
        "join_timeout",
        "Every wait has a deadline form: a timeout leaves the child running and the handle usable.",
    );
    let mut p = Process::spawn(nap, 400).expect("spawn");
    let t = Instant::now();
    let err = p
        .join_timeout(Duration::from_millis(50))
        .expect_err("the child needs 400 ms");
    println!(
        "   join_timeout(50 ms) after {}: {err} (is_timeout={})",
        ms(t.elapsed()),
        err.is_timeout()
    );
    assert!(err.is_timeout() && p.is_alive());
    let slept = p.join().expect("join");
    println!("   then join() returned {slept} after {}", ms(t.elapsed()));
    assert_eq!(slept, 400);

    section(
        6,
        "terminate and kill",
        "terminate() sends SIGTERM, kill() SIGKILL; join() then reports the signal.",
    );
    for (how, sig) in [("terminate", libc::SIGTERM), ("kill", libc::SIGKILL)] {
        let mut p = Process::spawn(sleep_forever, ()).expect("spawn");
        // Let the child reach its function: one killed during its start-up
        // reports a start failure instead.
        std::thread::sleep(Duration::from_millis(100));
        if sig == libc::SIGTERM {
            p.terminate().expect("terminate");
        } else {
            p.kill().expect("kill");
        }
        let err = p.join().expect_err("no result from a killed child");
        let status = p.exitcode().expect("known after join");
        println!(
            "   {how:<9}: {err}\n              exitcode={status:?} (Python: {})",
            status.as_python()
        );
        assert_eq!(err.signal(), Some(sig));
        assert_eq!(status, ExitStatus::Signal(sig));
        assert_eq!(status.as_python(), -sig);
    }

    section(
        7,
        "crash isolation",
        "A child that panics, aborts, exits or segfaults fails alone, with a typed error.",
    );
    let err = Process::builder()
        .stderr(Stdio::null()) // the child's own panic message: the parent gets it anyway
        .spawn(check_answer, 41)
        .expect("spawn")
        .join()
        .expect_err("41 is the wrong answer");
    println!("   panic:    {err}");
    println!(
        "             panic_message={:?} panic_location={:?} exit_status={:?}",
        err.panic_message(),
        err.panic_location(),
        err.exit_status()
    );
    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("wrong answer: 41"));
    assert!(
        err.panic_location()
            .is_some_and(|l| l.contains("tour/main.rs:"))
    );

    let err = Process::spawn(abort, ())
        .expect("spawn")
        .join()
        .unwrap_err();
    println!("   abort:    {err} (signal={:?})", err.signal());
    assert_eq!(err.signal(), Some(libc::SIGABRT));

    let err = Process::spawn(exit_3, ())
        .expect("spawn")
        .join()
        .unwrap_err();
    println!("   exit(3):  {err} (exit_code={:?})", err.exit_code());
    assert_eq!(err.exit_code(), Some(3));

    let err = Process::builder()
        .stderr(Stdio::null())
        .spawn(segfault, ())
        .expect("spawn")
        .join()
        .unwrap_err();
    println!("   null ptr: {err} (signal={:?})", err.signal());
    assert_eq!(err.signal(), Some(libc::SIGSEGV));
    assert!(!err.is_panic() && !err.is_start_failure());
    println!("   ...and the parent is still here.");

    section(
        8,
        "wait on several sentinels",
        "multiproc::wait returns the indices of the children that have ended (connection.wait).",
    );
    let slow = Process::spawn(nap, 10_000).expect("spawn");
    let mut fast = Process::spawn(nap, 50).expect("spawn");
    let t = Instant::now();
    let ready = multiproc::wait(
        &[&slow.sentinel(), &fast.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!(
        "   wait([slow, fast]) = {ready:?} after {}",
        ms(t.elapsed())
    );
    assert_eq!(ready, vec![1]);
    assert_eq!(fast.join().expect("join"), 50);
    let none = multiproc::wait(&[&slow.sentinel()], Some(Duration::from_millis(20))).expect("wait");
    println!("   wait([slow], 20 ms) = {none:?} (timed out)");
    assert!(none.is_empty());

    section(
        9,
        "active_children",
        "The children still running, including those whose handle was dropped.",
    );
    let dropped = Process::spawn(nap, 10_000).expect("spawn").pid();
    let active = multiproc::active_children();
    for c in &active {
        println!(
            "   active: {} pid {} alive={}",
            c.name(),
            c.pid(),
            c.is_alive()
        );
    }
    assert!(active.iter().any(|c| c.pid() == slow.pid()));
    assert!(active.iter().any(|c| c.pid() == dropped));
    assert!(!active.iter().any(|c| c.pid() == fast.pid()));
    for c in &active {
        c.kill().expect("kill");
    }
    drop(slow);
    let t = Instant::now();
    while !multiproc::active_children().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "killed children linger"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("   after kill(): active_children() is empty");

    section(
        10,
        "passing an OS handle",
        "multiproc::Fd travels inside arguments and results (SCM_RIGHTS): here the write end of a pipe.",
    );
    let (mut reader, writer) = std::io::pipe().expect("pipe");
    let mut p = Process::spawn(write_into, Fd::new(writer)).expect("spawn");
    let written = p.join().expect("join");
    let mut text = String::new();
    reader.read_to_string(&mut text).expect("read the pipe");
    println!("   read {written} bytes: {text:?}");
    assert_eq!(text, format!("hello through a pipe from pid {}", p.pid()));

    section(
        11,
        "log_to_stderr",
        "Children's `log` records go to stderr, tagged [LEVEL/name pid] (Python's log_to_stderr).",
    );
    multiproc::log_to_stderr(log::LevelFilter::Info);
    let mut p = Process::builder()
        .name("logger")
        .spawn(log_some, 1)
        .expect("spawn");
    assert_eq!(p.join().expect("join"), 2);
    multiproc::log_to_stderr(log::LevelFilter::Off);

    section(
        12,
        "a large result",
        "A 64 MiB Vec<u8> comes back from a child (large results travel through shared memory).",
    );
    let t = Instant::now();
    let mut p = Process::spawn(big_buffer, BIG).expect("spawn");
    let data = p.join().expect("join");
    let elapsed = t.elapsed();
    println!("   received {} MiB in {}", data.len() >> 20, ms(elapsed));
    assert_eq!(data.len(), BIG);
    assert!(data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));

    channels::tour();
    shared::tour();
    pool::tour();
    manager::tour();

    section(
        30,
        "Fork refuses a multi-threaded caller",
        "Forking a process that has other threads is unsound: StartMethod::Fork checks, and says so.",
    );
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || rx.recv());
    let err = Process::fork(|| 1).expect_err("the tour has two threads now");
    println!("   {err}");
    assert!(err.is_not_single_threaded());
    let mut p = Process::spawn(nap, 1).expect("the fork server does not mind threads");
    assert_eq!(p.join().expect("join"), 1);
    println!("   (ForkServer and Spawn work from any thread)");
    tx.send(()).expect("wake the thread");
    let _ = thread.join();

    assert!(multiproc::active_children().is_empty());
    println!(
        "Tour finished in {}: every step checked.",
        ms(started.elapsed())
    );
}
