//! An initializer whose argument carries handles (a [`Queue`] and a
//! [`Lock`]): every worker, replacements included, gets working copies;
//! what the initializer returns is the worker's state, reached by tasks
//! through [`with_worker_state`] and kept across tasks.

use crate::common::JOIN;
use crate::{builder, end, per_method, worker_pids};
use multiproc::{Lock, Queue, StartMethod, current_process, with_worker_state};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The initializer's argument: handles shared with the test.
#[derive(Clone, Serialize, Deserialize)]
struct Shared {
    /// Each worker says `(name, pid)` here as it starts.
    hello: Queue<(String, u32)>,
    lock: Lock,
}

/// A worker's state.
struct State {
    pid: u32,
    calls: u64,
    shared: Shared,
}

fn register(shared: Shared) -> State {
    let me = current_process();
    shared
        .hello
        .put((me.name().to_owned(), me.pid()))
        .expect("saying hello");
    State {
        pid: me.pid(),
        calls: 0,
        shared,
    }
}

/// `(pid, how many tasks this worker has run so far)`.
fn count(_: u64) -> (u32, u64) {
    with_worker_state(|s: &mut State| {
        s.calls += 1;
        (s.pid, s.calls)
    })
    .expect("no worker state")
}

/// Whether the lock of the state could be taken now.
fn lock_is_free(_: u64) -> bool {
    with_worker_state(|s: &mut State| s.shared.lock.try_acquire().is_ok()).expect("no state")
}

/// Says `("task x", pid)` through the queue of the state.
fn announce(x: u64) -> u32 {
    with_worker_state(|s: &mut State| {
        s.shared
            .hello
            .put((format!("task {x}"), s.pid))
            .expect("put");
        s.pid
    })
    .expect("no state")
}

/// Whether asking for a state of the wrong type gives `None`.
fn wrong_type(_: u64) -> bool {
    with_worker_state(|_: &mut String| ()).is_none()
}

fn kill_self(_: u64) -> u64 {
    // SAFETY: raise only sends a signal to this process.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!("SIGKILL cannot be caught")
}

fn initializer_with_handles(m: StartMethod) {
    let shared = Shared {
        hello: Queue::new().expect("Queue"),
        lock: Lock::new().expect("Lock"),
    };
    let pool = builder(m, 3)
        .initializer(register, shared.clone())
        .build()
        .expect("pool");
    let hello = |what: &str| {
        shared
            .hello
            .get_timeout(JOIN)
            .unwrap_or_else(|e| panic!("{what}: no hello: {e:?}"))
    };
    let greeted: BTreeMap<u32, String> = (0..3)
        .map(|_| hello("a worker"))
        .map(|(n, p)| (p, n))
        .collect();
    let names: BTreeSet<&String> = greeted.values().collect();
    assert_eq!(names.len(), 3, "{greeted:?}");
    assert!(
        names.iter().all(|n| n.starts_with("PoolWorker-")),
        "{greeted:?}"
    );
    let pids = worker_pids(&pool);
    assert_eq!(pids, greeted.keys().copied().collect(), "{greeted:?}");

    // The state lives across tasks: each worker's count goes up by one per
    // task it runs, in task order.
    let counts = pool.map_chunked(count, 0..30, 1).expect("map");
    let mut last = BTreeMap::<u32, u64>::new();
    for (pid, n) in &counts {
        let prev = last.insert(*pid, *n).unwrap_or(0);
        assert_eq!(*n, prev + 1, "worker {pid}: {counts:?}");
    }
    assert_eq!(last.values().sum::<u64>(), 30, "{counts:?}");

    // The handles in the state are the test's own objects.
    let guard = shared.lock.acquire().expect("lock");
    assert!(
        !pool.apply(lock_is_free, 0).expect("apply"),
        "a copy of the lock, not the lock"
    );
    drop(guard);
    assert!(pool.apply(lock_is_free, 0).expect("apply"));
    let pid = pool.apply(announce, 5).expect("apply");
    assert_eq!(hello("a task"), ("task 5".to_owned(), pid));
    assert!(pool.apply(wrong_type, 0).expect("apply"));
    assert!(
        with_worker_state(|_: &mut State| ()).is_none(),
        "state outside a worker"
    );

    // A replacement worker runs the initializer too, with working handles.
    let err = pool
        .apply(kill_self, 0)
        .expect_err("a killed task returned");
    let dead = err.pid().expect("pid");
    assert!(pids.contains(&dead), "{err}");
    let (name, new_pid) = hello("the replacement");
    assert!(
        !names.contains(&name) && name.starts_with("PoolWorker-"),
        "{name}"
    );
    assert!(!pids.contains(&new_pid), "{new_pid} in {pids:?}");
    let after = worker_pids(&pool);
    assert!(
        after.contains(&new_pid) && !after.contains(&dead),
        "{after:?}"
    );
    assert!(pool.apply(lock_is_free, 0).expect("apply"));
    end(pool, pids.into_iter().chain(after));
    assert!(shared.hello.try_get().is_err(), "an unexpected hello");
}

per_method!(initializer_with_handles);
