//! Section 3: peer death.

use super::*;

// ------------------------------------------------------------ 3. peer death

/// Messages a dying child sends before it dies (they fit in the ring).
const LAST_WORDS: u32 = 1_000;

/// Sends `0..n`, says "ready", then sleeps until killed.
fn send_then_sleep((conn, n, ready): (Connection<u32, Vec<u8>>, u32, Fd)) {
    for i in 0..n {
        conn.send(i).expect("send");
    }
    say_ready(ready);
    loop {
        std::thread::sleep(secs(1));
    }
}

/// Sends `0..n`, then, while its peer waits in `recv`, kills itself.
fn send_then_die((conn, n): (Connection<u32, Vec<u8>>, u32)) {
    for i in 0..n {
        conn.send(i).expect("send");
    }
    std::thread::sleep(ms(200));
    // SAFETY: plain system call on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL to ourselves returned");
}

/// Runs `f` on a helper thread and fails the test if it does not finish
/// within `limit`: for calls that have no timeout of their own (`send`).
/// The thread has ended when this returns, so that a Fork driver is
/// single-threaded again (but call it last in a Fork scenario anyway: the
/// kernel forgets the thread a moment after `join`).
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let helper = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            helper.join().expect("helper thread");
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let e = helper
                .join()
                .expect_err("the helper thread ended without a result");
            std::panic::resume_unwind(e)
        }
    }
}

