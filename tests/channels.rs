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

mod common;

use common::{JOIN, Method, Snapshot, ms, read_line_until, run_with, secs};
use multiproc::{
    Connection, ExitStatus, Fd, JoinableQueue, Pipe, Process, ProcessBuilder, PutTimeoutError,
    Queue, RecvError, RecvTimeoutError, SendError, SimpleQueue, TryPutError, TryRecvError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// A child that is killed and reaped if the scenario lets go of it before
/// joining it (a failed assertion, an early return).
struct Kid<R: Serialize + DeserializeOwned>(Process<R>);

impl<R: Serialize + DeserializeOwned> Kid<R> {
    fn spawn<A: Serialize + DeserializeOwned>(b: ProcessBuilder, f: fn(A) -> R, arg: A) -> Self {
        Kid(b.spawn(f, arg).expect("spawning a child"))
    }

    /// Joins within [`JOIN`], failing the test with `what` otherwise.
    fn finish(&mut self, what: &str) -> R {
        match self.0.join_timeout(JOIN) {
            Ok(r) => r,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Kills the child and checks that the kill is what ended it.
    fn kill_and_reap(&mut self, what: &str) {
        self.0.kill().expect("kill");
        match self.0.join_timeout(JOIN) {
            Err(e) if e.signal() == Some(libc::SIGKILL) => {}
            Err(e) => panic!("{what}: expected death by SIGKILL, got: {e}"),
            Ok(_) => panic!("{what}: expected death by SIGKILL, but it returned"),
        }
    }
}

impl<R: Serialize + DeserializeOwned> Deref for Kid<R> {
    type Target = Process<R>;
    fn deref(&self) -> &Process<R> {
        &self.0
    }
}

impl<R: Serialize + DeserializeOwned> DerefMut for Kid<R> {
    fn deref_mut(&mut self) -> &mut Process<R> {
        &mut self.0
    }
}

impl<R: Serialize + DeserializeOwned> Drop for Kid<R> {
    fn drop(&mut self) {
        if self.0.exitcode().is_none() {
            let _ = self.0.kill();
            let _ = self.0.join_timeout(JOIN);
        }
    }
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
    let _watchdog = Watchdog::start(format!("{name} {m:?}"));
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

/// Aborts the whole test binary if a scenario outlives [`WATCHDOG`]: the
/// last resort for the calls that have no deadline of their own
/// (`Connection::send`, `Queue::put`), so that a regression that blocks one
/// of them fails CI instead of hanging it. Dropping it calls it off.
struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn start(what: String) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                eprintln!("{what}: still running after {WATCHDOG:?}: aborting the test binary");
                std::process::abort();
            }
        });
        Watchdog { _cancel: tx }
    }
}

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

// --------------------------------------- 1. nothing lost, nothing duplicated

/// Messages of the many-to-many scenario, all producers together: the
/// issue's million, in debug builds too (under a second per start method,
/// unoptimised, on two cores).
const MANY_MESSAGES: u32 = 1_000_000;
const PRODUCERS: u8 = 4;
const CONSUMERS: usize = 4;

/// `Some((producer, sequence number))`, or `None`: stop.
type Numbered = Option<(u8, u32)>;

fn produce_numbered((q, id, n): (Queue<Numbered>, u8, u32)) {
    for seq in 0..n {
        q.put(Some((id, seq))).expect("put");
    }
}

/// What one consumer saw: per producer, the sequence numbers in the order
/// they arrived.
fn consume_numbered(q: Queue<Numbered>) -> Vec<Vec<u32>> {
    let mut seen = vec![Vec::new(); PRODUCERS as usize];
    loop {
        match q.get_timeout(JOIN) {
            Ok(Some((id, seq))) => seen[id as usize].push(seq),
            Ok(None) => return seen,
            Err(e) => panic!("consumer: get: {e}"),
        }
    }
}

fn many_to_many(m: Method) {
    let before = warm_baseline(m);
    {
        let per = MANY_MESSAGES / u32::from(PRODUCERS);
        let q = Queue::<Numbered>::new().unwrap();
        let started = Instant::now();
        let mut consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| Kid::spawn(builder(m), consume_numbered, q.clone()))
            .collect();
        let mut producers: Vec<_> = (0..PRODUCERS)
            .map(|id| Kid::spawn(builder(m), produce_numbered, (q.clone(), id, per)))
            .collect();
        for p in &mut producers {
            p.finish("producer");
        }
        for _ in 0..CONSUMERS {
            q.put(None).unwrap();
        }
        let reports: Vec<Vec<Vec<u32>>> =
            consumers.iter_mut().map(|c| c.finish("consumer")).collect();
        let elapsed = started.elapsed();

        // Each consumer saw each producer's numbers in increasing order.
        for (c, report) in reports.iter().enumerate() {
            for (p, seqs) in report.iter().enumerate() {
                if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
                    panic!(
                        "{m:?}: consumer {c} got producer {p}'s {} after {}",
                        w[1], w[0]
                    );
                }
            }
        }
        // The union is every message exactly once, and the sums agree.
        let mut total = 0u64;
        let mut sum = 0u64;
        for p in 0..PRODUCERS as usize {
            let mut hits = vec![0u8; per as usize];
            for report in &reports {
                for &seq in &report[p] {
                    assert!(seq < per, "{m:?}: producer {p} never sent {seq}");
                    hits[seq as usize] += 1;
                    sum += u64::from(seq);
                    total += 1;
                }
            }
            let lost: Vec<usize> = (0..per as usize).filter(|&s| hits[s] == 0).collect();
            let dup: Vec<usize> = (0..per as usize).filter(|&s| hits[s] > 1).collect();
            assert!(
                lost.is_empty() && dup.is_empty(),
                "{m:?}: producer {p}: {} lost (first {:?}), {} duplicated (first {:?})",
                lost.len(),
                lost.first(),
                dup.len(),
                dup.first()
            );
        }
        let n = u64::from(per);
        assert_eq!(total, n * u64::from(PRODUCERS), "{m:?}: message count");
        assert_eq!(
            sum,
            n * (n - 1) / 2 * u64::from(PRODUCERS),
            "{m:?}: checksum"
        );
        assert!(q.is_empty(), "{m:?}: {} left in the queue", q.len());
        eprintln!(
            "{m:?}: {} messages, {PRODUCERS} producers x {CONSUMERS} consumers: {elapsed:?}",
            total
        );
    }
    before.assert_no_leaks(&format!("{m:?}: many to many"));
}

#[test]
fn many_to_many_forkserver() {
    channel_test("many_to_many", Method::ForkServer, many_to_many);
}

#[test]
fn many_to_many_spawn() {
    channel_test("many_to_many", Method::Spawn, many_to_many);
}

#[test]
fn many_to_many_fork() {
    channel_test("many_to_many", Method::Fork, many_to_many);
}

// ------------------------------------------- 2. messages larger than the ring

