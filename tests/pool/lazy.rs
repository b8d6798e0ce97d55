//! `imap` and `imap_unordered` over an endless input (`0..`): they pull
//! only a bounded window beyond what was consumed, and an `Imap` dropped
//! early leaves the pool usable, its unstarted work dropped.

use crate::common::ms;
use crate::{assert_usable, end, per_method, pool, square, worker_pids};
use multiproc::{RawValue, StartMethod};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// Results consumed from each endless input.
const TAKEN: usize = 200;

/// `0..`, counting in `pulls` every item taken from it.
fn counted(pulls: &Arc<AtomicUsize>) -> impl Iterator<Item = u64> + use<> {
    let pulls = Arc::clone(pulls);
    (0u64..).inspect(move |_| {
        pulls.fetch_add(1, SeqCst);
    })
}

/// How far past `consumed` an `Imap` of `processes` workers may have
/// pulled with chunks of at most `chunk`: a window of a few hundred tasks
/// or a few chunks per worker (generous: in flight are at most the larger
/// of 1,024 tasks — 256 unless tasks are tiny — and `8 × processes + 2`
/// chunks today).
fn bound(consumed: usize, processes: usize, chunk: usize) -> usize {
    consumed + 2048.max((16 * processes + 4) * chunk) + chunk
}

/// `x²` after 1 ms: slow enough that the automatic chunk size stays at 1
/// or 2 (it aims at 2 ms chunks).
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(ms(1));
    x * x
}

/// `take(n)` of an endless input: the right results, and the input pulled
/// at most a small window beyond `n` (fixed chunks of 3, ordered and
/// unordered; automatic chunks).
fn imap_pulls_a_bounded_window(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let p = pool.processes();

    let pulls = Arc::new(AtomicUsize::new(0));
    let got: Vec<u64> = pool
        .imap(square, counted(&pulls))
        .chunksize(3)
        .take(TAKEN)
        .map(|r| r.expect("imap"))
        .collect();
    let want: Vec<u64> = (0..TAKEN as u64).map(|x| x * x).collect();
    assert_eq!(got, want);
    let pulled = pulls.load(SeqCst);
    eprintln!("imap {m:?}, chunks of 3: {pulled} pulled for {TAKEN}");
    assert!(pulled <= bound(TAKEN, p, 3), "pulled {pulled} for {TAKEN}");

    let pulls = Arc::new(AtomicUsize::new(0));
    let mut got: Vec<u64> = pool
        .imap_unordered(square, counted(&pulls))
        .chunksize(3)
        .take(TAKEN)
        .map(|r| r.expect("imap_unordered"))
        .collect();
    let pulled = pulls.load(SeqCst);
    eprintln!("imap_unordered {m:?}, chunks of 3: {pulled} pulled for {TAKEN}");
    assert!(pulled <= bound(TAKEN, p, 3), "pulled {pulled} for {TAKEN}");
    got.sort_unstable();
    got.dedup();
    assert_eq!(got.len(), TAKEN, "duplicate results");
    assert!(
        got.iter()
            .all(|v| v.isqrt() * v.isqrt() == *v && v.isqrt() < pulled as u64)
    );

    let pulls = Arc::new(AtomicUsize::new(0));
    let got: Vec<u64> = pool
        .imap(slow_square, counted(&pulls))
        .take(TAKEN)
        .map(|r| r.expect("imap"))
        .collect();
    assert_eq!(got, want);
    let pulled = pulls.load(SeqCst);
    eprintln!("imap {m:?}, automatic chunks (1 ms tasks): {pulled} pulled for {TAKEN}");
    assert!(pulled <= bound(TAKEN, p, 4), "pulled {pulled} for {TAKEN}");
    end(pool, pids);
}

/// Counts itself in `ran`, takes 50 ms; `x`.
fn slow_counted((x, ran): (u64, RawValue<u64>)) -> u64 {
    ran.atomic().fetch_add(1, SeqCst);
    std::thread::sleep(ms(50));
    x
}

