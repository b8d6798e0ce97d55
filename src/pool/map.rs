//! Cutting inputs into chunks and gathering results: what `map`, `imap`,
//! `imap_unordered` and `map_async` share.

use super::gather::gather;
use super::handle::{Arrival, Call};
use super::shared::{Chunk, Cmd, Shared};
use super::task::RunSpec;
use crate::error::Error;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Chunk duration the automatic chunk size aims at: long enough that the
/// per-message cost (tens of microseconds) is noise.
const TARGET_CHUNK: Duration = Duration::from_millis(2);
/// Tasks an `imap` keeps in flight at least, whatever its chunk size.
const MIN_IN_FLIGHT: usize = 256;
/// ... and at most, for the tiniest tasks: as many as take
/// [`IN_FLIGHT_WORK`] by their measured time. A task's trip through the
/// manager and a worker and back takes far longer than a tiny task runs,
/// so one-task chunks need many in flight (on 2 cores, `imap` of a
/// trivial function with chunks of 1 went from ~0.6 to ~1.1 million tasks
/// a second at 1,024; 2,048 was no better).
const MAX_IN_FLIGHT: usize = 1024;
/// See [`MAX_IN_FLIGHT`].
const IN_FLIGHT_WORK: Duration = Duration::from_millis(2);
/// The arguments' bytes that the tasks in flight beyond `MIN_IN_FLIGHT`
/// may hold.
const IN_FLIGHT_BYTES: u64 = 4 << 20;
/// The automatic chunk size never grows past this.
const MAX_AUTO_CHUNK: usize = 1 << 14;

/// Tasks an `imap` keeps in flight at least, when one task took `task_ns`
/// (`None`: not measured yet) and its arguments `arg_bytes` on average:
/// beyond `MIN_IN_FLIGHT`, only as many as hold [`IN_FLIGHT_BYTES`].
fn in_flight_tasks(task_ns: Option<u64>, arg_bytes: u64) -> usize {
    task_ns.map_or(MIN_IN_FLIGHT, |ns| {
        let fits = IN_FLIGHT_WORK.as_nanos() as u64 / ns.max(1);
        let held = IN_FLIGHT_BYTES / arg_bytes.max(1);
        (fits.min(held).min(MAX_IN_FLIGHT as u64) as usize).max(MIN_IN_FLIGHT)
    })
}

/// Encodes `items` (tasks `first..`) as one chunk and submits it.
pub(crate) fn submit_chunk<A: Serialize>(
    shared: &Shared,
    call: &Arc<Call>,
    run: RunSpec,
    first: usize,
    items: &[A],
) -> Result<u64, Error> {
    let chunk = chunk_of(shared, call, run, first, items)?;
    let id = chunk.id;
    shared.send(Cmd::Submit(chunk));
    Ok(id)
}

/// Chunks made one by one and handed to the manager in batches of
/// [`Batch::SIZE`]: one lock of its inbox (and at most one wake-up) per
/// batch, not per chunk. Whatever is left is sent on drop. Only for inputs
/// collected in advance (`map`): an `imap` sends each chunk as it is made.
pub(crate) struct Batch<'a> {
    shared: &'a Shared,
    cmds: Vec<Cmd>,
    /// The arguments' bytes in `cmds`.
    bytes: usize,
}

impl<'a> Batch<'a> {
    /// Chunks in a batch at most.
    const SIZE: usize = 64;
    /// A batch holding this many bytes of arguments goes at once: large
    /// chunks are worth a lock each, and the workers are not to wait while
    /// the caller encodes 64 of them (for a million tiny tasks cut in 50
    /// chunks, the whole input was encoded before any worker started).
    const BYTES: usize = 32 << 10;

    pub(crate) fn new(shared: &'a Shared) -> Self {
        Batch {
            shared,
            cmds: Vec::new(),
            bytes: 0,
        }
    }

