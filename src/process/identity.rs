//! Function identity: how a `fn(A) -> R` is named across processes.
//!
//! A child started by the fork server or by exec runs the same executable as
//! its parent, mapped at a different address (ASLR), so a function is sent as
//! its **offset from an anchor function** of this crate, together with the
//! offset of a monomorphised *trampoline* that decodes `A`, calls the function
//! and encodes `R`. Before jumping anywhere the child checks:
//!
//! 1. that it runs the same executable image (device, inode, size, mtime of
//!    `/proc/self/exe`), so the offsets mean the same code;
//! 2. inside the trampoline, before touching the function, that the
//!    parent's hash of the type signature (`type_name` and size of `A` and
//!    `R`) equals the trampoline's own.
//!
//! A mismatch is a [`Report::Refused`](super::protocol::Report) and a typed
//! error in the parent, never a jump to a wrong address. The offsets are only
//! ever produced by the parent from real function pointers, and travel on a
//! private socket pair, so within one executable they are right by
//! construction; the checks catch a replaced binary and a confused caller.
//!
//! Functions must live in the executable itself (not in a library loaded
//! with `dlopen`), which is where every `fn` item of a Rust program is.

use crate::wire::WireError;
use crate::wire::frame::Frame;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::any::type_name;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What running a job produced in the child.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The encoded result and its handle table.
    Returned(Vec<u8>, Vec<OwnedFd>),
    Panicked {
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    Refused(String),
    Undecodable(String),
}

/// A trampoline: checks the signature, decodes the argument from the job
/// frame, calls the function at `function`, encodes the result.
pub(crate) type Trampoline = fn(function: usize, signature: u64, job: &mut Frame) -> Outcome;

#[inline(never)]
fn anchor() {}

fn anchor_addr() -> usize {
    anchor as fn() as usize
}

/// Offset of a code address from the anchor.
pub(crate) fn offset_of(addr: usize) -> i64 {
    addr.wrapping_sub(anchor_addr()) as i64
}

/// Address of code at `offset` from the anchor in this process.
pub(crate) fn address_at(offset: i64) -> usize {
    anchor_addr().wrapping_add(offset as usize)
}

/// FNV-1a over the type signature of a trampoline: stable within one build.
pub(crate) fn signature<A, R>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    feed(type_name::<A>().as_bytes());
    feed(type_name::<R>().as_bytes());
    feed(&(std::mem::size_of::<A>() as u64).to_le_bytes());
    feed(&(std::mem::size_of::<R>() as u64).to_le_bytes());
    h
}

/// The trampoline for `fn(A) -> R`.
pub(crate) fn trampoline_for<A: DeserializeOwned, R: Serialize>() -> Trampoline {
    trampoline::<A, R>
}

fn trampoline<A: DeserializeOwned, R: Serialize>(
    function: usize,
    sig: u64,
    job: &mut Frame,
) -> Outcome {
    if sig != signature::<A, R>() {
        return Outcome::Refused(format!(
            "type signature mismatch: this child expected fn({}) -> {}",
            type_name::<A>(),
            type_name::<R>()
        ));
    }
    let arg: A = match job.decode_payload() {
        Ok(a) => a,
        Err(e) => return Outcome::Undecodable(format!("cannot decode the argument: {e}")),
    };
    // SAFETY: [1] `function` was computed by the parent as `f as usize` for
    // an `f: fn(A) -> R`, shifted by the anchor offset of this very
    // executable (checked by the caller through the executable identity);
    // [2] the signature hash just checked proves this trampoline was chosen
    // for that same `A` and `R`; [3] fn pointers and usize have the same size.
    let f: fn(A) -> R = unsafe { std::mem::transmute::<usize, fn(A) -> R>(function) };
    run_caught(move || f(arg))
}

/// Runs `f`, catching a panic, and encodes its result.
pub(crate) fn run_caught<R: Serialize>(f: impl FnOnce() -> R) -> Outcome {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => match crate::wire::encode(&value) {
            Ok((bytes, fds)) => Outcome::Returned(bytes, fds),
            Err(WireError::Codec(e)) | Err(WireError::Malformed(e)) => {
                Outcome::Undecodable(format!("cannot encode the result: {e}"))
            }
            Err(WireError::Io(e)) => Outcome::Undecodable(format!("cannot encode the result: {e}")),
        },
        Err(payload) => {
            let message = panic_message(&*payload);
            let (location, backtrace) = super::child::last_panic_details();
            Outcome::Panicked {
                message,
                location,
                backtrace,
            }
        }
    }
}

/// The message of a caught panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any> (a panic payload that is not a string)".to_owned()
    }
}
