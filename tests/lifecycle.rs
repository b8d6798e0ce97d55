//! A child's life seen from its handle: terminate, kill, join with a
//! deadline, `active_children`, `wait` on sentinels; and the two program-level
//! rules (end of `main`, spawn without `init`), checked by re-running this
//! test binary on an ignored inner test.

mod common;

use common::{
    JOIN, Method, ms, pid_exists, proc_state, read_line_until, rerun_self, run_with, secs, tmp_path,
};
use multiproc::{ExitStatus, Fd, Process, ProcessBuilder, StartMethod, active_children};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn builder(m: Method) -> ProcessBuilder {
    Process::builder().start_method(m.start_method())
}

/// Says "ready" on `ready`, then sleeps until killed.
fn sleeps_forever(ready: Fd) {
    let mut f = std::fs::File::from(ready);
    f.write_all(b"ready\n").unwrap();
    drop(f);
    loop {
        std::thread::sleep(secs(1));
    }
}

fn nap(millis: u64) -> u64 {
    std::thread::sleep(ms(millis));
    millis
}

/// Starts `sleeps_forever` with `b` and waits until it runs its function.
fn start_sleeper(m: Method, b: ProcessBuilder) -> Process<()> {
    let (reader, writer) = common::pipe();
    let p = b.spawn(sleeps_forever, Fd::from(writer)).unwrap();
    match read_line_until(reader.as_fd(), Instant::now() + JOIN) {
        Ok(line) => assert_eq!(line, "ready", "{m:?}"),
        Err(e) => {
            let _ = p.kill();
            panic!("{m:?}: the sleeper never said it was ready: {e}");
        }
    }
    p
}

// ------------------------------------------------------------------ scenarios

fn terminate_then_join(m: Method) {
    let mut p = start_sleeper(m, builder(m));
    assert!(p.is_alive(), "{m:?}");
    assert_eq!(p.exitcode(), None, "{m:?}");
    p.terminate().unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert!(!err.is_timeout(), "{m:?}: {err}");
    assert!(!err.is_start_failure(), "{m:?}: {err}");
    assert_eq!(err.signal(), Some(libc::SIGTERM), "{m:?}: {err}");
    assert_eq!(
        p.exitcode(),
        Some(ExitStatus::Signal(libc::SIGTERM)),
        "{m:?}"
    );
    assert_eq!(p.exitcode().unwrap().as_python(), -libc::SIGTERM, "{m:?}");
    assert!(!p.is_alive(), "{m:?}");
    // Signalling an ended child is harmless.
    p.terminate().unwrap();
    p.kill().unwrap();
    assert!(p.join().unwrap_err().is_already_joined(), "{m:?}");
}

fn kill_then_join(m: Method) {
    let mut p = start_sleeper(m, builder(m));
    p.kill().unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert!(!err.is_start_failure(), "{m:?}: {err}");
    assert_killed(&p, &err, m);
}

/// The join error and the handle both say SIGKILL, and nothing else went wrong.
fn assert_killed<R>(p: &Process<R>, err: &multiproc::Error, m: Method) {
    assert!(!err.is_timeout(), "{m:?}: {err}");
    assert!(!err.is_fork_server_lost(), "{m:?}: {err}");
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
    assert_eq!(
        p.exitcode(),
        Some(ExitStatus::Signal(libc::SIGKILL)),
        "{m:?}"
    );
    assert!(!p.is_alive(), "{m:?}");
}

/// Killed at once, possibly before it even read its job: an error with the
/// signal (a start failure or a death, either is fine), never a hang, and
/// never a claim that the fork server was lost.
fn kill_right_after_spawn(m: Method) {
    for _ in 0..3 {
        let mut p = builder(m).spawn(nap, 60_000).unwrap();
        p.kill().unwrap();
        let err = p.join_timeout(JOIN).unwrap_err();
        assert_killed(&p, &err, m);
    }
}

