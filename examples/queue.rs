//! Queues: the "Hi" exchange of seed 004 ("6.1. Queue") over one `Queue`,
//! then producers and consumers sharing a `JoinableQueue` (seed 001: "a
//! queue supports multiple producers and multiple consumers").
//!
//! ```text
//! $ cargo run --release --example queue
//! HiHiHiHiHiHiHiHiHi
//!
//! JoinableQueue: 3 producers, 2 consumers, 12 tasks
//! Producer 1 (pid 4245) put tasks 1 to 4
//! Consumer 1 (pid 4243) squared 1: 1
//! Producer 2 (pid 4246) put tasks 5 to 8
//! Consumer 2 (pid 4244) squared 2: 4
//! ...
//! Consumer 2 (pid 4244) squared 12: 144
//! tasks.join() returned: all 12 tasks are done
//! consumer 1 handled 6 tasks, consumer 2 handled 6 tasks
//! Sum of the squares: 650
//! ```
//!
//! The first line is the seed's whole output (the number of "Hi" is random);
//! in the second part the children's lines interleave differently on every
//! run. Python's version of the first part:
//!
//! ```python
//! def make_tuple(queue):
//!     num = random.randint(1, 9)
//!     queue.put(("Hi", num))
//!     time.sleep(1)
//!     print(queue.get()) # Get from 'make_string'
//!
//! def make_string(queue):
//!     tup = queue.get()
//!     result = ""
//!     substr, num = tup
//!     for _ in range(num):
//!         result += substr
//!     queue.put(result)
//!
//! queue = Queue()
//! p1 = Process(target=make_tuple, args=(queue,))
//! p2 = Process(target=make_string, args=(queue,))
//! p1.start(); p2.start()
//! ```
//!
//! A `Queue<T>` carries one type, so the question and the answer are two
//! variants of one enum. Python's `make_tuple` sleeps a second and hopes that
//! `make_string` has taken the question by then; here, if it has not, the
//! question comes back to `make_tuple`, which puts it back and looks again.

use multiproc::{JoinableQueue, Process, Queue};
use serde::{Deserialize, Serialize};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A pseudo-random integer in `1..=9`, from the clock and the pid (std only,
/// no `rand` crate): a splitmix64 step over both.
fn random_1_to_9() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % 9) as u32 + 1
}

// ---------------------------------------------------------------------------
// Part 1: the seed's exchange over one queue.
// ---------------------------------------------------------------------------

/// What goes through the queue of part 1.
#[derive(Debug, Serialize, Deserialize)]
enum Message {
    /// `make_tuple`'s `("Hi", num)`.
    Question(String, u32),
    /// `make_string`'s answer.
    Answer(String),
}

