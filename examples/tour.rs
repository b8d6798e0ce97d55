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

use multiproc::{
    Connection, ExitStatus, Fd, JoinableQueue, Pipe, Process, PutTimeoutError, Queue, RecvError,
    RecvTimeoutError, StartMethod, Stdio, TryPutError,
};
use serde::{Deserialize, Serialize};
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

/// Section 13's child: echoes raw bytes reversed, then answers each word with
/// its length until the parent closes its end; returns how many words it saw.
fn word_lengths(conn: Connection<usize, String>) -> usize {
    let mut raw = conn.recv_bytes().expect("recv_bytes");
    raw.reverse();
    conn.send_bytes(&raw).expect("send_bytes");
    let mut words = 0;
    loop {
        match conn.recv() {
            Ok(word) => {
                conn.send(word.chars().count()).expect("send");
                words += 1;
            }
            Err(RecvError::Disconnected) => return words,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Holds its end of a pipe until it is killed.
fn hold(_conn: Connection<u8>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

const PER_PRODUCER: u32 = 100;

/// Puts `(id, 0)`, `(id, 1)`, … into the queue and returns at once.
fn produce((id, q): (u32, Queue<(u32, u32)>)) -> u32 {
    for i in 0..PER_PRODUCER {
        q.put((id, i)).expect("put");
    }
    PER_PRODUCER
}

/// Squares numbers from `tasks` into `results` until it gets `None`, marking
/// each task done; returns how many it squared.
fn square_tasks((tasks, results): (JoinableQueue<Option<u64>>, Queue<u64>)) -> u32 {
    let mut squared = 0;
    loop {
        let task = tasks.get().expect("get");
        if let Some(n) = task {
            std::thread::sleep(Duration::from_millis(10));
            results.put(n * n).expect("put");
            squared += 1;
        }
        tasks.task_done().expect("task_done");
        if task.is_none() {
            return squared;
        }
    }
}

/// Receives a queue through a pipe and puts a greeting into it.
fn greet_through(conn: Connection<(), Queue<String>>) -> u32 {
    let q = conn.recv().expect("a queue through the pipe");
    let pid = std::process::id();
    q.put(format!("hello from pid {pid}")).expect("put");
    pid
}

/// Returns when the other end of its pipe is closed.
fn until_hangup(conn: Connection<u8>) {
    let _ = conn.recv();
}

/// Section 17's child: an odd number comes back ×10 through the queue, an
/// even one through the pipe; 0 ends it.
fn relay((conn, q): (Connection<u32>, Queue<u32>)) {
    while let Ok(n) = conn.recv() {
        match n {
            0 => return,
            n if n % 2 == 1 => q.put(n * 10).expect("put"),
            n => conn.send(n * 10).expect("send"),
        }
    }
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
    assert!(err.panic_location().is_some_and(|l| l.contains("tour.rs:")));

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

    section(
        13,
        "Pipe: a typed two-way connection",
        "Pipe::with_types::<String, usize>(): this end sends String and receives usize, the child's \
         end the reverse;\n   send_bytes/recv_bytes move raw bytes. (Pipe::new::<T>() carries T both ways.)",
    );
    let (here, there) = Pipe::with_types::<String, usize>().expect("pipe");
    let mut p = Process::spawn(word_lengths, there).expect("spawn");
    here.send_bytes(b"raw bytes").expect("send_bytes");
    let back = here.recv_bytes().expect("recv_bytes");
    println!(
        "   send_bytes(b\"raw bytes\") -> reversed by the child -> recv_bytes() = b{:?}",
        String::from_utf8_lossy(&back)
    );
    assert_eq!(back, b"setyb war");
    for word in ["multiproc", "pipes", "queues"] {
        here.send(word.to_string()).expect("send");
        let n = here
            .recv_timeout(Duration::from_secs(10))
            .expect("the child answers");
        println!("   send({word:?}) -> recv() = {n}");
        assert_eq!(n, word.len());
    }
    assert!(!here.poll(Some(Duration::ZERO)), "nothing more to receive");
    drop(here);
    let words = p.join().expect("join");
    println!("   closed our end: the child's recv() returned Disconnected after {words} words");
    assert_eq!(words, 3);
    let (here, there) = Pipe::new::<u8>().expect("pipe");
    let mut p = Process::spawn(hold, there).expect("spawn");
    std::thread::sleep(Duration::from_millis(100)); // let it reach its function
    p.kill().expect("kill");
    let t = Instant::now();
    let err = here
        .recv_timeout(Duration::from_secs(10))
        .expect_err("the peer is dead");
    println!(
        "   the child holding the other end was killed: recv() = Err({err:?}) after {}",
        ms(t.elapsed())
    );
    assert_eq!(err, RecvTimeoutError::Disconnected);
    assert_eq!(p.join().expect_err("killed").signal(), Some(libc::SIGKILL));

    section(
        14,
        "Queue: many producers, messages in shared memory",
        "Three children put 100 messages each and exit; everything they put is there after they \
         have gone\n   (put returns once the message is in shared memory: no feeder thread to flush).",
    );
    let q = Queue::new().expect("queue");
    let mut producers: Vec<_> = (0..3)
        .map(|id| Process::spawn(produce, (id, q.clone())).expect("spawn"))
        .collect();
    for p in &mut producers {
        assert_eq!(p.join().expect("join"), PER_PRODUCER);
    }
    println!("   the 3 producers have exited: q.len() = {}", q.len());
    assert_eq!(q.len(), 3 * PER_PRODUCER as usize);
    let mut next = [0; 3];
    while let Ok((id, i)) = q.try_get() {
        assert_eq!(i, next[id as usize], "a producer's messages stay in order");
        next[id as usize] += 1;
    }
    println!("   try_get() took them all, each producer's in the order it put them: {next:?}");
    assert_eq!(next, [PER_PRODUCER; 3]);
    let t = Instant::now();
    let err = q
        .get_timeout(Duration::from_millis(20))
        .expect_err("the queue is empty");
    println!(
        "   get_timeout(20 ms) on the empty queue: Err({err:?}) after {}",
        ms(t.elapsed())
    );
    assert_eq!(err, RecvTimeoutError::Timeout);
    let bounded = Queue::bounded(2).expect("queue");
    bounded.put("a".to_string()).expect("put");
    bounded.put("b".to_string()).expect("put");
    let full = bounded.try_put("c".to_string()).expect_err("full");
    println!(
        "   Queue::bounded(2) with 2 messages: try_put(\"c\") = Err({full:?}) ({full}), and \"c\" comes back"
    );
    assert!(bounded.is_full());
    assert!(matches!(&full, TryPutError::Full(c) if c == "c"));
    let err = bounded
        .put_timeout(full.into_inner(), Duration::from_millis(20))
        .expect_err("still full");
    println!("   put_timeout(\"c\", 20 ms) = Err({err:?})");
    assert!(matches!(&err, PutTimeoutError::Timeout(c) if c == "c"));
    assert_eq!(bounded.get().expect("get"), "a");
    bounded.try_put(err.into_inner()).expect("room for one now");
    assert_eq!(bounded.get().expect("get"), "b");
    assert_eq!(bounded.get().expect("get"), "c");
    println!("   after one get(), try_put(\"c\") succeeds; the queue gives a, b, c");

    section(
        15,
        "JoinableQueue: task_done and join",
        "Two workers square 10 numbers (10 ms each); join() returns once every put has had its task_done().",
    );
    let tasks = JoinableQueue::new().expect("queue");
    let results = Queue::new().expect("queue");
    let mut workers: Vec<_> = (0..2)
        .map(|_| Process::spawn(square_tasks, (tasks.clone(), results.clone())).expect("spawn"))
        .collect();
    let t = Instant::now();
    for n in 1..=10 {
        tasks.put(Some(n)).expect("put");
    }
    tasks
        .join_timeout(Duration::from_secs(30))
        .expect("the workers finish");
    let squares: Vec<u64> = std::iter::from_fn(|| results.try_get().ok()).collect();
    println!(
        "   join() returned after {}: {} results, sum {}",
        ms(t.elapsed()),
        squares.len(),
        squares.iter().sum::<u64>()
    );
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "join waited for the work"
    );
    assert_eq!(squares.len(), 10);
    assert_eq!(squares.iter().sum::<u64>(), 385);
    tasks.put(None).expect("put");
    tasks.put(None).expect("put");
    let done: Vec<u32> = workers
        .iter_mut()
        .map(|w| w.join().expect("join"))
        .collect();
    println!("   after a None each, the workers returned how many they squared: {done:?}");
    assert_eq!(done.iter().sum::<u32>(), 10);
    let err = tasks.task_done().expect_err("no task is left");
    println!(
        "   one task_done() too many: {err} (is_misuse={})",
        err.is_misuse()
    );
    assert!(err.is_misuse());

    section(
        16,
        "a Queue through a Pipe",
        "Channels are messages too: the queue travels through the pipe (its handles as SCM_RIGHTS) \
         and the child puts into it.",
    );
    let (here, there) = Pipe::with_types::<Queue<String>, ()>().expect("pipe");
    let mut p = Process::spawn(greet_through, there).expect("spawn");
    let q = Queue::new().expect("queue");
    here.send(q.clone()).expect("send the queue");
    let pid = p.join().expect("join");
    let greeting = q.get_timeout(Duration::from_secs(10)).expect("get");
    println!("   sent a Queue through the pipe; the child put {greeting:?} into it");
    assert_eq!(greeting, format!("hello from pid {pid}"));

    section(
        17,
        "wait on queues, connections and sentinels",
        "multiproc::wait watches any mix of them and returns the indices of the ready ones.",
    );
    let (here, there) = Pipe::new::<u32>().expect("pipe");
    let q = Queue::new().expect("queue");
    let mut relay_child = Process::spawn(relay, (there, q.clone())).expect("spawn");
    let (stop, stop_there) = Pipe::new::<u8>().expect("pipe");
    let mut waiter = Process::spawn(until_hangup, stop_there).expect("spawn");
    let idle = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_millis(20)),
    )
    .expect("wait");
    println!("   wait([queue, connection, sentinel], 20 ms) = {idle:?} (nothing yet)");
    assert!(idle.is_empty());
    here.send(1).expect("send");
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   sent 1, a child puts 10 in the queue:       wait = {ready:?}");
    assert_eq!(ready, vec![0]);
    assert_eq!(q.get().expect("get"), 10);
    here.send(2).expect("send");
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   sent 2, it sends 20 back through the pipe:  wait = {ready:?}");
    assert_eq!(ready, vec![1]);
    assert_eq!(here.recv().expect("recv"), 20);
    drop(stop);
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   another child returns:                      wait = {ready:?}");
    assert_eq!(ready, vec![2]);
    waiter.join().expect("join");
    here.send(0).expect("send");
    let ready = multiproc::wait(&[&q, &here], Some(Duration::from_secs(10))).expect("wait");
    println!(
        "   sent 0, the first child returns: wait([queue, connection]) = {ready:?} (end-of-file)"
    );
    assert_eq!(ready, vec![1]);
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
    relay_child.join().expect("join");

    section(
        18,
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

    println!(
        "\nNot built yet (coming in later releases): shared memory (Value, Array, SharedMemory) \
         and locks (Lock, RLock, Semaphore, Condition, Event, Barrier), Pool and \
         ProcessPoolExecutor, Manager."
    );
    assert!(multiproc::active_children().is_empty());
    println!(
        "Tour finished in {}: every step checked.",
        ms(started.elapsed())
    );
}