    /// As [`submit_chunk`], sent with the batch.
    pub(crate) fn submit<A: Serialize>(
        &mut self,
        call: &Arc<Call>,
        run: RunSpec,
        first: usize,
        items: &[A],
    ) -> Result<(), Error> {
        let chunk = chunk_of(self.shared, call, run, first, items)?;
        self.bytes += chunk.args.len();
        self.cmds.push(Cmd::Submit(chunk));
        if self.cmds.len() >= Self::SIZE || self.bytes >= Self::BYTES {
            self.shared.send_all(&mut self.cmds);
            self.bytes = 0;
        }
        Ok(())
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.shared.send_all(&mut self.cmds);
    }
}

fn chunk_of<A: Serialize>(
    shared: &Shared,
    call: &Arc<Call>,
    run: RunSpec,
    first: usize,
    items: &[A],
) -> Result<Chunk, Error> {
    // The results come back in this buffer: room for small ones saves the
    // manager a reallocation of our memory. One allocation (up to 1 MiB)
    // when the arguments take about their in-memory size or less.
    let guess = (8 + std::mem::size_of_val(items)).min(1 << 20) + RESULT_ROOM;
    let (mut args, fds) = crate::wire::encode_into(items, Vec::with_capacity(guess))?;
    if args.capacity() > 2 * (args.len() + RESULT_ROOM) {
        // Far smaller encoded than in memory (small integers, `None`s):
        // what stays in flight is what was encoded.
        args.shrink_to(args.len() + RESULT_ROOM);
    }
    args.reserve(RESULT_ROOM);
    Ok(Chunk {
        id: shared.next_id(),
        call: Arc::clone(call),
        first,
        count: items.len(),
        run,
        args,
        fds,
        skip: Vec::new(),
        retries: 0,
        cancelled: false,
        done: false,
        marked: false,
    })
}

/// Spare bytes in a chunk's argument buffer, for its results.
pub(crate) const RESULT_ROOM: usize = 64;

/// Python's default chunk size for `n` tasks over `workers` processes.
pub(crate) fn default_chunksize(n: usize, workers: usize) -> usize {
    n.div_ceil(workers.max(1) * 4).max(1)
}

/// The chunk size that makes a chunk take about [`TARGET_CHUNK`], from
/// `count` tasks that took `run_ns`, within `floor..=ceiling`.
pub(crate) fn tuned_chunksize(count: usize, run_ns: u64, floor: usize, ceiling: usize) -> usize {
    let per_task = (run_ns / count.max(1) as u64).max(1);
    let fits = (TARGET_CHUNK.as_nanos() as u64 / per_task) as usize;
    fits.max(floor).min(ceiling).max(1)
}

/// The smallest tuned chunk for `n` tasks over `workers` processes: at
/// most [`CHUNKS_PER_WORKER`] chunks each. More balance nothing, and a
/// one-task probe overestimates a task of nanoseconds (the clock's cost
/// and cold caches in one reading) by ten times or more.
pub(crate) fn min_chunksize(n: usize, workers: usize) -> usize {
    n.div_ceil(workers.max(1) * CHUNKS_PER_WORKER).max(1)
}

/// See [`min_chunksize`].
const CHUNKS_PER_WORKER: usize = 32;

