//! Scenario 2: garbage at the server.
//!
//! Before the handshake: oversized length prefixes, truncated frames,
//! random bytes, an immediate close. After it (a
//! [`Client::connect`](multiproc::connection::Client::connect) channel, or
//! the handshake by hand on a raw stream): frames that do not decode as a
//! request, requests that decode but make no sense (no such object, the
//! wrong kind, an unknown registered type, a bad initial state, a lock
//! not held, a huge length inside), oversized and truncated frames, an
//! `Upgrade` whose pipe never comes. Each time the server answers an
//! error or drops that connection only; after an error answer the same
//! connection still works; and afterwards the server process is alive and
//! a normal client's dict works.

use super::*;
use crate::wire::{self, Failure, Garbage, Kind, Op, Raw, Reply, Request, Spec, enc, frame};
use multiproc::connection::{Address, Client};
use multiproc::manager::DictProxy;

/// One manager per kind of address: the default (abstract Unix socket)
/// and TCP.
fn managers() -> Vec<(&'static str, Manager)> {
    let tcp = Manager::builder()
        .address("127.0.0.1:0".parse().unwrap())
        .register::<Counter>()
        .start()
        .expect("a TCP manager");
    let local = counter_manager(StartMethod::ForkServer);
    vec![("abstract", local), ("tcp", tcp)]
}

/// The server is alive and serves a normal client.
fn assert_serving(label: &str, m: &Manager, d: &DictProxy<u32, u32>) {
    assert!(running(server_pid(m)), "{label}: the server died");
    let n = d
        .len()
        .unwrap_or_else(|e| panic!("{label}: the dict after garbage: {e}"));
    d.insert(&(n as u32), &1).unwrap();
    assert_eq!(d.len().unwrap(), n + 1, "{label}");
    // A new client, in a child: the server still accepts.
    let mut k = Kid::spawn(builder(StartMethod::ForkServer), fresh_client, d.clone());
    assert_eq!(k.finish("a new client after garbage"), n + 2, "{label}");
}

/// A client with connections of its own.
fn fresh_client(d: DictProxy<u32, u32>) -> usize {
    d.insert(&u32::MAX, &0).unwrap();
    d.len().unwrap()
}

#[test]
fn garbage_before_the_handshake() {
    fault_test("garbage_before_the_handshake", || {
        for (label, m) in managers() {
            let d = m.dict::<u32, u32>().unwrap();
            let address = m.address().clone();
            let mut g = Garbage::new(0x1234_5678);
            let mut cases: Vec<(String, Vec<u8>, bool)> = vec![
                ("an oversized prefix".into(), vec![0xff; 4], false),
                (
                    "a 64 MiB prefix".into(),
                    (64u32 << 20).to_le_bytes().to_vec(),
                    false,
                ),
                ("a truncated prefix".into(), vec![7, 0], true),
                (
                    "a truncated body".into(),
                    [&100u32.to_le_bytes()[..], &[1; 10]].concat(),
                    true,
                ),
                ("nothing".into(), vec![], true),
            ];
            for i in 0..8 {
                cases.push((
                    format!("random bytes #{i}"),
                    {
                        let n = 1 + (g.word() % 3000) as usize;
                        g.bytes(n)
                    },
                    true,
                ));
            }
            for (what, bytes, close) in cases {
                let what = format!("{label}: {what}");
                let mut raw = Raw::connect(&address);
                let _ = raw.send(&bytes);
                if close {
                    raw.shutdown_write();
                }
                let got = raw.read_to_close(&what);
                wire::assert_handshake_only(&got, &what);
            }
            assert_eq!(d.len().unwrap(), 0, "{label}");
            assert_serving(label, &m, &d);
        }
    });
}

/// A request for object `id` with `op`, encoded.
fn op(id: u64, op: Op) -> Vec<u8> {
    enc(&Request::Op { id, op })
}

/// What the server made of one frame of garbage on an authenticated
/// channel: an error reply (the connection goes on) or a closed connection.
#[derive(Debug)]
enum Verdict {
    Failed(Failure),
    Closed,
}

fn verdict(label: &str, what: &str, reply: Result<Vec<u8>, Error>) -> Verdict {
    match reply {
        Ok(bytes) => match postcard::from_bytes::<Reply>(&bytes) {
            Ok(Reply::Failed(f)) => Verdict::Failed(f),
            other => panic!("{label}: {what}: garbage got a non-error reply: {other:?}"),
        },
        Err(e) if e.is_disconnected() || e.io_error().is_some() => Verdict::Closed,
        Err(e) if e.is_timeout() => panic!("{label}: {what}: no answer and no close"),
        Err(e) => panic!("{label}: {what}: {e}"),
    }
}

