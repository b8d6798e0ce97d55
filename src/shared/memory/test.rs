use super::transport::{FdsOut, WireOut};
use super::*;
use crate::sys::socket;
use crate::wire;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// A name no other test (or concurrent run) uses.
fn unique(what: &str) -> String {
    format!("unit-{}-{what}", std::process::id())
}

fn kind(e: &Error) -> Option<ErrorKind> {
    e.io_error().map(|e| e.kind())
}

/// Sends `shm` through the wire codec and back, as another process would
/// receive it.
fn round_trip(shm: &SharedMemory) -> SharedMemory {
    let (bytes, fds) = wire::encode(shm).unwrap();
    wire::decode(&bytes, fds).unwrap()
}

/// Waits until `name` can no longer be opened; whether it happened in time.
fn gone_within(name: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match SharedMemory::open(name) {
            Err(e) if kind(&e) == Some(ErrorKind::NotFound) => return true,
            Err(e) => panic!("open {name}: {e}"),
            Ok(_) if Instant::now() >= deadline => return false,
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn smoke() {
    let shm = SharedMemory::new(10).unwrap();
    shm.write(3, b"abc").unwrap();
    let mut buf = [0u8; 5];
    shm.read(2, &mut buf).unwrap();
    assert_eq!(&buf, b"\0abc\0");
    assert_eq!(shm.len(), 10);
    assert!(!shm.is_empty());
    assert_eq!(shm.name(), None);
    assert_eq!(shm.keeper_pid(), None);
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SharedMemory>();
}

#[test]
fn names_are_validated() {
    let long = "x".repeat(MAX_NAME);
    for good in ["a", "A-b_c.9", long.as_str()] {
        assert!(check_name(good).is_ok(), "{good:?}");
    }
    let too_long = "x".repeat(MAX_NAME + 1);
    for bad in ["", "a/b", "a b", "é", "a\0b", "a,b", too_long.as_str()] {
        assert!(check_name(bad).unwrap_err().is_misuse(), "{bad:?}");
        assert!(SharedMemory::create(bad, 1).unwrap_err().is_misuse());
        assert!(SharedMemory::open(bad).unwrap_err().is_misuse());
    }
}

#[test]
fn zero_and_huge_sizes_are_misuse() {
    assert!(SharedMemory::new(0).unwrap_err().is_misuse());
    assert!(SharedMemory::new(usize::MAX).unwrap_err().is_misuse());
    assert!(
        SharedMemory::create(&unique("zero"), 0)
            .unwrap_err()
            .is_misuse()
    );
}

#[test]
fn out_of_bounds_is_misuse() {
    let shm = SharedMemory::new(8).unwrap();
    let mut buf = [0u8; 4];
    assert!(shm.read(5, &mut buf).unwrap_err().is_misuse());
    assert!(shm.read(usize::MAX, &mut buf).unwrap_err().is_misuse());
    assert!(shm.write(8, b"x").unwrap_err().is_misuse());
    assert!(shm.write(usize::MAX - 1, b"xyz").unwrap_err().is_misuse());
    shm.write(8, b"").unwrap();
    shm.read(4, &mut buf).unwrap();
}

#[test]
fn clones_share_the_mapping() {
    let a = SharedMemory::new(4).unwrap();
    let b = a.clone();
    assert_eq!(a.as_ptr(), b.as_ptr());
    b.write(0, b"hey!").unwrap();
    drop(b);
    let mut buf = [0u8; 4];
    a.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"hey!");
}

#[test]
fn a_received_anonymous_handle_maps_the_same_memory() {
    let a = SharedMemory::new(4096).unwrap();
    let b = round_trip(&a);
    assert_ne!(a.as_ptr(), b.as_ptr(), "a second mapping");
    assert_eq!(b.len(), 4096);
    assert_eq!(b.name(), None);
    b.write(4000, b"far").unwrap();
    let mut buf = [0u8; 3];
    a.read(4000, &mut buf).unwrap();
    assert_eq!(&buf, b"far");
}

#[test]
fn named_lifecycle_in_one_process() {
    let name = unique("lifecycle");
    let created = SharedMemory::create(&name, 100).unwrap();
    let keeper = created.keeper_pid().unwrap();
    assert!(keeper > 0);
    assert_eq!(
        kind(&SharedMemory::create(&name, 100).unwrap_err()),
        Some(ErrorKind::AlreadyExists)
    );
    let opened = SharedMemory::open(&name).unwrap();
    assert_eq!(opened.len(), 100);
    assert_eq!(opened.keeper_pid(), Some(keeper));
    opened.write(99, b"!").unwrap();
    let copy = round_trip(&created);
    assert_eq!(copy.name(), Some(name.as_str()));
    assert_eq!(copy.keeper_pid(), Some(keeper));
    drop((created, opened));
    // The received copy is an owner on its own.
    let again = SharedMemory::open(&name).unwrap();
    let mut buf = [0u8; 1];
    again.read(99, &mut buf).unwrap();
    assert_eq!(&buf, b"!");
    drop((copy, again));
    assert!(gone_within(&name, Duration::from_secs(10)));
}

#[test]
fn open_of_a_missing_name_is_not_found() {
    let err = SharedMemory::open(&unique("missing")).unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::NotFound), "{err}");
}

