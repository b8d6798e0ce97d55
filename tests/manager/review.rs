//! Regression tests for five fixes of a review of the manager.
//!
//! - A flood of connections that exhausts the server's descriptors makes
//!   `accept` fail (`EMFILE`); the server waits and goes on serving, its
//!   objects intact (it once returned from its accept loop and exited).
//! - A lock guard that a `fork` child inherits releases nothing: the
//!   connection is the acquirer's (the child's release once went into the
//!   parent's connection, and the parent read the answers out of step).
//! - A `get` whose client has already left when the server reads it takes
//!   no item (the first check for a gone client once came only after a
//!   wait, so an item that was there at once was handed to nobody).
//! - Idle pooled connections are checked before reuse: after the server
//!   at an address is replaced, the first call through the process's link
//!   works (the stale connections once failed the next calls, one each).
//! - A reply larger than the TCP frame limit is an error reply on a
//!   connection that goes on (the server once dropped the connection, and
//!   the client saw a disconnection).

use super::*;
use crate::wire::{self, Op, Raw, Reply, Request, enc, frame};
use multiproc::connection::Address;
use multiproc::manager::{DictProxy, LockProxy};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

/// How many descriptors process `pid` has open.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("listing /proc/{pid}/fd: {e}"))
        .count()
}

/// Waits (at most `limit`) until process `pid` has at most `n`
/// descriptors open; fails the test, naming `what`, otherwise.
fn fds_drop_to(pid: u32, n: usize, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        assert!(running(pid), "{what}: the server died");
        let now = fds_of(pid);
        if now <= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the server still has {now} descriptors open after {limit:?} (expected {n})"
        );
        std::thread::sleep(ms(5));
    }
}

/// The `RLIMIT_NOFILE` of process `pid`, replaced by `new` if given.
fn nofile(pid: u32, new: Option<libc::rlimit>) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new_ptr = new.as_ref().map_or(std::ptr::null(), |n| n as *const _);
    // SAFETY: plain system call; `new_ptr` is null or points at a valid
    // rlimit, and `old` is valid writable storage.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, new_ptr, &mut old) };
    assert_eq!(
        rc,
        0,
        "prlimit({pid}, RLIMIT_NOFILE): {}",
        std::io::Error::last_os_error()
    );
    old
}

/// A TCP manager with authkey `key`.
fn tcp_manager(key: &[u8]) -> Manager {
    Manager::builder()
        .address("127.0.0.1:0".parse().unwrap())
        .authkey(key)
        .start()
        .expect("a TCP manager")
}

/// Guards `serve` (src/manager/server/mod.rs): an `accept` that fails
/// (here `EMFILE`, the server's descriptors exhausted by connections that
/// never authenticate) once ended the server, and its objects with it.
#[test]
fn accept_errors_do_not_stop_the_server() {
    fault_test("accept_errors_do_not_stop_the_server", || {
        let m = tcp_manager(b"k");
        let address = m.address().clone();
        let Address::Tcp(socket_address) = address.clone() else {
            panic!("a TCP manager at {address}");
        };
        let d = m.named("d").dict::<u32, u32>().unwrap();
        d.insert(&1, &11).unwrap();
        let pid = server_pid(&m);
        let baseline = fds_of(pid);

        // Room for a few more descriptors only.
        let old = nofile(pid, None);
        let soft = baseline as u64 + 8;
        assert!(
            soft <= old.rlim_max,
            "the hard limit {} is too low",
            old.rlim_max
        );
        nofile(
            pid,
            Some(libc::rlimit {
                rlim_cur: soft,
                rlim_max: old.rlim_max,
            }),
        );

        // Connections that never authenticate: each accepted one holds a
        // descriptor of the server (for up to the handshake timeout), so
        // `accept` soon fails.
        let mut refused = 0;
        let flood: Vec<TcpStream> = (0..40)
            .filter_map(|_| {
                TcpStream::connect(socket_address)
                    .inspect_err(|_| refused += 1)
                    .ok()
            })
            .collect();
        std::thread::sleep(ms(300));
        assert!(
            running(pid),
            "the server died of a flood of connections ({refused} of 40 connects refused)"
        );
        let at_peak = fds_of(pid);
        assert_eq!(refused, 0, "connects refused while the server runs");
        assert!(
            at_peak as u64 + 1 >= soft,
            "the flood never brought the server to its descriptor limit \
             ({at_peak} open, soft limit {soft}): the test no longer tests accept errors"
        );
        eprintln!("the server at its limit: {at_peak} descriptors open, soft limit {soft}");

        // The flood leaves; the server closes its ends (and accepts the
        // rest of the backlog, all closed already).
        drop(flood);
        fds_drop_to(pid, baseline, secs(10), "after the flood");
        assert!(running(pid), "the server died after the flood");

        // The objects are intact, through the old connection and new ones,
        // still under the lowered limit.
        let d2 = d.clone();
        let (got, _) = within(PROMPT, "a get through the old connection", move || {
            d2.get(&1)
        });
        assert_eq!(got.unwrap(), Some(11), "the dict after the flood");
        let (got, _) = within(PROMPT, "a get through a new client", move || {
            let c = Manager::connect(&address, b"k")?;
            let d = c.named("d").dict::<u32, u32>()?;
            d.insert(&2, &22)?;
            d.get(&1)
        });
        assert_eq!(got.unwrap(), Some(11), "the dict through a new client");
        assert_eq!(d.get(&2).unwrap(), Some(22));

        nofile(pid, Some(old));
        drop(d);
        m.shutdown().expect("shutdown");
        assert!(
            gone_within(pid, GONE_WITHIN).is_some(),
            "the server lives on"
        );
    });
}

