//! Workers over a pool's life: recycled by `max_tasks_per_child` (no task
//! lost, no hang), killed with a SIGKILLed parent (gone within 1 s), and
//! stopped by dropping or terminating a busy pool (bounded, and every
//! handle gets an error).

use crate::common::{
    self, JOIN, Method, ms, pid_exists, pidfd_open, proc_state, wait_all_readable,
};
use crate::{DROP_WITHIN, GONE_WITHIN, assert_gone, builder, end, per_method, pool, worker_pids};
use multiproc::{Error, Process, Queue, RawValue, StartMethod};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

/// `(x, pid of the worker)`.
fn tagged(x: u64) -> (u64, u32) {
    (x, std::process::id())
}

/// Tasks handed to workers recycled every 10 chunks.
const RECYCLED_TASKS: u64 = 300;
const MAX_TASKS: u64 = 10;

/// `max_tasks_per_child`: every worker runs at most its quota of chunks
/// and is replaced (new pids), over a few hundred tasks, with every task's
/// result delivered exactly once and no hang.
fn max_tasks_recycles_workers(m: StartMethod) {
    let pool = builder(m, 2)
        .max_tasks_per_child(MAX_TASKS)
        .build()
        .expect("pool");
    let started = Instant::now();
    // One task per chunk: a worker runs at most MAX_TASKS tasks.
    let results: Vec<(u64, u32)> = pool
        .imap(tagged, 0..RECYCLED_TASKS)
        .chunksize(1)
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("task {i}: {e}")))
        .collect();
    let mut per_pid = BTreeMap::<u32, u64>::new();
    for (i, (x, pid)) in results.iter().enumerate() {
        assert_eq!(*x, i as u64, "results out of order");
        *per_pid.entry(*pid).or_default() += 1;
    }
    assert_eq!(results.len() as u64, RECYCLED_TASKS);
    let busiest = per_pid.values().max().copied().unwrap_or(0);
    assert!(
        busiest <= MAX_TASKS,
        "a worker ran {busiest} tasks: {per_pid:?}"
    );
    assert!(
        per_pid.len() as u64 >= RECYCLED_TASKS / MAX_TASKS,
        "only {} workers for {RECYCLED_TASKS} tasks: {per_pid:?}",
        per_pid.len()
    );
    eprintln!(
        "max_tasks {m:?}: {RECYCLED_TASKS} tasks on {} workers in {:?}",
        per_pid.len(),
        started.elapsed()
    );
    // Chunks of several tasks (map's own chunking) are recycled too.
    let values = pool
        .map_async(tagged, 0..RECYCLED_TASKS)
        .expect("map_async")
        .get_timeout(JOIN)
        .expect("map over recycled workers");
    assert!(values.iter().enumerate().all(|(i, (x, _))| *x == i as u64));
    let mut seen: BTreeSet<u32> = per_pid.into_keys().collect();
    seen.extend(values.iter().map(|(_, pid)| *pid));
    // The retired workers are gone (exited and reaped), not just idle: at
    // most the pool's current workers are left.
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let alive: Vec<u32> = seen
            .iter()
            .copied()
            .filter(|&p| pid_exists(p as i32))
            .collect();
        if alive.len() <= pool.processes() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retired workers still there: {alive:?}"
        );
        std::thread::sleep(ms(5));
    }
    end(pool, seen);
}

// ---------------------------------------------------------- parent death

