//! Two children, one squares and one cubes (seed 002, `multiprocessing_s1_e1.py`).
//!
//! ```text
//! $ cargo run --release --example square_cube
//! Square of 10: 100
//! Cube of 10: 1000
//! Done!
//! ```
//!
//! The two children run at the same time, so their lines may come in either order.
//! Python's version:
//!
//! ```python
//! p1 = multiprocessing.Process(target=print_square, args=(10, ))
//! p2 = multiprocessing.Process(target=print_cube, args=(10, ))
//! p1.start(); p2.start()
//! p1.join(); p2.join()
//! print("Done!")
//! ```

use multiproc::Process;

fn print_square(num: u64) {
    println!("Square of {num}: {}", num * num);
}

fn print_cube(num: u64) {
    println!("Cube of {num}: {}", num * num * num);
}

fn main() {
    multiproc::init();

    // `Process::spawn` is Python's `Process(target=..., args=...)` and `start()` in one step.
    let mut p1 = Process::spawn(print_square, 10).expect("cannot start p1");
    let mut p2 = Process::spawn(print_cube, 10).expect("cannot start p2");

    // Wait until both have finished.
    p1.join().expect("p1 failed");
    p2.join().expect("p2 failed");

    println!("Done!");
}
