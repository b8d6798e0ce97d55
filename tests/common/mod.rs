//! Helpers shared by the process-level scenario tests: durations, start
//! methods (including Fork driven from inside a fork-server child), leak
//! probes (/proc/self/fd, zombies, /dev/shm), pidfds and re-running the test
//! binary itself.

#![allow(dead_code)]

use multiproc::{Process, ProcessBuilder, StartMethod};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{self, Read};
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `n` milliseconds.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `n` seconds.
pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The deadline every join of the suite uses: generous, so that a slow
/// machine passes, but finite, so that a regression fails instead of hanging.
pub(crate) const JOIN: Duration = Duration::from_secs(30);

/// A start method that travels to a child (multiproc's `StartMethod` has no
/// serde impls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Method {
    ForkServer,
    Spawn,
    /// Fork: only valid in a single-threaded process; the tests run it inside
    /// a fork-server child (see [`run_with`]).
    Fork,
}

impl Method {
    pub(crate) const ALL: [Method; 3] = [Method::ForkServer, Method::Spawn, Method::Fork];

    pub(crate) fn start_method(self) -> StartMethod {
        match self {
            Method::ForkServer => StartMethod::ForkServer,
            Method::Spawn => StartMethod::Spawn,
            Method::Fork => StartMethod::Fork,
        }
    }
}

/// Runs `scenario(method)`. For [`Method::Fork`] the scenario runs inside a
/// fork-server child (single-threaded, so it may fork): a failed assertion
/// there comes back as the child's panic and fails the test with its message
/// and location.
pub(crate) fn run_with(method: Method, scenario: fn(Method)) {
    if method != Method::Fork {
        return scenario(method);
    }
    let mut driver = Process::builder()
        .name("fork-driver")
        .start_method(StartMethod::ForkServer)
        .spawn(scenario, Method::Fork)
        .expect("starting the fork driver");
    if let Err(e) = driver.join_timeout(Duration::from_secs(120)) {
        if e.is_timeout() {
            let _ = driver.kill();
            let _ = driver.join_timeout(JOIN);
        }
        panic!("the Fork scenario failed inside its driver child: {e}");
    }
}

/// Makes a crash of the calling process leave no core file (and take no time
/// writing one).
pub(crate) fn no_core_dumps() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call on a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// The open descriptors of this process with what they point at (for
/// messages). The descriptor of the directory listing itself is left out.
pub(crate) fn open_fds() -> Vec<(i32, String)> {
    let dir = std::fs::read_dir("/proc/self/fd").expect("listing /proc/self/fd");
    let mut fds: Vec<(i32, String)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let fd: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    fds
}

/// How many descriptors this process has open.
pub(crate) fn fd_count() -> usize {
    open_fds().len()
}

/// `(state, ppid)` of a process, from `/proc/PID/stat`.
pub(crate) fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The zombie children of process `parent`.
pub(crate) fn zombies_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| matches!(proc_state(*pid), Some(('Z', pp)) if pp == parent))
        .collect()
}

/// The zombie children of this process.
pub(crate) fn my_zombies() -> Vec<i32> {
    zombies_of(std::process::id() as i32)
}

/// The names in `/dev/shm`.
pub(crate) fn shm_entries() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A pidfd for `pid`.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain system call; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A pipe (close-on-exec): `(reader, writer)`. `std::io::pipe` is newer
/// than the crate's minimum Rust version.
pub(crate) fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", io::Error::last_os_error());
    // SAFETY: pipe2 succeeded: both descriptors are new and ours alone.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Polls `fds` for reading until all are readable or `deadline` passes;
/// returns the indices of those that never became readable.
pub(crate) fn wait_all_readable(fds: &[BorrowedFd<'_>], deadline: Instant) -> Vec<usize> {
    let mut pending: Vec<usize> = (0..fds.len()).collect();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&i| libc::pollfd {
                fd: fds[i].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `pfds` is a valid array of `pfds.len()` entries.
        let n = unsafe {
            libc::poll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                left.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        let before = pending.clone();
        pending = before
            .iter()
            .zip(&pfds)
            .filter(|(_, p)| p.revents == 0)
            .map(|(&i, _)| i)
            .collect();
        if n == 0 && left.is_zero() {
            break;
        }
    }
    pending
}

/// Whether a process with this pid exists (zombies included).
pub(crate) fn pid_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() != libc::ESRCH }
}

