use super::*;
use crate::error::{PutTimeoutError, RecvTimeoutError, TryPutError, TryRecvError};
use crate::wire::Fd;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn smoke() {
    let q = Queue::new().unwrap();
    q.put(1u32).unwrap();
    q.put(2).unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert_eq!(q.try_get(), Err(TryRecvError::Empty));
    let (a, b) = Pipe::new().unwrap();
    a.send("x".to_string()).unwrap();
    assert_eq!(b.recv().unwrap(), "x");
}

#[test]
fn queue_order_across_wraps_and_growth() {
    let q = Queue::<Vec<u8>>::new().unwrap();
    // Interleave to wrap the ring many times, then fill far past its
    // initial 256 KiB so that it grows with wrapped data inside.
    for round in 0..3u8 {
        for i in 0..5000u32 {
            q.put(vec![round; (i % 200) as usize]).unwrap();
            if i % 3 == 0 {
                q.get().unwrap();
            }
        }
    }
    let n = q.len();
    assert!(n > 9000, "{n}");
    let mut total = 0;
    while let Ok(v) = q.try_get() {
        assert!(v.iter().all(|b| *b == v.first().copied().unwrap_or(0)));
        total += 1;
    }
    assert_eq!(total, n);
    assert!(q.is_empty());
}

#[test]
fn grown_ring_keeps_fifo_order() {
    let q = Queue::<u64>::new().unwrap();
    for i in 0..200_000u64 {
        q.put(i).unwrap();
        if i % 2 == 0 {
            assert_eq!(q.get().unwrap(), i / 2);
        }
    }
    for i in 100_000..200_000u64 {
        assert_eq!(q.get().unwrap(), i);
    }
    // Emptied after growing 16x: shrunk back, and still works.
    q.put(7).unwrap();
    assert_eq!(q.get().unwrap(), 7);
}

#[test]
fn large_message_and_handles_go_through_the_socket() {
    let q = Queue::<(Vec<u8>, Option<Fd>)>::new().unwrap();
    let big = vec![0xabu8; 3 << 20];
    q.put((big.clone(), None)).unwrap();
    let file = std::fs::File::open("/proc/self/exe").unwrap();
    q.put((vec![1], Some(Fd::from(file)))).unwrap();
    q.put((vec![2], None)).unwrap();
    assert_eq!(q.get().unwrap().0, big);
    let (v, fd) = q.get().unwrap();
    assert_eq!(v, vec![1]);
    assert!(fd.is_some());
    assert!(matches!(q.get().unwrap(), (v, None) if v == vec![2]));
}

#[test]
fn bounded_queue_blocks_and_times_out() {
    let q = Queue::bounded(2).unwrap();
    q.put(1u8).unwrap();
    q.try_put(2).unwrap();
    assert!(q.is_full());
    assert_eq!(q.try_put(3), Err(TryPutError::Full(3)));
    let t = Instant::now();
    assert_eq!(q.put_timeout(4, ms(50)), Err(PutTimeoutError::Timeout(4)));
    assert!(t.elapsed() >= ms(50));
    let q2 = q.clone();
    let taker = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        q2.get().unwrap()
    });
    q.put(5).unwrap(); // waits for the taker
    assert_eq!(taker.join().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get().unwrap(), 5);
}

/// A producer waiting for room looks for a batch of it (an eighth of the
/// bound), yet one record leaving is enough for a `put_timeout` and a
/// `put` to go on. (The deadline's last try, for a record taken while the
/// producer was still spinning, is a race this test cannot pin down.)
#[test]
fn bounded_queue_room_for_one_is_enough() {
    let q = Queue::bounded(32).unwrap();
    for i in 0..32u32 {
        q.try_put(i).unwrap();
    }
    let q2 = q.clone();
    let taker = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        q2.get().unwrap()
    });
    let t = Instant::now();
    assert_eq!(q.put_timeout(32, ms(400)), Ok(()));
    assert!(t.elapsed() >= ms(40), "put_timeout did not wait for room");
    assert_eq!(taker.join().unwrap(), 0);
    assert!(q.is_full());
    let q2 = q.clone();
    let taker = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        q2.get().unwrap()
    });
    q.put(33).unwrap();
    assert_eq!(taker.join().unwrap(), 1);
    assert_eq!(q.len(), 32);
    for i in 2..34 {
        assert_eq!(q.get().unwrap(), i);
    }
}

