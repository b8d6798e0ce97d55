//! [`PoolBuilder`]: a pool's options, and the start of its workers.

use super::manager::Manager;
use super::shared::{Config, Shared};
use super::worker::InitRun;
use super::{Pool, PoolProgress, progress, shared};
use crate::error::Error;
use crate::process::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// [`with_worker_state`](crate::with_worker_state). A worker whose initializer panics is
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