/// Forks per driver: before the fix, a round went wrong only when a
/// reader stole another's reply, about one time in two.
const GUARD_FORKS: u32 = 10;

/// In a fork-server child (single-threaded, so it may fork), in each of
/// [`GUARD_FORKS`] rounds: takes the lock, then forks a child into whose
/// closure the guard moves. `fork` drops the parent's copy of the closure,
/// so the parent releases the lock (and its connection goes back to the
/// pool, the next for the dict calls); the child drops its copy after a
/// moment, while the parent goes on with the dict on that connection.
/// Every answer the parent gets must be its own. Returns how many
/// entries it inserted.
fn guard_fork_driver((lock, d): (LockProxy, DictProxy<u32, u32>)) -> u32 {
    assert_eq!(d.insert(&u32::MAX, &0).unwrap(), None);
    let mut inserted = 0;
    for round in 0..GUARD_FORKS {
        let guard = lock.try_acquire().unwrap().expect("the lock is free");
        let delay = Duration::from_micros(300 * u64::from(round % 4));
        let mut child = Process::builder()
            .start_method(StartMethod::Fork)
            .fork(move || {
                std::thread::sleep(delay);
                drop(guard);
                round
            })
            .expect("forking");
        // At least 50 calls, and on until the child has dropped its copy.
        let deadline = Instant::now() + PROMPT;
        let mut k = 0u32;
        while k < 50 || child.is_alive() {
            assert!(
                Instant::now() < deadline,
                "round {round}: the fork child still runs after {PROMPT:?} \
                 (stuck in the guard's release?)"
            );
            let key = round * 1_000_000 + k;
            let r = d.insert(&key, &(k * 5));
            assert!(
                matches!(r, Ok(None)),
                "round {round}: fork parent: insert #{k}: {r:?}"
            );
            let got = d.get(&key);
            assert!(
                matches!(got, Ok(Some(v)) if v == k * 5),
                "round {round}: fork parent: get #{k}: {got:?}"
            );
            k += 1;
        }
        let r = child.join_timeout(PROMPT);
        assert!(
            matches!(r, Ok(n) if n == round),
            "round {round}: the fork child: {r:?}"
        );
        inserted += k;
    }
    // The parent's releases went through; the children's copies released
    // nothing and left the connection to the parent.
    let again = lock.try_acquire().unwrap();
    assert!(
        again.is_some(),
        "the lock is still held after the parent dropped its guard"
    );
    drop(again);
    assert_eq!(d.get(&u32::MAX).unwrap(), Some(0), "fork parent at the end");
    inserted
}

/// Guards `ManagedLockGuard::release_inner` (src/manager/proxy/sync.rs):
/// a fork child's copy of a guard once sent a `LockRelease` into the
/// parent's connection, whose answers the parent then read out of step
/// (a dict `get` answered "release of a lock this connection does not
/// hold"). With the default (shared-memory) transport and over TCP.
#[test]
fn a_lock_guard_copied_by_fork_leaves_the_connection_alone() {
    fault_test(
        "a_lock_guard_copied_by_fork_leaves_the_connection_alone",
        || {
            for (label, m) in [
                ("local", Manager::start().unwrap()),
                ("tcp", tcp_manager(b"k")),
            ] {
                let lock = m.lock().unwrap();
                let d = m.dict::<u32, u32>().unwrap();
                let n = Kid::spawn(
                    builder(StartMethod::ForkServer),
                    guard_fork_driver,
                    (lock.clone(), d.clone()),
                )
                .finish(&format!("{label}: the fork driver"));
                assert!(n >= 50 * GUARD_FORKS, "{label}: {n} inserts");
                assert_eq!(d.len().unwrap(), n as usize + 1, "{label}");
                let g = lock.try_acquire().unwrap();
                assert!(g.is_some(), "{label}: the lock was left held");
            }
        },
    );
}

