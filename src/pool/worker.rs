//! The worker side: a child process that runs the initializer, then chunks
//! from its own task queue until told to exit, writing what it is doing to
//! a shared progress slot that the pool reads when the worker dies or a
//! task overstays its timeout.

use super::table::put_table;
use super::task::{Marks, ResultHeader, ToWorker};
use crate::channel::Queue;
use crate::shared::RawArray;
use crate::wire::Fd;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cell::RefCell;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

/// Words per worker in the progress array: the progress proper (4), then
/// the ids of chunks cancelled while waiting in the worker's queue.
pub(crate) const PROGRESS_WORDS: usize = 4 + CANCEL_SLOTS;
/// The most chunks a worker has in flight (one running, the rest queued).
pub(crate) const QUEUE_MAX: usize = 64;
/// How many queued chunks of one worker can be cancelled at once: every
/// one that can be queued behind the running one, so that a cancelled
/// task never runs.
const CANCEL_SLOTS: usize = QUEUE_MAX - 1;
/// The `failed` text of a chunk the worker skipped, cancelled.
pub(crate) const SKIPPED: &str = "cancelled";
/// `chunk` while the worker runs its initializer.
pub(crate) const STARTING: u64 = u64::MAX;
/// `chunk` while the worker is between chunks.
pub(crate) const IDLE: u64 = 0;

/// What a worker is given at its start.
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerSetup {
    pub(crate) slot: u32,
    pub(crate) tasks: Queue<()>,
    pub(crate) results: Queue<()>,
    pub(crate) progress: RawArray<u64>,
    pub(crate) init: Option<InitSpec>,
}

/// The initializer: a function and its encoded argument.
#[derive(Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub(crate) run: InitRun,
    pub(crate) arg: Vec<u8>,
    pub(crate) fds: Vec<Fd>,
}

/// `fn(A) -> S` as offsets, run by [`run_init`].
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(crate) struct InitRun {
    runner: i64,
    function: i64,
    signature: u64,
}

type InitRunner = fn(usize, u64, &[u8], Vec<OwnedFd>) -> Result<Box<dyn Any>, String>;

impl InitRun {
    pub(crate) fn of<A: DeserializeOwned, S: 'static>(f: fn(A) -> S) -> InitRun {
        let runner: InitRunner = run_init::<A, S>;
        InitRun {
            runner: crate::process::offset_of(runner as usize),
            function: crate::process::offset_of(f as usize),
            signature: crate::process::signature::<A, S>(),
        }
    }
}

fn run_init<A: DeserializeOwned, S: 'static>(
    function: usize,
    sig: u64,
    arg: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<Box<dyn Any>, String> {
    if sig != crate::process::signature::<A, S>() {
        return Err("type signature mismatch for the initializer".into());
    }
    let arg: A = crate::wire::decode(arg, fds)
        .map_err(|e| format!("cannot decode the initializer's argument: {e}"))?;
    // SAFETY: the signature hash matched: `function` is the `fn(A) -> S`
    // the pool took the offset of, in this same executable.
    let f = unsafe { std::mem::transmute::<usize, fn(A) -> S>(function) };
    Ok(Box::new(f(arg)))
}

thread_local! {
    /// What the initializer returned, for the tasks.
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Runs `f` on this worker's state: the value its pool's initializer
/// returned (see [`PoolBuilder::initializer`](crate::PoolBuilder::initializer)).
/// `None` outside a pool worker, without an initializer, or if the state is
/// not an `S`.
///
/// # Examples
/// ```
/// use multiproc::{Pool, with_worker_state};
///
/// fn connect(base: u64) -> u64 {
///     base // a real initializer opens a connection, loads a model...
/// }
///
/// fn task(x: u64) -> u64 {
///     with_worker_state(|base: &mut u64| *base + x).unwrap()
/// }
///
/// let pool = Pool::builder().processes(2).initializer(connect, 100).build().unwrap();
/// assert_eq!(pool.map(task, [1, 2]).unwrap(), [101, 102]);
/// ```
pub fn with_worker_state<S: 'static, T>(f: impl FnOnce(&mut S) -> T) -> Option<T> {
    STATE.with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        let state = s.as_mut()?.downcast_mut::<S>()?;
        Some(f(state))
    })
}

