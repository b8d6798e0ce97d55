//! Section 7: a `BoundedSemaphore`'s bound across processes.
//!
//! Python's `BoundedSemaphore` raises `ValueError` on any release that
//! would take it above its initial value; here `release` refuses with
//! `is_misuse`, and a permit given back by a guard's drop should be held
//! to the same bound.

use super::*;
use multiproc::BoundedSemaphore;

/// A child's `release`: whether it was refused as a misuse.
fn release_refused(sem: BoundedSemaphore) -> bool {
    sem.release().is_err_and(|e| e.is_misuse())
}

fn release_from_child(sem: &BoundedSemaphore) -> bool {
    Kid::spawn(
        builder(StartMethod::ForkServer),
        release_refused,
        sem.clone(),
    )
    .finish("releaser")
}

#[test]
fn bounded_semaphore_refuses_a_release_above_its_bound_from_another_process() {
    sync_test(
        "bounded_semaphore_refuses_a_release_above_its_bound",
        || {
            let sem = BoundedSemaphore::new(1).unwrap();
            assert!(
                release_from_child(&sem),
                "a release above the bound was accepted"
            );
            assert_eq!(sem.value(), 1);
            sem.acquire().unwrap().forget();
            assert!(
                !release_from_child(&sem),
                "the release of a forgotten permit"
            );
            assert_eq!(sem.value(), 1);
        },
    );
}

/// A permit out through a guard counts against the bound: another
/// process's `release` while it is out is refused (Python would accept it
/// and raise `ValueError` on the guard's release instead, which a drop
/// cannot do), and the guard's drop never takes the value past the bound.
#[test]
fn bounded_semaphore_guard_drop_keeps_the_bound() {
    sync_test("bounded_semaphore_guard_drop_keeps_the_bound", || {
        let sem = BoundedSemaphore::new(1).unwrap();
        let permit = sem.acquire().unwrap();
        assert!(
            release_from_child(&sem),
            "a release past the bound (counting the permit out) was accepted"
        );
        drop(permit);
        assert!(
            sem.value() <= 1,
            "BoundedSemaphore(1) now has {} permits",
            sem.value()
        );
    });
}