/// The lazy iterator of [`Pool::imap`](crate::Pool::imap) and
/// [`Pool::imap_unordered`](crate::Pool::imap_unordered): one `Result` per
/// task.
///
/// It pulls from its input only as results are consumed (a bounded number
/// of chunks is in flight: `8 × processes + 2` chunks, and at least 256
/// tasks, or up to 1,024 when tasks take microseconds, as many as take
/// about 2 ms by their measured time and hold 4 MiB of arguments), so an
/// endless input works; dropping it drops
/// the chunks not yet started. The chunk size is automatic (starting at
/// one task and growing until a chunk takes about 2 ms) unless set with
/// [`chunksize`](Self::chunksize) before the first `next`.
pub struct Imap<'p, I: Iterator, R> {
    shared: &'p Shared,
    call: Arc<Call>,
    run: RunSpec,
    input: I,
    exhausted: bool,
    /// Tasks submitted so far (the next task's index).
    submitted: usize,
    received: usize,
    /// Results handed to the consumer: what is submitted beyond them
    /// (running, or received early and buffered) is bounded.
    yielded: usize,
    /// Chunks in flight allowed.
    window: usize,
    /// The last measured run time of one task (ns).
    task_ns: Option<u64>,
    /// The encoded arguments' bytes submitted so far.
    arg_bytes: u64,
    chunk: usize,
    fixed_chunk: bool,
    ordered: bool,
    /// Results received before their turn: slot `k` holds task
    /// `next_out + k` (bounded, as what is in flight is).
    ahead: VecDeque<Option<Result<R, Error>>>,
    ready: VecDeque<Result<R, Error>>,
    next_out: usize,
    _r: PhantomData<fn() -> R>,
}

impl<'p, I, R> Imap<'p, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    pub(crate) fn new(shared: &'p Shared, run: RunSpec, input: I, ordered: bool) -> Self {
        Imap {
            window: shared.processes * 8 + 2,
            task_ns: None,
            arg_bytes: 0,
            shared,
            call: Arc::new(Call::default()),
            run,
            input,
            exhausted: false,
            submitted: 0,
            received: 0,
            yielded: 0,
            chunk: 1,
            fixed_chunk: false,
            ordered,
            ahead: VecDeque::new(),
            ready: VecDeque::new(),
            next_out: 0,
            _r: PhantomData,
        }
    }

    /// Sets the number of tasks per chunk (Python's `chunksize`) instead of
    /// the automatic size.
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self.fixed_chunk = true;
        self
    }

    fn fill(&mut self) {
        // In flight: `window` chunks, and never fewer than `MIN_IN_FLIGHT`
        // tasks (one-task chunks would otherwise leave workers waiting), or
        // for tiny tasks `IN_FLIGHT_WORK` of them up to `MAX_IN_FLIGHT`.
        let arg_bytes = self.arg_bytes / self.submitted.max(1) as u64;
        let limit = (self.window * self.chunk).max(in_flight_tasks(self.task_ns, arg_bytes));
        while !self.exhausted && self.submitted - self.yielded < limit {
            let items: Vec<I::Item> = self.input.by_ref().take(self.chunk).collect();
            if items.len() < self.chunk {
                self.exhausted = true;
            }
            if items.is_empty() {
                break;
            }
            let first = self.submitted;
            let n = items.len();
            self.submitted += n;
            // Sent at once, not batched: pulling the next item may block,
            // on an input that waits for this very task's effects.
            let made = chunk_of(self.shared, &self.call, self.run, first, &items);
            let sent = made.map(|chunk| {
                self.arg_bytes += chunk.args.len() as u64;
                self.shared.send(Cmd::Submit(chunk));
            });
            if let Err(e) = sent {
                // Unencodable arguments: each task of the chunk fails.
                let why = e.to_string();
                for i in first..first + n {
                    self.call.deliver(Arrival::Failed {
                        index: i,
                        error: Error::new(crate::error::Kind::Decode(why.clone())).in_task(i),
                    });
                }
            }
        }
    }

    fn tune(&mut self, count: usize, busy_ns: u64) {
        if count == 0 {
            return;
        }
        let per_task = (busy_ns / count as u64).max(1);
        self.task_ns = Some(per_task);
        if self.fixed_chunk {
            return;
        }
        let fits = (TARGET_CHUNK.as_nanos() as u64 / per_task) as usize;
        // Grow at most fourfold per observation; never shrink below 1.
        self.chunk = fits.clamp(1, (self.chunk * 4).min(MAX_AUTO_CHUNK));
    }

    /// Takes every result there is (waiting for at least one).
    fn receive(&mut self) {
        for a in self.call.take_all(None) {
            if let Arrival::Chunk { count, busy_ns, .. } = &a {
                self.tune(*count, *busy_ns);
            }
            let (ordered, ahead, ready) = (self.ordered, &mut self.ahead, &mut self.ready);
            let (next_out, submitted) = (self.next_out, self.submitted);
            let mut n = 0;
            a.each::<R>(|i, r| {
                n += 1;
                if !ordered {
                    ready.push_back(r);
                } else if (next_out..submitted).contains(&i) {
                    let k = i - next_out;
                    if ahead.len() <= k {
                        ahead.resize_with(k + 1, || None);
                    }
                    ahead[k] = Some(r);
                }
            });
            self.received += n;
        }
    }
}

