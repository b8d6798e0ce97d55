//! Scenario 8: servers reached by address.
//!
//! A TCP manager (`127.0.0.1:0`, an explicit authkey) hands out jobs
//! through a named queue to two worker processes that only know its
//! address and key (started with each method, each connecting on its
//! own): every job is done once, the results land in a named dict that a
//! third client, connected from the test process, sees too. Names are
//! typed: the same name with another kind or other types is refused. A
//! manager on a Unix socket path serves clients here and in a child, and
//! its socket file is gone once it is shut down or dropped. A `connect` to
//! a server that has stopped is an I/O error.

use super::*;
use common::tmp_path;
use multiproc::connection::Address;

const JOBS: u32 = 20;
const WORKERS: u32 = 2;

/// A worker that knows only the address and key.
fn remote_worker((address, key): (Address, Vec<u8>)) -> u32 {
    let wrong = Manager::connect(&address, b"guess").map(drop).unwrap_err();
    assert!(wrong.is_authentication_failure(), "a wrong key: {wrong}");
    let m = Manager::connect(&address, &key).expect("the worker's connect");
    assert_eq!(m.pid(), None);
    let jobs = m.named("jobs").queue::<u32>().unwrap();
    let results = m.named("results").dict::<u32, u64>().unwrap();
    let mut done = 0;
    loop {
        let job = jobs.get_timeout(JOIN).expect("a job");
        if job == 0 {
            return done;
        }
        let old = results
            .insert(&job, &(u64::from(job) * u64::from(job)))
            .unwrap();
        assert_eq!(old, None, "job {job} done twice");
        done += 1;
    }
}

#[test]
fn tcp_manager_serves_separate_clients_by_name() {
    fault_test("tcp_manager_serves_separate_clients_by_name", || {
        let key = b"remote secret".to_vec();
        let m = Manager::builder()
            .address("127.0.0.1:0".parse().unwrap())
            .authkey(&key)
            .start()
            .unwrap();
        let address = m.address().clone();
        match &address {
            Address::Tcp(a) => assert_ne!(a.port(), 0, "the real port"),
            other => panic!("a TCP manager at {other}"),
        }
        assert_eq!(m.authkey(), key);
        let jobs = m.named("jobs").queue::<u32>().unwrap();
        for j in 1..=JOBS {
            jobs.put(&j).unwrap();
        }
        for _ in 0..WORKERS {
            jobs.put(&0).unwrap();
        }
        let mut workers = [StartMethod::Spawn, StartMethod::ForkServer].map(|method| {
            Kid::spawn(
                builder(method),
                remote_worker,
                (address.clone(), key.clone()),
            )
        });
        let done: u32 = workers
            .iter_mut()
            .map(|w| w.finish("a remote worker"))
            .sum();
        assert_eq!(done, JOBS, "jobs done");

        let c = Manager::connect(&address, &key).unwrap();
        let results = c.named("results").dict::<u32, u64>().unwrap();
        let mut got = results.items().unwrap();
        got.sort_unstable();
        let want: Vec<(u32, u64)> = (1..=JOBS).map(|j| (j, u64::from(j * j))).collect();
        assert_eq!(got, want);
        assert_eq!(c.named("jobs").queue::<u32>().unwrap().len().unwrap(), 0);

        // Names are typed.
        for e in [
            c.named("jobs").dict::<u32, u64>().map(drop).unwrap_err(),
            c.named("jobs").queue::<u64>().map(drop).unwrap_err(),
            c.named("results").dict::<u32, u32>().map(drop).unwrap_err(),
        ] {
            assert!(e.is_misuse(), "a name of another type: {e}");
        }
        drop(c);
        // The connected handles are gone; the owner still serves.
        assert_eq!(jobs.len().unwrap(), 0);
        let pid = server_pid(&m);
        drop(m);
        assert!(
            gone_within(pid, GONE_WITHIN).is_some(),
            "the TCP server outlived its manager"
        );
    });
}