/// Reads one `\n`-terminated line from `fd`, waiting at most until `deadline`.
pub(crate) fn read_line_until(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<String> {
    let mut file = std::fs::File::from(fd.try_clone_to_owned()?);
    let mut line = Vec::new();
    loop {
        if let Some(end) = line.iter().position(|b| *b == b'\n') {
            line.truncate(end);
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        if !wait_all_readable(&[file.as_fd()], deadline).is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no full line before the deadline (got {:?})",
                    String::from_utf8_lossy(&line)
                ),
            ));
        }
        let mut buf = [0u8; 4096];
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "end of file before a full line (got {:?})",
                    String::from_utf8_lossy(&line)
                ),
            ));
        }
        line.extend_from_slice(&buf[..n]);
    }
}

/// A fresh path (not created) under cargo's per-target temporary directory.
pub(crate) fn tmp_path(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// The result of running one test of this binary in a fresh process.
#[derive(Debug)]
pub(crate) struct Rerun {
    pub(crate) status: std::process::ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the (ignored) test `name` of this test binary in a new process with
/// extra environment `envs`, killing it if it runs past `deadline`.
pub(crate) fn rerun_self(name: &str, envs: &[(&str, &str)], deadline: Duration) -> Rerun {
    let out = tmp_path(&format!("{name}.stdout"));
    let err = tmp_path(&format!("{name}.stderr"));
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .stdin(Stdio::null())
    // Files, not pipes: a child left behind by a regression would hold a
    // pipe open and make reading it hang.
    .stdout(std::fs::File::create(&out).expect("stdout file"))
    .stderr(std::fs::File::create(&err).expect("stderr file"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("re-running the test binary");
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the inner test {name} ran past {deadline:?}; its stdout:\n{}\nits stderr:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(ms(10));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&err);
    Rerun {
        status,
        stdout,
        stderr,
    }
}

/// A snapshot of this process's leak-relevant state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) fds: Vec<(i32, String)>,
    pub(crate) shm: BTreeSet<String>,
}

impl Snapshot {
    pub(crate) fn take() -> Snapshot {
        Snapshot {
            fds: open_fds(),
            shm: shm_entries(),
        }
    }

    /// Asserts that nothing leaked since `self` was taken: no zombie child,
    /// no more descriptors than then, nothing new in /dev/shm.
    pub(crate) fn assert_no_leaks(&self, context: &str) {
        let now = Snapshot::take();
        let zombies = my_zombies();
        let new_shm: Vec<&String> = now.shm.difference(&self.shm).collect();
        assert!(
            zombies.is_empty() && now.fds.len() <= self.fds.len() && new_shm.is_empty(),
            "{context}: leak detected\n zombies of ours: {zombies:?}\n fds before ({}): {:?}\n fds after ({}): {:?}\n new in /dev/shm: {new_shm:?}",
            self.fds.len(),
            self.fds,
            now.fds.len(),
            now.fds
        );
    }
}

/// A child that is killed and reaped if the scenario lets go of it before
/// joining it (a failed assertion, an early return).
pub(crate) struct Kid<R: Serialize + DeserializeOwned>(pub(crate) Process<R>);

impl<R: Serialize + DeserializeOwned> Kid<R> {
    pub(crate) fn spawn<A: Serialize + DeserializeOwned>(
        b: ProcessBuilder,
        f: fn(A) -> R,
        arg: A,
    ) -> Self {
        Kid(b.spawn(f, arg).expect("spawning a child"))
    }

    /// Joins within [`JOIN`], failing the test with `what` otherwise.
    pub(crate) fn finish(&mut self, what: &str) -> R {
        match self.0.join_timeout(JOIN) {
            Ok(r) => r,
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Joins a child that was killed, checking that the kill ended it.
    pub(crate) fn reap_killed(&mut self, what: &str) {
        match self.0.join_timeout(JOIN) {
            Err(e) if e.signal() == Some(libc::SIGKILL) => {}
            Err(e) => panic!("{what}: expected death by SIGKILL, got: {e}"),
            Ok(_) => panic!("{what}: expected death by SIGKILL, but it returned"),
        }
    }

    /// Kills the child and checks that the kill is what ended it.
    pub(crate) fn kill_and_reap(&mut self, what: &str) {
        self.0.kill().expect("kill");
        self.reap_killed(what);
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

/// Aborts the whole test binary if a scenario outlives `limit`: the last
/// resort for the calls that have no deadline of their own (an `acquire`
/// that a regression leaves blocked), so that such a regression fails CI
/// instead of hanging it. Dropping it calls it off.
pub(crate) struct Watchdog {
    _cancel: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    pub(crate) fn start(limit: Duration, what: String) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("{what}: still running after {limit:?}: aborting the test binary");
                std::process::abort();
            }
        });
        Watchdog { _cancel: tx }
    }
}

/// Serialized as the `S` inside `Sent`, deserialized as an `R` (`Got`): a
/// value sent as one type and received as another.
#[derive(Debug)]
pub(crate) enum Swap<S, R> {
    Sent(S),
    Got(R),
}

impl<S: Serialize, R: Serialize> Serialize for Swap<S, R> {
    fn serialize<Z: serde::Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        match self {
            Swap::Sent(x) => x.serialize(s),
            Swap::Got(x) => x.serialize(s),
        }
    }
}

impl<'de, S, R: Deserialize<'de>> Deserialize<'de> for Swap<S, R> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        R::deserialize(d).map(Swap::Got)
    }
}