impl<I, R> Iterator for Imap<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Result<R, Error>> {
        loop {
            if self.ordered {
                if let Some(Some(_)) = self.ahead.front() {
                    let r = self.ahead.pop_front().flatten()?;
                    self.next_out += 1;
                    self.yielded += 1;
                    return Some(r);
                }
            } else if let Some(r) = self.ready.pop_front() {
                self.yielded += 1;
                return Some(r);
            }
            self.fill();
            if self.exhausted && self.received >= self.submitted {
                return None;
            }
            self.receive();
        }
    }
}

impl<I: Iterator, R> Drop for Imap<'_, I, R> {
    fn drop(&mut self) {
        self.call.abandon();
    }
}

impl<I: Iterator, R> fmt::Debug for Imap<'_, I, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("submitted", &self.submitted)
            .field("received", &self.received)
            .field("chunksize", &self.chunk)
            .finish()
    }
}

/// The pending results of [`Pool::map_async`](crate::Pool::map_async)
/// (Python's `MapResult`).
pub struct MapHandle<R> {
    pub(crate) call: Arc<Call>,
    pub(crate) total: usize,
    pub(crate) _r: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> MapHandle<R> {
    /// Waits for every task; the results in input order.
    ///
    /// # Errors
    /// As [`Pool::map`](crate::Pool::map).
    pub fn get(self) -> Result<Vec<R>, Error> {
        gather(&self.call, self.total, None)
    }

    /// [`get`](Self::get), waiting at most `timeout` in all.
    ///
    /// # Errors
    /// As [`get`](Self::get), or [`Error::is_timeout`].
    pub fn get_timeout(self, timeout: Duration) -> Result<Vec<R>, Error> {
        gather(&self.call, self.total, Instant::now().checked_add(timeout))
    }
}

impl<R> Drop for MapHandle<R> {
    fn drop(&mut self) {
        self.call.abandon();
    }
}

impl<R> fmt::Debug for MapHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapHandle")
            .field("tasks", &self.total)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_IN_FLIGHT, MIN_IN_FLIGHT, in_flight_tasks};

    #[test]
    fn in_flight_grows_only_for_tiny_tasks_with_small_arguments() {
        let small = 8;
        assert_eq!(
            in_flight_tasks(None, small),
            MIN_IN_FLIGHT,
            "nothing measured yet"
        );
        assert_eq!(in_flight_tasks(Some(0), small), MAX_IN_FLIGHT);
        assert_eq!(in_flight_tasks(Some(100), 0), MAX_IN_FLIGHT);
        assert_eq!(in_flight_tasks(Some(100), small), MAX_IN_FLIGHT);
        assert_eq!(
            in_flight_tasks(Some(4_000), small),
            500,
            "2 ms of 4 us tasks"
        );
        assert_eq!(in_flight_tasks(Some(1_000_000), small), MIN_IN_FLIGHT);
        assert_eq!(in_flight_tasks(Some(u64::MAX), small), MIN_IN_FLIGHT);
        assert_eq!(in_flight_tasks(Some(100), 8 << 10), 512, "4 MiB of 8 KiB");
        assert_eq!(in_flight_tasks(Some(100), 1 << 20), MIN_IN_FLIGHT);
        assert_eq!(in_flight_tasks(Some(100), u64::MAX), MIN_IN_FLIGHT);
    }
}
