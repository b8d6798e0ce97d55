//! The pool's manager thread: it alone talks to the workers. It hands out
//! chunks (at most [`PREFETCH_MAX`] per worker, fewer for longer tasks, so
//! a dead worker's share is known exactly), routes results to the calls' mailboxes, and watches
//! every worker's pidfd: a worker that dies fails only the task it was
//! running (read from its progress slot), the rest of its chunks go back
//! to the queue, and a new worker takes its place.

use super::handle::Arrival;
use super::progress::Tracker;
use super::shared::{Chunk, Cmd, Config, Shared, pool_gone};
use super::table::outcome_count;
use super::task::{ResultHeader, RunSpec, ToWorker};
use super::worker::{self, IDLE, InitSpec, PROGRESS_WORDS, Progress, STARTING, WorkerSetup};
use crate::channel::Queue;
use crate::error::{Error, Kind};
use crate::process::Process;
use crate::shared::RawArray;
use crate::sys::eventfd;
use crate::wait::{Waitable, wait};
use crate::wire::Fd;
use send::send_chunk;
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod faults;
mod send;

/// A task message buffer larger than this is not kept for the next one.
const SCRATCH_KEEP: usize = 1 << 16;

/// While results or requests keep coming, the manager looks at its
/// workers' sentinels (a `poll`) at most this often.
const BUSY_LOOK: Duration = Duration::from_millis(2);

/// Chunks in flight per worker (one running, the others waiting in its
/// queue, so that a worker with tiny tasks never waits for the manager),
/// before anything is known of how long chunks take, and at least.
const PREFETCH: usize = 4;
/// The most chunks in flight per worker.
const PREFETCH_MAX: usize = worker::QUEUE_MAX;
/// How much work (by the recent chunks' duration) a worker may have queued
/// behind the running chunk: deep queues for tiny tasks (the manager hands
/// them out in batches, and a worker never idles waiting for it), shallow
/// ones for long tasks (so that work spreads to idle workers instead of
/// queueing behind a busy one).
const QUEUED_WORK_NS: u64 = 200_000;
/// The most argument bytes queued to one worker beyond [`PREFETCH`] chunks.
const QUEUED_BYTES_MAX: usize = 4 << 20;
/// A chunk whose worker died with no task of it running (before it started,
/// or while sending its results) is retried this many times.
const MAX_RETRIES: u32 = 2;
/// The longest the manager sleeps without looking around.
const BACKSTOP: Duration = Duration::from_secs(1);
/// Consecutive workers that die before their initializer finished, after
/// which the pool gives up (Python would respawn forever).
const MAX_START_FAILURES: u32 = 3;

struct Bell<'a>(BorrowedFd<'a>);

impl Waitable for Bell<'_> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.0
    }
}

struct Worker {
    process: Process<()>,
    tasks: Queue<()>,
    inflight: VecDeque<Chunk>,
    dispatched: u64,
    retiring: bool,
}

/// Why a worker is being replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cause {
    Died,
    Timeout,
    Cancelled,
}

pub(crate) struct Manager {
    shared: Arc<Shared>,
    config: Config,
    results: Queue<()>,
    progress: RawArray<u64>,
    workers: Vec<Option<Worker>>,
    pending: VecDeque<Chunk>,
    closing: bool,
    start_failures: u32,
    /// Set when workers cannot be started: every task fails with it.
    broken: Option<String>,
    tracker: Tracker,
    /// Recent chunks' busy time, a moving average per task function
    /// (tasks of one function tend to take alike; another's say nothing).
    chunk_ns: HashMap<i64, u64>,
    /// The task message being built (see `send_chunk`).
    scratch: Vec<u8>,
}

impl Manager {
    /// Starts the workers (so that a pool that cannot start fails to build).
    pub(crate) fn start(shared: Arc<Shared>, config: Config) -> Result<Manager, Error> {
        let n = config.processes;
        let mut m = Manager {
            shared,
            results: Queue::new()?,
            progress: RawArray::new(n * PROGRESS_WORDS)?,
            workers: (0..n).map(|_| None).collect(),
            config,
            pending: VecDeque::new(),
            closing: false,
            start_failures: 0,
            broken: None,
            tracker: Tracker::new(None, n),
            chunk_ns: HashMap::new(),
            scratch: Vec::new(),
        };
        m.tracker = Tracker::new(m.config.progress.clone(), n);
        for slot in 0..n {
            m.spawn(slot)?;
        }
        Ok(m)
    }

