//! [`Barrier`]: Python's `multiprocessing.Barrier`, which also notices a
//! party that died.

use super::raw::{RawMutex, Wait};
use super::registry::{self, ENTRIES, Entry};
use crate::error::{BarrierError, Error};
use crate::shared::block::{Block, Elem, Kind, State, shared_serde};
use crate::sys::futex;
use crate::sys::mutex::{Acquired, Type};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// How often a waiting party checks that the other holders are alive.
const CHECK_EVERY: Duration = Duration::from_millis(20);

#[repr(C)]
struct BarrierState {
    /// Guards every field below except `epoch` and `sleepers`.
    m: RawMutex,
    parties: AtomicU32,
    /// Arrived in the current generation.
    count: AtomicU32,
    /// Bumped each time the barrier fills or is reset.
    generation: AtomicU32,
    /// 1 while broken.
    broken: AtomicU32,
    /// The pid of the party whose death broke it (0: none).
    died: AtomicU32,
    /// 1 + the last generation ended by `reset` rather than filled.
    reset_generation: AtomicU32,
    /// Bumped on every change waiters must see: the futex word.
    epoch: AtomicU32,
    sleepers: AtomicU32,
    /// When (monotonic ns) a waiter last looked for dead holders: one look
    /// per interval for the whole barrier, however many wait.
    last_check: AtomicU64,
}

// SAFETY: repr(C); the mutex is initialised by `new` before anyone sees it;
// the rest are atomics for which zero is a valid start.
unsafe impl State for BarrierState {}

