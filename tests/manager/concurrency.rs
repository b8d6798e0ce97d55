//! Scenario 3: 50 clients at once.
//!
//! 10 child processes × 5 threads, released together by an `Event`, each
//! thread [`ROUNDS`] times: inserts a key of its own into a dict, pushes
//! onto a list, puts an item on a queue and takes one (any), increments a
//! `ValueProxy<u64>` under a `LockProxy` (get, then set: a lost update
//! shows as a short total), and adds to a registered [`Counter`].
//! Afterwards every total is exact: dict and list hold every key and item
//! once, the queue is empty and what was taken is what was put, the
//! locked counter and the registered counter equal the number of
//! increments. A deadlock fails on the children's join deadline.

use super::*;
use multiproc::Event;
use multiproc::manager::{DictProxy, ListProxy, LockProxy, Proxy, QueueProxy, ValueProxy};

const PROCESSES: u32 = 10;
const THREADS: u32 = 5;
const ROUNDS: u32 = 20;

/// Everything the clients share.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Shared {
    dict: DictProxy<String, u32>,
    list: ListProxy<u32>,
    queue: QueueProxy<u32>,
    lock: LockProxy,
    total: ValueProxy<u64>,
    counter: Proxy<Counter>,
    go: Event,
}

/// What one client process saw: the sum and number of the queue items it
/// took.
type Taken = (u64, u32);

/// The unique number of (process, thread, round).
fn item(p: u32, t: u32, r: u32) -> u32 {
    (p * THREADS + t) * ROUNDS + r
}

fn client_thread(s: &Shared, p: u32, t: u32) -> Taken {
    let (mut sum, mut n) = (0u64, 0u32);
    for r in 0..ROUNDS {
        let x = item(p, t, r);
        let old = s.dict.insert(&format!("{p}.{t}.{r}"), &x).unwrap();
        assert_eq!(old, None, "a unique key was already there");
        s.list.push(&x).unwrap();
        s.queue.put(&x).unwrap();
        let got = s.queue.get_timeout(JOIN).expect("a queue item");
        sum += u64::from(got);
        n += 1;
        {
            let guard = s.lock.acquire_timeout(JOIN).unwrap().expect("the lock");
            assert!(!guard.previous_owner_died());
            let v = s.total.get().unwrap();
            s.total.set(&(v + 1)).unwrap();
            guard.release().unwrap();
        }
        s.counter.call(CounterOp::Add(1)).unwrap();
    }
    (sum, n)
}

fn client_process((s, p): (Shared, u32)) -> Taken {
    assert!(s.go.wait_timeout(JOIN), "never released");
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = &s;
                scope.spawn(move || client_thread(s, p, t))
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    })
}

#[test]
fn fifty_clients_mixed_operations_exact_totals() {
    fault_test("fifty_clients_mixed_operations_exact_totals", || {
        let m = counter_manager(StartMethod::ForkServer);
        let s = Shared {
            dict: m.dict().unwrap(),
            list: m.list().unwrap(),
            queue: m.queue().unwrap(),
            lock: m.lock().unwrap(),
            total: m.value(&0u64).unwrap(),
            counter: m.create::<Counter>(0).unwrap(),
            go: Event::new().unwrap(),
        };
        let mut kids: Vec<Kid<Taken>> = (0..PROCESSES)
            .map(|p| {
                Kid::spawn(
                    builder(StartMethod::ForkServer),
                    client_process,
                    (s.clone(), p),
                )
            })
            .collect();
        let started = Instant::now();
        s.go.set();
        let (mut sum, mut n) = (0u64, 0u32);
        for (p, k) in kids.iter_mut().enumerate() {
            let (a, b) = k.finish(&format!("client process {p}"));
            sum += a;
            n += b;
        }
        let took = started.elapsed();
        let clients = PROCESSES * THREADS;
        let all = clients * ROUNDS;
        eprintln!("{clients} clients × {ROUNDS} rounds: {took:?}");

        assert_eq!(s.dict.len().unwrap(), all as usize, "dict keys");
        let mut values = s.dict.values().unwrap();
        values.sort_unstable();
        assert_eq!(values, (0..all).collect::<Vec<_>>(), "dict values");
        let mut items = s.list.to_vec().unwrap();
        items.sort_unstable();
        assert_eq!(items, (0..all).collect::<Vec<_>>(), "list items");
        assert_eq!(n, all, "queue items taken");
        assert_eq!(
            sum,
            (0..u64::from(all)).sum::<u64>(),
            "the sum of the items taken"
        );
        assert_eq!(s.queue.len().unwrap(), 0, "queue items left");
        assert_eq!(s.total.get().unwrap(), u64::from(all), "locked increments");
        assert_eq!(
            s.counter.call(CounterOp::Get).unwrap(),
            u64::from(all),
            "counter"
        );
        let g = s.lock.try_acquire().unwrap().expect("the lock is free");
        assert!(!g.previous_owner_died());
        drop(g);
        drop(s);
        drop(m);
    });
}
