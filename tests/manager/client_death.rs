//! Scenario 5: clients `SIGKILL`ed mid-request.
//!
//! A child asleep in `QueueProxy::get` is killed: an item put afterwards
//! is not taken for the dead (it stays in the queue, and a live getter,
//! waiting already or coming later, receives it). A child holding a
//! managed lock is killed: the lock is released, and the next acquirer,
//! asleep in `acquire` at the time or coming later, is told
//! `previous_owner_died()`; the acquire after that is clean. A child
//! killed while it waits in `acquire` takes nothing with it: the next
//! acquire is clean. Each over a local connection (shared memory) and
//! over TCP, whose deaths the server sees differently (a hang-up of the
//! pipe's socket, the end of the TCP stream). Throughout, the server is
//! unaffected: same process, running, serving.

use super::*;
use multiproc::Event;
use multiproc::manager::{DictProxy, LockProxy, QueueProxy};

/// A local manager and a TCP one.
fn managers() -> [(&'static str, Manager); 2] {
    let tcp = Manager::builder()
        .address("127.0.0.1:0".parse().unwrap())
        .start()
        .expect("a TCP manager");
    [
        ("local", Manager::start().expect("a manager")),
        ("tcp", tcp),
    ]
}

/// A victim asleep in a `get`.
fn blocked_get((q, started): (QueueProxy<u32>, Event)) {
    started.set();
    let got = q.get();
    panic!("the victim's get returned: {got:?}");
}

/// Starts a victim asleep in `q.get()`.
fn getter(m: StartMethod, q: &QueueProxy<u32>) -> Kid<()> {
    let started = Event::new().unwrap();
    let kid = Kid::spawn(victim(m), blocked_get, (q.clone(), started.clone()));
    assert!(started.wait_timeout(JOIN), "the victim never started");
    child_asleep("the victim's get", kid.pid());
    kid
}

#[test]
fn client_killed_in_get_loses_no_item() {
    fault_test("client_killed_in_get_loses_no_item", || {
        for (label, m) in managers() {
            get_death(label, &m);
        }
    });
}

fn get_death(label: &str, m: &Manager) {
    let pid = server_pid(m);
    let q = m.queue::<u32>().unwrap();
    let d = m.dict::<u32, u32>().unwrap();

    // No live getter: the item put right after the death stays queued.
    let mut v = getter(StartMethod::ForkServer, &q);
    v.kill_and_reap("the first victim");
    q.put(&42).unwrap();
    std::thread::sleep(ms(200)); // the dead getter's wait looks every 50 ms
    assert_eq!(
        q.len().unwrap(),
        1,
        "{label}: the item put after the death was taken"
    );
    assert_eq!(q.get_timeout(PROMPT).unwrap(), 42);

    // A live getter asleep beside the dead one gets the item.
    let mut v = getter(StartMethod::Spawn, &q);
    let live = Blocked::start("the live getter", {
        let q = q.clone();
        move || q.get_timeout(JOIN)
    });
    v.kill_and_reap("the second victim");
    let put = Instant::now();
    q.put(&43).unwrap();
    let (got, after) = live.outcome(put, PROMPT);
    assert_eq!(got.unwrap(), 43, "{label}: the live getter");
    eprintln!("{label}: the live getter had the item {after:?} after the put");

    // Several dead getters, then several items: none lost.
    let mut victims: Vec<Kid<()>> = (0..3)
        .map(|_| getter(StartMethod::ForkServer, &q))
        .collect();
    for v in &mut victims {
        v.kill_and_reap("a victim");
    }
    for x in 0..5 {
        q.put(&x).unwrap();
    }
    let got: Vec<u32> = (0..5).map(|_| q.get_timeout(PROMPT).unwrap()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4], "{label}");
    assert_eq!(q.len().unwrap(), 0, "{label}");

    assert_eq!(server_pid(m), pid);
    assert!(running(pid), "{label}: the server died with its client");
    d.insert(&1, &2).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(2));
}

