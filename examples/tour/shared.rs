//! Sections 18 to 23 of the tour: shared memory and locks.

use super::{ms, section};
use multiproc::{
    Array, Barrier, BarrierError, Condition, Event, Lock, OwnerDied, Process, RawArray, RawValue,
    Semaphore, Value,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const ADDS: u64 = 10_000;
const COLS: usize = 4;

/// Section 18's child: adds 1 to the counter `ADDS` times under its lock,
/// then fills row `row` of the grid under the grid's lock.
fn add_and_fill((counter, grid, row): (Value<u64>, Array<f64>, usize)) {
    for _ in 0..ADDS {
        *counter.lock().expect("lock the counter") += 1;
    }
    let mut cells = grid.lock().expect("lock the grid");
    for (col, x) in cells[row * COLS..(row + 1) * COLS].iter_mut().enumerate() {
        *x = (10 * row + col) as f64;
    }
}

/// Section 19's child: atomic adds to a `RawValue` and a `RawArray`.
fn add_atomically((total, buckets): (RawValue<u64>, RawArray<u32>)) {
    for i in 0..ADDS {
        total.atomic().fetch_add(1, Ordering::Relaxed);
        buckets.atomics()[i as usize % buckets.len()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Section 20's child: takes the lock and starts moving 5 from one half of
/// `pair` to the other, then says it holds both and waits to be killed.
fn die_holding((lock, pair, holding): (Lock, Value<[u64; 2]>, Event)) {
    let _held = lock.acquire().expect("acquire");
    let mut halves = pair.lock().expect("lock the pair");
    halves[0] -= 5; // ...and halves[1] += 5 never comes
    holding.set();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Section 21's child: waits for the event; returns whether it came.
fn wait_for(go: Event) -> bool {
    go.wait_timeout(Duration::from_secs(30))
}

/// Section 22's children: party 0 waits at the barrier and returns the pid
/// of the party that broke it; party 1 aborts without arriving.
fn meet_or_die((id, barrier): (u32, Barrier)) -> Option<u32> {
    if id == 1 {
        super::abort(());
    }
    match barrier.wait_timeout(Duration::from_secs(30)) {
        Err(BarrierError::PartyDied(pid)) => Some(pid),
        _ => None,
    }
}

/// Section 23's workers: at most two at a time inside; returns how many
/// were inside at once, as this one saw it.
fn limited((sem, inside): (Semaphore, RawValue<u32>)) -> u32 {
    let _permit = sem.acquire().expect("acquire a permit");
    let now = inside.atomic().fetch_add(1, Ordering::SeqCst) + 1;
    std::thread::sleep(Duration::from_millis(30));
    inside.atomic().fetch_sub(1, Ordering::SeqCst);
    now
}

/// Section 23's notifier: sets `ready` under the condition's lock, then
/// wakes the waiters.
fn notify_ready((cond, ready): (Condition, Value<u32>)) {
    std::thread::sleep(Duration::from_millis(50));
    let _g = cond.acquire().expect("acquire");
    ready.set(42);
    cond.notify_all();
}

/// Runs sections 18 to 23.
pub(crate) fn tour() {
    section(
        18,
        "Value and Array: plain data in shared memory, under a lock",
        "lock() returns a guard that derefs to the data (Python's `with v.get_lock(): v.value += 1`);\n   \
         get()/set()/to_vec() lock for one access. Both travel as spawn arguments.",
    );
    let counter = Value::new(0u64).expect("Value::new");
    let grid = Array::<f64>::new(3 * COLS).expect("Array::new");
    let mut kids: Vec<Process<()>> = (0..3)
        .map(|row| {
            Process::spawn(add_and_fill, (counter.clone(), grid.clone(), row)).expect("spawn")
        })
        .collect();
    for k in &mut kids {
        k.join().expect("join");
    }
    let total = counter.get();
    println!("   3 children x {ADDS} locked increments: counter = {total}");
    assert_eq!(total, 3 * ADDS);
    let cells = grid.to_vec();
    for (row, cells) in cells.chunks(COLS).enumerate() {
        println!("   grid row {row} (filled by child {row}): {cells:?}");
        assert!(
            cells
                .iter()
                .enumerate()
                .all(|(c, &x)| x == (10 * row + c) as f64)
        );
    }

    section(
        19,
        "RawValue and RawArray: no lock, std atomics across processes",
        "atomic() / atomics() view integer cells as AtomicU64, AtomicU32...: fetch_add needs no lock.",
    );
    let total = RawValue::new(0u64).expect("RawValue::new");
    let buckets = RawArray::<u32>::new(4).expect("RawArray::new");
    let mut kids: Vec<Process<()>> = (0..3)
        .map(|_| Process::spawn(add_atomically, (total.clone(), buckets.clone())).expect("spawn"))
        .collect();
    for k in &mut kids {
        k.join().expect("join");
    }
    println!(
        "   3 children x {ADDS} fetch_add: total = {}, buckets = {:?}",
        total.get(),
        buckets.to_vec()
    );
    assert_eq!(total.get(), 3 * ADDS);
    assert_eq!(buckets.to_vec(), [3 * ADDS as u32 / 4; 4]);

    section(
        20,
        "a holder dies: OwnerDied",
        "The kernel releases a dead holder's locks; the next locker gets Err(OwnerDied) carrying the guard,\n   \
         checks or repairs the data, then goes on (unwrap_or_else(OwnerDied::into_inner)).",
    );
    let lock = Lock::new().expect("Lock::new");
    let pair = Value::new([100u64, 0]).expect("Value::new");
    let holding = Event::new().expect("Event::new");
    let mut p =
        Process::spawn(die_holding, (lock.clone(), pair.clone(), holding.clone())).expect("spawn");
    assert!(
        holding.wait_timeout(Duration::from_secs(30)),
        "the child took the locks"
    );
    p.kill().expect("kill");
    let err = p.join().expect_err("killed");
    println!("   the child took the Lock and the pair's lock and was killed: {err}");
    let died = lock.acquire().expect_err("its holder died");
    println!("   lock.acquire()  -> Err({died}); into_inner() gives the guard");
    drop(died.into_inner());
    assert!(lock.acquire().is_ok(), "healthy again for the next locker");
    println!("   lock.acquire() again -> Ok: only the first locker is told");
    let halves = match pair.lock() {
        Ok(_) => panic!("the pair's holder died: the first locker must be told"),
        Err(died) => {
            let mut halves = died.into_inner();
            println!(
                "   pair.lock()     -> Err(OwnerDied), the data as left: {:?}",
                *halves
            );
            assert_eq!(*halves, [95, 0], "half a transfer");
            halves[1] = 100 - halves[0]; // complete it
            *halves
        }
    };
    println!(
        "   repaired under the guard: {halves:?}; pair.get() = {:?}",
        pair.get()
    );
    assert_eq!(pair.get(), [95, 5]);
    let usual = *pair.lock().unwrap_or_else(OwnerDied::into_inner);
    assert_eq!(usual, [95, 5]);

    section(
        21,
        "Event: a flag processes wait for",
        "wait() returns once another process calls set(); wait_timeout() says whether it came.",
    );
    let go = Event::new().expect("Event::new");
    let mut kids: Vec<Process<bool>> = (0..3)
        .map(|_| Process::spawn(wait_for, go.clone()).expect("spawn"))
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let waiting = kids.iter().filter(|k| k.is_alive()).count();
    println!(
        "   3 children wait; after 50 ms, is_set() = {}, still waiting: {waiting}",
        go.is_set()
    );
    assert!(!go.is_set() && waiting == 3);
    let t = Instant::now();
    go.set();
    let woke: Vec<bool> = kids.iter_mut().map(|k| k.join().expect("join")).collect();
    println!(
        "   set(): all three returned {woke:?} within {}",
        ms(t.elapsed())
    );
    assert_eq!(woke, [true; 3]);
    go.clear();
    assert!(!go.wait_timeout(Duration::from_millis(10)));
    println!("   clear(), then wait_timeout(10 ms) = false");

    section(
        22,
        "Barrier: a party that dies breaks it",
        "Barrier(3): the parent and a child wait, the third party aborts without arriving; instead of waiting\n   \
         forever, both get Err(BarrierError::PartyDied(pid)) within ~20 ms. reset() mends it.",
    );
    let barrier = Barrier::new(3).expect("Barrier::new");
    let mut waiter = Process::spawn(meet_or_die, (0, barrier.clone())).expect("spawn");
    let mut dying = Process::spawn(meet_or_die, (1, barrier.clone())).expect("spawn");
    let t = Instant::now();
    let mine = barrier.wait_timeout(Duration::from_secs(30));
    println!("   parent: wait() = {mine:?} after {}", ms(t.elapsed()));
    assert_eq!(mine, Err(BarrierError::PartyDied(dying.pid())));
    let theirs = waiter.join().expect("join");
    println!(
        "   child:  broken by pid {theirs:?}; the dead party: {}",
        dying.join().unwrap_err()
    );
    assert_eq!(theirs, Some(dying.pid()));
    assert!(barrier.is_broken());
    barrier.reset();
    println!("   reset(): is_broken() = {}", barrier.is_broken());
    assert!(!barrier.is_broken());

    section(
        23,
        "Semaphore and Condition",
        "Semaphore(n) lets n holders in at once; Condition pairs a Lock with wait/notify, as std's Condvar.",
    );
    let sem = Semaphore::new(2).expect("Semaphore::new");
    let inside = RawValue::new(0u32).expect("RawValue::new");
    let mut kids: Vec<Process<u32>> = (0..4)
        .map(|_| Process::spawn(limited, (sem.clone(), inside.clone())).expect("spawn"))
        .collect();
    let seen: Vec<u32> = kids.iter_mut().map(|k| k.join().expect("join")).collect();
    println!("   4 workers, Semaphore(2): each saw {seen:?} inside (never more than 2)");
    assert!(seen.iter().all(|&n| (1..=2).contains(&n)));
    assert_eq!(sem.value(), 2);
    let cond = Condition::new().expect("Condition::new");
    let ready = Value::new(0u32).expect("Value::new");
    let guard = cond.acquire().expect("acquire");
    let mut p = Process::spawn(notify_ready, (cond.clone(), ready.clone())).expect("spawn");
    let t = Instant::now();
    let guard = cond
        .wait_while(guard, |_| ready.get() == 0)
        .expect("wait_while");
    drop(guard);
    println!(
        "   wait_while(ready == 0) returned after {}: a child set ready = {} and notified",
        ms(t.elapsed()),
        ready.get()
    );
    assert_eq!(ready.get(), 42);
    p.join().expect("join");
}
