//! Sections 5 to 8: put then exit, back-pressure, JoinableQueue, wait.

use super::*;

// ------------------------------------------- 5. put, exit, and nothing lost

/// Messages a child puts just before it exits.
const PARTING: u32 = 10_000;
/// Every this many, the parting message is large enough (over 1 MiB) to
/// travel as a shared-memory file beside the ring.
const PARTING_BIG_EVERY: u32 = 2_500;
/// The parting message that carries a descriptor.
const PARTING_FD_AT: u32 = 5_000;
const PARTING_WORDS: &[u8] = b"written by a child that has exited\n";

/// A parting message: its number, a payload, and maybe a descriptor.
type Parting = (u32, Vec<u8>, Option<Fd>);

fn parting_payload(i: u32) -> Vec<u8> {
    if i % PARTING_BIG_EVERY == PARTING_BIG_EVERY - 1 {
        big_message((1 << 20) + i as usize)
    } else {
        i.to_le_bytes().to_vec()
    }
}

/// Puts [`PARTING`] messages on each channel and returns at once.
fn put_and_exit((q, sq, conn): (Queue<Parting>, SimpleQueue<u32>, Connection<u32, ()>)) {
    for i in 0..PARTING {
        let fd = (i == PARTING_FD_AT).then(|| {
            let (reader, writer) = common::pipe();
            std::fs::File::from(writer)
                .write_all(PARTING_WORDS)
                .expect("write");
            Fd::from(reader)
        });
        q.put((i, parting_payload(i), fd)).expect("put");
        sq.put(i).expect("simple put");
        // 10,000 small messages fit in the pipe's 256 KiB ring: the child
        // never waits for the parent, who joins it before reading.
        conn.send(i).expect("send");
    }
}

fn put_then_exit(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<Parting>::new().unwrap();
        let sq = SimpleQueue::<u32>::new().unwrap();
        let (here, there) = Pipe::with_types::<(), u32>().unwrap();
        let mut child = Kid::spawn(builder(m), put_and_exit, (q.clone(), sq.clone(), there));
        // Join first: the child is gone before anything is read.
        child.finish("putter");
        assert_eq!(child.exitcode(), Some(ExitStatus::Code(0)), "{m:?}");
        assert_eq!(q.len(), PARTING as usize, "{m:?}");
        for i in 0..PARTING {
            // try_get: everything must be there already, nothing is in flight.
            let (n, payload, fd) = q
                .try_get()
                .unwrap_or_else(|e| panic!("{m:?}: message {i}: {e}"));
            assert_eq!(n, i, "{m:?}");
            assert!(
                payload == parting_payload(i),
                "{m:?}: payload of message {i}"
            );
            assert_eq!(fd.is_some(), i == PARTING_FD_AT, "{m:?}: message {i}");
            if let Some(fd) = fd {
                let mut words = String::new();
                std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut words).unwrap();
                assert_eq!(words.as_bytes(), PARTING_WORDS, "{m:?}");
            }
            assert_eq!(sq.get(), Ok(i), "{m:?}: simple queue");
            assert_eq!(here.try_recv(), Ok(i), "{m:?}: pipe");
        }
        assert_eq!(q.try_get().map(|m| m.0), Err(TryRecvError::Empty), "{m:?}");
        assert!(sq.is_empty(), "{m:?}");
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: put then exit"));
}

#[test]
fn put_then_exit_forkserver() {
    channel_test("put_then_exit", Method::ForkServer, put_then_exit);
}

#[test]
fn put_then_exit_spawn() {
    channel_test("put_then_exit", Method::Spawn, put_then_exit);
}

#[test]
fn put_then_exit_fork() {
    channel_test("put_then_exit", Method::Fork, put_then_exit);
}

/// Messages carrying a descriptor that a child leaves waiting in an
/// unbounded queue: more than fit in the queue's socket buffer (about 280
/// with Linux's default 208 KiB), fewer than the usual 1024-descriptor limit
/// on descriptors in flight.
const HANDLE_BACKLOG: u32 = 600;

/// Puts [`HANDLE_BACKLOG`] messages each carrying a descriptor, each with a
/// short deadline: how many went in, and the first failure, if any.
fn put_handles(q: Queue<(u32, Fd)>) -> (u32, Option<String>) {
    for i in 0..HANDLE_BACKLOG {
        let fd = Fd::from(std::fs::File::open("/dev/null").expect("/dev/null"));
        match q.put_timeout((i, fd), ms(500)) {
            Ok(()) => {}
            Err(PutTimeoutError::Timeout(_)) => return (i, None),
            Err(e) => return (i, Some(e.to_string())),
        }
    }
    (HANDLE_BACKLOG, None)
}

