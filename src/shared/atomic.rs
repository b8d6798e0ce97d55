//! Integer types whose shared cells can be used atomically.

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

mod sealed {
    pub trait Sealed {}
}

/// An integer type with a same-layout atomic type: a
/// [`RawValue`](crate::RawValue) or [`RawArray`](crate::RawArray) of it can
/// be used atomically across processes (`fetch_add`, `compare_exchange`...).
///
/// Implemented for every primitive integer type; sealed.
pub trait AtomicInteger: bytemuck::Pod + sealed::Sealed {
    /// The matching `std::sync::atomic` type.
    type Atomic: Sync;
}

macro_rules! atomic_integer {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicInteger for $t {
            type Atomic = $a;
        }
        const _: () = assert!(
            size_of::<$t>() == size_of::<$a>() && align_of::<$t>() <= align_of::<$a>()
        );
    )*};
}

atomic_integer!(
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize,
);

/// The cell at `ptr` as its atomic type.
///
/// # Safety
/// `ptr` is valid for the returned lifetime and aligned for `T::Atomic`
/// (blocks align elements to at least 8 bytes), and every access to the
/// cell, in every process, is atomic or happens under a lock.
pub(crate) unsafe fn as_atomic<'a, T: AtomicInteger>(ptr: *mut T) -> &'a T::Atomic {
    // SAFETY: the layouts match (asserted per type above); validity and
    // alignment per the contract.
    unsafe { &*ptr.cast::<T::Atomic>() }
}
