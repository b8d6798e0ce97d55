//! Progress reports: a hook the manager thread calls after each batch of
//! finished tasks. Nothing is counted for a pool without a hook beyond two
//! integers, and nothing is called.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The callback of [`PoolBuilder::on_progress`](crate::PoolBuilder::on_progress).
pub(crate) type Hook = Arc<dyn Fn(&PoolProgress) + Send + Sync>;

/// Where a pool's work stands, as given to its progress hook.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolProgress {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) busy: Vec<Duration>,
}

impl PoolProgress {
    /// Tasks submitted to the pool so far.
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Tasks finished so far, failed ones included.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// For each worker slot, the time its workers have spent running tasks.
    pub fn worker_busy(&self) -> &[Duration] {
        &self.busy
    }
}

impl fmt::Display for PoolProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} tasks", self.completed, self.submitted)
    }
}

/// The manager's counters.
pub(crate) struct Tracker {
    hook: Option<Hook>,
    now: PoolProgress,
    reported: u64,
}

impl Tracker {
    pub(crate) fn new(hook: Option<Hook>, workers: usize) -> Tracker {
        Tracker {
            hook,
            now: PoolProgress {
                busy: vec![Duration::ZERO; workers],
                ..PoolProgress::default()
            },
            reported: 0,
        }
    }

    pub(crate) fn submitted(&mut self, n: usize) {
        self.now.submitted += n as u64;
    }

    pub(crate) fn completed(&mut self, n: usize) {
        self.now.completed += n as u64;
    }

    pub(crate) fn busy(&mut self, slot: usize, ns: u64) {
        if let Some(b) = self.now.busy.get_mut(slot) {
            *b += Duration::from_nanos(ns);
        }
    }

    /// Calls the hook if tasks finished since the last call.
    pub(crate) fn report(&mut self) {
        if let Some(hook) = &self.hook {
            if self.now.completed != self.reported {
                self.reported = self.now.completed;
                // The hook is the user's code on the pool's thread: a panic
                // in it must not take the pool down.
                let now = &self.now;
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(now)));
            }
        }
    }
}

/// An `indicatif` progress bar driven by a pool's progress.
#[cfg(feature = "progress")]
pub(crate) fn bar_hook() -> Hook {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} tasks [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Arc::new(move |p: &PoolProgress| {
        bar.set_length(p.submitted());
        bar.set_position(p.completed());
        if p.completed() == p.submitted() {
            bar.finish();
        }
    })
}
