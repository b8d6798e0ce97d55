//! [`SharedMemory`] between real processes: anonymous segments passed to
//! children (as arguments, through queues and pipes), named segments opened
//! by children that get only the name, and the lifetime of names: gone with
//! the last owner, whether dropped or `SIGKILL`ed, with the keeper process
//! exited, nothing left in `/proc/net/unix` or `/dev/shm`.
//!
//! Every wait has a deadline, and a watchdog aborts the binary if a test
//! outlives [`WATCHDOG`]. The leak checks measure process-wide state, so the
//! tests are serialized by a mutex.

mod common;
#[path = "shared_memory/raw.rs"]
mod raw;

use common::{JOIN, Snapshot, ms, pidfd_open, secs, wait_all_readable};
use multiproc::{Connection, Pipe, Process, ProcessBuilder, Queue, SharedMemory, StartMethod};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// How long one test may run before the watchdog aborts the binary.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Serializes the tests, warms the fork server up (its descriptors
/// persist), and arms a watchdog; returns what the leak check compares to.
fn begin(what: &'static str) -> (MutexGuard<'static, ()>, Watchdog, Snapshot) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let watchdog = Watchdog::start(what);
    let mut warm = Process::spawn(double, 21).expect("warm-up spawn");
    assert_eq!(warm.join_timeout(JOIN).expect("warm-up join"), 42);
    (guard, watchdog, Snapshot::take())
}

fn double(x: u32) -> u32 {
    x * 2
}

/// Aborts the test binary if not dropped within [`WATCHDOG`].
struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Watchdog {
    fn start(what: &'static str) -> Watchdog {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                eprintln!("{what}: still running after {WATCHDOG:?}: aborting");
                std::process::abort();
            }
        });
        Watchdog(tx)
    }
}

/// A name no other test, run or process uses.
fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("it-{}-{n}-{what}", std::process::id())
}

fn kind(e: &multiproc::Error) -> Option<ErrorKind> {
    e.io_error().map(|e| e.kind())
}

fn open_kind(name: &str) -> Option<ErrorKind> {
    SharedMemory::open(name).err().and_then(|e| kind(&e))
}

/// The lines of `/proc/net/unix` for the abstract address of `name`.
fn unix_entries(name: &str) -> Vec<String> {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let addr = format!("@multiproc.shm.{uid}.{name}");
    std::fs::read_to_string("/proc/net/unix")
        .expect("reading /proc/net/unix")
        .lines()
        .filter(|l| l.split_whitespace().last() == Some(addr.as_str()))
        .map(str::to_owned)
        .collect()
}

/// Waits until process `pid` has exited; how long that took, or `None`
/// past `limit`.
fn exited_within(pid: u32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let Ok(pidfd) = pidfd_open(pid as i32) else {
        return Some(Duration::ZERO); // already gone and reaped
    };
    let pending = wait_all_readable(&[pidfd.as_fd()], start + limit);
    pending.is_empty().then(|| start.elapsed())
}

/// Checks that the name, its socket and its keeper are all gone within
/// `limit` of now.
fn assert_gone(name: &str, keeper: u32, limit: Duration) {
    let took = exited_within(keeper, limit);
    assert!(
        took.is_some(),
        "{name}: keeper {keeper} still runs after {limit:?}"
    );
    assert_eq!(
        open_kind(name),
        Some(ErrorKind::NotFound),
        "{name}: still opens"
    );
    assert_eq!(
        unix_entries(name),
        Vec::<String>::new(),
        "{name}: socket left"
    );
}

/// A daemon child, killed and reaped if the test lets go of it early.
struct Kid(Process<()>);

impl Kid {
    fn spawn<A: Serialize + for<'de> Deserialize<'de>>(b: ProcessBuilder, f: fn(A), arg: A) -> Kid {
        Kid(b.daemon(true).spawn(f, arg).expect("spawning a child"))
    }

    fn finish(&mut self) {
        if let Err(e) = self.0.join_timeout(JOIN) {
            panic!("child failed: {e}");
        }
    }

