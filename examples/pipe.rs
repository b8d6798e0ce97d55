//! Process A sends a random integer from 1 to 10 to process B, which prints it
//! (seed 000, `multiprocessing_pipe.py`).
//!
//! ```text
//! $ cargo run --release --example pipe
//! Value [7] sent by PID [4243]
//! Value [7] received by PID [4242]
//! ```
//!
//! The two children run at the same time, so their lines may come in either
//! order. Python's version:
//!
//! ```python
//! def producer_task(conn):
//!     value = random.randint(1, 10)
//!     conn.send(value)
//!     print('Value [%d] sent by PID [%d]' % (value, os.getpid()))
//!     conn.close()
//!
//! def consumer_task(conn):
//!     print('Value [%d] received by PID [%d]' % (conn.recv(), os.getpid()))
//!
//! producer_conn, consumer_conn = Pipe()
//! consumer = Process(target=consumer_task, args=(consumer_conn,))
//! producer = Process(target=producer_task, args=(producer_conn,))
//! consumer.start(); producer.start()
//! consumer.join(); producer.join()
//! ```
//!
//! The data only goes one way, so this uses `Pipe::simplex` (Python's
//! `Pipe(duplex=False)`): its ends are typed, one can only send a `u32`, the
//! other only receive one. Each child returns what it sent or received, and
//! the parent checks that they agree.

use multiproc::{Connection, Never, Pipe, Process, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A pseudo-random integer in `1..=10`, from the clock and the pid (std only,
/// no `rand` crate): a splitmix64 step over both.
fn random_1_to_10() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % 10) as u32 + 1
}

/// Process A: sends one value and closes its end.
fn producer_task(conn: Connection<u32, Never>) -> u32 {
    let value = random_1_to_10();
    conn.send(value).expect("cannot send the value");
    println!("Value [{value}] sent by PID [{}]", std::process::id());
    conn.close();
    value
}

/// Process B: receives the value and prints it; then, the producer having
/// closed its end, the pipe reports the end of the data.
fn consumer_task(conn: Connection<Never, u32>) -> u32 {
    let value = conn.recv().expect("cannot receive the value");
    println!("Value [{value}] received by PID [{}]", std::process::id());
    assert_eq!(
        conn.recv_timeout(Duration::from_secs(30)),
        Err(RecvTimeoutError::Disconnected),
        "the producer closed its end: nothing more can come"
    );
    value
}

fn main() {
    multiproc::init();

    // `(receiving end, sending end)`, in Python's order for `Pipe(duplex=False)`.
    let (consumer_conn, producer_conn) = Pipe::simplex::<u32>().expect("cannot create the pipe");

    // Each end moves into its child: the parent keeps no copy, so once the
    // producer has closed its end, the consumer sees the end of the data.
    let mut consumer = Process::spawn(consumer_task, consumer_conn).expect("cannot start B");
    let mut producer = Process::spawn(producer_task, producer_conn).expect("cannot start A");

    let received = consumer.join().expect("process B failed");
    let sent = producer.join().expect("process A failed");
    assert_eq!(received, sent, "B received another value than A sent");
    assert!((1..=10).contains(&sent), "{sent} is not in 1..=10");
}
