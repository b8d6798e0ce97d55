//! The manager's fault paths: a worker that died, overstayed its task's
//! timeout, or runs a cancelled task is killed and replaced, and exactly
//! the task it was running is failed.

use super::{Cause, MAX_RETRIES, MAX_START_FAILURES, Manager, nanos};
use crate::error::{Error, Kind};
use crate::pool::handle::Arrival;
use crate::pool::worker::{IDLE, Progress, STARTING};
use crate::process::ExitStatus;
use std::time::Duration;

impl Manager {
    pub(super) fn check_timeouts(&mut self) {
        let Some(limit) = self.config.task_timeout else {
            return;
        };
        let now = crate::sys::monotonic_ns();
        let expired: Vec<usize> = self
            .busy_slots()
            .filter(|(_, _, started)| now.saturating_sub(*started) >= nanos(limit))
            .map(|(slot, _, _)| slot)
            .collect();
        // A worker whose initializer outlasts the task timeout while tasks
        // wait for it counts as a failed start.
        let stuck: Vec<usize> = (0..self.workers.len())
            .filter(|&slot| {
                self.workers[slot]
                    .as_ref()
                    .is_some_and(|w| !w.inflight.is_empty())
                    && Progress::of(&self.progress, slot).is_some_and(|p| {
                        let (chunk, _, started) = p.read();
                        chunk == STARTING && now.saturating_sub(started) >= nanos(limit)
                    })
            })
            .collect();
        for slot in expired.into_iter().chain(stuck) {
            self.replace(slot, Cause::Timeout);
        }
    }

    /// Kills (if needed) and replaces the worker in `slot`, failing the
    /// task it was running (for `cause`) and re-queueing its other chunks.
    pub(super) fn replace(&mut self, slot: usize, cause: Cause) {
        // Kill and reap it while it still owns its slot, then take every
        // result it sent before dying: only then is the chunk it was
        // running the first one still in flight.
        let Some(w) = self.workers[slot].as_mut() else {
            return;
        };
        let _ = w.process.kill();
        let joined = w.process.join_timeout(Duration::from_secs(5));
        self.drain_results();
        let Some(mut w) = self.workers[slot].take() else {
            return;
        };
        let pid = w.process.pid();
        let status = w.process.exitcode();
        let panic = joined.err().filter(Error::is_panic).map(|e| {
            (
                e.panic_message().unwrap_or_default().to_owned(),
                e.panic_location().map(str::to_owned),
            )
        });
        let (pchunk, ppos, started) = Progress::of(&self.progress, slot)
            .map(|p| {
                p.uncancel(0);
                p.read()
            })
            .unwrap_or((IDLE, 0, 0));
        let starting = pchunk == STARTING;
        let error = move || match cause {
            Cause::Timeout => Error::timeout(),
            Cause::Cancelled => Error::cancelled(),
            Cause::Died => match (&panic, status) {
                // The initializer panicked: the pool's start failed.
                (Some((message, _)), _) if starting => Error::start(message.clone()),
                // A panic outside a task's own code (a `Deserialize`).
                (Some((message, location)), _) => Error::new(Kind::Panicked {
                    pid,
                    message: message.clone(),
                    location: location.clone(),
                    backtrace: None,
                }),
                (None, Some(status)) => Error::new(Kind::Died { pid, status }),
                (None, None) => Error::new(Kind::Died {
                    pid,
                    status: ExitStatus::Signal(libc::SIGKILL),
                }),
            },
        };
        // A timeout blames the task that overstayed, not one that started
        // after it between the look and the kill.
        let limit = self.config.task_timeout.map_or(0, nanos);
        let blame =
            cause != Cause::Timeout || crate::sys::monotonic_ns().saturating_sub(started) >= limit;
        let mut back = Vec::new();
        if starting && cause != Cause::Cancelled {
            self.start_failures += 1;
            back.extend(w.inflight.drain(..));
        } else {
            self.start_failures = 0;
            for (n, mut chunk) in w.inflight.drain(..).enumerate() {
                if chunk.cancelled {
                    continue;
                }
                let pos = ppos as u32;
                let running = n == 0 && pchunk == chunk.id && (ppos as usize) < chunk.count;
                if running && !chunk.skip.contains(&pos) && blame {
                    let index = chunk.first + ppos as usize;
                    chunk.call.deliver(Arrival::Failed {
                        index,
                        error: error().in_task(index),
                    });
                    chunk.skip.push(pos);
                    self.tracker.completed(1);
                } else if n == 0 && !running {
                    chunk.retries += 1;
                    if chunk.retries > MAX_RETRIES {
                        let failed = chunk.fail_rest(&error);
                        self.tracker.completed(failed);
                    }
                }
                if chunk.skip.len() < chunk.count {
                    back.push(chunk);
                }
            }
        }
        for chunk in back.into_iter().rev() {
            self.pending.push_front(chunk);
        }
        if self.start_failures >= MAX_START_FAILURES {
            let why = format!("pool workers keep failing to start: {}", error());
            self.give_up(why);
            return;
        }
        if self.closing && self.pending.is_empty() {
            return;
        }
        if let Err(e) = self.spawn(slot) {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES || self.workers.iter().all(Option::is_none)
            {
                self.give_up(format!("cannot start a pool worker: {e}"));
            }
        }
    }