/// The large message through a queue (whose ring starts at 256 KiB and
/// sends anything over 1 MiB as a shared-memory file). Unoptimised, encoding
/// and decoding a `Vec<u8>` costs about 70 ns a byte (serde goes element by
/// element), 18 s for 256 MiB: debug builds send 64 MiB.
const QUEUE_BIG: usize = if DEBUG { 64 << 20 } else { 256 << 20 };
/// The large message each way through a pipe (which streams it through its
/// 256 KiB ring in chunks): 64 MiB in release, 32 MiB in debug builds (see
/// [`QUEUE_BIG`]).
const PIPE_BIG: usize = if DEBUG { 32 << 20 } else { 64 << 20 };

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

fn put_big((q, len): (Queue<Vec<u8>>, usize)) {
    q.put(vec![1]).expect("put before");
    q.put(big_message(len)).expect("put big");
    q.put(vec![2]).expect("put after");
}

fn big_through_queue(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<Vec<u8>>::new().unwrap();
        let t = Instant::now();
        let mut child = Kid::spawn(builder(m), put_big, (q.clone(), QUEUE_BIG));
        assert_eq!(q.get_timeout(JOIN).unwrap(), vec![1], "{m:?}");
        let big = q.get_timeout(JOIN).unwrap();
        assert_eq!(q.get_timeout(JOIN).unwrap(), vec![2], "{m:?}: order");
        child.finish("putter");
        eprintln!(
            "{m:?}: {} MiB through a queue: {:?}",
            QUEUE_BIG >> 20,
            t.elapsed()
        );
        assert_eq!(big.len(), QUEUE_BIG, "{m:?}");
        assert_eq!(first_bad_block(&big), None, "{m:?}");
        assert!(q.is_empty(), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: big message through a queue"));
}

/// Receives a small message, a large one and a small one, then sends the
/// same back (the large one rebuilt, not echoed); `Some(offset)` if the
/// large one it got was wrong there.
fn echo_big((conn, len): (Connection<Vec<u8>>, usize)) -> Option<usize> {
    assert_eq!(conn.recv_timeout(JOIN).expect("recv before"), vec![3]);
    let big = conn.recv_timeout(JOIN).expect("recv big");
    assert_eq!(conn.recv_timeout(JOIN).expect("recv after"), vec![4]);
    assert_eq!(big.len(), len);
    let bad = first_bad_block(&big);
    drop(big);
    conn.send(vec![1]).expect("send before");
    conn.send(big_message(len)).expect("send big");
    conn.send(vec![2]).expect("send after");
    bad
}

fn big_through_pipe(m: Method) {
    let before = warm_baseline(m);
    {
        let (here, there) = Pipe::new::<Vec<u8>>().unwrap();
        let t = Instant::now();
        let mut child = Kid::spawn(builder(m), echo_big, (there, PIPE_BIG));
        // `send` has no timeout: the suite's watchdog bounds it.
        here.send(vec![3]).unwrap();
        here.send(big_message(PIPE_BIG)).unwrap();
        here.send(vec![4]).unwrap();
        assert_eq!(here.recv_timeout(JOIN).unwrap(), vec![1], "{m:?}");
        let big = here.recv_timeout(JOIN).unwrap();
        assert_eq!(here.recv_timeout(JOIN).unwrap(), vec![2], "{m:?}: order");
        assert_eq!(
            child.finish("echo"),
            None,
            "{m:?}: the child got a bad copy"
        );
        eprintln!(
            "{m:?}: {} MiB each way through a pipe: {:?}",
            PIPE_BIG >> 20,
            t.elapsed()
        );
        assert_eq!(big.len(), PIPE_BIG, "{m:?}");
        assert_eq!(first_bad_block(&big), None, "{m:?}");
        assert_eq!(
            here.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: big message through a pipe"));
}

// The start method only decides how the channel's handles reach the child;
// the large-message path is the same, so each kind of channel runs with two
// of the three methods (all three between them) to keep CI short.

#[test]
fn big_through_queue_forkserver() {
    channel_test("big_through_queue", Method::ForkServer, big_through_queue);
}

#[test]
fn big_through_queue_fork() {
    channel_test("big_through_queue", Method::Fork, big_through_queue);
}

#[test]
fn big_through_pipe_spawn() {
    channel_test("big_through_pipe", Method::Spawn, big_through_pipe);
}

#[test]
fn big_through_pipe_forkserver() {
    channel_test("big_through_pipe", Method::ForkServer, big_through_pipe);
}

// ------------------------------------------------------------ 3. peer death

/// Messages a dying child sends before it dies (they fit in the ring).
const LAST_WORDS: u32 = 1_000;

fn say_ready(ready: Fd) {
    let mut f = std::fs::File::from(ready);
    f.write_all(b"ready\n").expect("writing ready");
}

/// Sends `0..n`, says "ready", then sleeps until killed.
fn send_then_sleep((conn, n, ready): (Connection<u32, Vec<u8>>, u32, Fd)) {
    for i in 0..n {
        conn.send(i).expect("send");
    }
    say_ready(ready);
    loop {
        std::thread::sleep(secs(1));
    }
}

/// Sends `0..n`, then, while its peer waits in `recv`, kills itself.
fn send_then_die((conn, n): (Connection<u32, Vec<u8>>, u32)) {
    for i in 0..n {
        conn.send(i).expect("send");
    }
    std::thread::sleep(ms(200));
    // SAFETY: plain system call on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL to ourselves returned");
}

/// Runs `f` on a helper thread and fails the test if it does not finish
/// within `limit`: for calls that have no timeout of their own (`send`).
/// The thread has ended when this returns, so that a Fork driver is
/// single-threaded again (but call it last in a Fork scenario anyway: the
/// kernel forgets the thread a moment after `join`).
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            helper.join().expect("helper thread");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let e = helper
                .join()
                .expect_err("the helper thread ended without a result");
            std::panic::resume_unwind(e)
        }
    }
}

