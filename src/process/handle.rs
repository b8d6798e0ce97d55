//! The untyped core of a child handle: its descriptors and the state machine
//! that turns the child's reports and its end into an outcome.
//!
//! A wait sleeps on **one** event, the child's end: for a child of the fork
//! server, the status message the server posts on a per-child status socket
//! after reaping it; for a child we forked ourselves, its pidfd. The child's
//! own reports (`Started`, then its result) wait in the control socket and
//! are read once the end is known, so they cost the parent no wake-up. Every
//! wait for a child therefore watches that it is alive: a dead child ends the
//! wait at once, and a dead fork server hangs up the status socket.
//!
//! A child never blocks on its reports: there are at most two, small (a
//! large result travels as a memfd), in an otherwise empty socket buffer.

use super::ExitStatus;
use super::protocol::Report;
use crate::error::{Error, Kind};
use crate::sys::{self, proc};
use crate::wire::WireError;
use crate::wire::frame::{self, Frame};
use serde::de::DeserializeOwned;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// How long a join polls awake before sleeping: a short task's end is then
/// caught without paying a wake-up from sleep.
const END_SPIN: std::time::Duration = std::time::Duration::from_micros(200);

#[derive(Debug, Default)]
pub(crate) struct State {
    started: bool,
    outcome: Option<(Report, Option<Frame>)>,
    status: Option<ExitStatus>,
    ctl_eof: bool,
    lost: Option<String>,
    taken: bool,
}

impl State {
    /// Whether the child's end is known.
    pub(crate) fn is_ended(&self) -> bool {
        self.status.is_some() || self.lost.is_some()
    }
}

/// One child, shared by its [`Process`](super::Process) handle and the registry.
#[derive(Debug)]
pub(crate) struct ChildInner {
    pub(crate) pid: i32,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pidfd: OwnedFd,
    ctl: OwnedFd,
    /// For a child of the fork server: where the server posts its exit
    /// status. `None` for a child we forked (and reap) ourselves.
    status_sock: Option<OwnedFd>,
    state: Mutex<State>,
}

