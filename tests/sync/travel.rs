//! Section 5: every object through a `Queue` and a `Pipe`.
//!
//! A [`Bundle`] of one object of each kind travels through a `Queue` or a
//! `Pipe` (never as a spawn argument), from the test process to a child
//! and from a child to the test process. The child then takes every lock
//! and permit and writes every value; the test process sees it all from
//! its side (the locks held, the values written), and both meet on the
//! `Condition` and the `Barrier`. Once the child is gone, every object
//! still works in the test process, also those the child created.

use super::*;
use multiproc::{
    Array, Barrier, BoundedSemaphore, Condition, Connection, Event, Lock, Pipe, Queue, RLock,
    RawArray, RawValue, Semaphore, Value,
};
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// One object of each kind.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Bundle {
    lock: Lock,
    rlock: RLock,
    sem: Semaphore,
    bsem: BoundedSemaphore,
    cond: Condition,
    /// The state behind `cond`.
    flag: Value<u64>,
    event: Event,
    barrier: Barrier,
    value: Value<u64>,
    array: Array<u32>,
    raw_value: RawValue<u64>,
    raw_array: RawArray<u64>,
}

impl Bundle {
    fn new() -> Bundle {
        Bundle {
            lock: Lock::new().unwrap(),
            rlock: RLock::new().unwrap(),
            sem: Semaphore::new(1).unwrap(),
            bsem: BoundedSemaphore::new(1).unwrap(),
            cond: Condition::new().unwrap(),
            flag: Value::new(0).unwrap(),
            event: Event::new().unwrap(),
            barrier: Barrier::new(2).unwrap(),
            value: Value::new(0).unwrap(),
            array: Array::new(4).unwrap(),
            raw_value: RawValue::new(0).unwrap(),
            raw_array: RawArray::new(3).unwrap(),
        }
    }
}

/// The control messages between the two sides (and the bundle itself,
/// when it goes through the pipe).
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Bundle(Box<Bundle>),
    Holding,
    Release,
    Done,
}

/// Which way the bundle goes, and through what.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Route {
    QueueToChild,
    PipeToChild,
    QueueToParent,
    PipeToParent,
}

const ARRAY: [u32; 4] = [1, 2, 3, 4];

/// The child: gets (or makes and sends) the bundle, takes everything,
/// writes everything, says so, meets the parent on the condition and the
/// barrier, and lets go when told to.
fn child_side((route, q, conn): (Route, Queue<Bundle>, Connection<Msg>)) {
    let b = match route {
        Route::QueueToChild => q.get_timeout(JOIN).expect("the bundle from the queue"),
        Route::PipeToChild => match conn.recv_timeout(JOIN) {
            Ok(Msg::Bundle(b)) => *b,
            other => panic!("expected the bundle from the pipe, got {other:?}"),
        },
        Route::QueueToParent | Route::PipeToParent => {
            let b = Bundle::new();
            match route {
                Route::QueueToParent => q.put(b.clone()).expect("put"),
                _ => conn.send(Msg::Bundle(Box::new(b.clone()))).expect("send"),
            }
            b
        }
    };
    let lock = b.lock.acquire().expect("lock");
    let r1 = b.rlock.acquire().expect("rlock");
    let r2 = b.rlock.acquire().expect("rlock again");
    let permit = b.sem.acquire().expect("semaphore");
    let bounded = b.bsem.acquire().expect("bounded semaphore");
    b.value.set(42);
    b.array.lock().expect("array").copy_from_slice(&ARRAY);
    b.raw_value.set(7);
    b.raw_array.set(1, 11);
    b.raw_array.atomics()[2].fetch_add(5, Ordering::SeqCst);
    b.event.set();
    conn.send(Msg::Holding).expect("send");

    {
        let _g = b.cond.acquire().expect("condition");
        b.flag.set(1);
        b.cond.notify_all();
    }
    b.barrier.wait_timeout(JOIN).expect("barrier");

    match conn.recv_timeout(JOIN) {
        Ok(Msg::Release) => {}
        other => panic!("expected Release, got {other:?}"),
    }
    drop((lock, r1, r2, permit, bounded));
    conn.send(Msg::Done).expect("send");
}

