//! A table of the processes holding a shared object, so that waiters can
//! notice when one of them died without doing its part (a barrier party
//! that will never arrive).
//!
//! An entry is a pid and that process's start time: the pair tells a dead
//! process from a later one that reused its number. Entries are claimed
//! with a compare-and-swap on the pid, so no lock is needed; a handle
//! claims one when it is created or received and frees it when dropped.

use crate::sys::{self, proc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};

/// How many processes one object can track; holders beyond are not
/// watched (documented on the types that use this).
pub(crate) const ENTRIES: usize = 64;

/// One holder.
#[repr(C)]
pub(crate) struct Entry {
    pid: AtomicU32,
    _pad: u32,
    /// 0 while the entry is being filled in.
    start: AtomicU64,
}

/// This process's pid and start time, computed once per process (a forked
/// child recomputes: its pid differs); `None` if `/proc` cannot tell (then
/// the process is not watched rather than always taken for dead).
fn me() -> Option<(u32, u64)> {
    static CACHE: Mutex<(u32, u64)> = Mutex::new((0, 0));
    let pid = sys::getpid() as u32;
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if c.0 != pid {
        *c = (pid, proc::live_start_time(pid as i32).unwrap_or(0));
    }
    (c.1 != 0).then_some(*c)
}

/// Claims a free entry for this process; `None` if the table is full or
/// this process cannot be watched.
fn register(entries: &[Entry]) -> Option<usize> {
    let (pid, start) = me()?;
    for (i, e) in entries.iter().enumerate() {
        if e.pid.compare_exchange(0, pid, SeqCst, SeqCst).is_ok() {
            e.start.store(start, SeqCst);
            return Some(i);
        }
    }
    None
}

/// Frees entry `i` (claimed by this process).
fn unregister(entries: &[Entry], i: usize) {
    if let Some(e) = entries.get(i) {
        e.start.store(0, SeqCst);
        e.pid.store(0, SeqCst);
    }
}

/// A holder that has died (its entry is freed, so it is reported once),
/// if any.
pub(crate) fn take_dead(entries: &[Entry]) -> Option<u32> {
    for e in entries {
        let pid = e.pid.load(SeqCst);
        let start = e.start.load(SeqCst);
        // Re-read the pid: the entry may have been freed and claimed again
        // between the two loads (then this pair mixes two holders).
        if pid == 0 || start == 0 || e.pid.load(SeqCst) != pid {
            continue;
        }
        if proc::live_start_time(pid as i32) != Some(start) {
            // Free it only if it still names the same dead process.
            if e.start.compare_exchange(start, 0, SeqCst, SeqCst).is_ok() {
                let _ = e.pid.compare_exchange(pid, 0, SeqCst, SeqCst);
                return Some(pid);
            }
        }
    }
    None
}

/// This process's registrations: one entry per object (keyed by the
/// object's memfd identity) however many handles of it the process holds.
/// The key has the pid: a child forked with a copy of this map does not
/// share its parent's registrations.
static HOLDS: Mutex<Option<Holds>> = Mutex::new(None);

/// `(pid, device, inode)` of an object → `(entry, handles)`.
type Holds = HashMap<(u32, u64, u64), (usize, usize)>;

/// Registers this process as a holder of the object `object` (a memfd
/// identity) whose table is `entries`, once per process; the pid it was
/// registered under, to give back to [`release`]. `None`: not watched
/// (the table is full, or `/proc` cannot describe this process).
pub(crate) fn hold(object: (u64, u64), entries: &[Entry]) -> Option<u32> {
    let pid = sys::getpid() as u32;
    let key = (pid, object.0, object.1);
    let mut holds = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
    let holds = holds.get_or_insert_with(HashMap::new);
    if let Some((_, count)) = holds.get_mut(&key) {
        *count += 1;
        return Some(pid);
    }
    let entry = register(entries)?;
    holds.insert(key, (entry, 1));
    Some(pid)
}

/// Gives back one [`hold`] of this process (a no-op in a forked child for
/// a handle its parent registered).
pub(crate) fn release(object: (u64, u64), entries: &[Entry], pid: u32) {
    if sys::getpid() as u32 != pid {
        return;
    }
    let key = (pid, object.0, object.1);
    let mut holds = HOLDS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(holds) = holds.as_mut() else {
        return;
    };
    if let Some((entry, count)) = holds.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            let entry = *entry;
            holds.remove(&key);
            unregister(entries, entry);
        }
    }
}

/// How many entries are claimed (tests).
#[cfg(test)]
pub(crate) fn watched(entries: &[Entry]) -> usize {
    entries.iter().filter(|e| e.pid.load(SeqCst) != 0).count()
}
