//! The owner side of the keeper's protocol (see `keeper.rs`): starting a
//! keeper, opening a segment by name, unlinking it.

use super::keeper::{
    ANSWER, DENIED, FULL, HELLO, MAX_LINKS, OPENED, READY, ROLE, START, UNLINK, UNLINKED, address,
    error,
};
use crate::sys::{self, proc, socket};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Binds `name`, starts its keeper with a copy of `memfd`, and returns the
/// creator's owner link and the keeper's pid. A name already bound is
/// `AlreadyExists`.
pub(super) fn launch(name: &str, memfd: BorrowedFd<'_>) -> io::Result<(OwnedFd, u32)> {
    let listener = socket::listen_abstract(&address(name), 128).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            error(
                io::ErrorKind::AlreadyExists,
                format!("shared memory {name:?} already exists"),
            )
        } else {
            e
        }
    })?;
    let (link, theirs) = socket::seqpacket_pair()?;
    // Copies numbered 3 and up: the child's standard streams cannot land on them.
    let passed = [
        sys::dup_cloexec(listener.as_fd())?,
        sys::dup_cloexec(theirs.as_fd())?,
        sys::dup_cloexec(memfd)?,
    ];
    drop((listener, theirs));
    let raw: [RawFd; 3] = [0, 1, 2].map(|i| passed[i].as_raw_fd());
    let program = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "multiproc".to_owned());
    let mut cmd = Command::new("/proc/self/exe");
    cmd.env(
        crate::process::ROLE_VAR,
        format!("{ROLE}:{},{},{},{name}", raw[0], raw[1], raw[2]),
    )
    .arg0(format!("{program} [multiproc shm keeper {name}]"))
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    // SAFETY: the closure runs between fork and exec in a possibly
    // multi-threaded process: it makes only fcntl calls (async-signal-safe)
    // on three numbers captured by value, and allocates nothing (an error is
    // an OS error code).
    unsafe {
        cmd.pre_exec(move || {
            for fd in raw {
                sys::set_cloexec(fd, false)?;
            }
            Ok(())
        });
    }
    let deadline = Instant::now() + START;
    let mut child = cmd.spawn()?;
    drop(passed);
    // The exec'd copy forks the keeper and exits at once.
    let status = wait_bounded(&mut child, deadline)?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the keeper of {name:?} failed to start ({status})"
        )));
    }
    let mut buf = [0u8; 16];
    let got = recv_within(link.as_fd(), &mut buf, 0, deadline)?;
    match &buf[..got.len] {
        [READY, pid @ ..] => match <[u8; 4]>::try_from(pid) {
            Ok(pid) => Ok((link, u32::from_le_bytes(pid))),
            Err(_) => Err(error(
                io::ErrorKind::InvalidData,
                "bad ready message".into(),
            )),
        },
        [] => Err(io::Error::other(format!(
            "the keeper of {name:?} exited before it was ready"
        ))),
        _ => Err(error(
            io::ErrorKind::InvalidData,
            "bad ready message".into(),
        )),
    }
}

