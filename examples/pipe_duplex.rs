//! A two-way pipe: one child sends `("Hi", n)`, the other answers with "Hi"
//! repeated n times (seed 004, "6.0. Pipe").
//!
//! ```text
//! $ cargo run --release --example pipe_duplex
//! HiHiHiHi
//! HiHiHiHi
//! Done
//! ```
//!
//! `make_string` prints the string before sending it and `make_tuple` after
//! receiving it, so the two lines always come in this order. Python's version:
//!
//! ```python
//! def make_tuple(conn):
//!     num = random.randint(1, 9)
//!     conn.send(("Hi", num))
//!     print(conn.recv())
//!
//! def make_string(conn):
//!     tup = conn.recv()
//!     result = ""
//!     substr, num = tup
//!     for _ in range(num):
//!         result += substr
//!     print(result)
//!     conn.send(result)
//!
//! conn1, conn2 = Pipe(duplex=True)
//! p1 = Process(target=make_tuple, args=(conn1,))
//! p2 = Process(target=make_string, args=(conn2,))
//! p1.start(); p2.start()
//! p1.join(); p2.join()
//! print("Done")
//! ```
//!
//! A different type travels each way, so the pipe is made with
//! `Pipe::with_types::<(String, u32), String>()`: `conn1` sends a
//! `(String, u32)` and receives a `String`, `conn2` the reverse. A message of
//! the wrong type does not compile. Each child returns what it saw, and the
//! parent checks it.

use multiproc::{Connection, Pipe, Process};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Sends `("Hi", num)`, prints the answer; returns both.
fn make_tuple(conn: Connection<(String, u32), String>) -> (u32, String) {
    let num = random_1_to_9();
    conn.send(("Hi".to_string(), num))
        .expect("cannot send the tuple");
    let answer = conn.recv().expect("cannot receive the string");
    println!("{answer}");
    (num, answer)
}

/// Receives `(substr, num)`, prints and sends back `substr` repeated `num`
/// times; returns it.
fn make_string(conn: Connection<String, (String, u32)>) -> String {
    let (substr, num) = conn.recv().expect("cannot receive the tuple");
    let mut result = String::new();
    for _ in 0..num {
        result += &substr;
    }
    println!("{result}");
    conn.send(result.clone()).expect("cannot send the string");
    result
}

fn main() {
    multiproc::init();

    let (conn1, conn2) =
        Pipe::with_types::<(String, u32), String>().expect("cannot create the pipe");
    let mut p1 = Process::spawn(make_tuple, conn1).expect("cannot start p1");
    let mut p2 = Process::spawn(make_string, conn2).expect("cannot start p2");

    let (num, received) = p1.join().expect("make_tuple failed");
    let made = p2.join().expect("make_string failed");
    assert!((1..=9).contains(&num), "{num} is not in 1..=9");
    assert_eq!(made, "Hi".repeat(num as usize));
    assert_eq!(received, made, "make_tuple received another string");

    println!("Done");
}
