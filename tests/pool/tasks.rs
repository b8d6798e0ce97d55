//! Tasks that fail without killing anything themselves: a panic (the
//! worker survives), a task that never ends under `task_timeout` (its
//! worker is killed and replaced), a result that cannot be encoded in the
//! worker or decoded in the parent. Each fails alone; the others complete.

use crate::common::{JOIN, ms};
use crate::{
    Probe, assert_gone, assert_usable, end, measure_latency, now_ns, per_method, pool, worker_pids,
};
use multiproc::{Error, Pool, StartMethod};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeSet;
use std::time::Duration;

// ------------------------------------------------------------------ panics

/// The pid of the worker, unless `x` is the victim: then a panic.
fn panic_at((x, victim): (u64, u64)) -> u32 {
    if x == victim {
        panic!("task {x} refuses to work");
    }
    std::process::id()
}

/// Asserts that `e` is task `index`'s panic (on input `x`), raised in this
/// file by a worker of `pids`.
fn check_panic(e: &Error, index: usize, x: u64, pids: &BTreeSet<u32>) {
    assert!(e.is_panic(), "{e}");
    assert_eq!(e.task_index(), Some(index), "{e}");
    let message = format!("task {x} refuses to work");
    assert_eq!(e.panic_message(), Some(message.as_str()), "{e}");
    let location = e
        .panic_location()
        .unwrap_or_else(|| panic!("no location: {e}"));
    assert!(location.contains("tests/pool/tasks.rs:"), "{location}");
    assert!(pids.contains(&e.pid().expect("pid")), "{e} ({pids:?})");
    assert_eq!(e.signal(), None, "{e}");
}

/// A panic fails its task alone, in a chunk too, and costs no process: the
/// same workers before and after.
fn panic_keeps_the_worker(m: StartMethod) {
    let pool = pool(m, 2);
    let before = worker_pids(&pool);

    let err = pool
        .submit(panic_at, (5, 5))
        .expect("submit")
        .get_timeout(JOIN)
        .expect_err("a panicking task returned");
    check_panic(&err, 0, 5, &before);

    // Position 2 of a chunk of 5: the others of the chunk ran in the same
    // worker, before and after the panic.
    let results: Vec<Result<u32, Error>> = pool
        .imap(panic_at, (0..20).map(|x| (x, 7)))
        .chunksize(5)
        .collect();
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) if i == 7 => check_panic(e, 7, 7, &before),
            Ok(pid) if i != 7 => assert!(before.contains(pid), "task {i}: {pid}"),
            other => panic!("task {i}: {other:?}"),
        }
    }
    let err = pool
        .map_chunked(panic_at, (0..20).map(|x| (x, 12)), 5)
        .expect_err("map with a panicking task succeeded");
    assert_eq!(err.failures().len(), 1, "{err}");
    check_panic(&err.failures()[0], 12, 12, &before);

    assert_eq!(worker_pids(&pool), before, "a panic cost a worker");
    end(pool, before);
}

// ---------------------------------------------------------------- timeouts

/// The task limit of the timeout scenario.
const LIMIT: Duration = Duration::from_millis(300);

/// `x` after 20 ms, unless `x` is the victim: then it marks its probe and
/// never ends.
fn hang_at((x, victim, probe): (u64, u64, Option<Probe>)) -> u64 {
    if x == victim {
        if let Some(p) = probe {
            p.mark();
        }
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    std::thread::sleep(ms(20));
    x
}

/// A task that never ends fails with `is_timeout` (alone, in a chunk too);
/// its worker is killed and replaced; the others complete. The error comes
/// within [`DETECT_WITHIN`](crate::DETECT_WITHIN) of the limit.
fn timeout_kills_only_its_worker(m: StartMethod) {
    let pool = Pool::builder()
        .processes(2)
        .start_method(m)
        .task_timeout(LIMIT)
        .build()
        .expect("pool");
    let before = worker_pids(&pool);
    let mut hung = BTreeSet::new();

    measure_latency(
        &format!("timeout {m:?}: error past the limit after"),
        || {
            let probe = Probe::new();
            let err = pool
                .submit(hang_at, (1, 1, Some(probe.clone())))
                .expect("submit")
                .get_timeout(JOIN)
                .expect_err("a task that never ends returned");
            let seen = now_ns();
            assert!(err.is_timeout(), "{err}");
            assert_eq!(err.task_index(), Some(0), "{err}");
            if hung.is_empty() {
                assert!(before.contains(&probe.pid()), "{before:?}");
            }
            hung.insert(probe.pid());
            let ran = probe.since(seen);
            assert!(ran >= LIMIT, "timed out after {ran:?}, limit {LIMIT:?}");
            ran - LIMIT
        },
    );

    // In a chunk of 5: only task 7; the others (20 ms each) complete.
    let probe = Probe::new();
    let results: Vec<Result<u64, Error>> = pool
        .imap(
            hang_at,
            (0..20).map(|x| (x, 7, (x == 7).then(|| probe.clone()))),
        )
        .chunksize(5)
        .collect();
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) if i == 7 => assert!(e.is_timeout() && e.task_index() == Some(7), "{e}"),
            Ok(v) if i != 7 => assert_eq!(*v, i as u64),
            other => panic!("task {i}: {other:?}"),
        }
    }
    hung.insert(probe.pid());

    let after = worker_pids(&pool);
    assert!(after.is_disjoint(&hung), "{after:?} vs hung {hung:?}");
    assert_gone(&hung, "workers killed for a timeout");
    assert_usable(&pool, "after timeouts");
    end(pool, before.into_iter().chain(after));
}

