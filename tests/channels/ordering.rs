//! Sections 1 and 2: nothing lost or duplicated, messages larger than the ring.

use super::*;

// --------------------------------------- 1. nothing lost, nothing duplicated

/// Messages of the many-to-many scenario, all producers together: the
/// issue's million, in debug builds too (under a second per start method,
/// unoptimised, on two cores).
const MANY_MESSAGES: u32 = 1_000_000;
const PRODUCERS: u8 = 4;
const CONSUMERS: usize = 4;

/// `Some((producer, sequence number))`, or `None`: stop.
type Numbered = Option<(u8, u32)>;

fn produce_numbered((q, id, n): (Queue<Numbered>, u8, u32)) {
    for seq in 0..n {
        q.put(Some((id, seq))).expect("put");
    }
}

/// What one consumer saw: per producer, the sequence numbers in the order
/// they arrived.
fn consume_numbered(q: Queue<Numbered>) -> Vec<Vec<u32>> {
    let mut seen = vec![Vec::new(); PRODUCERS as usize];
    loop {
        match q.get_timeout(JOIN) {
            Ok(Some((id, seq))) => seen[id as usize].push(seq),
            Ok(None) => return seen,
            Err(e) => panic!("consumer: get: {e}"),
        }
    }
}

fn many_to_many(m: Method) {
    let before = warm_baseline(m);
    {
        let per = MANY_MESSAGES / u32::from(PRODUCERS);
        let q = Queue::<Numbered>::new().unwrap();
        let started = Instant::now();
        let mut consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| Kid::spawn(builder(m), consume_numbered, q.clone()))
            .collect();
        let mut producers: Vec<_> = (0..PRODUCERS)
            .map(|id| Kid::spawn(builder(m), produce_numbered, (q.clone(), id, per)))
            .collect();
        for p in &mut producers {
            p.finish("producer");
        }
        for _ in 0..CONSUMERS {
            q.put(None).unwrap();
        }
        let reports: Vec<Vec<Vec<u32>>> =
            consumers.iter_mut().map(|c| c.finish("consumer")).collect();
        let elapsed = started.elapsed();

        // Each consumer saw each producer's numbers in increasing order.
        for (c, report) in reports.iter().enumerate() {
            for (p, seqs) in report.iter().enumerate() {
                if let Some(w) = seqs.windows(2).find(|w| w[0] >= w[1]) {
                    panic!(
                        "{m:?}: consumer {c} got producer {p}'s {} after {}",
                        w[1], w[0]
                    );
                }
            }
        }
        // The union is every message exactly once, and the sums agree.
        let mut total = 0u64;
        let mut sum = 0u64;
        for p in 0..PRODUCERS as usize {
            let mut hits = vec![0u8; per as usize];
            for report in &reports {
                for &seq in &report[p] {
                    assert!(seq < per, "{m:?}: producer {p} never sent {seq}");
                    hits[seq as usize] += 1;
                    sum += u64::from(seq);
                    total += 1;
                }
            }
            let lost: Vec<usize> = (0..per as usize).filter(|&s| hits[s] == 0).collect();
            let dup: Vec<usize> = (0..per as usize).filter(|&s| hits[s] > 1).collect();
            assert!(
                lost.is_empty() && dup.is_empty(),
                "{m:?}: producer {p}: {} lost (first {:?}), {} duplicated (first {:?})",
                lost.len(),
                lost.first(),
                dup.len(),
                dup.first()
            );
        }
        let n = u64::from(per);
        assert_eq!(total, n * u64::from(PRODUCERS), "{m:?}: message count");
        assert_eq!(
            sum,
            n * (n - 1) / 2 * u64::from(PRODUCERS),
            "{m:?}: checksum"
        );
        assert!(q.is_empty(), "{m:?}: {} left in the queue", q.len());
        eprintln!(
            "{m:?}: {} messages, {PRODUCERS} producers x {CONSUMERS} consumers: {elapsed:?}",
            total
        );
    }
    before.assert_no_leaks(&format!("{m:?}: many to many"));
}

#[test]
fn many_to_many_forkserver() {
    channel_test("many_to_many", Method::ForkServer, many_to_many);
}

#[test]
fn many_to_many_spawn() {
    channel_test("many_to_many", Method::Spawn, many_to_many);
}

#[test]
fn many_to_many_fork() {
    channel_test("many_to_many", Method::Fork, many_to_many);
}

// ------------------------------------------- 2. messages larger than the ring