/// An `Imap` over an endless input of slow tasks, dropped after 3 results:
/// the pool answers within 2 s (what was handed to the workers finishes,
/// the rest is dropped), and no task ran that was not pulled.
fn imap_dropped_early(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let ran = RawValue::new(0u64).expect("RawValue");
    let pulls = Arc::new(AtomicUsize::new(0));
    {
        let input = counted(&pulls).map(|x| (x, ran.clone()));
        let mut it = pool.imap(slow_counted, input).chunksize(2);
        for x in 0..3 {
            assert_eq!(it.next().map(|r| r.expect("imap")), Some(x));
        }
    }
    let dropped = Instant::now();
    assert_usable(&pool, "after an Imap was dropped");
    let took = dropped.elapsed();
    let pulled = pulls.load(SeqCst) as u64;
    std::thread::sleep(ms(200));
    let executed = ran.get();
    eprintln!("imap dropped {m:?}: next map after {took:?}; {pulled} pulled, {executed} ran");
    assert!(
        took < Duration::from_secs(2),
        "the pool was busy {took:?} after the drop"
    );
    assert!(executed <= pulled, "{executed} tasks ran, {pulled} pulled");
    std::thread::sleep(ms(200));
    assert_eq!(ran.get(), executed, "abandoned tasks still starting later");
    end(pool, pids);
}

/// `x²`, after 1 s for the first task.
fn slow_head(x: u64) -> u64 {
    if x == 0 {
        std::thread::sleep(Duration::from_secs(1));
    }
    x * x
}

/// (Was a library bug, now fixed; kept as a regression test.) while the first task of
/// an ordered `imap` over `0..` takes 1 s and the others are instant, the
/// input is pulled without bound: 121,395 items (ForkServer) and 125,136
/// (Spawn) by the time the first result comes out, every one of their
/// results buffered. An endless input with one slow task exhausts memory.
///
/// Cause: `Imap::fill` limits `submitted - received` (tasks in flight), but
/// results that arrive ahead of the next one in order count as received
/// and wait in `ahead`, unbounded. Counting against the window what is
/// submitted and not yet *yielded* (`submitted - next_out` for `imap`,
/// `submitted - yielded` for `imap_unordered`) bounds memory as well.
fn imap_slow_head_keeps_the_bound(m: StartMethod) {
    let pool = pool(m, 2);
    let pulls = Arc::new(AtomicUsize::new(0));
    {
        let mut it = pool.imap(slow_head, counted(&pulls)).chunksize(1);
        assert_eq!(it.next().map(|r| r.expect("imap")), Some(0));
        let pulled = pulls.load(SeqCst);
        eprintln!("imap {m:?}, 1 s head: {pulled} pulled for 1");
        assert!(
            pulled <= bound(1, pool.processes(), 1),
            "pulled {pulled} for 1"
        );
    }
    end(pool, []);
}

/// Task of `imap_feeds_its_own_input`: puts the next number on the
/// queue its input reads (up to 10), returns its own.
fn step((q, n): (multiproc::Queue<u32>, u32)) -> u32 {
    if n < 10 {
        q.put(n + 1).expect("put");
    }
    n
}

/// A work list: the input yields a seed, then waits on a queue that the
/// tasks themselves fill. Each task pulled must reach a worker before the
/// next pull, which may block for its effect. (With chunks sent to the
/// manager in batches of 64, the seed stayed unsent while the input
/// waited: the `imap` ended after 0, or would have hung with `get`.)
fn imap_feeds_its_own_input(m: StartMethod) {
    let pool = pool(m, 2);
    let q = multiproc::Queue::<u32>::new().expect("queue");
    let mut seeded = false;
    let feed = q.clone();
    let input = std::iter::from_fn(move || {
        if !seeded {
            seeded = true;
            return Some((feed.clone(), 0));
        }
        let next = feed.get_timeout(Duration::from_secs(5)).ok()?;
        Some((feed.clone(), next))
    });
    let got: Vec<u32> = pool
        .imap(step, input.take(11))
        .map(|r| r.expect("imap"))
        .collect();
    assert_eq!(got, (0..=10).collect::<Vec<u32>>());
    drop(q);
    end(pool, []);
}

per_method!(
    imap_pulls_a_bounded_window,
    imap_dropped_early,
    imap_slow_head_keeps_the_bound,
    imap_feeds_its_own_input,
);
