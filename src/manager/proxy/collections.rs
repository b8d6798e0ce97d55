//! [`DictProxy`], [`ListProxy`] and [`NamespaceProxy`].

use super::{
    Handle, blob, expect_bool, expect_done, expect_item, expect_items, expect_len, proxy_traits,
    types_of, unblob, unexpected,
};
use crate::error::{Error, Kind as ErrorKind};
use crate::manager::protocol::{Kind, Op, Reply};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A dictionary in a manager's server: Python's `manager.dict()`.
///
/// Keys and values are any serde types. Keys are compared by their
/// encoding, which is equality for every type with a derived `Eq` (strings,
/// integers, tuples, enums...). Iteration order is insertion order, as in
/// Python. Each method is one request, done whole on the server: two
/// processes that `insert` at once both land, and nothing is half-updated;
/// a read-modify-write of one key needs a [`LockProxy`](super::LockProxy)
/// or a [registered type](crate::manager::Managed).
///
/// # Examples
/// ```
/// let manager = multiproc::Manager::start()?;
/// let d = manager.dict::<String, u32>()?;
/// assert_eq!(d.insert(&"a".into(), &1)?, None);
/// assert_eq!(d.insert(&"a".into(), &2)?, Some(1)); // the old value
/// d.update([("b".to_string(), 3), ("c".to_string(), 4)])?;
/// assert_eq!(d.get(&"b".into())?, Some(3));
/// assert!(d.contains_key(&"c".into())?);
/// assert_eq!(d.remove(&"c".into())?, Some(4));
/// assert_eq!(d.set_default(&"z".into(), &26)?, 26);
/// assert_eq!(d.keys()?, ["a", "b", "z"]);
/// assert_eq!(d.values()?, [2, 3, 26]);
/// assert_eq!(d.items()?[0], ("a".to_string(), 2));
/// assert_eq!(d.len()?, 3);
/// d.clear()?;
/// assert!(d.is_empty()?);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct DictProxy<K, V> {
    handle: Handle,
    _types: PhantomData<fn() -> (K, V)>,
}

proxy_traits!(DictProxy<K, V>, Kind::Dict, (K, V));

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// The value of `key`, if any (Python's `d.get(key)`).
    ///
    /// # Errors
    /// Every proxy method fails with [`Error::is_disconnected`] when the
    /// server is gone, and with [`Error::is_decode`] when the stored value
    /// is not a `V`.
    pub fn get(&self, key: &K) -> Result<Option<V>, Error> {
        expect_item(self.handle.op(Op::DictGet(blob(key)?))?)
    }

    /// Sets `key` to `value` (Python's `d[key] = value`), returning the
    /// value it replaced.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn insert(&self, key: &K, value: &V) -> Result<Option<V>, Error> {
        expect_item(self.handle.op(Op::DictInsert(blob(key)?, blob(value)?))?)
    }

    /// Removes `key`, returning its value (Python's `d.pop(key, None)`).
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn remove(&self, key: &K) -> Result<Option<V>, Error> {
        expect_item(self.handle.op(Op::DictRemove(blob(key)?))?)
    }

    /// Whether `key` is present (Python's `key in d`).
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn contains_key(&self, key: &K) -> Result<bool, Error> {
        expect_bool(self.handle.op(Op::DictContains(blob(key)?))?)
    }

    /// The value of `key`, after setting it to `value` if it was absent,
    /// in one step (Python's `d.setdefault(key, value)`).
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn set_default(&self, key: &K, value: &V) -> Result<V, Error> {
        let reply = self
            .handle
            .op(Op::DictSetDefault(blob(key)?, blob(value)?))?;
        expect_item(reply)?.ok_or_else(|| Error::new(ErrorKind::Decode("no value".into())))
    }

    /// Sets every pair, in one request (Python's `d.update(pairs)`).
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), Error> {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| Ok((blob(&k)?, blob(&v)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        expect_done(self.handle.op(Op::DictUpdate(pairs))?)
    }

    /// The keys, in insertion order.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn keys(&self) -> Result<Vec<K>, Error> {
        expect_items(self.handle.op(Op::DictKeys)?)
    }

    /// The values, in insertion order of their keys.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn values(&self) -> Result<Vec<V>, Error> {
        expect_items(self.handle.op(Op::DictValues)?)
    }

    /// The pairs, in insertion order: a snapshot of the whole dict
    /// (Python's `d.copy()` / `dict(d)`).
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn items(&self) -> Result<Vec<(K, V)>, Error> {
        match self.handle.op(Op::DictItems)? {
            Reply::Pairs(pairs) => pairs
                .iter()
                .map(|(k, v)| Ok((unblob(k)?, unblob(v)?)))
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// The number of keys.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn len(&self) -> Result<usize, Error> {
        expect_len(self.handle.op(Op::Len)?)
    }

    /// Whether there is no key.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Removes every key.
    ///
    /// # Errors
    /// As [`get`](DictProxy::get).
    pub fn clear(&self) -> Result<(), Error> {
        expect_done(self.handle.op(Op::Clear)?)
    }
}

