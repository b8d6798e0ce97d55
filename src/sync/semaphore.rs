//! [`Semaphore`] and [`BoundedSemaphore`]: Python's, with permits that come
//! back when their holder dies.
//!
//! The count lives under a small internal robust mutex. Each permit taken
//! through a guard also locks one *slot*: a robust mutex of its own in a
//! table beside the count. If the holder dies, the kernel marks that slot's
//! lock word `FUTEX_OWNER_DIED`; the next acquirer sees the mark (a plain
//! load per slot in use), gives the permit back to the count, and is told
//! [`OwnerDied`]. A process that dies in the middle of updating the count
//! leaves a one-entry undo journal that the next locker of the internal
//! mutex replays.

use super::raw::{RawMutex, Wait, lock_result};
use crate::error::{Error, LockResult, OwnerDied, TryLockError, TryLockResult};
use crate::shared::block::{Block, Elem, Kind, State, shared_serde};
use crate::sys::futex;
use crate::sys::mutex::{Acquired, Type};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// How often a waiter looks for permits of dead holders, even if nobody
/// wakes it (the kernel does not wake it when a holder dies).
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// Slots per semaphore: the initial value, within these bounds.
const MIN_SLOTS: u32 = 16;
const MAX_SLOTS: u32 = 256;
/// `journal_slot` flag: the interrupted update was a release.
const RELEASING: u32 = 1 << 31;

#[repr(C)]
struct SemState {
    /// Guards `value`, `deaths`, the journal and the slots' `used` flags.
    m: RawMutex,
    value: AtomicU32,
    /// The bound (`BoundedSemaphore`), or `u32::MAX`.
    max: AtomicU32,
    /// Bumped by every release: the futex word waiters sleep on.
    seq: AtomicU32,
    sleepers: AtomicU32,
    /// Permits recovered from dead holders, not yet reported.
    deaths: AtomicU32,
    /// Permits held through guards: a bounded semaphore counts them
    /// against its bound, so a guard's return can never exceed it.
    held: AtomicU32,
    journal_held: AtomicU32,
    /// Undo journal: 1 + the slot of the update in progress (0: none),
    /// with [`RELEASING`] for a release, and the value before it.
    journal_slot: AtomicU32,
    journal_value: AtomicU32,
}

// SAFETY: repr(C); mutexes are initialised by `new` before anyone sees
// them; the rest are atomics for which zero is valid.
unsafe impl State for SemState {}

#[repr(C)]
struct Slot {
    m: RawMutex,
    /// 1 while a live guard holds the slot's permit.
    used: AtomicU32,
}

fn slot_elem() -> Elem {
    Elem::slots(size_of::<Slot>(), align_of::<Slot>())
}

/// A counter of permits shared between processes (Python's
/// `multiprocessing.Semaphore`).
///
/// [`acquire`](Self::acquire) takes a permit, waiting while there is none,
/// and returns a guard that gives it back when dropped. If a process dies
/// holding a guard, its permit is recovered and the next acquirer gets
/// [`OwnerDied`] (within about 20 ms if it was waiting). Up to 256 permits
/// (at least the initial value, and never fewer than 16) are tracked this
/// way at once; beyond that, permits work but are not recovered.
///
/// For signalling between processes, as in Python, a permit can also be
/// given without having been taken ([`release`](Self::release)) and taken
/// for good ([`SemaphoreGuard::forget`]).
///
/// # Examples
/// ```
/// use multiproc::{Process, Semaphore};
///
/// fn signal(done: Semaphore) {
///     done.release().unwrap();
/// }
///
/// let done = Semaphore::new(0).unwrap();
/// let mut child = Process::spawn(signal, done.clone()).unwrap();
/// done.acquire().unwrap().forget(); // waits for the child's release
/// child.join().unwrap();
/// assert_eq!(done.value(), 0);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    block: Block,
}

impl Semaphore {
    /// Creates a semaphore with `value` permits.
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new(value: u32) -> Result<Semaphore, Error> {
        Semaphore::create(value, u32::MAX)
    }

    fn create(value: u32, max: u32) -> Result<Semaphore, Error> {
        let slots = value.clamp(MIN_SLOTS, MAX_SLOTS) as usize;
        let block = Block::create::<SemState>(Kind::Semaphore, slot_elem(), slots, |s| {
            s.value.store(value, SeqCst);
            s.max.store(max, SeqCst);
            s.m.init(Type::Normal)
        })?;
        let sem = Semaphore { block };
        for slot in sem.slots() {
            slot.m
                .init(Type::Normal)
                .map_err(|e| Error::io("cannot initialise a semaphore", e))?;
        }
        Ok(sem)
    }

    fn from_block(block: Block) -> Semaphore {
        Semaphore { block }
    }

    fn state(&self) -> &SemState {
        self.block.state()
    }

    fn slots(&self) -> &[Slot] {
        // SAFETY: the block holds `len` slots (checked at create/open),
        // each a robust mutex and an atomic, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.block.payload().cast(), self.block.len()) }
    }