    fn spawn(&mut self, slot: usize) -> Result<(), Error> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let tasks = Queue::<()>::new()?;
        let init = match &self.config.init {
            None => None,
            Some((run, arg, fds)) => Some(InitSpec {
                run: *run,
                arg: arg.clone(),
                fds: fds
                    .iter()
                    .map(|f| f.try_clone().map(Fd::from))
                    .collect::<Result<_, _>>()
                    .map_err(|e| Error::io("cannot pass the initializer's handles", e))?,
            }),
        };
        let setup = WorkerSetup {
            slot: slot as u32,
            tasks: tasks.clone(),
            results: self.results.clone(),
            progress: self.progress.clone(),
            init,
        };
        if let Some(p) = Progress::of(&self.progress, slot) {
            p.set(STARTING, 0);
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let process = Process::builder()
            .name(format!("PoolWorker-{n}"))
            .start_method(self.config.method)
            .spawn(worker::worker_main, setup)?;
        self.workers[slot] = Some(Worker {
            process,
            tasks,
            inflight: VecDeque::new(),
            dispatched: 0,
            retiring: false,
        });
        Ok(())
    }

    /// The manager thread's body.
    pub(crate) fn run(mut self) {
        /// Stops the inbox however the thread ends (a bug's panic
        /// included), so that later requests fail instead of waiting.
        struct StopOnExit(Arc<Shared>);
        impl Drop for StopOnExit {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _stop = StopOnExit(Arc::clone(&self.shared));
        let mut cmds = Vec::new();
        let mut looked = Instant::now();
        loop {
            self.shared.take_into(&mut cmds);
            for cmd in cmds.drain(..) {
                match cmd {
                    Cmd::Submit(c) => self.submit(c),
                    Cmd::Cancel(id, reply) => {
                        // A result already sent means the task finished.
                        self.drain_results();
                        let _ = reply.send(self.cancel(id));
                    }
                    Cmd::Close => self.closing = true,
                    Cmd::CancelPending => self.cancel_pending(),
                    Cmd::Terminate => return self.terminate(),
                }
            }
            self.dispatch();
            if self.closing && self.pending.is_empty() && self.idle() {
                return self.finish();
            }
            // Busy (results or requests waiting): go on without a system
            // call, looking at the workers' sentinels only every
            // `BUSY_LOOK`; a worker's death is then seen that much later.
            let busy = self.shared.has_requests() || !self.results.is_empty();
            let dead = if busy && looked.elapsed() < BUSY_LOOK {
                Vec::new()
            } else {
                looked = Instant::now();
                // We are the results' only reader: clear the doorbell of
                // what was taken since the last wait, or this one would wake
                // for nothing.
                self.results.settle();
                self.wait_for_something()
            };
            self.drain_results();
            self.tracker.report();
            for slot in dead {
                self.replace(slot, Cause::Died);
            }
            self.check_timeouts();
        }
    }

    fn submit(&mut self, mut c: Chunk) {
        self.tracker.submitted(c.count);
        match &self.broken {
            Some(why) => {
                let why = why.clone();
                let n = c.fail_rest(|| Error::start(why.clone()));
                self.tracker.completed(n);
            }
            None => self.pending.push_back(c),
        }
    }

    fn idle(&self) -> bool {
        self.workers.iter().flatten().all(|w| w.inflight.is_empty())
    }

    /// Sleeps until a command, a result, a worker's end or the next task
    /// deadline; returns the slots whose worker has ended.
    fn wait_for_something(&mut self) -> Vec<usize> {
        let bell = Bell(self.shared.bell.as_fd());
        let mut objects: Vec<&dyn Waitable> = vec![&self.results, &bell];
        let mut slots = Vec::new();
        let sentinels: Vec<_> = self
            .workers
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| w.as_ref().map(|w| (slot, w.process.sentinel())))
            .collect();
        for (slot, s) in &sentinels {
            objects.push(s);
            slots.push(*slot);
        }
        // Callers ring the bell only while we sleep: say so, then look at
        // the inbox once more (either they see the flag or we see their
        // request), and with requests waiting only poll, never block.
        self.shared.asleep.store(true, Ordering::SeqCst);
        let timeout = if self.shared.has_requests() {
            Some(Duration::ZERO)
        } else {
            // A backstop: a wake-up lost anywhere costs a second, not a hang.
            Some(self.next_deadline().unwrap_or(BACKSTOP))
        };
        let ready = wait(&objects, timeout).unwrap_or_default();
        self.shared.asleep.store(false, Ordering::SeqCst);
        if ready.contains(&1) {
            while eventfd::take(self.shared.bell.as_fd()) {}
        }
        ready
            .into_iter()
            .filter(|i| *i >= 2)
            .filter_map(|i| slots.get(i - 2).copied())
            .collect()
    }

    /// How long until the earliest running task's timeout.
    fn next_deadline(&self) -> Option<Duration> {
        let limit = self.config.task_timeout?;
        if self.idle() {
            return None;
        }
        // A worker that starts a task does not wake us: look again at
        // least this often while any task is out.
        let mut next = (limit / 8).clamp(Duration::from_millis(1), Duration::from_millis(50));
        let now = crate::sys::monotonic_ns();
        for (_, _, started) in self.busy_slots() {
            let end = started.saturating_add(nanos(limit));
            next = next.min(Duration::from_nanos(end.saturating_sub(now)));
        }
        Some(next.max(Duration::from_millis(1)))
    }

