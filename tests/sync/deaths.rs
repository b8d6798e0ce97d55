//! Section 2: holders killed.
//!
//! A victim child takes a `Lock`, an `RLock` (twice: depth 2), a
//! `Semaphore` permit or a `Value`'s lock, says so through an `Event`, and
//! sleeps until `SIGKILL`ed. A waiter is already asleep in a blocking
//! `acquire` when the kill comes, in another child or on a thread of the
//! test process (its threads' states in /proc say when it sleeps). The
//! waiter must get `OwnerDied`, carrying a working guard, within
//! [`OWNER_DIED_WITHIN`] of the kill; afterwards the lock is healthy for
//! everybody: the next acquire is clean, and it still excludes others.

use super::*;
use multiproc::{
    Event, Lock, LockGuard, LockResult, RLock, RLockGuard, Semaphore, SemaphoreGuard, TryLockError,
    TryLockResult, Value, ValueGuard,
};
use serde::Deserialize;

/// How soon after the kill the blocked waiter must have the lock. The
/// kernel releases a robust mutex as its holder exits and wakes a waiter
/// at once (a few ms here); a semaphore's waiter looks for dead holders
/// every 20 ms. No slack was needed on the 2-core test machine, even with
/// a parallel build running.
const OWNER_DIED_WITHIN: Duration = Duration::from_millis(100);

/// What the victim writes into a `Value` before dying with its lock: the
/// half-done update the next locker must be able to see and repair.
const HALF_DONE: u64 = 0xdead;

/// One object of each kind that a process can hold when it dies.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Guarded {
    Lock(Lock),
    RLock(RLock),
    Semaphore(Semaphore),
    Value(Value<u64>),
}

