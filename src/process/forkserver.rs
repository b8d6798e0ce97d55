//! The fork server: a clean, single-threaded copy of the program whose only
//! job is to fork children on request.
//!
//! It is started by exec (`/proc/self/exe`) the first time a child is needed
//! and never runs the user's `main`. Being single-threaded, it can fork
//! safely, and a fork of a small clean process is much cheaper than an exec.
//! It also launches the children of the Spawn start method (fork, then exec),
//! so that every child except those of [`StartMethod::Fork`](super::StartMethod::Fork)
//! has this one single-threaded parent. That gives three guarantees:
//!
//! - `PR_SET_PDEATHSIG` is reliable for them (it fires when the *thread*
//!   that forked exits; the server has one thread, alive as long as it is);
//! - they are reaped by the server at once (`signalfd(SIGCHLD)`), so they are
//!   never zombies of the user's process, whatever it does with the handles;
//! - the server holds one status socket per child, given by the parent, and
//!   posts the exit status on it after reaping: the parent sleeps on that one
//!   event to wait for a child (see `handle`).
//!
//! The server watches its own socket to the parent: when the parent dies
//! (even by `SIGKILL`) the socket hangs up, and the server kills every child
//! and exits. Its children die with it (`PDEATHSIG`). A server that dies is
//! restarted at the next spawn; its children died with it and report
//! [`Error::is_fork_server_lost`](crate::Error::is_fork_server_lost).

use super::builder::StdioKind;
use super::child;
use super::protocol::{ROLE_VAR, Report, SpawnReply, SpawnRequest, StdioSlot};
use crate::error::Error;
use crate::sys::{self, proc};
use crate::wire::WireError;
use crate::wire::frame::{self, Frame};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long the parent waits for the server to answer a request (it may be
/// starting: exec, dynamic loading) before giving up.
const REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// How long the parent (for a reply) and the server (for its next event)
/// poll awake before sleeping: a fork answers in tens of microseconds, and
/// a short child ends soon after, so both are caught without a wake-up.
const SPIN: Duration = Duration::from_micros(200);

// ---------------------------------------------------------------- client side

#[derive(Debug)]
struct Client {
    sock: OwnedFd,
    pidfd: OwnedFd,
    pid: i32,
    /// Identity of the server's standard streams (its stdin is /dev/null,
    /// the others the parent's at start-up): a child whose stream is the
    /// same file keeps the server's, and no descriptor has to travel.
    stdio_ids: [Option<(u64, u64)>; 3],
}

static CLIENT: Mutex<Option<Client>> = Mutex::new(None);

fn client() -> MutexGuard<'static, Option<Client>> {
    CLIENT.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_server() -> Result<Client, Error> {
    let (ours, theirs) =
        crate::sys::socket::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
    let raw = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.env(ROLE_VAR, format!("forkserver:{raw}"))
        .arg0(format!("{} [multiproc fork server]", program_name()))
        .stdin(std::process::Stdio::null());
    // SAFETY: the closure runs between fork and exec in a possibly
    // multi-threaded parent; it makes only fcntl calls (async-signal-safe)
    // and allocates nothing.
    unsafe {
        cmd.pre_exec(move || sys::set_cloexec(raw, false));
    }
    let stdio_ids = [
        sys::open_dev_null()
            .ok()
            .and_then(|n| sys::fd_identity(n.as_raw_fd())),
        sys::fd_identity(1),
        sys::fd_identity(2),
    ];
    let child = cmd
        .spawn()
        .map_err(|e| Error::start(format!("cannot exec the fork server: {e}")))?;
    drop(theirs);
    let pid = child.id() as i32;
    // Our own child, not yet waited for: its pid cannot have been reused.
    let pidfd = proc::pidfd_open(pid).map_err(|e| Error::io("pidfd_open", e))?;
    log::debug!("started fork server (pid {pid})");
    Ok(Client {
        sock: ours,
        pidfd,
        pid,
        stdio_ids,
    })
}

fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "multiproc".to_owned())
}

/// Reaps a dead or unwanted server (our direct child), killing it first.
fn discard(c: Client) {
    log::debug!("replacing the fork server (pid {})", c.pid);
    let _ = proc::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
    drop(c.sock);
    let _ = proc::waitid_pidfd(c.pidfd.as_fd(), false);
}

