//! Sections 13 to 17 of the tour: pipes, queues and `wait`.

use super::{ms, section};
use multiproc::{
    Connection, JoinableQueue, Pipe, Process, PutTimeoutError, Queue, RecvError, RecvTimeoutError,
    TryPutError,
};
use std::time::{Duration, Instant};

/// Section 13's child: echoes raw bytes reversed, then answers each word with
/// its length until the parent closes its end; returns how many words it saw.
fn word_lengths(conn: Connection<usize, String>) -> usize {
    let mut raw = conn.recv_bytes().expect("recv_bytes");
    raw.reverse();
    conn.send_bytes(&raw).expect("send_bytes");
    let mut words = 0;
    loop {
        match conn.recv() {
            Ok(word) => {
                conn.send(word.chars().count()).expect("send");
                words += 1;
            }
            Err(RecvError::Disconnected) => return words,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Holds its end of a pipe until it is killed.
fn hold(_conn: Connection<u8>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

const PER_PRODUCER: u32 = 100;

/// Puts `(id, 0)`, `(id, 1)`, … into the queue and returns at once.
fn produce((id, q): (u32, Queue<(u32, u32)>)) -> u32 {
    for i in 0..PER_PRODUCER {
        q.put((id, i)).expect("put");
    }
    PER_PRODUCER
}

/// Squares numbers from `tasks` into `results` until it gets `None`, marking
/// each task done; returns how many it squared.
fn square_tasks((tasks, results): (JoinableQueue<Option<u64>>, Queue<u64>)) -> u32 {
    let mut squared = 0;
    loop {
        let task = tasks.get().expect("get");
        if let Some(n) = task {
            std::thread::sleep(Duration::from_millis(10));
            results.put(n * n).expect("put");
            squared += 1;
        }
        tasks.task_done().expect("task_done");
        if task.is_none() {
            return squared;
        }
    }
}

/// Receives a queue through a pipe and puts a greeting into it.
fn greet_through(conn: Connection<(), Queue<String>>) -> u32 {
    let q = conn.recv().expect("a queue through the pipe");
    let pid = std::process::id();
    q.put(format!("hello from pid {pid}")).expect("put");
    pid
}

/// Returns when the other end of its pipe is closed.
fn until_hangup(conn: Connection<u8>) {
    let _ = conn.recv();
}

/// Section 17's child: an odd number comes back ×10 through the queue, an
/// even one through the pipe; 0 ends it.
fn relay((conn, q): (Connection<u32>, Queue<u32>)) {
    while let Ok(n) = conn.recv() {
        match n {
            0 => return,
            n if n % 2 == 1 => q.put(n * 10).expect("put"),
            n => conn.send(n * 10).expect("send"),
        }
    }
}

/// Runs sections 13 to 17.
pub(crate) fn tour() {
    section(
        13,
        "Pipe: a typed two-way connection",
        "Pipe::with_types::<String, usize>(): this end sends String and receives usize, the child's \
         end the reverse;\n   send_bytes/recv_bytes move raw bytes. (Pipe::new::<T>() carries T both ways.)",
    );
    let (here, there) = Pipe::with_types::<String, usize>().expect("pipe");
    let mut p = Process::spawn(word_lengths, there).expect("spawn");
    here.send_bytes(b"raw bytes").expect("send_bytes");
    let back = here.recv_bytes().expect("recv_bytes");
    println!(
        "   send_bytes(b\"raw bytes\") -> reversed by the child -> recv_bytes() = b{:?}",
        String::from_utf8_lossy(&back)
    );
    assert_eq!(back, b"setyb war");
    for word in ["multiproc", "pipes", "queues"] {
        here.send(word.to_string()).expect("send");
        let n = here
            .recv_timeout(Duration::from_secs(10))
            .expect("the child answers");
        println!("   send({word:?}) -> recv() = {n}");
        assert_eq!(n, word.len());
    }
    assert!(!here.poll(Some(Duration::ZERO)), "nothing more to receive");
    drop(here);
    let words = p.join().expect("join");
    println!("   closed our end: the child's recv() returned Disconnected after {words} words");
    assert_eq!(words, 3);
    let (here, there) = Pipe::new::<u8>().expect("pipe");
    let mut p = Process::spawn(hold, there).expect("spawn");
    std::thread::sleep(Duration::from_millis(100)); // let it reach its function
    p.kill().expect("kill");
    let t = Instant::now();
    let err = here
        .recv_timeout(Duration::from_secs(10))
        .expect_err("the peer is dead");
    println!(
        "   the child holding the other end was killed: recv() = Err({err:?}) after {}",
        ms(t.elapsed())
    );
    assert_eq!(err, RecvTimeoutError::Disconnected);
    assert_eq!(p.join().expect_err("killed").signal(), Some(libc::SIGKILL));

    section(
        14,
        "Queue: many producers, messages in shared memory",
        "Three children put 100 messages each and exit; everything they put is there after they \
         have gone\n   (put returns once the message is in shared memory: no feeder thread to flush).",
    );
    let q = Queue::new().expect("queue");
    let mut producers: Vec<_> = (0..3)
        .map(|id| Process::spawn(produce, (id, q.clone())).expect("spawn"))
        .collect();
    for p in &mut producers {
        assert_eq!(p.join().expect("join"), PER_PRODUCER);
    }
    println!("   the 3 producers have exited: q.len() = {}", q.len());
    assert_eq!(q.len(), 3 * PER_PRODUCER as usize);
    let mut next = [0; 3];
    while let Ok((id, i)) = q.try_get() {
        assert_eq!(i, next[id as usize], "a producer's messages stay in order");
        next[id as usize] += 1;
    }
    println!("   try_get() took them all, each producer's in the order it put them: {next:?}");
    assert_eq!(next, [PER_PRODUCER; 3]);
    let t = Instant::now();
    let err = q
        .get_timeout(Duration::from_millis(20))
        .expect_err("the queue is empty");
    println!(
        "   get_timeout(20 ms) on the empty queue: Err({err:?}) after {}",
        ms(t.elapsed())
    );
    assert_eq!(err, RecvTimeoutError::Timeout);
    let bounded = Queue::bounded(2).expect("queue");
    bounded.put("a".to_string()).expect("put");
    bounded.put("b".to_string()).expect("put");
    let full = bounded.try_put("c".to_string()).expect_err("full");
    println!(
        "   Queue::bounded(2) with 2 messages: try_put(\"c\") = Err({full:?}) ({full}), and \"c\" comes back"
    );
    assert!(bounded.is_full());
    assert!(matches!(&full, TryPutError::Full(c) if c == "c"));
    let err = bounded
        .put_timeout(full.into_inner(), Duration::from_millis(20))
        .expect_err("still full");
    println!("   put_timeout(\"c\", 20 ms) = Err({err:?})");
    assert!(matches!(&err, PutTimeoutError::Timeout(c) if c == "c"));
    assert_eq!(bounded.get().expect("get"), "a");
    bounded.try_put(err.into_inner()).expect("room for one now");
    assert_eq!(bounded.get().expect("get"), "b");
    assert_eq!(bounded.get().expect("get"), "c");
    println!("   after one get(), try_put(\"c\") succeeds; the queue gives a, b, c");

    section(
        15,
        "JoinableQueue: task_done and join",
        "Two workers square 10 numbers (10 ms each); join() returns once every put has had its task_done().",
    );
    let tasks = JoinableQueue::new().expect("queue");
    let results = Queue::new().expect("queue");
    let mut workers: Vec<_> = (0..2)
        .map(|_| Process::spawn(square_tasks, (tasks.clone(), results.clone())).expect("spawn"))
        .collect();
    let t = Instant::now();
    for n in 1..=10 {
        tasks.put(Some(n)).expect("put");
    }
    tasks
        .join_timeout(Duration::from_secs(30))
        .expect("the workers finish");
    let squares: Vec<u64> = std::iter::from_fn(|| results.try_get().ok()).collect();
    println!(
        "   join() returned after {}: {} results, sum {}",
        ms(t.elapsed()),
        squares.len(),
        squares.iter().sum::<u64>()
    );
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "join waited for the work"
    );
    assert_eq!(squares.len(), 10);
    assert_eq!(squares.iter().sum::<u64>(), 385);
    tasks.put(None).expect("put");
    tasks.put(None).expect("put");
    let done: Vec<u32> = workers
        .iter_mut()
        .map(|w| w.join().expect("join"))
        .collect();
    println!("   after a None each, the workers returned how many they squared: {done:?}");
    assert_eq!(done.iter().sum::<u32>(), 10);
    let err = tasks.task_done().expect_err("no task is left");
    println!(
        "   one task_done() too many: {err} (is_misuse={})",
        err.is_misuse()
    );
    assert!(err.is_misuse());

    section(
        16,
        "a Queue through a Pipe",
        "Channels are messages too: the queue travels through the pipe (its handles as SCM_RIGHTS) \
         and the child puts into it.",
    );
    let (here, there) = Pipe::with_types::<Queue<String>, ()>().expect("pipe");
    let mut p = Process::spawn(greet_through, there).expect("spawn");
    let q = Queue::new().expect("queue");
    here.send(q.clone()).expect("send the queue");
    let pid = p.join().expect("join");
    let greeting = q.get_timeout(Duration::from_secs(10)).expect("get");
    println!("   sent a Queue through the pipe; the child put {greeting:?} into it");
    assert_eq!(greeting, format!("hello from pid {pid}"));

    section(
        17,
        "wait on queues, connections and sentinels",
        "multiproc::wait watches any mix of them and returns the indices of the ready ones.",
    );
    let (here, there) = Pipe::new::<u32>().expect("pipe");
    let q = Queue::new().expect("queue");
    let mut relay_child = Process::spawn(relay, (there, q.clone())).expect("spawn");
    let (stop, stop_there) = Pipe::new::<u8>().expect("pipe");
    let mut waiter = Process::spawn(until_hangup, stop_there).expect("spawn");
    let idle = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_millis(20)),
    )
    .expect("wait");
    println!("   wait([queue, connection, sentinel], 20 ms) = {idle:?} (nothing yet)");
    assert!(idle.is_empty());
    here.send(1).expect("send");
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   sent 1, a child puts 10 in the queue:       wait = {ready:?}");
    assert_eq!(ready, vec![0]);
    assert_eq!(q.get().expect("get"), 10);
    here.send(2).expect("send");
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   sent 2, it sends 20 back through the pipe:  wait = {ready:?}");
    assert_eq!(ready, vec![1]);
    assert_eq!(here.recv().expect("recv"), 20);
    drop(stop);
    let ready = multiproc::wait(
        &[&q, &here, &waiter.sentinel()],
        Some(Duration::from_secs(10)),
    )
    .expect("wait");
    println!("   another child returns:                      wait = {ready:?}");
    assert_eq!(ready, vec![2]);
    waiter.join().expect("join");
    here.send(0).expect("send");
    let ready = multiproc::wait(&[&q, &here], Some(Duration::from_secs(10))).expect("wait");
    println!(
        "   sent 0, the first child returns: wait([queue, connection]) = {ready:?} (end-of-file)"
    );
    assert_eq!(ready, vec![1]);
    assert_eq!(here.recv(), Err(RecvError::Disconnected));
    relay_child.join().expect("join");
}
