//! Scenario 4: the server `SIGKILL`ed.
//!
//! Before the kill, threads of the test process are asleep in calls that
//! wait in the server: `QueueProxy::get`, `LockProxy::acquire` (the lock
//! held by the test), `EventProxy::wait`, a `put` on a full bounded queue;
//! and a child process is asleep in a `get`. After the kill each of them
//! returns an error saying the server is gone within [`PROMPT`]; then
//! every method of every proxy, the manager's own methods and a new
//! `connect` fail the same way within [`PROMPT`], and dropping the manager
//! is prompt too. Apart, with a leak check: once the manager of a killed
//! server is dropped, nothing of the server's is left in this process.

use super::*;
use multiproc::Event;
use multiproc::manager::QueueProxy;

/// A child asleep in a `get`, returning how it ended.
fn child_get((q, started): (QueueProxy<u32>, Event)) -> String {
    started.set();
    match q.get() {
        Ok(x) => format!("got {x}"),
        Err(e) if is_gone(&e) => "gone".into(),
        Err(e) => format!("another error: {e}"),
    }
}

#[test]
fn killed_server_fails_every_call_promptly() {
    // Not a fault_test: the leak check of this scenario is
    // `dropping_the_manager_of_a_killed_server_leaks_nothing`, apart, so
    // that a leak does not hide the behaviour checked here.
    manager_test("killed_server_fails_every_call_promptly", || {
        let m = counter_manager(StartMethod::ForkServer);
        let pid = server_pid(&m);
        let d = m.dict::<u32, u32>().unwrap();
        let l = m.list::<u32>().unwrap();
        let ns = m.namespace().unwrap();
        let q = m.queue::<u32>().unwrap();
        let full = m.bounded_queue::<u32>(1).unwrap();
        let lock = m.lock().unwrap();
        let ev = m.event().unwrap();
        let v = m.value(&String::from("x")).unwrap();
        let c = m.create::<Counter>(1).unwrap();
        d.insert(&1, &1).unwrap();
        full.put(&1).unwrap();
        let guard = lock.acquire().unwrap();

        let started = Event::new().unwrap();
        let mut kid = Kid::spawn(
            victim(StartMethod::ForkServer),
            child_get,
            (q.clone(), started.clone()),
        );
        assert!(started.wait_timeout(JOIN), "the child never started");
        child_asleep("the child's get", kid.pid());

        let get = Blocked::start("get", {
            let q = q.clone();
            move || q.get().map(drop)
        });
        let acquire = Blocked::start("acquire", {
            let lock = lock.clone();
            move || lock.acquire().map(drop)
        });
        let wait = Blocked::start("wait", {
            let ev = ev.clone();
            move || ev.wait()
        });
        let put = Blocked::start("put on a full queue", {
            let full = full.clone();
            move || full.put(&2)
        });
        std::thread::sleep(ms(100));
        for (what, returned) in [
            ("get", get.returned()),
            ("acquire", acquire.returned()),
            ("wait", wait.returned()),
            ("put", put.returned()),
        ] {
            assert!(!returned, "{what} returned before the kill");
        }

        let killed = Instant::now();
        sigkill(pid);
        for (what, (r, after)) in [
            ("get", get.outcome(killed, PROMPT)),
            ("acquire", acquire.outcome(killed, PROMPT)),
            ("wait", wait.outcome(killed, PROMPT)),
            ("put on a full queue", put.outcome(killed, PROMPT)),
        ] {
            eprintln!("blocked {what}: returned {after:?} after the kill");
            assert_gone(r, &format!("the blocked {what}"));
        }
        let child = kid.finish("the child asleep in get");
        assert_eq!(child, "gone", "the child's get");
        let after = killed.elapsed();
        assert!(
            after < PROMPT,
            "the child's get ended {after:?} after the kill"
        );
        assert!(
            gone_within(pid, GONE_WITHIN).is_some(),
            "the killed server was not reaped"
        );

        // Every call now fails, promptly.
        type Call = Box<dyn FnOnce() -> Result<String, Error> + Send>;
        macro_rules! call {
            ($what:literal, $proxy:ident, |$p:ident| $call:expr) => {{
                let $p = $proxy.clone();
                let f: Call = Box::new(move || $call.map(|r| format!("{r:?}")));
                ($what, f)
            }};
        }
        let calls = [
            call!("dict.get", d, |d| d.get(&1)),
            call!("dict.insert", d, |d| d.insert(&2, &2)),
            call!("dict.items", d, |d| d.items()),
            call!("dict.len", d, |d| d.len()),
            call!("list.push", l, |l| l.push(&1)),
            call!("list.to_vec", l, |l| l.to_vec()),
            call!("ns.set", ns, |ns| ns.set("a", &1u8)),
            call!("ns.get", ns, |ns| ns.get::<u8>("a")),
            call!("queue.put", q, |q| q.put(&1)),
            call!("queue.get", q, |q| q.get()),
            call!("queue.try_get", q, |q| q.try_get()),
            call!("queue.get_timeout", q, |q| q.get_timeout(secs(30))),
            call!("full.put", full, |f| f.put(&3)),
            call!("lock.acquire", lock, |k| k.acquire()),
            call!("lock.try_acquire", lock, |k| k.try_acquire()),
            call!("event.wait", ev, |e| e.wait()),
            call!("event.set", ev, |e| e.set()),
            call!("value.get", v, |v| v.get()),
            call!("value.set", v, |v| v.set(&"y".into())),
            call!("counter.call", c, |c| c.call(CounterOp::Get)),
        ];
        for (what, call) in calls {
            let (r, took) = within(PROMPT, what, call);
            assert_gone(r, what);
            assert!(took < PROMPT, "{what} took {took:?}");
        }
        assert_gone(guard.release(), "releasing the guard held at the kill");
        assert_gone(m.dict::<u8, u8>().map(drop), "manager.dict");
        assert_gone(m.named("x").queue::<u8>().map(drop), "manager.named");
        assert_gone(m.create::<Counter>(0).map(drop), "manager.create");
        let (address, key) = (m.address().clone(), m.authkey().to_vec());
        let (r, _) = within(PROMPT, "connect", move || {
            Manager::connect(&address, &key).map(drop)
        });
        assert_gone(r, "Manager::connect");

        let (_, took) = within(PROMPT, "dropping the manager", move || drop(m));
        eprintln!("dropped the manager of a dead server in {took:?}");
    });
}

/// The manager of a server that was killed is dropped: nothing of the
/// server's is left in this process (its process handle's descriptors).
///
/// Guards a fixed bug: the handle of a server found dead at shutdown was
/// dropped unjoined, keeping two sockets and a pidfd until a later sweep.
#[test]
fn dropping_the_manager_of_a_killed_server_leaks_nothing() {
    fault_test(
        "dropping_the_manager_of_a_killed_server_leaks_nothing",
        || {
            let m = Manager::start().unwrap();
            let pid = server_pid(&m);
            let d = m.dict::<u8, u8>().unwrap();
            d.insert(&1, &1).unwrap();
            sigkill(pid);
            assert!(
                gone_within(pid, GONE_WITHIN).is_some(),
                "the killed server lives on"
            );
            assert_gone(d.get(&1), "a proxy on the killed server");
            let (_, took) = within(PROMPT, "dropping the manager", move || drop(m));
            eprintln!("dropped the manager of a dead server in {took:?}");
            drop(d);
        },
    );
}
