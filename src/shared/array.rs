//! [`Array`] (with a lock) and [`RawArray`] (without): a fixed-length array
//! of plain data in shared memory.

use super::atomic::{AtomicInteger, as_atomic};
use super::block::{Block, Elem, Kind, shared_serde};
use super::value::NoState;
use crate::error::{Error, LockResult, TryLockResult};
use crate::sync::raw::{RawMutex, Wait, lock_result, try_result};
use crate::sys::mutex::Type;
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// Creates a block of `len` zeroed elements (`Pod` types are `Zeroable`,
/// and a fresh memfd reads as zeros), then copies `init` in if given.
fn create<T: Pod>(
    kind: Kind,
    len: usize,
    locked: bool,
    init: Option<&[T]>,
) -> Result<Block, Error> {
    let block = if locked {
        Block::create::<RawMutex>(kind, Elem::of::<T>(), len, |m| m.init(Type::ErrorCheck))?
    } else {
        Block::create::<NoState>(kind, Elem::of::<T>(), len, |_| Ok(()))?
    };
    if let Some(src) = init {
        // SAFETY: the fresh block holds `len == src.len()` aligned `T`s and
        // nobody else sees it yet.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), block.payload().cast(), len) };
    }
    Ok(block)
}

/// A fixed-length array of plain-data `T` in shared memory, with one lock
/// (Python's `multiprocessing.Array`): [`lock`](Self::lock) returns a guard
/// that dereferences to `[T]`.
///
/// `T` is any [`Pod`] type, as for [`Value`](crate::Value); so is the
/// owner-death behaviour of the lock. Processes that work on disjoint parts
/// without the lock use [`RawArray`] instead.
///
/// # Examples
/// ```
/// use multiproc::{Array, Process};
///
/// fn fill((a, row): (Array<f64>, usize)) {
///     let mut data = a.lock().unwrap();
///     for x in &mut data[row * 2..row * 2 + 2] {
///         *x = row as f64;
///     }
/// }
///
/// let a = Array::<f64>::new(6).unwrap();
/// let mut kids: Vec<_> = (0..3).map(|r| Process::spawn(fill, (a.clone(), r)).unwrap()).collect();
/// for k in &mut kids {
///     k.join().unwrap();
/// }
/// assert_eq!(a.to_vec(), [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
/// ```
pub struct Array<T: Pod> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: Pod> Array<T> {
    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    /// [`Error::is_misuse`] if it could not be addressed; an I/O error if
    /// the shared memory cannot be created.
    pub fn new(len: usize) -> Result<Array<T>, Error> {
        create::<T>(Kind::Array, len, true, None).map(Self::from_block)
    }

    /// Creates an array holding a copy of `values`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_slice(values: &[T]) -> Result<Array<T>, Error> {
        create(Kind::Array, values.len(), true, Some(values)).map(Self::from_block)
    }

    fn from_block(block: Block) -> Self {
        Array {
            block,
            _t: PhantomData,
        }
    }

    fn raw(&self) -> &RawMutex {
        self.block.state()
    }

    fn guard(&self) -> ArrayGuard<'_, T> {
        ArrayGuard {
            array: self,
            _not_send: PhantomData,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.block.len()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Locks the array; the guard dereferences to `[T]`.
    ///
    /// # Errors
    /// [`OwnerDied`](crate::OwnerDied) with the guard if the previous
    /// holder died holding the lock.
    ///
    /// # Panics
    /// If this thread already holds the lock.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        match self.raw().acquire(Wait::Forever) {
            Some(a) => lock_result(a, self.guard()),
            None => unreachable!("an unbounded acquire returns only once it holds the lock"),
        }
    }

    /// Locks the array if the lock is free now.
    ///
    /// # Errors
    /// As [`Value::try_lock`](crate::Value::try_lock).
    pub fn try_lock(&self) -> TryLockResult<ArrayGuard<'_, T>> {
        try_result(self.raw().acquire(Wait::Never), || self.guard())
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    /// As [`Value::lock_timeout`](crate::Value::lock_timeout).
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ArrayGuard<'_, T>> {
        try_result(self.raw().acquire(Wait::timeout(timeout)), || self.guard())
    }

    /// A copy of the elements, taken under the lock (a dead holder's death
    /// is not reported here).
    pub fn to_vec(&self) -> Vec<T> {
        self.lock()
            .unwrap_or_else(crate::OwnerDied::into_inner)
            .to_vec()
    }
}

impl<T: Pod> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array::from_block(self.block.clone())
    }
}

impl<T: Pod> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array").field("len", &self.len()).finish()
    }
}

shared_serde!(Array<T: Pod>, RawMutex, Kind::Array, Elem::of::<T>());

