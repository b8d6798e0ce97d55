use super::*;
use crate::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const KEY: &[u8] = b"the right key";

fn tcp() -> Address {
    "127.0.0.1:0".parse().unwrap()
}

/// A fresh Unix socket path in a directory of its own.
fn unix(name: &str) -> (Address, PathBuf) {
    let dir = std::env::temp_dir().join(format!("mp-conn-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (Address::Unix(dir.join("s.sock")), dir)
}

/// A connected, authenticated pair: (client, server).
fn pair_on(listener: Listener) -> (Channel, Channel) {
    let a = listener.address().clone();
    let t = thread::spawn(move || listener.accept());
    let client = Client::connect_timeout(&a, KEY, Duration::from_secs(10)).unwrap();
    (client, t.join().unwrap().unwrap())
}

fn pair() -> (Channel, Channel) {
    pair_on(Listener::bind(tcp(), KEY).unwrap())
}

/// Runs `f` on a thread and fails the test if it does not finish in `limit`.
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("deadline passed: the operation hangs")
}

#[test]
fn smoke() {
    let (mut c, mut s) = pair();
    c.send(&(1u32, "one".to_string())).unwrap();
    assert_eq!(s.recv::<(u32, String)>().unwrap(), (1, "one".into()));
    s.send_bytes(b"back").unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"back");
}

