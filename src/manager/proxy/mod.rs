//! Proxies: typed handles on objects that live in a manager's server.
//!
//! Every proxy is an object id and the [`Link`] to its server. It is
//! `Clone`, `Send` and `Sync`, and a serde value: sent to another process
//! (as a spawn argument, through a pipe or queue, even over a
//! [`Channel`](crate::connection::Channel)) it arrives as a proxy on the
//! same object, connected to the same server. Its wire form names the kind
//! of object and its types, so a receiver that expects another kind or
//! other types gets a decode error, not a wrong object.

mod collections;
mod custom;
mod queue;
mod sync;
mod value;

pub use collections::{DictProxy, ListProxy, NamespaceProxy};
pub use custom::Proxy;
pub use queue::QueueProxy;
pub use sync::{EventProxy, LockProxy, ManagedLockGuard};
pub use value::ValueProxy;

use super::client::Link;
use super::protocol::{Blob, Kind, Op, Reply, Request};
use crate::connection::Address;
use crate::error::{Error, Kind as ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// An object id on a server.
#[derive(Clone, Debug)]
pub(crate) struct Handle {
    pub(crate) link: Arc<Link>,
    pub(crate) id: u64,
}

/// What a proxy looks like on the wire.
#[derive(Serialize, Deserialize)]
struct WireProxy {
    address: Address,
    authkey: Blob,
    id: u64,
    kind: Kind,
    types: u64,
}

impl Handle {
    /// Applies `op` to the object.
    pub(crate) fn op(&self, op: Op) -> Result<Reply, Error> {
        self.link.call(&Request::Op { id: self.id, op })
    }

    pub(crate) fn serialize_as<S: Serializer>(
        &self,
        s: S,
        kind: Kind,
        types: u64,
    ) -> Result<S::Ok, S::Error> {
        WireProxy {
            address: self.link.address.clone(),
            authkey: Blob(self.link.authkey.clone()),
            id: self.id,
            kind,
            types,
        }
        .serialize(s)
    }

    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(
        d: D,
        kind: Kind,
        types: u64,
    ) -> Result<Handle, D::Error> {
        use serde::de::Error as _;
        let w = WireProxy::deserialize(d)?;
        if w.kind != kind || w.types != types {
            return Err(D::Error::custom(format!(
                "a proxy on a {} arrived where a proxy on a {kind} of other types was expected",
                w.kind
            )));
        }
        Ok(Handle {
            link: Link::get(&w.address, &w.authkey.0),
            id: w.id,
        })
    }
}

/// The kind and type fingerprint of a proxy with type parameters `T`.
pub(crate) fn types_of<T: ?Sized>() -> (u64, String) {
    let names = std::any::type_name::<T>().to_owned();
    (super::protocol::fingerprint(&names), names)
}

/// Encodes a value for the server.
pub(crate) fn blob<T: Serialize + ?Sized>(value: &T) -> Result<Blob, Error> {
    postcard::to_allocvec(value).map(Blob).map_err(|e| {
        Error::misuse(format!(
            "cannot store a `{}` in a manager: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Decodes a value the server kept.
pub(crate) fn unblob<T: DeserializeOwned>(b: &Blob) -> Result<T, Error> {
    crate::wire::decode_plain(&b.0).map_err(|e| {
        Error::new(ErrorKind::Decode(format!(
            "a value from the manager is not a `{}`: {e}",
            std::any::type_name::<T>()
        )))
    })
}

/// The error for a reply of the wrong shape.
pub(crate) fn unexpected(reply: Reply) -> Error {
    Error::new(ErrorKind::Decode(format!(
        "unexpected reply from the manager: {reply:?}"
    )))
}

pub(crate) fn expect_done(reply: Reply) -> Result<(), Error> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn expect_bool(reply: Reply) -> Result<bool, Error> {
    match reply {
        Reply::Bool(b) => Ok(b),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn expect_len(reply: Reply) -> Result<usize, Error> {
    match reply {
        Reply::Len(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn expect_item<T: DeserializeOwned>(reply: Reply) -> Result<Option<T>, Error> {
    match reply {
        Reply::Item(item) => item.as_ref().map(unblob).transpose(),
        other => Err(unexpected(other)),
    }
}

pub(crate) fn expect_items<T: DeserializeOwned>(reply: Reply) -> Result<Vec<T>, Error> {
    match reply {
        Reply::Items(items) => items.iter().map(unblob).collect(),
        other => Err(unexpected(other)),
    }
}

/// Clone, Debug, Serialize and Deserialize for a proxy type
/// `$name<$generics>` with fields `handle` and `_types`.
macro_rules! proxy_traits {
    ($name:ident $(<$($g:ident),+>)?, $kind:expr, $types:ty) => {
        impl<$($($g),+)?> Clone for $name<$($($g),+)?> {
            fn clone(&self) -> Self {
                $name {
                    handle: self.handle.clone(),
                    _types: std::marker::PhantomData,
                }
            }
        }

        impl<$($($g),+)?> std::fmt::Debug for $name<$($($g),+)?> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.handle.id)
                    .field("address", &self.handle.link.address)
                    .finish_non_exhaustive()
            }
        }

        impl<$($($g),+)?> serde::Serialize for $name<$($($g),+)?> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (types, _) = $crate::manager::proxy::types_of::<$types>();
                self.handle.serialize_as(s, $kind, types)
            }
        }

        impl<'de, $($($g),+)?> serde::Deserialize<'de> for $name<$($($g),+)?> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let (types, _) = $crate::manager::proxy::types_of::<$types>();
                Ok($name {
                    handle: $crate::manager::proxy::Handle::deserialize_as(d, $kind, types)?,
                    _types: std::marker::PhantomData,
                })
            }
        }

        impl<$($($g),+)?> $crate::manager::proxy::FromHandle for $name<$($($g),+)?> {
            fn from_handle(handle: $crate::manager::proxy::Handle) -> Self {
                $name {
                    handle,
                    _types: std::marker::PhantomData,
                }
            }
        }
    };
}
pub(crate) use proxy_traits;

/// Proxies made from a handle by the manager.
pub(crate) trait FromHandle {
    fn from_handle(handle: Handle) -> Self;
}
