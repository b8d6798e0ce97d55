//! The request path of the server without a socket, for the
//! `manager_request` fuzz target and its corpus test.

use super::ops;
use super::store::{Session, Store};
use crate::manager::custom::Registry;
use crate::manager::protocol::{Blob, Kind, Op, Request, Spec};
use std::time::Duration;

/// Runs `data`, read as frames (a `u32` little-endian length and that many
/// bytes; a length past the end takes what is left), through a fresh
/// server's request decoder and object table, as one connection would.
/// Returns one line per frame: the reply, as `Debug` text.
///
/// Waits are cut to zero (a fuzzer must not block), and `Upgrade` and
/// `Shutdown`, which concern the socket, are answered without effect.
///
/// # Panics
/// Never, by design: a panic is the bug the fuzzer looks for. A reply that
/// does not encode is one too.
pub fn manager_requests_for_fuzz(data: &[u8]) -> Vec<String> {
    let store = Store::new(Registry::default());
    let gone = || false;
    let mut session = Session {
        id: 1,
        held: Vec::new(),
        gone: &gone,
    };
    let mut rest = data;
    let mut replies = Vec::new();
    while rest.len() >= 4 {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let body = &rest[4..];
        let (frame, after) = body.split_at(len.min(body.len()));
        rest = after;
        let reply = match crate::wire::decode_plain::<Request>(frame) {
            Err(e) => format!("undecodable: {e}"),
            Ok(Request::Create { spec, name }) => format!("{:?}", store.create(spec, name)),
            Ok(Request::Op { id, op }) => {
                let reply = ops::apply(&store, &mut session, id, no_wait(op));
                assert!(postcard::to_allocvec(&reply).is_ok(), "a reply must encode");
                format!("{reply:?}")
            }
            Ok(Request::Upgrade { .. } | Request::Shutdown) => "ignored".to_owned(),
        };
        replies.push(reply);
    }
    replies
}

fn no_wait(op: Op) -> Op {
    let zero = Some(Duration::ZERO);
    match op {
        Op::QueuePut(item, _) => Op::QueuePut(item, zero),
        Op::QueueGet(_) => Op::QueueGet(zero),
        Op::LockAcquire(_) => Op::LockAcquire(zero),
        Op::EventWait(_) => Op::EventWait(zero),
        other => other,
    }
}

/// Named inputs for the corpus: valid request streams over every kind of
/// object, as `(name, bytes)`; the corpus test checks what they answer.
pub fn manager_request_seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn create(kind: Kind, init: Vec<u8>) -> Request {
        Request::Create {
            spec: Spec {
                kind,
                types: 7,
                type_names: "T".into(),
                init: Blob(init),
            },
            name: None,
        }
    }
    fn op(id: u64, op: Op) -> Request {
        Request::Op { id, op }
    }
    let b = |x: &[u8]| Blob(x.to_vec());
    let stream = |requests: Vec<Request>| -> Vec<u8> {
        let mut out = Vec::new();
        for r in requests {
            let body = postcard::to_allocvec(&r).expect("a seed encodes");
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&body);
        }
        out
    };
    let wait = Some(Duration::from_secs(1));
    vec![
        (
            "dict",
            stream(vec![
                create(Kind::Dict, vec![]),
                op(1, Op::DictInsert(b(b"k"), b(b"v"))),
                op(1, Op::DictGet(b(b"k"))),
                op(1, Op::DictSetDefault(b(b"j"), b(b"w"))),
                op(1, Op::DictItems),
                op(1, Op::DictRemove(b(b"k"))),
                op(1, Op::Len),
            ]),
        ),
        (
            "list",
            stream(vec![
                create(Kind::List, vec![]),
                op(1, Op::ListExtend(vec![b(b"a"), b(b"b")])),
                op(1, Op::ListInsert(-1, b(b"c"))),
                op(1, Op::ListGet(-1)),
                op(1, Op::ListSet(9, b(b"x"))),
                op(1, Op::ListPop(Some(0))),
                op(1, Op::ListAll),
            ]),
        ),
        (
            "queue-lock-event",
            stream(vec![
                create(Kind::Queue, vec![1]),
                op(1, Op::QueuePut(b(b"1"), wait)),
                op(1, Op::QueuePut(b(b"2"), wait)),
                op(1, Op::QueueGet(wait)),
                create(Kind::Lock, vec![]),
                op(2, Op::LockAcquire(None)),
                op(2, Op::LockAcquire(wait)),
                op(2, Op::LockRelease),
                create(Kind::Event, vec![]),
                op(3, Op::EventWait(wait)),
                op(3, Op::EventSet),
                op(3, Op::EventWait(None)),
            ]),
        ),
        (
            "namespace-value-misuse",
            stream(vec![
                create(Kind::Namespace, vec![]),
                op(1, Op::NsSet("x".into(), 1, "u8".into(), b(&[5]))),
                op(1, Op::NsGet("x".into())),
                op(1, Op::NsNames),
                create(Kind::Value, vec![9]),
                op(2, Op::ValueSwap(b(&[8]))),
                op(2, Op::ValueGet),
                op(2, Op::DictKeys),
                op(99, Op::Len),
                create(Kind::Custom("Unregistered".into()), vec![]),
            ]),
        ),
    ]
}

/// What the named seeds answer, frame by frame (checked by the corpus
/// test, so a change in the server's behaviour shows there).
pub fn manager_request_seed_replies(name: &str) -> Vec<String> {
    let d = |s: &str| s.to_owned();
    match name {
        "dict" => vec![
            d("Id(1)"),
            d("Item(None)"),
            d("Item(Some(Blob(1 bytes)))"),
            d("Item(Some(Blob(1 bytes)))"),
            d("Pairs([(Blob(1 bytes), Blob(1 bytes)), (Blob(1 bytes), Blob(1 bytes))])"),
            d("Item(Some(Blob(1 bytes)))"),
            d("Len(1)"),
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_answer_as_expected_and_garbage_is_refused() {
        for (name, bytes) in manager_request_seeds() {
            let replies = manager_requests_for_fuzz(&bytes);
            let want = manager_request_seed_replies(name);
            if !want.is_empty() {
                assert_eq!(replies, want, "{name}");
            }
            assert!(
                replies.iter().all(|r| !r.starts_with("undecodable")),
                "{name}: {replies:?}"
            );
        }
        let qle = manager_requests_for_fuzz(&manager_request_seeds()[2].1);
        assert_eq!(qle[0], "Id(1)");
        assert_eq!(qle[2], "Failed(Timeout)", "a full bounded queue times out");
        assert_eq!(qle[6], "Failed(Timeout)", "a held lock times out");
        assert_eq!(qle[9], "Bool(false)");
        assert_eq!(qle[11], "Bool(true)");
        let misuse = manager_requests_for_fuzz(&manager_request_seeds()[3].1);
        assert!(misuse[7].starts_with("Failed(Misuse"), "{}", misuse[7]);
        assert!(misuse[8].contains("no object 99"), "{}", misuse[8]);
        assert!(misuse[9].contains("no type registered"), "{}", misuse[9]);
        let garbage = manager_requests_for_fuzz(&[3, 0, 0, 0, 0xff, 0xff, 0xff, 9, 9]);
        assert_eq!(garbage.len(), 1);
        assert!(garbage[0].starts_with("undecodable"));
    }
}