    /// The number of free permits now (Python's `get_value`).
    pub fn value(&self) -> u32 {
        self.locked(|s| s.value.load(SeqCst))
    }

    /// Runs `f` under the internal mutex, after replaying the journal of a
    /// process that died in the middle of an update.
    fn locked<T>(&self, f: impl FnOnce(&SemState) -> T) -> T {
        let s = self.state();
        if s.m.acquire(Wait::Forever) == Some(Acquired::OwnerDied) {
            self.replay_journal();
        }
        let r = f(s);
        // SAFETY: acquired just above.
        unsafe { s.m.release() };
        r
    }

    fn replay_journal(&self) {
        let s = self.state();
        let j = s.journal_slot.load(SeqCst);
        if j == 0 {
            return;
        }
        let before = s.journal_value.load(SeqCst);
        let releasing = j & RELEASING != 0;
        if let Some(slot) = self.slots().get(((j & !RELEASING) - 1) as usize) {
            // The dead process may or may not have reached the slot's lock.
            if slot.m.owner_died() && slot.m.acquire(Wait::Never).is_some() {
                // SAFETY: acquired just above.
                unsafe { slot.m.release() };
            }
            slot.used.store(0, SeqCst);
        }
        // Undo an acquire; complete a release (its guard is gone).
        let held = s.journal_held.load(SeqCst);
        s.value
            .store(if releasing { before + 1 } else { before }, SeqCst);
        s.held.store(
            if releasing {
                held.saturating_sub(1)
            } else {
                held
            },
            SeqCst,
        );
        s.journal_slot.store(0, SeqCst);
    }

    /// Gives back the permits of dead holders. Under the internal mutex.
    fn recover_dead(&self, s: &SemState) {
        for slot in self.slots() {
            if slot.used.load(SeqCst) == 1
                && slot.m.owner_died()
                && slot.m.acquire(Wait::Never) == Some(Acquired::OwnerDied)
            {
                // SAFETY: acquired just above.
                unsafe { slot.m.release() };
                slot.used.store(0, SeqCst);
                s.value.fetch_add(1, SeqCst);
                let _ = s
                    .held
                    .fetch_update(SeqCst, SeqCst, |h| Some(h.saturating_sub(1)));
                s.deaths.fetch_add(1, SeqCst);
            }
        }
    }

    /// Takes a permit if one is free; the slot it holds, if any, and
    /// whether a death is to be reported. Under the internal mutex.
    fn take(&self, s: &SemState) -> Option<(Option<usize>, bool)> {
        self.recover_dead(s);
        let value = s.value.load(SeqCst);
        if value == 0 {
            return None;
        }
        let free = self.slots().iter().position(|x| x.used.load(SeqCst) == 0);
        let held = s.held.load(SeqCst);
        s.journal_value.store(value, SeqCst);
        s.journal_held.store(held, SeqCst);
        s.journal_slot
            .store(free.map_or(!RELEASING, |i| i as u32 + 1), SeqCst);
        s.value.store(value - 1, SeqCst);
        s.held.store(held + 1, SeqCst);
        let slot = free.filter(|&i| {
            let x = &self.slots()[i];
            // A free slot's mutex is unlocked (or, after a replayed journal,
            // left by a dead owner: ours all the same).
            let ok = x.m.acquire(Wait::Never).is_some();
            if ok {
                x.used.store(1, SeqCst);
            }
            ok
        });
        s.journal_slot.store(0, SeqCst);
        let died = s.deaths.load(SeqCst) > 0;
        if died {
            s.deaths.fetch_sub(1, SeqCst);
        }
        Some((slot, died))
    }

    fn acquire_until(&self, wait: Wait) -> Option<LockResult<SemaphoreGuard<'_>>> {
        let deadline = wait.deadline();
        let s = self.state();
        loop {
            let (taken, seq) = self.locked(|s| match self.take(s) {
                Some(t) => (Some(t), 0),
                None => {
                    s.sleepers.fetch_add(1, SeqCst);
                    (None, s.seq.load(SeqCst))
                }
            });
            if let Some((slot, died)) = taken {
                let guard = SemaphoreGuard {
                    sem: self,
                    slot,
                    _not_send: PhantomData,
                };
                let a = if died {
                    Acquired::OwnerDied
                } else {
                    Acquired::Clean
                };
                return Some(lock_result(a, guard));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                s.sleepers.fetch_sub(1, SeqCst);
                return None;
            }
            let check = now + CHECK_EVERY;
            futex::wait(&s.seq, seq, Some(deadline.map_or(check, |d| d.min(check))));
            s.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Takes a permit, waiting while none is free.
    ///
    /// # Errors
    /// [`OwnerDied`] with the guard if a holder's death was noticed (its
    /// permit is back; this is the first acquire since).
    pub fn acquire(&self) -> LockResult<SemaphoreGuard<'_>> {
        match self.acquire_until(Wait::Forever) {
            Some(r) => r,
            None => unreachable!("an unbounded acquire returns only with a permit"),
        }
    }

