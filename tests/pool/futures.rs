//! [`TaskHandle`] as a `Future`, driven by a hand-written executor (no
//! tokio) that sleeps until the pool's waker fires; [`as_completed`].

use crate::common::{JOIN, ms};
use crate::{end, now_ns, per_method, pool, worker_pids};
use multiproc::{Barrier, Error, StartMethod, TaskHandle, as_completed};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Wakes the executor's thread.
struct Unparker {
    thread: Thread,
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.woken.store(true, SeqCst);
        self.thread.unpark();
    }
}

/// Runs `fut` on this thread, polling it again only when its waker fires
/// (a future that is never woken fails the test after [`JOIN`]); the
/// output and the number of polls.
fn block_on<F: Future>(fut: F) -> (F::Output, usize) {
    let unparker = Arc::new(Unparker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(Arc::clone(&unparker));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    let deadline = Instant::now() + JOIN;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return (v, polls);
        }
        while !unparker.woken.swap(false, SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "pending and never woken in {JOIN:?}");
            std::thread::park_timeout(left);
        }
    }
}

/// `x²` after `ms`.
fn square_after((x, ms): (u64, u64)) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    x * x
}

fn refuse(x: u64) -> u64 {
    panic!("no {x}")
}

/// Awaiting handles: woken by the pool (one pending poll, one ready poll),
/// composed in an `async` block, a failure as an `Err`, a finished task
/// ready at the first poll.
fn handles_are_futures(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);

    let h = pool.submit(square_after, (12, 200)).expect("submit");
    let (r, polls) = block_on(h);
    assert_eq!(r.expect("awaited"), 144);
    assert!((2..=3).contains(&polls), "{polls} polls for one wake-up");

    let h1 = pool.submit(square_after, (3, 100)).expect("submit");
    let h2 = pool.submit(square_after, (4, 10)).expect("submit");
    let (r, polls) = block_on(async move { Ok::<u64, Error>(h1.await? + h2.await?) });
    assert_eq!(r.expect("composed"), 25);
    assert!(polls <= 4, "{polls} polls");

    let (r, _) = block_on(pool.submit(refuse, 7).expect("submit"));
    let err = r.expect_err("a panicking task");
    assert!(
        err.is_panic() && err.panic_message() == Some("no 7"),
        "{err}"
    );
    assert_eq!(err.task_index(), Some(0));

    let mut h = pool.submit(square_after, (5, 0)).expect("submit");
    let deadline = Instant::now() + JOIN;
    while !h.is_ready() {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(ms(1));
    }
    let (r, polls) = block_on(&mut h);
    assert_eq!((r.expect("ready"), polls), (25, 1));
    end(pool, pids);
}

/// `(tag, CLOCK_MONOTONIC ns at the end)` after `ms`.
fn timed((tag, ms): (u32, u64)) -> (u32, u64) {
    std::thread::sleep(Duration::from_millis(ms));
    (tag, now_ns())
}

/// How far two tasks' end stamps may be out of order in `as_completed`:
/// a worker stamps, then sends; another may stamp later and send first.
const STAMP_SLACK: Duration = Duration::from_millis(10);

/// `as_completed` yields every handle once, in the order the tasks end
/// (their own end stamps), whatever the submission order.
fn as_completed_in_finish_order(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let durations = [300, 10, 150, 40, 200, 5];
    let handles: Vec<TaskHandle<(u32, u64)>> = durations
        .iter()
        .enumerate()
        .map(|(i, &d)| pool.submit(timed, (i as u32, d)).expect("submit"))
        .collect();
    let done: Vec<(u32, u64)> = as_completed(handles)
        .map(|mut h| h.get_timeout(ms(0)).expect("a yielded handle is ready"))
        .collect();
    let mut tags: Vec<u32> = done.iter().map(|(t, _)| *t).collect();
    eprintln!("as_completed {m:?}: {tags:?}");
    for w in done.windows(2) {
        let slack = STAMP_SLACK.as_nanos() as u64;
        assert!(w[1].1 + slack >= w[0].1, "out of finish order: {done:?}");
    }
    tags.sort_unstable();
    assert_eq!(tags, [0, 1, 2, 3, 4, 5]);
    end(pool, pids);
}

/// (Was a library bug, now fixed; kept as a regression test.) with 4 idle
/// workers, a slow task (600 ms) submitted first and 3 fast ones (20 ms)
/// after, the slow one does not come out of `as_completed` last: seen
/// `[0, 1, 2, 3]`, all four run one after the other on worker 0 while
/// workers 1 to 3 sit idle.
///
/// Cause: `Manager::dispatch` fills worker 0 up to `PREFETCH` (4) chunks
/// before it gives worker 1 anything, so up to 4 tasks queue behind a slow
/// one while other workers idle. See [`idle_workers_take_new_tasks`] for
/// the direct check. A fix: first give one chunk to each idle worker, and
/// prefetch only once every worker is busy (or deal the chunks round-robin).
fn slow_first_comes_out_last(m: StartMethod) {
    let pool = pool(m, 4);
    let pids = worker_pids(&pool);
    let handles: Vec<TaskHandle<(u32, u64)>> = [(0, 600), (1, 20), (2, 20), (3, 20)]
        .into_iter()
        .map(|a| pool.submit(timed, a).expect("submit"))
        .collect();
    let tags: Vec<u32> = as_completed(handles)
        .map(|mut h| h.get_timeout(ms(0)).expect("ready").0)
        .collect();
    assert_eq!(tags.last(), Some(&0), "the slow task is not last: {tags:?}");
    end(pool, pids);
}

/// Meets the others at `barrier` (at most 3 s): whether all came.
fn meet(barrier: Barrier) -> bool {
    barrier.wait_timeout(Duration::from_secs(3)).is_ok()
}

/// (Was a library bug, now fixed; same cause as
/// [`slow_first_comes_out_last`]): 4 tasks submitted to 4 idle workers do
/// not run at once: all four go to worker 0, which runs them one after the
/// other, so none meets the others at the 4-party barrier (seen: `[false;
/// 4]`). `submit`/`apply_async` of as many tasks as workers, or a `map` of
/// up to `4 × PREFETCH` chunks, runs on fewer workers than it could: a
/// 4-task `map` on 2 workers took 122 ms for 4 × 30 ms tasks, all on one.
fn idle_workers_take_new_tasks(m: StartMethod) {
    let pool = pool(m, 4);
    let pids = worker_pids(&pool);
    let barrier = Barrier::new(4).expect("Barrier");
    let handles: Vec<_> = (0..4)
        .map(|_| pool.submit(meet, barrier.clone()).expect("submit"))
        .collect();
    let met: Vec<bool> = handles
        .into_iter()
        .map(|mut h| h.get_timeout(JOIN).expect("meet"))
        .collect();
    assert_eq!(met, [true; 4], "not all 4 tasks ran at once");
    end(pool, pids);
}

per_method!(
    handles_are_futures,
    as_completed_in_finish_order,
    slow_first_comes_out_last,
    idle_workers_take_new_tasks,
);
