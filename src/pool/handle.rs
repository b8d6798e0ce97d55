//! How results reach the caller: every pool call has a [`Call`] mailbox
//! that the manager thread delivers into; [`TaskHandle`] and
//! [`as_completed`] are the public faces of one-task calls.

use super::shared::{Cmd, Shared};
use super::table::split_outcomes;
use super::task::decode_outcomes;
use crate::error::{Error, Kind};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Something the manager delivers to a call.
pub(crate) enum Arrival {
    /// A chunk's results, still encoded.
    Chunk {
        first: usize,
        count: usize,
        pid: u32,
        /// Time the worker spent on the chunk (chunk-size tuning).
        busy_ns: u64,
        /// ... in the loop over its tasks (see `ResultHeader::run_ns`).
        run_ns: u64,
        /// The outcome table and the outcomes (see `ResultHeader`).
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
        /// The outcomes are bare results (see `task::Encoded`).
        plain: bool,
    },
    /// One task failed without a result (its worker died, it timed out,
    /// it was cancelled, its chunk could not run).
    Failed { index: usize, error: Error },
}

impl Arrival {
    /// Decodes, handing each task's result to `each` with its index.
    pub(crate) fn each<R: DeserializeOwned>(self, each: impl FnMut(usize, Result<R, Error>)) {
        self.into_sink(&mut Each(each));
    }

    /// Decodes into `sink`: a chunk of results that all returned in bulk
    /// (see [`Sink::run`]), anything else one by one.
    pub(crate) fn into_sink<R: DeserializeOwned>(self, sink: &mut impl Sink<R>) {
        match self {
            Arrival::Chunk {
                first,
                count,
                pid,
                body,
                fds,
                plain,
                ..
            } => match split_outcomes(&body) {
                Ok((table, outcomes)) => {
                    decode_outcomes(first, pid, outcomes, table, fds, plain, sink)
                }
                // The manager checked the table: this is a corrupt one.
                Err(why) => (first..first + count).for_each(|i| {
                    sink.one(i, Err(Error::new(Kind::Decode(why.clone())).in_task(i)))
                }),
            },
            Arrival::Failed { index, error } => sink.one(index, Err(error)),
        }
    }
}

/// Where a call's results go as they are decoded.
pub(crate) trait Sink<R> {
    /// Task `index`'s result.
    fn one(&mut self, index: usize, result: Result<R, Error>);

    /// The values of tasks `first..first + count`, all returned: `decode`
    /// appends them to the vector it is given, or leaves it as it was and
    /// says `false` (a value did not decode). `false` (nothing taken) sends
    /// them through [`one`](Self::one) instead, one by one. By default,
    /// into a vector of their own, then one by one; a sink that keeps
    /// results in order appends them where they belong.
    fn run(
        &mut self,
        first: usize,
        count: usize,
        decode: &mut dyn FnMut(&mut Vec<R>) -> bool,
    ) -> bool {
        let mut values = Vec::with_capacity(count);
        if !decode(&mut values) {
            return false;
        }
        for (i, v) in (first..).zip(values) {
            self.one(i, Ok(v));
        }
        true
    }
}

/// A closure as a [`Sink`].
struct Each<F>(F);

impl<R, F: FnMut(usize, Result<R, Error>)> Sink<R> for Each<F> {
    fn one(&mut self, index: usize, result: Result<R, Error>) {
        (self.0)(index, result);
    }
}

/// Wakes an [`as_completed`] iterator: which call (by its number there)
/// received something.
struct Listener {
    ready: Mutex<VecDeque<usize>>,
    cv: Condvar,
}

#[derive(Default)]
struct Mailbox {
    arrivals: VecDeque<Arrival>,
    /// Threads asleep on the condition variable (no wake-up call without).
    sleepers: usize,
    waker: Option<Waker>,
    listener: Option<(Arc<Listener>, usize)>,
}

/// The mailbox of one pool call.
#[derive(Default)]
pub(crate) struct Call {
    mailbox: Mutex<Mailbox>,
    /// The mailbox's length, readable without its lock.
    count: AtomicUsize,
    cv: Condvar,
    abandoned: AtomicBool,
    /// The last wait that slept was longer than [`LONG_WAIT`]: the next
    /// one does not watch first (see [`Call::take`]).
    long_waits: AtomicBool,
}

