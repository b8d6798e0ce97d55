use super::memfd::{Mapping, sealed_with};
use super::socket::{recv_msg, send_msg, seqpacket_pair};
use super::*;
use std::os::fd::AsFd;

#[test]
fn seqpacket_keeps_boundaries_and_passes_fds() {
    let (a, b) = seqpacket_pair().unwrap();
    let null = open_dev_null().unwrap();
    send_msg(
        a.as_fd(),
        &[b"hello", b" world"],
        &[null.as_raw_fd()],
        false,
    )
    .unwrap();
    send_msg(a.as_fd(), &[b"second"], &[], false).unwrap();
    let mut buf = [0u8; 64];
    let r = recv_msg(b.as_fd(), &mut buf, 4, false).unwrap();
    assert_eq!(&buf[..r.len], b"hello world");
    assert_eq!(r.fds.len(), 1);
    assert!(!r.truncated);
    let r = recv_msg(b.as_fd(), &mut buf, 4, false).unwrap();
    assert_eq!(&buf[..r.len], b"second");
    assert!(r.fds.is_empty());
    drop(a);
    let r = recv_msg(b.as_fd(), &mut buf, 4, false).unwrap();
    assert_eq!(r.len, 0, "closed peer reads as end of file");
}

#[test]
fn too_small_buffer_is_reported_as_truncated() {
    let (a, b) = seqpacket_pair().unwrap();
    send_msg(a.as_fd(), &[&[7u8; 100]], &[], false).unwrap();
    let mut buf = [0u8; 10];
    let r = recv_msg(b.as_fd(), &mut buf, 0, false).unwrap();
    assert!(r.truncated);
}

#[test]
fn nonblocking_recv_on_empty_socket_would_block() {
    let (_a, b) = seqpacket_pair().unwrap();
    let mut buf = [0u8; 10];
    let e = recv_msg(b.as_fd(), &mut buf, 0, true).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
}

#[test]
fn poll_times_out_then_sees_data() {
    let (a, b) = seqpacket_pair().unwrap();
    let ready = poll(&[b.as_fd()], Some(Duration::from_millis(10))).unwrap();
    assert_eq!(ready, vec![false]);
    send_msg(a.as_fd(), &[b"x"], &[], false).unwrap();
    let ready = poll(&[b.as_fd()], Some(Duration::from_millis(1000))).unwrap();
    assert_eq!(ready, vec![true]);
}

#[test]
fn sealed_memfd_round_trips_and_unsealed_is_refused() {
    let fd = sealed_with(&[b"abc", b"def"]).unwrap();
    let m = Mapping::of_sealed(fd.as_fd(), 6).unwrap();
    assert_eq!(m.as_slice(), b"abcdef");
    assert!(
        Mapping::of_sealed(fd.as_fd(), 7).is_err(),
        "a lying length is refused"
    );
    let null = open_dev_null().unwrap();
    assert!(
        Mapping::of_sealed(null.as_fd(), 0).is_err(),
        "a non-memfd is refused"
    );
}

#[test]
fn thread_count_sees_this_thread() {
    assert!(thread_count().unwrap() >= 1);
}

#[test]
fn threads_line_counts_only_whole_lines() {
    use super::threads_in;
    assert_eq!(threads_in(b"Name:\tx\nThreads:\t12\nSigQ:\t0\n"), Some(12));
    assert_eq!(threads_in(b"Name:\tx\nThreads:\t12\n"), Some(12));
    // Cut by a buffer: `Threads:\t1` of `12` must not count.
    assert_eq!(threads_in(b"Name:\tx\nThreads:\t1"), None);
    assert_eq!(threads_in(b""), None);
    let groups: String = (0..2000)
        .map(|g| format!("{} ", 1_000_000_000 + g))
        .collect();
    let status = format!("Name:\tx\nGroups:\t{groups}\nThreads:\t3\n");
    assert!(status.len() > 8192);
    assert_eq!(threads_in(status.as_bytes()), Some(3));
}

#[test]
fn abstract_sockets_bind_once_and_report_their_peer() {
    use super::socket::{accept, connect_abstract, listen_abstract, peer_credentials};
    let name = format!("multiproc.test.{}.abstract", getpid());
    let listener = listen_abstract(name.as_bytes(), 4).unwrap();
    let again = listen_abstract(name.as_bytes(), 4).unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AddrInUse);
    let client = connect_abstract(name.as_bytes()).unwrap();
    let server = accept(listener.as_fd()).unwrap();
    assert_eq!(
        peer_credentials(server.as_fd()).unwrap(),
        (getpid(), getuid())
    );
    assert_eq!(peer_credentials(client.as_fd()).unwrap().1, getuid());
    drop((listener, server, client));
    let gone = connect_abstract(name.as_bytes()).unwrap_err();
    assert_eq!(gone.kind(), std::io::ErrorKind::ConnectionRefused);
}
