//! Every error type of multiproc.
//!
//! Process failures are one opaque [`Error`] with predicates (as rayon's
//! `ThreadPoolBuildError`): ask it [`is_panic`](Error::is_panic),
//! [`signal`](Error::signal), [`exit_code`](Error::exit_code),
//! [`is_timeout`](Error::is_timeout) and so on, rather than matching on a
//! variant list that would grow with every release.

mod channel;
mod sync;

pub use channel::{
    Fault, PutTimeoutError, RecvError, RecvTimeoutError, SendError, TryPutError, TryRecvError,
};
pub use sync::{BarrierError, LockResult, OwnerDied, TryLockError, TryLockResult};

use crate::process::ExitStatus;
use std::fmt;
use std::io;

/// What went wrong with a process, a start or a wait.
///
/// # Examples
/// ```
/// use multiproc::Process;
///
/// fn fails(x: u32) -> u32 {
///     if x > 1 { panic!("x is too large: {x}") }
///     x
/// }
///
/// # multiproc::init();
/// let err = Process::spawn(fails, 7).unwrap().join().unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.panic_message(), Some("x is too large: 7"));
/// assert!(err.panic_location().unwrap().contains(".rs:"));
/// ```
pub struct Error {
    kind: Kind,
    /// The index of the pool task this error is about.
    task: Option<usize>,
}

#[derive(Debug)]
pub(crate) enum Kind {
    NotInitialized,
    StartFailed {
        reason: String,
        pid: Option<u32>,
        status: Option<ExitStatus>,
    },
    Panicked {
        pid: u32,
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    Died {
        pid: u32,
        status: ExitStatus,
    },
    Timeout,
    FunctionMismatch(String),
    Decode(String),
    ForkServerLost(String),
    AlreadyJoined,
    NotSingleThreaded(usize),
    Misuse(String),
    Cancelled,
    /// A pool was terminated (or dropped) before the task finished.
    Terminated,
    /// Several pool tasks failed (each error carries its task index).
    Failures(Vec<Error>),
    Io {
        context: &'static str,
        source: io::Error,
    },
    /// The peer of a network connection went away (why, for the message).
    Disconnected(String),
    /// A connection's peer did not pass the authkey handshake.
    AuthenticationFailed(String),
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Error {
        Error { kind, task: None }
    }

    /// The same error, about pool task `index`.
    pub(crate) fn in_task(mut self, index: usize) -> Error {
        self.task = Some(index);
        self
    }

    pub(crate) fn cancelled() -> Error {
        Error::new(Kind::Cancelled)
    }

    pub(crate) fn of_failures(mut errors: Vec<Error>) -> Error {
        errors.sort_by_key(|e| e.task);
        Error::new(Kind::Failures(errors))
    }

    /// The index of the pool task this error is about (its position in
    /// the input of `map`, `imap`...), when it is about one.
    pub fn task_index(&self) -> Option<usize> {
        self.task
    }

    /// The task was cancelled before it produced a result.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.kind, Kind::Cancelled)
    }

    /// The pool was terminated ([`Pool::terminate`](crate::Pool::terminate),
    /// or dropped) before the task finished: it may have run in part, or
    /// not at all.
    ///
    /// # Examples
    /// ```
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    /// let pool = multiproc::Pool::new(1).unwrap();
    /// let mut slow = pool.submit(nap, 10_000).unwrap();
    /// pool.terminate();
    /// assert!(slow.get().unwrap_err().is_terminated());
    /// ```
    pub fn is_terminated(&self) -> bool {
        matches!(self.kind, Kind::Terminated)
    }

    /// The failed tasks of a [`Pool::map`](crate::Pool::map) (or
    /// `starmap`), in task order, each with its
    /// [`task_index`](Error::task_index); empty for other errors.
    pub fn failures(&self) -> &[Error] {
        match &self.kind {
            Kind::Failures(v) => v,
            _ => &[],
        }
    }

    pub(crate) fn io(context: &'static str, source: io::Error) -> Error {
        Error::new(Kind::Io { context, source })
    }

    pub(crate) fn misuse(why: impl Into<String>) -> Error {
        Error::new(Kind::Misuse(why.into()))
    }

    pub(crate) fn timeout() -> Error {
        Error::new(Kind::Timeout)
    }

    pub(crate) fn start(reason: impl Into<String>) -> Error {
        Error::new(Kind::StartFailed {
            reason: reason.into(),
            pid: None,
            status: None,
        })
    }

    /// No child could be started because this program never handed control
    /// to multiproc: call [`crate::init`] as the first line of `main`.
    pub fn is_not_initialized(&self) -> bool {
        matches!(self.kind, Kind::NotInitialized)
    }

    /// The child never got to run its function: the start method failed, or
    /// the child died (or was killed) during start-up.
    pub fn is_start_failure(&self) -> bool {
        matches!(
            self.kind,
            Kind::StartFailed { .. } | Kind::NotInitialized | Kind::FunctionMismatch(_)
        )
    }