/// Asks the server for a child with control socket `ctl` and status socket
/// `status`. Returns its pid and pidfd.
pub(crate) fn request(
    mut req: SpawnRequest,
    ctl: OwnedFd,
    status: OwnedFd,
    stdio: [StdioKind; 3],
) -> Result<(i32, OwnedFd), Error> {
    // Descriptors given by the caller are placed once; inherited streams
    // are decided against the server actually used (it may be replaced).
    let mut fds = vec![ctl, status];
    let mut fixed: [Option<StdioSlot>; 3] = [None; 3];
    for (i, kind) in stdio.into_iter().enumerate() {
        fixed[i] = match kind {
            StdioKind::Fd(fd) => {
                fds.push(fd);
                Some(StdioSlot::Fd((fds.len() - 1) as u8))
            }
            // The server's stdin is /dev/null already.
            StdioKind::Null if i == 0 => Some(StdioSlot::Keep),
            StdioKind::Null => Some(StdioSlot::Null),
            StdioKind::Inherit => None,
        };
    }
    let fixed_len = fds.len();
    let mut guard = client();
    let mut attempt = 0;
    loop {
        attempt += 1;
        if guard.is_none() {
            *guard = Some(start_server()?);
        }
        let c = guard
            .as_ref()
            .ok_or_else(|| Error::start("no fork server"))?;
        fds.truncate(fixed_len);
        for (i, slot) in fixed.iter().enumerate() {
            req.stdio[i] = match *slot {
                Some(slot) => slot,
                None if sys::fd_identity(i as RawFd) == c.stdio_ids[i] => StdioSlot::Keep,
                None => match sys::dup_cloexec_raw(i as RawFd) {
                    Ok(fd) => {
                        fds.push(fd);
                        StdioSlot::Fd((fds.len() - 1) as u8)
                    }
                    Err(_) => StdioSlot::Null,
                },
            };
        }
        match exchange(c, &req, &fds) {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(reason)) => return Err(Error::start(reason)),
            Err(e) => {
                // The server is dead or broken: replace it once.
                if let Some(c) = guard.take() {
                    discard(c);
                }
                if attempt >= 2 {
                    return Err(Error::start(format!("the fork server failed: {e}")));
                }
            }
        }
    }
}

fn exchange(
    c: &Client,
    req: &SpawnRequest,
    fds: &[OwnedFd],
) -> io::Result<Result<(i32, OwnedFd), String>> {
    frame::send(c.sock.as_fd(), req, &[], fds, false)?;
    let deadline = Instant::now() + REPLY_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the fork server",
            ));
        }
        let ready = sys::poll_spin(&[c.sock.as_fd(), c.pidfd.as_fd()], Some(left), SPIN)?;
        if ready[0] {
            let mut f = frame::recv(c.sock.as_fd(), false)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the fork server closed its socket",
                )
            })?;
            return match f.envelope::<SpawnReply>()? {
                SpawnReply::Spawned { pid } => {
                    let pidfd = f.take_fds().pop().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "spawn reply without a pidfd")
                    })?;
                    Ok(Ok((pid, pidfd)))
                }
                SpawnReply::Failed { reason } => Ok(Err(reason)),
            };
        }
        if ready[1] {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the fork server died",
            ));
        }
    }
}

/// The fork server's pid, if one runs.
#[cfg(test)]
pub(crate) fn server_pid() -> Option<i32> {
    client().as_ref().map(|c| c.pid)
}

/// Stops the server: closing its socket makes it kill its remaining children
/// and exit; we then reap it.
pub(crate) fn shutdown() {
    if let Some(c) = client().take() {
        drop(c.sock);
        if !matches!(
            sys::poll(&[c.pidfd.as_fd()], Some(Duration::from_secs(5))).as_deref(),
            Ok([true])
        ) {
            let _ = proc::pidfd_send_signal(c.pidfd.as_fd(), libc::SIGKILL);
        }
        let _ = proc::waitid_pidfd(c.pidfd.as_fd(), false);
    }
}

/// In a child forked directly from this process: close our copies of the
/// parent's server descriptors without touching the server.
pub(crate) fn forget_after_fork() {
    drop(client().take());
}

// ---------------------------------------------------------------- server side