/// One worker's progress words: `[seq, chunk, position, started_ns]`, a
/// single-writer sequence lock (odd `seq`: being written).
pub(crate) struct Progress<'a> {
    words: &'a [std::sync::atomic::AtomicU64],
}

impl<'a> Progress<'a> {
    pub(crate) fn of(array: &'a RawArray<u64>, slot: usize) -> Option<Progress<'a>> {
        let words = array
            .atomics()
            .get(slot * PROGRESS_WORDS..(slot + 1) * PROGRESS_WORDS)?;
        Some(Progress { words })
    }

    /// The word of the position in the current chunk: moved by one store,
    /// no clock, for pools that do not time their tasks (see
    /// [`Marks`](super::task::Marks)).
    pub(crate) fn position(&self) -> &'a std::sync::atomic::AtomicU64 {
        &self.words[2]
    }

    pub(crate) fn set(&self, chunk: u64, pos: u64) {
        let seq = self.words[0].load(Relaxed);
        self.words[0].store(seq.wrapping_add(1), Relaxed);
        std::sync::atomic::fence(Release);
        self.words[1].store(chunk, Relaxed);
        self.words[2].store(pos, Relaxed);
        self.words[3].store(crate::sys::monotonic_ns(), Relaxed);
        self.words[0].store(seq.wrapping_add(2), Release);
    }

    /// Marks `chunk` cancelled for this worker (the pool's side); `false`
    /// if every cancel slot is taken.
    pub(crate) fn cancel(&self, chunk: u64) -> bool {
        let marked = self.words[4..]
            .iter()
            .any(|w| w.compare_exchange(0, chunk, SeqCst, SeqCst).is_ok());
        // Pairs with the worker's fence: either it sees the mark, or the
        // pool sees the chunk running in the progress words.
        std::sync::atomic::fence(SeqCst);
        marked
    }

    /// Forgets the cancellation of `chunk` (`0`: of every chunk).
    pub(crate) fn uncancel(&self, chunk: u64) {
        for w in &self.words[4..] {
            if chunk == 0 {
                w.store(0, SeqCst);
            } else {
                let _ = w.compare_exchange(chunk, 0, SeqCst, SeqCst);
            }
        }
    }

    /// Whether the pool cancelled `chunk` (the worker's side, after saying
    /// it starts `chunk`).
    fn is_cancelled(&self, chunk: u64) -> bool {
        std::sync::atomic::fence(SeqCst);
        self.words[4..].iter().any(|w| w.load(SeqCst) == chunk)
    }

    /// `(chunk, position, started_ns)`, consistent; `IDLE` if the writer
    /// died in the middle of an update (nothing can be blamed then).
    pub(crate) fn read(&self) -> (u64, u64, u64) {
        for _ in 0..100 {
            let seq = self.words[0].load(Acquire);
            let v = (
                self.words[1].load(Relaxed),
                self.words[2].load(Relaxed),
                self.words[3].load(Relaxed),
            );
            std::sync::atomic::fence(Acquire);
            if seq.is_multiple_of(2) && self.words[0].load(Relaxed) == seq {
                return v;
            }
            std::hint::spin_loop();
        }
        (IDLE, 0, 0)
    }
}

