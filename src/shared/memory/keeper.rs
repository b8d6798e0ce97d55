//! The keeper: the small process that holds the name of a named segment.
//!
//! A name is the abstract-namespace Unix socket address
//! `\0multiproc.shm.<uid>.<name>` on which the keeper listens. It holds the
//! segment's memfd and one *owner link* (a `SOCK_SEQPACKET` connection) per
//! owner: the creator's is a socket pair made at creation, an opener's is
//! the connection it opened the segment with. Every copy of a handle (a
//! clone, a copy sent to another process) shares its link, so a link hangs
//! up only when every copy is gone, whether dropped or killed with its
//! process. When the last link hangs up the keeper exits: its listener
//! closes and the name vanishes with it (an abstract name is no file and
//! cannot outlive its socket), and so does its descriptor of the memfd.
//!
//! Messages (one `send` is one message):
//! - keeper → creator, once, on the creator's link: `R` + the keeper's pid
//!   (u32, little-endian);
//! - opener → keeper, first thing on a new connection: [`HELLO`];
//! - keeper → opener: `O` + the segment's length (u64) + the keeper's pid
//!   (u32), the memfd attached; or `F` (too many owners) or `D` (another
//!   user), then the keeper closes the connection;
//! - owner → keeper, on its link: `U` (unlink); the keeper closes its
//!   listener, then answers `u`.
//!
//! The owner side of these exchanges is in `owner.rs`.
//!
//! The keeper trusts nobody: a connection from another user is refused
//! (`SO_PEERCRED`), one that does not say [`HELLO`] within [`HANDSHAKE`] is
//! closed, links beyond [`MAX_LINKS`] are refused, and anything else a link
//! sends is read and ignored.

use crate::sys::{self, proc, socket};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The keeper's role in `MULTIPROC_ROLE`: `shmkeeper:<listener>,<link>,<memfd>,<name>`.
pub(crate) const ROLE: &str = "shmkeeper";
/// What an opener says first.
pub(super) const HELLO: &[u8] = b"multiproc.shm.open.1";
pub(super) const READY: u8 = b'R';
pub(super) const OPENED: u8 = b'O';
pub(super) const FULL: u8 = b'F';
pub(super) const DENIED: u8 = b'D';
pub(super) const UNLINK: u8 = b'U';
pub(super) const UNLINKED: u8 = b'u';
/// Most owner links (and connections not yet past [`HELLO`]) per keeper.
pub(super) const MAX_LINKS: usize = 4096;
/// How long a new connection has to say [`HELLO`].
const HANDSHAKE: Duration = Duration::from_secs(2);
/// How long an opener or an unlinker waits for the keeper's answer.
pub(super) const ANSWER: Duration = Duration::from_secs(5);
/// How long the creator waits for the keeper to start.
pub(super) const START: Duration = Duration::from_secs(10);
/// Pause of the listener after `accept` failed (out of descriptors).
const BACKOFF: Duration = Duration::from_millis(100);
/// The keeper's exit code when it cannot start (`EX_OSERR`).
const EXIT_FAILED: i32 = 71;

/// The abstract socket address (without its leading NUL) of `name`.
pub(super) fn address(name: &str) -> Vec<u8> {
    format!("multiproc.shm.{}.{name}", sys::getuid()).into_bytes()
}

pub(super) fn error(kind: io::ErrorKind, what: String) -> io::Error {
    io::Error::new(kind, what)
}

