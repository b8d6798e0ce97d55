//! Section 4: no lost wake-up.
//!
//! A token goes round a ring of processes [`ROUNDS`] times, each hand-off
//! a wake-up of the next process: over one `Event` per process (set by the
//! previous one, cleared by its owner), and over a `Condition` whose state
//! is a `Value` counter (`notify_all` for a ring of three, `notify_one`
//! for a pair). Every process checks, every round, that the token is the
//! one it expects. Every wait is timed ([`STEP`], and a global deadline
//! for the whole scenario): a lost wake-up shows as a failed assertion
//! naming the process and round, not as a hang.

use super::*;
use multiproc::{Condition, Event, RawValue, Value};

/// Times round each ring.
const ROUNDS: u64 = 10_000;

/// The longest a single hand-off may take: far beyond any scheduling delay,
/// so that hitting it means the wake-up was lost.
const STEP: Duration = Duration::from_secs(5);

/// The deadline of a whole scenario.
const WHOLE: Duration = Duration::from_secs(60);

/// How long the next wait may take: [`STEP`], or less if the global
/// deadline (a `mono_ns` reading) is nearer.
fn step(deadline: u64) -> Duration {
    STEP.min(between(mono_ns(), deadline))
}

/// One member of an `Event` ring: `ROUNDS` times, waits for its event,
/// clears it, checks and advances the token, and sets the next event.
fn event_member((me, events, token, deadline): (usize, Vec<Event>, RawValue<u64>, u64)) {
    let n = events.len();
    for round in 0..ROUNDS {
        let want = round * n as u64 + me as u64;
        assert!(
            events[me].wait_timeout(step(deadline)),
            "Event ring: member {me}, round {round}: no wake-up (token {}, want {want})",
            token.get()
        );
        events[me].clear();
        assert_eq!(token.get(), want, "Event ring: member {me}, round {round}");
        token.set(want + 1);
        events[(me + 1) % n].set();
    }
}

#[test]
fn event_ring_loses_no_wakeup() {
    sync_test("event_ring_loses_no_wakeup", || {
        let n = 3;
        let events: Vec<Event> = (0..n).map(|_| Event::new().unwrap()).collect();
        let token = RawValue::new(0u64).unwrap();
        let deadline = mono_ns() + WHOLE.as_nanos() as u64;
        let mut kids: Vec<Kid<()>> = (1..n)
            .map(|me| {
                Kid::spawn(
                    builder(StartMethod::ForkServer),
                    event_member,
                    (me, events.clone(), token.clone(), deadline),
                )
            })
            .collect();
        let started = Instant::now();
        events[0].set();
        event_member((0, events.clone(), token.clone(), deadline));
        for k in &mut kids {
            k.finish("a ring member");
        }
        eprintln!(
            "Event ring: {} hand-offs in {:?}",
            ROUNDS * n as u64,
            started.elapsed()
        );
        assert_eq!(token.get(), ROUNDS * n as u64);
    });
}

/// How a `Condition` ring member waits for its turn.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
enum Style {
    /// `wait_timeout` in a loop, checking each result.
    Loop,
    /// `wait_timeout_while`.
    While,
    /// `wait_while` (untimed: another member's timed wait notices a stall).
    Untimed,
}

/// A `Condition` ring member: `ROUNDS` times, waits (under the lock) until
/// the counter is its turn, advances it, and notifies.
type CondMember = (usize, usize, Style, Condition, Value<u64>, u64);

fn cond_member((me, n, style, cond, counter, deadline): CondMember) {
    let mut guard = cond.acquire().expect("nobody dies here");
    for round in 0..ROUNDS {
        let want = round * n as u64 + me as u64;
        let lost = |now: u64| {
            format!(
                "Condition ring of {n}: member {me}, round {round}: no wake-up (counter {now}, want {want})"
            )
        };
        guard = match style {
            Style::Loop => {
                while counter.get() != want {
                    let (g, r) = cond
                        .wait_timeout(guard, step(deadline))
                        .expect("nobody dies here");
                    guard = g;
                    assert!(
                        !r.timed_out() || counter.get() == want,
                        "{}",
                        lost(counter.get())
                    );
                }
                guard
            }
            Style::While => {
                let (g, r) = cond
                    .wait_timeout_while(guard, step(deadline), |_| counter.get() != want)
                    .expect("nobody dies here");
                assert!(!r.timed_out(), "{}", lost(counter.get()));
                g
            }
            Style::Untimed => cond
                .wait_while(guard, |_| counter.get() != want)
                .expect("nobody dies here"),
        };
        assert_eq!(
            counter.get(),
            want,
            "{}: lock not held?",
            lost(counter.get())
        );
        counter.set(want + 1);
        if n == 2 {
            cond.notify_one();
        } else {
            cond.notify_all();
        }
    }
}

/// A ring of `styles.len()` processes; the test process is member 0.
fn cond_ring(styles: &[Style]) {
    let n = styles.len();
    let cond = Condition::new().unwrap();
    let counter = Value::new(0u64).unwrap();
    let deadline = mono_ns() + WHOLE.as_nanos() as u64;
    let mut kids: Vec<Kid<()>> = (1..n)
        .map(|me| {
            Kid::spawn(
                builder(StartMethod::ForkServer),
                cond_member,
                (me, n, styles[me], cond.clone(), counter.clone(), deadline),
            )
        })
        .collect();
    let started = Instant::now();
    cond_member((0, n, styles[0], cond.clone(), counter.clone(), deadline));
    for k in &mut kids {
        k.finish("a ring member");
    }
    eprintln!(
        "Condition ring of {n} {styles:?}: {} hand-offs in {:?}",
        ROUNDS * n as u64,
        started.elapsed()
    );
    assert_eq!(counter.get(), ROUNDS * n as u64);
}

#[test]
fn condition_ring_of_three_loses_no_wakeup() {
    sync_test("condition_ring_of_three_loses_no_wakeup", || {
        cond_ring(&[Style::Loop, Style::While, Style::Untimed]);
    });
}

#[test]
fn condition_pair_with_notify_one_loses_no_wakeup() {
    sync_test("condition_pair_with_notify_one_loses_no_wakeup", || {
        cond_ring(&[Style::Loop, Style::While]);
    });
}