// ------------------------------------------------------------------ decode

/// Serializes as its number, except 13: that fails (in the worker).
#[derive(Debug, Deserialize)]
struct Unsendable(u64);

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(S::Error::custom("13 cannot be sent"));
        }
        s.serialize_u64(self.0)
    }
}

/// Deserializes from its number, except 13: that fails (in the parent).
#[derive(Debug, Serialize)]
struct Picky(u64);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
        let v = u64::deserialize(d)?;
        if v == 13 {
            return Err(D::Error::custom("13 cannot be received"));
        }
        Ok(Picky(v))
    }
}

fn unsendable(x: u64) -> Unsendable {
    Unsendable(x)
}

fn picky(x: u64) -> Picky {
    Picky(x)
}

/// Asserts that of `results` (values `== index`), only task 13 failed, as
/// undecodable.
fn only_13_undecodable(results: &[Result<u64, Error>], what: &str) {
    assert_eq!(results.len(), 20, "{what}");
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) if i == 13 => assert!(e.is_decode() && e.task_index() == Some(13), "{e}"),
            Ok(v) if i != 13 => assert_eq!(*v, i as u64, "{what}"),
            other => panic!("{what}: task {i}: {other:?}"),
        }
    }
}

/// A result the worker cannot encode fails its task alone, in a chunk of 5
/// too; a result the parent cannot decode fails its task (chunks of 1
/// here, see [`undecodable_result_fails_only_its_task_in_a_chunk`]); no
/// hang, no worker lost.
fn undecodable_results(m: StartMethod) {
    let pool = pool(m, 2);
    let before = worker_pids(&pool);
    let results: Vec<Result<u64, Error>> = pool
        .imap(unsendable, 0..20)
        .chunksize(5)
        .map(|r| r.map(|u| u.0))
        .collect();
    only_13_undecodable(&results, "unencodable, chunks of 5");
    let results: Vec<Result<u64, Error>> = pool
        .imap(picky, 0..20)
        .chunksize(1)
        .map(|r| r.map(|p| p.0))
        .collect();
    only_13_undecodable(&results, "undecodable, chunks of 1");
    let err = pool
        .submit(picky, 13)
        .expect("submit")
        .get_timeout(JOIN)
        .expect_err("an undecodable result was decoded");
    assert!(err.is_decode() && err.task_index() == Some(0), "{err}");
    assert_eq!(worker_pids(&pool), before, "a decode error cost a worker");
    end(pool, before);
}

/// (Was a library bug, now fixed; kept as a regression test.) a result the parent
/// cannot decode fails every task of its chunk, not only its own. Here
/// task 13 of chunk `10..15` fails, and so do 10, 11, 12 and 14, whose
/// results were fine ("cannot decode data from another process: 13 cannot
/// be received" for each).
///
/// Cause then: a chunk's outcomes were decoded in one go, and after an `R`
/// that failed nothing could be located. Now each outcome's end is in a
/// table; a chunk whose tasks all returned is still decoded in one pass
/// (`wire::decode_run_into`, which checks every end), and when that fails,
/// as here, item by item: this test guards that fallback, for `imap` and
/// for `map` (whose results go straight into its output when in order).
/// Worker-side encode failures are isolated per item too (each result is
/// encoded on its own as its task returns), which `undecodable_results`
/// checks.
fn undecodable_result_fails_only_its_task_in_a_chunk(m: StartMethod) {
    let pool = pool(m, 2);
    let results: Vec<Result<u64, Error>> = pool
        .imap(picky, 0..20)
        .chunksize(5)
        .map(|r| r.map(|p| p.0))
        .collect();
    only_13_undecodable(&results, "undecodable, chunks of 5");
    for chunk in [5, 20] {
        let err = pool
            .map_chunked(picky, 0..20, chunk)
            .expect_err("map with an undecodable result succeeded");
        let failed: Vec<_> = err.failures().iter().map(Error::task_index).collect();
        assert_eq!(failed, [Some(13)], "chunks of {chunk}: {err}");
        assert!(err.failures()[0].is_decode(), "{err}");
    }
    let ok: Vec<u64> = pool
        .map_chunked(picky, 14..20, 3)
        .expect("map")
        .into_iter()
        .map(|p| p.0)
        .collect();
    assert_eq!(ok, [14, 15, 16, 17, 18, 19]);
    end(pool, []);
}