fn sleep_forever(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The "parent": builds a pool, reports its workers' pids, keeps one
/// busy, and blocks until killed.
fn pool_host((method, report): (Method, Queue<Vec<u32>>)) {
    let pool = builder(method.start_method(), 2)
        .build()
        .expect("the host's pool");
    let pids = worker_pids(&pool);
    let _busy = pool.submit(sleep_forever, ()).expect("submit");
    report
        .put(pids.into_iter().collect())
        .expect("reporting the pids");
    sleep_forever(());
}

/// The host, killed and reaped if the scenario fails before it does so.
struct Host(Process<()>);

impl Drop for Host {
    fn drop(&mut self) {
        if self.0.exitcode().is_none() {
            let _ = self.0.kill();
            let _ = self.0.join_timeout(JOIN);
        }
    }
}

/// A process that owns a pool is SIGKILLed: every worker (and, for
/// ForkServer, the host's fork server) is gone within 1 s.
fn parent_killed_takes_the_workers(m: StartMethod) {
    let method = match m {
        StartMethod::Spawn => Method::Spawn,
        _ => Method::ForkServer,
    };
    let report = Queue::new().expect("Queue");
    let mut host = Host(
        Process::builder()
            .name("pool-host")
            .daemon(true)
            .stderr(multiproc::Stdio::null())
            .spawn(pool_host, (method, report.clone()))
            .expect("spawning the host"),
    );
    let workers = match report.get_timeout(JOIN) {
        Ok(p) => p,
        Err(e) => {
            let _ = host.0.kill();
            let end = host.0.join_timeout(JOIN).err();
            panic!("the host never reported its workers: {e:?}; it ended with {end:?}");
        }
    };
    let host_pid = host.0.pid();
    let mut watched: BTreeSet<u32> = workers.iter().copied().collect();
    assert_eq!(watched.len(), 2, "{workers:?}");
    // A worker's OS parent is a helper of the host (its fork server, or
    // the process that execs Spawn children): watch it too.
    let parents: BTreeSet<u32> = workers
        .iter()
        .map(|&p| {
            proc_state(p as i32)
                .unwrap_or_else(|| panic!("no worker {p}"))
                .1 as u32
        })
        .collect();
    watched.extend(parents.iter().copied().filter(|p| *p != host_pid));
    eprintln!(
        "parent death {m:?}: host {host_pid}, workers {workers:?}, their parents {parents:?}"
    );
    let pidfds: Vec<(u32, OwnedFd)> = watched
        .iter()
        .map(|&p| {
            (
                p,
                pidfd_open(p as i32).unwrap_or_else(|e| panic!("{p}: {e}")),
            )
        })
        .collect();
    let fds: Vec<_> = pidfds.iter().map(|(_, fd)| fd.as_fd()).collect();
    assert_eq!(
        wait_all_readable(&fds, Instant::now()).len(),
        fds.len(),
        "died early"
    );

    host.0.kill().expect("kill");
    let killed = Instant::now();
    let survivors = wait_all_readable(&fds, killed + Duration::from_secs(1));
    let survivors: Vec<u32> = survivors.iter().map(|&i| pidfds[i].0).collect();
    assert!(
        survivors.is_empty(),
        "alive 1 s after the host's SIGKILL: {survivors:?}"
    );
    eprintln!(
        "parent death {m:?}: workers gone {:?} after the SIGKILL",
        killed.elapsed()
    );
    let err = host.0.join_timeout(JOIN).expect_err("the host returned");
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
    assert!(common::my_zombies().is_empty());
}

// ----------------------------------------------------------- busy drops

/// Counts itself in `running`, then never ends.
fn hang_counted(running: RawValue<u64>) -> u64 {
    running.atomic().fetch_add(1, SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Waits until `running` reaches `n`.
fn wait_running(running: &RawValue<u64>, n: u64) {
    let deadline = Instant::now() + JOIN;
    while running.get() < n {
        assert!(
            Instant::now() < deadline,
            "only {} tasks started",
            running.get()
        );
        std::thread::sleep(ms(1));
    }
}

/// Dropping a pool whose workers are all busy (and more tasks queued)
/// returns within [`DROP_WITHIN`]; every handle then gets an error, not a
/// hang; the workers are gone.
fn drop_busy_pool(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let running = RawValue::new(0u64).expect("RawValue");
    let handles: Vec<_> = (0..6)
        .map(|_| pool.submit(hang_counted, running.clone()).expect("submit"))
        .collect();
    wait_running(&running, 2);
    let started = Instant::now();
    drop(pool);
    let took = started.elapsed();
    eprintln!("drop busy {m:?}: {took:?}");
    assert!(took < DROP_WITHIN, "dropping a busy pool took {took:?}");
    for (i, mut h) in handles.into_iter().enumerate() {
        let err = h
            .get_timeout(Duration::from_secs(1))
            .expect_err("a task of a dropped pool returned");
        assert!(!err.is_timeout(), "task {i}: no error delivered within 1 s");
    }
    assert_gone(&pids, "workers of a dropped busy pool");
}

/// `terminate` from another thread while `map` waits on hanging tasks:
/// the map returns every task as failed, at once; the pool refuses new
/// work.
fn terminate_during_map(m: StartMethod) {
    let pool = pool(m, 2);
    let pids = worker_pids(&pool);
    let running = RawValue::new(0u64).expect("RawValue");
    let took = std::thread::scope(|s| {
        let mapper = s.spawn(|| pool.map(hang_counted, vec![running.clone(); 6]));
        wait_running(&running, 2);
        let started = Instant::now();
        pool.terminate();
        let took = started.elapsed();
        let result = mapper.join().expect("the mapping thread panicked");
        let err = result.expect_err("map over a terminated pool succeeded");
        assert_eq!(err.failures().len(), 6, "{err}");
        assert!(
            err.failures().iter().all(Error::is_terminated),
            "every task fails as terminated: {err}"
        );
        took
    });
    eprintln!("terminate {m:?}: {took:?}");
    assert!(took < DROP_WITHIN, "terminate took {took:?}");
    assert!(
        pool.apply(crate::square, 2)
            .expect_err("closed")
            .is_misuse()
    );
    assert_gone(&pids, "workers of a terminated pool");
    drop(pool);
}

per_method!(
    max_tasks_recycles_workers,
    parent_killed_takes_the_workers,
    drop_busy_pool,
    terminate_during_map,
);
