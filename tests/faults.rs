//! How a child fails, and that each failure is a typed error, never a hang,
//! and leaves no zombie and no descriptor behind.
//!
//! Every test here ends with a leak check of this process (descriptors,
//! zombies, /dev/shm), so the tests of this binary are serialized by a
//! mutex. For Fork, the scenario runs inside a fork-server child (the
//! "driver"), which checks its own leaks too.

mod common;

use common::{JOIN, Method, Snapshot, no_core_dumps, read_line_until, run_with, serial};
use multiproc::{Error, ExitStatus, Fd, Process, ProcessBuilder, Stdio};
use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

fn builder(m: Method) -> ProcessBuilder {
    Process::builder().start_method(m.start_method())
}

/// A builder for a child expected to crash: its stderr (panic message,
/// backtrace) goes nowhere, to keep the test output readable.
fn quiet(m: Method) -> ProcessBuilder {
    builder(m).stderr(Stdio::null())
}

fn double(x: u32) -> u32 {
    x * 2
}

/// One successful spawn with `m` (which starts the fork server where it
/// applies: its descriptors persist), then a snapshot of what must not grow.
fn warm_baseline(m: Method) -> Snapshot {
    let mut p = builder(m).spawn(double, 21).unwrap();
    assert_eq!(p.join_timeout(JOIN).unwrap(), 42, "{m:?}: warm-up");
    drop(p);
    Snapshot::take()
}

/// Runs `scenario` with method `m` under the suite's mutex, with a leak
/// check of this process around it (the scenario checks its own process,
/// which for Fork is the driver child).
fn fault_test(m: Method, scenario: fn(Method)) {
    let _guard = serial();
    let before = warm_baseline(Method::ForkServer);
    let started = Instant::now();
    run_with(m, scenario);
    before.assert_no_leaks(&format!("{m:?}: test process"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{m:?}: too slow: {:?}",
        started.elapsed()
    );
}

/// Checks that `err` says the child ran and died with `status` (no result,
/// not a panic, not a start failure), and that the handle agrees.
fn assert_died<R: std::fmt::Debug>(m: Method, p: &Process<R>, err: &Error, status: ExitStatus) {
    assert!(!err.is_panic(), "{m:?}: {err}");
    assert!(!err.is_start_failure(), "{m:?}: {err}");
    assert!(!err.is_timeout(), "{m:?}: {err}");
    assert_eq!(err.exit_status(), Some(status), "{m:?}: {err}");
    assert_eq!(err.signal(), status.signal(), "{m:?}: {err}");
    assert_eq!(err.exit_code(), status.code(), "{m:?}: {err}");
    assert_eq!(err.pid(), Some(p.pid()), "{m:?}: {err}");
    assert_eq!(p.exitcode(), Some(status), "{m:?}: exitcode() agrees");
    assert!(!p.is_alive(), "{m:?}");
}

// ------------------------------------------------------------ child functions

fn panics(x: u32) -> u32 {
    if x > 0 {
        panic!("child panics with {x}");
    }
    x
}

fn aborts(_: ()) {
    no_core_dumps();
    std::process::abort()
}

fn segfaults(_: ()) {
    no_core_dumps();
    // SAFETY: none; crashing with SIGSEGV is the point.
    unsafe { std::ptr::null_mut::<u8>().write_volatile(1) }
}

fn exits_3(_: ()) -> u32 {
    std::process::exit(3)
}

/// Says "ready" on `ready`, then sleeps until killed.
fn sleeps_forever(ready: Fd) {
    let mut f = std::fs::File::from(ready);
    f.write_all(b"ready\n").unwrap();
    drop(f);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

// ------------------------------------------------------------------ scenarios

fn panic_scenario(m: Method) {
    let before = warm_baseline(m);

    let mut p = quiet(m)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .spawn(panics, 7)
        .unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert!(err.is_panic(), "{m:?}: {err}");
    assert!(!err.is_start_failure(), "{m:?}: {err}");
    assert_eq!(err.panic_message(), Some("child panics with 7"), "{m:?}");
    let location = err.panic_location().expect("a panic location");
    assert!(
        location.contains("faults.rs"),
        "{m:?}: location {location:?}"
    );
    assert!(
        err.panic_backtrace().is_none(),
        "{m:?}: no RUST_BACKTRACE, no backtrace"
    );
    assert_eq!(err.pid(), Some(p.pid()), "{m:?}");
    assert_eq!(p.exitcode(), Some(ExitStatus::Code(101)), "{m:?}");
    assert!(!p.is_alive(), "{m:?}");

    let mut q = quiet(m)
        .env("RUST_BACKTRACE", "1")
        .spawn(panics, 8)
        .unwrap();
    let err = q.join_timeout(JOIN).unwrap_err();
    assert!(err.is_panic(), "{m:?}: {err}");
    assert_eq!(err.panic_message(), Some("child panics with 8"), "{m:?}");
    let bt = err
        .panic_backtrace()
        .unwrap_or_else(|| panic!("{m:?}: RUST_BACKTRACE=1 gives a backtrace"));
    assert!(bt.contains("faults::panics"), "{m:?}: backtrace:\n{bt}");
    assert_eq!(q.exitcode(), Some(ExitStatus::Code(101)), "{m:?}");

    drop((p, q));
    before.assert_no_leaks(&format!("{m:?}: panic"));
}

fn abort_scenario(m: Method) {
    let before = warm_baseline(m);
    let mut p = quiet(m).spawn(aborts, ()).unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_died(m, &p, &err, ExitStatus::Signal(libc::SIGABRT));
    assert!(err.to_string().contains("SIGABRT"), "{m:?}: {err}");
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: abort"));
}

fn segfault_scenario(m: Method) {
    let before = warm_baseline(m);
    let mut p = quiet(m).spawn(segfaults, ()).unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_died(m, &p, &err, ExitStatus::Signal(libc::SIGSEGV));
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: segfault"));
}

fn exit_scenario(m: Method) {
    let before = warm_baseline(m);
    let mut p = quiet(m).spawn(exits_3, ()).unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_died(m, &p, &err, ExitStatus::Code(3));
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: exit(3)"));
}

fn killed_by_other_scenario(m: Method) {
    let before = warm_baseline(m);
    let (reader, writer) = common::pipe();
    let mut p = quiet(m).spawn(sleeps_forever, Fd::from(writer)).unwrap();
    let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
    drop(reader);
    if line.is_err() {
        let _ = p.kill();
    }
    assert_eq!(line.unwrap(), "ready", "{m:?}");
    assert!(p.is_alive(), "{m:?}");
    // Someone else (not the handle) kills the child.
    // SAFETY: plain system call on our own child's pid, not yet reaped.
    assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGKILL) }, 0);
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_died(m, &p, &err, ExitStatus::Signal(libc::SIGKILL));
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: SIGKILL from outside"));
}

