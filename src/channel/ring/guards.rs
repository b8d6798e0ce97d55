//! The two locked views of a ring: [`Producing`] appends records,
//! [`Consuming`] takes them.

use super::{CARRIER, Held, PAD, PushError, RECORD_HEADER, Ring, SHRINK_AT, corrupt, record_size};
use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The producers' lock, held.
pub(crate) struct Producing<'a> {
    pub(super) ring: &'a Ring,
    pub(super) _held: Held<'a>,
}

impl Producing<'_> {
    /// Appends one record whose payload is `parts` concatenated (see
    /// [`Ring::push`]). With `grow: Some(deadline)` a full ring grows
    /// (taking the consumers' lock, waiting until `deadline`); with `None`
    /// it never does, for a caller that must not wait for consumers.
    pub(crate) fn append(
        &self,
        flags: u32,
        parts: &[&[u8]],
        grow: Option<Option<Instant>>,
        commit: impl FnOnce(u64) -> io::Result<()>,
    ) -> Result<(), PushError> {
        let this = self.ring;
        let carrier = flags & CARRIER != 0;
        let len: u64 = if carrier {
            8
        } else {
            parts.iter().map(|p| p.len() as u64).sum()
        };
        if len > this.max_payload() {
            return Err(PushError::Fatal(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record larger than the ring",
            )));
        }
        let h = this.h();
        let size = record_size(len);
        let (tail, offset, pad) = loop {
            let cap = this.cap().map_err(PushError::Fatal)?;
            let tail = h.prod.pos.load(Ordering::Relaxed);
            let offset = tail & (cap - 1);
            let to_end = cap - offset;
            let need = if size <= to_end { size } else { to_end + size };
            let used = |head: u64| tail.wrapping_sub(head);
            let mut head = h.prod.seen.load(Ordering::Relaxed);
            if used(head) + need > cap {
                head = h.cons.pos.load(Ordering::Acquire);
                h.prod.seen.store(head, Ordering::Relaxed);
            }
            if used(head) > cap {
                return Err(PushError::Fatal(corrupt("positions")));
            }
            if used(head) + need <= cap {
                let bound = h.shared.bound.load(Ordering::Relaxed);
                if bound != u64::MAX && this.at_bound(bound) {
                    return Err(PushError::Full);
                }
                break (tail, offset, need != size);
            }
            let Some(deadline) = grow else {
                return Err(PushError::Full);
            };
            if !this.grow(used(head) + need, deadline)? {
                return Err(PushError::Full);
            }
        };
        let cap = this.cap().map_err(PushError::Fatal)?;
        let id = h.prod.next_id.fetch_add(1, Ordering::Relaxed);
        commit(id).map_err(PushError::Fatal)?;
        let id_bytes = id.to_le_bytes();
        let id_parts: [&[u8]; 1] = [&id_bytes];
        let parts = if carrier { &id_parts[..] } else { parts };
        let mut at = tail;
        // SAFETY: [1] `offset + size <= cap` (or a pad first, then offset 0),
        // and `cap <= reserve`, the data area's length; [2] that space is
        // free: consumers have moved past it (`used + need <= cap`) and
        // other producers are excluded by the lock.
        unsafe {
            if pad {
                this.write_header(offset, (cap - offset - RECORD_HEADER) as u32, PAD);
                at += cap - offset;
            }
            let off = at & (cap - 1);
            this.write_header(off, len as u32, flags);
            let mut dst = this.data.add((off + RECORD_HEADER) as usize);
            for p in parts {
                std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                dst = dst.add(p.len());
            }
        }
        h.prod.pos.store(at + size, Ordering::Release);
        // Only lock holders write the count: no read-modify-write needed.
        let n = h.prod.count.load(Ordering::Relaxed);
        h.prod.count.store(n + 1, Ordering::Release);
        Ok(())
    }
}

/// The consumers' lock, held.
pub(crate) struct Consuming<'a> {
    pub(super) ring: &'a Ring,
    pub(super) _held: Held<'a>,
}

impl Consuming<'_> {
    /// Takes the oldest record, if any, handing its flags and payload to
    /// `take`. The record is consumed whatever `take` returns. `Ok(None)`:
    /// the ring is empty.
    pub(crate) fn take<R>(
        &self,
        take: impl FnOnce(u32, &[u8]) -> R,
    ) -> Result<Option<R>, PushError> {
        let this = self.ring;
        let h = this.h();
        loop {
            let head = h.cons.pos.load(Ordering::Relaxed);
            let mut tail = h.cons.seen.load(Ordering::Relaxed);
            if head == tail {
                tail = h.prod.pos.load(Ordering::Acquire);
                h.cons.seen.store(tail, Ordering::Relaxed);
                if head == tail {
                    return Ok(None);
                }
            }
            let cap = this.cap().map_err(PushError::Fatal)?;
            let (len, flags, size) = this
                .read_header(head, cap, tail)
                .map_err(PushError::Fatal)?;
            if flags == PAD {
                h.cons.pos.store(head + size, Ordering::Release);
                continue;
            }
            let off = (head & (cap - 1)) + RECORD_HEADER;
            // SAFETY: `read_header` checked that the record lies within the
            // data area and before the tail; producers do not touch it
            // until `pos` moves past it, which needs this lock.
            let payload =
                unsafe { std::slice::from_raw_parts(this.data.add(off as usize), len as usize) };
            let advance = || {
                h.cons.pos.store(head + size, Ordering::Release);
                let n = h.cons.count.load(Ordering::Relaxed);
                h.cons.count.store(n + 1, Ordering::Release);
            };
            let out = if flags & CARRIER != 0 {
                // Consume the record before `take` reads the carrier's
                // frame from the socket: a consumer killed in between then
                // leaves an orphan frame (of lower id, dropped by the next
                // consumer), never a record whose frame is gone.
                let mut id = [0u8; 8];
                let n = payload.len().min(8);
                id[..n].copy_from_slice(&payload[..n]);
                advance();
                take(flags, &id[..n])
            } else {
                let out = take(flags, payload);
                advance();
                out
            };
            if head + size == tail
                && cap >= SHRINK_AT * h.shared.initial_cap.load(Ordering::Relaxed)
            {
                this.shrink(cap);
            }
            return Ok(Some(out));
        }
    }
}