/// The large message through a queue (whose ring starts at 256 KiB and
/// sends anything over 1 MiB as a shared-memory file). Unoptimised, encoding
/// and decoding a `Vec<u8>` costs about 70 ns a byte (serde goes element by
/// element), 18 s for 256 MiB: debug builds send 64 MiB.
const QUEUE_BIG: usize = if DEBUG { 64 << 20 } else { 256 << 20 };
/// The large message each way through a pipe (which streams it through its
/// 256 KiB ring in chunks): 64 MiB in release, 32 MiB in debug builds (see
/// [`QUEUE_BIG`]).
const PIPE_BIG: usize = if DEBUG { 32 << 20 } else { 64 << 20 };

fn put_big((q, len): (Queue<Vec<u8>>, usize)) {
    q.put(vec![1]).expect("put before");
    q.put(big_message(len)).expect("put big");
    q.put(vec![2]).expect("put after");
}

fn big_through_queue(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<Vec<u8>>::new().unwrap();
        let t = Instant::now();
        let mut child = Kid::spawn(builder(m), put_big, (q.clone(), QUEUE_BIG));
        assert_eq!(q.get_timeout(JOIN).unwrap(), vec![1], "{m:?}");
        let big = q.get_timeout(JOIN).unwrap();
        assert_eq!(q.get_timeout(JOIN).unwrap(), vec![2], "{m:?}: order");
        child.finish("putter");
        eprintln!(
            "{m:?}: {} MiB through a queue: {:?}",
            QUEUE_BIG >> 20,
            t.elapsed()
        );
        assert_eq!(big.len(), QUEUE_BIG, "{m:?}");
        assert_eq!(first_bad_block(&big), None, "{m:?}");
        assert!(q.is_empty(), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: big message through a queue"));
}

/// Receives a small message, a large one and a small one, then sends the
/// same back (the large one rebuilt, not echoed); `Some(offset)` if the
/// large one it got was wrong there.
fn echo_big((conn, len): (Connection<Vec<u8>>, usize)) -> Option<usize> {
    assert_eq!(conn.recv_timeout(JOIN).expect("recv before"), vec![3]);
    let big = conn.recv_timeout(JOIN).expect("recv big");
    assert_eq!(conn.recv_timeout(JOIN).expect("recv after"), vec![4]);
    assert_eq!(big.len(), len);
    let bad = first_bad_block(&big);
    drop(big);
    conn.send(vec![1]).expect("send before");
    conn.send(big_message(len)).expect("send big");
    conn.send(vec![2]).expect("send after");
    bad
}

fn big_through_pipe(m: Method) {
    let before = warm_baseline(m);
    {
        let (here, there) = Pipe::new::<Vec<u8>>().unwrap();
        let t = Instant::now();
        let mut child = Kid::spawn(builder(m), echo_big, (there, PIPE_BIG));
        // `send` has no timeout: the suite's watchdog bounds it.
        here.send(vec![3]).unwrap();
        here.send(big_message(PIPE_BIG)).unwrap();
        here.send(vec![4]).unwrap();
        assert_eq!(here.recv_timeout(JOIN).unwrap(), vec![1], "{m:?}");
        let big = here.recv_timeout(JOIN).unwrap();
        assert_eq!(here.recv_timeout(JOIN).unwrap(), vec![2], "{m:?}: order");
        assert_eq!(
            child.finish("echo"),
            None,
            "{m:?}: the child got a bad copy"
        );
        eprintln!(
            "{m:?}: {} MiB each way through a pipe: {:?}",
            PIPE_BIG >> 20,
            t.elapsed()
        );
        assert_eq!(big.len(), PIPE_BIG, "{m:?}");
        assert_eq!(first_bad_block(&big), None, "{m:?}");
        assert_eq!(
            here.recv_timeout(JOIN),
            Err(RecvTimeoutError::Disconnected),
            "{m:?}"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: big message through a pipe"));
}

// The start method only decides how the channel's handles reach the child;
// the large-message path is the same, so each kind of channel runs with two
// of the three methods (all three between them) to keep CI short.

#[test]
fn big_through_queue_forkserver() {
    channel_test("big_through_queue", Method::ForkServer, big_through_queue);
}

#[test]
fn big_through_queue_fork() {
    channel_test("big_through_queue", Method::Fork, big_through_queue);
}

#[test]
fn big_through_pipe_spawn() {
    channel_test("big_through_pipe", Method::Spawn, big_through_pipe);
}

#[test]
fn big_through_pipe_forkserver() {
    channel_test("big_through_pipe", Method::ForkServer, big_through_pipe);
}