fn boot_exit_scenario(m: Method) {
    let before = warm_baseline(m);
    let started = Instant::now();
    let mut p = quiet(m)
        .env("MULTIPROC_FAULT", "boot-exit")
        .spawn(double, 1)
        .unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert!(!err.is_timeout(), "{m:?}: a start-up death must not hang");
    assert!(err.is_start_failure(), "{m:?}: {err}");
    assert!(!err.is_panic(), "{m:?}: {err}");
    assert_eq!(err.exit_code(), Some(42), "{m:?}: {err}");
    assert_eq!(p.exitcode(), Some(ExitStatus::Code(42)), "{m:?}");
    assert!(!p.is_alive(), "{m:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{m:?}");
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: boot-exit"));
}

fn exe_mismatch_scenario(m: Method) {
    let before = warm_baseline(m);
    let mut p = quiet(m)
        .env("MULTIPROC_FAULT", "exe-mismatch")
        .spawn(double, 1)
        .unwrap();
    let err = p.join_timeout(JOIN).unwrap_err();
    assert!(err.is_function_mismatch(), "{m:?}: {err}");
    assert!(err.is_start_failure(), "{m:?}: {err}");
    assert!(!err.is_panic(), "{m:?}: {err}");
    assert!(
        err.to_string().contains("different executable"),
        "{m:?}: {err}"
    );
    assert!(!p.is_alive(), "{m:?}");
    assert!(p.exitcode().is_some_and(|s| !s.success()), "{m:?}");
    drop(p);
    before.assert_no_leaks(&format!("{m:?}: exe-mismatch"));
}

// ---------------------------------------------------------------------- tests

#[test]
fn panic_forkserver() {
    fault_test(Method::ForkServer, panic_scenario);
}

#[test]
fn panic_spawn() {
    fault_test(Method::Spawn, panic_scenario);
}

#[test]
fn panic_fork() {
    fault_test(Method::Fork, panic_scenario);
}

#[test]
fn abort_forkserver() {
    fault_test(Method::ForkServer, abort_scenario);
}

#[test]
fn abort_spawn() {
    fault_test(Method::Spawn, abort_scenario);
}

#[test]
fn abort_fork() {
    fault_test(Method::Fork, abort_scenario);
}

#[test]
fn segfault_forkserver() {
    fault_test(Method::ForkServer, segfault_scenario);
}

#[test]
fn segfault_spawn() {
    fault_test(Method::Spawn, segfault_scenario);
}

#[test]
fn segfault_fork() {
    fault_test(Method::Fork, segfault_scenario);
}

#[test]
fn exit_code_forkserver() {
    fault_test(Method::ForkServer, exit_scenario);
}

#[test]
fn exit_code_spawn() {
    fault_test(Method::Spawn, exit_scenario);
}

#[test]
fn exit_code_fork() {
    fault_test(Method::Fork, exit_scenario);
}

#[test]
fn killed_by_other_forkserver() {
    fault_test(Method::ForkServer, killed_by_other_scenario);
}

#[test]
fn killed_by_other_spawn() {
    fault_test(Method::Spawn, killed_by_other_scenario);
}

#[test]
fn killed_by_other_fork() {
    fault_test(Method::Fork, killed_by_other_scenario);
}

#[test]
fn death_during_startup_forkserver() {
    fault_test(Method::ForkServer, boot_exit_scenario);
}

#[test]
fn death_during_startup_spawn() {
    fault_test(Method::Spawn, boot_exit_scenario);
}

#[test]
fn function_identity_mismatch_forkserver() {
    fault_test(Method::ForkServer, exe_mismatch_scenario);
}

#[test]
fn function_identity_mismatch_spawn() {
    fault_test(Method::Spawn, exe_mismatch_scenario);
}