#[test]
fn garbage_requests_after_the_handshake() {
    fault_test("garbage_requests_after_the_handshake", || {
        for (label, m) in managers() {
            let d = m.dict::<u32, u32>().unwrap();
            let l = m.list::<u32>().unwrap();
            let lock = m.lock().unwrap();
            let dict_id = wire::wire_of(&d, &m).id;
            let list_id = wire::wire_of(&l, &m).id;
            let lock_id = wire::wire_of(&lock, &m).id;
            let queue_spec = |init: Vec<u8>| Spec {
                kind: Kind::Queue,
                types: 0,
                type_names: "u32".into(),
                init,
            };
            let mut g = Garbage::new(0xfeed_beef);
            let mut cases: Vec<(String, Vec<u8>)> = vec![
                ("an empty frame".into(), vec![]),
                ("an overlong variant".into(), vec![0xff; 64]),
                ("no such object".into(), op(u64::MAX, Op::Len)),
                (
                    "a list op on a dict".into(),
                    op(dict_id, Op::ListPush(enc(&1u32))),
                ),
                ("a dict op on a list".into(), op(list_id, Op::DictKeys)),
                (
                    "a release of a lock not held".into(),
                    op(lock_id, Op::LockRelease),
                ),
                ("a truncated request".into(), {
                    let full = op(dict_id, Op::DictInsert(enc(&9u32), enc(&9u32)));
                    full[..full.len() - 1].to_vec()
                }),
                ("a blob claiming 2^40 bytes".into(), {
                    let mut b = vec![1u8]; // Request::Op
                    b.extend(enc(&dict_id));
                    b.push(2); // Op::DictGet
                    b.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x20]); // varint 2^40
                    b.extend([0u8; 16]);
                    b
                }),
                ("a sequence claiming 2^32 blobs".into(), {
                    let mut b = vec![1u8];
                    b.extend(enc(&list_id));
                    b.push(12); // Op::ListExtend
                    b.extend([0x80, 0x80, 0x80, 0x80, 0x10]); // varint 2^32
                    b.extend([1u8, 0]);
                    b
                }),
                (
                    "an unregistered type".into(),
                    enc(&Request::Create {
                        spec: Spec {
                            kind: Kind::Custom("tests.NoSuchType".into()),
                            types: 1,
                            type_names: "nothing".into(),
                            init: vec![],
                        },
                        name: None,
                    }),
                ),
                (
                    "a registered type with other types".into(),
                    enc(&Request::Create {
                        spec: Spec {
                            kind: Kind::Custom(Counter::TYPE_ID.into()),
                            types: 12345,
                            type_names: "not the Counter".into(),
                            init: enc(&0u64),
                        },
                        name: None,
                    }),
                ),
                (
                    "a queue with a bad bound".into(),
                    enc(&Request::Create {
                        spec: queue_spec(vec![0xff]),
                        name: None,
                    }),
                ),
                (
                    "trailing bytes after a request".into(),
                    [op(dict_id, Op::Len), vec![0xde, 0xad]].concat(),
                ),
            ];
            for i in 0..16 {
                let n = 1 + (g.word() % 200) as usize;
                let mut b = g.bytes(n);
                b[0] = 4 + (b[0] % 100); // no such request variant
                cases.push((format!("random bytes #{i}"), b));
            }
            let mut ch =
                Client::connect(m.address(), m.authkey()).expect("an authenticated channel");
            let mut answered = 0;
            for (what, bytes) in &cases {
                ch.send_bytes(bytes)
                    .unwrap_or_else(|e| panic!("{label}: sending {what}: {e}"));
                match verdict(label, what, ch.recv_bytes_timeout(PROMPT)) {
                    Verdict::Failed(f) => {
                        answered += 1;
                        eprintln!("{label}: {what}: {f:?}");
                        // The connection goes on after an error answer.
                        ch.send_bytes(&op(dict_id, Op::Len)).unwrap();
                        let r =
                            postcard::from_bytes::<Reply>(&ch.recv_bytes_timeout(PROMPT).unwrap());
                        assert!(
                            matches!(r, Ok(Reply::Len(_))),
                            "{label}: after {what}: {r:?}"
                        );
                    }
                    Verdict::Closed => {
                        eprintln!("{label}: {what}: connection closed");
                        ch = Client::connect(m.address(), m.authkey()).expect("reconnecting");
                    }
                }
            }
            eprintln!(
                "{label}: {answered} of {} garbage requests answered",
                cases.len()
            );
            // Trailing bytes are not a request the server may act on.
            assert_eq!(
                d.get(&9).unwrap(),
                None,
                "{label}: a truncated insert landed"
            );
            assert_serving(label, &m, &d);
        }
    });
}

#[test]
fn broken_frames_after_the_handshake() {
    fault_test("broken_frames_after_the_handshake", || {
        for (label, m) in managers() {
            let d = m.dict::<u32, u32>().unwrap();
            let address: Address = m.address().clone();
            let cases: Vec<(&str, Vec<u8>, bool)> = vec![
                ("an oversized prefix", vec![0xff; 4], false),
                (
                    "a prefix past the 64 MiB limit",
                    ((64u32 << 20) + 1).to_le_bytes().to_vec(),
                    false,
                ),
                ("a truncated prefix", vec![9, 0, 0], true),
                (
                    "a truncated body",
                    [&100u32.to_le_bytes()[..], &[1; 10]].concat(),
                    true,
                ),
                // The pipe of an upgrade never comes: one byte without
                // descriptors where they were due.
                (
                    "an upgrade without its pipe",
                    [
                        frame(&enc(&Request::Upgrade { end: vec![1, 2, 3] })),
                        vec![0],
                    ]
                    .concat(),
                    false,
                ),
            ];
            for (what, bytes, close) in cases {
                let what = format!("{label}: {what}");
                let mut raw = wire::authenticated(&address, m.authkey());
                let _ = raw.send(&bytes);
                if close {
                    raw.shutdown_write();
                }
                let got = raw.read_to_close(&what);
                for f in wire::split_frames(&got) {
                    let r = postcard::from_bytes::<Reply>(&f);
                    assert!(
                        matches!(r, Ok(Reply::Failed(_))),
                        "{what}: the server answered {r:?}"
                    );
                }
            }
            assert_serving(label, &m, &d);
        }
    });
}