/// Reaps our child `child`, killing it if it runs past `deadline`.
fn wait_bounded(child: &mut Child, deadline: Instant) -> io::Result<ExitStatus> {
    // Our own child, not yet reaped: its pid cannot have been reused.
    let Ok(pidfd) = proc::pidfd_open(child.id() as i32) else {
        return child.wait();
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if !sys::poll(&[pidfd.as_fd()], Some(left))?[0] {
        let _ = child.kill();
        let _ = child.wait();
        return Err(error(
            io::ErrorKind::TimedOut,
            "the shared-memory keeper did not start in time".into(),
        ));
    }
    child.wait()
}

/// What [`open`] got from the keeper.
#[derive(Debug)]
pub(super) struct Opened {
    /// The opener's owner link.
    pub(super) link: OwnedFd,
    pub(super) memfd: OwnedFd,
    pub(super) len: u64,
    pub(super) keeper: u32,
}

/// Asks the keeper of `name` for its segment. Nobody listening is
/// `NotFound`; no answer within [`ANSWER`] is `TimedOut`.
pub(super) fn open(name: &str) -> io::Result<Opened> {
    let not_found = || {
        error(
            io::ErrorKind::NotFound,
            format!("no shared memory named {name:?}"),
        )
    };
    let timed_out = || {
        error(
            io::ErrorKind::TimedOut,
            format!("the keeper of shared memory {name:?} did not answer within {ANSWER:?}"),
        )
    };
    let deadline = Instant::now() + ANSWER;
    let addr = address(name);
    let sock = loop {
        match socket::connect_abstract(&addr) {
            Ok(sock) => break sock,
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(not_found()),
            // The keeper's backlog is full: it is busy, not gone.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(timed_out());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    };
    // The name is only an address: check who listens on it.
    let (_, uid) = socket::peer_credentials(sock.as_fd())?;
    if uid != sys::getuid() {
        return Err(error(
            io::ErrorKind::PermissionDenied,
            format!("shared memory {name:?} is held by another user (uid {uid})"),
        ));
    }
    let gone = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        )
    };
    match socket::send_msg(sock.as_fd(), &[HELLO], &[], true) {
        Err(e) if gone(&e) => return Err(not_found()),
        other => other?,
    }
    let mut buf = [0u8; 32];
    let got = match recv_within(sock.as_fd(), &mut buf, 1, deadline) {
        Err(e) if gone(&e) => return Err(not_found()),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(timed_out()),
        other => other?,
    };
    let mut fds = got.fds.into_iter();
    match (&buf[..got.len], fds.next(), fds.next(), got.truncated) {
        ([OPENED, rest @ ..], Some(memfd), None, false) if rest.len() == 12 => {
            let mut len = [0u8; 8];
            let mut pid = [0u8; 4];
            len.copy_from_slice(&rest[..8]);
            pid.copy_from_slice(&rest[8..]);
            Ok(Opened {
                link: sock,
                memfd,
                len: u64::from_le_bytes(len),
                keeper: u32::from_le_bytes(pid),
            })
        }
        // Closed unanswered: the last owner let go (or `unlink` came) meanwhile.
        ([], None, _, false) => Err(not_found()),
        ([FULL], None, _, false) => Err(io::Error::other(format!(
            "shared memory {name:?} has too many owners (at most {MAX_LINKS})"
        ))),
        ([DENIED], None, _, false) => Err(error(
            io::ErrorKind::PermissionDenied,
            format!("the keeper of shared memory {name:?} refused us"),
        )),
        _ => Err(error(
            io::ErrorKind::InvalidData,
            format!("unexpected answer from the keeper of shared memory {name:?}"),
        )),
    }
}

/// Asks the keeper at the other end of `link` to give up its name, and
/// waits until it has. A keeper that is gone took its name with it.
pub(super) fn unlink(link: BorrowedFd<'_>) -> io::Result<()> {
    match socket::send_msg(link, &[&[UNLINK]], &[], true) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(());
        }
        other => other?,
    }
    let deadline = Instant::now() + ANSWER;
    loop {
        let mut buf = [0u8; 16];
        match recv_within(link, &mut buf, 0, deadline) {
            // End of file: the keeper is gone.
            Ok(got) if got.len == 0 && got.fds.is_empty() => return Ok(()),
            // Any `u` will do (another holder of this link may have asked
            // too): the keeper answers only once its listener is closed.
            Ok(got) if buf[..got.len] == [UNLINKED] => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Receives one message from `sock`, waiting until `deadline` at most.
fn recv_within(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    deadline: Instant,
) -> io::Result<socket::Received> {
    loop {
        match socket::recv_msg(sock, buf, max_fds, true) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(error(
                io::ErrorKind::TimedOut,
                "no answer from the shared-memory keeper".into(),
            ));
        }
        sys::poll(&[sock], Some(left))?;
    }
}
