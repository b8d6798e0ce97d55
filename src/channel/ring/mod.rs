//! The shared-memory ring every channel is built on; its design is in
//! `channel/README.md`.
//!
//! A ring is a header (two robust locks, positions, counters, sleeper
//! counts) and a data area of `cap` bytes, both in one shared mapping.
//! Records are `[len: u32][flags: u32][payload, padded to 8]`, written at
//! monotonically increasing byte positions (`pos & (cap - 1)` is the offset);
//! a record never wraps: a pad record fills the end of the area instead.
//!
//! Every position a reader uses is masked with a validated `cap`, and every
//! length is checked against the space it claims, so a corrupt header gives
//! an error, never an access outside the mapping.

use crate::sys::mutex::{self, Acquired};
use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Instant;

mod guards;
#[cfg(test)]
mod test;

pub(crate) use guards::{Consuming, Producing};

/// The bytes a ring header takes in a region (room to spare).
pub(crate) const HEADER_LEN: usize = 1024;
const MAGIC: u64 = 0x4d50_5249_4e47_0002; // "MPRING" v2
const RECORD_HEADER: u64 = 8;
/// Records smaller than this are padded up, so that a ring's record count is
/// bounded by `cap / MIN_RECORD`.
const MIN_RECORD: u64 = 16;
/// A ring grown to this many times its initial size shrinks back when it
/// empties, giving the memory back.
const SHRINK_AT: u64 = 16;

/// A pad record: skip it.
pub(crate) const PAD: u32 = 1;
/// A carrier record: its payload is an 8-byte id; the message itself went
/// through the channel's socket, tagged with that id.
pub(crate) const CARRIER: u32 = 1 << 8;

/// One side's state: its lock and what only its holders write.
#[repr(C, align(64))]
struct Side {
    lock: UnsafeCell<libc::pthread_mutex_t>,
    /// Producers: the tail (next write position). Consumers: the head.
    pos: AtomicU64,
    /// Records committed (producers) or taken (consumers), ever.
    count: AtomicU64,
    /// The other side's `pos` as last read (under this side's lock).
    seen: AtomicU64,
    /// Producers: the next carrier id.
    next_id: AtomicU64,
    /// Producers: the consumers' `count` as last read (under this side's
    /// lock). A bounded ring's length is at most `count - seen_count`, so
    /// a producer reads the consumers' line only when that looks full.
    seen_count: AtomicU64,
}

#[repr(C, align(64))]
struct Shared {
    magic: AtomicU64,
    /// Current data capacity: a power of two, at most `reserve`. Changed
    /// only with both locks held.
    cap: AtomicU64,
    initial_cap: AtomicU64,
    reserve: AtomicU64,
    /// Most records in the ring (`u64::MAX`: no bound).
    bound: AtomicU64,
    /// Set when a lock holder died; the next producer recounts.
    recount: AtomicU32,
}

#[repr(C, align(64))]
struct Sleepers {
    /// Waiting for data.
    data: AtomicU32,
    /// Waiting for space.
    space: AtomicU32,
    /// Waiting for `done == put` (JoinableQueue).
    join: AtomicU32,
    /// `task_done` calls, ever (JoinableQueue).
    done: AtomicU64,
    /// Set by each new sleeper, cleared by the one who rings the bell: a
    /// burst of commits rings once per sleep, not once per commit, and a
    /// sleeper that died registered stops costing anything.
    data_armed: AtomicU32,
    space_armed: AtomicU32,
    join_armed: AtomicU32,
}

#[repr(C)]
struct Header {
    shared: Shared,
    prod: Side,
    cons: Side,
    sleepers: Sleepers,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_LEN);

/// Why a push did not happen.
#[derive(Debug)]
pub(crate) enum PushError {
    /// No room now (or the bound is reached); retry after space frees up.
    Full,
    /// The lock could not be taken before the deadline.
    TimedOut,
    /// The record can never fit, or the OS failed.
    Fatal(io::Error),
}

/// A view of a ring living in a shared mapping owned by someone else (the
/// channel's `Region`), which must outlive it.
#[derive(Debug)]
pub(crate) struct Ring {
    hdr: *const Header,
    data: *mut u8,
}

// SAFETY: the ring's memory is only accessed through atomics and under its
// process-shared locks; the pointers are valid while the owning channel is.
unsafe impl Send for Ring {}
// SAFETY: see `Send`.
unsafe impl Sync for Ring {}