/// A list in a manager's server: Python's `manager.list()`.
///
/// Indices follow Python: a negative index counts from the end. Items are
/// compared (by [`remove`](ListProxy::remove) and
/// [`index`](ListProxy::index)) by their encoding.
///
/// # Examples
/// ```
/// let manager = multiproc::Manager::start()?;
/// let l = manager.list::<i32>()?;
/// l.push(&1)?;
/// l.extend([2, 3, 4])?;
/// assert_eq!(l.get(-1)?, Some(4));
/// assert_eq!(l.get(10)?, None);
/// l.set(0, &10)?;
/// l.insert(1, &15)?;
/// assert_eq!(l.to_vec()?, [10, 15, 2, 3, 4]);
/// assert_eq!(l.pop()?, Some(4));
/// assert_eq!(l.pop_at(0)?, 10);
/// assert!(l.remove(&2)?);
/// assert_eq!(l.index(&3)?, Some(1));
/// assert_eq!(l.len()?, 2);
/// assert!(l.set(7, &0).unwrap_err().is_misuse()); // out of range
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct ListProxy<T> {
    handle: Handle,
    _types: PhantomData<fn() -> T>,
}

proxy_traits!(ListProxy<T>, Kind::List, T);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Appends `item` (Python's `append`).
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn push(&self, item: &T) -> Result<(), Error> {
        expect_done(self.handle.op(Op::ListPush(blob(item)?))?)
    }

    /// Appends every item, in one request (Python's `extend`).
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn extend(&self, items: impl IntoIterator<Item = T>) -> Result<(), Error> {
        let items = items
            .into_iter()
            .map(|i| blob(&i))
            .collect::<Result<Vec<_>, Error>>()?;
        expect_done(self.handle.op(Op::ListExtend(items))?)
    }

    /// The item at `index` (negative: from the end), if there is one.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn get(&self, index: i64) -> Result<Option<T>, Error> {
        expect_item(self.handle.op(Op::ListGet(index))?)
    }

    /// Replaces the item at `index` (Python's `l[index] = item`).
    ///
    /// # Errors
    /// [`Error::is_misuse`] when `index` is out of range; as
    /// [`DictProxy::get`].
    pub fn set(&self, index: i64, item: &T) -> Result<(), Error> {
        expect_done(self.handle.op(Op::ListSet(index, blob(item)?))?)
    }

    /// Inserts `item` before `index`; an index past either end inserts at
    /// that end (Python's `insert`).
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn insert(&self, index: i64, item: &T) -> Result<(), Error> {
        expect_done(self.handle.op(Op::ListInsert(index, blob(item)?))?)
    }

    /// Removes and returns the last item, if any.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn pop(&self) -> Result<Option<T>, Error> {
        expect_item(self.handle.op(Op::ListPop(None))?)
    }

    /// Removes and returns the item at `index` (Python's `pop(index)`).
    ///
    /// # Errors
    /// [`Error::is_misuse`] when `index` is out of range; as
    /// [`DictProxy::get`].
    pub fn pop_at(&self, index: i64) -> Result<T, Error> {
        expect_item(self.handle.op(Op::ListPop(Some(index)))?)?
            .ok_or_else(|| Error::new(ErrorKind::Decode("no item".into())))
    }

    /// Removes the first item equal to `item`; `false` if there is none.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn remove(&self, item: &T) -> Result<bool, Error> {
        expect_bool(self.handle.op(Op::ListRemove(blob(item)?))?)
    }

    /// The position of the first item equal to `item`.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn index(&self, item: &T) -> Result<Option<usize>, Error> {
        match self.handle.op(Op::ListIndex(blob(item)?))? {
            Reply::Len(at) => Ok(Some(usize::try_from(at).unwrap_or(usize::MAX))),
            Reply::Item(None) => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    /// Every item: a snapshot of the list (Python's `list(l)`).
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn to_vec(&self) -> Result<Vec<T>, Error> {
        expect_items(self.handle.op(Op::ListAll)?)
    }

    /// The number of items.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn len(&self) -> Result<usize, Error> {
        expect_len(self.handle.op(Op::Len)?)
    }

    /// Whether there is no item.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Removes every item.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn clear(&self) -> Result<(), Error> {
        expect_done(self.handle.op(Op::Clear)?)
    }
}

