//! [`ValueProxy`].

use super::{Handle, blob, expect_done, expect_item, proxy_traits};
use crate::error::{Error, Kind as ErrorKind};
use crate::manager::protocol::{Kind, Op};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// One value of any serde type in a manager's server: Python's
/// `manager.Value(typecode, value)` (its `.value`), for types a shared
/// memory [`Value`](crate::Value) cannot hold (strings, vectors, maps...).
///
/// # Examples
/// ```
/// let manager = multiproc::Manager::start()?;
/// let v = manager.value(&vec![1, 2])?;
/// assert_eq!(v.get()?, [1, 2]);
/// v.set(&vec![3])?;
/// assert_eq!(v.swap(&vec![])?, [3]);
/// assert!(v.get()?.is_empty());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ValueProxy<T> {
    handle: Handle,
    _types: PhantomData<fn() -> T>,
}

proxy_traits!(ValueProxy<T>, Kind::Value, T);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// The value.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn get(&self) -> Result<T, Error> {
        expect_item(self.handle.op(Op::ValueGet)?)?
            .ok_or_else(|| Error::new(ErrorKind::Decode("no value".into())))
    }

    /// Replaces the value.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn set(&self, value: &T) -> Result<(), Error> {
        expect_done(self.handle.op(Op::ValueSet(blob(value)?))?)
    }

    /// Replaces the value, returning the old one, in one step.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn swap(&self, value: &T) -> Result<T, Error> {
        expect_item(self.handle.op(Op::ValueSwap(blob(value)?))?)?
            .ok_or_else(|| Error::new(ErrorKind::Decode("no value".into())))
    }
}
