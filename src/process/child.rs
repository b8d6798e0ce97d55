//! The child side: receive the job, check it, run it, report, exit.
//!
//! Every child, whatever its start method, ends through [`finish`]: it sends
//! its outcome on the control socket *before* exiting (a small message, or a
//! memfd for a large result, so the send never waits on the parent), applies
//! Python's exit rule to its own children, flushes stdio, and `_exit`s
//! without running the parent's `atexit` handlers it may have inherited.

use super::identity::{self, Outcome, Trampoline};
use super::protocol::{ChildInfo, Job, Report};
use super::{current, registry};
use crate::sys;
use crate::wire::frame;
use std::cell::RefCell;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Once;

/// Exit code of a child whose function panicked (as a panicking Rust `main`).
pub(crate) const EXIT_PANIC: i32 = 101;
/// Exit code of a child that refused its job or could not decode it.
pub(crate) const EXIT_REFUSED: i32 = 2;
/// Exit code of a child that failed before it could run anything.
pub(crate) const EXIT_BOOT: i32 = 127;

thread_local! {
    static LAST_PANIC: RefCell<(Option<String>, Option<String>)> = const { RefCell::new((None, None)) };
}

/// Installs (once) a panic hook that remembers the location and backtrace of
/// the last panic, then lets the previous hook print as usual.
pub(crate) fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(|l| l.to_string());
            let bt = std::backtrace::Backtrace::capture();
            let backtrace =
                (bt.status() == std::backtrace::BacktraceStatus::Captured).then(|| bt.to_string());
            LAST_PANIC.with(|p| *p.borrow_mut() = (location, backtrace));
            previous(info);
        }));
    });
}

/// Location and backtrace recorded by the hook for the last panic.
pub(crate) fn last_panic_details() -> (Option<String>, Option<String>) {
    LAST_PANIC.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// Sets up this process as a child described by `info`.
pub(crate) fn become_child(info: &ChildInfo) {
    current::set_child(info);
    install_panic_hook();
    if let Some(level) = info.log_level {
        crate::logging::install_level(level);
    }
    log::info!("child process calling its function");
}

#[cfg(feature = "fault-injection")]
fn fault(point: &str) -> bool {
    std::env::var("MULTIPROC_FAULT").is_ok_and(|v| v == point)
}

#[cfg(not(feature = "fault-injection"))]
fn fault(_point: &str) -> bool {
    false
}

/// Receives the job on `ctl`, runs it and exits. Never returns.
pub(crate) fn run_job_and_exit(ctl: OwnedFd) -> ! {
    let mut job_frame = match frame::recv(ctl.as_fd(), false) {
        Ok(Some(f)) => f,
        Ok(None) => sys::exit_now(EXIT_BOOT),
        Err(e) => {
            boot_failed(ctl.as_fd(), &format!("cannot read the job: {e}"));
        }
    };
    let job: Job = match job_frame.envelope() {
        Ok(j) => j,
        Err(e) => boot_failed(ctl.as_fd(), &format!("cannot decode the job: {e}")),
    };
    if fault("boot-exit") {
        sys::exit_now(42);
    }
    become_child(&job.info);
    let _ = frame::send(ctl.as_fd(), &Report::Started, &[], &[], false);
    let mut exe = current::exe_identity();
    if fault("exe-mismatch") {
        exe[1] ^= 1;
    }
    let outcome = if exe != job.exe {
        Outcome::Refused(format!(
            "the child runs a different executable than the parent (identity {:x?} != {:x?})",
            exe, job.exe
        ))
    } else {
        let trampoline_addr = identity::address_at(job.trampoline);
        // SAFETY: [1] the executable identity was checked just above, so the
        // offset the parent computed from `trampoline_for::<A, R>()` names
        // the same trampoline function in this process; [2] fn pointers and
        // usize have the same size.
        let trampoline: Trampoline =
            unsafe { std::mem::transmute::<usize, Trampoline>(trampoline_addr) };
        trampoline(
            identity::address_at(job.function),
            job.signature,
            &mut job_frame,
        )
    };
    drop(job_frame);
    finish(ctl, outcome)
}

fn boot_failed(ctl: BorrowedFd<'_>, reason: &str) -> ! {
    let _ = frame::send(
        ctl,
        &Report::BootFailed {
            reason: reason.to_owned(),
        },
        &[],
        &[],
        false,
    );
    sys::exit_now(EXIT_BOOT)
}

/// Reports `outcome` on `ctl`, ends this process's own children by Python's
/// rule, flushes stdio and exits with the matching code.
pub(crate) fn finish(ctl: OwnedFd, outcome: Outcome) -> ! {
    let sock = ctl.as_fd();
    let (code, sent) = match outcome {
        Outcome::Returned(bytes, fds) => {
            (0, frame::send(sock, &Report::Returned, &bytes, &fds, false))
        }
        Outcome::Panicked {
            message,
            location,
            backtrace,
        } => (
            EXIT_PANIC,
            frame::send(
                sock,
                &Report::Panicked {
                    message,
                    location,
                    backtrace,
                },
                &[],
                &[],
                false,
            ),
        ),
        Outcome::Refused(reason) => (
            EXIT_REFUSED,
            frame::send(sock, &Report::Refused { reason }, &[], &[], false),
        ),
        Outcome::Undecodable(reason) => (
            EXIT_REFUSED,
            frame::send(sock, &Report::Undecodable { reason }, &[], &[], false),
        ),
    };
    if let Err(e) = sent {
        // The parent is gone or the result could not be sent: say so where a
        // human may see it; the parent (if any) sees the exit code.
        sys::write_all_raw(
            2,
            format!("multiproc: child could not report its result: {e}\n").as_bytes(),
        );
    }
    exit_process(code)
}

/// Python's exit rule for this process's children, stdio flush, `_exit`.
pub(crate) fn exit_process(code: i32) -> ! {
    log::info!("process exiting with exitcode {code}");
    registry::shutdown_children();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    sys::exit_now(code)
}
