//! Section 3: a barrier party killed before arriving.
//!
//! `Barrier(3)`: two children wait, the third party, a child holding the
//! barrier, is killed before it arrives. The waiters must get
//! `PartyDied(pid of the dead)` (or `Broken`, for the one that notices
//! second) well within 1 s, instead of waiting forever; after `reset`, a
//! round of live parties passes.

use super::*;
use multiproc::{Barrier, BarrierError, Event, Queue};

/// How soon after the kill the waiters must be out (they look for dead
/// holders every 20 ms).
const BROKEN_WITHIN: Duration = Duration::from_secs(1);

/// The party that never comes: holds the barrier, says so, sleeps.
fn hold_barrier((b, holding): (Barrier, Event)) {
    holding.set();
    let _keep = b;
    sleep_forever();
}

/// How a barrier wait went, in a form that travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
enum Outcome {
    Passed(u32),
    Broken,
    Timeout,
    PartyDied(u32),
    Other,
}

impl From<Result<u32, BarrierError>> for Outcome {
    fn from(r: Result<u32, BarrierError>) -> Outcome {
        match r {
            Ok(i) => Outcome::Passed(i),
            Err(BarrierError::Broken) => Outcome::Broken,
            Err(BarrierError::Timeout) => Outcome::Timeout,
            Err(BarrierError::PartyDied(pid)) => Outcome::PartyDied(pid),
            Err(_) => Outcome::Other,
        }
    }
}

/// A waiter: waits at the barrier (no timeout of its own: the death must
/// end it), reports how and when (`mono_ns`), then, once told to, waits
/// for a second round and returns that round's index.
fn wait_twice((b, report, again): (Barrier, Queue<(Outcome, u64)>, Event)) -> Outcome {
    let first = Outcome::from(b.wait());
    let at = mono_ns();
    report.put((first, at)).expect("reporting");
    assert!(again.wait_timeout(JOIN), "no second round");
    Outcome::from(b.wait_timeout(JOIN))
}

#[test]
fn barrier_party_killed_before_arriving() {
    fault_test("barrier_party_killed_before_arriving", || {
        let b = Barrier::new(3).unwrap();
        let holding = Event::new().unwrap();
        let again = Event::new().unwrap();
        let report = Queue::new().unwrap();
        let mut v = Kid::spawn(
            victim(StartMethod::ForkServer),
            hold_barrier,
            (b.clone(), holding.clone()),
        );
        assert!(holding.wait_timeout(JOIN), "the victim never started");
        let mut waiters: Vec<Kid<Outcome>> = (0..2)
            .map(|_| {
                Kid::spawn(
                    builder(StartMethod::ForkServer),
                    wait_twice,
                    (b.clone(), report.clone(), again.clone()),
                )
            })
            .collect();
        let deadline = Instant::now() + JOIN;
        while b.n_waiting() < 2 {
            assert!(Instant::now() < deadline, "the waiters never arrived");
            std::thread::sleep(ms(1));
        }
        for w in &waiters {
            child_asleep("a waiter", w.pid());
        }
        assert!(!b.is_broken());

        let dead = v.pid();
        let killed = mono_ns();
        v.kill().expect("kill");
        let mut died = 0;
        for _ in 0..2 {
            let (first, at) = report.get_timeout(JOIN).expect("a waiter is still waiting");
            let after = between(killed, at);
            eprintln!("barrier waiter: {first:?} {after:?} after the kill");
            match first {
                Outcome::PartyDied(pid) => {
                    assert_eq!(pid, dead, "the pid of the dead party");
                    died += 1;
                }
                Outcome::Broken => {}
                other => panic!("a waiter of the broken round got {other:?}"),
            }
            assert!(
                after < BROKEN_WITHIN,
                "a waiter got out {after:?} after the kill"
            );
        }
        assert!(died >= 1, "nobody reported the dead party");
        v.reap_killed("the absent party");
        assert!(b.is_broken());
        assert_eq!(b.n_waiting(), 0, "a broken barrier has nobody waiting");
        let late = b.wait_timeout(secs(1));
        assert!(
            matches!(late, Err(BarrierError::PartyDied(pid)) if pid == dead)
                || late == Err(BarrierError::Broken),
            "the barrier stays broken until reset: {late:?}"
        );

        b.reset();
        assert!(!b.is_broken());
        again.set();
        let mut indices = vec![
            b.wait_timeout(JOIN)
                .expect("the parent in the second round"),
        ];
        for w in &mut waiters {
            match w.finish("a waiter") {
                Outcome::Passed(i) => indices.push(i),
                other => panic!("a waiter's second round: {other:?}"),
            }
        }
        indices.sort();
        assert_eq!(indices, [0, 1, 2], "the second round's arrival indices");
    });
}