/// A barrier for a fixed number of parties (Python's
/// `multiprocessing.Barrier`): each [`wait`](Self::wait) blocks until
/// `parties` processes (or threads) have called it, then all go on, and the
/// barrier is ready for the next round.
///
/// If a party cannot come, the barrier **breaks** and every waiter gets a
/// [`BarrierError`] instead of waiting forever (Python's
/// `BrokenBarrierError`): after [`abort`](Self::abort), after a wait's
/// timeout, and, beyond Python, when a process holding the barrier dies
/// without arriving ([`BarrierError::PartyDied`], noticed within about 20
/// ms). For that, each process holding a handle is registered in the
/// barrier's shared table (once per process, up to 64 processes; more are
/// not watched) until its last handle is dropped: a process that ends
/// normally but keeps its handle alive
/// past its end (`std::process::exit`) counts as dead. The barrier cannot
/// tell a party from a bystander: any holder that dies while others wait
/// breaks it, even one that had finished its rounds, so a process that
/// will not wait again should drop its handle. A broken barrier stays
/// broken until [`reset`](Self::reset).
///
/// Python's `action` argument has no equivalent: run it in the party whose
/// `wait` returns 0.
///
/// # Examples
/// ```
/// use multiproc::{Barrier, Process};
///
/// fn party(b: Barrier) -> u32 {
///     b.wait().unwrap()
/// }
///
/// let b = Barrier::new(3).unwrap();
/// let children: Vec<_> = (0..2)
///     .map(|_| Process::spawn(party, b.clone()).unwrap())
///     .collect();
/// let mine = b.wait().unwrap();
/// let mut indices: Vec<u32> = children.into_iter().map(|mut c| c.join().unwrap()).collect();
/// indices.push(mine);
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// ```
pub struct Barrier {
    block: Block,
    /// The pid this handle registered this process under, if watched.
    held: Option<u32>,
}

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    /// [`Error::is_misuse`] if `parties` is 0; an I/O error if the shared
    /// memory cannot be created.
    pub fn new(parties: u32) -> Result<Barrier, Error> {
        if parties == 0 {
            return Err(Error::misuse("a barrier needs at least one party"));
        }
        let block = Block::create::<BarrierState>(
            Kind::Barrier,
            Elem::slots(size_of::<Entry>(), align_of::<Entry>()),
            ENTRIES,
            |s| {
                s.parties.store(parties, SeqCst);
                s.m.init(Type::Normal)
            },
        )?;
        Ok(Barrier::from_block(block))
    }

    fn from_block(block: Block) -> Barrier {
        let mut b = Barrier { block, held: None };
        b.held = b
            .block
            .identity()
            .and_then(|id| registry::hold(id, b.entries()));
        b
    }

    fn state(&self) -> &BarrierState {
        self.block.state()
    }

    fn entries(&self) -> &[Entry] {
        // SAFETY: the block holds `len` entries (checked at create/open),
        // atomics only, valid as zeros, alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.block.payload().cast(), self.block.len()) }
    }

    /// Runs `f` with the barrier's lock held; a party that died inside
    /// such a section breaks the barrier.
    fn locked<T>(&self, f: impl FnOnce(&BarrierState) -> T) -> T {
        let s = self.state();
        let got = s.m.acquire(Wait::Forever);
        if got == Some(Acquired::OwnerDied) {
            s.broken.store(1, SeqCst);
        }
        let r = f(s);
        // SAFETY: acquired just above.
        unsafe { s.m.release() };
        r
    }

    fn announce(&self) {
        let s = self.state();
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            futex::wake_all(&s.epoch);
        }
    }

    fn broken_error(s: &BarrierState) -> BarrierError {
        match s.died.load(SeqCst) {
            0 => BarrierError::Broken,
            pid => BarrierError::PartyDied(pid),
        }
    }

    /// Waits until all parties have arrived; returns this party's arrival
    /// index in the round: the first to arrive gets 0, the last
    /// `parties - 1`.
    ///
    /// # Errors
    /// A [`BarrierError`] if the barrier is or becomes broken.
    pub fn wait(&self) -> Result<u32, BarrierError> {
        self.wait_until(None)
    }

    /// [`wait`](Self::wait) for at most `timeout`; if it passes, the barrier
    /// breaks for everyone ([`BarrierError::Timeout`] here).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, BarrierError> {
        self.wait_until(Wait::timeout(timeout).deadline())
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<u32, BarrierError> {
        let arrived = self.locked(|s| {
            if s.broken.load(SeqCst) == 1 {
                return Err(Self::broken_error(s));
            }
            let generation = s.generation.load(SeqCst);
            let index = s.count.fetch_add(1, SeqCst);
            if index + 1 >= s.parties.load(SeqCst) {
                s.count.store(0, SeqCst);
                s.generation.store(generation.wrapping_add(1), SeqCst);
                return Ok((index, None));
            }
            Ok((index, Some(generation)))
        })?;
        let (index, generation) = match arrived {
            (index, None) => {
                self.announce();
                return Ok(index);
            }
            (index, Some(g)) => (index, g),
        };
        let s = self.state();
        let mut next_check = Instant::now() + CHECK_EVERY;
        loop {
            let epoch = s.epoch.load(SeqCst);
            if let Some(done) = self.outcome(generation, index) {
                return done;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return self.break_round(generation, index, BarrierError::Timeout, 0);
            }
            if now >= next_check {
                next_check = now + CHECK_EVERY;
                if self.my_turn_to_check() {
                    if let Some(pid) = registry::take_dead(self.entries()) {
                        return self.break_round(
                            generation,
                            index,
                            BarrierError::PartyDied(pid),
                            pid,
                        );
                    }
                }
            }
            let wake_at = deadline.map_or(next_check, |d| d.min(next_check));
            s.sleepers.fetch_add(1, SeqCst);
            futex::wait(&s.epoch, epoch, Some(wake_at));
            s.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Whether this waiter should look for dead holders now: the first
    /// to ask in each interval (reading `/proc` for every holder is not
    /// free, and one look serves all the waiters).
    fn my_turn_to_check(&self) -> bool {
        let s = self.state();
        let now = crate::sys::monotonic_ns();
        let last = s.last_check.load(SeqCst);
        now.saturating_sub(last) >= CHECK_EVERY.as_nanos() as u64
            && s.last_check
                .compare_exchange(last, now, SeqCst, SeqCst)
                .is_ok()
    }

    /// How round `generation` ended for the party with `index`, if it has.
    fn outcome(&self, generation: u32, index: u32) -> Option<Result<u32, BarrierError>> {
        let s = self.state();
        if s.generation.load(SeqCst) != generation {
            if s.reset_generation.load(SeqCst) == generation.wrapping_add(1) {
                return Some(Err(BarrierError::Broken));
            }
            return Some(Ok(index));
        }
        if s.broken.load(SeqCst) == 1 {
            return Some(Err(Self::broken_error(s)));
        }
        None
    }

    /// Breaks round `generation` (unless it ended meanwhile) for `why`.
    fn break_round(
        &self,
        generation: u32,
        index: u32,
        why: BarrierError,
        died: u32,
    ) -> Result<u32, BarrierError> {
        let r = self.locked(|s| {
            if let Some(done) = self.outcome(generation, index) {
                return done;
            }
            s.broken.store(1, SeqCst);
            s.died.store(died, SeqCst);
            Err(why)
        });
        self.announce();
        r
    }

    /// Breaks the barrier: every current and future waiter gets
    /// [`BarrierError::Broken`] until [`reset`](Self::reset).
    pub fn abort(&self) {
        self.locked(|s| s.broken.store(1, SeqCst));
        self.announce();
    }

    /// Returns the barrier to its empty, unbroken state; parties waiting
    /// now get [`BarrierError::Broken`].
    pub fn reset(&self) {
        self.locked(|s| {
            let generation = s.generation.load(SeqCst);
            // Parties still asleep in this round (broken or not) must learn
            // that it ended without filling.
            if s.count.load(SeqCst) > 0 {
                s.reset_generation.store(generation.wrapping_add(1), SeqCst);
            }
            s.generation.store(generation.wrapping_add(1), SeqCst);
            s.count.store(0, SeqCst);
            s.broken.store(0, SeqCst);
            s.died.store(0, SeqCst);
        });
        self.announce();
    }

    /// How many parties the barrier needs.
    pub fn parties(&self) -> u32 {
        self.state().parties.load(SeqCst)
    }

    /// How many parties are waiting now.
    pub fn n_waiting(&self) -> u32 {
        self.locked(|s| {
            if s.broken.load(SeqCst) == 1 {
                0
            } else {
                s.count.load(SeqCst)
            }
        })
    }

    /// How many processes the barrier watches (tests).
    #[cfg(test)]
    pub(crate) fn watched(&self) -> usize {
        registry::watched(self.entries())
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state().broken.load(SeqCst) == 1
    }
}

impl Clone for Barrier {
    fn clone(&self) -> Barrier {
        Barrier::from_block(self.block.clone())
    }
}

impl Drop for Barrier {
    fn drop(&mut self) {
        if let (Some(pid), Some(id)) = (self.held, self.block.identity()) {
            registry::release(id, self.entries(), pid);
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.is_broken())
            .finish()
    }
}

shared_serde!(
    Barrier,
    BarrierState,
    Kind::Barrier,
    Elem::slots(size_of::<Entry>(), align_of::<Entry>())
);