/// The server's main loop. Never returns.
pub(crate) fn serve(sock: OwnedFd) -> ! {
    let me = sys::getpid();
    proc::set_process_name("mp-forkserver");
    proc::ignore_sigpipe();
    // Computed and installed once here, inherited by every child.
    let _ = super::current::exe_identity();
    child::install_panic_hook();
    let sigchld = match proc::sigchld_fd() {
        Ok(fd) => fd,
        Err(e) => {
            sys::write_all_raw(
                2,
                format!("multiproc fork server: signalfd: {e}\n").as_bytes(),
            );
            sys::exit_now(1)
        }
    };
    let mut children: HashMap<i32, OwnedFd> = HashMap::new();
    while let Ok(ready) = sys::poll_spin(&[sock.as_fd(), sigchld.as_fd()], None, SPIN) {
        if ready[1] {
            proc::drain_signalfd(sigchld.as_fd());
            reap(&mut children);
        }
        if ready[0] {
            match frame::recv(sock.as_fd(), true) {
                Ok(Some(f)) => handle(me, f, &sock, &sigchld, &mut children),
                Ok(None) => break,
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(WireError::Io(_)) => break,
                Err(e) => {
                    let reason = format!("bad request: {e}");
                    let _ = frame::send(
                        sock.as_fd(),
                        &SpawnReply::Failed { reason },
                        &[],
                        &[],
                        false,
                    );
                }
            }
        }
    }
    // The parent is gone (or closed us): no child outlives it.
    for pid in children.keys() {
        let _ = proc::kill(*pid, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !children.is_empty() && Instant::now() < deadline {
        let _ = sys::poll(&[sigchld.as_fd()], Some(Duration::from_millis(50)));
        proc::drain_signalfd(sigchld.as_fd());
        reap(&mut children);
    }
    sys::exit_now(0)
}

fn reap(children: &mut HashMap<i32, OwnedFd>) {
    while let Some((pid, how)) = proc::reap_any() {
        if let Some(status) = children.remove(&pid) {
            // The status socket carries this one message: it never blocks.
            let _ = frame::send(status.as_fd(), &Report::Exited(how), &[], &[], true);
        }
    }
}

fn handle(
    me: i32,
    mut f: Frame,
    sock: &OwnedFd,
    sigchld: &OwnedFd,
    children: &mut HashMap<i32, OwnedFd>,
) {
    let reply = |r: SpawnReply, fds: &[OwnedFd]| {
        let _ = frame::send(sock.as_fd(), &r, &[], fds, false);
    };
    let req: SpawnRequest = match f.envelope() {
        Ok(r) => r,
        Err(e) => {
            return reply(
                SpawnReply::Failed {
                    reason: format!("bad request: {e}"),
                },
                &[],
            );
        }
    };
    let mut fds = f.take_fds().into_iter();
    let Some(ctl) = fds.next() else {
        return reply(
            SpawnReply::Failed {
                reason: "request without a control socket".into(),
            },
            &[],
        );
    };
    let Some(status) = fds.next() else {
        return reply(
            SpawnReply::Failed {
                reason: "request without a status socket".into(),
            },
            &[],
        );
    };
    let stdio: Vec<OwnedFd> = fds.collect();
    // SAFETY: the fork server is single-threaded (it never starts a
    // thread), so the child may run any code after the fork.
    match unsafe { proc::fork() } {
        Ok(proc::Forked::Child) => {
            // Close everything of the server's that the child must not hold:
            // the socket to the parent (so the server alone sees its death),
            // the signalfd, and the other children's control sockets.
            // SAFETY: these descriptors are owned by values the child will
            // never use again; closing the raw numbers leaves those values
            // pointing at closed slots, and they are forgotten, not dropped.
            unsafe {
                libc::close(sock.as_raw_fd());
                libc::close(sigchld.as_raw_fd());
            }
            for (_, fd) in children.drain() {
                drop(fd);
            }
            // The status socket is the server's, to report this child's end.
            drop(status);
            proc::reset_signals_for_child();
            proc::die_with_parent(libc::SIGKILL, me);
            prepare_child(&req, &stdio, ctl.as_fd());
            drop(stdio);
            if req.exec {
                let _ = sys::set_cloexec(ctl.as_raw_fd(), false);
                let role = format!("spawn:{}", ctl.as_raw_fd());
                let err = proc::exec_self(&req.comm, &[(ROLE_VAR.to_owned(), role)]);
                let reason = format!("exec of /proc/self/exe failed: {err}");
                let _ = frame::send(ctl.as_fd(), &Report::BootFailed { reason }, &[], &[], false);
                sys::exit_now(child::EXIT_BOOT);
            }
            child::run_job_and_exit(ctl)
        }
        Ok(proc::Forked::Parent(pid)) => match proc::pidfd_open(pid) {
            Ok(pidfd) => {
                drop(ctl);
                children.insert(pid, status);
                reply(SpawnReply::Spawned { pid }, &[pidfd]);
            }
            Err(e) => {
                let _ = proc::kill(pid, libc::SIGKILL);
                children.insert(pid, status);
                reply(
                    SpawnReply::Failed {
                        reason: format!("pidfd_open: {e}"),
                    },
                    &[],
                );
            }
        },
        Err(e) => reply(
            SpawnReply::Failed {
                reason: format!("fork: {e}"),
            },
            &[],
        ),
    }
}

/// In the new child: standard streams, environment, working directory, name.
fn prepare_child(req: &SpawnRequest, stdio: &[OwnedFd], ctl: BorrowedFd<'_>) {
    for (target, slot) in req.stdio.iter().enumerate() {
        let result = match slot {
            // Indices count the control and status sockets first.
            StdioSlot::Fd(i) => match stdio.get(usize::from(*i).wrapping_sub(2)) {
                Some(fd) => sys::dup2(fd.as_raw_fd(), target as RawFd),
                None => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "missing stdio descriptor",
                )),
            },
            StdioSlot::Null => {
                sys::open_dev_null().and_then(|n| sys::dup2(n.as_raw_fd(), target as RawFd))
            }
            StdioSlot::Keep => Ok(()),
        };
        if let Err(e) = result {
            let reason = format!("cannot set up standard stream {target}: {e}");
            let _ = frame::send(ctl, &Report::BootFailed { reason }, &[], &[], false);
            sys::exit_now(child::EXIT_BOOT);
        }
    }
    super::apply_env(&req.env);
    proc::set_process_name(&req.comm);
}

/// Takes over a process exec'd as the fork server (`forkserver:<fd>`).
pub(crate) fn run_as_server(fd: RawFd) -> ! {
    // SAFETY: the parent passed this descriptor number to us across exec,
    // open and not close-on-exec; nothing else in this fresh process owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = sys::set_cloexec(fd, true);
    serve(sock)
}