/// Unlocks a side's lock when dropped.
struct Held<'a> {
    side: &'a Side,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Held` exists only while this thread holds the lock.
        unsafe { mutex::unlock(self.side.lock.get()) }
    }
}

fn pad8(n: u64) -> u64 {
    (n + 7) & !7
}

fn record_size(payload: u64) -> u64 {
    pad8(RECORD_HEADER + payload).max(MIN_RECORD)
}

impl Ring {
    /// Initialises a ring at `hdr` with its data area at `data`.
    ///
    /// # Safety
    /// `hdr` must point to `HEADER_LEN` zeroed, 64-byte-aligned bytes and
    /// `data` to `reserve` bytes, both in a shared mapping that outlives the
    /// ring and every `Ring` later attached to it; nobody else uses them yet.
    pub(crate) unsafe fn init(
        hdr: *mut u8,
        data: *mut u8,
        initial_cap: u64,
        reserve: u64,
        bound: u64,
    ) -> io::Result<Ring> {
        assert!(initial_cap.is_power_of_two() && initial_cap <= reserve && initial_cap >= 64);
        let h = hdr.cast::<Header>();
        // SAFETY: [1] `hdr` is valid, aligned and unused per the contract,
        // and zeroed bytes are a valid `Header` (atomics and a mutex that
        // `init` overwrites); [2] the locks are initialised before anyone
        // else can see the ring.
        unsafe {
            mutex::init((*h).prod.lock.get())?;
            mutex::init((*h).cons.lock.get())?;
            let s = &(*h).shared;
            s.cap.store(initial_cap, Ordering::Relaxed);
            s.initial_cap.store(initial_cap, Ordering::Relaxed);
            s.reserve.store(reserve, Ordering::Relaxed);
            s.bound.store(bound, Ordering::Relaxed);
            s.magic.store(MAGIC, Ordering::Release);
        }
        Ok(Ring { hdr: h, data })
    }

    /// Attaches to a ring that another process initialised, checking its
    /// header against the `reserve` bytes its data area has here.
    ///
    /// # Safety
    /// As [`Ring::init`], except that the bytes hold a ring (or garbage:
    /// that is detected, not trusted).
    pub(crate) unsafe fn attach(hdr: *mut u8, data: *mut u8, reserve: u64) -> Result<Ring, String> {
        let ring = Ring {
            hdr: hdr.cast::<Header>(),
            data,
        };
        let s = &ring.h().shared;
        if s.magic.load(Ordering::Acquire) != MAGIC {
            return Err("not a multiproc ring (bad magic)".into());
        }
        if s.reserve.load(Ordering::Relaxed) != reserve {
            return Err("ring geometry does not match its mapping".into());
        }
        ring.cap().map_err(|e| e.to_string())?;
        Ok(ring)
    }

    fn h(&self) -> &Header {
        // SAFETY: `hdr` points to a live header per the constructors' contracts.
        unsafe { &*self.hdr }
    }

    /// The validated current capacity.
    fn cap(&self) -> io::Result<u64> {
        let s = &self.h().shared;
        let cap = s.cap.load(Ordering::Relaxed);
        if !cap.is_power_of_two() || cap > s.reserve.load(Ordering::Relaxed) || cap < 64 {
            return Err(corrupt("capacity"));
        }
        Ok(cap)
    }

    fn lock<'a>(&self, side: &'a Side, deadline: Option<Instant>) -> Result<Held<'a>, PushError> {
        // SAFETY: the lock was initialised by `Ring::init` and lives in the
        // shared mapping, which outlives `self`.
        match unsafe { mutex::lock(side.lock.get(), deadline) } {
            Ok(Acquired::Clean) => Ok(Held { side }),
            Ok(Acquired::OwnerDied) => {
                self.h().shared.recount.store(1, Ordering::Relaxed);
                Ok(Held { side })
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(PushError::TimedOut),
            Err(e) => Err(PushError::Fatal(e)),
        }
    }

    /// The largest payload a record can ever carry.
    pub(crate) fn max_payload(&self) -> u64 {
        self.h().shared.reserve.load(Ordering::Relaxed) / 2 - RECORD_HEADER
    }

    /// Appends one record whose payload is `parts` concatenated. `commit`
    /// runs under the producers' lock once room is certain, with the
    /// record's carrier id, before the record becomes visible; if it fails,
    /// nothing is written.
    pub(crate) fn push(
        &self,
        flags: u32,
        parts: &[&[u8]],
        deadline: Option<Instant>,
        commit: impl FnOnce(u64) -> io::Result<()>,
    ) -> Result<(), PushError> {
        self.producing(deadline)?
            .append(flags, parts, Some(deadline), commit)
    }

    /// Takes the producers' lock (repairing the counts if its last holder
    /// died) for one or more [`Producing::append`]s.
    pub(crate) fn producing(&self, deadline: Option<Instant>) -> Result<Producing<'_>, PushError> {
        let h = self.h();
        let held = self.lock(&h.prod, deadline)?;
        if h.shared.recount.load(Ordering::Relaxed) != 0 {
            self.recount(deadline)?;
        }
        Ok(Producing {
            ring: self,
            _held: held,
        })
    }

    /// Takes the consumers' lock for one or more [`Consuming::take`]s.
    pub(crate) fn consuming(&self, deadline: Option<Instant>) -> Result<Consuming<'_>, PushError> {
        let held = self.lock(&self.h().cons, deadline)?;
        Ok(Consuming {
            ring: self,
            _held: held,
        })
    }
}