#[test]
fn unlink_frees_the_name_not_the_memory() {
    let name = unique("unlink");
    let first = SharedMemory::create(&name, 8).unwrap();
    let opened = SharedMemory::open(&name).unwrap();
    opened.unlink().unwrap();
    opened.unlink().unwrap();
    assert_eq!(
        kind(&SharedMemory::open(&name).unwrap_err()),
        Some(ErrorKind::NotFound)
    );
    let second = SharedMemory::create(&name, 16).unwrap();
    assert_ne!(second.keeper_pid(), first.keeper_pid());
    first.write(0, b"old").unwrap();
    let mut buf = [0u8; 3];
    opened.read(0, &mut buf).unwrap();
    assert_eq!(&buf, b"old");
    assert_eq!(SharedMemory::open(&name).unwrap().len(), 16);
    second.unlink().unwrap();
    SharedMemory::new(1).unwrap().unlink().unwrap();
}

#[test]
fn a_stranger_on_the_socket_changes_nothing() {
    let name = unique("stranger");
    let shm = SharedMemory::create(&name, 8).unwrap();
    let addr = keeper::address(&name);
    let garbage = socket::connect_abstract(&addr).unwrap();
    socket::send_msg(garbage.as_fd(), &[b"GET / HTTP/1.0"], &[], false).unwrap();
    let silent = socket::connect_abstract(&addr).unwrap();
    // Both are refused or timed out, while real opens go on.
    let opened = SharedMemory::open(&name).unwrap();
    assert_eq!(opened.len(), 8);
    for (what, sock) in [("garbage", &garbage), ("silent", &silent)] {
        let ready = crate::sys::poll(&[sock.as_fd()], Some(Duration::from_secs(10))).unwrap();
        assert!(ready[0], "{what}: still open");
        let mut buf = [0u8; 16];
        let got = socket::recv_msg(sock.as_fd(), &mut buf, 1, true).unwrap();
        assert_eq!(
            (got.len, got.fds.len()),
            (0, 0),
            "{what}: closed, nothing sent"
        );
    }
    drop((shm, opened));
    assert!(gone_within(&name, Duration::from_secs(10)));
}

#[test]
fn a_bad_name_on_the_wire_is_refused() {
    let shm = SharedMemory::new(8).unwrap();
    let fds = FdsOut([shm.region().as_fd(), shm.region().as_fd()]);
    let (bytes, fds) = wire::encode(&WireOut::Named(fds, 8, "../etc", 1)).unwrap();
    assert!(wire::decode::<SharedMemory>(&bytes, fds).is_err());
    let (bytes, fds) =
        wire::encode(&WireOut::Anonymous(FdsOut([shm.region().as_fd()]), 9)).unwrap();
    assert!(
        wire::decode::<SharedMemory>(&bytes, fds).is_err(),
        "wrong length"
    );
}