    fn kill(&mut self) {
        self.0.kill().expect("kill");
        let err = self.0.join_timeout(JOIN).expect_err("a killed child");
        assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if self.0.exitcode().is_none() {
            let _ = self.0.kill();
            let _ = self.0.join_timeout(JOIN);
        }
    }
}

// --------------------------------------------------------------- anonymous

fn fill(shm: SharedMemory) {
    assert_eq!(shm.name(), None);
    shm.write(100, b"from the child").expect("write");
}

#[test]
fn smoke() {
    let (_g, _w, before) = begin("smoke");
    for m in [StartMethod::ForkServer, StartMethod::Spawn] {
        let shm = SharedMemory::new(4096).unwrap();
        Kid::spawn(Process::builder().start_method(m), fill, shm.clone()).finish();
        let mut buf = [0u8; 14];
        shm.read(100, &mut buf).unwrap();
        assert_eq!(&buf, b"from the child", "{m:?}");
    }
    before.assert_no_leaks("smoke");
}

/// Takes segments from `q` and writes each one's index into it, until `None`.
fn stamp_from_queue((q, done): (Queue<Option<(u32, SharedMemory)>>, Queue<u32>)) {
    while let Some((i, shm)) = q.get_timeout(JOIN).expect("get") {
        shm.write(0, &i.to_le_bytes()).expect("write");
        done.put(i).expect("put");
    }
}

/// Creates a segment, writes into it, and hands it back through `conn`
/// (its creator then exits).
fn make_and_send(conn: Connection<SharedMemory, ()>) {
    let shm = SharedMemory::new(1 << 20).expect("new");
    shm.write((1 << 20) - 5, b"tail!").expect("write");
    conn.send(shm).expect("send");
}

#[test]
fn anonymous_through_a_queue_and_a_pipe() {
    let (_g, _w, before) = begin("anonymous_through_a_queue_and_a_pipe");
    let (q, done) = (Queue::new().unwrap(), Queue::new().unwrap());
    let mut kid = Kid::spawn(
        Process::builder(),
        stamp_from_queue,
        (q.clone(), done.clone()),
    );
    let segments: Vec<SharedMemory> = (0..5).map(|_| SharedMemory::new(64).unwrap()).collect();
    for (i, shm) in segments.iter().enumerate() {
        q.put(Some((i as u32, shm.clone()))).unwrap();
    }
    for _ in &segments {
        done.get_timeout(JOIN).expect("stamped");
    }
    q.put(None).unwrap();
    kid.finish();
    for (i, shm) in segments.iter().enumerate() {
        let mut buf = [0u8; 4];
        shm.read(0, &mut buf).unwrap();
        assert_eq!(u32::from_le_bytes(buf), i as u32);
    }

    // The other way: the child creates, sends, and exits; the memory stays.
    let (here, there) = Pipe::with_types::<(), SharedMemory>().unwrap();
    Kid::spawn(Process::builder(), make_and_send, there).finish();
    let shm = here.recv_timeout(JOIN).expect("a segment from the child");
    let mut buf = [0u8; 5];
    shm.read(shm.len() - 5, &mut buf).unwrap();
    assert_eq!(&buf, b"tail!");
    drop((segments, shm, q, done, here));
    before.assert_no_leaks("anonymous_through_a_queue_and_a_pipe");
}

// ------------------------------------------------------------------- named

/// What a test asks an owner child to do.
#[derive(Debug, Serialize, Deserialize)]
enum Cmd {
    Write(usize, Vec<u8>),
    Read(usize, usize),
    /// Drop the handle (the child stays).
    Drop,
}

/// How an owner child gets its segment.
#[derive(Debug, Serialize, Deserialize)]
enum How {
    Create(usize),
    Open,
}