/// A producer held at the bound that sees one record leave while it spins
/// (looking for a batch of room) and then nothing more takes that room at
/// once: it never sleeps on a bell that the consumer has no reason to ring
/// again. (It slept a whole 100 ms slice when it asked for a batch of room
/// after registering as a sleeper: 37 puts of 40 took 100 ms.)
#[test]
fn bounded_queue_one_record_taken_while_spinning_is_enough() {
    use std::sync::{Arc, Barrier};
    let q = Queue::bounded(64).unwrap();
    let mut slowest = Duration::ZERO;
    for round in 0..40u32 {
        while q.len() < 64 {
            q.try_put(0).unwrap();
        }
        let start = Arc::new(Barrier::new(2));
        let (q2, start2) = (q.clone(), Arc::clone(&start));
        let taker = std::thread::spawn(move || {
            start2.wait();
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(20) {
                std::hint::spin_loop();
            }
            q2.get().unwrap()
        });
        start.wait();
        let t = Instant::now();
        if round % 2 == 0 {
            q.put(round).unwrap();
        } else {
            q.put_timeout(round, ms(500)).unwrap();
        }
        slowest = slowest.max(t.elapsed());
        taker.join().unwrap();
    }
    assert!(slowest < ms(50), "a put waited {slowest:?} with room");
}

/// Two consumers asleep, two messages put at once: both are woken, though
/// one ring of the bell woke them both and the first took its token. (The
/// second waited out a whole 100 ms sleep slice, every time.)
#[test]
fn two_sleeping_consumers_are_both_woken() {
    for _ in 0..5 {
        let q = Queue::<u32>::new().unwrap();
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let v = q.get_timeout(Duration::from_secs(5)).unwrap();
                    let at = Instant::now();
                    // Busy after its message: it passes no baton later.
                    std::thread::sleep(ms(200));
                    (v, at)
                })
            })
            .collect();
        std::thread::sleep(ms(50)); // Both past their spin, asleep.
        let put = Instant::now();
        q.put(1).unwrap();
        q.put(2).unwrap();
        let mut got: Vec<(u32, Instant)> = takers.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [1, 2]);
        let slowest = got.iter().map(|g| g.1 - put).max().unwrap();
        assert!(slowest < ms(50), "a consumer was woken after {slowest:?}");
    }
}

/// Two producers asleep at the bound of a queue of one: each record taken
/// wakes one of them.
#[test]
fn two_sleeping_producers_are_both_woken() {
    for _ in 0..5 {
        let q = Queue::<u32>::bounded(1).unwrap();
        q.put(0).unwrap();
        let putters: Vec<_> = (1..3)
            .map(|v| {
                let q = q.clone();
                std::thread::spawn(move || {
                    q.put_timeout(v, Duration::from_secs(5)).unwrap();
                    Instant::now()
                })
            })
            .collect();
        std::thread::sleep(ms(50)); // Both past their spin, asleep.
        let first = Instant::now();
        assert_eq!(q.get().unwrap(), 0);
        std::thread::sleep(ms(5));
        let second = q.get_timeout(Duration::from_secs(5)).unwrap();
        let took = Instant::now();
        let third = q.get_timeout(Duration::from_secs(5)).unwrap();
        let mut both = [second, third];
        both.sort();
        assert_eq!(both, [1, 2]);
        let done: Vec<Instant> = putters.into_iter().map(|t| t.join().unwrap()).collect();
        let last = done.into_iter().max().unwrap();
        assert!(
            last.saturating_duration_since(took) < ms(50),
            "the second producer put {:?} after its room appeared ({:?} after the first)",
            last.saturating_duration_since(took),
            last - first
        );
    }
}

