//! Memory shared between processes: [`SharedMemory`] (raw bytes,
//! anonymous or named), [`Value`] and [`Array`] (plain data, each with a
//! lock), [`RawValue`] and [`RawArray`] (without).
//!
//! Each `Value`/`Array` object is one memfd mapping (`block.rs`): a header
//! that lets a receiving process check the object's kind and element type,
//! the lock, then the data. The memory is the kernel's to free when the
//! last process holding it unmaps it, so a crash cannot leak it.

mod array;
mod atomic;
pub(crate) mod block;
pub(crate) mod memory;
mod value;

pub use array::{Array, ArrayGuard, RawArray};
pub use atomic::AtomicInteger;
pub use memory::SharedMemory;
pub use value::{RawValue, Value, ValueGuard};
