//! The ring alone, in private memory.

use super::{HEADER_LEN, PushError, Ring};
use std::alloc::{Layout, alloc_zeroed, dealloc};

/// A ring's header and data area, freed on drop.
struct Area {
    ptr: *mut u8,
    layout: Layout,
}

impl Area {
    fn new(reserve: usize) -> Area {
        let layout = Layout::from_size_align(HEADER_LEN + reserve, 64).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Area { ptr, layout }
    }

    fn ring(&self, initial: u64, reserve: u64, bound: u64) -> Ring {
        // SAFETY: the area is zeroed, 64-byte aligned, `HEADER_LEN + reserve`
        // bytes, used by this ring alone, and outlives it (each test
        // declares the area first, so its ring is dropped first).
        unsafe { Ring::init(self.ptr, self.ptr.add(HEADER_LEN), initial, reserve, bound) }.unwrap()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn fill(ring: &Ring, payload: &[u8]) -> usize {
    let mut n = 0;
    loop {
        match ring.push(0, &[payload], None, |_| Ok(())) {
            Ok(()) => n += 1,
            Err(PushError::Full) => return n,
            Err(e) => panic!("push: {e:?}"),
        }
    }
}

/// A bounded ring whose bytes run out before its bound: a producer must
/// not be told to retry (it would spin, taking the lock, never sleeping).
#[test]
fn a_bounded_ring_out_of_bytes_has_no_room() {
    let area = Area::new(256);
    let ring = area.ring(64, 256, 100);
    let n = fill(&ring, &[7; 16]);
    assert!(n > 0 && (n as u64) < 100, "{n} records");
    assert!(!ring.has_room(16, false, true));
    assert!(!ring.has_room(16, true, true));
    let took = ring.consuming(None).unwrap().take(|_, p| p.len()).unwrap();
    assert_eq!(took, Some(16));
    assert!(ring.has_room(16, false, true), "one record left");
}

/// At its bound, with bytes to spare: room once one record leaves, a batch
/// once an eighth of the bound has.
#[test]
fn a_bounded_ring_at_its_bound() {
    let area = Area::new(1 << 16);
    let ring = area.ring(1 << 16, 1 << 16, 16);
    assert_eq!(fill(&ring, &[1; 8]), 16);
    assert!(!ring.has_room(8, false, true));
    let take = || ring.consuming(None).unwrap().take(|_, _| ()).unwrap();
    take();
    assert!(ring.has_room(8, false, true));
    assert!(!ring.has_room(8, true, true), "a batch is two records");
    take();
    assert!(ring.has_room(8, true, true));
}

/// Unbounded: room counts the ring as it may grow (the reserve) for a
/// growing push, as it is for one that may not grow.
#[test]
fn an_unbounded_ring_counts_what_it_may_grow_to() {
    let area = Area::new(1024);
    let ring = area.ring(64, 1024, u64::MAX);
    assert!(ring.has_room(40, false, true));
    assert!(ring.has_room(40, false, false));
    assert_eq!(fill(&ring, &[3; 40]), 1024 / 48);
    assert!(!ring.has_room(40, false, true));
    assert!(!ring.has_room(40, false, false));
    assert!(ring.has_room(0, false, true), "a 16-byte record still fits");
}