/// Gets the segment `name` (`how`), answers with its keeper's pid, then
/// obeys commands (answering each: the bytes read, or nothing) until the
/// test hangs up.
fn owner((how, name, conn): (How, String, Connection<Vec<u8>, Cmd>)) {
    let shm = match how {
        How::Create(size) => SharedMemory::create(&name, size),
        How::Open => SharedMemory::open(&name),
    };
    let mut shm = Some(shm.expect("getting the segment"));
    let keeper = shm
        .as_ref()
        .and_then(SharedMemory::keeper_pid)
        .expect("named");
    conn.send(keeper.to_le_bytes().to_vec()).expect("send");
    while let Ok(cmd) = conn.recv() {
        let held = || shm.as_ref().expect("a handle");
        let answer = match cmd {
            Cmd::Write(at, bytes) => held().write(at, &bytes).map(|()| Vec::new()),
            Cmd::Read(at, n) => {
                let mut buf = vec![0; n];
                held().read(at, &mut buf).map(|()| buf)
            }
            Cmd::Drop => {
                shm = None;
                Ok(Vec::new())
            }
        };
        conn.send(answer.expect("command")).expect("send");
    }
}

/// An owner child and the test's end of its connection.
struct Owner {
    kid: Kid,
    conn: Connection<Cmd, Vec<u8>>,
    keeper: u32,
}

impl Owner {
    fn start(b: ProcessBuilder, how: How, name: &str) -> Owner {
        let (conn, there) = Pipe::with_types::<Cmd, Vec<u8>>().unwrap();
        let kid = Kid::spawn(b, owner, (how, name.to_owned(), there));
        let pid = conn.recv_timeout(JOIN).expect("the owner's keeper pid");
        let keeper = u32::from_le_bytes(pid.try_into().expect("4 bytes"));
        Owner { kid, conn, keeper }
    }

    fn ask(&self, cmd: Cmd) -> Vec<u8> {
        self.conn.send(cmd).expect("send");
        self.conn.recv_timeout(JOIN).expect("the owner's answer")
    }
}

#[test]
fn named_opened_by_name_in_an_unrelated_child() {
    let (_g, _w, before) = begin("named_opened_by_name_in_an_unrelated_child");
    for m in [StartMethod::ForkServer, StartMethod::Spawn] {
        let name = unique("by-name");
        let shm = SharedMemory::create(&name, 256).unwrap();
        let keeper = shm.keeper_pid().unwrap();
        shm.write(0, b"parent").unwrap();
        let child = Owner::start(Process::builder().start_method(m), How::Open, &name);
        assert_eq!(child.keeper, keeper, "{m:?}: one keeper per name");
        assert_eq!(child.ask(Cmd::Read(0, 6)), b"parent", "{m:?}");
        child.ask(Cmd::Write(200, b"child".to_vec()));
        let mut buf = [0u8; 5];
        shm.read(200, &mut buf).unwrap();
        assert_eq!(&buf, b"child", "{m:?}");
        drop(child);
        drop(shm);
        assert_gone(&name, keeper, secs(5));
    }
    before.assert_no_leaks("named_opened_by_name_in_an_unrelated_child");
}

#[test]
fn taken_missing_and_bad_names() {
    let (_g, _w, before) = begin("taken_missing_and_bad_names");
    let name = unique("taken");
    let shm = SharedMemory::create(&name, 1).unwrap();
    let err = SharedMemory::create(&name, 1).unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::AlreadyExists), "{err}");
    // Taken in another process too.
    let child = Owner::start(Process::builder(), How::Open, &name);
    let err = SharedMemory::create(&name, 1).unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::AlreadyExists), "{err}");
    assert_eq!(open_kind(&unique("missing")), Some(ErrorKind::NotFound));
    for bad in ["", "a/b", "with space", "x".repeat(65).as_str(), "nul\0"] {
        assert!(
            SharedMemory::create(bad, 1).unwrap_err().is_misuse(),
            "{bad:?}"
        );
        assert!(SharedMemory::open(bad).unwrap_err().is_misuse(), "{bad:?}");
    }
    assert!(
        SharedMemory::create(&unique("empty"), 0)
            .unwrap_err()
            .is_misuse()
    );
    let keeper = shm.keeper_pid().unwrap();
    drop((shm, child));
    assert_gone(&name, keeper, secs(5));
    before.assert_no_leaks("taken_missing_and_bad_names");
}

