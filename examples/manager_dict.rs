//! The Manager example of seed 004 ("7.1. Manager"): eight processes
//! store `i → i²` in one dict that lives in a manager's server process.
//!
//! ```text
//! $ cargo run --release --example manager_dict
//! Results: {0: 0, 1: 1, 2: 4, 3: 9, 4: 16, 5: 25, 6: 36, 7: 49}
//! ```
//!
//! Python's version:
//!
//! ```python
//! def do_work(dictionary, item):
//!     dictionary[item] = item ** 2
//!
//! mgr = multiprocessing.Manager()
//! d = mgr.dict()  # Shared dict
//! jobs = [Process(target=do_work, args=(d, i)) for i in range(8)]
//! for j in jobs:
//!     j.start()
//! for j in jobs:
//!     j.join()
//! print("Results:", d)
//! ```
//!
//! Python prints the keys in the order the children happened to insert
//! them (`{0: 0, 1: 1, 2: 4, 4: 16, 3: 9, ...}`); this example sorts them,
//! so that its output is always the same.

use multiproc::manager::DictProxy;
use multiproc::{Manager, Process};

/// `dictionary[item] = item ** 2`, in a child: the proxy sends one request
/// to the manager's server.
fn do_work((dictionary, item): (DictProxy<u32, u32>, u32)) {
    dictionary
        .insert(&item, &(item * item))
        .expect("cannot reach the manager");
}

fn main() {
    multiproc::init();
    let mgr = Manager::start().expect("cannot start the manager");
    let d = mgr.dict::<u32, u32>().expect("cannot create the dict"); // shared dict
    // Multiple processes work on the same shared dict.
    let mut jobs: Vec<Process<()>> = (0..8)
        .map(|i| Process::spawn(do_work, (d.clone(), i)).expect("cannot start a job"))
        .collect();
    for j in &mut jobs {
        j.join().expect("a job failed");
    }

    let mut items = d.items().expect("cannot read the dict");
    items.sort_unstable();
    let shown: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("Results: {{{}}}", shown.join(", "));
    assert_eq!(items, (0..8).map(|i| (i, i * i)).collect::<Vec<_>>());
}