impl Ring {
    /// # Safety
    /// `offset + 8 <= cap` and this thread owns the space there.
    unsafe fn write_header(&self, offset: u64, len: u32, flags: u32) {
        let word = (len as u64) | ((flags as u64) << 32);
        // SAFETY: per the contract; offsets are multiples of 8.
        unsafe { self.data.add(offset as usize).cast::<u64>().write(word) }
    }

    /// Doubles the capacity until `need` bytes fit, moving the live records
    /// to their offsets under the new capacity. Holds the producers' lock;
    /// takes the consumers'. `false`: the reserve is exhausted.
    fn grow(&self, need: u64, deadline: Option<Instant>) -> Result<bool, PushError> {
        let h = self.h();
        let s = &h.shared;
        let cap = self.cap().map_err(PushError::Fatal)?;
        let mut new_cap = cap;
        while new_cap < need {
            new_cap *= 2;
        }
        if new_cap > s.reserve.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let _cons = self.lock(&h.cons, deadline)?;
        let head = h.cons.pos.load(Ordering::Acquire);
        let tail = h.prod.pos.load(Ordering::Relaxed);
        let live = tail.wrapping_sub(head);
        if live > cap {
            return Err(PushError::Fatal(corrupt("positions")));
        }
        let mut saved = vec![0u8; live as usize];
        // SAFETY: [1] both locks are held, so nobody reads or writes the
        // data area; [2] every range below is inside `[0, new_cap)`, within
        // the reserve; [3] `saved` holds `live` bytes.
        unsafe {
            self.copy_out(head, cap, &mut saved);
            self.copy_in(head, new_cap, &saved);
        }
        s.cap.store(new_cap, Ordering::Relaxed);
        h.prod.seen.store(head, Ordering::Relaxed);
        Ok(true)
    }

