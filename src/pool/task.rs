//! What travels between a pool and its workers, and how a worker runs a
//! chunk of tasks.
//!
//! A task message is a [`ToWorker`] header followed, for `Run`, by the
//! chunk's arguments as a postcard `Vec<A>`; a result message is a
//! [`ResultHeader`] followed by the outcome table (where each task's bytes
//! end) and the outcomes: an [`ItemOutcome<R>`] per task, or, when every
//! task of the chunk returned, bare `R`s (`plain`), which the caller decodes
//! in one pass unless one of them fails. Headers carry no
//! handles, so the handles of the body are indexed from 0 either way, and a
//! side that does not know `A` or `R` (the pool's manager thread) can read
//! the header and pass the body on untouched.
//!
//! Functions travel as in [`Process::spawn`](crate::Process::spawn): as
//! offsets from an anchor in this executable (the worker was started from
//! the same executable, checked at its start), with a monomorphised
//! *runner* that checks the type signature before calling anything.

use super::handle::Sink;
use super::table::Table;
use crate::error::{Error, Kind};
use crate::process::{address_at, last_panic_details, offset_of, panic_message, signature};
use crate::wire;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

/// The header of a message to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Run a chunk; its arguments follow.
    Run(TaskHeader),
    /// Finish: exit once this message is taken.
    Exit,
}

/// Which chunk to run, and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TaskHeader {
    pub(crate) chunk: u64,
    pub(crate) run: RunSpec,
    /// Positions in the chunk not to run (they already failed).
    pub(crate) skip: Vec<u32>,
    /// Whether the pool times tasks: then each task's start is stamped,
    /// not only its position.
    pub(crate) timed: bool,
}

/// A function and the runner that calls it, as offsets.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct RunSpec {
    runner: i64,
    function: i64,
    signature: u64,
}

/// The header of a result message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResultHeader {
    pub(crate) chunk: u64,
    pub(crate) slot: u32,
    pub(crate) pid: u32,
    /// Time spent on the chunk, its decoding and encoding included.
    pub(crate) busy_ns: u64,
    /// Time spent in the loop over the tasks (each task and its result's
    /// encoding), without the chunk's fixed costs (chunk-size tuning: for a
    /// task of nanoseconds, one task's `busy_ns` is mostly those, and tuned
    /// chunks came out a hundred times too small).
    pub(crate) run_ns: u64,
    /// Set when the chunk could not run at all (undecodable arguments, a
    /// type mismatch): every task of it fails with this; nothing follows.
    /// Otherwise the header is followed by the outcome table (see
    /// [`put_table`](super::table::put_table): where each task's outcome ends in the body), then the
    /// body. The
    /// manager reads only this header and hands the rest, as bytes, to the
    /// caller, who decodes it: the buffers are allocated and freed by the
    /// caller's thread, never by the manager's (memory freed by another
    /// thread than the one that allocated it costs glibc's arena lock).
    pub(crate) failed: Option<String>,
    /// The body holds bare results, every task done (see [`Encoded`]).
    pub(crate) plain: bool,
}

/// What one task of a chunk produced.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ItemOutcome<R> {
    Done(R),
    Panicked {
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    /// The argument or the result could not be decoded or encoded.
    Failed(String),
    /// Not run (see [`TaskHeader::skip`]).
    Skipped,
}

/// Runs a chunk: `(function, signature, arguments, their handles, skip,
/// marks)` → the encoded outcomes (see [`Encoded`]).
pub(crate) type Runner =
    fn(usize, u64, &[u8], Vec<OwnedFd>, &[u32], &mut Marks<'_>) -> Result<Encoded, String>;

/// How a worker marks which task of its chunk runs, before each one (so
/// that a crash or a timeout blames the right task).
pub(crate) struct Marks<'a> {
    /// The worker's position word: one store per task.
    pub(crate) position: &'a AtomicU64,
    /// For a pool that times its tasks, what stamps a task's start (and its
    /// position) instead.
    pub(crate) timed: Option<&'a mut dyn FnMut(u32)>,
}

impl Marks<'_> {
    /// Task `pos` of the chunk starts. Inline, not a call through a `dyn`
    /// hook: for tiny tasks, that call cost as much as the task.
    #[inline]
    fn starts(&mut self, pos: u32) {
        match &mut self.timed {
            None => self.position.store(u64::from(pos), Ordering::Relaxed),
            Some(stamp) => stamp(pos),
        }
    }
}

