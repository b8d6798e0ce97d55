//! Logging from children: [`log_to_stderr`].
//!
//! Records go through the [`log`] facade. [`log_to_stderr`] installs a logger
//! that writes each record as one line, `[LEVEL/process-name pid] message`,
//! to standard error with a single `write` (so lines from several processes
//! do not interleave), and every child started afterwards installs the same
//! logger at the same level. A child's standard error is its parent's unless
//! the builder redirects it, so children's records reach the parent's
//! terminal, tagged with the child's name and pid.

use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not installed; otherwise `LevelFilter as u8`.
static LEVEL: AtomicU8 = AtomicU8::new(0);

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= level_filter(LEVEL.load(Ordering::Relaxed))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let me = crate::current_process();
        let line = format!(
            "[{}/{} {}] {}\n",
            record.level(),
            me.name(),
            me.pid(),
            record.args()
        );
        crate::sys::write_all_raw(2, line.as_bytes());
    }

    fn flush(&self) {}
}

fn level_filter(n: u8) -> log::LevelFilter {
    match n {
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        5 => log::LevelFilter::Trace,
        _ => log::LevelFilter::Off,
    }
}

/// Sends `log` records of this process, and of every child started after
/// this call, to standard error tagged with the process name and pid
/// (Python's `multiprocessing.log_to_stderr(level)`).
///
/// If another logger is already installed in this process it stays in
/// charge here; the children still log to standard error. Calling again
/// changes the level.
///
/// # Examples
/// ```
/// fn work(_: ()) { log::info!("working") } // prints "[INFO/Process-1 <pid>] working"
///
/// # multiproc::init();
/// multiproc::log_to_stderr(log::LevelFilter::Info);
/// multiproc::Process::spawn(work, ()).unwrap().join().unwrap();
/// ```
pub fn log_to_stderr(level: log::LevelFilter) {
    install_level(level as u8);
}

/// Installs the logger at `level` (a `LevelFilter as u8`).
pub(crate) fn install_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
    if log::set_logger(&LOGGER).is_ok() || log::max_level() < level_filter(level) {
        log::set_max_level(level_filter(level));
    }
}

/// The level children should log at, when `log_to_stderr` is active.
pub(crate) fn current_level() -> Option<u8> {
    match LEVEL.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}