/// How long [`Call::take`] watches for an arrival before it sleeps.
const TAKE_SPIN: Duration = Duration::from_micros(50);
/// A sleep this long says the arrivals are far apart: watching for them
/// first is wasted (see [`Call::take`]). Well past `TAKE_SPIN`: a wake-up
/// alone can take tens of microseconds on a busy virtual machine, and a
/// call whose arrivals come every few microseconds must not stop watching
/// for that.
const LONG_WAIT: Duration = Duration::from_micros(250);

impl Call {
    fn lock(&self) -> MutexGuard<'_, Mailbox> {
        self.mailbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called by the manager.
    pub(crate) fn deliver(&self, a: Arrival) {
        let mut m = self.lock();
        m.arrivals.push_back(a);
        self.count.store(m.arrivals.len(), Ordering::Release);
        if let Some(w) = m.waker.take() {
            w.wake();
        }
        if let Some((l, n)) = &m.listener {
            l.ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(*n);
            l.cv.notify_one();
        }
        let sleepers = m.sleepers;
        drop(m);
        if sleepers > 0 {
            self.cv.notify_all();
        }
    }

    /// The next arrival, waiting until `deadline` (`None`: no limit).
    ///
    /// Watches the mailbox for a little while before it sleeps: results
    /// of tiny tasks come every few microseconds, and a sleeper costs the
    /// manager a wake-up call (a system call, and on a virtual machine an
    /// interrupt to another CPU) for each one.
    ///
    /// Adaptive: once a wait slept for [`LONG_WAIT`] or more (its results
    /// come a millisecond or more apart, as those of a `map`'s large chunks
    /// do), the next waits go straight to sleep, until one is short again. Watching for
    /// nothing, on a machine whose every CPU runs a worker, took the
    /// workers' time: a sixth of all the time a `map` of a million tiny
    /// tasks took on 2 cores.
    pub(crate) fn take(&self, deadline: Option<Instant>) -> Option<Arrival> {
        let watch = !self.long_waits.load(Ordering::Relaxed);
        let spin_until = Instant::now() + TAKE_SPIN;
        let mut turns = 0u32;
        while watch && self.count.load(Ordering::Acquire) == 0 {
            let now = Instant::now();
            if now >= spin_until || deadline.is_some_and(|d| now >= d) {
                break;
            }
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(8) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let mut m = self.lock();
        let mut slept: Option<Instant> = None;
        loop {
            if let Some(a) = m.arrivals.pop_front() {
                self.count.store(m.arrivals.len(), Ordering::Release);
                if let Some(since) = slept {
                    let long = since.elapsed() > LONG_WAIT;
                    self.long_waits.store(long, Ordering::Relaxed);
                }
                return Some(a);
            }
            slept.get_or_insert_with(Instant::now);
            m.sleepers += 1;
            match deadline {
                None => m = self.cv.wait(m).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        m.sleepers -= 1;
                        return None;
                    }
                    m = self
                        .cv
                        .wait_timeout(m, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            m.sleepers -= 1;
        }
    }

    /// Every arrival there is, waiting for at least one until `deadline`
    /// (empty: the deadline passed).
    pub(crate) fn take_all(&self, deadline: Option<Instant>) -> Vec<Arrival> {
        let Some(first) = self.take(deadline) else {
            return Vec::new();
        };
        let mut all = vec![first];
        let mut m = self.lock();
        all.extend(m.arrivals.drain(..));
        self.count.store(0, Ordering::Release);
        all
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Arrival> {
        let mut m = self.lock();
        match m.arrivals.pop_front() {
            Some(a) => {
                self.count.store(m.arrivals.len(), Ordering::Release);
                Poll::Ready(a)
            }
            None => {
                m.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn has_arrival(&self) -> bool {
        !self.lock().arrivals.is_empty()
    }

    /// The caller is gone: its chunks not yet dispatched are dropped.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }
}

/// The pending result of one task ([`Pool::apply_async`](crate::Pool::apply_async),
/// [`Pool::submit`](crate::Pool::submit)): Python's `AsyncResult` and
/// `concurrent.futures.Future`.
///
/// Wait for it with [`get`](Self::get) or [`get_timeout`](Self::get_timeout),
/// or `.await` it (it is a [`Future`], usable from any executor: the pool's
/// manager thread wakes it). [`cancel`](Self::cancel) stops the task, even
/// while it runs (its worker is killed and replaced).
///
/// Dropping the handle gives up on the result: a task not yet handed to a
/// worker is then not run at all (one already running finishes, its result
/// unread). Keep the handle to fire and forget a task that must run.
///
/// # Examples
/// ```
/// use multiproc::Pool;
///
/// fn double(x: u32) -> u32 {
///     x * 2
/// }
///
/// let pool = Pool::new(2).unwrap();
/// let mut handle = pool.submit(double, 21).unwrap();
/// assert_eq!(handle.get().unwrap(), 42);
/// ```
#[must_use = "dropping the handle may drop the task before it runs"]
pub struct TaskHandle<R> {
    call: Arc<Call>,
    pool: Arc<Shared>,
    chunk: u64,
    done: Option<Result<R, Error>>,
    taken: bool,
    _r: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> TaskHandle<R> {
    pub(crate) fn new(call: Arc<Call>, pool: Arc<Shared>, chunk: u64) -> Self {
        TaskHandle {
            call,
            pool,
            chunk,
            done: None,
            taken: false,
            _r: PhantomData,
        }
    }

    fn settle(&mut self, a: Arrival) {
        let mut first = None;
        a.each::<R>(|_, r| {
            first.get_or_insert(r);
        });
        self.done =
            Some(first.unwrap_or_else(|| {
                Err(Error::new(Kind::Decode("a result without its task".into())))
            }));
    }

    fn finish(&mut self) -> Result<R, Error> {
        self.taken = true;
        self.done
            .take()
            .unwrap_or_else(|| Err(Error::new(Kind::AlreadyJoined)))
    }

    /// Waits for the task's result.
    ///
    /// # Errors
    /// The task's own failure, with its [`task_index`](Error::task_index):
    /// it panicked ([`Error::is_panic`], message and location included), its
    /// worker died ([`Error::signal`] / [`Error::exit_code`] and
    /// [`Error::pid`]), it timed out ([`Error::is_timeout`]), it was
    /// cancelled ([`Error::is_cancelled`]) or its result could not be
    /// decoded ([`Error::is_decode`]). [`Error::is_already_joined`] if the
    /// result was already taken.
    pub fn get(&mut self) -> Result<R, Error> {
        if self.taken {
            return Err(Error::new(Kind::AlreadyJoined));
        }
        if self.done.is_none() {
            if let Some(a) = self.call.take(None) {
                self.settle(a);
            }
        }
        self.finish()
    }

    /// [`get`](Self::get), waiting at most `timeout`; on
    /// [`Error::is_timeout`] the handle can be waited on again.
    ///
    /// # Errors
    /// As [`get`](Self::get), plus the timeout.
    pub fn get_timeout(&mut self, timeout: Duration) -> Result<R, Error> {
        if self.taken {
            return Err(Error::new(Kind::AlreadyJoined));
        }
        if self.done.is_none() {
            match self.call.take(Instant::now().checked_add(timeout)) {
                Some(a) => self.settle(a),
                None => return Err(Error::timeout()),
            }
        }
        self.finish()
    }

    /// Whether the result is there (a [`get`](Self::get) would not wait).
    pub fn is_ready(&self) -> bool {
        self.done.is_some() || self.call.has_arrival()
    }

    /// Cancels the task: dropped if it has not started, its worker killed
    /// (and replaced) if it is running. Returns `false` if it had already
    /// finished; after `true`, [`get`](Self::get) returns an
    /// [`Error::is_cancelled`] error.
    pub fn cancel(&self) -> bool {
        if self.done.is_some() || self.taken {
            return false;
        }
        let (tx, rx) = mpsc::channel();
        self.pool.send(Cmd::Cancel(self.chunk, tx));
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or(false)
    }
}

// The handle never relies on its own address: the result is only moved.
impl<R> Unpin for TaskHandle<R> {}

impl<R: DeserializeOwned> Future for TaskHandle<R> {
    type Output = Result<R, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.taken {
            return Poll::Ready(Err(Error::new(Kind::AlreadyJoined)));
        }
        if this.done.is_none() {
            match this.call.poll_take(cx) {
                Poll::Ready(a) => this.settle(a),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(this.finish())
    }
}

impl<R> Drop for TaskHandle<R> {
    fn drop(&mut self) {
        self.call.abandon();
    }
}

impl<R> fmt::Debug for TaskHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("task", &self.chunk)
            .field("ready", &(self.done.is_some() || self.call.has_arrival()))
            .finish()
    }
}

/// Yields `handles` as their tasks finish, in the order they finish
/// (`concurrent.futures.as_completed`); each yielded handle's
/// [`get`](TaskHandle::get) returns at once.
///
/// # Examples
/// ```
/// use multiproc::{Pool, as_completed};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2).unwrap();
/// let handles: Vec<_> = (1..=4).map(|x| pool.submit(square, x).unwrap()).collect();
/// let mut sum = 0;
/// for mut h in as_completed(handles) {
///     sum += h.get().unwrap();
/// }
/// assert_eq!(sum, 1 + 4 + 9 + 16);
/// ```
pub fn as_completed<R: DeserializeOwned>(
    handles: impl IntoIterator<Item = TaskHandle<R>>,
) -> AsCompleted<R> {
    let listener = Arc::new(Listener {
        ready: Mutex::new(VecDeque::new()),
        cv: Condvar::new(),
    });
    let handles: Vec<Option<TaskHandle<R>>> = handles.into_iter().map(Some).collect();
    for (n, h) in handles.iter().enumerate() {
        let Some(h) = h else { continue };
        let mut m = h.call.lock();
        m.listener = Some((Arc::clone(&listener), n));
        if !m.arrivals.is_empty() || h.done.is_some() {
            listener
                .ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(n);
        }
    }
    let left = handles.len();
    AsCompleted {
        listener,
        handles,
        left,
    }
}

/// The iterator of [`as_completed`].
pub struct AsCompleted<R> {
    listener: Arc<Listener>,
    handles: Vec<Option<TaskHandle<R>>>,
    left: usize,
}

impl<R: DeserializeOwned> Iterator for AsCompleted<R> {
    type Item = TaskHandle<R>;

    fn next(&mut self) -> Option<TaskHandle<R>> {
        if self.left == 0 {
            return None;
        }
        let mut ready = self
            .listener
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            while let Some(n) = ready.pop_front() {
                if let Some(h) = self.handles.get_mut(n).and_then(Option::take) {
                    self.left -= 1;
                    return Some(h);
                }
            }
            ready = self
                .listener
                .cv
                .wait(ready)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl<R> fmt::Debug for AsCompleted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("left", &self.left)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Arrival, Call};
    use crate::error::Error;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    fn failed(index: usize) -> Arrival {
        Arrival::Failed {
            index,
            error: Error::timeout(),
        }
    }

    /// A wait that slept long stops the watching before the next waits,
    /// which still get their arrivals (and one waiting at once changes
    /// nothing).
    #[test]
    fn a_long_wait_turns_the_watch_off() {
        let call = Arc::new(Call::default());
        assert!(!call.long_waits.load(Ordering::Relaxed));
        let late = Arc::clone(&call);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            late.deliver(failed(1));
        });
        assert!(matches!(
            call.take(None),
            Some(Arrival::Failed { index: 1, .. })
        ));
        t.join().unwrap();
        assert!(call.long_waits.load(Ordering::Relaxed), "a 30 ms wait");
        call.deliver(failed(2));
        assert!(matches!(
            call.take(None),
            Some(Arrival::Failed { index: 2, .. })
        ));
        assert!(
            call.long_waits.load(Ordering::Relaxed),
            "no sleep, no change"
        );
        // Unwatched, a deadline is still kept.
        let started = Instant::now();
        assert!(
            call.take(Some(started + Duration::from_millis(20)))
                .is_none()
        );
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
}
