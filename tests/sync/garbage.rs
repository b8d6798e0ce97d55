//! Section 6: a handle decoded as the wrong kind of object.
//!
//! [`Swap<S, R>`] is serialized as an `S` and deserialized as an `R`: the
//! descriptor and tag of one kind of object offered to the decoder of
//! another. The receiver must refuse it with a typed decode error (the
//! queue's or pipe's `Failed` with `is_codec`, a `join` error with
//! `is_decode`), never crash, never map the memory as the wrong object,
//! and the channel must keep working. Forged handles, a descriptor of
//! something else with an object's tag, are refused the same way.

use super::*;
use multiproc::{
    Array, Connection, Event, Fd, Lock, Pipe, Queue, RLock, RawValue, RecvTimeoutError, Semaphore,
    Value,
};

use crate::common::Swap;

/// What a receive gave: "ok", or "codec: <message>", or anything else.
fn outcome<T>(r: Result<T, RecvTimeoutError>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(RecvTimeoutError::Failed(f)) if f.is_codec() => format!("codec: {f}"),
        Err(e) => format!("unexpected: {e}"),
    }
}

type Channels<S, R> = (Queue<Swap<S, R>>, Connection<Swap<S, R>>);

/// The child: receives two messages from the queue, then two from the
/// pipe (a wrong one, then a right one, each time), and says how each went.
fn receive<S, R>((q, conn): Channels<S, R>) -> Vec<String>
where
    S: Serialize,
    R: Serialize + serde::de::DeserializeOwned,
{
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(outcome(q.get_timeout(JOIN)));
    }
    for _ in 0..2 {
        seen.push(outcome(conn.recv_timeout(JOIN)));
    }
    seen
}

/// Sends `bad` (an `S`) then `good` (an `R`) to a child expecting `R`s,
/// through a queue and then a pipe.
fn wrong_kind<S, R>(what: &str, bad: impl Fn() -> S, good: impl Fn() -> R)
where
    S: Serialize + serde::de::DeserializeOwned,
    R: Serialize + serde::de::DeserializeOwned,
{
    let q = Queue::new().unwrap();
    let (here, there) = Pipe::new().unwrap();
    let mut child = Kid::spawn(
        builder(StartMethod::ForkServer),
        receive::<S, R>,
        (q.clone(), there),
    );
    q.put(Swap::Sent(bad())).expect("put");
    q.put(Swap::Got(good())).expect("put");
    here.send(Swap::Sent(bad())).expect("send");
    here.send(Swap::Got(good())).expect("send");
    let seen = child.finish(what);
    eprintln!("{what}: {seen:?}");
    assert_eq!(seen.len(), 4, "{what}: {seen:?}");
    for (i, s) in seen.iter().enumerate() {
        let (want, via) = ([true, false][i % 2], ["queue", "pipe"][i / 2]);
        assert_eq!(
            s.starts_with("codec: "),
            want,
            "{what} via the {via}: {s} (all: {seen:?})"
        );
        assert!(want || s == "ok", "{what} via the {via}: {s}");
    }
}

#[test]
fn wrong_kind_through_a_queue_and_a_pipe_is_a_codec_error() {
    fault_test("wrong_kind_through_a_queue_and_a_pipe", || {
        let event = || Event::new().unwrap();
        let lock = || Lock::new().unwrap();
        wrong_kind("an Event as a Lock", event, lock);
        wrong_kind("a Lock as an RLock", lock, || RLock::new().unwrap());
        wrong_kind("a Semaphore as a Lock", || Semaphore::new(1).unwrap(), lock);
        wrong_kind(
            "a Value<u32> as a Value<f32>",
            || Value::new(1u32).unwrap(),
            || Value::new(1f32).unwrap(),
        );
        wrong_kind(
            "a Value<u64> as a RawValue<u64>",
            || Value::new(1u64).unwrap(),
            || RawValue::new(1u64).unwrap(),
        );
        wrong_kind(
            "an Array<u64> as an Array<u32>",
            || Array::<u64>::new(4).unwrap(),
            || Array::<u32>::new(4).unwrap(),
        );
    });
}

/// An object's wire form taken apart: its descriptor and its kind tag.
type Parts = (Fd, u8);

/// The descriptor and tag of `obj`, through a pipe to ourselves.
fn parts_of<S: Serialize + serde::de::DeserializeOwned>(obj: S) -> Parts {
    let (a, b) = Pipe::new::<Swap<S, Parts>>().unwrap();
    a.send(Swap::Sent(obj)).expect("send");
    match b.recv_timeout(JOIN) {
        Ok(Swap::Got(parts)) => parts,
        Ok(Swap::Sent(_)) => unreachable!("a decoded Swap is always Got"),
        Err(e) => panic!("taking a handle apart: {e}"),
    }
}