/// A chunk's encoded outcomes: each task's bytes back to back, their
/// handles, where each ends, and whether they are `plain`: every task of
/// the chunk ran and returned, and the bytes are bare `R`s rather than
/// `ItemOutcome<R>`s (which the caller then decodes in one pass: for tiny
/// results, a sixth of the per-item cost).
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) ends: Vec<u32>,
    pub(crate) plain: bool,
    /// Time spent in the loop over the tasks (see [`ResultHeader::run_ns`]).
    pub(crate) run_ns: u64,
}

/// How a runner calls the function at an address with one decoded
/// argument.
trait Call<A, R> {
    /// Distinguishes callers in the signature hash.
    const KIND: u64;

    /// # Safety
    /// `function` is the address of a function of the type this caller is
    /// for (checked through the signature hash by the runner).
    unsafe fn call(function: usize, arg: A) -> R;
}

/// `fn(A) -> R` (map, apply).
struct Unary;

impl<A, R> Call<A, R> for Unary {
    const KIND: u64 = 1;
    unsafe fn call(function: usize, arg: A) -> R {
        // SAFETY: per the contract, `function` is an `fn(A) -> R`; fn
        // pointers and usize have the same size.
        let f = unsafe { std::mem::transmute::<usize, fn(A) -> R>(function) };
        f(arg)
    }
}

/// `fn(A, B) -> R` called with `(A, B)` (starmap).
struct Binary;

impl<A, B, R> Call<(A, B), R> for Binary {
    const KIND: u64 = 2;
    unsafe fn call(function: usize, (a, b): (A, B)) -> R {
        // SAFETY: per the contract, `function` is an `fn(A, B) -> R`.
        let f = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(function) };
        f(a, b)
    }
}

fn spec_hash<A, R, C: Call<A, R>>() -> u64 {
    signature::<A, R>() ^ C::KIND.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl RunSpec {
    /// Which task function this is (for per-function statistics).
    pub(crate) fn key(&self) -> i64 {
        self.function
    }

    fn of<A: DeserializeOwned, R: Serialize, C: Call<A, R>>(function: usize) -> RunSpec {
        let runner: Runner = run_chunk::<A, R, C>;
        RunSpec {
            runner: offset_of(runner as usize),
            function: offset_of(function),
            signature: spec_hash::<A, R, C>(),
        }
    }

    /// For `f: fn(A) -> R`.
    pub(crate) fn unary<A, R>(f: fn(A) -> R) -> RunSpec
    where
        A: DeserializeOwned,
        R: Serialize,
    {
        RunSpec::of::<A, R, Unary>(f as usize)
    }

    /// For `f: fn(A, B) -> R`, called with tuples.
    pub(crate) fn binary<A, B, R>(f: fn(A, B) -> R) -> RunSpec
    where
        A: DeserializeOwned,
        B: DeserializeOwned,
        R: Serialize,
    {
        RunSpec::of::<(A, B), R, Binary>(f as usize)
    }

    /// Runs a chunk in this (worker) process.
    pub(crate) fn run(
        &self,
        args: &[u8],
        fds: Vec<OwnedFd>,
        skip: &[u32],
        marks: &mut Marks<'_>,
    ) -> Result<Encoded, String> {
        let runner = address_at(self.runner);
        // SAFETY: [1] `runner` was computed by the pool from a real
        // `Runner` in this same executable (the worker's start checked the
        // executable's identity), shifted by the anchor offset; [2] fn
        // pointers and usize have the same size. The runner itself checks
        // the signature before it touches `function`.
        let runner = unsafe { std::mem::transmute::<usize, Runner>(runner) };
        runner(
            address_at(self.function),
            self.signature,
            args,
            fds,
            skip,
            marks,
        )
    }
}

fn run_chunk<A: DeserializeOwned, R: Serialize, C: Call<A, R>>(
    function: usize,
    sig: u64,
    args: &[u8],
    fds: Vec<OwnedFd>,
    skip: &[u32],
    marks: &mut Marks<'_>,
) -> Result<Encoded, String> {
    if sig != spec_hash::<A, R, C>() {
        return Err(format!(
            "type signature mismatch: the worker expected a task of {} -> {}",
            std::any::type_name::<A>(),
            std::any::type_name::<R>()
        ));
    }
    // The arguments decoded at once (postcard's loop over a sequence is
    // faster than a value at a time); the results encoded as they come:
    // bare while every task returns (sent `plain`); from the first that
    // does not, an outcome per task, the bare ones tagged `Done` first.
    let args: Vec<A> =
        wire::decode_fast(args, fds).map_err(|e| format!("cannot decode the arguments: {e}"))?;
    let mut out = wire::EachWriter::with_capacity(args.len(), args.len() * 4 + 64);
    let mut plain = true;
    let started = std::time::Instant::now();
    for (pos, arg) in args.into_iter().enumerate() {
        let outcome = if skip.contains(&(pos as u32)) {
            ItemOutcome::Skipped
        } else {
            marks.starts(pos as u32);
            // SAFETY: the signature hash matched: `function` is the
            // function this caller kind was chosen for.
            run_caught(|| unsafe { C::call(function, arg) })
        };
        let outcome = match (plain, outcome) {
            (true, ItemOutcome::Done(v)) => match out.push(&v) {
                Ok(()) => continue,
                Err(e) => ItemOutcome::Failed(format!("cannot encode the result: {e}")),
            },
            (_, other) => other,
        };
        if plain {
            plain = false;
            out.tag_each(&done_tag())
                .map_err(|e| format!("cannot encode the results: {e}"))?;
        }
        if let Err(e) = out.push(&outcome) {
            // A result that cannot be encoded fails alone.
            let failed = ItemOutcome::<R>::Failed(format!("cannot encode the result: {e}"));
            out.push(&failed)
                .map_err(|e| format!("cannot encode the results: {e}"))?;
        }
    }
    let run_ns = started.elapsed().as_nanos() as u64;
    let (bytes, fds, ends) = out.into_parts();
    Ok(Encoded {
        bytes,
        fds,
        ends,
        plain,
        run_ns,
    })
}

/// What postcard puts before a value to make it an `ItemOutcome::Done`:
/// its variant's tag (see [`EachWriter::tag_each`](wire::EachWriter::tag_each)).
fn done_tag() -> Vec<u8> {
    postcard::to_allocvec(&ItemOutcome::<()>::Done(())).unwrap_or_default()
}

/// Runs one task, catching a panic with its location.
fn run_caught<R>(f: impl FnOnce() -> R) -> ItemOutcome<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => ItemOutcome::Done(v),
        Err(payload) => {
            let message = panic_message(&*payload);
            let (location, backtrace) = last_panic_details();
            ItemOutcome::Panicked {
                message,
                location,
                backtrace,
            }
        }
    }
}

