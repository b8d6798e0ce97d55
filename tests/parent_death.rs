//! A parent killed with SIGKILL takes all its children with it, whatever
//! their start method or daemon flag, and its fork server too.

mod common;

use common::{JOIN, pidfd_open, read_line_until, secs, wait_all_readable};
use multiproc::{Fd, Process, StartMethod};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

fn sleeps_forever(_: ()) {
    loop {
        std::thread::sleep(secs(1));
    }
}

/// The pid of the calling process's parent: for a fork-server child, the
/// fork server.
fn parent_of_me(_: ()) -> u32 {
    std::os::unix::process::parent_id()
}

/// The intermediate process P: starts a daemon and a non-daemon child with
/// each start method (it is single-threaded, so Fork is allowed), writes
/// `label:pid` for each and for its fork server on `out`, then sleeps.
fn intermediate(out: Fd) {
    let mut children = Vec::new();
    let mut line = String::new();
    for (label, method) in [
        ("forkserver", StartMethod::ForkServer),
        ("spawn", StartMethod::Spawn),
        ("fork", StartMethod::Fork),
    ] {
        for daemon in [false, true] {
            let p = Process::builder()
                .start_method(method)
                .daemon(daemon)
                .spawn(sleeps_forever, ())
                .unwrap_or_else(|e| panic!("P: cannot start a {label} child: {e}"));
            let kind = if daemon { "daemon" } else { "worker" };
            line.push_str(&format!("{label}-{kind}:{} ", p.pid()));
            children.push(p);
        }
    }
    let mut probe = Process::spawn(parent_of_me, ()).unwrap();
    let server = probe.join_timeout(JOIN).unwrap();
    line.push_str(&format!("forkserver-of-P:{server}\n"));
    let mut out = std::fs::File::from(out);
    out.write_all(line.as_bytes()).unwrap();
    loop {
        std::thread::sleep(secs(1));
    }
}

#[test]
fn sigkilled_parent_takes_every_child_and_its_fork_server() {
    let (reader, writer) = common::pipe();
    let mut p = Process::builder()
        .name("P")
        .start_method(StartMethod::Spawn)
        .spawn(intermediate, Fd::from(writer))
        .unwrap();
    let line = match read_line_until(reader.as_fd(), Instant::now() + JOIN) {
        Ok(line) => line,
        Err(e) => {
            let _ = p.kill();
            let err = p.join_timeout(JOIN).err();
            panic!("P never reported its children: {e}; P ended with {err:?}");
        }
    };
    let pids: Vec<(String, i32)> = line
        .split_whitespace()
        .map(|item| {
            let (label, pid) = item.split_once(':').unwrap();
            (label.to_owned(), pid.parse().unwrap())
        })
        .collect();
    assert_eq!(pids.len(), 7, "{line}");
    let pidfds: Vec<OwnedFd> = pids
        .iter()
        .map(|(label, pid)| pidfd_open(*pid).unwrap_or_else(|e| panic!("{label} ({pid}): {e}")))
        .collect();
    let borrowed: Vec<_> = pidfds.iter().map(|fd| fd.as_fd()).collect();

    // All alive before.
    let alive = wait_all_readable(&borrowed, Instant::now());
    assert_eq!(
        alive.len(),
        pids.len(),
        "some died before P was killed: {line}"
    );

    // SAFETY: plain system call on our own child's pid, not yet reaped.
    assert_eq!(unsafe { libc::kill(p.pid() as i32, libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let survivors = wait_all_readable(&borrowed, killed + Duration::from_secs(1));
    let survivors: Vec<&(String, i32)> = survivors.iter().map(|&i| &pids[i]).collect();
    assert!(
        survivors.is_empty(),
        "still alive 1 s after P's SIGKILL: {survivors:?}"
    );
    let err = p.join_timeout(JOIN).unwrap_err();
    assert_eq!(err.signal(), Some(libc::SIGKILL), "{err}");
    eprintln!("all gone {:?} after P's SIGKILL", killed.elapsed());
}