/// Messages that carry descriptors wait in the queue's socket until a
/// consumer takes them, and the socket holds only so many (its send buffer,
/// `net.core.wmem_max`: thousands where that is 4 MiB, ~280 with Linux's
/// 208 KiB default). Past that, `put_timeout` times out (never blocks beyond
/// its deadline, never holds the queue's lock while it waits), and
/// everything put before is there: a child puts until full and exits; the
/// parent joins it first, then takes them all.
fn handle_backlog(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<(u32, Fd)>::new().unwrap();
        let mut child = Kid::spawn(builder(m), put_handles, q.clone());
        let put = match child.join_timeout(secs(20)) {
            Ok((n, None)) => n,
            Ok((i, Some(e))) => panic!("{m:?}: put_timeout #{i} failed other than by timeout: {e}"),
            Err(e) if e.is_timeout() => panic!(
                "{m:?}: the producer is stuck in put_timeout(500 ms) after {} messages carrying a descriptor",
                q.len()
            ),
            Err(e) => panic!("{m:?}: producer: {e}"),
        };
        assert!(
            put >= 100,
            "{m:?}: only {put} descriptor-carrying messages fit"
        );
        assert_eq!(q.len(), put as usize, "{m:?}");
        for i in 0..put {
            let (n, _fd) = q
                .try_get()
                .unwrap_or_else(|e| panic!("{m:?}: message {i}: {e}"));
            assert_eq!(n, i, "{m:?}");
        }
        assert!(q.is_empty(), "{m:?}");
        // Room again once taken.
        let fd = Fd::from(std::fs::File::open("/dev/null").unwrap());
        q.put_timeout((7, fd), secs(5)).unwrap();
        assert_eq!(q.get_timeout(secs(5)).unwrap().0, 7);
    }
    before.assert_no_leaks(&format!("{m:?}: handle backlog"));
}

#[test]
fn handle_backlog_forkserver() {
    channel_test("handle_backlog", Method::ForkServer, handle_backlog);
}

// ----------------------------------------- 6. bounded queue, back-pressure

/// Generous: a deadline may be overshot by this much on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn put_range((q, n): (Queue<u32>, u32)) {
    for i in 0..n {
        q.put(i).expect("put");
    }
}

fn take_one_after((q, pause_ms): (Queue<u32>, u64)) -> u32 {
    std::thread::sleep(ms(pause_ms));
    q.get_timeout(JOIN).expect("get")
}

/// `get_timeout(timeout_ms)` in a child: what it got (`None`: timed out)
/// and how long it took, in microseconds.
fn timed_get((q, timeout_ms): (Queue<u32>, u64)) -> (Option<u32>, u64) {
    let t = Instant::now();
    let got = match q.get_timeout(ms(timeout_ms)) {
        Ok(v) => Some(v),
        Err(RecvTimeoutError::Timeout) => None,
        Err(e) => panic!("get_timeout: {e}"),
    };
    (got, t.elapsed().as_micros() as u64)
}

fn bounded_backpressure(m: Method) {
    let before = warm_baseline(m);
    {
        // A producer blocks at the bound, and is woken at once by a get.
        let q = Queue::<u32>::bounded(4).unwrap();
        let mut child = Kid::spawn(builder(m), put_range, (q.clone(), 12));
        assert!(eventually(JOIN, || q.is_full()), "{m:?}: never filled");
        std::thread::sleep(ms(300));
        assert_eq!(q.len(), 4, "{m:?}: the bound holds");
        assert!(child.is_alive(), "{m:?}: the producer waits");
        let mut slowest = Duration::ZERO;
        for i in 0..12 {
            assert_eq!(q.get_timeout(JOIN), Ok(i), "{m:?}");
            if i + 4 < 12 {
                let t = Instant::now();
                assert!(
                    eventually(secs(5), || q.is_full()),
                    "{m:?}: producer not woken after get {i}"
                );
                slowest = slowest.max(t.elapsed());
            }
        }
        child.finish("bounded producer");
        assert!(
            slowest < secs(1),
            "{m:?}: a waiting producer took {slowest:?} to refill"
        );
        assert!(q.is_empty(), "{m:?}");

        // put_timeout on a full queue waits for its deadline, then gives the
        // value back.
        for i in 0..4 {
            q.try_put(i).unwrap();
        }
        let t = Instant::now();
        assert_eq!(
            q.put_timeout(99, ms(300)),
            Err(PutTimeoutError::Timeout(99)),
            "{m:?}"
        );
        let e = t.elapsed();
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: put_timeout(300 ms) took {e:?}"
        );
        assert_eq!(q.try_put(98), Err(TryPutError::Full(98)), "{m:?}");

        // ... and succeeds when another process makes room in time.
        let t = Instant::now();
        let mut taker = Kid::spawn(builder(m), take_one_after, (q.clone(), 200));
        assert_eq!(q.put_timeout(4, JOIN), Ok(()), "{m:?}");
        let e = t.elapsed();
        assert!(e >= ms(200) && e < JOIN, "{m:?}: put_timeout waited {e:?}");
        assert_eq!(taker.finish("taker"), 0, "{m:?}");
        for i in 1..=4 {
            assert_eq!(q.try_get(), Ok(i), "{m:?}");
        }

        // get_timeout in a child: the deadline on an empty queue ...
        let mut getter = Kid::spawn(builder(m), timed_get, (q.clone(), 300));
        let (got, micros) = getter.finish("timed getter");
        let e = Duration::from_micros(micros);
        assert_eq!(got, None, "{m:?}");
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: get_timeout(300 ms) took {e:?}"
        );
        // ... and a put from another process wakes it.
        let mut getter = Kid::spawn(builder(m), timed_get, (q.clone(), JOIN.as_millis() as u64));
        std::thread::sleep(ms(200));
        q.put(7).unwrap();
        let (got, micros) = getter.finish("waiting getter");
        assert_eq!(got, Some(7), "{m:?}");
        assert!(
            Duration::from_micros(micros) < SLACK,
            "{m:?}: woken after {micros} µs"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: bounded queue"));
}