/// Decodes a result body into the results of tasks `first..`, handed to
/// `sink`: in bulk when they are `plain` and decode (see
/// [`Sink::run`]), else one by one; skipped positions are left out.
pub(crate) fn decode_outcomes<R: DeserializeOwned>(
    first: usize,
    pid: u32,
    body: &[u8],
    table: Table<'_>,
    fds: Vec<OwnedFd>,
    plain: bool,
    sink: &mut impl Sink<R>,
) {
    if plain {
        if fds.is_empty() && sink.run(first, table.len(), &mut |out| table.decode_run(body, out)) {
            return;
        }
        // Handles, or a value that does not decode: one by one, so that a
        // bad one fails alone.
        let mut i = first;
        wire::decode_each::<R>(body, table.ends(), fds, |r| {
            let r = r.map_err(|e| {
                Error::new(Kind::Decode(format!("cannot decode the result: {e}"))).in_task(i)
            });
            sink.one(i, r);
            i += 1;
        });
        return;
    }
    let mut i = first;
    wire::decode_each::<ItemOutcome<R>>(body, table.ends(), fds, |o| {
        let index = i;
        i += 1;
        let r = match o {
            Ok(ItemOutcome::Done(v)) => Ok(v),
            Ok(ItemOutcome::Skipped) => return,
            Ok(ItemOutcome::Panicked {
                message,
                location,
                backtrace,
            }) => Err(Error::new(Kind::Panicked {
                pid,
                message,
                location,
                backtrace,
            })),
            Ok(ItemOutcome::Failed(why)) => Err(Error::new(Kind::Decode(why))),
            Err(e) => Err(Error::new(Kind::Decode(format!(
                "cannot decode the result: {e}"
            )))),
        };
        sink.one(index, r.map_err(|e| e.in_task(index)));
    });
}

#[cfg(test)]
mod tests {
    use super::{ItemOutcome, done_tag};
    use crate::wire::EachWriter;

    /// Bare results written first and tagged when a later task fails are
    /// the bytes of their `Done` outcomes, with their ends.
    #[test]
    fn a_tagged_bare_value_is_its_done_outcome() {
        let values = [1u64, 300, 70_000, 0];
        let mut tagged = EachWriter::default();
        let mut done = EachWriter::default();
        for v in values {
            tagged.push(&v).unwrap();
            done.push(&ItemOutcome::Done(v)).unwrap();
        }
        tagged.tag_each(&done_tag()).unwrap();
        tagged.push(&ItemOutcome::<u64>::Skipped).unwrap();
        done.push(&ItemOutcome::<u64>::Skipped).unwrap();
        let (a, _, a_ends) = tagged.into_parts();
        let (b, _, b_ends) = done.into_parts();
        assert_eq!((a, a_ends), (b, b_ends));
    }
}
