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
//! at most two chunks in each worker's queue, and each worker writes the
//! task it is running to a shared progress slot: when a worker dies (any
//! signal, any exit, mid-task or mid-send), the manager first takes every
//! result the worker had sent, then fails the one task the slot names,
//! re-queues the rest, and starts a replacement. Task timeouts and
//! cancellation are the same path with a kill in front.

mod handle;
mod manager;
mod map;
mod progress;
mod shared;
mod task;
mod worker;

pub use handle::{AsCompleted, TaskHandle, as_completed};
pub use map::{Imap, MapHandle};
pub use progress::PoolProgress;
pub use worker::with_worker_state;

use crate::error::Error;
use crate::process::StartMethod;
use handle::Call;
use manager::Manager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Cmd, Config, Shared};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use task::RunSpec;
use worker::InitRun;

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
        chunksize: Option<usize>,
    ) -> Result<MapHandle<R>, Error> {
        self.check_open()?;
        let total = items.len();
        let chunk = chunksize
            .unwrap_or_else(|| map::default_chunksize(total, self.processes()))
            .max(1);
        let call = Arc::new(Call::default());
        for (n, part) in items.chunks(chunk).enumerate() {
            map::submit_chunk(&self.shared, &call, run, n * chunk, part)?;
        }
        Ok(MapHandle {
            call,
            total,
            _r: PhantomData,
        })
    }

    /// Applies `f` to every item, in parallel; the results in input order.
    /// The input is collected first (as in Python) and cut into
    /// `len / (4 × processes)`-task chunks.
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
        self.all(RunSpec::unary(f), items.into_iter().collect(), None)?
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
            Some(chunksize),
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
        self.all(RunSpec::unary(f), items.into_iter().collect(), None)
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
        self.all(RunSpec::binary(f), items.into_iter().collect(), None)?
            .get()
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

    /// Kills the workers now; unfinished tasks fail.
    pub fn terminate(&self) {
        self.shared
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.shared.send(Cmd::Terminate);
        let _ = self.join();
    }
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

/// Options of a [`Pool`] ([`Pool::builder`]).
///
/// # Examples
/// ```
/// use multiproc::{Pool, StartMethod};
/// use std::time::Duration;
///
/// fn slow(ms: u64) -> u64 {
///     std::thread::sleep(Duration::from_millis(ms));
///     ms
/// }
///
/// let pool = Pool::builder()
///     .processes(2)
///     .start_method(StartMethod::Spawn)
///     .max_tasks_per_child(10)
///     .task_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap();
/// assert_eq!(pool.apply(slow, 1).unwrap(), 1);
/// let err = pool.apply(slow, 5_000).unwrap_err();
/// assert!(err.is_timeout());
/// ```
#[derive(Default)]
pub struct PoolBuilder {
    processes: Option<usize>,
    method: StartMethod,
    max_tasks: Option<u64>,
    task_timeout: Option<Duration>,
    init: Option<Result<shared::Init, Error>>,
    progress: Option<progress::Hook>,
}

impl PoolBuilder {
    /// The number of workers (default: [`cpu_count()`](crate::cpu_count)).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// How workers are started: [`StartMethod::ForkServer`] (default) or
    /// [`StartMethod::Spawn`]. `Fork` is refused by
    /// [`build`](Self::build): workers are started from the pool's own
    /// thread, and forking a threaded process is unsound.
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Replaces each worker after it has run `n` chunks (Python's
    /// `maxtasksperchild`), with no task lost.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks = Some(n.max(1));
        self
    }

    /// Kills a worker whose task runs longer than `timeout`: that task
    /// fails with [`Error::is_timeout`], the worker is replaced.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// Runs `f(arg)` in each worker as it starts; its result is the
    /// worker's state, reachable from tasks through
    /// [`with_worker_state`]. A worker whose initializer panics is
    /// replaced; after three in a row the pool gives up and every task
    /// fails with the panic.
    pub fn initializer<A, S>(mut self, f: fn(A) -> S, arg: A) -> Self
    where
        A: Serialize + DeserializeOwned,
        S: 'static,
    {
        self.init = Some(
            crate::wire::encode(&arg)
                .map(|(bytes, fds)| (InitRun::of(f), bytes, fds))
                .map_err(Error::from),
        );
        self
    }

    /// Calls `hook` from the pool's thread after each batch of finished
    /// tasks, with the counts so far and each worker's busy time. A pool
    /// without a hook counts nothing it would not count anyway.
    ///
    /// # Examples
    /// ```
    /// use multiproc::{Pool, PoolProgress};
    /// use std::sync::{Arc, Mutex};
    ///
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    ///
    /// let last = Arc::new(Mutex::new(PoolProgress::default()));
    /// let seen = Arc::clone(&last);
    /// let pool = Pool::builder()
    ///     .processes(2)
    ///     .on_progress(move |p| *seen.lock().unwrap() = p.clone())
    ///     .build()
    ///     .unwrap();
    /// pool.map(inc, 0..100).unwrap();
    /// pool.close();
    /// pool.join().unwrap(); // the hook has run for the last batch
    /// let p = last.lock().unwrap();
    /// assert_eq!((p.completed(), p.submitted()), (100, 100));
    /// assert_eq!(p.worker_busy().len(), 2);
    /// ```
    pub fn on_progress(mut self, hook: impl Fn(&PoolProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(hook));
        self
    }

    /// Shows an `indicatif` progress bar of the pool's tasks on the
    /// terminal (cargo feature `progress`).
    #[cfg(feature = "progress")]
    pub fn progress_bar(mut self) -> Self {
        self.progress = Some(progress::bar_hook());
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    /// [`Error::is_misuse`] for 0 processes or the `Fork` start method; the
    /// start error if a worker cannot be started; [`Error::is_decode`] if
    /// the initializer's argument cannot be encoded.
    pub fn build(self) -> Result<Pool, Error> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(Error::misuse("a pool needs at least one process"));
        }
        if self.method == StartMethod::Fork {
            return Err(Error::misuse(
                "a pool cannot use StartMethod::Fork: its workers are started from a \
                 thread; use ForkServer or Spawn",
            ));
        }
        let init = self.init.transpose()?;
        let shared = Arc::new(Shared::new(processes)?);
        let config = Config {
            processes,
            method: self.method,
            max_tasks: self.max_tasks,
            task_timeout: self.task_timeout,
            init,
            progress: self.progress,
        };
        let manager = Manager::start(Arc::clone(&shared), config)?;
        let handle = std::thread::Builder::new()
            .name("multiproc-pool".into())
            .spawn(move || manager.run())
            .map_err(|e| Error::io("cannot start the pool's thread", e))?;
        Ok(Pool {
            shared,
            manager: Mutex::new(Some(handle)),
        })
    }
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("start_method", &self.method)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod test;