/// Sets `TCP_CORK` on `s`: what is written stays in the kernel until the
/// socket is closed or shut down, and then goes out with the end-of-file.
fn cork(s: &TcpStream) {
    let one: libc::c_int = 1;
    // SAFETY: plain system call; `one` is a valid c_int whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "TCP_CORK: {}", std::io::Error::last_os_error());
}

/// Guards `Object::wait_for` (src/manager/server/store.rs): a `get` read
/// after its client had left took an item that was there at once, and the
/// reply (a send into a half-closed socket succeeds) lost it.
///
/// The request is corked, so that it reaches the server together with the
/// client's end-of-file: the client has left before the server reads it.
/// Even rounds close the socket; odd ones only shut down its writing half
/// and read the server's answer, which must be an error.
#[test]
fn a_get_whose_client_left_takes_no_item() {
    fault_test("a_get_whose_client_left_takes_no_item", || {
        const ROUNDS: u32 = 20;
        let m = tcp_manager(b"k");
        let q = m.queue::<u32>().unwrap();
        let id = wire::wire_of(&q, &m).id;
        q.put(&7).unwrap();
        let pid = server_pid(&m);
        let baseline = fds_of(pid);
        let request = frame(&enc(&Request::Op {
            id,
            op: Op::QueueGet(None),
        }));
        let mut lost = Vec::new();
        for round in 0..ROUNDS {
            let mut raw = wire::authenticated(m.address(), b"k");
            let Raw::Tcp(s) = &raw else {
                panic!("a raw TCP stream")
            };
            cork(s);
            raw.send(&request).expect("sending the get");
            if round % 2 == 0 {
                drop(raw);
            } else {
                raw.shutdown_write();
                match raw.read_frame().map(|b| postcard::from_bytes::<Reply>(&b)) {
                    Ok(Ok(Reply::Failed(f))) => {
                        if round == 1 {
                            eprintln!("the get of a client that left: {f:?}");
                        }
                    }
                    // The item handed over: counted below.
                    Ok(Ok(Reply::Item(Some(_)))) => {}
                    other => panic!("round {round}: the get of a client that left: {other:?}"),
                }
                drop(raw);
            }
            // The server is done with the connection once it has closed it.
            fds_drop_to(pid, baseline, PROMPT, &format!("round {round}"));
            std::thread::sleep(ms(20));
            let len = q.len().unwrap();
            assert!(len <= 1, "round {round}: {len} items");
            if len == 0 {
                lost.push(round);
                q.put(&7).unwrap();
            } else {
                assert_eq!(q.get_timeout(PROMPT).unwrap(), 7, "round {round}");
                q.put(&7).unwrap();
            }
        }
        assert!(
            lost.is_empty(),
            "the item was handed to a client that had left in {} of {ROUNDS} rounds: {lost:?}",
            lost.len()
        );
        assert_eq!(q.len().unwrap(), 1);
    });
}

/// A free TCP port on 127.0.0.1 (free a moment ago).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding port 0");
    l.local_addr().unwrap().port()
}

/// A manager at `address` (a fixed port that was just given up: retried
/// for a moment if still taken).
fn manager_at(address: &Address, key: &[u8]) -> Manager {
    let deadline = Instant::now() + PROMPT;
    loop {
        match Manager::builder()
            .address(address.clone())
            .authkey(key)
            .start()
        {
            Ok(m) => return m,
            Err(e) if e.io_error().is_some() && Instant::now() < deadline => {
                std::thread::sleep(ms(20));
            }
            Err(e) => panic!("a manager at {address}: {e}"),
        }
    }
}