    /// Takes a permit if one is free now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if none is; `OwnerDied` as for
    /// [`acquire`](Self::acquire).
    pub fn try_acquire(&self) -> TryLockResult<SemaphoreGuard<'_>> {
        to_try(self.acquire_until(Wait::Never))
    }

    /// Waits at most `timeout` for a permit.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`] if the timeout passed; `OwnerDied` as
    /// for [`acquire`](Self::acquire).
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<SemaphoreGuard<'_>> {
        to_try(self.acquire_until(Wait::timeout(timeout)))
    }

    /// Adds a permit that was not taken through a guard (Python's
    /// `release`), waking a waiter.
    ///
    /// # Errors
    /// [`Error::is_misuse`] if that would exceed a [`BoundedSemaphore`]'s
    /// initial value (Python's `ValueError`) or `u32::MAX`.
    pub fn release(&self) -> Result<(), Error> {
        self.locked(|s| {
            let value = s.value.load(SeqCst);
            // Free permits plus those out through guards may not pass the
            // bound (those come back when their guards drop).
            let out = u64::from(value) + u64::from(s.held.load(SeqCst));
            if out >= u64::from(s.max.load(SeqCst)) {
                return Err(Error::misuse("semaphore released too many times"));
            }
            s.value.store(value + 1, SeqCst);
            s.seq.fetch_add(1, SeqCst);
            Ok(())
        })?;
        self.wake_one();
        Ok(())
    }

    fn wake_one(&self) {
        let s = self.state();
        if s.sleepers.load(SeqCst) > 0 {
            futex::wake(&s.seq, 1);
        }
    }

    /// Returns a guard's permit. `slot`: the slot the guard holds.
    fn give_back(&self, slot: Option<usize>) {
        self.locked(|s| {
            let value = s.value.load(SeqCst);
            let held = s.held.load(SeqCst);
            s.journal_value.store(value, SeqCst);
            s.journal_held.store(held, SeqCst);
            s.journal_slot.store(
                slot.map_or(u32::MAX, |i| (i as u32 + 1) | RELEASING),
                SeqCst,
            );
            if let Some(x) = slot.and_then(|i| self.slots().get(i)) {
                x.used.store(0, SeqCst);
                // SAFETY: the guard's thread locked this slot in `take`.
                unsafe { x.m.release() };
            }
            s.value.store(value + 1, SeqCst);
            s.held.store(held.saturating_sub(1), SeqCst);
            s.journal_slot.store(0, SeqCst);
            s.seq.fetch_add(1, SeqCst);
        });
        self.wake_one();
    }

    /// Keeps a guard's permit taken for good, untracked (a later
    /// `release` gives it back).
    fn keep(&self, slot: Option<usize>) {
        self.locked(|s| {
            let _ = s
                .held
                .fetch_update(SeqCst, SeqCst, |h| Some(h.saturating_sub(1)));
            if let Some(x) = slot.and_then(|i| self.slots().get(i)) {
                x.used.store(0, SeqCst);
                // SAFETY: the guard's thread locked this slot in `take`.
                unsafe { x.m.release() };
            }
        });
    }
}

fn to_try<G>(r: Option<LockResult<G>>) -> TryLockResult<G> {
    match r {
        None => Err(TryLockError::WouldBlock),
        Some(Ok(g)) => Ok(g),
        Some(Err(e)) => Err(TryLockError::OwnerDied(OwnerDied::new(e.into_inner()))),
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.state().value.load(SeqCst))
            .finish()
    }
}

shared_serde!(Semaphore, SemState, Kind::Semaphore, slot_elem());

/// A permit of a [`Semaphore`]: dropping it gives the permit back.
///
/// Not `Send`: the permit is tracked for the thread that took it.
#[must_use = "the permit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    slot: Option<usize>,
    _not_send: PhantomData<*const ()>,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken without a guard: it comes back only through
    /// [`Semaphore::release`] (Python's bare `acquire`), and not if this
    /// process dies.
    pub fn forget(self) {
        self.sem.keep(self.slot);
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.sem.give_back(self.slot);
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// A [`Semaphore`] that refuses to be released above its initial value
/// (Python's `BoundedSemaphore`).
///
/// Permits out through guards count: with one of `BoundedSemaphore(1)`'s
/// permit held, a [`release`](Semaphore::release) is refused at once
/// (Python accepts it, then raises on the holder's own release, which a
/// guard's drop could not report).
///
/// # Examples
/// ```
/// use multiproc::BoundedSemaphore;
///
/// let sem = BoundedSemaphore::new(1).unwrap();
/// assert!(sem.release().unwrap_err().is_misuse());
/// let permit = sem.acquire().unwrap();
/// assert!(sem.try_acquire().is_err());
/// drop(permit);
/// assert_eq!(sem.value(), 1);
/// ```
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

impl BoundedSemaphore {
    /// Creates a semaphore with `value` permits, and at most that many.
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new(value: u32) -> Result<BoundedSemaphore, Error> {
        Ok(BoundedSemaphore {
            inner: Semaphore::create(value, value)?,
        })
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.inner
    }
}