fn peer_death(m: Method) {
    let before = warm_baseline(m);
    {
        // The child is killed while its peer is not looking: the messages it
        // sent first are all there, then end-of-file.
        let (here, there) = Pipe::with_types::<Vec<u8>, u32>().unwrap();
        let (reader, writer) = common::pipe();
        let mut child = Kid::spawn(
            victim(m),
            send_then_sleep,
            (there, LAST_WORDS, Fd::from(writer)),
        );
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(line.expect("the child never said ready"), "ready", "{m:?}");
        child.kill_and_reap("sender");
        let t = Instant::now();
        for i in 0..LAST_WORDS {
            assert_eq!(
                here.recv_timeout(JOIN),
                Ok(i),
                "{m:?}: message {i} of a dead peer"
            );
        }
        assert_eq!(
            here.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
        assert!(
            here.poll(Some(Duration::ZERO)),
            "{m:?}: end-of-file is ready"
        );
        assert!(
            t.elapsed() < secs(5),
            "{m:?}: draining took {:?}",
            t.elapsed()
        );

        // The child dies while its peer sleeps in `recv`: it wakes up.
        let (here2, there2) = Pipe::with_types::<Vec<u8>, u32>().unwrap();
        let mut child = Kid::spawn(victim(m), send_then_die, (there2, 3));
        for i in 0..3 {
            assert_eq!(here2.recv_timeout(JOIN), Ok(i), "{m:?}");
        }
        let t = Instant::now();
        assert_eq!(
            here2.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
        assert!(
            t.elapsed() < secs(5),
            "{m:?}: woken {:?} after the peer died",
            t.elapsed()
        );
        let err = child.join_timeout(JOIN).unwrap_err();
        assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
        drop(here2);

        // Sending to the dead peer: what fits in its ring (256 KiB) is
        // accepted, as a pipe's buffer would; then `send` must fail, not
        // wait for ever for room.
        let (sent, last) = within("send to a dead peer", JOIN, move || {
            let mut sent = 0usize;
            loop {
                match here.send(vec![0xa5; 1024]) {
                    Ok(()) if sent < 1024 => sent += 1,
                    Ok(()) => return (sent, Ok(())),
                    Err(e) => return (sent, Err(e)),
                }
            }
        });
        match last {
            Err(SendError::Disconnected(v)) => {
                assert_eq!(v.len(), 1024, "{m:?}: the value comes back")
            }
            other => panic!("{m:?}: after {sent} sends to a dead peer: {other:?}"),
        }
        assert!(
            sent <= 256,
            "{m:?}: {sent} KiB accepted by a dead peer's 256 KiB ring"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: peer death"));
}

/// Raw messages streamed through a pipe in the mid-stream death rounds.
const STREAMED: usize = 16 << 20;
/// Rounds of each mid-stream death scenario.
const STREAM_DEATHS: u32 = 5;

/// Kills the calling process `delay_us` after `started` says so (the
/// helper thread's first message went through).
fn die_after(started: std::sync::mpsc::Receiver<()>, delay_us: u64) -> ! {
    let _ = started.recv_timeout(JOIN);
    std::thread::sleep(Duration::from_micros(delay_us));
    // SAFETY: plain system call on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL to ourselves returned");
}

/// Streams large raw messages from a helper thread, and dies `delay_us`
/// after the first one went through: most likely in the middle of one.
fn stream_and_die((conn, delay_us): (Connection<()>, u64)) {
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let msg = big_message(STREAMED);
        while conn.send_bytes(&msg).is_ok() {
            let _ = tx.send(());
        }
    });
    die_after(started, delay_us)
}

/// Receives large raw messages on a helper thread, and dies `delay_us`
/// after the first one came in: most likely in the middle of one.
fn drain_and_die((conn, delay_us): (Connection<()>, u64)) {
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while conn.recv_bytes().is_ok() {
            let _ = tx.send(());
        }
    });
    die_after(started, delay_us)
}

/// A peer killed in the middle of a large message (which streams through
/// the 256 KiB ring in chunks, the sender holding the ring's lock): the
/// survivor gets whole, correct messages and then an error, never a torn
/// message, and never waits for ever.
///
/// `recv_bytes` and `send_bytes` have no timeout: the suite's watchdog (or,
/// for Fork, the driver's deadline) turns a hang into a failure.
fn peer_death_mid_stream(m: Method) {
    let before = warm_baseline(m);
    {
        let mut rng = Rng::seeded(&format!("{m:?}: peer_death_mid_stream"));
        for round in 0..STREAM_DEATHS {
            // The sender dies.
            let (here, there) = Pipe::new::<()>().unwrap();
            let delay = rng.below(30_000);
            let mut child = Kid::spawn(victim(m), stream_and_die, (there, delay));
            let mut whole = 0;
            let end = loop {
                match here.recv_bytes() {
                    Ok(msg) => {
                        assert_eq!(msg.len(), STREAMED, "{m:?}: round {round}: a torn message");
                        assert_eq!(first_bad_block(&msg), None, "{m:?}: round {round}");
                        whole += 1;
                    }
                    Err(e) => break e,
                }
            };
            let err = child.join_timeout(JOIN).unwrap_err();
            assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
            // A message cut short is lost, reported as the end of the
            // stream (or as a broken channel, then the end).
            if let RecvError::Failed(f) = end {
                assert!(f.is_broken(), "{m:?}: round {round}: {f}");
                assert_eq!(here.recv_bytes(), Err(RecvError::Disconnected), "{m:?}");
            }
            assert!(whole >= 1, "{m:?}: round {round}");

            // The receiver dies.
            let (here, there) = Pipe::new::<()>().unwrap();
            let delay = rng.below(30_000);
            let mut child = Kid::spawn(victim(m), drain_and_die, (there, delay));
            let msg = big_message(STREAMED);
            let mut sent = 0;
            let end = loop {
                match here.send_bytes(&msg) {
                    Ok(()) => sent += 1,
                    Err(e) => break e,
                }
                assert!(
                    sent < 100_000,
                    "{m:?}: round {round}: the receiver never died"
                );
            };
            let err = child.join_timeout(JOIN).unwrap_err();
            assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
            assert_eq!(end, SendError::Disconnected(()), "{m:?}: round {round}");
        }
    }
    before.assert_no_leaks(&format!("{m:?}: peer death mid-stream"));
}

#[test]
fn peer_death_mid_stream_forkserver() {
    channel_test(
        "peer_death_mid_stream",
        Method::ForkServer,
        peer_death_mid_stream,
    );
}

#[test]
fn peer_death_mid_stream_spawn() {
    channel_test(
        "peer_death_mid_stream",
        Method::Spawn,
        peer_death_mid_stream,
    );
}

#[test]
fn peer_death_mid_stream_fork() {
    channel_test("peer_death_mid_stream", Method::Fork, peer_death_mid_stream);
}

#[test]
fn peer_death_forkserver() {
    channel_test("peer_death", Method::ForkServer, peer_death);
}

#[test]
fn peer_death_spawn() {
    channel_test("peer_death", Method::Spawn, peer_death);
}

#[test]
fn peer_death_fork() {
    channel_test("peer_death", Method::Fork, peer_death);
}

// ---------------------------------------------------- 4. lock holders killed
//
// A queue's producers share one robust lock and its consumers another; a
// process killed while it holds one (SIGKILL at a random moment of a tight
// `put` or `get` loop lands there a good part of the time: about half the
// consumer kills take a message with them, see below) must not wedge the
// others. What a kill may cost:
// - a producer killed in `put`: nothing that any `put` returned for; its
//   last `put`, cut short before the record was published, never happened;
// - a consumer killed in `get`: at most the one message it was taking (a
//   `get` cut short before it moved the head leaves the message for the
//   next consumer; after, the message died with it), and of course the
//   message it had taken and not yet passed on.
// After every kill the parent puts and gets within 1 s, and the queue's two
// views of its length (positions and counts) agree.