/// Puts the question, waits a second, then prints the answer; returns both.
fn make_tuple(queue: Queue<Message>) -> (u32, String) {
    let num = random_1_to_9();
    queue
        .put(Message::Question("Hi".to_string(), num))
        .expect("cannot put the question");
    thread::sleep(Duration::from_secs(1));
    loop {
        match queue.get().expect("cannot get the answer") {
            Message::Answer(answer) => {
                println!("{answer}");
                return (num, answer);
            }
            // make_string was slower than a second: let it have its question.
            question => {
                queue.put(question).expect("cannot put the question back");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Takes the question and puts the answer; returns it.
fn make_string(queue: Queue<Message>) -> String {
    let Message::Question(substr, num) = queue.get().expect("cannot get the question") else {
        panic!("make_string expected a question");
    };
    let mut result = String::new();
    for _ in 0..num {
        result += &substr;
    }
    queue
        .put(Message::Answer(result.clone()))
        .expect("cannot put the answer");
    result
}

// ---------------------------------------------------------------------------
// Part 2: producers and consumers around a JoinableQueue.
// ---------------------------------------------------------------------------

const PRODUCERS: u64 = 3;
const CONSUMERS: u32 = 2;
const TASKS_EACH: u64 = 4;

/// A task is a number to square; `None` tells a consumer to stop.
type Tasks = JoinableQueue<Option<u64>>;

/// What a consumer reports for each task: `(consumer, n, n * n)`.
type Results = Queue<(u32, u64, u64)>;

/// Puts its share of the numbers `1..=PRODUCERS * TASKS_EACH`; returns how
/// many it put.
fn producer((id, tasks): (u64, Tasks)) -> u64 {
    let first = (id - 1) * TASKS_EACH + 1;
    let last = id * TASKS_EACH;
    for n in first..=last {
        tasks.put(Some(n)).expect("cannot put a task");
    }
    println!(
        "Producer {id} (pid {}) put tasks {first} to {last}",
        std::process::id()
    );
    TASKS_EACH
}

/// Squares numbers until it gets `None`, marking each task done after
/// reporting its result; returns how many numbers it squared.
fn consumer((id, tasks, results): (u32, Tasks, Results)) -> u32 {
    let mut handled = 0;
    loop {
        let task = tasks.get().expect("cannot get a task");
        if let Some(n) = task {
            thread::sleep(Duration::from_millis(20)); // some work
            println!(
                "Consumer {id} (pid {}) squared {n}: {}",
                std::process::id(),
                n * n
            );
            results.put((id, n, n * n)).expect("cannot put a result");
            handled += 1;
        }
        tasks.task_done().expect("more task_done() than tasks");
        if task.is_none() {
            return handled;
        }
    }
}

fn main() {
    multiproc::init();

    // Part 1.
    let queue = Queue::new().expect("cannot create the queue");
    let mut p1 = Process::spawn(make_tuple, queue.clone()).expect("cannot start p1");
    let mut p2 = Process::spawn(make_string, queue.clone()).expect("cannot start p2");
    let (num, received) = p1.join().expect("make_tuple failed");
    let made = p2.join().expect("make_string failed");
    assert!((1..=9).contains(&num), "{num} is not in 1..=9");
    assert_eq!(made, "Hi".repeat(num as usize));
    assert_eq!(received, made, "make_tuple received another string");
    assert!(queue.is_empty(), "the queue holds a stray message");

    // Part 2.
    let total = PRODUCERS * TASKS_EACH;
    println!("\nJoinableQueue: {PRODUCERS} producers, {CONSUMERS} consumers, {total} tasks");
    let tasks: Tasks = JoinableQueue::new().expect("cannot create the task queue");
    let results: Results = Queue::new().expect("cannot create the result queue");
    let mut consumers: Vec<Process<u32>> = (1..=CONSUMERS)
        .map(|id| {
            Process::spawn(consumer, (id, tasks.clone(), results.clone()))
                .expect("cannot start a consumer")
        })
        .collect();
    let mut producers: Vec<Process<u64>> = (1..=PRODUCERS)
        .map(|id| Process::spawn(producer, (id, tasks.clone())).expect("cannot start a producer"))
        .collect();

    // Once the producers are done, every task is in the queue (a `put` that
    // returned is in shared memory): join() then waits for each task_done().
    let put: u64 = producers
        .iter_mut()
        .map(|p| p.join().expect("a producer failed"))
        .sum();
    assert_eq!(put, total);
    tasks
        .join_timeout(Duration::from_secs(60))
        .expect("the consumers did not finish their tasks");
    println!("tasks.join() returned: all {total} tasks are done");
    assert!(tasks.is_empty());

    // One stop signal per consumer.
    for _ in 0..CONSUMERS {
        tasks.put(None).expect("cannot put a stop signal");
    }
    let handled: Vec<u32> = consumers
        .iter_mut()
        .map(|c| c.join().expect("a consumer failed"))
        .collect();
    let report: Vec<String> = handled
        .iter()
        .enumerate()
        .map(|(i, h)| format!("consumer {} handled {h} tasks", i + 1))
        .collect();
    println!("{}", report.join(", "));
    assert_eq!(handled.iter().map(|&h| u64::from(h)).sum::<u64>(), total);
    tasks
        .join_timeout(Duration::from_secs(60))
        .expect("the stop signals are done too");

    // Every result is there, each number squared exactly once.
    let mut squared = Vec::new();
    while let Ok((id, n, square)) = results.try_get() {
        assert!((1..=CONSUMERS).contains(&id));
        assert_eq!(square, n * n);
        squared.push(n);
    }
    squared.sort_unstable();
    assert_eq!(squared, (1..=total).collect::<Vec<_>>());
    let sum: u64 = squared.iter().map(|n| n * n).sum();
    println!("Sum of the squares: {sum}");
    assert_eq!(sum, total * (total + 1) * (2 * total + 1) / 6);
}