fn join_timeout_keeps_the_handle(m: Method) {
    let mut p = start_sleeper(m, builder(m));
    let t0 = Instant::now();
    let err = p.join_timeout(ms(100)).unwrap_err();
    let took = t0.elapsed();
    assert!(err.is_timeout(), "{m:?}: {err}");
    assert!(took >= ms(100), "{m:?}: returned early: {took:?}");
    assert!(took < secs(5), "{m:?}: returned late: {took:?}");
    assert!(p.is_alive(), "{m:?}: a timeout leaves the child alone");
    assert_eq!(p.exitcode(), None, "{m:?}");
    let err = p.join_timeout(Duration::ZERO).unwrap_err();
    assert!(err.is_timeout(), "{m:?}: {err}");
    p.kill().unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");

    // A timeout, then the result.
    let mut p = builder(m).spawn(nap, 300).unwrap();
    let err = p.join_timeout(ms(20)).unwrap_err();
    assert!(err.is_timeout(), "{m:?}: {err}");
    assert_eq!(p.join_timeout(JOIN).unwrap(), 300, "{m:?}");
    assert!(p.exitcode().unwrap().success(), "{m:?}");
}

fn listed(pid: u32) -> bool {
    active_children().iter().any(|c| c.pid() == pid)
}

fn active_children_lists_running(m: Method) {
    let mut p = start_sleeper(m, builder(m).name("listed-child").daemon(true));
    let pid = p.pid();
    let me = active_children()
        .into_iter()
        .find(|c| c.pid() == pid)
        .unwrap_or_else(|| panic!("{m:?}: running child {pid} not in active_children"));
    assert_eq!(me.name(), "listed-child", "{m:?}");
    assert!(me.is_daemon(), "{m:?}");
    assert!(me.is_alive(), "{m:?}");
    p.kill().unwrap();
    let _ = p.join_timeout(JOIN).unwrap_err();
    assert!(!listed(pid), "{m:?}: joined child {pid} still listed");

    // A dropped handle: the child stays listed while it runs and can be
    // killed from the listing; once it ended it disappears.
    let p = start_sleeper(m, builder(m).name("dropped-child"));
    let pid = p.pid();
    drop(p);
    let child = active_children()
        .into_iter()
        .find(|c| c.pid() == pid)
        .unwrap_or_else(|| panic!("{m:?}: dropped child {pid} not in active_children"));
    assert_eq!(child.name(), "dropped-child", "{m:?}");
    child.kill().unwrap();
    let deadline = Instant::now() + JOIN;
    while listed(pid) {
        assert!(
            Instant::now() < deadline,
            "{m:?}: killed child {pid} still listed"
        );
        std::thread::sleep(ms(5));
    }
}

fn wait_returns_first_ended(m: Method) {
    let mut slow = start_sleeper(m, builder(m));
    let mut fast = builder(m).spawn(nap, 10).unwrap();
    let ready = multiproc::wait(&[&slow.sentinel(), &fast.sentinel()], Some(JOIN)).unwrap();
    assert_eq!(ready, vec![1], "{m:?}");
    assert_eq!(fast.join_timeout(JOIN).unwrap(), 10, "{m:?}");

    // Other order, and through the `Waitable` impl of the handle itself.
    let mut fast = builder(m).spawn(nap, 10).unwrap();
    let ready = multiproc::wait(&[&fast, &slow], Some(JOIN)).unwrap();
    assert_eq!(ready, vec![0], "{m:?}");
    assert_eq!(fast.join_timeout(JOIN).unwrap(), 10, "{m:?}");

    // Nothing ends: an empty answer after the timeout.
    let t0 = Instant::now();
    let ready = multiproc::wait(&[&slow.sentinel()], Some(ms(50))).unwrap();
    assert!(ready.is_empty(), "{m:?}: {ready:?}");
    assert!(t0.elapsed() >= ms(50), "{m:?}");

    slow.kill().unwrap();
    let ready = multiproc::wait(&[&slow.sentinel()], Some(JOIN)).unwrap();
    assert_eq!(ready, vec![0], "{m:?}");
    assert_eq!(
        slow.join_timeout(JOIN).unwrap_err().signal(),
        Some(libc::SIGKILL)
    );
}

macro_rules! per_method {
    ($scenario:ident: $fs:ident, $spawn:ident, $fork:ident) => {
        #[test]
        fn $fs() {
            run_with(Method::ForkServer, $scenario);
        }
        #[test]
        fn $spawn() {
            run_with(Method::Spawn, $scenario);
        }
        #[test]
        fn $fork() {
            run_with(Method::Fork, $scenario);
        }
    };
}

