//! Many sequential spawn+join cycles per start method leave nothing behind:
//! no zombie child, no descriptor, nothing in /dev/shm.
//!
//! The tests of this binary measure process-wide state, so they are
//! serialized by a mutex.

mod common;

use common::{JOIN, Method, Snapshot, my_zombies};
use multiproc::Process;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn double(x: u32) -> u32 {
    x * 2
}

/// What a churn run saw, in the process that ran it.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    joined: usize,
    before: Snapshot,
    after: Snapshot,
    zombies: Vec<i32>,
    elapsed: Duration,
}

/// `n` sequential spawn+join cycles with method `m`, after one warm-up cycle
/// (which starts the fork server, whose descriptors persist).
fn churn((m, n): (Method, usize)) -> Report {
    let cycle = |i: u32| {
        let mut p = Process::builder()
            .start_method(m.start_method())
            .spawn(double, i)
            .unwrap_or_else(|e| panic!("{m:?}: spawn #{i}: {e}"));
        let r = p
            .join_timeout(JOIN)
            .unwrap_or_else(|e| panic!("{m:?}: join #{i}: {e}"));
        assert_eq!(r, i * 2, "{m:?}");
    };
    cycle(0);
    let before = Snapshot::take();
    let t0 = Instant::now();
    for i in 1..=n {
        cycle(i as u32);
    }
    let elapsed = t0.elapsed();
    Report {
        joined: n,
        before,
        after: Snapshot::take(),
        zombies: my_zombies(),
        elapsed,
    }
}

fn check(m: Method, n: usize, report: &Report) {
    eprintln!(
        "{m:?}: {n} spawn+join in {:?} ({:?} each)",
        report.elapsed,
        report.elapsed / n as u32
    );
    assert_eq!(report.joined, n, "{m:?}");
    assert!(report.zombies.is_empty(), "{m:?}: zombies {report:?}");
    assert!(
        report.after.fds.len() <= report.before.fds.len(),
        "{m:?}: descriptors grew: {report:?}"
    );
    let new_shm: Vec<_> = report.after.shm.difference(&report.before.shm).collect();
    assert!(new_shm.is_empty(), "{m:?}: new in /dev/shm: {new_shm:?}");
}

#[test]
fn thousand_spawns_forkserver() {
    let _guard = serial();
    let report = churn((Method::ForkServer, 1000));
    check(Method::ForkServer, 1000, &report);
}

// 1,000 exec'd children of the debug test binary take about 1.3 s on the
// 2-core development machine, so the full count is kept.
#[test]
fn thousand_spawns_spawn() {
    let _guard = serial();
    let report = churn((Method::Spawn, 1000));
    check(Method::Spawn, 1000, &report);
}

/// The Fork cycles run inside a fork-server child (single-threaded), which
/// counts its own descriptors and zombies and reports them.
#[test]
fn thousand_forks_in_a_forkserver_child() {
    let _guard = serial();
    // A warm-up spawn starts the fork server (whose descriptors persist)
    // before the baseline of this process is taken.
    let mut warm = Process::spawn(double, 1).unwrap();
    assert_eq!(warm.join_timeout(JOIN).unwrap(), 2);
    drop(warm);
    let before = Snapshot::take();
    let mut driver = Process::spawn(churn, (Method::Fork, 1000)).unwrap();
    let report = driver
        .join_timeout(Duration::from_secs(120))
        .unwrap_or_else(|e| {
            let _ = driver.kill();
            panic!("the Fork driver failed: {e}")
        });
    check(Method::Fork, 1000, &report);
    drop(driver);
    // The test process itself is back to its baseline too.
    before.assert_no_leaks("Fork: the test process around the driver");
}
