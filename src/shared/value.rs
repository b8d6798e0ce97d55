//! [`Value`] (with a lock) and [`RawValue`] (without): one plain-data value
//! in shared memory.

use super::atomic::{AtomicInteger, as_atomic};
use super::block::{Block, Elem, Kind, State, shared_serde};
use crate::error::{Error, LockResult, TryLockResult};
use crate::sync::raw::{RawMutex, Wait, lock_result, try_result};
use crate::sys::mutex::Type;
use bytemuck::Pod;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// The state of an object without a lock.
#[repr(C)]
pub(crate) struct NoState(u64);

// SAFETY: repr(C), plain integer never written after creation.
unsafe impl State for NoState {}

/// One value of plain-data type `T` in shared memory, with its own lock
/// (Python's `multiprocessing.Value`; [`lock`](Self::lock) is the Rust form
/// of `get_lock()`).
///
/// `T` is any [`Pod`] type: the integers and floats, arrays of them, and
/// your own `#[repr(C)]` structs with `#[derive(Pod, Zeroable)]` (from
/// [`multiproc::bytemuck`](crate::bytemuck)); `bool` is not one (not every
/// byte is a valid `bool`): use `u8`. A handle is shared by clones
/// and by every process it is sent to.
///
/// The lock behaves as a [`Lock`](crate::Lock): a holder's death gives the
/// next locker [`OwnerDied`](crate::OwnerDied) with the guard, through
/// which the value (as the dead holder left it) can be checked and fixed.
///
/// # Examples
/// ```
/// use multiproc::{Process, Value};
///
/// fn add(counter: Value<u64>) {
///     for _ in 0..1000 {
///         *counter.lock().unwrap() += 1;
///     }
/// }
///
/// let counter = Value::new(0u64).unwrap();
/// let mut kids: Vec<_> = (0..3).map(|_| Process::spawn(add, counter.clone()).unwrap()).collect();
/// for k in &mut kids {
///     k.join().unwrap();
/// }
/// assert_eq!(counter.get(), 3000);
/// ```
pub struct Value<T: Pod> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: Pod> Value<T> {
    /// Creates a shared value holding `value`.
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new(value: T) -> Result<Value<T>, Error> {
        let block = Block::create::<RawMutex>(Kind::Value, Elem::of::<T>(), 1, |m| {
            m.init(Type::ErrorCheck)
        })?;
        // SAFETY: nobody else sees the fresh block; the cell is aligned.
        unsafe { block.payload().cast::<T>().write(value) };
        Ok(Value::from_block(block))
    }

    fn from_block(block: Block) -> Self {
        Value {
            block,
            _t: PhantomData,
        }
    }

    fn raw(&self) -> &RawMutex {
        self.block.state()
    }

    fn guard(&self) -> ValueGuard<'_, T> {
        ValueGuard {
            value: self,
            _not_send: PhantomData,
        }
    }

    /// Locks the value; the guard dereferences to it and unlocks on drop.
    ///
    /// # Errors
    /// [`OwnerDied`](crate::OwnerDied) with the guard if the previous
    /// holder died holding the lock.
    ///
    /// # Panics
    /// If this thread already holds the lock.
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        match self.raw().acquire(Wait::Forever) {
            Some(a) => lock_result(a, self.guard()),
            None => unreachable!("an unbounded acquire returns only once it holds the lock"),
        }
    }

    /// Locks the value if the lock is free now.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`](crate::TryLockError::WouldBlock) if it
    /// is held; `OwnerDied` as for [`lock`](Self::lock).
    pub fn try_lock(&self) -> TryLockResult<ValueGuard<'_, T>> {
        try_result(self.raw().acquire(Wait::Never), || self.guard())
    }

    /// Waits at most `timeout` for the lock.
    ///
    /// # Errors
    /// [`TryLockError::WouldBlock`](crate::TryLockError::WouldBlock) if the
    /// timeout passed; `OwnerDied` as for [`lock`](Self::lock).
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ValueGuard<'_, T>> {
        try_result(self.raw().acquire(Wait::timeout(timeout)), || self.guard())
    }

    /// A copy of the value, read under the lock (Python's `.value`). A dead
    /// holder's death is not reported here: the value is as it left it.
    pub fn get(&self) -> T {
        *self.lock().unwrap_or_else(crate::OwnerDied::into_inner)
    }

    /// Stores `value` under the lock (Python's `.value = v`).
    pub fn set(&self, value: T) {
        *self.lock().unwrap_or_else(crate::OwnerDied::into_inner) = value;
    }
}