impl ChildInner {
    pub(crate) fn new(
        pid: i32,
        name: String,
        daemon: bool,
        pidfd: OwnedFd,
        ctl: OwnedFd,
        status_sock: Option<OwnedFd>,
    ) -> Self {
        ChildInner {
            pid,
            name,
            daemon,
            pidfd,
            ctl,
            status_sock,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pidfd: readable once the child has ended.
    pub(crate) fn pidfd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Reads every waiting control message without blocking.
    fn drain(&self, st: &mut State) {
        while !st.ctl_eof {
            match frame::recv(self.ctl.as_fd(), true) {
                Ok(Some(f)) => match f.envelope::<Report>() {
                    Ok(Report::Started) => st.started = true,
                    // Only the fork server's status socket (or the pidfd) says how a
                    // child ended: a child cannot claim an exit status for itself.
                    Ok(Report::Exited(_)) => {
                        let reason = "the child sent an exit status of its own".to_owned();
                        st.outcome = Some((Report::Undecodable { reason }, None));
                    }
                    Ok(report) => st.outcome = Some((report, Some(f))),
                    Err(e) => {
                        let reason = format!("garbage on the control channel: {e}");
                        st.outcome = Some((Report::Undecodable { reason }, None));
                    }
                },
                Ok(None) => st.ctl_eof = true,
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                // A child that died with our job unread leaves a one-time
                // reset error on our end; the queued reports follow it.
                Err(WireError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                Err(WireError::Io(e)) => {
                    st.lost
                        .get_or_insert_with(|| format!("control channel failed: {e}"));
                    st.ctl_eof = true;
                }
                Err(e) => {
                    // A malformed message: remember it as the outcome, keep reading.
                    let reason = format!("garbage on the control channel: {e}");
                    if st.outcome.is_none() {
                        st.lost = None;
                        st.outcome = Some((Report::Undecodable { reason }, None));
                    }
                }
            }
        }
    }

    /// One non-blocking step: learn whether the child has ended and, once
    /// it has, read its reports.
    fn step(&self, st: &mut State) -> Result<(), Error> {
        if st.is_ended() {
            return Ok(());
        }
        match &self.status_sock {
            Some(sock) => loop {
                match frame::recv(sock.as_fd(), true) {
                    Ok(Some(f)) => {
                        if let Ok(Report::Exited(raw)) = f.envelope::<Report>() {
                            st.status = Some(raw.into());
                            break;
                        }
                    }
                    Ok(None) => {
                        st.lost = Some(
                            "the fork server ended without reporting the child's exit status"
                                .into(),
                        );
                        break;
                    }
                    Err(WireError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => {
                        st.lost = Some(format!("the fork server's status channel failed: {e}"));
                        break;
                    }
                }
            },
            None => match proc::waitid_pidfd(self.pidfd.as_fd(), true)
                .map_err(|e| Error::io("waitid", e))?
            {
                Some(raw) => st.status = Some(raw.into()),
                None => return Ok(()),
            },
        }
        // Ended: every report the child made is already in the socket.
        self.drain(st);
        Ok(())
    }

    /// The descriptor that becomes readable when the child's end is known.
    fn end_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.status_sock {
            Some(sock) => sock.as_fd(),
            None => self.pidfd.as_fd(),
        }
    }

    /// Waits until the child's end is known or `deadline` passes. The state
    /// lock is held only for the non-blocking steps, never across `poll`, so
    /// other threads (a sweep, `is_alive`) are never stuck behind a waiter.
    pub(crate) fn wait_end(&self, deadline: Option<Instant>) -> Result<(), Error> {
        loop {
            {
                let mut st = self.lock();
                self.step(&mut st)?;
                if st.is_ended() {
                    return Ok(());
                }
            }
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::new(Kind::Timeout));
                    }
                    Some(left)
                }
            };
            sys::poll_spin(&[self.end_fd()], timeout, END_SPIN)
                .map_err(|e| Error::io("poll", e))?;
        }
    }

    /// Non-blocking look at the end: `Some(status)` once known.
    pub(crate) fn try_status(&self) -> Option<ExitStatus> {
        let mut st = self.lock();
        let _ = self.step(&mut st);
        st.status
    }

    /// Whether the end is known (status, or lost with the fork server).
    pub(crate) fn is_ended(&self) -> bool {
        let mut st = self.lock();
        let _ = self.step(&mut st);
        st.is_ended()
    }

    /// Whether the process is still running.
    pub(crate) fn is_alive(&self) -> bool {
        if self.try_status().is_some() {
            return false;
        }
        // A child of the fork server may be dead before the server's report
        // arrives: the pidfd knows first.
        !matches!(
            sys::poll(&[self.pidfd.as_fd()], Some(std::time::Duration::ZERO)).as_deref(),
            Ok([true])
        )
    }

    /// Sends `signal` (race-free: through the pidfd).
    pub(crate) fn signal(&self, signal: i32) -> Result<(), Error> {
        if self.lock().status.is_some() {
            return Ok(());
        }
        proc::pidfd_send_signal(self.pidfd.as_fd(), signal)
            .map_err(|e| Error::io("pidfd_send_signal", e))
    }

    /// Waits (until `deadline`) for the end, then turns it into the result.
    pub(crate) fn join<R: DeserializeOwned>(&self, deadline: Option<Instant>) -> Result<R, Error> {
        if self.lock().taken {
            return Err(Error::new(Kind::AlreadyJoined));
        }
        self.wait_end(deadline)?;
        let mut st = self.lock();
        if st.taken {
            return Err(Error::new(Kind::AlreadyJoined));
        }
        st.taken = true;
        let pid = self.pid as u32;
        let status = st.status;
        let died = |status: Option<ExitStatus>, started: bool| match status {
            Some(status) if started => Error::new(Kind::Died { pid, status }),
            status => Error::new(Kind::StartFailed {
                reason: "the child died during start-up".into(),
                pid: Some(pid),
                status,
            }),
        };
        match st.outcome.take() {
            Some((Report::Returned, Some(mut f))) => f.decode_payload::<R>().map_err(|e| match e {
                WireError::Io(e) => Error::io("reading the result", e),
                other => Error::new(Kind::Decode(format!("the result of child {pid}: {other}"))),
            }),
            Some((
                Report::Panicked {
                    message,
                    location,
                    backtrace,
                },
                _,
            )) => Err(Error::new(Kind::Panicked {
                pid,
                message,
                location,
                backtrace,
            })),
            Some((Report::Refused { reason }, _)) => {
                Err(Error::new(Kind::FunctionMismatch(reason)))
            }
            Some((Report::Undecodable { reason }, _)) => Err(Error::new(Kind::Decode(reason))),
            Some((Report::BootFailed { reason }, _)) => Err(Error::new(Kind::StartFailed {
                reason,
                pid: Some(pid),
                status,
            })),
            Some((Report::Returned | Report::Started | Report::Exited(_), _)) | None => {
                match st.lost.take() {
                    Some(why) => Err(Error::new(Kind::ForkServerLost(why))),
                    None => Err(died(status, st.started)),
                }
            }
        }
    }
}
