//! Four processes meet at a `Barrier`; then one of them dies instead of
//! coming back, and the others, rather than waiting forever, are told which
//! process broke the barrier. The parent resets it and takes the dead one's
//! place for a last round.
//!
//! ```text
//! $ cargo run --release --example barrier
//! 4 processes meet at a Barrier(4); party 2 aborts instead of coming to round 2
//! round 1: party 3 (pid 4246) passed, arrival index 0
//! round 1: party 1 (pid 4244) passed, arrival index 1
//! round 1: party 0 (pid 4243) passed, arrival index 2
//! round 1: party 2 (pid 4245) passed, arrival index 3
//! round 2: party 0 (pid 4243): process 4245 holding the barrier died; it is broken
//! round 2: party 3 (pid 4246): process 4245 holding the barrier died; it is broken
//! round 2: party 1 (pid 4244): process 4245 holding the barrier died; it is broken
//! party 2 (pid 4245) ended: child process 4245 was killed by SIGABRT before returning a result
//! round 3: the parent resets the barrier and takes party 2's place
//! round 3: party 1 (pid 4244) passed, arrival index 0
//! round 3: party 2 (pid 4242) passed, arrival index 1
//! ...
//! all 4 passed round 3
//! ```
//!
//! Lines within a round come in any order. Python's version of the first two
//! rounds:
//!
//! ```python
//! def party(i, barrier):
//!     barrier.wait()
//!     if i == 2:
//!         os.abort()
//!     try:
//!         barrier.wait()
//!     except threading.BrokenBarrierError:
//!         print(f"party {i}: the barrier is broken")
//!
//! barrier = Barrier(4)
//! procs = [Process(target=party, args=(i, barrier)) for i in range(4)]
//! ```
//!
//! In Python, the three survivors of round 2 wait forever: nothing tells a
//! barrier that a party died (`barrier.wait(timeout)` would break it after
//! the timeout, naming nobody). Here each process holding a `Barrier` is
//! registered in it, and the waiters see within about 20 ms that one of them
//! is gone: `wait` returns `Err(BarrierError::PartyDied(pid))`. The barrier
//! stays broken until `reset`.

use multiproc::{Barrier, BarrierError, Event, Process, Queue};
use std::time::Duration;

const PARTIES: u32 = 4;
/// The party that dies in round 2.
const DIES: u32 = 2;

/// What a survivor reports after round 2: `(party, its pid, the dead pid)`.
type Report = (u32, u32, u32);

/// No core file for the abort this example provokes on purpose.
fn no_core_dump() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `setrlimit` only reads the struct we pass, which outlives the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}

/// Waits at the barrier in round `round` and says so; returns the arrival
/// index.
fn pass(round: u32, id: u32, barrier: &Barrier) -> u32 {
    let index = barrier.wait().expect("the barrier broke");
    println!(
        "round {round}: party {id} (pid {}) passed, arrival index {index}",
        std::process::id()
    );
    index
}

/// One party: round 1, then (unless it is the one that dies) round 2, which
/// breaks, a report, and round 3 once the parent has reset the barrier.
/// Returns its arrival index in round 3.
fn party((id, barrier, reports, reset): (u32, Barrier, Queue<Report>, Event)) -> u32 {
    let pid = std::process::id();
    pass(1, id, &barrier);

    if id == DIES {
        no_core_dump();
        std::process::abort();
    }
    // A timeout only so that a regression fails instead of hanging.
    match barrier.wait_timeout(Duration::from_secs(30)) {
        Err(e @ BarrierError::PartyDied(dead)) => {
            println!("round 2: party {id} (pid {pid}): {e}");
            reports.put((id, pid, dead)).expect("cannot report");
        }
        other => panic!("party {id}: round 2 should break, got {other:?}"),
    }

    reset.wait();
    pass(3, id, &barrier)
}

fn main() {
    multiproc::init();

    println!(
        "{PARTIES} processes meet at a Barrier({PARTIES}); \
         party {DIES} aborts instead of coming to round 2"
    );
    let barrier = Barrier::new(PARTIES).expect("cannot create the barrier");
    let reports: Queue<Report> = Queue::new().expect("cannot create the queue");
    let reset = Event::new().expect("cannot create the event");
    let mut parties: Vec<Process<u32>> = (0..PARTIES)
        .map(|id| {
            let arg = (id, barrier.clone(), reports.clone(), reset.clone());
            Process::spawn(party, arg).expect("cannot start a party")
        })
        .collect();
    let dead_pid = parties[DIES as usize].pid();

    // Rounds 1 and 2 happen between the children; the survivors report.
    let mut survivors = Vec::new();
    for _ in 0..PARTIES - 1 {
        let (id, pid, dead) = reports
            .get_timeout(Duration::from_secs(60))
            .expect("a survivor did not report");
        assert_eq!(dead, dead_pid, "party {id} blames another process");
        assert_eq!(pid, parties[id as usize].pid());
        survivors.push(id);
    }
    survivors.sort_unstable();
    assert_eq!(survivors, [0, 1, 3]);
    let err = parties[DIES as usize]
        .join()
        .expect_err("the dying party has no result");
    println!("party {DIES} (pid {dead_pid}) ended: {err}");
    assert_eq!(err.signal(), Some(libc::SIGABRT));
    assert!(barrier.is_broken());

    println!("round 3: the parent resets the barrier and takes party {DIES}'s place");
    barrier.reset();
    assert!(!barrier.is_broken());
    reset.set();
    let mut indices = vec![pass(3, DIES, &barrier)];
    for id in survivors {
        indices.push(parties[id as usize].join().expect("a survivor failed"));
    }
    indices.sort_unstable();
    assert_eq!(indices, (0..PARTIES).collect::<Vec<_>>());
    println!("all {PARTIES} passed round 3");
}