impl<T: Pod> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value::from_block(self.block.clone())
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_lock() {
            Ok(g) => f.debug_tuple("Value").field(&*g).finish(),
            Err(_) => f.write_str("Value(<locked>)"),
        }
    }
}

shared_serde!(Value<T: Pod>, RawMutex, Kind::Value, Elem::of::<T>());

/// The locked contents of a [`Value`]: dereferences to `T`; unlocks when
/// dropped. Not `Send`: the lock belongs to the thread that took it.
#[must_use = "the value is unlocked as soon as the guard is dropped"]
pub struct ValueGuard<'a, T: Pod> {
    value: &'a Value<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Pod> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the block holds one aligned `T`; the lock is held, so no
        // other guard (in any process) accesses it meanwhile.
        unsafe { &*self.value.block.payload().cast::<T>() }
    }
}

impl<T: Pod> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as `deref`, and `&mut self` makes this the only borrow.
        unsafe { &mut *self.value.block.payload().cast::<T>() }
    }
}

impl<T: Pod> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { self.value.raw().release() }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// One value of plain-data type `T` in shared memory, without a lock
/// (Python's `multiprocessing.RawValue`).
///
/// [`get`](Self::get) and [`set`](Self::set) are single volatile accesses:
/// a value larger than a machine word may be read half-updated while
/// another process writes it (still a valid `T`, being `Pod`). For an
/// integer `T`, [`atomic`](Self::atomic) gives the cell as its `std`
/// atomic type, for `fetch_add` and friends across processes.
///
/// # Examples
/// ```
/// use multiproc::{Process, RawValue};
/// use std::sync::atomic::Ordering;
///
/// fn add(counter: RawValue<u64>) {
///     for _ in 0..1000 {
///         counter.atomic().fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// let counter = RawValue::new(0u64).unwrap();
/// let mut kids: Vec<_> = (0..3).map(|_| Process::spawn(add, counter.clone()).unwrap()).collect();
/// for k in &mut kids {
///     k.join().unwrap();
/// }
/// assert_eq!(counter.get(), 3000);
/// ```
pub struct RawValue<T: Pod> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: Pod> RawValue<T> {
    /// Creates a shared value holding `value`.
    ///
    /// # Errors
    /// If the shared memory cannot be created.
    pub fn new(value: T) -> Result<RawValue<T>, Error> {
        let block = Block::create::<NoState>(Kind::RawValue, Elem::of::<T>(), 1, |_| Ok(()))?;
        // SAFETY: nobody else sees the fresh block; the cell is aligned.
        unsafe { block.payload().cast::<T>().write(value) };
        Ok(RawValue::from_block(block))
    }

    fn from_block(block: Block) -> Self {
        RawValue {
            block,
            _t: PhantomData,
        }
    }

    fn cell(&self) -> *mut T {
        self.block.payload().cast()
    }

    /// The value now (a volatile read).
    pub fn get(&self) -> T {
        // SAFETY: an aligned `T` in a mapping that outlives `self`; `Pod`
        // makes whatever bits another process left there a valid `T`.
        unsafe { self.cell().read_volatile() }
    }

    /// Stores `value` (a volatile write).
    pub fn set(&self, value: T) {
        // SAFETY: as `get`.
        unsafe { self.cell().write_volatile(value) }
    }

    /// A raw pointer to the shared cell, for foreign code.
    pub fn as_ptr(&self) -> *mut T {
        self.cell()
    }
}

impl<T: AtomicInteger> RawValue<T> {
    /// The shared cell as its atomic type (`AtomicU64` for `u64`...).
    pub fn atomic(&self) -> &T::Atomic {
        // SAFETY: the cell is aligned to at least 8 bytes and lives as long
        // as `self`; every other access to it is atomic or volatile.
        unsafe { as_atomic(self.cell()) }
    }
}

impl<T: Pod> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue::from_block(self.block.clone())
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

shared_serde!(RawValue<T: Pod>, NoState, Kind::RawValue, Elem::of::<T>());