    /// Fails everything pending, and everything submitted from now on.
    fn give_up(&mut self, why: String) {
        for mut c in self.pending.drain(..) {
            let n = c.fail_rest(|| Error::start(why.clone()));
            self.tracker.completed(n);
        }
        self.broken = Some(why);
    }

    /// `shutdown(.., cancel_pending)`: fails every chunk not started, the
    /// pending ones and those queued in the workers, which are marked so
    /// that the workers skip them. A chunk that a worker starts meanwhile
    /// runs: whether it was seen starting or skipped decides (`on_result`).
    pub(super) fn cancel_pending(&mut self) {
        for mut c in std::mem::take(&mut self.pending) {
            let n = c.fail_rest(Error::cancelled);
            self.tracker.completed(n);
        }
        for slot in 0..self.workers.len() {
            let Some(progress) = Progress::of(&self.progress, slot) else {
                continue;
            };
            let Some(w) = self.workers[slot].as_mut() else {
                continue;
            };
            for c in w.inflight.iter_mut().filter(|c| !c.cancelled) {
                if !progress.cancel(c.id) {
                    continue;
                }
                c.marked = true;
                if progress.read().0 == c.id {
                    continue;
                }
                let n = c.fail_rest(Error::cancelled);
                c.cancelled = true;
                self.tracker.completed(n);
            }
        }
    }

    pub(super) fn cancel(&mut self, id: u64) -> bool {
        if let Some(at) = self.pending.iter().position(|c| c.id == id) {
            if let Some(mut c) = self.pending.remove(at) {
                let n = c.fail_rest(Error::cancelled);
                self.tracker.completed(n);
            }
            return true;
        }
        let found = self.workers.iter().enumerate().find_map(|(slot, w)| {
            let w = w.as_ref()?;
            let n = w.inflight.iter().position(|c| c.id == id)?;
            Some((slot, n))
        });
        let Some((slot, n)) = found else {
            return false;
        };
        if self.workers[slot]
            .as_ref()
            .and_then(|w| w.inflight.get(n))
            .is_some_and(|c| c.cancelled)
        {
            // Cancelled already (twice, or by a shutdown): nothing more to do.
            return true;
        }
        // Mark it for the worker first, then look whether it runs already.
        let progress = Progress::of(&self.progress, slot);
        // (With no cancel slot free, the chunk runs and its result is
        // dropped: it cannot be told apart from the queue.)
        let _ = progress.as_ref().is_some_and(|p| p.cancel(id));
        let running = progress.as_ref().is_some_and(|p| p.read().0 == id);
        if running {
            // Killing the worker fails the running task as cancelled.
            self.replace(slot, Cause::Cancelled);
            // Its other tasks, re-queued, are cancelled too.
            if let Some(at) = self.pending.iter().position(|c| c.id == id) {
                if let Some(mut c) = self.pending.remove(at) {
                    let n = c.fail_rest(Error::cancelled);
                    self.tracker.completed(n);
                }
            }
        } else if let Some(c) = self.workers[slot]
            .as_mut()
            .and_then(|w| w.inflight.get_mut(n))
        {
            let failed = c.fail_rest(Error::cancelled);
            c.cancelled = true;
            self.tracker.completed(failed);
        }
        true
    }
}