fn peer_death(m: Method) {
    let before = warm_baseline(m);
    {
        // The child is killed while its peer is not looking: the messages it
        // sent first are all there, then end-of-file.
        let (here, there) = Pipe::with_types::<Vec<u8>, u32>().unwrap();
        let (reader, writer) = common::pipe();
        let mut child = Kid::spawn(
            victim(m),
            send_then_sleep,
            (there, LAST_WORDS, Fd::from(writer)),
        );
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(line.expect("the child never said ready"), "ready", "{m:?}");
        child.kill_and_reap("sender");
        let t = Instant::now();
        for i in 0..LAST_WORDS {
            assert_eq!(
                here.recv_timeout(JOIN),
                Ok(i),
                "{m:?}: message {i} of a dead peer"
            );
        }
        assert_eq!(
            here.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
        assert!(
            here.poll(Some(Duration::ZERO)),
            "{m:?}: end-of-file is ready"
        );
        assert!(
            t.elapsed() < secs(5),
            "{m:?}: draining took {:?}",
            t.elapsed()
        );

        // The child dies while its peer sleeps in `recv`: it wakes up.
        let (here2, there2) = Pipe::with_types::<Vec<u8>, u32>().unwrap();
        let mut child = Kid::spawn(victim(m), send_then_die, (there2, 3));
        for i in 0..3 {
            assert_eq!(here2.recv_timeout(JOIN), Ok(i), "{m:?}");
        }
        let t = Instant::now();
        assert_eq!(
            here2.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
        assert!(
            t.elapsed() < secs(5),
            "{m:?}: woken {:?} after the peer died",
            t.elapsed()
        );
        let err = child.join_timeout(JOIN).unwrap_err();
        assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
        drop(here2);

        // Sending to the dead peer: what fits in its ring (256 KiB) is
        // accepted, as a pipe's buffer would; then `send` must fail, not
        // wait for ever for room.
        let (sent, last) = within("send to a dead peer", JOIN, move || {
            let mut sent = 0usize;
            loop {
                match here.send(vec![0xa5; 1024]) {
                    Ok(()) if sent < 1024 => sent += 1,
                    Ok(()) => return (sent, Ok(())),
                    Err(e) => return (sent, Err(e)),
                }
            }
        });
        match last {
            Err(SendError::Disconnected(v)) => {
                assert_eq!(v.len(), 1024, "{m:?}: the value comes back")
            }
            other => panic!("{m:?}: after {sent} sends to a dead peer: {other:?}"),
        }
        assert!(
            sent <= 256,
            "{m:?}: {sent} KiB accepted by a dead peer's 256 KiB ring"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: peer death"));
}

/// Raw messages streamed through a pipe in the mid-stream death rounds.
const STREAMED: usize = 16 << 20;
/// Rounds of each mid-stream death scenario.
const STREAM_DEATHS: u32 = 5;

/// Kills the calling process `delay_us` after `started` says so (the
/// helper thread's first message went through).
fn die_after(started: std::sync::mpsc::Receiver<()>, delay_us: u64) -> ! {
    let _ = started.recv_timeout(JOIN);
    std::thread::sleep(Duration::from_micros(delay_us));
    // SAFETY: plain system call on our own pid.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL to ourselves returned");
}

/// Streams large raw messages from a helper thread, and dies `delay_us`
/// after the first one went through: most likely in the middle of one.
fn stream_and_die((conn, delay_us): (Connection<()>, u64)) {
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let msg = big_message(STREAMED);
        while conn.send_bytes(&msg).is_ok() {
            let _ = tx.send(());
        }
    });
    die_after(started, delay_us)
}

/// Receives large raw messages on a helper thread, and dies `delay_us`
/// after the first one came in: most likely in the middle of one.
fn drain_and_die((conn, delay_us): (Connection<()>, u64)) {
    let (tx, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        while conn.recv_bytes().is_ok() {
            let _ = tx.send(());
        }
    });
    die_after(started, delay_us)
}

/// A peer killed in the middle of a large message (which streams through
/// the 256 KiB ring in chunks, the sender holding the ring's lock): the
/// survivor gets whole, correct messages and then an error, never a torn
/// message, and never waits for ever.
///
/// `recv_bytes` and `send_bytes` have no timeout: the suite's watchdog (or,
/// for Fork, the driver's deadline) turns a hang into a failure.
fn peer_death_mid_stream(m: Method) {
    let before = warm_baseline(m);
    {
        let mut rng = Rng::seeded(&format!("{m:?}: peer_death_mid_stream"));
        for round in 0..STREAM_DEATHS {
            // The sender dies.
            let (here, there) = Pipe::new::<()>().unwrap();
            let delay = rng.below(30_000);
            let mut child = Kid::spawn(victim(m), stream_and_die, (there, delay));
            let mut whole = 0;
            let end = loop {
                match here.recv_bytes() {
                    Ok(msg) => {
                        assert_eq!(msg.len(), STREAMED, "{m:?}: round {round}: a torn message");
                        assert_eq!(first_bad_block(&msg), None, "{m:?}: round {round}");
                        whole += 1;
                    }
                    Err(e) => break e,
                }
            };
            let err = child.join_timeout(JOIN).unwrap_err();
            assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
            // A message cut short is lost, reported as the end of the
            // stream (or as a broken channel, then the end).
            if let RecvError::Failed(f) = end {
                assert!(f.is_broken(), "{m:?}: round {round}: {f}");
                assert_eq!(here.recv_bytes(), Err(RecvError::Disconnected), "{m:?}");
            }
            assert!(whole >= 1, "{m:?}: round {round}");

            // The receiver dies.
            let (here, there) = Pipe::new::<()>().unwrap();
            let delay = rng.below(30_000);
            let mut child = Kid::spawn(victim(m), drain_and_die, (there, delay));
            let msg = big_message(STREAMED);
            let mut sent = 0;
            let end = loop {
                match here.send_bytes(&msg) {
                    Ok(()) => sent += 1,
                    Err(e) => break e,
                }
                assert!(
                    sent < 100_000,
                    "{m:?}: round {round}: the receiver never died"
                );
            };
            let err = child.join_timeout(JOIN).unwrap_err();
            assert_eq!(err.signal(), Some(libc::SIGKILL), "{m:?}: {err}");
            assert_eq!(end, SendError::Disconnected(()), "{m:?}: round {round}");
        }
    }
    before.assert_no_leaks(&format!("{m:?}: peer death mid-stream"));
}

#[test]
fn peer_death_mid_stream_forkserver() {
    channel_test(
        "peer_death_mid_stream",
        Method::ForkServer,
        peer_death_mid_stream,
    );
}

#[test]
fn peer_death_mid_stream_spawn() {
    channel_test(
        "peer_death_mid_stream",
        Method::Spawn,
        peer_death_mid_stream,
    );
}

#[test]
fn peer_death_mid_stream_fork() {
    channel_test("peer_death_mid_stream", Method::Fork, peer_death_mid_stream);
}

#[test]
fn peer_death_forkserver() {
    channel_test("peer_death", Method::ForkServer, peer_death);
}

#[test]
fn peer_death_spawn() {
    channel_test("peer_death", Method::Spawn, peer_death);
}

#[test]
fn peer_death_fork() {
    channel_test("peer_death", Method::Fork, peer_death);
}
