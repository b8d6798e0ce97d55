//! Entry point: how a child or the fork server takes over a fresh process
//! before the user's `main` can run.
//!
//! Two mechanisms, both always present:
//!
//! - a **link-time constructor** (an `.init_array` entry) runs before `main`
//!   in every program that links multiproc. It reads one environment
//!   variable; in the parent it finds nothing and returns at once. In a copy
//!   of the program exec'd as the fork server, as a Spawn child or as the
//!   keeper of a named shared-memory segment it takes the process over and
//!   never returns, so `main` (the user's, or the test harness's, or a
//!   doctest's) never runs there. This is what makes `cargo test` tests
//!   and doctests able to spawn with no boilerplate.
//! - [`init`](crate::init), the documented first line of `main`, does the
//!   same take-over for programs run with `MULTIPROC_NO_CONSTRUCTOR=1`
//!   (which disables the constructor, for programs that must not run code
//!   before `main`) and marks the process as initialised.
//!
//! A spawn in a process where neither ran fails with
//! [`Error::is_not_initialized`](crate::Error::is_not_initialized): never a
//! silent second run of `main` in the child.
//!
//! The constructor runs before the Rust runtime's own set-up, so the child
//! path repeats what matters of it (ignoring `SIGPIPE`) and uses nothing that
//! depends on `std::env::args`.

use super::protocol::ROLE_VAR;
use crate::shared::memory::keeper;
use crate::sys::{self, proc};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the constructor when it is active in this process.
static CONSTRUCTOR_ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set by [`init`](crate::init).
static INIT_CALLED: AtomicBool = AtomicBool::new(false);

/// Disables the constructor when set (to anything) in the environment.
const NO_CONSTRUCTOR_VAR: &str = "MULTIPROC_NO_CONSTRUCTOR";

#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

extern "C" fn constructor() {
    if std::env::var_os(NO_CONSTRUCTOR_VAR).is_some() {
        return;
    }
    CONSTRUCTOR_ACTIVE.store(true, Ordering::Relaxed);
    take_over_if_child();
}

/// Public `init`: take over if this is a child, else mark the process ready.
pub(crate) fn init() {
    INIT_CALLED.store(true, Ordering::Relaxed);
    take_over_if_child();
}

/// Whether this process may start children. Also keeps the constructor
/// linked into every program that can spawn.
pub(crate) fn ready() -> bool {
    std::hint::black_box(&CONSTRUCTOR);
    CONSTRUCTOR_ACTIVE.load(Ordering::Relaxed) || INIT_CALLED.load(Ordering::Relaxed)
}

/// If the environment names a role for this process, runs it and never
/// returns; otherwise returns at once.
fn take_over_if_child() {
    let Some(role) = std::env::var_os(ROLE_VAR) else {
        return;
    };
    // SAFETY: this runs before `main` (constructor) or as the first line of
    // `main` (init), where no other thread exists yet to read the
    // environment concurrently.
    unsafe { std::env::remove_var(ROLE_VAR) };
    let role = role.to_string_lossy().into_owned();
    let (kind, rest) = role.split_once(':').unwrap_or((role.as_str(), ""));
    let fd = rest.parse::<i32>().ok().filter(|fd| *fd > 2);
    proc::ignore_sigpipe();
    match (kind, fd) {
        ("forkserver", Some(fd)) => super::forkserver::run_as_server(fd),
        ("spawn", Some(fd)) => {
            let _ = sys::set_cloexec(fd, true);
            // SAFETY: the fork server passed this descriptor number across
            // exec for us alone; nothing else in this fresh process owns it.
            let ctl = unsafe { OwnedFd::from_raw_fd(fd) };
            super::child::run_job_and_exit(ctl)
        }
        (keeper::ROLE, _) => keeper::run_as_keeper(rest),
        _ => {
            let msg = format!("multiproc: invalid {ROLE_VAR}={role:?}; refusing to run main\n");
            sys::write_all_raw(2, msg.as_bytes());
            sys::exit_now(super::child::EXIT_BOOT)
        }
    }
}
