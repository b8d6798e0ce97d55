//! Sections 24 to 26 of the tour: named shared memory and the pool.

use super::{ms, section};
use multiproc::{Pool, Process, SharedMemory, as_completed};
use std::time::{Duration, Instant};

/// Section 24's child: gets only a name, opens the segment, adds one.
fn bump_by_name(name: String) -> u8 {
    let shm = SharedMemory::open(&name).expect("open by name");
    let mut b = [0u8];
    shm.read(0, &mut b).expect("read");
    shm.write(0, &[b[0] + 1]).expect("write");
    b[0] + 1
}

fn square(x: u64) -> u64 {
    x * x
}

/// Section 26's tasks: 2 kills its own worker, 3 panics, 4 never ends.
fn misbehave(i: u64) -> u64 {
    match i {
        2 => {
            // SAFETY: raise only sends a signal to this process.
            unsafe { libc::raise(libc::SIGKILL) };
            unreachable!()
        }
        3 => panic!("task 3 refuses"),
        4 => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        _ => i,
    }
}

pub(super) fn tour() {
    section(
        24,
        "Named shared memory",
        "SharedMemory::create(name, size): any process of this user opens it by name; \
         nothing is left behind when the last owner goes, even killed.",
    );
    let name = format!("tour-{}", std::process::id());
    let shm = SharedMemory::create(&name, 4096).expect("create");
    shm.write(0, &[41]).expect("write");
    let got = Process::spawn(bump_by_name, name.clone())
        .expect("spawn")
        .join()
        .expect("join");
    println!("   the child opened {name:?} by name and made 41 into {got}");
    assert_eq!(got, 42);
    drop(shm);
    let deadline = Instant::now() + Duration::from_secs(5);
    while SharedMemory::open(&name).is_ok() {
        assert!(Instant::now() < deadline, "the name outlived its owners");
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("   after the last owner dropped it, the name is gone");

    section(
        25,
        "A pool of workers",
        "map over a whole input, imap lazily over an endless one, submit with futures.",
    );
    let pool = Pool::new(2).expect("pool");
    let t = Instant::now();
    let squares = pool.map(square, 0..10).expect("map");
    println!("   map: {squares:?} in {}", ms(t.elapsed()));
    assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
    let firsts: Vec<u64> = pool
        .imap(square, 1..)
        .take(5)
        .map(|r| r.expect("task"))
        .collect();
    println!("   imap over 1.. (endless), first five: {firsts:?}");
    assert_eq!(firsts, [1, 4, 9, 16, 25]);
    let handles: Vec<_> = (1..=3)
        .map(|x| pool.submit(square, x).expect("submit"))
        .collect();
    let total: u64 = as_completed(handles)
        .map(|mut h| h.get().expect("get"))
        .sum();
    println!("   submit + as_completed: 1 + 4 + 9 = {total}");
    assert_eq!(total, 14);

    section(
        26,
        "A dead worker costs only its own task",
        "One task SIGKILLs its worker, one panics, one never ends (with a 300 ms task timeout); \
         each fails alone with a typed error, the workers are replaced, the rest succeed.",
    );
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .build()
        .expect("pool");
    let t = Instant::now();
    let err = pool
        .map_chunked(misbehave, 0..8, 1)
        .expect_err("three tasks fail");
    for f in err.failures() {
        println!("   {f}");
    }
    println!(
        "   ({} failed of 8, all known after {})",
        err.failures().len(),
        ms(t.elapsed())
    );
    let failed: Vec<usize> = err
        .failures()
        .iter()
        .filter_map(|f| f.task_index())
        .collect();
    assert_eq!(failed, [2, 3, 4]);
    assert_eq!(pool.map(square, 0..3).expect("the pool goes on"), [0, 1, 4]);
    println!("   and the pool goes on: map(square, 0..3) = [0, 1, 4]");
}
