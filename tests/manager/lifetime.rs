//! Scenario 6: the server ends with its owner.
//!
//! Dropping a `Manager` (or calling `shutdown`) ends its server: the pid
//! is gone, reaped, within [`GONE_WITHIN`] of the drop, even with a client
//! thread asleep in a `get` (which then fails promptly); a connected
//! handle owns nothing, and dropping it leaves the server running. A child
//! that started a manager and is `SIGKILL`ed takes the server (and the
//! fork server that started it) with it within 1 s: nothing is left
//! running.

use super::*;
use common::{Method, pidfd_open, proc_state, wait_all_readable};
use multiproc::connection::Address;
use multiproc::{Connection, Never, Pipe};
use std::os::fd::AsFd;

#[test]
fn dropping_the_manager_ends_its_server() {
    fault_test("dropping_the_manager_ends_its_server", || {
        for method in [StartMethod::ForkServer, StartMethod::Spawn] {
            let m = Manager::builder().start_method(method).start().unwrap();
            let pid = server_pid(&m);
            assert!(running(pid), "{method:?}: no server");
            let d = m.dict::<u32, u32>().unwrap();
            d.insert(&1, &1).unwrap();
            let q = m.queue::<u32>().unwrap();

            // A connected handle owns nothing.
            let c = Manager::connect(m.address(), m.authkey()).unwrap();
            assert_eq!(c.pid(), None);
            c.shutdown().unwrap();
            std::thread::sleep(ms(200));
            assert!(
                running(pid),
                "{method:?}: a connected handle stopped the server"
            );
            assert_eq!(d.get(&1).unwrap(), Some(1));

            let blocked = Blocked::start("a get across the drop", {
                let q = q.clone();
                move || q.get()
            });
            let dropped = Instant::now();
            drop(m);
            let drop_took = dropped.elapsed();
            let gone = gone_within(pid, GONE_WITHIN.saturating_sub(drop_took));
            eprintln!("{method:?}: drop took {drop_took:?}; server gone after {gone:?} more");
            assert!(
                gone.is_some(),
                "{method:?}: the server outlived its manager by 1 s"
            );
            let (r, after) = blocked.outcome(dropped, PROMPT);
            eprintln!("{method:?}: the blocked get failed {after:?} after the drop");
            assert_gone(r, "the get across the drop");
            assert_gone(d.get(&1), "a proxy that outlived its manager");
        }

        // shutdown, explicitly.
        let m = Manager::start().unwrap();
        let pid = server_pid(&m);
        let l = m.list::<u8>().unwrap();
        l.push(&1).unwrap();
        let started = Instant::now();
        m.shutdown().expect("shutdown");
        let took = started.elapsed();
        assert!(took < GONE_WITHIN, "shutdown took {took:?}");
        assert!(
            !pid_exists(pid as i32),
            "shutdown returned before the server was reaped"
        );
        assert_gone(l.len(), "a proxy after shutdown");
    });
}

/// What the owner child reports: its server's pid, address and authkey.
type Report = (u32, Address, Vec<u8>);

/// A child that starts a manager, reports it, and sleeps until killed.
fn owner((tx, method): (Connection<Report, Never>, Method)) {
    let m = Manager::builder()
        .start_method(method.start_method())
        .start()
        .expect("the child's manager");
    m.named("d")
        .dict::<u32, u32>()
        .unwrap()
        .insert(&1, &10)
        .unwrap();
    tx.send((server_pid(&m), m.address().clone(), m.authkey().to_vec()))
        .expect("reporting");
    let _keep = m;
    sleep_forever();
}

#[test]
fn killed_owner_takes_its_server() {
    fault_test("killed_owner_takes_its_server", || {
        for (owner_method, manager_method) in [
            (StartMethod::ForkServer, Method::ForkServer),
            (StartMethod::Spawn, Method::Spawn),
        ] {
            let what = format!("{owner_method:?} owner, {manager_method:?} server");
            let (rx, tx) = Pipe::simplex::<Report>().unwrap();
            let mut kid = Kid::spawn(victim(owner_method), owner, (tx, manager_method));
            let (pid, address, key) = rx.recv_timeout(JOIN).expect("the owner's report");
            let fork_server = proc_state(pid as i32).expect("the server's state").1 as u32;
            assert_ne!(
                fork_server,
                std::process::id(),
                "{what}: the server is ours"
            );
            let watched = [pid, fork_server];
            let pidfds: Vec<_> = watched
                .iter()
                .map(|&p| pidfd_open(p as i32).expect("pidfd"))
                .collect();
            let fds: Vec<_> = pidfds.iter().map(|f| f.as_fd()).collect();
            assert_eq!(
                wait_all_readable(&fds, Instant::now()).len(),
                2,
                "{what}: dead already"
            );

            // The test process is a client too.
            let c = Manager::connect(&address, &key).expect("connecting to the child's server");
            let d = c.named("d").dict::<u32, u32>().unwrap();
            assert_eq!(d.get(&1).unwrap(), Some(10), "{what}");

            kid.kill().unwrap();
            let killed = Instant::now();
            let left = wait_all_readable(&fds, killed + GONE_WITHIN);
            let left: Vec<u32> = left.iter().map(|&i| watched[i]).collect();
            assert!(
                left.is_empty(),
                "{what}: still running 1 s after the owner's SIGKILL: {left:?} (server {pid}, its fork server {fork_server})"
            );
            eprintln!(
                "{what}: server and fork server gone {:?} after the kill",
                killed.elapsed()
            );
            kid.reap_killed("the owner");
            for p in watched {
                assert!(!running(p), "{what}: {p} left running");
            }
            let (r, _) = within(PROMPT, "a call to the dead owner's server", move || d.len());
            assert_gone(r, "a proxy on the dead owner's server");
            drop(c);
        }
    });
}