/// Guards `Link::take` (src/manager/client.rs): the idle connections to a
/// server that has gone (and been replaced at the same address) were once
/// used as they were, so the next calls through the process's link failed
/// as disconnected, one per stale connection.
#[test]
fn idle_connections_to_a_replaced_server_are_not_reused() {
    fault_test(
        "idle_connections_to_a_replaced_server_are_not_reused",
        || {
            let key = b"review key";
            let address = Address::Tcp(SocketAddr::from(([127, 0, 0, 1], free_port())));
            let a = manager_at(&address, key);
            // Objects first, so that the dict's id is not among the first few
            // that the next server hands out.
            let fill: Vec<_> = (0..8).map(|_| a.event().unwrap()).collect();
            let old = a.named("d").dict::<u32, u32>().unwrap();
            old.insert(&1, &1).unwrap();
            // Several connections at once (each guard holds one), then all idle
            // in the pool; and calls from 3 threads at once.
            let locks: Vec<LockProxy> = (0..3).map(|_| a.lock().unwrap()).collect();
            let guards: Vec<_> = locks
                .iter()
                .map(|l| l.try_acquire().unwrap().expect("a free lock"))
                .collect();
            drop(guards);
            let barrier = std::sync::Barrier::new(3);
            std::thread::scope(|s| {
                for t in 0..3u32 {
                    let (old, barrier) = (&old, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        for i in 0..50 {
                            old.insert(&(100 * (t + 1) + i), &i).unwrap();
                        }
                    });
                }
            });
            let old_id = wire::wire_of(&old, &a).id;
            drop((fill, locks));
            let pid = server_pid(&a);
            a.shutdown().expect("shutting A down");
            assert!(gone_within(pid, GONE_WITHIN).is_some(), "A lives on");

            let b = manager_at(&address, key);
            std::thread::sleep(ms(100));
            // The first calls through the link (the same one: same address and
            // key, kept alive by `old`) work.
            for i in 0..6u32 {
                let r = b.named(&format!("fresh {i}")).dict::<u32, u32>();
                let fresh = r.unwrap_or_else(|e| panic!("call #{} through B's handle: {e}", i + 1));
                fresh.insert(&i, &i).unwrap();
            }
            let c = Manager::connect(&address, key).expect("connecting to B");
            let d = c
                .named("d")
                .dict::<u32, u32>()
                .expect("a dict through connect");
            assert_eq!(d.insert(&1, &2).unwrap(), None, "B's dict is new");
            assert_eq!(d.get(&1).unwrap(), Some(2));
            assert_ne!(
                wire::wire_of(&d, &b).id,
                old_id,
                "the test needs the old dict's id to name nothing on B"
            );

            // The old proxy names an object B never had: an error, promptly.
            let (r, _) = within(PROMPT, "a call on the old proxy", move || old.get(&1));
            match r {
                Err(e) if e.is_disconnected() || e.is_misuse() => {
                    eprintln!("the old proxy on B: {e}")
                }
                other => panic!("the old proxy on B: {other:?}"),
            }
            drop((d, c));
            let pid = server_pid(&b);
            drop(b);
            assert!(gone_within(pid, GONE_WITHIN).is_some(), "B lives on");
        },
    );
}

/// Guards `End::send` (src/manager/server/mod.rs): a reply larger than the
/// TCP frame limit (64 MiB) once closed the connection, so the client saw
/// a disconnection with no reason given.
#[test]
fn a_reply_over_the_frame_limit_is_an_error_reply() {
    fault_test("a_reply_over_the_frame_limit_is_an_error_reply", || {
        const ITEMS: usize = 66;
        const MIB: usize = 1 << 20;
        let m = tcp_manager(b"k");
        let l = m.list::<Vec<u8>>().unwrap();
        for chunk in 0..3 {
            let items = (0..ITEMS / 3).map(|i| vec![(chunk * 30 + i) as u8; MIB]);
            l.extend(items).unwrap();
        }
        assert_eq!(l.len().unwrap(), ITEMS);
        let l2 = l.clone();
        let (r, took) = within(secs(20), "to_vec of 66 MiB", move || {
            l2.to_vec().map(|v| v.len())
        });
        match r {
            Err(e) if e.is_misuse() && !e.is_disconnected() => {
                eprintln!("to_vec of 66 MiB ({took:?}): {e}")
            }
            other => panic!("to_vec of 66 MiB: expected a misuse error, got {other:?}"),
        }
        assert_eq!(l.len().unwrap(), ITEMS, "the list after the refused reply");
        assert_eq!(l.get(-1).unwrap().map(|v| v.len()), Some(MIB));
        l.clear().unwrap();
        assert_eq!(l.len().unwrap(), 0);
    });
}
