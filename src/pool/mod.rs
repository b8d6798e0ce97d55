//! [`Pool`]: a fixed set of worker processes running tasks, where a worker
//! that dies costs only the task it was running.
//!
//! The pieces: `task` (the messages and how a worker runs a chunk), `worker`
//! (the worker process), `manager` (the parent's thread that dispatches,
//! collects, watches the workers and replaces the dead), `handle` (result
//! mailboxes, [`TaskHandle`], [`as_completed`]) and `map` (chunking and
//! gathering for `map`/`imap`).
//!
//! Each worker has its own task [`Queue`](crate::Queue) and shares one
//! result queue; queues never block a sender on its reader, so neither the
//! manager nor a worker can deadlock on a large message. The manager keeps
//! a few chunks in each worker's queue: four, or up to 64 when recent
//! chunks of the same task function were tiny (about 200 µs of work by
//! their measured time, and at most 4 MiB of arguments), so that a worker
//! never idles waiting for the manager and long tasks still spread (a
//! chunk queued behind one that runs much longer than its function's
//! recent ones waits for it). Each worker writes the
//! task it is running to a shared progress slot: when a worker dies (any
//! signal, any exit, mid-task or mid-send), the manager first takes every
//! result the worker had sent, then fails the one task the slot names,
//! re-queues the rest, and starts a replacement. Task timeouts and
//! cancellation are the same path with a kill in front.

mod builder;
mod gather;
mod handle;
mod manager;
mod map;
mod progress;
mod shared;
mod table;
mod task;
mod worker;

pub use builder::PoolBuilder;
pub use handle::{AsCompleted, TaskHandle, as_completed};
pub use map::{Imap, MapHandle};
pub use progress::PoolProgress;
pub use worker::with_worker_state;

use crate::error::Error;
use handle::Call;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Cmd, Shared};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use task::RunSpec;

/// A pool of worker processes (Python's `multiprocessing.Pool` and
/// `concurrent.futures.ProcessPoolExecutor` in one).
///
/// Tasks are `fn(A) -> R` items (or non-capturing closures) with serde
/// arguments and results. [`map`](Self::map), [`starmap`](Self::starmap)
/// and [`map_async`](Self::map_async) take a whole input; [`imap`](Self::imap)
/// and [`imap_unordered`](Self::imap_unordered) are lazy and bounded;
/// [`apply`](Self::apply), [`apply_async`](Self::apply_async) and
/// [`submit`](Self::submit) run one task.
///
/// Failures stay with their task: a panic fails that task alone (the worker
/// lives on); a worker that dies — `SIGKILL`, `abort`, a segfault, `exit` —
/// fails only the task it was running, with an error naming the pid, the
/// signal or exit code and the task index, and is replaced; the pool keeps
/// working. A task past its [timeout](PoolBuilder::task_timeout) or
/// [cancelled](TaskHandle::cancel) while running has its worker killed and
/// replaced the same way.
///
/// Dropping the pool terminates it: workers are killed, unfinished tasks
/// fail. For an orderly end, [`close`](Self::close) then [`join`](Self::join).
///
/// # Examples
/// ```
/// use multiproc::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// assert_eq!(pool.map(square, 0..10).unwrap(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// ```
pub struct Pool {
    shared: Arc<Shared>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

impl Pool {
    /// A pool of `processes` workers (for one per CPU, pass
    /// [`cpu_count()`](crate::cpu_count)).
    ///
    /// # Errors
    /// [`Error::is_misuse`] for 0 processes; a start error if the workers
    /// cannot be started.
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other options.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// The number of worker processes.
    pub fn processes(&self) -> usize {
        self.shared.processes
    }