    /// `(slot, chunk, started_ns)` of every worker running a task.
    fn busy_slots(&self) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.workers.iter().enumerate().filter_map(|(slot, w)| {
            let w = w.as_ref()?;
            if w.inflight.is_empty() {
                return None;
            }
            let (chunk, _, started) = Progress::of(&self.progress, slot)?.read();
            (chunk != IDLE && chunk != STARTING).then_some((slot, chunk, started))
        })
    }

    fn drain_results(&mut self) {
        loop {
            let workers = &mut self.workers;
            let got = self.results.try_get_raw(|bytes, fds| {
                let Ok((head, rest)) = crate::wire::take_plain::<ResultHeader>(bytes) else {
                    return None;
                };
                // The rest goes into the chunk's argument buffer (done with,
                // and the caller's own allocation: see `ResultHeader`).
                let chunk = workers
                    .get_mut(head.slot as usize)
                    .and_then(Option::as_mut)
                    .and_then(|w| w.inflight.iter_mut().find(|c| c.id == head.chunk));
                // Not a buffer much larger than the results, though: it would
                // stay alive, mostly empty, until the caller reads them.
                let room = 4 * rest.len().max(super::map::RESULT_ROOM);
                let mut buf = match chunk.filter(|c| c.args.capacity() <= room) {
                    Some(c) => std::mem::take(&mut c.args),
                    None => Vec::with_capacity(rest.len()),
                };
                buf.clear();
                buf.extend_from_slice(rest);
                Some((head, buf, fds))
            });
            match got {
                Ok(Some((head, body, fds))) => self.on_result(head, body, fds),
                Ok(None) => {}
                Err(_) => return,
            }
        }
    }

    fn on_result(&mut self, head: ResultHeader, body: Vec<u8>, fds: Vec<OwnedFd>) {
        let Some(w) = self
            .workers
            .get_mut(head.slot as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let Some(at) = w.inflight.iter().position(|c| c.id == head.chunk) else {
            return;
        };
        let Some(mut chunk) = w.inflight.remove(at) else {
            return;
        };
        if chunk.cancelled || chunk.marked {
            if let Some(p) = Progress::of(&self.progress, head.slot as usize) {
                p.uncancel(chunk.id);
            }
        }
        if chunk.cancelled {
            return;
        }
        if chunk.marked && head.failed.as_deref() == Some(worker::SKIPPED) {
            // Marked by a shutdown as it started: the worker saw the mark.
            let n = chunk.fail_rest(Error::cancelled);
            self.tracker.completed(n);
            return;
        }
        self.tracker.busy(head.slot as usize, head.busy_ns);
        let avg = self.chunk_ns.entry(chunk.run.key()).or_insert(0);
        *avg = match *avg {
            0 => head.busy_ns,
            avg => (avg * 7 + head.busy_ns) / 8,
        }
        .max(1);
        let failed = match head.failed {
            None if outcome_count(&body) != Some(chunk.count) => Some(format!(
                "a result message with {:?} outcomes for {} tasks",
                outcome_count(&body),
                chunk.count
            )),
            other => other,
        };
        match failed {
            Some(why) => {
                let n = chunk.fail_rest(|| Error::new(Kind::Decode(why.clone())));
                self.tracker.completed(n);
            }
            None => {
                self.tracker
                    .completed(chunk.count.saturating_sub(chunk.skip.len()));
                chunk.call.deliver(Arrival::Chunk {
                    first: chunk.first,
                    count: chunk.count,
                    pid: head.pid,
                    busy_ns: head.busy_ns,
                    run_ns: head.run_ns,
                    body,
                    fds,
                    plain: head.plain,
                });
                chunk.answered();
            }
        }
    }

    /// How many chunks each worker may have in flight for tasks of `run`,
    /// from how long its recent chunks took (see [`QUEUED_WORK_NS`]).
    fn prefetch(&self, run: &RunSpec) -> usize {
        prefetch_for(self.chunk_ns.get(&run.key()).copied().unwrap_or(0))
    }

    /// Hands out pending chunks: first one to each idle worker, then, in
    /// rounds, up to [`prefetch`](Self::prefetch) each, so that work
    /// spreads before it queues.
    fn dispatch(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Rounds below the shallowest worker's queue would hand out nothing
        // (and with every queue full, nothing at all: the common case while
        // busy, so it costs no more than this look).
        let shallowest = self
            .workers
            .iter()
            .flatten()
            .filter(|w| !w.retiring)
            .map(|w| w.inflight.len())
            .min()
            .unwrap_or(PREFETCH_MAX);
        if shallowest >= PREFETCH_MAX {
            return;
        }
        // Per worker, the argument bytes it has queued; and the depth for
        // the front chunk's function (both looked up once, not per step).
        let mut queued: Vec<usize> = self
            .workers
            .iter()
            .map(|w| {
                w.as_ref()
                    .map_or(0, |w| w.inflight.iter().map(|c| c.args.len()).sum())
            })
            .collect();
        let mut depth_of: Option<(i64, usize)> = None;
        for depth in shallowest + 1..=PREFETCH_MAX {
            for (slot, queued) in queued.iter_mut().enumerate() {
                let Some(front) = self.pending.front() else {
                    return;
                };
                let key = front.run.key();
                let most = match depth_of {
                    Some((k, most)) if k == key => most,
                    _ => {
                        let most = self.prefetch(&front.run);
                        depth_of = Some((key, most));
                        most
                    }
                };
                if depth > most {
                    return;
                }
                let Some(w) = self.workers[slot].as_mut() else {
                    continue;
                };
                if w.retiring || w.inflight.len() >= depth {
                    continue;
                }
                // Deep queues are for small messages: what a worker has
                // queued stays a bounded amount of memory.
                if depth > PREFETCH && *queued + front.args.len() > QUEUED_BYTES_MAX {
                    continue;
                }
                while let Some(mut chunk) = self.pending.pop_front() {
                    if chunk.call.is_abandoned() || chunk.cancelled {
                        // Nobody waits for these: count them as done.
                        self.tracker
                            .completed(chunk.count.saturating_sub(chunk.skip.len()));
                        continue;
                    }
                    let timed = self.config.task_timeout.is_some();
                    if let Err(e) = send_chunk(&w.tasks, &chunk, timed, &mut self.scratch) {
                        let n = chunk
                            .fail_rest(|| Error::io("cannot send a task to a worker", io_copy(&e)));
                        self.tracker.completed(n);
                        continue;
                    }
                    *queued += chunk.args.len();
                    w.inflight.push_back(chunk);
                    w.dispatched += 1;
                    if self.config.max_tasks == Some(w.dispatched) {
                        w.retiring = true;
                        let exit = postcard::to_allocvec(&ToWorker::Exit).unwrap_or_default();
                        let _ = w.tasks.put_raw(&exit, &[]);
                    }
                    break;
                }
            }
        }
    }

    /// `close` + all work done: let the workers exit, then stop.
    fn finish(mut self) {
        let exit = postcard::to_allocvec(&ToWorker::Exit).unwrap_or_default();
        for w in self.workers.iter().flatten() {
            let _ = w.tasks.put_raw(&exit, &[]);
        }
        for w in self.workers.iter_mut().flatten() {
            if w.process.join_timeout(Duration::from_secs(10)).is_err() {
                let _ = w.process.kill();
                let _ = w.process.join_timeout(Duration::from_secs(5));
            }
        }
        self.shared.stop();
    }

    /// Kills every worker and fails whatever was not finished.
    fn terminate(mut self) {
        for w in self.workers.iter().flatten() {
            let _ = w.process.kill();
        }
        for w in self.workers.iter_mut().flatten() {
            let _ = w.process.join_timeout(Duration::from_secs(5));
            for mut c in w.inflight.drain(..) {
                if !c.cancelled {
                    c.fail_rest(pool_gone);
                }
            }
        }
        self.shared.stop();
        for mut c in self.pending.drain(..) {
            c.fail_rest(pool_gone);
        }
    }
}