/// A victim that takes the lock, starts an update and dies before
/// finishing it.
fn hold_lock((lock, d, holding): (LockProxy, DictProxy<String, u32>, Event)) {
    let guard = lock.acquire().unwrap();
    assert!(!guard.previous_owner_died(), "the victim's acquire");
    d.insert(&"half".into(), &1).unwrap();
    holding.set();
    let _keep = guard;
    sleep_forever();
}

/// Starts a victim holding `lock`.
fn holder(m: StartMethod, lock: &LockProxy, d: &DictProxy<String, u32>) -> Kid<()> {
    let holding = Event::new().unwrap();
    let kid = Kid::spawn(
        victim(m),
        hold_lock,
        (lock.clone(), d.clone(), holding.clone()),
    );
    assert!(holding.wait_timeout(JOIN), "the victim never held the lock");
    assert!(
        lock.try_acquire().unwrap().is_none(),
        "the lock is not held"
    );
    kid
}

/// Takes `lock` within [`PROMPT`]: whether its previous owner died.
fn take(lock: &LockProxy, what: &str) -> bool {
    let g = lock
        .acquire_timeout(PROMPT)
        .unwrap()
        .unwrap_or_else(|| panic!("{what}: the lock stayed held"));
    let died = g.previous_owner_died();
    g.release().unwrap();
    died
}

#[test]
fn client_killed_holding_a_lock_releases_it_marked() {
    fault_test("client_killed_holding_a_lock_releases_it_marked", || {
        for (label, m) in managers() {
            holder_death(label, &m);
        }
    });
}

fn holder_death(label: &str, m: &Manager) {
    let pid = server_pid(m);
    let lock = m.lock().unwrap();
    let d = m.dict::<String, u32>().unwrap();

    for start in [StartMethod::ForkServer, StartMethod::Spawn] {
        let method = format!("{label}, {start:?} holder");
        // A waiter asleep in acquire when the holder dies.
        let mut v = holder(start, &lock, &d);
        let waiter = Blocked::start("the waiter", {
            let lock = lock.clone();
            move || {
                lock.acquire().and_then(|g| {
                    let died = g.previous_owner_died();
                    g.release().map(|()| died)
                })
            }
        });
        let killed = Instant::now();
        v.kill().unwrap();
        let (died, after) = waiter.outcome(killed, PROMPT);
        eprintln!("{method}: the waiter had the lock {after:?} after the kill");
        assert!(
            died.unwrap(),
            "{method}: the waiter was not told of the death"
        );
        v.reap_killed("the holder");
        assert!(!take(&lock, "after the waiter"), "{method}: told twice");

        // Nobody waiting: the next acquire, later, is told.
        let mut v = holder(start, &lock, &d);
        v.kill_and_reap("the holder");
        assert!(take(&lock, "after the death"), "{method}: not told");
        assert!(!take(&lock, "once more"), "{method}: told twice");
    }

    assert_eq!(
        d.get(&"half".into()).unwrap(),
        Some(1),
        "the half-done update"
    );
    assert_eq!(server_pid(m), pid);
    assert!(running(pid), "{label}: the server died with its client");
}

/// A victim asleep in `acquire` while the test holds the lock.
fn blocked_acquire((lock, started): (LockProxy, Event)) {
    started.set();
    let got = lock.acquire();
    panic!("the victim's acquire returned: {got:?}");
}

#[test]
fn client_killed_waiting_for_a_lock_takes_nothing() {
    fault_test("client_killed_waiting_for_a_lock_takes_nothing", || {
        for (label, m) in managers() {
            let lock = m.lock().unwrap();
            let held = lock.acquire().unwrap();
            let started = Event::new().unwrap();
            let mut v = Kid::spawn(
                victim(StartMethod::ForkServer),
                blocked_acquire,
                (lock.clone(), started.clone()),
            );
            assert!(started.wait_timeout(JOIN), "the victim never started");
            child_asleep("the victim's acquire", v.pid());
            v.kill_and_reap("the waiting victim");
            std::thread::sleep(ms(100)); // its wait looks every 50 ms
            held.release().unwrap();
            // The dead waiter neither took the lock nor left it marked.
            assert!(
                !take(&lock, "after the dead waiter"),
                "{label}: marked by a waiter"
            );
            assert!(running(server_pid(&m)), "{label}");
        }
    });
}
