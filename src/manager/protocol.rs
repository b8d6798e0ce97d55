//! The manager's messages: one [`Request`] frame from a proxy, one
//! [`Reply`] frame back, both postcard-encoded.
//!
//! Keys, values and items travel as [`Blob`]s: the postcard encoding of the
//! proxy's own typed value. The server never decodes them (it stores and
//! compares bytes), which is what lets one server hold objects of any type
//! and serve programs it was not built with.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// Bytes that serialize as one postcard byte string (length, then bytes),
/// not as a sequence of `u8` values.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Blob(pub(crate) Vec<u8>);

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// What kind of object a proxy stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Dict,
    List,
    Namespace,
    Queue,
    Lock,
    Event,
    Value,
    /// A registered type, by its `Managed::TYPE_ID`.
    Custom(String),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dict => f.write_str("dict"),
            Kind::List => f.write_str("list"),
            Kind::Namespace => f.write_str("namespace"),
            Kind::Queue => f.write_str("queue"),
            Kind::Lock => f.write_str("lock"),
            Kind::Event => f.write_str("event"),
            Kind::Value => f.write_str("value"),
            Kind::Custom(id) => write!(f, "registered type `{id}`"),
        }
    }
}

/// Everything an object is made with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    /// Fingerprint of the proxy's type parameters (see `fingerprint`).
    pub(crate) types: u64,
    /// Their names, for error messages.
    pub(crate) type_names: String,
    /// A queue's bound, a value's first value, a custom type's `Init`.
    pub(crate) init: Blob,
}

/// A wait's limit: `None` waits for ever.
pub(crate) type Wait = Option<Duration>;

/// One request. Each gets exactly one [`Reply`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Creates an object; with a name, returns the object of that name if
    /// there is one (of the same kind and types).
    Create { spec: Spec, name: Option<String> },
    /// Applies `op` to object `id`.
    Op { id: u64, op: Op },
    /// Moves this connection onto a shared-memory pipe: the request carries
    /// the encoded pipe end; its descriptors follow in one `sendmsg`.
    Upgrade { end: Blob },
    /// Ends the server (accepted from any authenticated peer).
    Shutdown,
}

/// An operation on one object.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    Len,
    Clear,
    // dict
    DictGet(Blob),
    DictInsert(Blob, Blob),
    DictRemove(Blob),
    DictContains(Blob),
    DictSetDefault(Blob, Blob),
    DictKeys,
    DictValues,
    DictItems,
    DictUpdate(Vec<(Blob, Blob)>),
    // list
    ListPush(Blob),
    ListExtend(Vec<Blob>),
    ListGet(i64),
    ListSet(i64, Blob),
    ListInsert(i64, Blob),
    ListPop(Option<i64>),
    ListRemove(Blob),
    ListIndex(Blob),
    ListAll,
    // namespace: attribute name, value with its type fingerprint and name
    NsGet(String),
    NsSet(String, u64, String, Blob),
    NsRemove(String),
    NsNames,
    // queue
    QueuePut(Blob, Wait),
    QueueGet(Wait),
    // lock
    LockAcquire(Wait),
    LockRelease,
    // event
    EventSet,
    EventClear,
    EventIsSet,
    EventWait(Wait),
    // value
    ValueGet,
    ValueSet(Blob),
    ValueSwap(Blob),
    // registered type
    Call(Blob),
}

/// Why the server refused or failed a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Failure {
    /// The request makes no sense for this object (wrong kind, index out of
    /// range, releasing a lock not held, no such object...).
    Misuse(String),
    /// A stored value is not of the type asked for.
    Decode(String),
    /// A registered type's method panicked.
    Panicked {
        pid: u32,
        message: String,
        location: Option<String>,
    },
    /// The wait's limit passed.
    Timeout,
}

/// The answer to one request.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done,
    Bool(bool),
    Len(u64),
    Id(u64),
    Item(Option<Blob>),
    Items(Vec<Blob>),
    Pairs(Vec<(Blob, Blob)>),
    Names(Vec<String>),
    /// A namespace attribute: its type fingerprint and name, its value.
    Attr(u64, String, Blob),
    /// A lock was acquired; `true` when its previous holder died holding it.
    Acquired(bool),
    Failed(Failure),
}

/// FNV-1a of type names: which types a proxy was made for.
pub(crate) fn fingerprint(names: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in names.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
