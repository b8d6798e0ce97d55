//! Memory shared between processes.

pub(crate) mod memory;

pub use memory::SharedMemory;