/// Kills per scenario: 20, or `CHANNELS_KILLS` (for stress runs).
fn kills() -> u32 {
    std::env::var("CHANNELS_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// A message of the kill scenarios: `(tag, sequence number)` (the tag names
/// a producer, or the consumer that forwarded it) and, in the carrier
/// variants, a descriptor, which sends the message through the socket
/// beside the ring (with a carrier record in the ring).
type Carried = (u32, u32, Option<Fd>);
/// The tag that tells the counting consumer to stop.
const STOP: u32 = u32::MAX;
/// The tag of the parent's probe message.
const PROBE: u32 = u32::MAX - 1;
/// Messages the surviving producer puts while its sibling is killed.
const SURVIVOR_PUTS: u32 = 50_000;
/// Messages put for the consumers of a consumer-kill round: more than the
/// two of them take in the longest delay before the kill.
const FILL: u32 = 50_000;
/// As [`FILL`], for messages carrying a descriptor (slower).
const FILL_CARRIERS: u32 = 5_000;

/// A descriptor of /dev/null if `carriers` (which sends the message
/// through the socket beside the ring, a carrier record in the ring).
fn maybe_fd(carriers: bool) -> Option<Fd> {
    carriers.then(|| Fd::from(std::fs::File::open("/dev/null").expect("/dev/null")))
}

/// Puts `(tag, 0..)` in a tight loop until killed; says "ready" after the
/// first put.
fn put_forever((q, tag, carriers, ready): (Queue<Carried>, u32, bool, Fd)) {
    q.put((tag, 0, maybe_fd(carriers))).expect("put");
    say_ready(ready);
    for seq in 1.. {
        q.put((tag, seq, maybe_fd(carriers))).expect("put");
    }
}

/// Puts `(tag, 0..n)`.
fn put_carried((q, tag, n, carriers): (Queue<Carried>, u32, u32, bool)) {
    for seq in 0..n {
        q.put((tag, seq, maybe_fd(carriers))).expect("put");
    }
}

/// What the counting consumer saw: per tag, how many; and every departure
/// from `0, 1, 2, ...` per tag (a loss, a duplicate, a reordering) or
/// failed `get` (the first ten).
type Counts = (Vec<(u32, u32)>, Vec<String>);

fn count_until_stop(q: Queue<Carried>) -> Counts {
    let mut next = std::collections::BTreeMap::<u32, u32>::new();
    let mut anomalies = Vec::new();
    loop {
        match q.get_timeout(JOIN) {
            Ok((STOP, _, _)) => return (next.into_iter().collect(), anomalies),
            Ok((tag, seq, _)) => {
                let want = next.entry(tag).or_insert(0);
                if seq != *want && anomalies.len() < 10 {
                    anomalies.push(format!("tag {tag}: got {seq}, expected {want}"));
                }
                *want = seq + 1;
            }
            Err(RecvTimeoutError::Failed(f)) => {
                if anomalies.len() < 10 {
                    anomalies.push(format!("get failed: {f}"));
                }
            }
            Err(e) => panic!("counting consumer: {e}"),
        }
    }
}

/// The parent's check that a queue works after a kill: a put and a get,
/// each within 1 s.
fn probe(m: Method, q: &Queue<Carried>, round: u32) {
    let t = Instant::now();
    q.put_timeout((PROBE, round, None), secs(1))
        .unwrap_or_else(|e| panic!("{m:?}: round {round}: probe put: {e}"));
    match q.get_timeout(secs(1)) {
        Ok((PROBE, r, None)) if r == round => {}
        other => panic!(
            "{m:?}: round {round}: probe get: {:?}",
            other.map(|(tag, seq, _)| (tag, seq))
        ),
    }
    assert!(
        t.elapsed() < secs(1),
        "{m:?}: round {round}: probe took {:?}",
        t.elapsed()
    );
    // Both views agree: the positions (is_empty) and the counts (len),
    // which a death between their two stores leaves off by one until
    // the next put recounts.
    assert!(q.is_empty(), "{m:?}: round {round}: not empty");
    assert_eq!(q.len(), 0, "{m:?}: round {round}: len");
}

/// Producers killed in the middle of `put`, [`kills`] times: each round a
/// victim puts in a tight loop (so that it holds the producers' lock, or
/// grows the ring holding both locks, a good part of the time), a survivor
/// puts [`SURVIVOR_PUTS`] messages beside it, and one consumer counts; the
/// victim is killed after a random delay.
///
/// What may be lost: nothing that a `put` returned for. The victim's last
/// `put`, cut short, was never committed, so the consumer sees the victim's
/// messages `0..k` with no gap, and all of the survivor's.
fn producer_killed_with(m: Method, carriers: bool) {
    let before = warm_baseline(m);
    {
        let what = if carriers {
            "producer_killed_carriers"
        } else {
            "producer_killed"
        };
        let mut rng = Rng::seeded(&format!("{m:?}: {what}"));
        let q = Queue::<Carried>::new().unwrap();
        let survivor_puts = if carriers {
            FILL_CARRIERS
        } else {
            SURVIVOR_PUTS
        };
        let mut victims = 0u64;
        for round in 0..kills() {
            let (victim_tag, survivor_tag) = (2 * round, 2 * round + 1);
            let mut counter = Kid::spawn(builder(m), count_until_stop, q.clone());
            let (reader, writer) = common::pipe();
            let mut v = Kid::spawn(
                victim(m),
                put_forever,
                (q.clone(), victim_tag, carriers, Fd::from(writer)),
            );
            let mut s = Kid::spawn(
                builder(m),
                put_carried,
                (q.clone(), survivor_tag, survivor_puts, carriers),
            );
            let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
            assert_eq!(line.expect("the victim never said ready"), "ready", "{m:?}");
            std::thread::sleep(Duration::from_micros(rng.below(10_000)));
            v.kill_and_reap("victim producer");
            let killed = Instant::now();
            s.finish("surviving producer");
            // The consumer empties the queue without another put to wake it.
            assert!(
                eventually(secs(10), || q.is_empty()),
                "{m:?}: round {round}: {} messages left 10 s after the kill",
                q.len()
            );
            q.put_timeout((STOP, 0, None), secs(1)).expect("stop");
            let (counts, anomalies) = counter.finish("counting consumer");
            let after = killed.elapsed();
            assert!(
                anomalies.is_empty(),
                "{m:?}: {what} round {round}: {anomalies:?}"
            );
            let count = |tag| {
                counts
                    .iter()
                    .find(|(t, _)| *t == tag)
                    .map_or(0, |(_, n)| *n)
            };
            assert_eq!(
                count(survivor_tag),
                survivor_puts,
                "{m:?}: round {round}: {counts:?}"
            );
            assert!(count(victim_tag) >= 1, "{m:?}: round {round}: {counts:?}");
            assert_eq!(counts.len(), 2, "{m:?}: round {round}: {counts:?}");
            assert!(
                after < secs(10),
                "{m:?}: round {round}: {after:?} to recover"
            );
            victims += u64::from(count(victim_tag));
            probe(m, &q, round);
        }
        eprintln!(
            "{m:?}: {} producers killed ({what}) after {victims} puts in all; none lost",
            kills()
        );
    }
    before.assert_no_leaks(&format!("{m:?}: producer killed"));
}

fn producer_killed(m: Method) {
    producer_killed_with(m, false);
}

fn producer_killed_carriers(m: Method) {
    producer_killed_with(m, true);
}

/// Takes from `q` and puts on `out` as `(who, seq)` until killed; says
/// "ready" after the first.
fn forward_forever((q, out, who, ready): (Queue<Carried>, Queue<Carried>, u32, Fd)) {
    let (_, seq, _) = q.get_timeout(JOIN).expect("get");
    out.put((who, seq, None)).expect("put");
    say_ready(ready);
    loop {
        let (_, seq, _) = q.get_timeout(JOIN).expect("get");
        out.put((who, seq, None)).expect("put");
    }
}

/// Takes from `q` and puts on `out` as `(who, seq)` until a stop message;
/// returns the errors of `get` it saw on the way (the first ten).
fn forward_until_stop((q, out, who): (Queue<Carried>, Queue<Carried>, u32)) -> Vec<String> {
    let mut errors = Vec::new();
    loop {
        match q.get_timeout(JOIN) {
            Ok((STOP, _, _)) => return errors,
            Ok((_, seq, _)) => out.put((who, seq, None)).expect("put"),
            Err(RecvTimeoutError::Failed(f)) if errors.len() < 10 => errors.push(f.to_string()),
            Err(RecvTimeoutError::Failed(_)) => {}
            Err(e) => panic!("surviving consumer: {e}"),
        }
    }
}

/// Consumers killed in the middle of `get`, [`kills`] times: each round a
/// producer child puts [`FILL`] numbered messages, a victim and a survivor
/// take them in tight loops and forward each to `out`; the victim is killed
/// after a random delay, the survivor takes the rest, then a stop message.
/// With `carriers`, every message carries a descriptor, so that the victim
/// also dies while it takes a message's socket part.
///
/// What may be lost: the one message the victim had taken and not yet
/// forwarded, that is at most one per kill: its `get` cut short either left
/// the message in `q` or took it with it; between `get` and the `put` on
/// `out`, or in a `put` on `out` cut short (never committed), it held it.
/// Nothing is duplicated, each consumer's share stays in order, and the
/// survivor's `get`s never fail.
fn consumer_killed_with(m: Method, carriers: bool) {
    let before = warm_baseline(m);
    {
        let what = if carriers {
            "consumer_killed_carriers"
        } else {
            "consumer_killed"
        };
        let mut rng = Rng::seeded(&format!("{m:?}: {what}"));
        let q = Queue::<Carried>::new().unwrap();
        let out = Queue::<Carried>::new().unwrap();
        let fill = if carriers { FILL_CARRIERS } else { FILL };
        let mut lost_in_all = 0;
        for round in 0..kills() {
            let mut producer =
                Kid::spawn(builder(m), put_carried, (q.clone(), round, fill, carriers));
            let (reader, writer) = common::pipe();
            let mut v = Kid::spawn(
                victim(m),
                forward_forever,
                (q.clone(), out.clone(), 0, Fd::from(writer)),
            );
            // The survivor starts once the victim has taken a message: on a
            // loaded machine it could otherwise take them all first.
            let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
            assert_eq!(line.expect("the victim never said ready"), "ready", "{m:?}");
            let mut s = Kid::spawn(builder(m), forward_until_stop, (q.clone(), out.clone(), 1));
            std::thread::sleep(Duration::from_micros(rng.below(10_000)));
            v.kill_and_reap("victim consumer");
            let killed = Instant::now();
            producer.finish("producer");
            q.put_timeout((STOP, 0, None), secs(1)).expect("stop");
            let errors = s.finish("surviving consumer");
            let after = killed.elapsed();
            assert!(
                errors.is_empty(),
                "{m:?}: {what} round {round}: the survivor's gets failed: {errors:?}"
            );
            assert!(
                after < secs(10),
                "{m:?}: round {round}: {after:?} to recover"
            );
            assert!(q.is_empty(), "{m:?}: round {round}: {} left", q.len());

            let mut hits = vec![0u8; fill as usize];
            let mut last = [None::<u32>; 2];
            let mut taken = [0u32; 2];
            loop {
                match out.try_get() {
                    Ok((who, seq, _)) => {
                        let w = who as usize;
                        assert!(
                            last[w].is_none_or(|l| l < seq),
                            "{m:?}: round {round}: consumer {who} got {seq} after {:?}",
                            last[w]
                        );
                        last[w] = Some(seq);
                        taken[w] += 1;
                        hits[seq as usize] += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(e) => panic!("{m:?}: round {round}: draining: {e}"),
                }
            }
            let lost: Vec<usize> = (0..fill as usize).filter(|&i| hits[i] == 0).collect();
            let dup: Vec<usize> = (0..fill as usize).filter(|&i| hits[i] > 1).collect();
            assert!(dup.is_empty(), "{m:?}: round {round}: duplicated {dup:?}");
            assert!(
                lost.len() <= 1,
                "{m:?}: {what} round {round}: {} lost for one kill: {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            );
            assert!(taken[0] >= 1, "{m:?}: round {round}: {taken:?}");
            lost_in_all += lost.len();
            probe(m, &q, round);
            probe(m, &out, round);
        }
        eprintln!(
            "{m:?}: {} consumers killed ({what}); {lost_in_all} messages lost with them",
            kills()
        );
    }
    before.assert_no_leaks(&format!("{m:?}: consumer killed"));
}

fn consumer_killed(m: Method) {
    consumer_killed_with(m, false);
}

fn consumer_killed_carriers(m: Method) {
    consumer_killed_with(m, true);
}

#[test]
fn producer_killed_forkserver() {
    channel_test("producer_killed", Method::ForkServer, producer_killed);
}

#[test]
fn producer_killed_spawn() {
    channel_test("producer_killed", Method::Spawn, producer_killed);
}

#[test]
fn producer_killed_fork() {
    channel_test("producer_killed", Method::Fork, producer_killed);
}

#[test]
fn producer_killed_carriers_forkserver() {
    channel_test(
        "producer_killed_carriers",
        Method::ForkServer,
        producer_killed_carriers,
    );
}

#[test]
fn producer_killed_carriers_spawn() {
    channel_test(
        "producer_killed_carriers",
        Method::Spawn,
        producer_killed_carriers,
    );
}

#[test]
fn producer_killed_carriers_fork() {
    channel_test(
        "producer_killed_carriers",
        Method::Fork,
        producer_killed_carriers,
    );
}

#[test]
fn consumer_killed_forkserver() {
    channel_test("consumer_killed", Method::ForkServer, consumer_killed);
}

#[test]
fn consumer_killed_spawn() {
    channel_test("consumer_killed", Method::Spawn, consumer_killed);
}

#[test]
fn consumer_killed_fork() {
    channel_test("consumer_killed", Method::Fork, consumer_killed);
}

// A consumer killed between taking a carrier record and receiving its
// frame from the socket: the record is consumed first, so the frame is an
// orphan (lower id) that the next consumer drops; only that one message is
// lost. (Before that order, every later carrier message failed.)

#[test]
fn consumer_killed_carriers_forkserver() {
    channel_test(
        "consumer_killed_carriers",
        Method::ForkServer,
        consumer_killed_carriers,
    );
}

#[test]
fn consumer_killed_carriers_spawn() {
    channel_test(
        "consumer_killed_carriers",
        Method::Spawn,
        consumer_killed_carriers,
    );
}

#[test]
fn consumer_killed_carriers_fork() {
    channel_test(
        "consumer_killed_carriers",
        Method::Fork,
        consumer_killed_carriers,
    );
}

/// Waits in `get` until killed; says "ready" first.
fn get_until_killed((q, ready): (Queue<u32>, Fd)) {
    say_ready(ready);
    let _ = q.get_timeout(JOIN);
}

/// The CPU time this process spent in `get_timeout(timeout_ms)` on an empty
/// queue, in microseconds (and whether it timed out).
fn idle_get_cpu((q, timeout_ms): (Queue<u32>, u64)) -> (bool, u64) {
    let cpu = || {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: plain system call filling a valid timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
    };
    let start = cpu();
    let timed_out = q.get_timeout(ms(timeout_ms)) == Err(RecvTimeoutError::Timeout);
    (timed_out, cpu() - start)
}

/// A consumer killed while it sleeps in `get` (the commonest way to stop an
/// idle worker) must not leave the queue believing someone still sleeps:
/// the next process that waits on the empty queue should sleep, not spin.
fn killed_sleeper(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<u32>::new().unwrap();
        let (reader, writer) = common::pipe();
        let mut v = Kid::spawn(victim(m), get_until_killed, (q.clone(), Fd::from(writer)));
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(
            line.expect("the sleeper never said ready"),
            "ready",
            "{m:?}"
        );
        // Past its spin, asleep in poll.
        std::thread::sleep(ms(100));
        v.kill_and_reap("sleeping consumer");
        for i in 0..20_000 {
            q.put(i).unwrap();
            assert_eq!(q.try_get(), Ok(i), "{m:?}");
        }
        let mut waiter = Kid::spawn(builder(m), idle_get_cpu, (q.clone(), 1000));
        let (timed_out, cpu_us) = waiter.finish("idle waiter");
        eprintln!("{m:?}: idle waiter used {cpu_us} µs of CPU");
        assert!(timed_out, "{m:?}");
        assert!(
            cpu_us < 300_000,
            "{m:?}: a get_timeout(1 s) on an empty queue used {} ms of CPU",
            cpu_us / 1000
        );
    }
    before.assert_no_leaks(&format!("{m:?}: killed sleeper"));
}

#[test]
fn killed_sleeper_forkserver() {
    channel_test("killed_sleeper", Method::ForkServer, killed_sleeper);
}

// ------------------------------------------- 5. put, exit, and nothing lost

/// Messages a child puts just before it exits.
const PARTING: u32 = 10_000;
/// Every this many, the parting message is large enough (over 1 MiB) to
/// travel as a shared-memory file beside the ring.
const PARTING_BIG_EVERY: u32 = 2_500;
/// The parting message that carries a descriptor.
const PARTING_FD_AT: u32 = 5_000;
const PARTING_WORDS: &[u8] = b"written by a child that has exited\n";

/// A parting message: its number, a payload, and maybe a descriptor.
type Parting = (u32, Vec<u8>, Option<Fd>);

fn parting_payload(i: u32) -> Vec<u8> {
    if i % PARTING_BIG_EVERY == PARTING_BIG_EVERY - 1 {
        big_message((1 << 20) + i as usize)
    } else {
        i.to_le_bytes().to_vec()
    }
}

/// Puts [`PARTING`] messages on each channel and returns at once.
fn put_and_exit((q, sq, conn): (Queue<Parting>, SimpleQueue<u32>, Connection<u32, ()>)) {
    for i in 0..PARTING {
        let fd = (i == PARTING_FD_AT).then(|| {
            let (reader, writer) = common::pipe();
            std::fs::File::from(writer)
                .write_all(PARTING_WORDS)
                .expect("write");
            Fd::from(reader)
        });
        q.put((i, parting_payload(i), fd)).expect("put");
        sq.put(i).expect("simple put");
        // 10,000 small messages fit in the pipe's 256 KiB ring: the child
        // never waits for the parent, who joins it before reading.
        conn.send(i).expect("send");
    }
}

fn put_then_exit(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<Parting>::new().unwrap();
        let sq = SimpleQueue::<u32>::new().unwrap();
        let (here, there) = Pipe::with_types::<(), u32>().unwrap();
        let mut child = Kid::spawn(builder(m), put_and_exit, (q.clone(), sq.clone(), there));
        // Join first: the child is gone before anything is read.
        child.finish("putter");
        assert_eq!(child.exitcode(), Some(ExitStatus::Code(0)), "{m:?}");
        assert_eq!(q.len(), PARTING as usize, "{m:?}");
        for i in 0..PARTING {
            // try_get: everything must be there already, nothing is in flight.
            let (n, payload, fd) = q
                .try_get()
                .unwrap_or_else(|e| panic!("{m:?}: message {i}: {e}"));
            assert_eq!(n, i, "{m:?}");
            assert!(
                payload == parting_payload(i),
                "{m:?}: payload of message {i}"
            );
            assert_eq!(fd.is_some(), i == PARTING_FD_AT, "{m:?}: message {i}");
            if let Some(fd) = fd {
                let mut words = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut words).unwrap();
                assert_eq!(words.as_bytes(), PARTING_WORDS, "{m:?}");
            }
            assert_eq!(sq.get(), Ok(i), "{m:?}: simple queue");
            assert_eq!(here.try_recv(), Ok(i), "{m:?}: pipe");
        }
        assert_eq!(q.try_get().map(|m| m.0), Err(TryRecvError::Empty), "{m:?}");
        assert!(sq.is_empty(), "{m:?}");
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: put then exit"));
}

#[test]
fn put_then_exit_forkserver() {
    channel_test("put_then_exit", Method::ForkServer, put_then_exit);
}

#[test]
fn put_then_exit_spawn() {
    channel_test("put_then_exit", Method::Spawn, put_then_exit);
}

#[test]
fn put_then_exit_fork() {
    channel_test("put_then_exit", Method::Fork, put_then_exit);
}

/// Messages carrying a descriptor that a child leaves waiting in an
/// unbounded queue: more than fit in the queue's socket buffer (about 280
/// with Linux's default 208 KiB), fewer than the usual 1024-descriptor limit
/// on descriptors in flight.
const HANDLE_BACKLOG: u32 = 600;

/// Puts [`HANDLE_BACKLOG`] messages each carrying a descriptor, each with a
/// short deadline: how many went in, and the first failure, if any.
fn put_handles(q: Queue<(u32, Fd)>) -> (u32, Option<String>) {
    for i in 0..HANDLE_BACKLOG {
        let fd = Fd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        match q.put_timeout((i, fd), ms(500)) {
            Ok(()) => {}
            Err(PutTimeoutError::Timeout(_)) => return (i, None),
            Err(e) => return (i, Some(e.to_string())),
        }
    }
    (HANDLE_BACKLOG, None)
}

/// Messages that carry descriptors wait in the queue's socket until a
/// consumer takes them, and the socket holds only so many (its send buffer,
/// `net.core.wmem_max`: thousands where that is 4 MiB, ~280 with Linux's
/// 208 KiB default). Past that, `put_timeout` times out (never blocks beyond
/// its deadline, never holds the queue's lock while it waits), and
/// everything put before is there: a child puts until full and exits; the
/// parent joins it first, then takes them all.
fn handle_backlog(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<(u32, Fd)>::new().unwrap();
        let mut child = Kid::spawn(builder(m), put_handles, q.clone());
        let put = match child.join_timeout(secs(20)) {
            Ok((n, None)) => n,
            Ok((i, Some(e))) => panic!("{m:?}: put_timeout #{i} failed other than by timeout: {e}"),
            Err(e) if e.is_timeout() => panic!(
                "{m:?}: the producer is stuck in put_timeout(500 ms) after {} messages carrying a descriptor",
                q.len()
            ),
            Err(e) => panic!("{m:?}: producer: {e}"),
        };
        assert!(
            put >= 100,
            "{m:?}: only {put} descriptor-carrying messages fit"
        );
        assert_eq!(q.len(), put as usize, "{m:?}");
        for i in 0..put {
            let (n, _fd) = q
                .try_get()
                .unwrap_or_else(|e| panic!("{m:?}: message {i}: {e}"));
            assert_eq!(n, i, "{m:?}");
        }
        assert!(q.is_empty(), "{m:?}");
        // Room again once taken.
        let fd = Fd::from(std::fs::File::open("/dev/null").unwrap());
        q.put_timeout((7, fd), secs(5)).unwrap();
        assert_eq!(q.get_timeout(secs(5)).unwrap().0, 7);
    }
    before.assert_no_leaks(&format!("{m:?}: handle backlog"));
}

#[test]
fn handle_backlog_forkserver() {
    channel_test("handle_backlog", Method::ForkServer, handle_backlog);
}

// ----------------------------------------- 6. bounded queue, back-pressure

/// Generous: a deadline may be overshot by this much on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn put_range((q, n): (Queue<u32>, u32)) {
    for i in 0..n {
        q.put(i).expect("put");
    }
}

