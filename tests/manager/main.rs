//! Managers at the process level: a server process holding shared objects,
//! used through proxies by many processes, and what happens when any of
//! them misbehaves or dies. The doctests cover each proxy's methods once;
//! here the scenarios use real processes, raw sockets and `SIGKILL`.
//!
//! - `auth`: a wrong authkey is refused (and the server keeps serving); a
//!   peer that skips the handshake never reaches an object.
//! - `garbage`: raw bytes at the server, before and after the handshake
//!   (oversized and truncated frames, random bytes, requests that decode
//!   but make no sense): an error answer or a closed connection, and the
//!   server goes on serving.
//! - `concurrency`: 50 clients (10 processes × 5 threads) mixing every
//!   kind of object; exact totals afterwards.
//! - `server_death`: the server `SIGKILL`ed under blocked clients: every
//!   call fails promptly, none hangs.
//! - `client_death`: clients `SIGKILL`ed in a `get`, holding a lock and
//!   waiting for one: the item is not lost, the lock comes back marked
//!   (only when its holder died).
//! - `lifetime`: the server ends with its `Manager`, and with its owner
//!   process when that is killed.
//! - `travel`: proxies as spawn arguments, through a `Pipe`, a `Queue` and
//!   a `Channel`, and across a `fork`; a proxy received as the wrong type
//!   is a decode error.
//! - `remote`: TCP with an explicit authkey and separate clients; a Unix
//!   socket path, removed at shutdown; `connect` to a stopped server.
//! - `registered`: `Managed` types: panics, unregistered and mismatched
//!   types, the refused `Fork` start method.
//! - `methods`: the basic dict scenario with each start method; values
//!   larger than a pipe's ring, and big batches, locally and over TCP.
//!
//! `wire` mirrors the manager's private protocol types (postcard encodes
//! by shape, so a mirror with the same shape produces the same bytes) and
//! speaks the authkey handshake by hand, for the tests that talk to the
//! server without a proxy.
//!
//! Deadlines: every wait that has a timeout form uses it; calls that have
//! none (`QueueProxy::get`, `LockProxy::acquire`) run on threads whose
//! results are awaited with a deadline ([`within`]), and a [`Watchdog`]
//! aborts the binary if a scenario still runs after [`WATCHDOG`]. The
//! fault scenarios end with a leak check of the test process (no zombie
//! child, no more descriptors than before, nothing new in /dev/shm); the
//! tests are serialized by a mutex because those checks are process-wide.
//!
//! Servers print the panics of the `registered` scenarios on stderr.

mod auth;
mod client_death;
#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod garbage;
mod lifetime;
mod methods;
mod registered;
mod remote;
mod review;
mod server_death;
mod travel;
mod wire;

use common::{
    JOIN, Kid, Snapshot, Watchdog, builder, double, gettid, ms, pid_exists, secs, serial, victim,
};
use multiproc::manager::Managed;
use multiproc::{Error, Manager, Process, StartMethod};
use serde::{Deserialize, Serialize};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long a scenario may run before the watchdog aborts the binary.
const WATCHDOG: Duration = Duration::from_secs(60);

/// How soon a call must fail once the server is gone, or a blocked call
/// return once what it waits for has happened.
const PROMPT: Duration = Duration::from_secs(2);

/// How soon a server must be gone (reaped: not even a zombie) once its
/// owner has dropped it or died.
const GONE_WITHIN: Duration = Duration::from_secs(1);

/// One spawn with each method, once per binary, so that the fork server
/// (whose descriptors persist) is in every baseline.
fn warm_up() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        for m in [StartMethod::ForkServer, StartMethod::Spawn] {
            let mut p = Kid::spawn(builder(m), double, 21);
            assert_eq!(p.finish("warm-up"), 42, "{m:?}: warm-up");
        }
    });
}

/// Runs `scenario` under the suite's mutex and a [`Watchdog`], and prints
/// how long it took.
fn manager_test(name: &str, scenario: impl FnOnce()) {
    let _guard = serial();
    let _watchdog = Watchdog::start(WATCHDOG, name.to_owned());
    warm_up();
    let started = Instant::now();
    scenario();
    eprintln!("{name}: {:?}", started.elapsed());
}

/// As [`manager_test`], with a leak check of the test process around the
/// scenario (which must drop every manager and proxy it made).
fn fault_test(name: &str, scenario: impl FnOnce()) {
    manager_test(name, || {
        let before = Snapshot::take();
        scenario();
        assert_no_leaks(&before, name);
    });
}