#[test]
fn get_timeout_honours_deadline_and_wakes_on_put() {
    let q = Queue::<u32>::new().unwrap();
    let t = Instant::now();
    assert_eq!(q.get_timeout(ms(30)), Err(RecvTimeoutError::Timeout));
    assert!(t.elapsed() >= ms(30));
    let q2 = q.clone();
    let putter = std::thread::spawn(move || {
        std::thread::sleep(ms(100));
        q2.put(9).unwrap();
    });
    assert_eq!(q.get_timeout(Duration::from_secs(20)).unwrap(), 9);
    putter.join().unwrap();
}

#[test]
fn wrong_type_is_a_codec_fault_and_the_queue_goes_on() {
    let q = Queue::<String>::new().unwrap();
    q.put("ok".into()).unwrap();
    // The same queue seen with another type: bytes that are no u64 list.
    let raw: Queue<Vec<u64>> = Queue {
        shared: q.shared.clone(),
        _type: std::marker::PhantomData,
    };
    raw.put(vec![u64::MAX; 3]).unwrap();
    q.put("after".into()).unwrap();
    assert_eq!(q.get().unwrap(), "ok");
    match q.get() {
        Err(crate::RecvError::Failed(f)) => assert!(f.is_codec(), "{f}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.get().unwrap(), "after");
}

#[test]
fn pipe_bytes_types_and_hangup() {
    let (a, b) = Pipe::new::<u32>().unwrap();
    a.send_bytes(b"abc").unwrap();
    a.send(5).unwrap();
    assert!(
        b.recv()
            .is_err_and(|e| matches!(e, crate::RecvError::Failed(ref f) if f.is_codec()))
    );
    assert_eq!(b.recv().unwrap(), 5);
    assert_eq!(b.try_recv(), Err(TryRecvError::Empty));
    a.send(6).unwrap();
    drop(a);
    // What was sent before the hang-up is still received.
    assert_eq!(b.recv().unwrap(), 6);
    assert_eq!(b.recv(), Err(crate::RecvError::Disconnected));
    assert_eq!(b.recv_timeout(ms(10)), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn pipe_send_waits_for_room_then_sees_hangup() {
    let (a, b) = Pipe::new::<Vec<u8>>().unwrap();
    let chunk = vec![1u8; 32 << 10];
    let mut sent = 0;
    // Fill the 256 KiB ring, then drop the reader: the next send must not hang.
    let reader = std::thread::spawn(move || {
        std::thread::sleep(ms(100));
        drop(b);
    });
    let res = loop {
        match a.send(chunk.clone()) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100, "send never noticed the reader went away");
    };
    assert!(matches!(res, crate::SendError::Disconnected(_)));
    reader.join().unwrap();
}

#[test]
fn pipe_large_and_duplex_typed() {
    let (a, b) = Pipe::with_types::<Vec<u8>, usize>().unwrap();
    let big = vec![7u8; 5 << 20];
    let t = std::thread::spawn(move || {
        let v = b.recv().unwrap();
        b.send(v.len()).unwrap();
        b.recv_bytes().unwrap()
    });
    a.send(big).unwrap();
    assert_eq!(a.recv().unwrap(), 5 << 20);
    a.send_bytes(&vec![3u8; 1 << 20]).unwrap();
    assert_eq!(t.join().unwrap().len(), 1 << 20);
}

#[test]
fn wait_sees_queue_and_connection() {
    let q = Queue::<u8>::new().unwrap();
    let (a, b) = Pipe::new::<u8>().unwrap();
    assert_eq!(
        crate::wait(&[&q, &b], Some(ms(20))).unwrap(),
        Vec::<usize>::new()
    );
    let a2 = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        a.send(1).unwrap();
        a
    });
    assert_eq!(
        crate::wait(&[&q, &b], Some(Duration::from_secs(20))).unwrap(),
        vec![1]
    );
    let a = a2.join().unwrap();
    assert_eq!(b.recv().unwrap(), 1);
    q.put(3).unwrap();
    assert_eq!(crate::wait(&[&q, &b], None).unwrap(), vec![0]);
    drop(a);
    assert_eq!(
        crate::wait(&[&b], Some(Duration::from_secs(20))).unwrap(),
        vec![0]
    );
}

#[test]
fn joinable_queue_counts_tasks() {
    let q = JoinableQueue::new().unwrap();
    q.put(1u8).unwrap();
    q.put(2).unwrap();
    assert!(q.join_timeout(ms(20)).unwrap_err().is_timeout());
    q.get().unwrap();
    q.task_done().unwrap();
    q.get().unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        q2.task_done().unwrap();
    });
    q.join_timeout(Duration::from_secs(20)).unwrap();
    t.join().unwrap();
    assert!(q.task_done().unwrap_err().is_misuse());
}

