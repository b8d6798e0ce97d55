//! Scenario 1: the authkey.
//!
//! A client with a wrong key is refused with
//! [`Error::is_authentication_failure`] (from this process and from a
//! child), promptly, and the server goes on serving clients with the right
//! key. A peer that skips the handshake and writes a well-formed request
//! frame (built with the mirrors of `wire`) gets nothing but the
//! handshake, has its connection closed, and the object is unchanged; an
//! unauthenticated `Shutdown` does not stop the server; a silent peer
//! delays nobody.

use super::*;
use crate::wire::{self, Op, Raw, Request, enc, frame};
use multiproc::connection::{Address, Client};

/// The two kinds of address a server listens on here: its default (an
/// abstract Unix socket) and TCP.
fn both_managers() -> Vec<(&'static str, Manager)> {
    let tcp = Manager::builder()
        .address("127.0.0.1:0".parse().unwrap())
        .authkey(b"the right key")
        .start()
        .expect("a TCP manager");
    vec![
        ("abstract", Manager::start().expect("a manager")),
        ("tcp", tcp),
    ]
}

/// A child that tries a wrong key, then the right one.
fn child_connects((address, right): (Address, Vec<u8>)) -> (bool, u32) {
    let wrong = Manager::connect(&address, b"not the key");
    let refused = matches!(&wrong, Err(e) if e.is_authentication_failure());
    let m = Manager::connect(&address, &right).expect("the right key, from a child");
    let d = m.named("shared").dict::<String, u32>().unwrap();
    (refused, d.get(&"a".into()).unwrap().unwrap_or(0))
}

#[test]
fn wrong_authkey_is_refused_and_the_server_keeps_serving() {
    fault_test(
        "wrong_authkey_is_refused_and_the_server_keeps_serving",
        || {
            for (label, m) in both_managers() {
                let d = m.named("shared").dict::<String, u32>().unwrap();
                d.insert(&"a".into(), &1).unwrap();
                let address = m.address().clone();

                for key in [
                    &b"wrong"[..],
                    b"the right ke",
                    b"the right key!",
                    &[0u8; 32],
                ] {
                    let (r, took) = {
                        let address = address.clone();
                        let key = key.to_vec();
                        within(PROMPT, "a wrong-key connect", move || {
                            Manager::connect(&address, &key).map(drop)
                        })
                    };
                    match r {
                        Err(e) if e.is_authentication_failure() => {}
                        other => panic!(
                            "{label}: key {key:?}: expected an authentication failure, got {other:?}"
                        ),
                    }
                    eprintln!("{label}: a wrong key refused in {took:?}");
                }
                let empty = Manager::connect(&address, b"").map(drop).unwrap_err();
                assert!(empty.is_misuse(), "{label}: an empty key: {empty}");

                // A child is refused too, and then served with the right key.
                let mut k = Kid::spawn(
                    builder(StartMethod::ForkServer),
                    child_connects,
                    (address.clone(), m.authkey().to_vec()),
                );
                assert_eq!(k.finish("the connecting child"), (true, 1), "{label}");

                // The right key works here too (the process's link to the
                // server, shared with `m`).
                let c = Manager::connect(&address, m.authkey()).expect("the right key");
                assert_eq!(c.pid(), None, "{label}: a connected handle owns no server");
                let cd = c.named("shared").dict::<String, u32>().unwrap();
                assert_eq!(cd.get(&"a".into()).unwrap(), Some(1), "{label}");
                cd.insert(&"b".into(), &2).unwrap();
                assert_eq!(d.get(&"b".into()).unwrap(), Some(2), "{label}");
                assert!(running(server_pid(&m)), "{label}: the server died");
            }
        },
    );
}

/// A `DictInsert(1, 1)` request for object `id`, as a frame.
fn insert_frame(id: u64) -> Vec<u8> {
    let op = Op::DictInsert(enc(&1u32), enc(&1u32));
    frame(&enc(&Request::Op { id, op }))
}

#[test]
fn unauthenticated_peer_never_reaches_an_object() {
    fault_test("unauthenticated_peer_never_reaches_an_object", || {
        for (label, m) in both_managers() {
            let d = m.dict::<u32, u32>().unwrap();
            let id = wire::wire_of(&d, &m).id;
            let address = m.address().clone();
            // The mirror is right: an authenticated peer's frame does land.
            let mut authed = wire::authenticated(&address, m.authkey());
            let probe = Request::Op { id, op: Op::Len };
            match authed.call(&probe).expect("an authenticated call") {
                wire::Reply::Len(0) => {}
                other => panic!("{label}: the mirror request got {other:?}"),
            }
            drop(authed);

            // A request frame after reading the challenge, then a second one
            // right behind it: both are taken as (wrong) handshake answers.
            let mut raw = Raw::connect(&address);
            raw.read_frame().expect("the challenge");
            let two = [insert_frame(id), insert_frame(id)].concat();
            let _ = raw.send(&two);
            let got = raw.read_to_close(&format!("{label}: a request instead of an answer"));
            wire::assert_handshake_only(&got, label);

            // The same without waiting for the challenge.
            let mut raw = Raw::connect(&address);
            let _ = raw.send(&insert_frame(id));
            let got = raw.read_to_close(&format!("{label}: a request before the challenge"));
            wire::assert_handshake_only(&got, label);

            // An answer of the right size computed with a wrong key.
            let mut raw = Raw::connect(&address);
            raw.read_frame().expect("the challenge");
            let _ = raw.send(&frame(&[0u8; 32]));
            let got = raw.read_to_close(&format!("{label}: a wrong answer"));
            wire::assert_handshake_only(&got, label);

            // An unauthenticated shutdown.
            let mut raw = Raw::connect(&address);
            let _ = raw.send(&frame(&enc(&Request::Shutdown)));
            let got = raw.read_to_close(&format!("{label}: an unauthenticated shutdown"));
            wire::assert_handshake_only(&got, label);

            // A silent peer holds its connection open; others are served.
            let silent = Raw::connect(&address);
            let (r, took) = {
                let (address, key) = (address.clone(), m.authkey().to_vec());
                // A new connection (this process's link to the server
                // would reuse an idle one), through the library's client.
                within(PROMPT, "a connect beside a silent peer", move || {
                    let mut ch = Client::connect(&address, &key)?;
                    ch.send_bytes(&enc(&Request::Op { id, op: Op::Len }))?;
                    ch.recv_bytes_timeout(PROMPT)
                })
            };
            let reply = r.expect("served beside a silent peer");
            let reply = postcard::from_bytes::<wire::Reply>(&reply);
            assert!(
                matches!(reply, Ok(wire::Reply::Len(0))),
                "{label}: {reply:?}"
            );
            eprintln!("{label}: served beside a silent peer in {took:?}");
            drop(silent);

            std::thread::sleep(ms(300)); // more than the accept loop's stop check
            assert!(running(server_pid(&m)), "{label}: the server stopped");
            assert_eq!(d.len().unwrap(), 0, "{label}: the dict was reached");
            assert_eq!(d.get(&1).unwrap(), None, "{label}");
            d.insert(&2, &4).unwrap();
            assert_eq!(d.items().unwrap(), [(2, 4)], "{label}");
        }
    });
}