per_method!(terminate_then_join: terminate_forkserver, terminate_spawn, terminate_fork);
per_method!(kill_then_join: kill_forkserver, kill_spawn, kill_fork);
per_method!(kill_right_after_spawn: kill_at_once_forkserver, kill_at_once_spawn, kill_at_once_fork);
per_method!(join_timeout_keeps_the_handle: join_timeout_forkserver, join_timeout_spawn, join_timeout_fork);
per_method!(active_children_lists_running: active_children_forkserver, active_children_spawn, active_children_fork);
per_method!(wait_returns_first_ended: wait_forkserver, wait_spawn, wait_fork);

// ------------------------------------------------------------- end of main

const MARKER_VAR: &str = "MULTIPROC_TEST_MARKER";

/// Sleeps 300 ms, then creates the file `path`.
fn late_marker(path: String) {
    std::thread::sleep(ms(300));
    std::fs::write(&path, b"joined").unwrap();
}

fn sleeps_quietly(_: ()) {
    loop {
        std::thread::sleep(secs(1));
    }
}

/// Run by `end_of_main_terminates_daemons_and_joins_the_others` in a fresh
/// copy of this binary: starts a daemon and a non-daemon child of each
/// start method usable here, prints their pids and returns without joining.
#[test]
#[ignore = "run by end_of_main_terminates_daemons_and_joins_the_others"]
fn inner_end_of_main() {
    let Ok(marker) = std::env::var(MARKER_VAR) else {
        return; // run by hand: nothing to do
    };
    for (label, method) in [
        ("fs", StartMethod::ForkServer),
        ("spawn", StartMethod::Spawn),
    ] {
        let daemon = Process::builder()
            .start_method(method)
            .daemon(true)
            .spawn(sleeps_quietly, ())
            .unwrap();
        let worker = Process::builder()
            .start_method(method)
            .spawn(late_marker, format!("{marker}.{label}"))
            .unwrap();
        println!("DAEMON {label} {}", daemon.pid());
        println!("WORKER {label} {}", worker.pid());
    }
}

#[test]
fn end_of_main_terminates_daemons_and_joins_the_others() {
    let marker = tmp_path("end-of-main-marker");
    let marker = marker.to_str().unwrap();
    let t0 = Instant::now();
    let run = rerun_self("inner_end_of_main", &[(MARKER_VAR, marker)], secs(60));
    let took = t0.elapsed();
    assert!(
        run.status.success() && run.stdout.contains("1 passed"),
        "inner test failed: {run:?}"
    );
    let pids = |kind: &str| -> Vec<i32> {
        run.stdout
            .lines()
            // The first line printed follows libtest's "test NAME ... ".
            .filter_map(|l| l.split_once(kind))
            .map(|(_, rest)| rest.split_whitespace().nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let daemons = pids("DAEMON ");
    assert_eq!(daemons.len(), 2, "{run:?}");
    assert_eq!(pids("WORKER ").len(), 2, "{run:?}");
    for label in ["fs", "spawn"] {
        let path = format!("{marker}.{label}");
        assert!(
            std::path::Path::new(&path).exists(),
            "{label}: the non-daemon child was not joined before exit (no marker; took {took:?}): {run:?}"
        );
        let _ = std::fs::remove_file(&path);
    }
    for pid in daemons {
        assert!(
            !pid_exists(pid),
            "daemon child {pid} outlived its program's main: {:?}",
            proc_state(pid)
        );
    }
    assert!(took >= ms(300), "exit did not wait for the non-daemon");
}

// ------------------------------------------------------- spawn without init

/// Run by `spawn_without_init_is_refused` in a fresh copy of this binary
/// with the constructor disabled and no `init()` call.
#[test]
#[ignore = "run by spawn_without_init_is_refused"]
fn inner_spawn_without_init() {
    if std::env::var_os("MULTIPROC_NO_CONSTRUCTOR").is_none() {
        return; // run by hand, with the constructor: nothing to check
    }
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let err = Process::builder()
            .start_method(method)
            .spawn(nap, 1)
            .unwrap_err();
        assert!(err.is_not_initialized(), "{method:?}: {err}");
        assert!(err.is_start_failure(), "{method:?}: {err}");
        assert!(
            err.to_string().contains("multiproc::init()"),
            "{method:?}: {err}"
        );
    }
    assert!(active_children().is_empty());
}

#[test]
fn spawn_without_init_is_refused() {
    let run = rerun_self(
        "inner_spawn_without_init",
        &[("MULTIPROC_NO_CONSTRUCTOR", "1")],
        secs(60),
    );
    assert!(
        run.status.success() && run.stdout.contains("1 passed"),
        "inner test failed: {run:?}"
    );
}
