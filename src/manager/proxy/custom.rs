//! [`Proxy`]: the proxy of a registered type.

use super::{Handle, blob, expect_item};
use crate::error::{Error, Kind as ErrorKind};
use crate::manager::custom::{Managed, type_signature};
use crate::manager::protocol::{Kind, Op};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// A value of a registered type `T` in a manager's server (see
/// [`Managed`] for an example); [`call`](Proxy::call) runs
/// [`T::handle`](Managed::handle) there.
pub struct Proxy<T: Managed> {
    handle: Handle,
    _types: PhantomData<fn() -> T>,
}

impl<T: Managed> Proxy<T> {
    pub(crate) fn new(handle: Handle) -> Proxy<T> {
        Proxy {
            handle,
            _types: PhantomData,
        }
    }

    /// Sends `request` to the value and returns its response.
    ///
    /// # Errors
    /// [`Error::is_panic`] when `handle` panicked; as
    /// [`DictProxy::get`](super::DictProxy::get).
    pub fn call(&self, request: T::Request) -> Result<T::Response, Error> {
        expect_item(self.handle.op(Op::Call(blob(&request)?))?)?
            .ok_or_else(|| Error::new(ErrorKind::Decode("no response".into())))
    }
}

impl<T: Managed> Clone for Proxy<T> {
    fn clone(&self) -> Self {
        Proxy::new(self.handle.clone())
    }
}

impl<T: Managed> fmt::Debug for Proxy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("type_id", &T::TYPE_ID)
            .field("id", &self.handle.id)
            .field("address", &self.handle.link.address)
            .finish_non_exhaustive()
    }
}

impl<T: Managed> Serialize for Proxy<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = Kind::Custom(T::TYPE_ID.to_owned());
        self.handle.serialize_as(s, kind, type_signature::<T>())
    }
}

impl<'de, T: Managed> Deserialize<'de> for Proxy<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kind = Kind::Custom(T::TYPE_ID.to_owned());
        Handle::deserialize_as(d, kind, type_signature::<T>()).map(Proxy::new)
    }
}