/// Named attributes of any types in a manager's server: Python's
/// `manager.Namespace()` (`ns.x = 1` is `ns.set("x", &1)`).
///
/// Each attribute remembers its type: reading it as another type is a
/// decode error that names both.
///
/// # Examples
/// ```
/// let manager = multiproc::Manager::start()?;
/// let ns = manager.namespace()?;
/// ns.set("x", &1u32)?;
/// ns.set("name", &"job".to_string())?;
/// assert_eq!(ns.get::<u32>("x")?, Some(1));
/// assert_eq!(ns.get::<u32>("missing")?, None);
/// assert!(ns.get::<String>("x").unwrap_err().is_decode()); // x is a u32
/// assert_eq!(ns.names()?, ["name", "x"]);
/// assert!(ns.remove("x")?);
/// assert_eq!(ns.len()?, 1);
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct NamespaceProxy {
    handle: Handle,
    _types: PhantomData<()>,
}

proxy_traits!(NamespaceProxy, Kind::Namespace, ());

impl NamespaceProxy {
    /// The attribute `name`, if set.
    ///
    /// # Errors
    /// [`Error::is_decode`] when it holds another type than `T`; as
    /// [`DictProxy::get`].
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.handle.op(Op::NsGet(name.to_owned()))? {
            Reply::Item(None) => Ok(None),
            Reply::Attr(types, type_name, value) => {
                if types != types_of::<T>().0 {
                    return Err(Error::new(ErrorKind::Decode(format!(
                        "attribute `{name}` holds a `{type_name}`, not a `{}`",
                        std::any::type_name::<T>()
                    ))));
                }
                unblob(&value).map(Some)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Sets the attribute `name`.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn set<T: Serialize>(&self, name: &str, value: &T) -> Result<(), Error> {
        let (types, type_name) = types_of::<T>();
        let op = Op::NsSet(name.to_owned(), types, type_name, blob(value)?);
        expect_done(self.handle.op(op)?)
    }

    /// Removes the attribute `name`; `false` if it was not set.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn remove(&self, name: &str) -> Result<bool, Error> {
        expect_bool(self.handle.op(Op::NsRemove(name.to_owned()))?)
    }

    /// The names of the attributes set, sorted.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn names(&self) -> Result<Vec<String>, Error> {
        match self.handle.op(Op::NsNames)? {
            Reply::Names(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// The number of attributes set.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn len(&self) -> Result<usize, Error> {
        expect_len(self.handle.op(Op::Len)?)
    }

    /// Whether no attribute is set.
    ///
    /// # Errors
    /// As [`DictProxy::get`].
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }
}