#[test]
fn queue_travels_through_a_pipe_and_a_pipe_through_a_queue() {
    let (a, b) = Pipe::new::<Queue<String>>().unwrap();
    let q = Queue::new().unwrap();
    a.send(q.clone()).unwrap();
    let q2 = b.recv().unwrap();
    q2.put("via copy".into()).unwrap();
    assert_eq!(q.get().unwrap(), "via copy");
    let cq = Queue::<Connection<u8>>::new().unwrap();
    let (x, y) = Pipe::new().unwrap();
    cq.put(y).unwrap();
    let y = cq.get().unwrap();
    x.send(4).unwrap();
    assert_eq!(y.recv().unwrap(), 4);
}

/// A user-defined waitable: ready when its socket has a message.
struct Readable(std::os::fd::OwnedFd);

impl crate::Waitable for Readable {
    fn ready_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }
}

#[test]
fn wait_reports_every_ready_object_not_only_channels() {
    let (x, y) = crate::sys::socket::seqpacket_pair().unwrap();
    crate::sys::socket::send_msg(std::os::fd::AsFd::as_fd(&x), &[b"!"], &[], false).unwrap();
    let user = Readable(y);
    let q = Queue::<u8>::new().unwrap();
    q.put(1).unwrap();
    let ready = crate::wait(&[&q, &user], Some(Duration::from_secs(10))).unwrap();
    assert_eq!(ready, vec![0, 1]);
}

#[test]
fn streamed_send_to_a_reader_that_goes_away_fails() {
    let (a, b) = Pipe::new::<Vec<u8>>().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        drop(b);
    });
    // 8 MiB streams through the 256 KiB ring: the sender waits for room
    // until the reader is gone, then reports it.
    let r = a.send(vec![0u8; 8 << 20]);
    assert!(matches!(r, Err(crate::SendError::Disconnected(_))), "{r:?}");
    t.join().unwrap();
}

#[test]
fn streamed_messages_interleave_with_small_ones() {
    let (a, b) = Pipe::new::<Vec<u8>>().unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..6u8 {
            let n = if i % 2 == 0 { 3 << 20 } else { 10 };
            b.send(vec![i; n]).unwrap();
        }
        b.send_bytes(&vec![9u8; (1 << 20) + 3]).unwrap();
    });
    for i in 0..6u8 {
        let v = a.recv().unwrap();
        assert_eq!(v.len(), if i % 2 == 0 { 3 << 20 } else { 10 });
        assert!(v.iter().all(|&x| x == i));
    }
    assert_eq!(a.recv_bytes().unwrap(), vec![9u8; (1 << 20) + 3]);
    t.join().unwrap();
}
