//! Channels between processes: [`Queue`], [`JoinableQueue`] and
//! [`Pipe`]/[`Connection`] used by real children of each start method, and
//! what happens when one of those children dies at a bad moment.
//!
//! Every scenario runs under a deadline (`join_timeout`, `get_timeout`,
//! `recv_timeout`, `wait` with a timeout), so that a regression fails
//! instead of hanging CI, and ends with a leak check of the process that
//! ran it: no zombie child, no more descriptors than before, nothing new in
//! /dev/shm. The checks measure process-wide state, so the tests of this
//! binary are serialized by a mutex. For Fork, the scenario runs inside a
//! fork-server child (the "driver", single-threaded, so it may fork), which
//! checks its own leaks; the test process checks its own around it.
//!
//! Children are daemons held by [`Kid`], which kills and reaps them if the
//! scenario fails half-way: a failed assertion never leaves a process
//! spinning on a queue behind it (nor makes the end of the test binary wait
//! for one).
//!
//! Sizes: CI runs `cargo test --workspace` unoptimised, where this crate's
//! code is several times slower than in release. The million messages of
//! the many-to-many scenario run in debug builds too; the large messages
//! (256 MiB through a queue, 64 MiB through a pipe) have their full size in
//! release (`cargo test --release --test channels`) and a smaller one in
//! debug builds, as said where they are defined. `CHANNELS_KILLS=300`
//! makes the kill scenarios a stress test.

#[path = "../common/mod.rs"]
mod common;
mod kills;
mod lifetime;
mod ordering;
mod peers;

use common::{JOIN, Kid, Method, Snapshot, Watchdog, ms, read_line_until, run_with, secs, serial};
use multiproc::{
    Connection, ExitStatus, Fd, JoinableQueue, Pipe, Process, ProcessBuilder, PutTimeoutError,
    Queue, RecvError, RecvTimeoutError, SendError, SimpleQueue, TryPutError, TryRecvError,
};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Whether this is an unoptimised build (CI's `cargo test`): the heavy
/// scenarios shrink there.
const DEBUG: bool = cfg!(debug_assertions);

/// A daemon child of method `m`.
fn builder(m: Method) -> ProcessBuilder {
    Process::builder()
        .start_method(m.start_method())
        .daemon(true)
}

/// As [`builder`], for a child that is going to be killed: what it might
/// print on the way (a failed `expect` once its peer is gone) goes nowhere.
fn victim(m: Method) -> ProcessBuilder {
    builder(m).stderr(multiproc::Stdio::null())
}

fn double(x: u32) -> u32 {
    x * 2
}

/// One successful spawn with `m` (which starts the fork server where it
/// applies: its descriptors persist), then a snapshot of what must not grow.
fn warm_baseline(m: Method) -> Snapshot {
    let mut p = Kid::spawn(builder(m), double, 21);
    assert_eq!(p.finish("warm-up"), 42, "{m:?}: warm-up");
    drop(p);
    Snapshot::take()
}

/// Runs `scenario` with method `m` under the suite's mutex, with a leak
/// check of this process around it (the scenario checks its own process,
/// which for Fork is the driver child), and prints how long it took.
fn channel_test(name: &str, m: Method, scenario: fn(Method)) {
    let _guard = serial();
    let _watchdog = Watchdog::start(WATCHDOG, format!("{name} {m:?}"));
    let before = warm_baseline(Method::ForkServer);
    let started = Instant::now();
    run_with(m, scenario);
    before.assert_no_leaks(&format!("{name} {m:?}: test process"));
    eprintln!("{name} {m:?}: {:?}", started.elapsed());
}

/// How long a scenario may run before the watchdog gives up on it: longer
/// than any deadline of the scenarios (and than the 120 s `run_with` gives a
/// Fork driver), far shorter than CI's patience.
const WATCHDOG: Duration = Duration::from_secs(150);

/// A small deterministic generator (xorshift64*) for kill delays; the seed
/// is printed so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded(what: &str) -> Rng {
        let seed = std::env::var("CHANNELS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64);
                t ^ u64::from(std::process::id()) << 32
            })
            | 1;
        eprintln!("{what}: CHANNELS_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Waits (polling) until `cond()` holds, at most `limit`; whether it did.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

// ----------------------------------------------------------------------- smoke

fn echo_doubled((q, conn): (Queue<u32>, Connection<u32>)) {
    let x = q.get_timeout(JOIN).expect("get");
    conn.send(x * 2).expect("send");
}

#[test]
fn smoke() {
    let _guard = serial();
    let q = Queue::new().unwrap();
    let (here, there) = Pipe::new().unwrap();
    let mut p = Kid::spawn(
        builder(Method::ForkServer),
        echo_doubled,
        (q.clone(), there),
    );
    q.put(21).unwrap();
    assert_eq!(here.recv_timeout(JOIN), Ok(42));
    p.finish("echo");
    assert_eq!(here.recv_timeout(JOIN), Err(RecvTimeoutError::Disconnected));
}

// ------------------------------------------ helpers shared by the sections

/// A prime: a copy of a large message shifted by any amount smaller than
/// this does not match the pattern.
const BLOCK: usize = 65_521;

/// The repeating block of a large test message of `len` bytes (its length is
/// mixed in, so that messages of different lengths differ).
fn block(len: usize) -> Vec<u8> {
    (0..BLOCK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 7) ^ len) as u8)
        .collect()
}

/// A large test message (built with memcpy: fast even unoptimised).
fn big_message(len: usize) -> Vec<u8> {
    let b = block(len);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let n = (len - v.len()).min(BLOCK);
        v.extend_from_slice(&b[..n]);
    }
    v
}

/// Where the first wrong byte of a large message is, if anywhere.
fn first_bad_block(v: &[u8]) -> Option<usize> {
    let b = block(v.len());
    v.chunks(BLOCK)
        .position(|c| c != &b[..c.len()])
        .map(|i| i * BLOCK)
}

fn say_ready(ready: Fd) {
    let mut f = std::fs::File::from(ready);
    f.write_all(b"ready\n").expect("writing ready");
}
