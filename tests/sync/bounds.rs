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

/// LIBRARY BUG (src/sync/semaphore.rs, left failing, hence ignored): a
/// guard's drop gives its permit back without the bound check, so a
/// `BoundedSemaphore(1)` reaches 2 when another process `release`s while
/// the guard is out (the release itself is legal then: the value is 0).
/// Python raises `ValueError` on the second of those two releases; here
/// the drop cannot fail, but it should not exceed the bound (dropping the
/// extra permit, or panicking, is the other engineer's call).
#[test]
#[ignore = "library bug: a SemaphoreGuard's drop takes a BoundedSemaphore above its bound (see doc)"]
fn bounded_semaphore_guard_drop_keeps_the_bound() {
    sync_test("bounded_semaphore_guard_drop_keeps_the_bound", || {
        let sem = BoundedSemaphore::new(1).unwrap();
        let permit = sem.acquire().unwrap();
        assert!(!release_from_child(&sem), "a legal release was refused");
        drop(permit);
        assert!(
            sem.value() <= 1,
            "BoundedSemaphore(1) now has {} permits",
            sem.value()
        );
    });
}