fn take_one_after((q, pause_ms): (Queue<u32>, u64)) -> u32 {
    std::thread::sleep(ms(pause_ms));
    q.get_timeout(JOIN).expect("get")
}

/// `get_timeout(timeout_ms)` in a child: what it got (`None`: timed out)
/// and how long it took, in microseconds.
fn timed_get((q, timeout_ms): (Queue<u32>, u64)) -> (Option<u32>, u64) {
    let t = Instant::now();
    let got = match q.get_timeout(ms(timeout_ms)) {
        Ok(v) => Some(v),
        Err(RecvTimeoutError::Timeout) => None,
        Err(e) => panic!("get_timeout: {e}"),
    };
    (got, t.elapsed().as_micros() as u64)
}

fn bounded_backpressure(m: Method) {
    let before = warm_baseline(m);
    {
        // A producer blocks at the bound, and is woken at once by a get.
        let q = Queue::<u32>::bounded(4).unwrap();
        let mut child = Kid::spawn(builder(m), put_range, (q.clone(), 12));
        assert!(eventually(JOIN, || q.is_full()), "{m:?}: never filled");
        std::thread::sleep(ms(300));
        assert_eq!(q.len(), 4, "{m:?}: the bound holds");
        assert!(child.is_alive(), "{m:?}: the producer waits");
        let mut slowest = Duration::ZERO;
        for i in 0..12 {
            assert_eq!(q.get_timeout(JOIN), Ok(i), "{m:?}");
            if i + 4 < 12 {
                let t = Instant::now();
                assert!(
                    eventually(secs(5), || q.is_full()),
                    "{m:?}: producer not woken after get {i}"
                );
                slowest = slowest.max(t.elapsed());
            }
        }
        child.finish("bounded producer");
        assert!(
            slowest < secs(1),
            "{m:?}: a waiting producer took {slowest:?} to refill"
        );
        assert!(q.is_empty(), "{m:?}");

        // put_timeout on a full queue waits for its deadline, then gives the
        // value back.
        for i in 0..4 {
            q.try_put(i).unwrap();
        }
        let t = Instant::now();
        assert_eq!(
            q.put_timeout(99, ms(300)),
            Err(PutTimeoutError::Timeout(99)),
            "{m:?}"
        );
        let e = t.elapsed();
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: put_timeout(300 ms) took {e:?}"
        );
        assert_eq!(q.try_put(98), Err(TryPutError::Full(98)), "{m:?}");

        // ... and succeeds when another process makes room in time.
        let t = Instant::now();
        let mut taker = Kid::spawn(builder(m), take_one_after, (q.clone(), 200));
        assert_eq!(q.put_timeout(4, JOIN), Ok(()), "{m:?}");
        let e = t.elapsed();
        assert!(e >= ms(200) && e < JOIN, "{m:?}: put_timeout waited {e:?}");
        assert_eq!(taker.finish("taker"), 0, "{m:?}");
        for i in 1..=4 {
            assert_eq!(q.try_get(), Ok(i), "{m:?}");
        }

        // get_timeout in a child: the deadline on an empty queue ...
        let mut getter = Kid::spawn(builder(m), timed_get, (q.clone(), 300));
        let (got, micros) = getter.finish("timed getter");
        let e = Duration::from_micros(micros);
        assert_eq!(got, None, "{m:?}");
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: get_timeout(300 ms) took {e:?}"
        );
        // ... and a put from another process wakes it.
        let mut getter = Kid::spawn(builder(m), timed_get, (q.clone(), JOIN.as_millis() as u64));
        std::thread::sleep(ms(200));
        q.put(7).unwrap();
        let (got, micros) = getter.finish("waiting getter");
        assert_eq!(got, Some(7), "{m:?}");
        assert!(
            Duration::from_micros(micros) < SLACK,
            "{m:?}: woken after {micros} µs"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: bounded queue"));
}

