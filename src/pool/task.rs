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

use crate::error::{Error, Kind};
use crate::process::{address_at, last_panic_details, offset_of, panic_message, signature};
use crate::wire;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

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
    /// Time spent running the chunk (chunk-size tuning).
    pub(crate) busy_ns: u64,
    /// Set when the chunk could not run at all (undecodable arguments, a
    /// type mismatch): every task of it fails with this; nothing follows.
    /// Otherwise the header is followed by the ends (a postcard `Vec<u32>`:
    /// where each task's outcome ends in the body), then the body. The
    /// manager reads only this header and hands the rest, as bytes, to the
    /// caller, who decodes it: the buffers are allocated and freed by the
    /// caller's thread, never by the manager's (memory freed by another
    /// thread than the one that allocated it costs glibc's arena lock).
    pub(crate) failed: Option<String>,
    /// The body holds bare results, every task done (see [`Encoded`]).
    pub(crate) plain: bool,
}

/// The number of outcomes in a result's rest (the length prefix of its
/// `ends`), if its table is sound: that many ends, each within the body
/// that follows and none before the previous one. Checked without
/// allocating (the manager's side; the caller then decodes it).
pub(crate) fn outcome_count(rest: &[u8]) -> Option<usize> {
    let (n, mut tail) = postcard::take_from_bytes::<u64>(rest).ok()?;
    let n = usize::try_from(n).ok()?;
    let mut last = 0u32;
    let mut read = 0usize;
    while read < n {
        let (end, more) = postcard::take_from_bytes::<u32>(tail).ok()?;
        if end < last {
            return None;
        }
        last = end;
        tail = more;
        read += 1;
    }
    (last as usize <= tail.len()).then_some(n)
}

/// Splits a result's rest into its ends and body.
pub(crate) fn split_outcomes(rest: &[u8]) -> Result<(Vec<u32>, &[u8]), String> {
    postcard::take_from_bytes::<Vec<u32>>(rest)
        .map_err(|e| format!("a result message's outcome table does not decode: {e}"))
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
/// before-each-task hook)` → the encoded outcomes (see [`Encoded`]).
pub(crate) type Runner =
    fn(usize, u64, &[u8], Vec<OwnedFd>, &[u32], &mut dyn FnMut(u32)) -> Result<Encoded, String>;

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
        before: &mut dyn FnMut(u32),
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
            before,
        )
    }
}

fn run_chunk<A: DeserializeOwned, R: Serialize, C: Call<A, R>>(
    function: usize,
    sig: u64,
    args: &[u8],
    fds: Vec<OwnedFd>,
    skip: &[u32],
    before: &mut dyn FnMut(u32),
) -> Result<Encoded, String> {
    if sig != spec_hash::<A, R, C>() {
        return Err(format!(
            "type signature mismatch: the worker expected a task of {} -> {}",
            std::any::type_name::<A>(),
            std::any::type_name::<R>()
        ));
    }
    let args: Vec<A> =
        wire::decode(args, fds).map_err(|e| format!("cannot decode the arguments: {e}"))?;
    // While every task returns, bare results (sent `plain`); from the first
    // that does not, an outcome per task.
    let mut values: Vec<R> = Vec::with_capacity(args.len());
    let mut outcomes: Option<Vec<ItemOutcome<R>>> = None;
    for (pos, arg) in args.into_iter().enumerate() {
        let outcome = if skip.contains(&(pos as u32)) {
            ItemOutcome::Skipped
        } else {
            before(pos as u32);
            // SAFETY: the signature hash matched: `function` is the
            // function this caller kind was chosen for.
            run_caught(|| unsafe { C::call(function, arg) })
        };
        match (&mut outcomes, outcome) {
            (None, ItemOutcome::Done(v)) => values.push(v),
            (None, other) => {
                let mut all: Vec<ItemOutcome<R>> = Vec::with_capacity(values.capacity());
                all.extend(values.drain(..).map(ItemOutcome::Done));
                all.push(other);
                outcomes = Some(all);
            }
            (Some(all), outcome) => all.push(outcome),
        }
    }
    let outcomes = match outcomes {
        Some(all) => all,
        None => match wire::encode_each_strict(&values) {
            Ok((bytes, fds, ends)) => {
                return Ok(Encoded {
                    bytes,
                    fds,
                    ends,
                    plain: true,
                });
            }
            // A result that cannot be encoded: one by one, below.
            Err(_) => values.into_iter().map(ItemOutcome::Done).collect(),
        },
    };
    // A result that cannot be encoded fails alone.
    let (bytes, fds, ends) = wire::encode_each(&outcomes, |why| {
        ItemOutcome::Failed(format!("cannot encode the result: {why}"))
    })
    .map_err(|e| format!("cannot encode the results: {e}"))?;
    Ok(Encoded {
        bytes,
        fds,
        ends,
        plain: false,
    })
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

/// Decodes a result body into one `Result` per task, handed to `each`
/// with its index (`first` + position); skipped positions are left out.
pub(crate) fn decode_outcomes<R: DeserializeOwned>(
    first: usize,
    pid: u32,
    body: &[u8],
    ends: &[u32],
    fds: Vec<OwnedFd>,
    plain: bool,
    mut each: impl FnMut(usize, Result<R, Error>),
) {
    if plain {
        if fds.is_empty() {
            if let Some(values) = wire::decode_run::<R>(body, ends) {
                for (pos, v) in values.into_iter().enumerate() {
                    each(first + pos, Ok(v));
                }
                return;
            }
        }
        // Handles, or a value that does not decode: one by one, so that a
        // bad one fails alone.
        let mut pos = 0;
        wire::decode_each::<R>(body, ends, fds, |r| {
            let i = first + pos;
            pos += 1;
            let r = r.map_err(|e| {
                Error::new(Kind::Decode(format!("cannot decode the result: {e}"))).in_task(i)
            });
            each(i, r);
        });
        return;
    }
    let mut pos = 0;
    wire::decode_each::<ItemOutcome<R>>(body, ends, fds, |o| {
        let i = first + pos;
        pos += 1;
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
        each(i, r.map_err(|e| e.in_task(i)));
    });
}

#[cfg(test)]
mod tests {
    use super::{outcome_count, split_outcomes};

    #[test]
    fn a_results_rest_splits_into_its_table_and_body() {
        let ends: Vec<u32> = vec![3, 7, 10];
        let mut rest = postcard::to_allocvec(&ends).unwrap();
        rest.extend_from_slice(b"body bytes");
        assert_eq!(outcome_count(&rest), Some(3));
        let (got, body) = split_outcomes(&rest).unwrap();
        assert_eq!(got, ends);
        assert_eq!(body, b"body bytes");
        // A table that claims more entries than there are bytes, ends that
        // go backwards, or past the body: refused.
        assert_eq!(outcome_count(&[5, 1]), None);
        assert!(split_outcomes(&[5, 1]).is_err());
        assert_eq!(outcome_count(&[2, 3, 1, 0, 0, 0]), None);
        assert_eq!(outcome_count(&[1, 9, 0, 0]), None);
        assert_eq!(outcome_count(&[0]), Some(0));
        assert_eq!(outcome_count(&[]), None);
        assert!(split_outcomes(&[0xff; 3]).is_err());
    }
}