/// The worker process's function.
pub(crate) fn worker_main(mut setup: WorkerSetup) {
    let Some(progress) = Progress::of(&setup.progress, setup.slot as usize) else {
        return;
    };
    progress.set(STARTING, 0);
    if let Some(init) = setup.init.take() {
        let run = init.run;
        let fds = init.fds.into_iter().map(Fd::into_owned_fd).collect();
        let address = crate::process::address_at(run.runner);
        // SAFETY: the offset was taken by the pool from a real `InitRunner`
        // of this executable; the runner checks the signature itself.
        let runner = unsafe { std::mem::transmute::<usize, InitRunner>(address) };
        match runner(
            crate::process::address_at(run.function),
            run.signature,
            &init.arg,
            fds,
        ) {
            Ok(state) => STATE.with(|s| *s.borrow_mut() = Some(state)),
            // Reported to the pool as this worker's start failure.
            Err(why) => panic!("the pool's initializer could not run: {why}"),
        }
    }
    progress.set(IDLE, 0);
    let pid = std::process::id();
    // Each message is copied out of the queue before its chunk runs: the
    // queue's read lock is held only for the copy, so that the manager can
    // always add to the queue (growing it takes that lock), however long a
    // task runs.
    let mut message = Vec::new();
    let mut reply = Vec::new();
    loop {
        let got = setup.tasks.get_raw(None, |bytes, fds| {
            message.clear();
            message.extend_from_slice(bytes);
            fds
        });
        let Ok(fds) = got else {
            return;
        };
        if !run_message(&setup, &progress, pid, (&message, fds), &mut reply) {
            return;
        }
    }
}

/// Runs the chunk of one task message and sends its results; `false` when
/// the worker is to stop (an exit message, a broken queue).
fn run_message(
    setup: &WorkerSetup,
    progress: &Progress<'_>,
    pid: u32,
    (bytes, fds): (&[u8], Vec<OwnedFd>),
    reply: &mut Vec<u8>,
) -> bool {
    let (msg, rest) = match crate::wire::take_plain::<ToWorker>(bytes) {
        Ok(x) => x,
        Err(_) => return false,
    };
    let header = match msg {
        ToWorker::Exit => return false,
        ToWorker::Run(h) => h,
    };
    let started = Instant::now();
    let chunk = header.chunk;
    // Say which chunk starts, then look whether it was cancelled meanwhile
    // (the pool marks, then looks at this: one of the two sees the other).
    progress.set(chunk, first_to_run(&header.skip));
    let ran = if progress.is_cancelled(chunk) {
        Err(SKIPPED.to_owned())
    } else {
        let mut stamp = |pos| progress.set(chunk, u64::from(pos));
        let mut marks = Marks {
            position: progress.position(),
            timed: match header.timed {
                true => Some(&mut stamp),
                false => None,
            },
        };
        header.run.run(rest, fds, &header.skip, &mut marks)
    };
    progress.set(IDLE, 0);
    let (body, fds, ends, plain, run_ns, failed) = match ran {
        Ok(e) => (e.bytes, e.fds, e.ends, e.plain, e.run_ns, None),
        Err(why) => (Vec::new(), Vec::new(), Vec::new(), false, 0, Some(why)),
    };
    let ok = failed.is_none();
    let head = ResultHeader {
        chunk,
        slot: setup.slot,
        pid,
        busy_ns: started.elapsed().as_nanos() as u64,
        run_ns,
        failed,
        plain,
    };
    // The reply is built in a buffer kept from one chunk to the next (the
    // size of the last one, at most `KEEP_REPLY`).
    reply.clear();
    if crate::wire::encode_plain_into(&head, reply).is_err() {
        return false;
    }
    if ok {
        reply.reserve(9 + ends.len() + body.len());
        put_table(reply, &ends);
        reply.extend_from_slice(&body);
    }
    let sent = setup.results.put_raw(reply, &fds).is_ok();
    if reply.capacity() > KEEP_REPLY {
        *reply = Vec::new();
    }
    sent
}

/// A reply buffer larger than this is not kept for the next chunk.
const KEEP_REPLY: usize = 1 << 20;

/// The first position of a chunk not to skip.
fn first_to_run(skip: &[u32]) -> u64 {
    (0u32..).find(|p| !skip.contains(p)).map_or(0, u64::from)
}