/// What holding a [`Guarded`] takes (kept for its `Drop`).
enum Held<'a> {
    Lock(#[allow(dead_code)] LockGuard<'a>),
    RLock(#[allow(dead_code)] Vec<RLockGuard<'a>>),
    Semaphore(#[allow(dead_code)] SemaphoreGuard<'a>),
    Value(ValueGuard<'a, u64>),
}

impl Held<'_> {
    /// What the value holds, for a `Value`.
    fn value(&self) -> Option<u64> {
        match self {
            Held::Value(g) => Some(**g),
            _ => None,
        }
    }
}

/// How an acquire went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Got {
    Clean,
    OwnerDied,
    WouldBlock,
}

fn split<G>(r: LockResult<G>) -> (G, Got) {
    match r {
        Ok(g) => (g, Got::Clean),
        Err(e) => (e.into_inner(), Got::OwnerDied),
    }
}

fn split_try<G>(r: TryLockResult<G>) -> (Option<G>, Got) {
    match r {
        Ok(g) => (Some(g), Got::Clean),
        Err(TryLockError::OwnerDied(e)) => (Some(e.into_inner()), Got::OwnerDied),
        Err(TryLockError::WouldBlock) => (None, Got::WouldBlock),
    }
}

impl Guarded {
    /// Blocking acquire (an `RLock` at depth 1).
    fn acquire(&self) -> (Held<'_>, Got) {
        match self {
            Guarded::Lock(l) => {
                let (g, got) = split(l.acquire());
                (Held::Lock(g), got)
            }
            Guarded::RLock(l) => {
                let (g, got) = split(l.acquire());
                (Held::RLock(vec![g]), got)
            }
            Guarded::Semaphore(s) => {
                let (g, got) = split(s.acquire());
                (Held::Semaphore(g), got)
            }
            Guarded::Value(v) => {
                let (g, got) = split(v.lock());
                (Held::Value(g), got)
            }
        }
    }

    /// Acquires as the victim does: an `RLock` twice, a `Value` left with
    /// [`HALF_DONE`] in it.
    fn hold_deep(&self) -> (Held<'_>, Got) {
        let (mut held, got) = self.acquire();
        match (&mut held, self) {
            (Held::RLock(gs), Guarded::RLock(l)) => {
                gs.push(l.acquire().expect("re-entering an RLock we hold"))
            }
            (Held::Value(g), _) => **g = HALF_DONE,
            _ => {}
        }
        (held, got)
    }

    /// Non-blocking acquire, released at once.
    fn try_acquire(&self) -> Got {
        match self {
            Guarded::Lock(l) => split_try(l.try_acquire()).1,
            Guarded::RLock(l) => split_try(l.try_acquire()).1,
            Guarded::Semaphore(s) => split_try(s.try_acquire()).1,
            Guarded::Value(v) => split_try(v.try_lock()).1,
        }
    }
}

/// The victim: holds `obj`, says so, and sleeps until killed.
fn hold_until_killed((obj, holding): (Guarded, Event)) {
    let (_held, got) = obj.hold_deep();
    assert_eq!(got, Got::Clean, "the victim's own acquire");
    holding.set();
    sleep_forever();
}

/// What a waiter saw: how its acquire went, when it returned (`mono_ns`),
/// and the value, for a `Value`.
type Waited = (Got, u64, Option<u64>);

/// The waiter child: says it is about to wait, then blocks in `acquire`.
fn wait_for_it((obj, waiting): (Guarded, Event)) -> Waited {
    waiting.set();
    let (held, got) = obj.acquire();
    let at = mono_ns();
    (got, at, held.value())
}

/// A child's try-acquire, released at once.
fn probe(obj: Guarded) -> Got {
    obj.try_acquire()
}

fn probe_child(obj: &Guarded) -> Got {
    Kid::spawn(builder(StartMethod::ForkServer), probe, obj.clone()).finish("probe")
}

/// Where the waiter blocks.
#[derive(Debug, Clone, Copy)]
enum Waiter {
    /// In another child (the victim is a ForkServer child).
    Child,
    /// On a thread of the test process (the victim is a Spawn child).
    Parent,
}

/// Kills the victim while the waiter is asleep in `acquire`; returns what
/// the waiter got and how long after the kill it got it.
fn kill_under_waiter(
    obj: &Guarded,
    v: &mut Kid<()>,
    waiter: Waiter,
) -> (Got, Duration, Option<u64>) {
    match waiter {
        Waiter::Child => {
            let waiting = Event::new().unwrap();
            let mut w = Kid::spawn(
                builder(StartMethod::ForkServer),
                wait_for_it,
                (obj.clone(), waiting.clone()),
            );
            assert!(waiting.wait_timeout(JOIN), "the waiter never started");
            child_asleep("the waiter child", w.pid());
            let killed = mono_ns();
            v.kill().expect("kill");
            let (got, at, seen) = w.finish("the waiter child");
            (got, between(killed, at), seen)
        }
        Waiter::Parent => {
            let (tid_tx, tid_rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let o = obj.clone();
            let t = std::thread::spawn(move || {
                tid_tx.send(gettid()).expect("sending the tid");
                let (held, got) = o.acquire();
                let at = Instant::now();
                let seen = held.value();
                drop(held);
                done_tx.send((got, at, seen)).expect("sending the outcome");
            });
            let tid = tid_rx.recv_timeout(JOIN).expect("the waiter thread's tid");
            thread_asleep("the waiter thread", tid);
            let killed = Instant::now();
            v.kill().expect("kill");
            let (got, at, seen) = done_rx
                .recv_timeout(JOIN)
                .expect("the waiter thread is still blocked: the death was not noticed");
            t.join().expect("the waiter thread");
            (got, at.duration_since(killed), seen)
        }
    }
}

/// The whole scenario for one kind of object and one waiter.
fn holder_killed(name: &str, make: fn() -> Guarded, waiter: Waiter) {
    let what = format!("{name} {waiter:?}");
    let obj = make();
    let holding = Event::new().unwrap();
    let method = match waiter {
        Waiter::Child => StartMethod::ForkServer,
        Waiter::Parent => StartMethod::Spawn,
    };
    let mut v = Kid::spawn(
        victim(method),
        hold_until_killed,
        (obj.clone(), holding.clone()),
    );
    assert!(
        holding.wait_timeout(JOIN),
        "{what}: the victim never held it"
    );
    assert_eq!(obj.try_acquire(), Got::WouldBlock, "{what}: not held?");

    let (got, after, seen) = kill_under_waiter(&obj, &mut v, waiter);
    eprintln!("{what}: the waiter had it {after:?} after the kill");
    assert_eq!(got, Got::OwnerDied, "{what}: the waiter's acquire");
    assert!(
        after < OWNER_DIED_WITHIN,
        "{what}: the waiter got it {after:?} after the kill"
    );
    if let Guarded::Value(_) = obj {
        assert_eq!(
            seen,
            Some(HALF_DONE),
            "{what}: the guard shows the dead's write"
        );
    }
    v.reap_killed(&what);

    // Healthy again for everybody: the death is reported once, and the
    // lock excludes as before (an RLock at depth 2 again).
    if let Guarded::Semaphore(s) = &obj {
        assert_eq!(s.value(), 1, "{what}: the permit came back");
    }
    let (held, got) = obj.hold_deep();
    assert_eq!(got, Got::Clean, "{what}: the acquire after the recovery");
    assert_eq!(
        probe_child(&obj),
        Got::WouldBlock,
        "{what}: a child while we hold it"
    );
    drop(held);
    assert_eq!(
        probe_child(&obj),
        Got::Clean,
        "{what}: a child once it is free"
    );
    assert_eq!(
        obj.try_acquire(),
        Got::Clean,
        "{what}: ours once it is free"
    );
}

fn new_lock() -> Guarded {
    Guarded::Lock(Lock::new().unwrap())
}

fn new_rlock() -> Guarded {
    Guarded::RLock(RLock::new().unwrap())
}

fn new_semaphore() -> Guarded {
    Guarded::Semaphore(Semaphore::new(1).unwrap())
}

fn new_value() -> Guarded {
    Guarded::Value(Value::new(0u64).unwrap())
}

#[test]
fn lock_holder_killed() {
    fault_test("lock_holder_killed", || {
        holder_killed("Lock", new_lock, Waiter::Child);
        holder_killed("Lock", new_lock, Waiter::Parent);
    });
}

#[test]
fn rlock_holder_killed_at_depth_two() {
    fault_test("rlock_holder_killed_at_depth_two", || {
        holder_killed("RLock", new_rlock, Waiter::Child);
        holder_killed("RLock", new_rlock, Waiter::Parent);
    });
}

#[test]
fn semaphore_holder_killed() {
    fault_test("semaphore_holder_killed", || {
        holder_killed("Semaphore(1)", new_semaphore, Waiter::Child);
        holder_killed("Semaphore(1)", new_semaphore, Waiter::Parent);
    });
}

#[test]
fn value_holder_killed() {
    fault_test("value_holder_killed", || {
        holder_killed("Value<u64>", new_value, Waiter::Child);
        holder_killed("Value<u64>", new_value, Waiter::Parent);
    });
}

/// `Semaphore(2)`: one holder killed while the other permit is free. The
/// next acquire (immediate: a permit is free) reports the death, and the
/// dead holder's permit is back in the count.
#[test]
fn semaphore_of_two_holder_killed_with_a_free_permit() {
    fault_test("semaphore_of_two_holder_killed_with_a_free_permit", || {
        let sem = Semaphore::new(2).unwrap();
        let holding = Event::new().unwrap();
        let mut v = Kid::spawn(
            victim(StartMethod::ForkServer),
            hold_until_killed,
            (Guarded::Semaphore(sem.clone()), holding.clone()),
        );
        assert!(holding.wait_timeout(JOIN), "the victim never held a permit");
        assert_eq!(sem.value(), 1);
        v.kill_and_reap("the victim");

        let first = match sem.acquire_timeout(secs(1)) {
            Err(TryLockError::OwnerDied(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => panic!("no permit within 1 s"),
            Ok(_) => panic!("the death of a holder was not reported"),
        };
        assert_eq!(sem.value(), 1, "one permit ours, the dead one's back");
        let second = sem.try_acquire().expect("the recovered permit, clean");
        assert_eq!(sem.value(), 0);
        assert!(sem.try_acquire().unwrap_err().is_would_block());
        drop(first);
        drop(second);
        assert_eq!(sem.value(), 2);
        let g = Guarded::Semaphore(sem);
        assert_eq!(probe_child(&g), Got::Clean, "a child after the recovery");
    });
}