#[test]
fn bounded_backpressure_forkserver() {
    channel_test(
        "bounded_backpressure",
        Method::ForkServer,
        bounded_backpressure,
    );
}

#[test]
fn bounded_backpressure_spawn() {
    channel_test("bounded_backpressure", Method::Spawn, bounded_backpressure);
}

#[test]
fn bounded_backpressure_fork() {
    channel_test("bounded_backpressure", Method::Fork, bounded_backpressure);
}

// --------------------------------------------------- 7. JoinableQueue

/// Squares tasks onto `out`, marking each done after its result is out;
/// stops at `None` (also a task). Returns how many it squared.
fn square_tasks((q, out): (JoinableQueue<Option<u32>>, Queue<u64>)) -> u32 {
    let mut n = 0;
    loop {
        match q.get_timeout(JOIN).expect("get") {
            Some(x) => {
                out.put(u64::from(x) * u64::from(x)).expect("put");
                q.task_done().expect("task_done");
                n += 1;
            }
            None => {
                q.task_done().expect("task_done");
                return n;
            }
        }
    }
}

/// Takes one task, says "ready", and never marks it done.
fn take_and_hang((q, ready): (JoinableQueue<Option<u32>>, Fd)) {
    q.get_timeout(JOIN).expect("get");
    say_ready(ready);
    loop {
        std::thread::sleep(secs(1));
    }
}

const TASKS: u32 = 300;

fn joinable(m: Method) {
    let before = warm_baseline(m);
    {
        let q = JoinableQueue::<Option<u32>>::new().unwrap();
        let out = Queue::<u64>::new().unwrap();
        let mut workers: Vec<_> = (0..3)
            .map(|_| Kid::spawn(builder(m), square_tasks, (q.clone(), out.clone())))
            .collect();
        for x in 0..TASKS {
            q.put(Some(x)).unwrap();
        }
        q.join_timeout(JOIN)
            .unwrap_or_else(|e| panic!("{m:?}: join: {e}"));
        // Every task was marked done after its result was put: all are there.
        assert_eq!(out.len(), TASKS as usize, "{m:?}: join returned early");
        let mut sum = 0;
        while let Ok(r) = out.try_get() {
            sum += r;
        }
        let n = u64::from(TASKS);
        assert_eq!(sum, (n - 1) * n * (2 * n - 1) / 6, "{m:?}: sum of squares");
        for _ in &workers {
            q.put(None).unwrap();
        }
        let done: u32 = workers.iter_mut().map(|w| w.finish("worker")).sum();
        assert_eq!(done, TASKS, "{m:?}");
        q.join_timeout(JOIN).unwrap();
        assert!(q.is_empty(), "{m:?}");

        // A worker killed between get and task_done: join times out.
        let q = JoinableQueue::<Option<u32>>::new().unwrap();
        q.put(Some(1)).unwrap();
        let (reader, writer) = common::pipe();
        let mut v = Kid::spawn(victim(m), take_and_hang, (q.clone(), Fd::from(writer)));
        let line = read_line_until(reader.as_fd(), Instant::now() + JOIN);
        assert_eq!(line.expect("the worker never said ready"), "ready", "{m:?}");
        v.kill_and_reap("worker");
        assert!(q.is_empty(), "{m:?}");
        let t = Instant::now();
        let err = q.join_timeout(ms(300)).unwrap_err();
        let e = t.elapsed();
        assert!(err.is_timeout(), "{m:?}: {err}");
        assert!(
            e >= ms(300) && e < ms(300) + SLACK,
            "{m:?}: join_timeout(300 ms) took {e:?}"
        );
        // The parent can account for the lost task itself.
        q.task_done().unwrap();
        q.join_timeout(secs(1)).unwrap();
        assert!(
            q.task_done().unwrap_err().is_misuse(),
            "{m:?}: one task_done too many"
        );
    }
    before.assert_no_leaks(&format!("{m:?}: joinable queue"));
}