/// Offers `parts` to the decoder of `R` through a pipe to ourselves, then
/// checks that the pipe still carries a real `R`.
fn forged<R: Serialize + serde::de::DeserializeOwned>(what: &str, parts: Parts, good: R) {
    let (a, b) = Pipe::new::<Swap<Parts, R>>().unwrap();
    a.send(Swap::Sent(parts)).expect("send");
    let got = outcome(b.recv_timeout(JOIN));
    eprintln!("forged {what}: {got}");
    assert!(got.starts_with("codec: "), "forged {what}: {got}");
    a.send(Swap::Got(good)).expect("send");
    assert_eq!(
        outcome(b.recv_timeout(JOIN)),
        "ok",
        "forged {what}: the pipe after"
    );
}

#[test]
fn forged_handles_are_refused() {
    fault_test("forged_handles_are_refused", || {
        let lock_tag = parts_of(Lock::new().unwrap()).1;
        let array_tag = parts_of(Array::<u32>::new(1).unwrap()).1;
        let lock = || Lock::new().unwrap();

        // The control: a Lock's own parts, put back together, decode as
        // that very lock (so the refusals below are the checks at work,
        // not a broken forgery).
        let real = Lock::new().unwrap();
        let held = real.acquire().unwrap();
        let (a, b) = Pipe::new::<Swap<Parts, Lock>>().unwrap();
        a.send(Swap::Sent(parts_of(real.clone()))).expect("send");
        match b.recv_timeout(JOIN) {
            // Asked from another thread: a `Lock` held by this one
            // panics on a try from this one (an error-checking mutex).
            Ok(Swap::Got(same)) => assert!(
                std::thread::scope(|t| t
                    .spawn(|| same.try_acquire().is_err_and(|e| e.is_would_block()))
                    .join()
                    .expect("the probing thread")),
                "the reassembled lock is not the one we hold"
            ),
            other => panic!("reassembling a Lock: {:?}", other.map(|_| ())),
        }
        drop(held);

        let devnull = || Fd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        forged("/dev/null as a Lock", (devnull(), lock_tag), lock());

        // A plain file large enough and zeroed: not size-sealed, no header.
        let path = common::tmp_path("not-a-lock");
        std::fs::write(&path, vec![0u8; 4096]).expect("writing a file");
        let file = Fd::from(std::fs::File::open(&path).expect("opening it"));
        std::fs::remove_file(&path).expect("removing it");
        forged("a zeroed file as a Lock", (file, lock_tag), lock());

        let (r, _w) = common::pipe();
        forged("a pipe as a Lock", (Fd::from(r), lock_tag), lock());

        // Real shared memory of other objects, relabelled: the header (size,
        // kind, element type) gives them away.
        let (fd, _) = parts_of(Event::new().unwrap());
        forged("an Event's memory as a Lock", (fd, lock_tag), lock());
        let (fd, _) = parts_of(RLock::new().unwrap());
        forged("an RLock's memory as a Lock", (fd, lock_tag), lock());
        let (fd, _) = parts_of(Semaphore::new(3).unwrap());
        forged("a Semaphore's memory as a Lock", (fd, lock_tag), lock());
        let (fd, _) = parts_of(Array::<u64>::new(8).unwrap());
        forged(
            "an Array<u64>'s memory as an Array<u32>",
            (fd, array_tag),
            Array::<u32>::new(1).unwrap(),
        );
    });
}

fn takes_a_lock(lock: Swap<Event, Lock>) -> bool {
    matches!(lock, Swap::Got(l) if l.try_acquire().is_ok())
}

fn returns_an_event_as_a_lock(_: ()) -> Swap<Event, Lock> {
    Swap::Sent(Event::new().expect("an event"))
}

#[test]
fn wrong_kind_across_spawn_and_join_is_a_typed_error() {
    fault_test("wrong_kind_across_spawn_and_join", || {
        let mut child = builder(StartMethod::ForkServer)
            .spawn(takes_a_lock, Swap::Sent(Event::new().unwrap()))
            .expect("spawn");
        let e = child
            .join_timeout(JOIN)
            .expect_err("the child decoded a Lock");
        eprintln!("an Event as a Lock argument: {e}");
        assert!(!e.is_timeout(), "{e}");
        assert!(e.signal().is_none(), "the child crashed: {e}");
        assert!(e.is_decode(), "{e:?}");

        let mut child = builder(StartMethod::ForkServer)
            .spawn(returns_an_event_as_a_lock, ())
            .expect("spawn");
        let e = child.join_timeout(JOIN).expect_err("we decoded a Lock");
        eprintln!("an Event as a Lock result: {e}");
        assert!(e.is_decode(), "{e:?}");
    });
}