    /// # Safety
    /// Both locks held; `buf.len() <= cap <= reserve`.
    unsafe fn copy_out(&self, from: u64, cap: u64, buf: &mut [u8]) {
        let off = (from & (cap - 1)) as usize;
        let first = buf.len().min(cap as usize - off);
        // SAFETY: per the contract, both ranges lie in `[0, cap)`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(off), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                buf.as_mut_ptr().add(first),
                buf.len() - first,
            );
        }
    }

    /// # Safety
    /// As `copy_out`.
    unsafe fn copy_in(&self, from: u64, cap: u64, buf: &[u8]) {
        let off = (from & (cap - 1)) as usize;
        let first = buf.len().min(cap as usize - off);
        // SAFETY: per the contract, both ranges lie in `[0, cap)`.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), self.data.add(off), first);
            std::ptr::copy_nonoverlapping(buf.as_ptr().add(first), self.data, buf.len() - first);
        }
    }

    /// After a lock holder died: makes the producers' count agree with the
    /// records in the ring. Holds the producers' lock; takes the consumers'.
    fn recount(&self, deadline: Option<Instant>) -> Result<(), PushError> {
        let h = self.h();
        let _cons = self.lock(&h.cons, deadline)?;
        h.shared.recount.store(0, Ordering::Relaxed);
        let cap = self.cap().map_err(PushError::Fatal)?;
        let (mut at, tail) = (
            h.cons.pos.load(Ordering::Relaxed),
            h.prod.pos.load(Ordering::Relaxed),
        );
        let mut n = 0u64;
        while at != tail {
            let (len, flags, size) = self.read_header(at, cap, tail).map_err(PushError::Fatal)?;
            let _ = len;
            if flags != PAD {
                n += 1;
            }
            at += size;
        }
        let got = h.cons.count.load(Ordering::Relaxed);
        h.prod.count.store(got + n, Ordering::Relaxed);
        Ok(())
    }

    /// Reads and checks the record header at `at` (`at != tail`): its
    /// payload length, flags and whole size.
    fn read_header(&self, at: u64, cap: u64, tail: u64) -> io::Result<(u64, u32, u64)> {
        let off = at & (cap - 1);
        if !off.is_multiple_of(8) || tail.wrapping_sub(at) > cap {
            return Err(corrupt("positions"));
        }
        // SAFETY: `off` is 8-aligned and `< cap <= reserve`, so the 8 bytes
        // lie in the data area; the record was published by the producer's
        // release store of `pos` that our acquire load of it observed.
        let word = unsafe { self.data.add(off as usize).cast::<u64>().read() };
        let (len, flags) = (word & 0xffff_ffff, (word >> 32) as u32);
        let size = if flags == PAD {
            pad8(RECORD_HEADER + len)
        } else {
            record_size(len)
        };
        if off + size > cap || size > tail.wrapping_sub(at) {
            return Err(corrupt("record length"));
        }
        Ok((len, flags, size))
    }

    /// Gives a grown ring's memory back once it is empty. Holds the
    /// consumers' lock; takes the producers' only if it is free (the lock
    /// order is producers first).
    fn shrink(&self, cap: u64) {
        let h = self.h();
        // SAFETY: the lock was initialised by `Ring::init` and lives in the
        // shared mapping, which outlives `self`.
        let Ok(Some(acquired)) = (unsafe { mutex::try_lock(h.prod.lock.get()) }) else {
            return;
        };
        let _prod = Held { side: &h.prod };
        if acquired == Acquired::OwnerDied {
            h.shared.recount.store(1, Ordering::Relaxed);
        }
        if h.prod.pos.load(Ordering::Relaxed) != h.cons.pos.load(Ordering::Relaxed) {
            return;
        }
        let initial = h.shared.initial_cap.load(Ordering::Relaxed);
        h.shared.cap.store(initial, Ordering::Relaxed);
        // SAFETY: `[initial, cap)` of the data area is inside the mapping
        // and holds no record (the ring is empty, both locks are held).
        unsafe {
            crate::sys::shm::discard(self.data.add(initial as usize), (cap - initial) as usize)
        };
    }

    /// Under the producers' lock: whether a bounded ring holds `bound`
    /// records, reading the consumers' count only when the cached one says
    /// so (it can only be behind, which errs towards full).
    fn at_bound(&self, bound: u64) -> bool {
        let h = self.h();
        let put = h.prod.count.load(Ordering::Relaxed);
        if put.wrapping_sub(h.prod.seen_count.load(Ordering::Relaxed)) < bound {
            return false;
        }
        let got = h.cons.count.load(Ordering::Acquire);
        h.prod.seen_count.store(got, Ordering::Relaxed);
        put.saturating_sub(got) >= bound
    }

    /// Records in the ring now (approximate while others work).
    pub(crate) fn len(&self) -> u64 {
        let h = self.h();
        let got = h.cons.count.load(Ordering::Acquire);
        h.prod.count.load(Ordering::Acquire).saturating_sub(got)
    }

    /// Whether a producer that found the ring full should try again to
    /// append a record of `payload` bytes (approximate: read without the
    /// locks): the bound is not reached and the bytes fit, counted as
    /// `Producing::append` counts them, in the ring as it may grow (`grows`:
    /// up to the reserve) or as it is. With `batch`, only once there is room
    /// for a batch: an eighth of the bound (at least one record), or,
    /// unbounded, an eighth of the room. Waiting for a batch of room rather
    /// than for the next record to leave keeps a fast producer and its
    /// consumer from contending record by record (a bounded queue of 4,096
    /// went from ~2.5 to ~11 million messages a second); a waiter about to
    /// sleep asks without `batch`, as the bell it sleeps on rings for any
    /// record taken.
    pub(crate) fn has_room(&self, payload: u64, batch: bool, grows: bool) -> bool {
        let h = self.h();
        let Ok(cap) = self.cap() else {
            return true; // Let the append report the corruption.
        };
        let bound = h.shared.bound.load(Ordering::Relaxed);
        if bound != u64::MAX {
            let want = if batch { (bound / 8).max(1) } else { 1 };
            if self.len().saturating_add(want) > bound {
                return false;
            }
        }
        let limit = if grows {
            h.shared.reserve.load(Ordering::Relaxed)
        } else {
            cap
        };
        let tail = h.prod.pos.load(Ordering::Relaxed);
        let used = tail.wrapping_sub(h.cons.pos.load(Ordering::Acquire));
        // A record that does not fit before the end of the area needs the
        // rest of it too (a pad record); growing keeps that need. (The same
        // count as `Producing::append`'s, written out twice on purpose: a
        // shared helper cost bounded queues 15–20% of their throughput.)
        let size = record_size(payload);
        let to_end = cap - (tail & (cap - 1));
        let need = if size <= to_end { size } else { to_end + size };
        let free = limit.saturating_sub(used);
        free >= need && (!batch || bound != u64::MAX || free >= limit / 8)
    }

    /// For a receiver in the middle of a streamed message (whose sender
    /// holds the producers' lock until its last chunk is committed):
    /// whether that lock is free now, i.e. the sender died mid-message.
    pub(crate) fn producers_gone(&self) -> bool {
        let h = self.h();
        // SAFETY: the lock was initialised by `Ring::init` and lives in the
        // shared mapping, which outlives `self`.
        match unsafe { mutex::try_lock(h.prod.lock.get()) } {
            Ok(Some(acquired)) => {
                if acquired == Acquired::OwnerDied {
                    h.shared.recount.store(1, Ordering::Relaxed);
                }
                drop(Held { side: &h.prod });
                true
            }
            _ => false,
        }
    }

    /// Whether the ring holds no record now.
    pub(crate) fn is_empty(&self) -> bool {
        let h = self.h();
        h.cons.pos.load(Ordering::Acquire) == h.prod.pos.load(Ordering::Acquire)
    }

    /// Whether the bound is reached now.
    pub(crate) fn is_full(&self) -> bool {
        let bound = self.h().shared.bound.load(Ordering::Relaxed);
        bound != u64::MAX && self.len() >= bound
    }

    /// The sleeper counter for `what`.
    pub(crate) fn sleepers(&self, what: Wake) -> &AtomicU32 {
        let s = &self.h().sleepers;
        match what {
            Wake::Data => &s.data,
            Wake::Space => &s.space,
            Wake::Join => &s.join,
        }
    }

    fn armed(&self, what: Wake) -> &AtomicU32 {
        let s = &self.h().sleepers;
        match what {
            Wake::Data => &s.data_armed,
            Wake::Space => &s.space_armed,
            Wake::Join => &s.join_armed,
        }
    }

    /// Registers the caller as a sleeper on `what`. The caller must check
    /// its condition again afterwards, then sleep, then call
    /// [`Ring::unregister`].
    pub(crate) fn register(&self, what: Wake) {
        self.sleepers(what).fetch_add(1, Ordering::SeqCst);
        self.armed(what).store(1, Ordering::SeqCst);
    }

    /// Arms `what`'s bell again (see [`Ring::should_ring`]): for a woken
    /// sleeper that took the tokens while others still sleep.
    pub(crate) fn rearm(&self, what: Wake) {
        self.armed(what).store(1, Ordering::SeqCst);
    }

    /// Undoes [`Ring::register`].
    pub(crate) fn unregister(&self, what: Wake) {
        self.sleepers(what).fetch_sub(1, Ordering::SeqCst);
    }

    /// A full fence: orders the caller's last commit before the
    /// [`Ring::should_ring`] checks that follow (the sleeper's side of this
    /// Dekker pair is `register` then a check of the ring).
    pub(crate) fn fence(&self) {
        fence(Ordering::SeqCst);
    }

    /// After [`Ring::fence`]: whether the caller must ring `what`'s bell
    /// (someone sleeps, and nobody rang since they went to sleep).
    pub(crate) fn should_ring(&self, what: Wake) -> bool {
        self.sleepers(what).load(Ordering::Relaxed) > 0
            && self.armed(what).swap(0, Ordering::SeqCst) == 1
    }

    /// Records ever committed (JoinableQueue's `put` count).
    pub(crate) fn put_count(&self) -> u64 {
        self.h().prod.count.load(Ordering::Acquire)
    }

    /// `task_done` calls so far.
    pub(crate) fn done(&self) -> &AtomicU64 {
        &self.h().sleepers.done
    }
}

/// What a sleeper waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A record to take.
    Data,
    /// Room to put one.
    Space,
    /// Every task done.
    Join,
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("shared ring corrupted: bad {what}"),
    )
}