    /// The child's function panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, Kind::Panicked { .. })
    }

    /// The panic message, when the child panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panicked { message, .. } => Some(message),
            _ => None,
        }
    }

    /// `file:line:column` of the panic in the child.
    pub fn panic_location(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panicked { location, .. } => location.as_deref(),
            _ => None,
        }
    }

    /// The child's backtrace at the panic, captured when `RUST_BACKTRACE`
    /// (or `RUST_LIB_BACKTRACE`) was set in the child.
    pub fn panic_backtrace(&self) -> Option<&str> {
        match &self.kind {
            Kind::Panicked { backtrace, .. } => backtrace.as_deref(),
            _ => None,
        }
    }

    /// How the child ended, when it ended without delivering a result.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match &self.kind {
            Kind::Died { status, .. } => Some(*status),
            Kind::StartFailed { status, .. } => *status,
            _ => None,
        }
    }

    /// The signal that ended the child (`libc::SIGKILL`, `SIGSEGV`,
    /// `SIGABRT`...), when one did.
    pub fn signal(&self) -> Option<i32> {
        self.exit_status().and_then(|s| s.signal())
    }

    /// The code the child exited with, when it called `exit` before its
    /// function returned.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_status().and_then(|s| s.code())
    }

    /// A deadline passed (`join_timeout` and friends). The process is
    /// untouched: it may still finish.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout)
    }

    /// The child refused the function it was asked to run: a different
    /// executable, or a different type signature than the parent's.
    pub fn is_function_mismatch(&self) -> bool {
        matches!(self.kind, Kind::FunctionMismatch(_))
    }

    /// Bytes from the other process could not be decoded (or a value could
    /// not be encoded).
    pub fn is_decode(&self) -> bool {
        matches!(self.kind, Kind::Decode(_))
    }

    /// The fork server died, so the fate of its children is unknown (they
    /// were killed with it).
    pub fn is_fork_server_lost(&self) -> bool {
        matches!(self.kind, Kind::ForkServerLost(_))
    }

    /// The result was already taken by an earlier `join`.
    pub fn is_already_joined(&self) -> bool {
        matches!(self.kind, Kind::AlreadyJoined)
    }

    /// [`StartMethod::Fork`](crate::StartMethod::Fork) was refused because
    /// the caller has other threads.
    pub fn is_not_single_threaded(&self) -> bool {
        matches!(self.kind, Kind::NotSingleThreaded(_))
    }

    /// An operation was called where its contract forbids it, e.g.
    /// [`JoinableQueue::task_done`](crate::JoinableQueue::task_done) once
    /// more than there were items (Python's `ValueError`).
    pub fn is_misuse(&self) -> bool {
        matches!(self.kind, Kind::Misuse(_))
    }

    /// The other end of a [`connection::Channel`](crate::connection::Channel)
    /// closed the connection (or it is unusable after an earlier error that
    /// put the stream out of step).
    pub fn is_disconnected(&self) -> bool {
        matches!(self.kind, Kind::Disconnected(_))
    }

    /// A [`connection`](crate::connection) peer did not pass the authkey
    /// handshake: a different authkey, or a peer that stayed silent, closed
    /// the connection or did not speak the protocol before the handshake's
    /// deadline. From [`Listener::accept`](crate::connection::Listener::accept)
    /// it concerns that peer only: the listener keeps serving.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(self.kind, Kind::AuthenticationFailed(_))
    }

    /// An operating-system call failed.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.kind {
            Kind::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The pid of the child this error is about, when known.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Panicked { pid, .. } | Kind::Died { pid, .. } => Some(*pid),
            Kind::StartFailed { pid, .. } => *pid,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.task {
            write!(f, "task {i}: ")?;
        }
        match &self.kind {
            Kind::NotInitialized => f.write_str(
                "multiproc is not initialized: call `multiproc::init()` as the first line of `main` \
                 (tests and doctests need nothing)",
            ),
            Kind::StartFailed { reason, pid, status } => {
                f.write_str("child process failed to start")?;
                if let Some(pid) = pid {
                    write!(f, " (pid {pid})")?;
                }
                write!(f, ": {reason}")?;
                if let Some(s) = status {
                    write!(f, " ({s})")?;
                }
                Ok(())
            }
            Kind::Panicked { pid, message, location, .. } => {
                write!(f, "child process {pid} panicked")?;
                if let Some(loc) = location {
                    write!(f, " at {loc}")?;
                }
                write!(f, ": {message}")
            }
            Kind::Died { pid, status } => write!(f, "child process {pid} {status} before returning a result"),
            Kind::Timeout => f.write_str("timed out"),
            Kind::FunctionMismatch(why) => write!(f, "child refused the function: {why}"),
            Kind::Decode(why) => write!(f, "cannot decode data from another process: {why}"),
            Kind::ForkServerLost(why) => write!(f, "fork server lost: {why}"),
            Kind::AlreadyJoined => f.write_str("the result was already taken by an earlier join"),
            Kind::NotSingleThreaded(n) => write!(
                f,
                "the fork start method needs a single-threaded caller, this process has {n} threads \
                 (use StartMethod::ForkServer or Spawn)"
            ),
            Kind::Misuse(why) => f.write_str(why),
            Kind::Cancelled => f.write_str("cancelled"),
            Kind::Terminated => f.write_str("the pool was terminated before the task finished"),
            Kind::Failures(v) => {
                write!(f, "{} task(s) failed", v.len())?;
                for (n, e) in v.iter().enumerate() {
                    f.write_str(if n == 0 { ": " } else { "; " })?;
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Kind::Io { context, source } => write!(f, "{context}: {source}"),
            Kind::Disconnected(why) => write!(f, "disconnected: {why}"),
            Kind::AuthenticationFailed(why) => write!(f, "authentication failed: {why}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<crate::wire::WireError> for Error {
    fn from(e: crate::wire::WireError) -> Error {
        match e {
            crate::wire::WireError::Io(source) => Error::io("transport", source),
            other => Error::new(Kind::Decode(other.to_string())),
        }
    }
}

/// Name of a signal number, for messages (`SIGKILL`), or `signal N`.
pub(crate) fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {sig}"),
    };
    name.to_owned()
}