/// The locked contents of an [`Array`]: dereferences to `[T]`; unlocks
/// when dropped. Not `Send`.
#[must_use = "the array is unlocked as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod> {
    array: &'a Array<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the block holds `len` aligned `T`s; the lock is held, so
        // no other guard accesses them meanwhile.
        unsafe { std::slice::from_raw_parts(self.array.block.payload().cast(), self.array.len()) }
    }
}

impl<T: Pod> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as `deref`, and `&mut self` makes this the only borrow.
        unsafe {
            std::slice::from_raw_parts_mut(self.array.block.payload().cast(), self.array.len())
        }
    }
}

impl<T: Pod> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { self.array.raw().release() }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A fixed-length array of plain-data `T` in shared memory, without a lock
/// (Python's `multiprocessing.RawArray`).
///
/// Elements are read and written one at a time with volatile accesses
/// ([`get`](Self::get), [`set`](Self::set)); for integer types
/// [`atomics`](Self::atomics) views them as `std` atomics. Processes that
/// own disjoint ranges can also borrow them as slices (`unsafe`).
///
/// # Examples
/// ```
/// use multiproc::{Process, RawArray};
///
/// fn square((a, i): (RawArray<u32>, usize)) {
///     a.set(i, (i * i) as u32);
/// }
///
/// let a = RawArray::<u32>::new(4).unwrap();
/// let mut kids: Vec<_> = (0..4).map(|i| Process::spawn(square, (a.clone(), i)).unwrap()).collect();
/// for k in &mut kids {
///     k.join().unwrap();
/// }
/// assert_eq!(a.to_vec(), [0, 1, 4, 9]);
/// assert_eq!(a.get(9), None);
/// ```
pub struct RawArray<T: Pod> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: Pod> RawArray<T> {
    /// Creates an array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`Array::new`].
    pub fn new(len: usize) -> Result<RawArray<T>, Error> {
        create::<T>(Kind::RawArray, len, false, None).map(Self::from_block)
    }

    /// Creates an array holding a copy of `values`.
    ///
    /// # Errors
    /// As [`Array::new`].
    pub fn from_slice(values: &[T]) -> Result<RawArray<T>, Error> {
        create(Kind::RawArray, values.len(), false, Some(values)).map(Self::from_block)
    }

    fn from_block(block: Block) -> Self {
        RawArray {
            block,
            _t: PhantomData,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.block.len()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A raw pointer to the first element, for foreign code.
    pub fn as_ptr(&self) -> *mut T {
        self.block.payload().cast()
    }

    /// Element `i` (a volatile read), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<T> {
        // SAFETY: `i < len`: an aligned `T` in the mapping; `Pod` makes any
        // bits valid.
        (i < self.len()).then(|| unsafe { self.as_ptr().add(i).read_volatile() })
    }

    /// Stores `value` at `i` (a volatile write).
    ///
    /// # Panics
    /// If `i` is out of bounds, as slice indexing does.
    pub fn set(&self, i: usize, value: T) {
        assert!(
            i < self.len(),
            "index {i} out of bounds for a RawArray of {}",
            self.len()
        );
        // SAFETY: `i < len` checked above.
        unsafe { self.as_ptr().add(i).write_volatile(value) }
    }

    /// A copy of every element (volatile reads, one at a time).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len()).filter_map(|i| self.get(i)).collect()
    }

    /// The elements as a slice.
    ///
    /// # Safety
    /// No process may write these elements while the slice lives.
    pub unsafe fn as_slice(&self) -> &[T] {
        // SAFETY: `len` aligned `T`s; no writer, per the contract.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The elements as a mutable slice.
    ///
    /// # Safety
    /// No other reference to these elements, in any process, may be used
    /// while the slice lives (processes owning disjoint ranges can each
    /// take a sub-slice of their own range this way).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        // SAFETY: `len` aligned `T`s; exclusive, per the contract.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }
}

impl<T: AtomicInteger> RawArray<T> {
    /// The elements as `std` atomics (`AtomicU32` for `u32`...).
    pub fn atomics(&self) -> &[T::Atomic] {
        if self.is_empty() {
            return &[];
        }
        // SAFETY: `len` cells aligned for their atomic type, living as long
        // as `self`; `as_atomic` gives the layout.
        let first: &T::Atomic = unsafe { as_atomic(self.as_ptr()) };
        // SAFETY: the atomic type has `T`'s size, so `len` of them cover
        // exactly the array.
        unsafe { std::slice::from_raw_parts(first, self.len()) }
    }
}

impl<T: Pod> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray::from_block(self.block.clone())
    }
}

impl<T: Pod> fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawArray")
            .field("len", &self.len())
            .finish()
    }
}

shared_serde!(RawArray<T: Pod>, NoState, Kind::RawArray, Elem::of::<T>());