/// Chunks in flight per worker when recent chunks took `chunk_ns` each
/// (0: nothing measured yet).
fn prefetch_for(chunk_ns: u64) -> usize {
    if chunk_ns == 0 {
        return PREFETCH;
    }
    usize::try_from(QUEUED_WORK_NS / chunk_ns)
        .unwrap_or(PREFETCH_MAX)
        .clamp(PREFETCH, PREFETCH_MAX)
}

fn io_copy(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// `d` in nanoseconds, saturating (a timeout of centuries stays one).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::{PREFETCH, PREFETCH_MAX, prefetch_for};

    #[test]
    fn queues_are_deep_for_tiny_chunks_and_shallow_for_long_ones() {
        assert_eq!(prefetch_for(0), PREFETCH, "nothing measured yet");
        assert_eq!(prefetch_for(1), PREFETCH_MAX);
        assert_eq!(prefetch_for(2_000), PREFETCH_MAX, "2 us tasks");
        assert_eq!(prefetch_for(10_000), 20, "10 us tasks: 200 us queued");
        assert_eq!(prefetch_for(100_000), PREFETCH, "100 us tasks");
        assert_eq!(prefetch_for(2_000_000), PREFETCH, "map's 2 ms chunks");
        assert_eq!(prefetch_for(u64::MAX), PREFETCH);
    }
}