    fn check_open(&self) -> Result<(), Error> {
        if self
            .shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::misuse("the pool is closed: no new tasks"));
        }
        Ok(())
    }

    fn one<A: Serialize, R: DeserializeOwned>(
        &self,
        run: RunSpec,
        arg: A,
    ) -> Result<TaskHandle<R>, Error> {
        self.check_open()?;
        let call = Arc::new(Call::default());
        let id = map::submit_chunk(&self.shared, &call, run, 0, &[arg])?;
        Ok(TaskHandle::new(call, Arc::clone(&self.shared), id))
    }

    /// Runs `f(arg)` in a worker; the result comes through the handle
    /// (Python's `apply_async`).
    ///
    /// # Errors
    /// [`Error::is_misuse`] if the pool is closed; [`Error::is_decode`] if
    /// `arg` cannot be encoded. The task's own failure comes from
    /// [`TaskHandle::get`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<TaskHandle<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.one(RunSpec::unary(f), arg)
    }

    /// [`apply_async`](Self::apply_async) under `concurrent.futures`' name.
    ///
    /// # Errors
    /// As [`apply_async`](Self::apply_async).
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<TaskHandle<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's
    /// `apply`).
    ///
    /// # Errors
    /// As [`TaskHandle::get`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)?.get()
    }

    fn all<A: Serialize, R: DeserializeOwned>(
        &self,
        run: RunSpec,
        items: Vec<A>,
        chunking: Chunking,
    ) -> Result<MapHandle<R>, Error> {
        self.check_open()?;
        let total = items.len();
        let workers = self.processes();
        let call = Arc::new(Call::default());
        let mut first = 0;
        let chunk = match chunking {
            Chunking::Fixed(n) => n.max(1),
            Chunking::Formula => map::default_chunksize(total, workers),
            Chunking::Tuned if total <= 8 * workers => map::default_chunksize(total, workers),
            Chunking::Tuned => {
                // Probe: one task per worker, and time the first to return;
                // then cut the rest so that a chunk takes about 2 ms, in 32
                // chunks per worker at most, with Python's size as the
                // ceiling.
                for (i, item) in items[..workers].iter().enumerate() {
                    let one = std::slice::from_ref(item);
                    if let Err(e) = map::submit_chunk(&self.shared, &call, run, i, one) {
                        call.abandon();
                        return Err(e);
                    }
                }
                first = workers;
                let ceiling = map::default_chunksize(total - workers, workers);
                let floor = map::min_chunksize(total - workers, workers);
                match call.take(None) {
                    Some(a) => {
                        let chunk = match &a {
                            handle::Arrival::Chunk { count, run_ns, .. } => {
                                map::tuned_chunksize(*count, *run_ns, floor, ceiling)
                            }
                            handle::Arrival::Failed { .. } => ceiling,
                        };
                        call.deliver(a);
                        chunk
                    }
                    None => ceiling,
                }
            }
        };
        let mut batch = map::Batch::new(&self.shared);
        for (n, part) in items[first..].chunks(chunk).enumerate() {
            if let Err(e) = batch.submit(&call, run, first + n * chunk, part) {
                // Nobody will read what was sent: let it be skipped.
                call.abandon();
                return Err(e);
            }
        }
        drop(batch);
        Ok(MapHandle {
            call,
            total,
            _r: PhantomData,
        })
    }

    /// Applies `f` to every item, in parallel; the results in input order.
    /// The input is collected first (as in Python). The chunk size is tuned
    /// from measured task time: one task per worker goes first, and the
    /// rest is cut so that a chunk takes about 2 ms, but into no more than
    /// 32 chunks per process, and never into chunks larger than Python's
    /// `len / (4 × processes)`.
    ///
    /// # Errors
    /// If any task fails, an error whose [`Error::failures`] lists every
    /// failed task (each with its [`task_index`](Error::task_index) and
    /// cause), returned after all the other tasks finished.
    /// [`Error::is_misuse`] if the pool is closed.
    pub fn map<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.all(
            RunSpec::unary(f),
            items.into_iter().collect(),
            Chunking::Tuned,
        )?
        .get()
    }

    /// [`map`](Self::map) with `chunksize` tasks per chunk.
    ///
    /// # Errors
    /// As [`map`](Self::map).
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.all(
            RunSpec::unary(f),
            items.into_iter().collect(),
            Chunking::Fixed(chunksize),
        )?
        .get()
    }

    /// [`map`](Self::map) without waiting: the results come through the
    /// handle.
    ///
    /// # Errors
    /// [`Error::is_misuse`] if the pool is closed; [`Error::is_decode`] if
    /// an argument cannot be encoded.
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        items: impl IntoIterator<Item = A>,
    ) -> Result<MapHandle<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.all(
            RunSpec::unary(f),
            items.into_iter().collect(),
            Chunking::Formula,
        )
    }

    /// Applies a two-argument `f` to every pair (Python's `starmap`; for
    /// more arguments, take a tuple in [`map`](Self::map)).
    ///
    /// # Errors
    /// As [`map`](Self::map).
    ///
    /// # Examples
    /// ```
    /// fn pow(base: u64, exp: u32) -> u64 {
    ///     base.pow(exp)
    /// }
    /// let pool = multiproc::Pool::new(2).unwrap();
    /// assert_eq!(pool.starmap(pow, [(2, 3), (3, 2)]).unwrap(), [8, 9]);
    /// ```
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.all(
            RunSpec::binary(f),
            items.into_iter().collect(),
            Chunking::Tuned,
        )?
        .get()
    }

    /// [`starmap`](Self::starmap) without waiting: the results come through
    /// the handle.
    ///
    /// # Errors
    /// As [`map_async`](Self::map_async).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        items: impl IntoIterator<Item = (A, B)>,
    ) -> Result<MapHandle<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.all(
            RunSpec::binary(f),
            items.into_iter().collect(),
            Chunking::Formula,
        )
    }

    /// Applies `f` lazily: an iterator of results in input order, each its
    /// own `Result`. See [`Imap`] for the bounds and the chunk size.
    ///
    /// A closed pool yields one [`Error::is_misuse`] error per task.
    ///
    /// # Examples
    /// ```
    /// fn inc(x: u64) -> u64 {
    ///     x + 1
    /// }
    /// let pool = multiproc::Pool::new(2).unwrap();
    /// // An endless input: only what is consumed is computed.
    /// let firsts: Vec<u64> = pool.imap(inc, 0..).take(5).map(Result::unwrap).collect();
    /// assert_eq!(firsts, [1, 2, 3, 4, 5]);
    /// ```
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Imap::new(&self.shared, RunSpec::unary(f), items.into_iter(), true)
    }

    /// As [`imap`](Self::imap), with the results in the order they finish.
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: IntoIterator<Item = A>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        Imap::new(&self.shared, RunSpec::unary(f), items.into_iter(), false)
    }

    /// Accepts no new tasks; the submitted ones still run. Then
    /// [`join`](Self::join).
    pub fn close(&self) {
        if !self
            .shared
            .closed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.shared.send(Cmd::Close);
        }
    }

    /// Waits until every submitted task has finished and the workers have
    /// exited.
    ///
    /// # Errors
    /// [`Error::is_misuse`] unless [`close`](Self::close) or
    /// [`terminate`](Self::terminate) came first (as in Python).
    pub fn join(&self) -> Result<(), Error> {
        if !self
            .shared
            .closed
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(Error::misuse(
                "Pool::join needs close() or terminate() first",
            ));
        }
        let handle = self
            .manager
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        Ok(())
    }

    /// `concurrent.futures`' `shutdown`: no new tasks; with
    /// `cancel_pending`, the tasks not yet started fail with
    /// [`Error::is_cancelled`]; with `wait`, returns once the rest have
    /// finished and the workers have exited.
    ///
    /// # Examples
    /// ```
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(ms));
    ///     ms
    /// }
    /// let pool = multiproc::Pool::new(1).unwrap();
    /// let handles: Vec<_> = (0..20).map(|_| pool.submit(nap, 50).unwrap()).collect();
    /// pool.shutdown(true, true);
    /// let cancelled = handles.into_iter().filter(|h| h.is_ready()).count();
    /// assert_eq!(cancelled, 20, "every task finished or was cancelled");
    /// ```
    pub fn shutdown(&self, wait: bool, cancel_pending: bool) {
        self.close();
        if cancel_pending {
            self.shared.send(Cmd::CancelPending);
        }
        if wait {
            let _ = self.join();
        }
    }

    /// Kills the workers now; unfinished tasks fail with
    /// [`Error::is_terminated`].
    pub fn terminate(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.send(Cmd::Terminate);
        let _ = self.join();
    }
}

/// How a whole-input call cuts its input.
#[derive(Debug, Clone, Copy)]
enum Chunking {
    /// As the caller said.
    Fixed(usize),
    /// Python's `len / (4 × processes)` (calls that must not wait).
    Formula,
    /// From a probe's measured task time, Python's size as the ceiling.
    Tuned,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test;