/// `Manager::connect` to a server that has stopped is an I/O error (its
/// documented contract: "an I/O error when nothing listens at
/// `address`"), whether or not this process still holds proxies on it.
///
/// The second case guards a fixed bug: `connect` once checked the server
/// with an idle cached connection (no round trip), and so succeeded for a
/// stopped server while a proxy kept the process's link to it alive.
#[test]
fn connect_to_a_stopped_server_fails() {
    fault_test("connect_to_a_stopped_server_fails", || {
        for keep_a_proxy in [false, true] {
            let m = Manager::builder()
                .address("127.0.0.1:0".parse().unwrap())
                .authkey(b"k")
                .start()
                .unwrap();
            let address = m.address().clone();
            let d = m.dict::<u8, u8>().unwrap();
            d.insert(&1, &1).unwrap();
            let kept = keep_a_proxy.then_some(d);
            let pid = server_pid(&m);
            drop(m);
            assert!(
                gone_within(pid, GONE_WITHIN).is_some(),
                "the server lives on"
            );
            let r = Manager::connect(&address, b"k").map(drop);
            assert!(
                r.as_ref().is_err_and(|e| e.io_error().is_some()),
                "connect to a stopped server, a proxy kept: {keep_a_proxy}: {r:?}"
            );
            drop(kept);
        }
    });
}

/// A client in a child: increments the named value under the named lock.
fn unix_client((address, key): (Address, Vec<u8>)) -> u64 {
    let m = Manager::connect(&address, &key).expect("a Unix-path connect");
    let lock = m.named("lock").lock().unwrap();
    let v = m.named("n").value(&0u64).unwrap();
    let g = lock.acquire_timeout(JOIN).unwrap().expect("the lock");
    let n = v.get().unwrap() + 1;
    v.set(&n).unwrap();
    g.release().unwrap();
    n
}

/// A client in a child that keeps its connection open until killed.
fn unix_holder((address, key, ready): (Address, Vec<u8>, multiproc::Event)) {
    let m = Manager::connect(&address, &key).expect("a Unix-path connect");
    let v = m.named("n").value(&0u64).unwrap();
    v.get().unwrap();
    ready.set();
    sleep_forever();
}

/// The socket file must be gone once the server has ended, also when
/// clients still have connections open at that moment (here a lock guard
/// and a sleeping child).
///
/// Guards a fixed bug: connection threads once kept the listener alive
/// (for the handshake), so its `Drop`, which removes the file, never ran.
#[test]
fn unix_path_manager_removes_its_socket_file() {
    fault_test("unix_path_manager_removes_its_socket_file", || {
        let dir = tmp_path("manager-unix");
        std::fs::create_dir_all(&dir).unwrap();
        for how in ["shutdown", "drop"] {
            let path = dir.join(format!("{how}.sock"));
            let address = Address::Unix(path.clone());
            let m = Manager::builder().address(address.clone()).start().unwrap();
            assert_eq!(m.address(), &address);
            assert!(path.exists(), "{how}: no socket file");
            let key = m.authkey().to_vec();

            // Clients here (an owner's proxies and a connected handle) and
            // in a child, their connections open when the server ends.
            let n = m.named("n").value(&0u64).unwrap();
            let mut k = Kid::spawn(
                builder(StartMethod::ForkServer),
                unix_client,
                (address.clone(), key.clone()),
            );
            assert_eq!(k.finish("the Unix-path client"), 1);
            let c = Manager::connect(&address, &key).unwrap();
            assert_eq!(c.named("n").value(&0u64).unwrap().get().unwrap(), 1);
            assert_eq!(n.get().unwrap(), 1);

            // A second server cannot take the path while it is in use.
            let taken = Manager::builder()
                .address(address.clone())
                .start()
                .map(drop);
            assert!(
                taken.as_ref().is_err_and(|e| e.io_error().is_some()),
                "{how}: a second bind of {path:?}: {taken:?}"
            );

            // Connections still open when the server ends: a lock guard
            // here, and a child that sleeps with its proxy.
            let guard = m.named("lock").lock().unwrap().acquire().unwrap();
            let ready = multiproc::Event::new().unwrap();
            let mut holder = Kid::spawn(
                victim(StartMethod::ForkServer),
                unix_holder,
                (address.clone(), key.clone(), ready.clone()),
            );
            assert!(ready.wait_timeout(JOIN), "the holder never connected");

            let pid = server_pid(&m);
            match how {
                "shutdown" => m.shutdown().expect("shutdown"),
                _ => drop(m),
            }
            assert!(
                gone_within(pid, GONE_WITHIN).is_some(),
                "{how}: the server lives on"
            );
            assert!(
                !path.exists(),
                "{how}: the socket file {path:?} is left behind after the server ended"
            );
            assert_gone(n.get(), "a proxy after the end");
            drop((c, guard));
            holder.kill_and_reap("the connected child");
        }
        std::fs::remove_dir(&dir).expect("the socket directory is empty");
    });
}
