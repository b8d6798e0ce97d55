use super::*;
use crate::error::{BarrierError, TryLockError};
use crate::{OwnerDied, Value};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn smoke() {
    let lock = Lock::new().unwrap();
    let g = lock.acquire().unwrap();
    drop(g);
    assert!(lock.try_acquire().is_ok());
}

#[test]
fn lock_excludes_other_threads_and_times_out() {
    let lock = Arc::new(Lock::new().unwrap());
    let g = lock.acquire().unwrap();
    let l2 = lock.clone();
    let t = thread::spawn(move || {
        assert!(l2.try_acquire().unwrap_err().is_would_block());
        let start = Instant::now();
        assert!(matches!(
            l2.acquire_timeout(ms(30)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(start.elapsed() >= ms(30));
    });
    t.join().unwrap();
    drop(g);
}

#[test]
#[should_panic(expected = "already holds this lock")]
fn relocking_a_lock_in_one_thread_panics() {
    let lock = Lock::new().unwrap();
    let _a = lock.acquire().unwrap();
    let _b = lock.acquire();
}

#[test]
fn rlock_nests_and_excludes_other_threads() {
    let lock = Arc::new(RLock::new().unwrap());
    let a = lock.acquire().unwrap();
    let b = lock.acquire().unwrap();
    drop(a);
    let l2 = lock.clone();
    assert!(
        thread::spawn(move || l2.try_acquire().is_err())
            .join()
            .unwrap()
    );
    drop(b);
    let l2 = lock.clone();
    assert!(
        thread::spawn(move || l2.try_acquire().is_ok())
            .join()
            .unwrap()
    );
}

#[test]
fn owner_died_when_a_holding_thread_exits() {
    // A thread that exits holding a robust lock is a dead owner too.
    let lock = Arc::new(Lock::new().unwrap());
    let l2 = lock.clone();
    thread::spawn(move || std::mem::forget(l2.acquire().unwrap()))
        .join()
        .unwrap();
    let e = lock.acquire().unwrap_err();
    drop(e.into_inner());
    assert!(
        lock.acquire().is_ok(),
        "healthy again after the first report"
    );
}

#[test]
fn semaphore_counts_permits() {
    let sem = Semaphore::new(2).unwrap();
    let a = sem.acquire().unwrap();
    let b = sem.try_acquire().unwrap();
    assert!(sem.try_acquire().unwrap_err().is_would_block());
    assert!(sem.acquire_timeout(ms(20)).is_err());
    assert_eq!(sem.value(), 0);
    drop(a);
    assert_eq!(sem.value(), 1);
    b.forget();
    assert_eq!(sem.value(), 1);
    sem.release().unwrap();
    assert_eq!(sem.value(), 2);
}

#[test]
fn semaphore_recovers_a_dead_threads_permit() {
    let sem = Arc::new(Semaphore::new(1).unwrap());
    let s2 = sem.clone();
    thread::spawn(move || std::mem::forget(s2.acquire().unwrap()))
        .join()
        .unwrap();
    let g = sem.acquire_timeout(ms(500)).unwrap_err();
    let TryLockError::OwnerDied(g) = g else {
        panic!("expected OwnerDied");
    };
    drop(g.into_inner());
    assert_eq!(sem.value(), 1);
    drop(sem.acquire().unwrap());
}

#[test]
fn bounded_semaphore_refuses_extra_releases() {
    let sem = BoundedSemaphore::new(2).unwrap();
    assert!(sem.release().unwrap_err().is_misuse());
    let g = sem.acquire().unwrap();
    g.forget();
    sem.release().unwrap();
    assert!(sem.release().is_err());
}

#[test]
fn event_wakes_waiters() {
    let ev = Arc::new(Event::new().unwrap());
    assert!(!ev.wait_timeout(ms(10)));
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let e = ev.clone();
            thread::spawn(move || e.wait_timeout(Duration::from_secs(10)))
        })
        .collect();
    thread::sleep(ms(20));
    ev.set();
    for w in waiters {
        assert!(w.join().unwrap());
    }
    ev.clear();
    assert!(!ev.is_set());
}

#[test]
fn condition_notifies_and_times_out() {
    let cond = Arc::new(Condition::new().unwrap());
    let flag = Value::new(0u32).unwrap();
    let (c2, f2) = (cond.clone(), flag.clone());
    let t = thread::spawn(move || {
        let g = c2.acquire().unwrap();
        let g = c2.wait_while(g, |_| f2.get() == 0).unwrap();
        drop(g);
    });
    thread::sleep(ms(20));
    {
        let _g = cond.acquire().unwrap();
        flag.set(1);
        cond.notify_all();
    }
    t.join().unwrap();
    let g = cond.acquire().unwrap();
    let (_g, r) = cond.wait_timeout(g, ms(20)).unwrap();
    assert!(r.timed_out());
}

#[test]
fn barrier_passes_rounds_breaks_and_resets() {
    let b = Arc::new(Barrier::new(3).unwrap());
    for _round in 0..3 {
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.wait_timeout(Duration::from_secs(10)).unwrap())
            })
            .collect();
        let mut idx = vec![b.wait_timeout(Duration::from_secs(10)).unwrap()];
        idx.extend(ts.into_iter().map(|t| t.join().unwrap()));
        idx.sort();
        assert_eq!(idx, [0, 1, 2]);
    }
    let b2 = b.clone();
    let t = thread::spawn(move || b2.wait());
    assert_eq!(b.wait_timeout(ms(50)), Err(BarrierError::Timeout));
    assert_eq!(t.join().unwrap(), Err(BarrierError::Broken));
    assert!(b.is_broken());
    assert_eq!(b.wait(), Err(BarrierError::Broken));
    b.reset();
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
    b.abort();
    assert_eq!(b.wait(), Err(BarrierError::Broken));
}