// ------------------------------------------------------ results with handles

/// A pipe's read end holding `x` as text.
fn fd_with(x: u64) -> multiproc::Fd {
    use std::io::Write;
    let (r, mut w) = std::io::pipe().expect("pipe");
    write!(w, "{x}").expect("write");
    drop(w);
    multiproc::Fd::new(r)
}

fn read_fd(f: multiproc::Fd) -> u64 {
    use std::io::Read;
    let mut s = String::new();
    std::fs::File::from(f).read_to_string(&mut s).expect("read");
    s.parse().expect("a number")
}

fn fd_unsendable(x: u64) -> (multiproc::Fd, Unsendable) {
    (fd_with(x), Unsendable(x))
}

fn fd_picky(x: u64) -> (multiproc::Fd, Picky) {
    (fd_with(x), Picky(x))
}

fn picky_fd(x: u64) -> (Picky, multiproc::Fd) {
    (Picky(x), fd_with(x))
}

fn picky_panic(x: u64) -> Picky {
    if x == 12 {
        panic!("12 panics");
    }
    Picky(x)
}

fn opt_fd(x: u64) -> (Option<multiproc::Fd>, u64) {
    ((x % 7 == 3).then(|| fd_with(x)), x)
}

fn only_bad(results: Vec<Result<(u64, u64), Error>>, bad: &[usize], what: &str) {
    assert_eq!(results.len(), 20, "{what}");
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Err(e) if bad.contains(&i) => assert_eq!(e.task_index(), Some(i), "{what}: {e}"),
            Ok(pair) if !bad.contains(&i) => {
                assert_eq!(pair, (i as u64, i as u64), "{what}: task {i}")
            }
            other => panic!("{what}: task {i}: {other:?}"),
        }
    }
}

/// Results that carry handles, with a bad result (unencodable, undecodable,
/// a panic) beside them in one chunk, or handles in some results only:
/// every handle reaches its own task, the bad one fails alone, whatever the
/// chunk size (a chunk whose tasks all returned travels as bare results,
/// decoded in one pass when it has no handles, else item by item).
fn results_with_handles_keep_to_their_tasks(m: StartMethod) {
    let pool = pool(m, 2);
    let before = worker_pids(&pool);
    for n in [1usize, 5, 20] {
        let got = pool.imap(fd_unsendable, 0..20).chunksize(n);
        let got = got.map(|r| r.map(|(f, u)| (read_fd(f), u.0))).collect();
        only_bad(got, &[13], &format!("fd then unencodable, chunks of {n}"));
        let got = pool.imap(fd_picky, 0..20).chunksize(n);
        let got = got.map(|r| r.map(|(f, p)| (read_fd(f), p.0))).collect();
        only_bad(got, &[13], &format!("fd then undecodable, chunks of {n}"));
        let got = pool.imap(picky_fd, 0..20).chunksize(n);
        let got = got.map(|r| r.map(|(p, f)| (read_fd(f), p.0))).collect();
        only_bad(got, &[13], &format!("undecodable then fd, chunks of {n}"));
        let got = pool.imap(picky_panic, 0..20).chunksize(n);
        let got = got.map(|r| r.map(|p| (p.0, p.0))).collect();
        only_bad(
            got,
            &[12, 13],
            &format!("a panic and an undecodable, chunks of {n}"),
        );
        let got = pool.imap(opt_fd, 0..20).chunksize(n);
        let got = got
            .map(|r| r.map(|(f, x)| (f.map_or(x, read_fd), x)))
            .collect();
        only_bad(got, &[], &format!("some handles, chunks of {n}"));
        let e = pool
            .map_chunked(fd_picky, 0..20, n)
            .expect_err("an undecodable result was decoded");
        assert_eq!(e.failures().len(), 1, "{e}");
        assert_eq!(e.failures()[0].task_index(), Some(13), "{e}");
    }
    end(pool, before);
}

per_method!(
    results_with_handles_keep_to_their_tasks,
    panic_keeps_the_worker,
    timeout_kills_only_its_worker,
    undecodable_results,
    undecodable_result_fails_only_its_task_in_a_chunk,
);
