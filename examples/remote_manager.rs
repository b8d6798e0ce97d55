//! A manager that separate programs reach over TCP: Python's
//! `BaseManager(address=("127.0.0.1", 0), authkey=...)` with a job queue
//! and a result queue registered by name, and workers that `connect()`.
//!
//! The main program starts a manager's server on `127.0.0.1` (port 0: any
//! free port), puts the jobs on the queue named `jobs`, then starts two
//! worker *programs*: this same executable run again with `worker NAME
//! ADDRESS HEX-AUTHKEY` (they could as well run on another machine). Each
//! one connects with `Manager::connect`, takes jobs until it gets `None`,
//! and puts its results on the queue named `results`.
//!
//! ```text
//! $ cargo run --release --example remote_manager
//! manager serving at 127.0.0.1:41235 (server pid 5012), 32-byte random authkey
//! a client with a wrong authkey: refused (authentication failed: ...)
//! put 8 jobs and 2 stop signals on "jobs"
//! worker-1 (pid 5020) connected to 127.0.0.1:41235
//! worker-2 (pid 5021) connected to 127.0.0.1:41235
//! job 0: 27 reaches 1 in 111 Collatz steps (worker-1, pid 5020)
//! job 1: 97 reaches 1 in 118 Collatz steps (worker-2, pid 5021)
//! ...
//! worker-1 (pid 5020) exited (exit status: 0) after 4 jobs: [0, 2, 4, 6]
//! worker-2 (pid 5021) exited (exit status: 0) after 4 jobs: [1, 3, 5, 7]
//! all 8 results are in
//! ```
//!
//! The workers' lines interleave differently on every run. Nothing can
//! hang: a worker gives up when no job comes within 10 s (or at once when
//! the manager is gone), the main program stops waiting for results once
//! every worker has exited (or after a minute), and kills a worker that
//! outstays 30 s.

use multiproc::Manager;
use multiproc::connection::Address;
use serde::{Deserialize, Serialize};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A job: how many Collatz steps take `n` to 1.
#[derive(Debug, Serialize, Deserialize)]
struct Job {
    id: u32,
    n: u64,
}

/// A result, and who computed it.
#[derive(Debug, Serialize, Deserialize)]
struct Done {
    id: u32,
    n: u64,
    steps: u32,
    worker: String,
    pid: u32,
}

const NUMBERS: [u64; 8] = [27, 97, 871, 6171, 77_031, 837_799, 8_400_511, 63_728_127];
const WORKERS: usize = 2;

fn collatz_steps(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

fn main() {
    multiproc::init();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") if args.len() == 5 => worker(&args[2], &args[3], &args[4]),
        None => boss(),
        _ => {
            eprintln!("usage: remote_manager [worker NAME ADDRESS HEX-AUTHKEY]");
            std::process::exit(2);
        }
    }
}

/// A worker program: connects, takes jobs until `None`, returns results.
fn worker(name: &str, address: &str, hex_key: &str) {
    let address: Address = address.parse().expect("bad address");
    let key = from_hex(hex_key).expect("bad authkey");
    let manager = Manager::connect(&address, &key).expect("cannot connect to the manager");
    let jobs = manager.named("jobs").queue::<Option<Job>>().expect("jobs");
    let results = manager.named("results").queue::<Done>().expect("results");
    let pid = std::process::id();
    println!("{name} (pid {pid}) connected to {address}");
    // No job within 10 s, or the manager gone: give up (exit non-zero).
    while let Some(job) = jobs
        .get_timeout(Duration::from_secs(10))
        .expect("no job came")
    {
        std::thread::sleep(Duration::from_millis(20)); // let the other worker have a share
        let done = Done {
            id: job.id,
            n: job.n,
            steps: collatz_steps(job.n),
            worker: name.to_string(),
            pid,
        };
        results.put(&done).expect("cannot put a result");
    }
}

/// The main program: the manager, the jobs, the worker programs.
fn boss() {
    let manager = Manager::builder()
        .address("127.0.0.1:0".parse().expect("an address"))
        .start()
        .expect("cannot start the manager");
    let address = manager.address().to_string();
    let key = to_hex(manager.authkey());
    println!(
        "manager serving at {address} (server pid {}), {}-byte random authkey",
        manager.pid().expect("we started it"),
        manager.authkey().len()
    );
    let refused = Manager::connect(manager.address(), b"guess").expect_err("a wrong key");
    println!("a client with a wrong authkey: refused ({refused})");
    assert!(refused.is_authentication_failure());

    let jobs = manager.named("jobs").queue::<Option<Job>>().expect("jobs");
    let results = manager.named("results").queue::<Done>().expect("results");
    for (id, &n) in (0..).zip(&NUMBERS) {
        jobs.put(&Some(Job { id, n })).expect("put a job");
    }
    for _ in 0..WORKERS {
        jobs.put(&None).expect("put a stop signal");
    }
    println!(
        "put {} jobs and {WORKERS} stop signals on \"jobs\"",
        NUMBERS.len()
    );

    let exe = std::env::current_exe().expect("this program's path");
    let mut workers: Vec<(String, Child)> = (1..=WORKERS)
        .map(|i| {
            let name = format!("worker-{i}");
            let child = Command::new(&exe)
                .args(["worker", &name, &address, &key])
                .spawn()
                .expect("cannot start a worker program");
            (name, child)
        })
        .collect();

    // Collect the results until all are in, every worker has exited, or
    // a minute has passed.
    let mut done: Vec<Done> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.len() < NUMBERS.len() && Instant::now() < deadline {
        match results.get_timeout(Duration::from_millis(200)) {
            Ok(d) => {
                println!(
                    "job {}: {} reaches 1 in {} Collatz steps ({}, pid {})",
                    d.id, d.n, d.steps, d.worker, d.pid
                );
                done.push(d);
            }
            Err(e) if e.is_timeout() => {
                let exited = workers
                    .iter_mut()
                    .all(|(_, c)| matches!(c.try_wait(), Ok(Some(_))));
                if exited && results.is_empty().expect("results") {
                    eprintln!("every worker has exited: no more results will come");
                    break;
                }
            }
            Err(e) => panic!("the manager failed: {e}"),
        }
    }

    // Wait for the worker programs to exit.
    for (name, child) in &mut workers {
        let status = wait_or_kill(child, Duration::from_secs(30));
        let mine: Vec<u32> = done
            .iter()
            .filter(|d| d.worker == *name)
            .map(|d| d.id)
            .collect();
        println!(
            "{name} (pid {}) exited ({status}) after {} jobs: {mine:?}",
            child.id(),
            mine.len()
        );
    }
    for d in &done {
        assert_eq!(d.steps, collatz_steps(d.n));
    }
    assert_eq!(done.len(), NUMBERS.len(), "results are missing");
    println!("all {} results are in", done.len());
}

/// The child's exit status, killing it if it is still running at `limit`.
fn wait_or_kill(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
