//! Processes fill disjoint parts of a shared `Array<f64>` (seed 003: "data
//! can be stored in a shared memory using Value or Array"); the parent prints
//! it.
//!
//! ```text
//! $ cargo run --release --example shared_array
//! 4 processes fill a 4 x 6 Array<f64>, one row each: row r, column c holds r + c / 10
//! process 4245 filled row 2
//! process 4243 filled row 0
//! ...
//! row 0: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
//! row 1: [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
//! row 2: [2.0, 2.1, 2.2, 2.3, 2.4, 2.5]
//! row 3: [3.0, 3.1, 3.2, 3.3, 3.4, 3.5]
//!
//! The same rows in a RawArray<f64>, no lock, one set() per element: identical
//! ```
//!
//! The children's lines come in any order. Python's version:
//!
//! ```python
//! def fill(a, row):
//!     with a.get_lock():
//!         for col in range(COLS):
//!             a[row * COLS + col] = row + col / 10
//!
//! a = Array('d', ROWS * COLS)
//! procs = [Process(target=fill, args=(a, r)) for r in range(ROWS)]
//! for p in procs: p.start()
//! for p in procs: p.join()
//! print(a[:])
//! ```
//!
//! `a.lock()` is `with a.get_lock():`, its guard a `&mut [f64]` over the
//! whole array. The rows are disjoint, so the children need the lock only
//! because a guard is the way into an `Array`; a `RawArray` has no lock and is
//! written one element at a time (`set`), which suits disjoint parts just as
//! well.

use multiproc::{Array, Process, RawArray};

const ROWS: usize = 4;
const COLS: usize = 6;

/// What row `row`, column `col` holds.
fn cell(row: usize, col: usize) -> f64 {
    row as f64 + col as f64 / 10.0
}

/// Fills row `row` of `a` under the lock; returns the row.
fn fill((a, row): (Array<f64>, usize)) -> usize {
    let mut data = a.lock().expect("a holder of the array died");
    for (col, x) in data[row * COLS..(row + 1) * COLS].iter_mut().enumerate() {
        *x = cell(row, col);
    }
    drop(data);
    println!("process {} filled row {row}", std::process::id());
    row
}

/// Fills row `row` of `a`, one element at a time, without a lock.
fn fill_raw((a, row): (RawArray<f64>, usize)) {
    for col in 0..COLS {
        a.set(row * COLS + col, cell(row, col));
    }
}

fn main() {
    multiproc::init();

    println!(
        "{ROWS} processes fill a {ROWS} x {COLS} Array<f64>, one row each: \
         row r, column c holds r + c / 10"
    );
    let a = Array::<f64>::new(ROWS * COLS).expect("cannot create the array");
    let mut children: Vec<Process<usize>> = (0..ROWS)
        .map(|row| Process::spawn(fill, (a.clone(), row)).expect("cannot start a child"))
        .collect();
    for (row, child) in children.iter_mut().enumerate() {
        assert_eq!(child.join().expect("a child failed"), row);
    }

    let values = a.to_vec();
    for (row, values) in values.chunks(COLS).enumerate() {
        println!("row {row}: {values:?}");
        let expected: Vec<f64> = (0..COLS).map(|col| cell(row, col)).collect();
        assert_eq!(values, expected);
    }

    let raw = RawArray::<f64>::new(ROWS * COLS).expect("cannot create the array");
    let mut children: Vec<Process<()>> = (0..ROWS)
        .map(|row| Process::spawn(fill_raw, (raw.clone(), row)).expect("cannot start a child"))
        .collect();
    for child in &mut children {
        child.join().expect("a child failed");
    }
    assert_eq!(raw.to_vec(), values);
    println!("\nThe same rows in a RawArray<f64>, no lock, one set() per element: identical");
}