/// Runs the keeper (`args` as in [`ROLE`]); never returns.
pub(crate) fn run_as_keeper(args: &str) -> ! {
    let mut parts = args.splitn(4, ',');
    let mut fds = [0 as RawFd; 3];
    for slot in &mut fds {
        *slot = match parts.next().and_then(|s| s.parse().ok()) {
            // Open (fstat works) and not a standard stream.
            Some(fd) if fd > 2 && sys::fd_identity(fd).is_some() => fd,
            _ => die(args, "bad arguments"),
        };
    }
    if fds[0] == fds[1] || fds[1] == fds[2] || fds[0] == fds[2] {
        die(args, "bad arguments");
    }
    let name = parts.next().unwrap_or("?");
    for fd in fds {
        let _ = sys::set_cloexec(fd, true);
    }
    // SAFETY: the creator passed these three distinct open descriptors
    // (checked above) across exec for us alone; nothing else in this fresh
    // process owns them.
    let [listener, link, memfd] = fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    // Fork once more so that the keeper is not the creator's child: the
    // creator reaps this first copy at once.
    if sys::thread_count().ok() != Some(1) {
        die(name, "not single-threaded");
    }
    // SAFETY: the process is single-threaded (checked just above), so the
    // child may call anything.
    match unsafe { proc::fork() } {
        Ok(proc::Forked::Parent(_)) => sys::exit_now(0),
        Ok(proc::Forked::Child) => {}
        Err(e) => die(name, &format!("fork: {e}")),
    }
    // Out of the creator's session (a terminal's ^C is not for us), out of
    // its directory. stdin and stdout are /dev/null already (see `launch`);
    // stderr stays, for messages like `die`'s.
    let _ = proc::detach();
    // SAFETY: a fresh process: nothing but our three owns a descriptor yet;
    // the others are leaks of the creator (a build tool's jobserver pipe,
    // say) that a long-lived process must not keep open.
    unsafe { sys::close_fds_except(&fds) };
    let _ = proc::raise_fd_limit(MAX_LINKS as u64 + 64);
    proc::set_process_name("shm-keeper");
    let len = match memfd
        .try_clone()
        .and_then(|fd| std::fs::File::from(fd).metadata())
    {
        Ok(m) => m.len(),
        Err(e) => die(name, &format!("fstat of the memfd: {e}")),
    };
    let mut answer = [0u8; 13];
    answer[0] = OPENED;
    answer[1..9].copy_from_slice(&len.to_le_bytes());
    answer[9..].copy_from_slice(&(sys::getpid() as u32).to_le_bytes());
    let keeper = Keeper {
        listener: Some(listener),
        paused_until: None,
        memfd,
        answer,
        uid: sys::getuid(),
        links: vec![link],
        pending: Vec::new(),
    };
    keeper.serve();
    sys::exit_now(0)
}

fn die(name: &str, why: &str) -> ! {
    let msg = format!("multiproc: shared-memory keeper of {name:?}: {why}\n");
    sys::write_all_raw(2, msg.as_bytes());
    sys::exit_now(EXIT_FAILED)
}

struct Keeper {
    /// `None` once unlinked.
    listener: Option<OwnedFd>,
    /// The listener is not polled until then (`accept` failed).
    paused_until: Option<Instant>,
    memfd: OwnedFd,
    /// What an opener gets, with `memfd`.
    answer: [u8; 13],
    uid: u32,
    links: Vec<OwnedFd>,
    /// Connections that have not said [`HELLO`] yet, with their deadlines.
    pending: Vec<(OwnedFd, Instant)>,
}

/// Hung up or broken.
const HANGUP: libc::c_short = libc::POLLHUP | libc::POLLERR | libc::POLLNVAL;

impl Keeper {
    /// Serves until the last owner link hangs up.
    fn serve(mut self) {
        let mut ready = [READY, 0, 0, 0, 0];
        ready[1..].copy_from_slice(&self.answer[9..]);
        let _ = socket::send_msg(self.links[0].as_fd(), &[&ready], &[], true);
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        while !self.links.is_empty() {
            let now = Instant::now();
            self.pending.retain(|(_, deadline)| *deadline > now);
            if self.paused_until.is_some_and(|t| t <= now) {
                self.paused_until = None;
            }
            let listening = self
                .listener
                .as_ref()
                .filter(|_| self.paused_until.is_none());
            let entry = |fd: BorrowedFd<'_>| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            pfds.clear();
            pfds.extend(listening.map(|l| entry(l.as_fd())));
            pfds.extend(self.links.iter().map(|l| entry(l.as_fd())));
            pfds.extend(self.pending.iter().map(|(c, _)| entry(c.as_fd())));
            let wake = self
                .pending
                .iter()
                .map(|(_, d)| *d)
                .chain(self.paused_until)
                .min();
            let timeout = wake.map(|t| t.saturating_duration_since(now));
            if sys::poll_events(&mut pfds, timeout).is_err() {
                // Out of memory, say: never spin, never drop the name
                // while it has owners.
                std::thread::sleep(BACKOFF);
                continue;
            }
            let listened = listening.is_some();
            let revents: Vec<libc::c_short> = pfds.iter().map(|p| p.revents).collect();
            let (on_listener, rest) = revents.split_at(usize::from(listened));
            let (on_links, on_pending) = rest.split_at(self.links.len());

            let links = std::mem::take(&mut self.links);
            for (link, &ev) in links.into_iter().zip(on_links) {
                if self.on_link(&link, ev) {
                    self.links.push(link);
                }
            }
            if self.links.is_empty() {
                // The last owner is gone: so is the segment, even for a
                // connection that said HELLO in the same round.
                return;
            }
            // After the links: an `unlink` among them has emptied `pending`.
            let pending = std::mem::take(&mut self.pending);
            for ((conn, deadline), &ev) in pending.into_iter().zip(on_pending) {
                match self.on_pending(&conn, ev) {
                    Some(true) => self.links.push(conn),
                    Some(false) => {}
                    None => self.pending.push((conn, deadline)),
                }
            }
            if on_listener.first().is_some_and(|ev| *ev != 0) {
                self.accept_all();
            }
        }
    }