#[test]
fn unix_round_trip_and_socket_file_removed() {
    let (a, dir) = unix("rt");
    let Address::Unix(path) = a.clone() else {
        unreachable!()
    };
    let listener = Listener::bind(a, KEY).unwrap();
    assert!(path.exists());
    let (mut c, mut s) = pair_on(listener);
    assert!(!path.exists(), "the listener was dropped with its thread");
    c.send(&vec![Some(1i64), None, Some(-3)]).unwrap();
    assert_eq!(
        s.recv::<Vec<Option<i64>>>().unwrap(),
        [Some(1), None, Some(-3)]
    );
    s.send_bytes(&[]).unwrap();
    assert_eq!(c.recv_bytes().unwrap(), b"");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unix_path_in_use_is_an_error() {
    let (a, dir) = unix("inuse");
    let _l = Listener::bind(a.clone(), KEY).unwrap();
    assert!(Listener::bind(a, KEY).unwrap_err().io_error().is_some());
    drop(_l);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn large_and_empty_frames_round_trip() {
    let (mut c, mut s) = pair();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let sent = big.clone();
    let t = thread::spawn(move || {
        c.send_bytes(&sent).unwrap();
        c.send_bytes(&[]).unwrap();
        c
    });
    assert_eq!(s.recv_bytes_timeout(Duration::from_secs(10)).unwrap(), big);
    assert_eq!(s.recv_bytes().unwrap(), b"");
    t.join().unwrap();
}

#[test]
fn wrong_key_fails_on_both_sides_and_listener_keeps_accepting() {
    let (unix_address, dir) = unix("wrongkey");
    for a in [tcp(), unix_address] {
        let listener = Listener::bind(a, KEY).unwrap();
        let a = listener.address().clone();
        let server = thread::spawn(move || {
            let first = listener.accept().unwrap_err();
            let mut good = listener.accept().unwrap();
            good.send(&"welcome").unwrap();
            first
        });
        let err = Client::connect(&a, b"a wrong key").unwrap_err();
        assert!(err.is_authentication_failure(), "{err}");
        assert!(err.to_string().contains("authkey"), "{err}");
        let mut good = Client::connect(&a, KEY).unwrap();
        assert_eq!(good.recv::<String>().unwrap(), "welcome");
        let err = server.join().unwrap();
        assert!(err.is_authentication_failure(), "{err}");
        assert!(
            err.to_string().contains("does not know the authkey"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn empty_authkey_is_misuse() {
    assert!(Listener::bind(tcp(), b"").unwrap_err().is_misuse());
    let l = Listener::bind(tcp(), KEY).unwrap();
    assert!(Client::connect(l.address(), b"").unwrap_err().is_misuse());
}

/// A listener with a short handshake deadline, and a raw peer connected to it.
fn listener_and_raw_peer() -> (Listener, TcpStream) {
    let mut l = Listener::bind(tcp(), KEY).unwrap();
    l.set_handshake_timeout(ms(300));
    let Address::Tcp(a) = l.address().clone() else {
        unreachable!()
    };
    (l, TcpStream::connect(a).unwrap())
}

/// `accept` fails for the raw peer, within the deadline, and serves a good
/// client afterwards.
fn accept_fails_then_serves(l: Listener, limit: Duration) -> Error {
    within(Duration::from_secs(10), move || {
        let start = Instant::now();
        let err = l.accept().unwrap_err();
        assert!(start.elapsed() < limit, "took {:?}", start.elapsed());
        let a = l.address().clone();
        let t = thread::spawn(move || Client::connect(&a, KEY).map(|_| ()));
        l.accept().unwrap();
        t.join().unwrap().unwrap();
        err
    })
}

#[test]
fn silent_peer_during_handshake_times_out() {
    let (l, _peer) = listener_and_raw_peer();
    let err = accept_fails_then_serves(l, Duration::from_secs(3));
    assert!(err.is_authentication_failure(), "{err}");
    assert!(err.to_string().contains("in time"), "{err}");
}

#[test]
fn garbage_during_handshake_is_refused() {
    let (l, mut peer) = listener_and_raw_peer();
    peer.write_all(&frame::channel_frame_bytes(&[b"not an answer at all"]))
        .unwrap();
    let err = accept_fails_then_serves(l, ms(250));
    assert!(err.is_authentication_failure(), "{err}");
}

#[test]
fn oversized_length_during_handshake_is_refused_at_once() {
    let (l, mut peer) = listener_and_raw_peer();
    peer.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let err = accept_fails_then_serves(l, ms(250));
    assert!(err.is_authentication_failure(), "{err}");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
}

#[test]
fn peer_closing_during_handshake_is_refused() {
    let (l, peer) = listener_and_raw_peer();
    drop(peer);
    let err = accept_fails_then_serves(l, ms(250));
    assert!(err.is_authentication_failure(), "{err}");
}

#[test]
fn client_against_a_silent_or_foreign_server() {
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = Address::Tcp(raw.local_addr().unwrap());
    // Accepted by the kernel, never answered.
    let err = within(Duration::from_secs(5), {
        let a = a.clone();
        move || Client::connect_timeout(&a, KEY, ms(200)).unwrap_err()
    });
    assert!(err.is_authentication_failure(), "{err}");
    // A server that sends something else than a challenge.
    let t = thread::spawn(move || {
        let (mut s, _) = raw.accept().unwrap(); // the first, silent connection
        drop(s);
        (s, _) = raw.accept().unwrap();
        s.write_all(&frame::channel_frame_bytes(&[b"HTTP/1.1 200 OK"]))
            .unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let err = within(Duration::from_secs(5), move || {
        Client::connect(&a, KEY).unwrap_err()
    });
    assert!(err.is_authentication_failure(), "{err}");
    assert!(err.to_string().contains("protocol"), "{err}");
    t.join().unwrap();
}

#[test]
fn accept_timeout_times_out() {
    let l = Listener::bind(tcp(), KEY).unwrap();
    let start = Instant::now();
    assert!(l.accept_timeout(ms(50)).unwrap_err().is_timeout());
    assert!(start.elapsed() >= ms(50));
}

#[test]
fn oversized_frame_is_refused_before_allocating() {
    let mut l = Listener::bind(tcp(), KEY).unwrap();
    l.set_max_frame_len(1024);
    let (mut c, mut s) = pair_on(l);
    c.raw_stream()
        .write_all(&(1u32 << 30).to_le_bytes())
        .unwrap();
    let err = within(Duration::from_secs(5), move || {
        let e = s.recv_bytes().unwrap_err();
        assert_eq!(s.reader().buffered_capacity(), 0);
        // The stream is out of step from here on.
        assert!(s.recv_bytes().unwrap_err().is_disconnected());
        e
    });
    assert!(err.is_decode(), "{err}");
    assert!(
        err.to_string().contains("exceeds the limit of 1024"),
        "{err}"
    );
}

#[test]
fn lying_length_within_the_limit_allocates_only_what_arrives() {
    let (mut c, mut s) = pair();
    c.raw_stream()
        .write_all(&(60u32 << 20).to_le_bytes())
        .unwrap();
    c.raw_stream().write_all(&[7; 100]).unwrap();
    assert!(s.recv_bytes_timeout(ms(100)).unwrap_err().is_timeout());
    assert!(s.reader().buffered_capacity() <= 64 * 1024);
    drop(c);
    let err = s.recv_bytes_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn truncated_header_is_an_error() {
    let (mut c, mut s) = pair();
    c.raw_stream().write_all(&[5, 0]).unwrap();
    drop(c);
    let err = s.recv_bytes_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(
        err.is_decode() && err.to_string().contains("truncated"),
        "{err}"
    );
}

#[test]
fn a_deadline_in_the_middle_of_a_frame_resumes() {
    let (mut c, mut s) = pair();
    let whole = frame::channel_frame_bytes(&[b"hello, world"]);
    c.raw_stream().write_all(&whole[..7]).unwrap();
    assert!(s.recv_bytes_timeout(ms(50)).unwrap_err().is_timeout());
    c.raw_stream().write_all(&whole[7..]).unwrap();
    assert_eq!(
        s.recv_bytes_timeout(Duration::from_secs(5)).unwrap(),
        b"hello, world"
    );
}

#[test]
fn undecodable_value_is_an_error_and_the_channel_stays_usable() {
    let (mut c, mut s) = pair();
    c.send_bytes(&[0xff, 0xff, 0xff]).unwrap();
    assert!(s.recv::<String>().unwrap_err().is_decode());
    c.send(&"fine").unwrap();
    assert_eq!(s.recv::<String>().unwrap(), "fine");
}

#[test]
fn values_owning_handles_are_refused() {
    let (mut c, mut s) = pair();
    let (a, _b) = crate::Pipe::new::<u8>().unwrap();
    let err = c.send(&a).unwrap_err();
    assert!(
        err.is_misuse() && err.to_string().contains("OS handles"),
        "{err}"
    );
    // Nothing was sent; a received handle index decodes to an error.
    c.send(&(0u32, 0u8)).unwrap();
    assert!(s.recv::<crate::Fd>().unwrap_err().is_decode());
    c.send(&1u8).unwrap();
    assert_eq!(s.recv::<u8>().unwrap(), 1);
}

#[test]
fn oversized_send_is_refused_and_nothing_is_sent() {
    let (mut c, mut s) = pair();
    c.set_max_frame_len(8);
    assert!(c.send_bytes(&[0; 9]).unwrap_err().is_misuse());
    c.send_bytes(&[1; 8]).unwrap();
    assert_eq!(s.recv_bytes().unwrap(), [1; 8]);
}

#[test]
fn closed_peer_is_disconnected_on_both_operations() {
    let (a, dir) = unix("closed");
    closed_peer_is_disconnected(pair());
    closed_peer_is_disconnected(pair_on(Listener::bind(a, KEY).unwrap()));
    std::fs::remove_dir_all(dir).unwrap();
}

fn closed_peer_is_disconnected((mut c, s): (Channel, Channel)) {
    drop(s);
    assert!(
        c.recv_bytes_timeout(Duration::from_secs(5))
            .unwrap_err()
            .is_disconnected()
    );
    let err = within(Duration::from_secs(5), move || {
        loop {
            if let Err(e) = c.send_bytes(&[0; 1024]) {
                return e;
            }
        }
    });
    assert!(err.is_disconnected(), "{err}");
}

#[test]
fn twenty_clients_hundred_round_trips_each() {
    let listener = Listener::bind(tcp(), KEY).unwrap();
    let a = listener.address().clone();
    let done = within(Duration::from_secs(60), move || {
        let server = thread::spawn(move || {
            let mut echoes = Vec::new();
            for _ in 0..20 {
                let mut ch = listener.accept().unwrap();
                echoes.push(thread::spawn(move || {
                    while let Ok((id, n)) = ch.recv::<(u32, u64)>() {
                        ch.send(&(id, n * 2)).unwrap();
                    }
                }));
            }
            for e in echoes {
                e.join().unwrap();
            }
        });
        let clients: Vec<_> = (0..20u32)
            .map(|id| {
                let a = a.clone();
                thread::spawn(move || {
                    let mut ch = Client::connect(&a, KEY).unwrap();
                    for n in 0..100u64 {
                        ch.send(&(id, n)).unwrap();
                        let reply = ch.recv_timeout::<(u32, u64)>(Duration::from_secs(10));
                        assert_eq!(reply.unwrap(), (id, n * 2));
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().unwrap();
        }
        server.join().unwrap();
        true
    });
    assert!(done);
}

#[test]
fn address_text_round_trips() {
    for text in [
        "127.0.0.1:80",
        "[::1]:5000",
        "unix:/tmp/x.sock",
        "unix:relative",
    ] {
        let a: Address = text.parse().unwrap();
        assert_eq!(a.to_string(), text);
    }
    assert_eq!(
        "./s".parse::<Address>().unwrap(),
        Address::Unix("./s".into())
    );
    assert!("localhost".parse::<Address>().unwrap_err().is_misuse());
}