#[test]
fn joinable_forkserver() {
    channel_test("joinable", Method::ForkServer, joinable);
}

#[test]
fn joinable_spawn() {
    channel_test("joinable", Method::Spawn, joinable);
}

#[test]
fn joinable_fork() {
    channel_test("joinable", Method::Fork, joinable);
}

// ------------------------------------------------------------------ 8. wait

/// Waits for a go, sends 7, waits for a second go, returns (closing `conn`).
fn send_on_go((go, conn): (Queue<()>, Connection<u32>)) {
    go.get_timeout(JOIN).expect("go");
    conn.send(7).expect("send");
    go.get_timeout(JOIN).expect("second go");
}

/// Waits for a go, puts 8, waits for a second go, returns.
fn put_on_go((go, q): (Queue<()>, Queue<u32>)) {
    go.get_timeout(JOIN).expect("go");
    q.put(8).expect("put");
    go.get_timeout(JOIN).expect("second go");
}

/// Waits for a go, then returns.
fn exit_on_go(go: Queue<()>) {
    go.get_timeout(JOIN).expect("go");
}

fn wait_across(m: Method) {
    let before = warm_baseline(m);
    {
        let q = Queue::<u32>::new().unwrap();
        let gos: Vec<Queue<()>> = (0..3).map(|_| Queue::new().unwrap()).collect();
        // The pipe is made after the other children started: a Fork child
        // inherits every descriptor of its parent, and one holding a copy of
        // `there` would keep `here` from seeing end-of-file.
        let mut putter = Kid::spawn(builder(m), put_on_go, (gos[1].clone(), q.clone()));
        let mut exiter = Kid::spawn(builder(m), exit_on_go, gos[2].clone());
        let (here, there) = Pipe::new::<u32>().unwrap();
        let mut sender = Kid::spawn(builder(m), send_on_go, (gos[0].clone(), there));

        let wait = |objects: &[&dyn multiproc::Waitable], timeout| {
            multiproc::wait(objects, Some(timeout)).unwrap_or_else(|e| panic!("{m:?}: wait: {e}"))
        };
        let t = Instant::now();
        let ready = wait(&[&here, &q, &exiter.sentinel()], ms(200));
        let e = t.elapsed();
        assert_eq!(ready, Vec::<usize>::new(), "{m:?}: nothing is ready yet");
        assert!(
            e >= ms(200) && e < ms(200) + SLACK,
            "{m:?}: wait(200 ms) took {e:?}"
        );

        // Each becomes ready in turn, made so by another process.
        gos[0].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![0],
            "{m:?}: connection"
        );
        assert_eq!(here.try_recv(), Ok(7), "{m:?}");
        gos[1].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![1],
            "{m:?}: queue"
        );
        assert_eq!(q.try_get(), Ok(8), "{m:?}");
        gos[2].put(()).unwrap();
        assert_eq!(
            wait(&[&here, &q, &exiter.sentinel()], JOIN),
            vec![2],
            "{m:?}: sentinel"
        );
        exiter.finish("exiter");
        // A peer's end-of-file counts as ready.
        gos[0].put(()).unwrap();
        assert_eq!(wait(&[&here, &q], JOIN), vec![0], "{m:?}: end-of-file");
        assert_eq!(here.try_recv(), Err(TryRecvError::Disconnected), "{m:?}");
        sender.finish("sender");
        // Several at once: all of them are reported.
        gos[1].put(()).unwrap();
        putter.finish("putter");
        q.put(9).unwrap();
        assert_eq!(
            wait(&[&here, &q, &putter.sentinel()], JOIN),
            vec![0, 1, 2],
            "{m:?}: all"
        );
        assert_eq!(q.try_get(), Ok(9), "{m:?}");
    }
    before.assert_no_leaks(&format!("{m:?}: wait"));
}

#[test]
fn wait_across_forkserver() {
    channel_test("wait_across", Method::ForkServer, wait_across);
}

#[test]
fn wait_across_spawn() {
    channel_test("wait_across", Method::Spawn, wait_across);
}

#[test]
fn wait_across_fork() {
    channel_test("wait_across", Method::Fork, wait_across);
}
