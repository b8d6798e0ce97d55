//! [`ExitStatus`]: how a process ended.

use crate::error::signal_name;
use crate::sys::proc::RawExit;
use std::fmt;

/// How a child process ended: an exit code or a signal.
///
/// Python folds both into one integer (`exitcode`, negative for a signal);
/// [`as_python`](ExitStatus::as_python) gives that form.
///
/// # Examples
/// ```
/// use multiproc::{ExitStatus, Process};
/// use std::time::Duration;
///
/// fn sleep_forever(_: ()) { loop { std::thread::sleep(Duration::from_secs(1)) } }
///
/// # multiproc::init();
/// let mut p = Process::spawn(sleep_forever, ()).unwrap();
/// p.terminate().unwrap();
/// assert!(p.join().is_err());
/// assert_eq!(p.exitcode(), Some(ExitStatus::Signal(libc::SIGTERM)));
/// assert_eq!(p.exitcode().unwrap().as_python(), -15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The process exited with this code (0 after its function returned).
    Code(i32),
    /// A signal ended the process.
    Signal(i32),
}

impl ExitStatus {
    /// The exit code, if the process exited.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) => None,
        }
    }

    /// The signal, if one ended the process.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) => None,
        }
    }

    /// Exit code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// Python's `Process.exitcode`: the code, or minus the signal number.
    pub fn as_python(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => -s,
        }
    }
}

impl From<RawExit> for ExitStatus {
    fn from(raw: RawExit) -> Self {
        match raw {
            RawExit::Code(c) => ExitStatus::Code(c),
            RawExit::Signal(s) => ExitStatus::Signal(s),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exited with code {c}"),
            ExitStatus::Signal(s) => write!(f, "was killed by {}", signal_name(*s)),
        }
    }
}