#[test]
fn objects_refuse_the_wrong_kind_on_decode() {
    let lock = Lock::new().unwrap();
    let (bytes, fds) = crate::wire::encode(&lock).unwrap();
    let e = crate::wire::decode::<Event>(&bytes, fds).unwrap_err();
    assert!(e.to_string().contains("expected a shared Event"), "{e}");
    let (bytes, fds) = crate::wire::encode(&Value::new(1u32).unwrap()).unwrap();
    assert!(crate::wire::decode::<Value<f32>>(&bytes, fds).is_err());
    let (bytes, fds) = crate::wire::encode(&Value::new(7u32).unwrap()).unwrap();
    assert_eq!(
        crate::wire::decode::<Value<u32>>(&bytes, fds)
            .unwrap()
            .get(),
        7
    );
}

#[test]
fn owner_died_display() {
    let e = OwnerDied::new(());
    assert!(e.to_string().contains("died"));
}

#[test]
fn a_condition_accepts_its_lock_received_separately() {
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(lock.clone()).unwrap();
    // Another mapping of the same lock, as a process receiving it apart
    // from the condition would have.
    let (bytes, fds) = crate::wire::encode(&lock).unwrap();
    let copy: Lock = crate::wire::decode(&bytes, fds).unwrap();
    let g = copy.acquire().unwrap();
    let (_g, r) = cond.wait_timeout(g, ms(10)).unwrap();
    assert!(r.timed_out());
}

#[test]
fn a_process_takes_one_barrier_entry_however_many_handles() {
    let b = Barrier::new(2).unwrap();
    let clones: Vec<Barrier> = (0..100).map(|_| b.clone()).collect();
    assert_eq!(b.watched(), 1);
    drop(clones);
    assert_eq!(b.watched(), 1, "the first handle still holds it");
    let (bytes, fds) = crate::wire::encode(&b).unwrap();
    let copy: Barrier = crate::wire::decode(&bytes, fds).unwrap();
    assert_eq!(copy.watched(), 1, "another mapping, the same process");
    drop(b);
    assert_eq!(copy.watched(), 1);
    let probe = copy.clone();
    drop(copy);
    assert_eq!(probe.watched(), 1);
    let entries_left = {
        let p = probe.clone();
        drop(probe);
        p.watched()
    };
    assert_eq!(entries_left, 1);
}