#[test]
fn the_name_lives_as_long_as_an_owner() {
    let (_g, _w, before) = begin("the_name_lives_as_long_as_an_owner");
    let name = unique("lifetime");
    let created = SharedMemory::create(&name, 64).unwrap();
    let keeper = created.keeper_pid().unwrap();
    created.write(0, b"kept").unwrap();
    let child = Owner::start(Process::builder(), How::Open, &name);
    drop(created);
    // The creator is gone; the child's ownership keeps the name.
    std::thread::sleep(ms(100));
    let again = SharedMemory::open(&name).expect("open while the child holds it");
    let mut buf = [0u8; 4];
    again.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"kept");
    drop(again);
    std::thread::sleep(ms(100));
    assert_eq!(child.ask(Cmd::Read(0, 4)), b"kept");
    assert!(
        SharedMemory::open(&name).is_ok(),
        "the child still holds it"
    );
    // The last owner lets go (its process stays): the name goes.
    child.ask(Cmd::Drop);
    assert_gone(&name, keeper, secs(5));
    drop(child);
    before.assert_no_leaks("the_name_lives_as_long_as_an_owner");
}

fn create_and_return(name: String) -> SharedMemory {
    let shm = SharedMemory::create(&name, 32).expect("create");
    shm.write(0, b"made by the child").expect("write");
    shm
}

#[test]
fn a_named_handle_outlives_its_creator() {
    let (_g, _w, before) = begin("a_named_handle_outlives_its_creator");
    let name = unique("returned");
    let mut child = Process::spawn(create_and_return, name.clone()).unwrap();
    // The child has exited: the handle it returned is the only owner.
    let shm = child.join_timeout(JOIN).expect("the child's segment");
    assert_eq!(shm.name(), Some(name.as_str()));
    let opened = SharedMemory::open(&name).expect("open after the creator exited");
    let mut buf = [0u8; 17];
    opened.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"made by the child");
    let keeper = shm.keeper_pid().unwrap();
    drop((shm, opened));
    assert_gone(&name, keeper, secs(5));
    before.assert_no_leaks("a_named_handle_outlives_its_creator");
}

#[test]
fn every_owner_killed_removes_the_name() {
    let (_g, _w, before) = begin("every_owner_killed_removes_the_name");
    for (creator, opener) in [
        (StartMethod::ForkServer, StartMethod::ForkServer),
        (StartMethod::Spawn, StartMethod::ForkServer),
    ] {
        let name = unique("killed");
        let b = |m| {
            Process::builder()
                .start_method(m)
                .stderr(multiproc::Stdio::null())
        };
        let mut a = Owner::start(b(creator), How::Create(1 << 16), &name);
        let mut o = Owner::start(b(opener), How::Open, &name);
        assert_eq!(a.keeper, o.keeper);
        o.ask(Cmd::Write(0, b"doomed".to_vec()));
        // The creator's link is a socket pair (no address).
        assert_eq!(
            unix_entries(&name).len(),
            2,
            "listener and the opener's link"
        );
        let keeper = pidfd_open(a.keeper as i32).expect("the keeper runs");
        let killed = Instant::now();
        a.kid.kill();
        o.kid.kill();
        let late = wait_all_readable(&[keeper.as_fd()], killed + secs(2));
        assert!(
            late.is_empty(),
            "{creator:?}: keeper alive 2 s after the kills"
        );
        eprintln!("keeper exited {:?} after the kills", killed.elapsed());
        drop(keeper);
        assert_gone(&name, a.keeper, secs(1));
    }
    before.assert_no_leaks("every_owner_killed_removes_the_name");
}

