//! [`QueueProxy`].

use super::{Handle, blob, expect_done, expect_item, expect_len, proxy_traits};
use crate::error::{Error, Kind as ErrorKind};
use crate::manager::protocol::{Kind, Op};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::time::Duration;

/// A FIFO queue in a manager's server: Python's `manager.Queue()`.
///
/// Unlike a [`Queue`](crate::Queue) (a shared-memory ring between related
/// processes), a managed queue is reachable by address: programs started
/// separately, even on other machines, share it through the manager. A
/// bounded queue ([`Manager::bounded_queue`](crate::Manager::bounded_queue))
/// makes `put` wait for room.
///
/// A `get` waits in the server; if the waiting process dies, the server
/// notices before it hands over an item, so the item stays in the queue
/// (only a death in the instant between that check and the reply loses
/// it).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let manager = multiproc::Manager::start()?;
/// let q = manager.queue::<String>()?;
/// q.put(&"job 1".into())?;
/// q.put(&"job 2".into())?;
/// assert_eq!(q.len()?, 2);
/// assert_eq!(q.get()?, "job 1");
/// assert_eq!(q.try_get()?, Some("job 2".to_string()));
/// assert_eq!(q.try_get()?, None);
/// assert!(q.get_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct QueueProxy<T> {
    handle: Handle,
    _types: PhantomData<fn() -> T>,
}

proxy_traits!(QueueProxy<T>, Kind::Queue, T);

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    /// Puts `item` at the back, waiting for room in a bounded queue.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn put(&self, item: &T) -> Result<(), Error> {
        expect_done(self.handle.op(Op::QueuePut(blob(item)?, None))?)
    }

    /// As [`put`](QueueProxy::put), waiting at most `timeout` for room.
    ///
    /// # Errors
    /// [`Error::is_timeout`] when the queue stayed full.
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<(), Error> {
        expect_done(self.handle.op(Op::QueuePut(blob(item)?, Some(timeout)))?)
    }

    /// Takes the item at the front, waiting for one.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn get(&self) -> Result<T, Error> {
        self.get_inner(None)
    }

    /// As [`get`](QueueProxy::get), waiting at most `timeout`.
    ///
    /// # Errors
    /// [`Error::is_timeout`] when nothing came.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.get_inner(Some(timeout))
    }

    /// Takes the item at the front if there is one now.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn try_get(&self) -> Result<Option<T>, Error> {
        match self.get_inner(Some(Duration::ZERO)) {
            Ok(item) => Ok(Some(item)),
            Err(e) if e.is_timeout() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_inner(&self, wait: Option<Duration>) -> Result<T, Error> {
        expect_item(self.handle.op(Op::QueueGet(wait))?)?
            .ok_or_else(|| Error::new(ErrorKind::Decode("no item".into())))
    }

    /// The number of items now.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn len(&self) -> Result<usize, Error> {
        expect_len(self.handle.op(Op::Len)?)
    }

    /// Whether the queue is empty now.
    ///
    /// # Errors
    /// As [`DictProxy::get`](super::DictProxy::get).
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }
}
