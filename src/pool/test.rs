use super::*;
use crate::StartMethod;
use std::future::Future;
use std::time::{Duration, Instant};

fn square(x: u64) -> u64 {
    x * x
}

fn die_on(x: u64) -> u64 {
    if x == 3 {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

fn panic_on(x: u64) -> u64 {
    assert!(x != 2, "two is not allowed");
    x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn smoke() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.map(square, 0..10).unwrap(),
        [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    );
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
}

#[test]
fn map_chunked_imap_and_unordered_agree() {
    let pool = Pool::new(2).unwrap();
    let want: Vec<u64> = (0..500).map(|x| x * x).collect();
    assert_eq!(pool.map_chunked(square, 0..500, 7).unwrap(), want);
    let got: Vec<u64> = pool.imap(square, 0..500).map(Result::unwrap).collect();
    assert_eq!(got, want);
    let mut got: Vec<u64> = pool
        .imap_unordered(square, 0..500)
        .map(Result::unwrap)
        .collect();
    got.sort();
    assert_eq!(got, want);
    let one: Vec<u64> = pool
        .imap(square, 0..20)
        .chunksize(1)
        .map(Result::unwrap)
        .collect();
    assert_eq!(one, want[..20]);
}

#[test]
fn a_killed_worker_fails_only_its_task() {
    let pool = Pool::new(2).unwrap();
    let started = Instant::now();
    let err = pool.map_chunked(die_on, 0..8, 3).unwrap_err();
    assert_eq!(err.failures().len(), 1, "{err}");
    let f = &err.failures()[0];
    assert_eq!(f.task_index(), Some(3));
    assert_eq!(f.signal(), Some(libc::SIGKILL));
    assert!(f.pid().is_some());
    assert!(started.elapsed() < Duration::from_secs(10));
    // The pool still works.
    assert_eq!(pool.map(square, 0..4).unwrap(), [0, 1, 4, 9]);
}

#[test]
fn a_panic_fails_its_task_alone_and_keeps_the_worker() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid, 0).unwrap();
    let err = pool.map(panic_on, 0..4).unwrap_err();
    let f = &err.failures()[0];
    assert!(f.is_panic());
    assert_eq!(f.task_index(), Some(2));
    assert_eq!(f.panic_message(), Some("two is not allowed"));
    assert_eq!(pool.apply(pid, 0).unwrap(), before, "no process was lost");
}

#[test]
fn timeout_kills_and_replaces_the_worker() {
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let before = pool.apply(pid, 0).unwrap();
    let err = pool.apply(sleep_ms, 10_000).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_ne!(pool.apply(pid, 0).unwrap(), before);
}

#[test]
fn cancel_a_running_task() {
    let pool = Pool::new(1).unwrap();
    let mut h = pool.submit(sleep_ms, 10_000).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(h.cancel());
    assert!(h.get().unwrap_err().is_cancelled());
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = Pool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6).map(|_| pool.apply(pid, 0).unwrap()).collect();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{pids:?}");
}

fn init_state(base: u64) -> u64 {
    base
}

fn add_state(x: u64) -> u64 {
    with_worker_state(|b: &mut u64| *b + x).unwrap_or(0)
}

#[test]
fn initializer_state_reaches_tasks() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_state, 1000)
        .build()
        .unwrap();
    assert_eq!(pool.map(add_state, 0..3).unwrap(), [1000, 1001, 1002]);
}

fn bad_init(_: u64) -> u64 {
    panic!("no database")
}

#[test]
fn a_failing_initializer_fails_tasks_instead_of_looping() {
    let pool = Pool::builder()
        .processes(1)
        .initializer(bad_init, 0)
        .build()
        .unwrap();
    let err = pool.apply(square, 1).unwrap_err();
    assert!(err.to_string().contains("no database"), "{err}");
}

#[test]
fn close_join_and_misuse() {
    let pool = Pool::new(2).unwrap();
    assert!(pool.join().unwrap_err().is_misuse());
    let h = pool.map_async(square, 0..5).unwrap();
    pool.close();
    assert!(pool.apply(square, 1).unwrap_err().is_misuse());
    pool.join().unwrap();
    assert_eq!(h.get().unwrap(), [0, 1, 4, 9, 16]);
    let pool = Pool::new(1).unwrap();
    let h = pool.starmap_async(add, [(1, 2), (3, 4)]).unwrap();
    assert_eq!(h.get().unwrap(), [3, 7]);
    assert!(Pool::new(0).unwrap_err().is_misuse());
    assert!(
        Pool::builder()
            .start_method(StartMethod::Fork)
            .build()
            .unwrap_err()
            .is_misuse()
    );
}

#[test]
fn handles_complete_and_can_be_awaited() {
    let pool = Pool::new(2).unwrap();
    let handles: Vec<_> = (0..6).map(|x| pool.submit(square, x).unwrap()).collect();
    let mut got: Vec<u64> = as_completed(handles)
        .map(|mut h| h.get().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, [0, 1, 4, 9, 16, 25]);
    let h = pool.submit(square, 12).unwrap();
    // A minimal executor: the manager thread wakes the task.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut h = std::pin::pin!(h);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let std::task::Poll::Ready(r) = h.as_mut().poll(&mut cx) {
            assert_eq!(r.unwrap(), 144);
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_panicking_progress_hook_does_not_break_the_pool() {
    let pool = Pool::builder()
        .processes(1)
        .on_progress(|_| panic!("hook bug"))
        .build()
        .unwrap();
    assert_eq!(pool.map(square, 0..3).unwrap(), [0, 1, 4]);
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn an_enormous_task_timeout_does_not_wrap_around() {
    let pool = Pool::builder()
        .processes(1)
        .task_timeout(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(pool.apply(sleep_ms, 300).unwrap(), 300);
}

fn hang(_: u64) -> u64 {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn an_initializer_that_never_ends_fails_the_tasks_within_the_timeout() {
    let pool = Pool::builder()
        .processes(1)
        .initializer(hang, 0)
        .task_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.apply(square, 1).unwrap_err();
    assert!(err.to_string().contains("keep failing to start"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn tuned_chunks_aim_at_two_milliseconds_under_pythons_ceiling() {
    use super::map::{min_chunksize, tuned_chunksize};
    // 100 µs a task: 20 tasks make 2 ms.
    assert_eq!(tuned_chunksize(10, 1_000_000, 1, 1000), 20);
    // Tiny tasks: Python's size is the ceiling.
    assert_eq!(tuned_chunksize(1, 10, 1, 500), 500);
    // Slow tasks: one at a time...
    assert_eq!(tuned_chunksize(1, 50_000_000, 1, 500), 1);
    // ... unless that makes more than 32 chunks a worker.
    assert_eq!(min_chunksize(6_400, 2), 100);
    assert_eq!(min_chunksize(100, 2), 2);
    assert_eq!(min_chunksize(1_000, 2), 16);
    assert_eq!(tuned_chunksize(1, 50_000_000, 100, 800), 100);
    // A probe that overestimates a tiny task: the floor holds.
    assert_eq!(min_chunksize(1_000_000, 2), 15_625);
    assert_eq!(tuned_chunksize(1, 500, 15_625, 125_000), 15_625);
    // Degenerate inputs stay sane.
    assert_eq!(tuned_chunksize(0, 0, 0, 0), 1);
    assert_eq!(min_chunksize(0, 0), 1);
}