#[test]
fn bounded_backpressure_forkserver() {
    channel_test(
        "bounded_backpressure",
        Method::ForkServer,
        bounded_backpressure,
    );
}

#[test]
fn bounded_backpressure_spawn() {
    channel_test("bounded_backpressure", Method::Spawn, bounded_backpressure);
}

#[test]
fn bounded_backpressure_fork() {
    channel_test("bounded_backpressure", Method::Fork, bounded_backpressure);
}

// --------------------------------------------------- 7. JoinableQueue

/// Squares tasks onto `out`, marking each done after its result is out;
/// stops at `None` (also a task). Returns how many it squared.
fn square_tasks((q, out): (JoinableQueue<Option<u32>>, Queue<u64>)) -> u32 {
    let mut n = 0;
    loop {
        match q.get_timeout(JOIN).expect("get") {
            Some(x) => {
                out.put(u64::from(x) * u64::from(x)).expect("put");
                q.task_done().expect("task_done");
                n += 1;
            }
            None => {
                q.task_done().expect("task_done");
                return n;
            }
        }
    }
}

/// Takes one task, says "ready", and never marks it done.
fn take_and_hang((q, ready): (JoinableQueue<Option<u32>>, Fd)) {
    q.get_timeout(JOIN).expect("get");
    say_ready(ready);
    loop {
        std::thread::sleep(secs(1));
    }
}