    /// Handles events `ev` on an owner link; whether to keep it.
    fn on_link(&mut self, link: &OwnedFd, ev: libc::c_short) -> bool {
        if ev & libc::POLLIN != 0 {
            // A few messages per round: a chatty link cannot starve the others.
            for _ in 0..16 {
                let mut buf = [0u8; 16];
                match socket::recv_msg(link.as_fd(), &mut buf, 0, true) {
                    Ok(got) if got.len == 0 => break,
                    Ok(got) if !got.truncated && buf[..got.len] == [UNLINK] => {
                        self.listener = None;
                        self.pending.clear();
                        let _ = socket::send_msg(link.as_fd(), &[&[UNLINKED]], &[], true);
                    }
                    Ok(_) => {} // not ours to understand: ignored
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
        }
        ev & HANGUP == 0
    }

    /// Handles events `ev` on a connection that has not said [`HELLO`]:
    /// `Some(true)`: it is now an owner link; `Some(false)`: drop it;
    /// `None`: keep waiting.
    fn on_pending(&self, conn: &OwnedFd, ev: libc::c_short) -> Option<bool> {
        if ev == 0 {
            return None;
        }
        let mut buf = [0u8; 64];
        match socket::recv_msg(conn.as_fd(), &mut buf, 0, true) {
            Ok(got) if !got.truncated && got.fds.is_empty() && &buf[..got.len] == HELLO => {
                let sent = socket::send_msg(
                    conn.as_fd(),
                    &[&self.answer],
                    &[self.memfd.as_raw_fd()],
                    true,
                );
                Some(sent.is_ok())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            // Garbage, end of file or an error.
            _ => Some(false),
        }
    }

    /// Accepts the connections waiting on the listener.
    fn accept_all(&mut self) {
        let Some(listener) = &self.listener else {
            return;
        };
        for _ in 0..64 {
            let conn = match socket::accept(listener.as_fd()) {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => {
                    // Out of descriptors, say: the others wait in the backlog.
                    self.paused_until = Some(Instant::now() + BACKOFF);
                    return;
                }
            };
            let refusal = match socket::peer_credentials(conn.as_fd()) {
                Ok((_, uid)) if uid != self.uid => Some(DENIED),
                Err(_) => Some(DENIED),
                Ok(_) if self.links.len() + self.pending.len() >= MAX_LINKS => Some(FULL),
                Ok(_) => None,
            };
            match refusal {
                Some(why) => {
                    let _ = socket::send_msg(conn.as_fd(), &[&[why]], &[], true);
                    // Closing with unread messages would make the peer's
                    // next read fail (ECONNRESET) before it sees `why`.
                    for _ in 0..4 {
                        let mut buf = [0u8; 64];
                        if socket::recv_msg(conn.as_fd(), &mut buf, 0, true).is_err() {
                            break;
                        }
                    }
                }
                None => self.pending.push((conn, Instant::now() + HANDSHAKE)),
            }
        }
    }
}