/// A party that waits once.
fn wait_once(b: Barrier) -> Outcome {
    Outcome::from(b.wait_timeout(JOIN))
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: plain system call to a child of ours that is still unreaped.
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Parties asleep in `wait` when the barrier is `abort`ed and then
/// `reset` before they wake get `Broken` (their round never filled), as
/// the docs and Python say: `reset` records the ended round for them even
/// when it was already broken.
///
/// The waiters are stopped (`SIGSTOP`) across `abort` + `reset` so that
/// neither can look at the barrier in between: deterministic.
#[test]
fn waiters_of_an_aborted_round_get_broken_even_after_reset() {
    fault_test(
        "waiters_of_an_aborted_round_get_broken_even_after_reset",
        || {
            let b = Barrier::new(3).unwrap();
            let mut waiters: Vec<Kid<Outcome>> = (0..2)
                .map(|_| Kid::spawn(builder(StartMethod::ForkServer), wait_once, b.clone()))
                .collect();
            let deadline = Instant::now() + JOIN;
            while b.n_waiting() < 2 {
                assert!(Instant::now() < deadline, "the waiters never arrived");
                std::thread::sleep(ms(1));
            }
            for w in &waiters {
                child_asleep("a waiter", w.pid());
                signal(w.pid(), libc::SIGSTOP);
            }
            b.abort();
            b.reset();
            for w in &waiters {
                signal(w.pid(), libc::SIGCONT);
            }
            let got: Vec<Outcome> = waiters.iter_mut().map(|w| w.finish("a waiter")).collect();
            assert_eq!(
                got,
                [Outcome::Broken, Outcome::Broken],
                "2 of 3 parties passed a barrier that was aborted"
            );
        },
    );
}

/// The same through a death: a waiter that has not yet noticed that a
/// dead party broke its round (here: stopped while its sibling noticed)
/// gets `PartyDied` or `Broken`, not `Ok`, even if someone resets first.
#[test]
fn a_waiter_that_slept_through_a_party_death_gets_broken_after_reset() {
    fault_test("a_waiter_that_slept_through_a_party_death", || {
        let b = Barrier::new(3).unwrap();
        let holding = Event::new().unwrap();
        let mut v = Kid::spawn(
            victim(StartMethod::ForkServer),
            hold_barrier,
            (b.clone(), holding.clone()),
        );
        assert!(holding.wait_timeout(JOIN), "the victim never started");
        let mut waiters: Vec<Kid<Outcome>> = (0..2)
            .map(|_| Kid::spawn(builder(StartMethod::ForkServer), wait_once, b.clone()))
            .collect();
        let deadline = Instant::now() + JOIN;
        while b.n_waiting() < 2 {
            assert!(Instant::now() < deadline, "the waiters never arrived");
            std::thread::sleep(ms(1));
        }
        for w in &waiters {
            child_asleep("a waiter", w.pid());
        }
        let late = waiters[1].pid();
        signal(late, libc::SIGSTOP);
        let dead = v.pid();
        v.kill_and_reap("the absent party");
        let first = waiters[0].finish("the waiter that noticed");
        assert_eq!(first, Outcome::PartyDied(dead));
        b.reset();
        signal(late, libc::SIGCONT);
        let second = waiters[1].finish("the late waiter");
        assert!(
            matches!(second, Outcome::Broken | Outcome::PartyDied(_)),
            "a waiter of the broken round passed the barrier: {second:?}"
        );
    });
}