const TASKS: u32 = 300;

fn joinable(m: Method) {
    let before = warm_baseline(m);
    {
        let q = JoinableQueue::<Option<u32>>::new().unwrap();
        let out = Queue::<u64>::new().unwrap();
        let mut workers: Vec<_> = (0..3)
            .map(|_| Kid::spawn(builder(m), square_tasks, (q.clone(), out.clone())))
            .collect();
        for x in 0..TASKS {
            q.put(Some(x)).unwrap();
        }
        q.join_timeout(JOIN)
            .unwrap_or_else(|e| panic!("{m:?}: join: {e}"));
        // Every task was marked done after its result was put: all are there.
        assert_eq!(out.len(), TASKS as usize, "{m:?}: join returned early");
        let mut sum = 0;
        while let Ok(r) = out.try_get() {
            sum += r;
        }
        let n = u64::from(TASKS);
        assert_eq!(sum, (n - 1) * n * (2 * n - 1) / 6, "{m:?}: sum of squares");
        for _ in &workers {
            q.put(None).unwrap();
        }
        let done: u32 = workers.iter_mut().map(|w| w.finish("worker")).sum();
        assert_eq!(done, TASKS, "{m:?}");
        q.join_timeout(JOIN).unwrap();
        assert!(q.is_empty(), "{m:?}");

        // A worker killed between get and task_done: join times out.
        let q = JoinableQueue::<Option<u32>>::new().unwrap();
        q.put(Some(1)).unwrap();
        let (reader, writer) = common::pipe();
        let mut v = Kid::spawn(victim(m), take_and_hang, (q.clone(), Fd::from(writer)));
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(line.expect("the worker never said ready"), "ready", "{m:?}");
        v.kill_and_reap("worker");
        assert!(q.is_empty(), "{m:?}");
        let t = Instant::now();
        let err = q.join_timeout(ms(300)).unwrap_err();
        let e = t.elapsed();
        assert!(err.is_timeout(), "{m:?}: {err}");
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: join_timeout(300 ms) took {e:?}"
        );
        // The parent can account for the lost task itself.
        q.task_done().unwrap();
        q.join_timeout(secs(1)).unwrap();
        assert!(
            q.task_done().unwrap_err().is_misuse(),
            "{m:?}: one task_done too many"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: joinable queue"));
}

#[test]
fn joinable_forkserver() {
    channel_test("joinable", Method::ForkServer, joinable);
}

#[test]
fn joinable_spawn() {
    channel_test("joinable", Method::Spawn, joinable);
}

#[test]
fn joinable_fork() {
    channel_test("joinable", Method::Fork, joinable);
}

// ------------------------------------------------------------------ 8. wait

/// Waits for a go, sends 7, waits for a second go, returns (closing `conn`).
fn send_on_go((go, conn): (Queue<()>, Connection<u32>)) {
    go.get_timeout(JOIN).expect("go");
    conn.send(7).expect("send");
    go.get_timeout(JOIN).expect("second go");
}

/// Waits for a go, puts 8, waits for a second go, returns.
fn put_on_go((go, q): (Queue<()>, Queue<u32>)) {
    go.get_timeout(JOIN).expect("go");
    q.put(8).expect("put");
    go.get_timeout(JOIN).expect("second go");
}

/// Waits for a go, then returns.
fn exit_on_go(go: Queue<()>) {
    go.get_timeout(JOIN).expect("go");
}

fn wait_across(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<u32>::new().unwrap();
        let gos: Vec<Queue<()>> = (0..3).map(|_| Queue::new().unwrap()).collect();
        // The pipe is made after the other children started: a Fork child
        // inherits every descriptor of its parent, and one holding a copy of
        // `there` would keep `here` from seeing end-of-file.
        let mut putter = Kid::spawn(builder(m), put_on_go, (gos[1].clone(), q.clone()));
        let mut exiter = Kid::spawn(builder(m), exit_on_go, gos[2].clone());
        let (here, there) = Pipe::new::<u32>().unwrap();
        let mut sender = Kid::spawn(builder(m), send_on_go, (gos[0].clone(), there));

        let wait = |objects: &[&dyn multiproc::Waitable], timeout| {
            multiproc::wait(objects, Some(timeout)).unwrap_or_else(|e| panic!("{m:?}: wait: {e}"))
        };
        let t = Instant::now();
        let ready = wait(&[&here, &q, &exiter.sentinel()], ms(200));
        let e = t.elapsed();
        assert_eq!(ready, Vec::<usize>::new(), "{m:?}: nothing is ready yet");
        assert!(
            e >= ms(200) && e < ms(200) + SLACK,
            "{m:?}: wait(200 ms) took {e:?}"
        );

        // Each becomes ready in turn, made so by another process.
        gos[0].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![0],
            "{m:?}: connection"
        );
        assert_eq!(here.try_recv(), Ok(7), "{m:?}");
        gos[1].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![1],
            "{m:?}: queue"
        );
        assert_eq!(q.try_get(), Ok(8), "{m:?}");
        gos[2].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![2],
            "{m:?}: sentinel"
        );
        exiter.finish("exiter");
        // A peer's end-of-file counts as ready.
        gos[0].put(()).unwrap();
        assert_eq!(wait(&[&here, &q], JOIN), vec![0], "{m:?}: end-of-file");
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
        sender.finish("sender");
        // Several at once: all of them are reported.
        gos[1].put(()).unwrap();
        putter.finish("putter");
        q.put(9).unwrap();
        assert_eq!(
            wait(&[&here, &q, &putter.sentinel()], JOIN),
            vec![0, 1, 2],
            "{m:?}: all"
        );
        assert_eq!(q.try_get(), Ok(9), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: wait"));
}

#[test]
fn wait_across_forkserver() {
    channel_test("wait_across", Method::ForkServer, wait_across);
}

#[test]
fn wait_across_spawn() {
    channel_test("wait_across", Method::Spawn, wait_across);
}

#[test]
fn wait_across_fork() {
    channel_test("wait_across", Method::Fork, wait_across);
}