/// The test process's side of [`child_side`].
fn parent_side(route: Route, m: StartMethod) {
    let q = Queue::new().unwrap();
    let (here, there) = Pipe::new::<Msg>().unwrap();
    let mut child = Kid::spawn(builder(m), child_side, (route, q.clone(), there));
    let b = match route {
        Route::QueueToChild | Route::PipeToChild => {
            let b = Bundle::new();
            match route {
                Route::QueueToChild => q.put(b.clone()).expect("put"),
                _ => here.send(Msg::Bundle(Box::new(b.clone()))).expect("send"),
            }
            b
        }
        Route::QueueToParent => q.get_timeout(JOIN).expect("the bundle from the queue"),
        Route::PipeToParent => match here.recv_timeout(JOIN) {
            Ok(Msg::Bundle(b)) => *b,
            other => panic!("expected the bundle from the pipe, got {other:?}"),
        },
    };
    match here.recv_timeout(JOIN) {
        Ok(Msg::Holding) => {}
        other => panic!("{route:?}: expected Holding, got {other:?}"),
    }

    // What the child holds and wrote, seen from here.
    assert!(
        b.lock.try_acquire().unwrap_err().is_would_block(),
        "{route:?}: Lock"
    );
    assert!(
        b.rlock.try_acquire().unwrap_err().is_would_block(),
        "{route:?}: RLock"
    );
    assert!(
        b.sem.try_acquire().unwrap_err().is_would_block(),
        "{route:?}: Semaphore"
    );
    assert_eq!(b.sem.value(), 0, "{route:?}: Semaphore");
    assert!(
        b.bsem.try_acquire().unwrap_err().is_would_block(),
        "{route:?}: BoundedSemaphore"
    );
    assert_eq!(b.value.get(), 42, "{route:?}: Value");
    assert_eq!(b.array.to_vec(), ARRAY, "{route:?}: Array");
    assert_eq!(b.raw_value.get(), 7, "{route:?}: RawValue");
    assert_eq!(b.raw_array.to_vec(), [0, 11, 5], "{route:?}: RawArray");
    assert!(b.event.is_set(), "{route:?}: Event");

    let g = b.cond.acquire().expect("condition");
    let (g, r) = b
        .cond
        .wait_timeout_while(g, JOIN, |_| b.flag.get() == 0)
        .expect("condition");
    assert!(!r.timed_out(), "{route:?}: Condition: no notification");
    drop(g);
    b.barrier.wait_timeout(JOIN).expect("barrier");

    here.send(Msg::Release).expect("send");
    match here.recv_timeout(JOIN) {
        Ok(Msg::Done) => {}
        other => panic!("{route:?}: expected Done, got {other:?}"),
    }
    child.finish("the child");

    // The child is gone; everything still works here, cleanly.
    {
        let _l = b.lock.try_acquire().expect("Lock after the child");
        let _r = b.rlock.try_acquire().expect("RLock after the child");
        let _r2 = b.rlock.try_acquire().expect("RLock again after the child");
        let _p = b.sem.try_acquire().expect("Semaphore after the child");
        let _bp = b
            .bsem
            .try_acquire()
            .expect("BoundedSemaphore after the child");
        *b.value.try_lock().expect("Value after the child") += 1;
    }
    assert_eq!(b.value.get(), 43);
    assert_eq!((b.sem.value(), b.bsem.value()), (1, 1));
    assert!(
        b.bsem.release().unwrap_err().is_misuse(),
        "{route:?}: the bound"
    );
    b.event.clear();
    assert!(!b.event.wait_timeout(ms(1)));
    b.barrier.reset();
    assert!(!b.barrier.is_broken());
}

#[test]
fn objects_travel_to_a_child_through_a_queue() {
    fault_test("objects_travel_to_a_child_through_a_queue", || {
        parent_side(Route::QueueToChild, StartMethod::ForkServer);
    });
}

#[test]
fn objects_travel_to_a_child_through_a_pipe() {
    fault_test("objects_travel_to_a_child_through_a_pipe", || {
        parent_side(Route::PipeToChild, StartMethod::Spawn);
    });
}

#[test]
fn objects_travel_from_a_child_through_a_queue() {
    fault_test("objects_travel_from_a_child_through_a_queue", || {
        parent_side(Route::QueueToParent, StartMethod::Spawn);
    });
}

#[test]
fn objects_travel_from_a_child_through_a_pipe() {
    fault_test("objects_travel_from_a_child_through_a_pipe", || {
        parent_side(Route::PipeToParent, StartMethod::ForkServer);
    });
}