/// [`Snapshot::assert_no_leaks`], except for POSIX named semaphores in
/// /dev/shm (`sem.*`), which multiproc never creates and other programs on
/// the machine do. Descriptors are given a moment: a server thread's last
/// close may trail the reply a client has seen.
fn assert_no_leaks(before: &Snapshot, name: &str) {
    let deadline = Instant::now() + secs(2);
    loop {
        let now = Snapshot::take();
        let zombies = common::my_zombies();
        let new_shm: Vec<&String> = now
            .shm
            .difference(&before.shm)
            .filter(|n| !n.starts_with("sem."))
            .collect();
        let clean = zombies.is_empty() && now.fds.len() <= before.fds.len() && new_shm.is_empty();
        if clean {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: leak detected\n zombies of ours: {zombies:?}\n fds before ({}): {:?}\n fds after ({}): {:?}\n new in /dev/shm: {new_shm:?}",
            before.fds.len(),
            before.fds,
            now.fds.len(),
            now.fds
        );
        std::thread::sleep(ms(20));
    }
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a
/// call that hangs fails the test (naming `what`) instead of stalling it.
/// Returns the result and how long it took.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = Instant::now();
    let t = std::thread::spawn(move || {
        let r = f();
        let _ = tx.send((r, started.elapsed()));
    });
    match rx.recv_timeout(limit) {
        Ok(r) => {
            t.join().expect("the thread of `within`");
            r
        }
        Err(_) => panic!("{what}: did not return within {limit:?}"),
    }
}

/// Whether `e` says the server is gone: disconnected, or an OS error
/// connecting to where it was.
fn is_gone(e: &Error) -> bool {
    e.is_disconnected() || e.io_error().is_some()
}

/// Asserts that `r` failed because the server is gone.
#[track_caller]
fn assert_gone<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(e) if is_gone(&e) => {}
        Err(e) => panic!("{what}: expected a disconnection, got another error: {e} ({e:?})"),
        Ok(v) => panic!("{what}: expected a disconnection, got Ok({v:?})"),
    }
}

/// Waits until process `pid` no longer exists (zombies count as existing);
/// how long that took, or `None` if it still existed after `limit`.
fn gone_within(pid: u32, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if !pid_exists(pid as i32) {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        std::thread::sleep(ms(2));
    }
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    matches!(common::proc_state(pid as i32), Some((s, _)) if s != 'Z')
}

/// The server's pid (of a manager this process started).
fn server_pid(m: &Manager) -> u32 {
    m.pid().expect("a started manager has a server pid")
}

/// `SIGKILL` for process `pid`.
fn sigkill(pid: u32) {
    // SAFETY: plain system call.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// Sleeps until killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(secs(1));
    }
}

/// Waits until every thread of child `pid` sleeps (ten polls: a proxy
/// call spins briefly, then sleeps until its answer).
fn child_asleep(what: &str, pid: u32) {
    common::child_asleep(what, 10, pid);
}

/// Waits until thread `tid` of this process sleeps.
fn thread_asleep(what: &str, tid: i32) {
    common::thread_asleep(what, 10, tid);
}

/// A blocking call started on a thread of this process, known to be asleep
/// in the server's wait when [`Blocked::start`] returns.
struct Blocked<T> {
    what: String,
    rx: std::sync::mpsc::Receiver<(T, Instant)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Blocked<T> {
    fn start(what: &str, f: impl FnOnce() -> T + Send + 'static) -> Blocked<T> {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            tid_tx.send(gettid()).expect("sending the tid");
            let r = f();
            let _ = tx.send((r, Instant::now()));
        });
        let tid = tid_rx.recv_timeout(JOIN).expect("the blocked thread's tid");
        thread_asleep(what, tid);
        Blocked {
            what: what.to_owned(),
            rx,
            thread: Some(thread),
        }
    }

    /// Whether the call has returned already.
    fn returned(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The call's result, which must come within `limit` of `since`; and
    /// how long after `since` it came.
    fn outcome(mut self, since: Instant, limit: Duration) -> (T, Duration) {
        let left = (since + limit).saturating_duration_since(Instant::now());
        let (r, at) = self
            .rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{}: still blocked {limit:?} later", self.what));
        if let Some(t) = self.thread.take() {
            t.join().expect("the blocked thread");
        }
        (r, at.saturating_duration_since(since))
    }
}

// ------------------------------------------------------------ registered types

/// What a [`Counter`] is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum CounterOp {
    Add(u64),
    Get,
    /// Adds 1000, then panics with the message.
    Panic(String),
}

/// A registered type: a counter with an `Add` op, and a way to panic.
struct Counter(u64);

impl Managed for Counter {
    const TYPE_ID: &'static str = "tests.Counter";
    type Init = u64;
    type Request = CounterOp;
    type Response = u64;

    fn new(start: u64) -> Counter {
        Counter(start)
    }

    fn handle(&mut self, op: CounterOp) -> u64 {
        match op {
            CounterOp::Add(n) => self.0 += n,
            CounterOp::Get => {}
            CounterOp::Panic(message) => {
                self.0 += 1000;
                panic!("{message}");
            }
        }
        self.0
    }
}

/// A manager with [`Counter`] registered, started with `m`.
fn counter_manager(m: StartMethod) -> Manager {
    Manager::builder()
        .register::<Counter>()
        .start_method(m)
        .start()
        .unwrap_or_else(|e| panic!("cannot start a {m:?} manager: {e}"))
}