/// The scheduler state of every thread of process `pid` (`R`, `S`...).
pub(crate) fn thread_states(pid: u32) -> Vec<char> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| state_of(&stat))
        .collect()
}

/// The state field of a `/proc/.../stat` line.
fn state_of(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// The scheduler state of thread `tid` of this process.
pub(crate) fn my_thread_state(tid: i32) -> Option<char> {
    state_of(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// Waits until `asleep()` has held for `polls` polls in a row, 2 ms apart:
/// the waiter it watches has gone to sleep in the call it was about to
/// make (past any spin before the sleep).
pub(crate) fn settle_asleep(what: &str, polls: u32, mut asleep: impl FnMut() -> bool) {
    let deadline = Instant::now() + JOIN;
    let mut in_a_row = 0;
    while in_a_row < polls {
        assert!(Instant::now() < deadline, "{what}: never went to sleep");
        in_a_row = if asleep() { in_a_row + 1 } else { 0 };
        std::thread::sleep(ms(2));
    }
}

/// Waits until every thread of child `pid` sleeps (`polls` as in
/// [`settle_asleep`]).
pub(crate) fn child_asleep(what: &str, polls: u32, pid: u32) {
    settle_asleep(what, polls, || {
        let states = thread_states(pid);
        !states.is_empty() && states.iter().all(|s| *s == 'S')
    });
}

/// Waits until thread `tid` of this process sleeps.
pub(crate) fn thread_asleep(what: &str, polls: u32, tid: i32) {
    settle_asleep(what, polls, || my_thread_state(tid) == Some('S'));
}

/// This thread's kernel id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Tests of one binary that watch process-wide state (descriptors,
/// children) take turns through this lock.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the turn of [`SERIAL`] (a failed test's poison is ignored).
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A daemon child started with `m`.
pub(crate) fn builder(m: StartMethod) -> ProcessBuilder {
    Process::builder().start_method(m).daemon(true)
}

/// As [`builder`], for a child that is going to be killed: what it might
/// print on the way goes nowhere.
pub(crate) fn victim(m: StartMethod) -> ProcessBuilder {
    builder(m).stderr(multiproc::Stdio::null())
}

/// A trivial child function.
pub(crate) fn double(x: u32) -> u32 {
    x * 2
}