#[test]
fn unlink_keeps_owners_and_frees_the_name() {
    let (_g, _w, before) = begin("unlink_keeps_owners_and_frees_the_name");
    let name = unique("unlink");
    let shm = SharedMemory::create(&name, 32).unwrap();
    let keeper = shm.keeper_pid().unwrap();
    let child = Owner::start(Process::builder(), How::Open, &name);
    shm.unlink().unwrap();
    assert_eq!(open_kind(&name), Some(ErrorKind::NotFound));
    assert_eq!(shm.name(), Some(name.as_str()));
    // The owners go on sharing the memory.
    child.ask(Cmd::Write(8, b"after".to_vec()));
    let mut buf = [0u8; 5];
    shm.read(8, &mut buf).unwrap();
    assert_eq!(&buf, b"after");
    shm.write(0, b"both").unwrap();
    assert_eq!(child.ask(Cmd::Read(0, 4)), b"both");
    // The name is free for a new segment, while the old one lives on.
    let fresh = SharedMemory::create(&name, 8).unwrap();
    assert_ne!(fresh.keeper_pid(), Some(keeper));
    assert!(
        exited_within(keeper, ms(200)).is_none(),
        "old keeper still serves"
    );
    let fresh_keeper = fresh.keeper_pid().unwrap();
    drop(fresh);
    assert!(exited_within(fresh_keeper, secs(5)).is_some());
    drop((shm, child));
    assert_gone(&name, keeper, secs(5));
    before.assert_no_leaks("unlink_keeps_owners_and_frees_the_name");
}

#[test]
fn strangers_on_the_socket_neither_crash_nor_wedge_the_keeper() {
    let (_g, _w, before) = begin("strangers_on_the_socket_neither_crash_nor_wedge_the_keeper");
    let name = unique("strangers");
    let shm = SharedMemory::create(&name, 16).unwrap();
    let keeper = shm.keeper_pid().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let garbage = raw::connect(&name);
    raw::send(&garbage, b"\xff\x00garbage", None);
    let with_fd = raw::connect(&name);
    raw::send(&with_fd, b"multiproc.shm.open.1", Some(&null));
    let silent = raw::connect(&name);
    drop(raw::connect(&name)); // connects and leaves at once
    // A stranger that says hello gets the segment, then talks nonsense.
    let chatty = raw::connect(&name);
    raw::send(&chatty, b"multiproc.shm.open.1", None);
    assert!(raw::readable(&chatty, secs(5)));
    raw::send(&chatty, b"nonsense", None);
    raw::send(&chatty, b"", None);

    let started = Instant::now();
    let opened = SharedMemory::open(&name).expect("open among strangers");
    assert!(
        started.elapsed() < secs(1),
        "open took {:?}",
        started.elapsed()
    );
    assert_eq!(opened.len(), 16);
    // Garbage is hung up on at once, silence after a timeout.
    for (what, sock) in [("garbage", &garbage), ("fd", &with_fd), ("silent", &silent)] {
        assert!(raw::readable(sock, secs(10)), "{what}: still connected");
        assert!(raw::at_eof(sock), "{what}: expected end of file");
    }
    drop((chatty, garbage, with_fd, silent, null));
    drop((shm, opened));
    assert_gone(&name, keeper, secs(5));
    before.assert_no_leaks("strangers_on_the_socket_neither_crash_nor_wedge_the_keeper");
}

#[test]
fn many_opens_in_one_process() {
    let (_g, _w, before) = begin("many_opens_in_one_process");
    let name = unique("many");
    let shm = SharedMemory::create(&name, 8).unwrap();
    let keeper = shm.keeper_pid().unwrap();
    let handles: Vec<SharedMemory> = (0..200)
        .map(|i| SharedMemory::open(&name).unwrap_or_else(|e| panic!("open #{i}: {e}")))
        .collect();
    handles[199].write(0, b"last").unwrap();
    let mut buf = [0u8; 4];
    shm.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"last");
    drop((shm, handles));
    assert_gone(&name, keeper, secs(5));
    before.assert_no_leaks("many_opens_in_one_process");
}
