//! [`Manager`], [`ManagerBuilder`] and [`Named`].

use super::client::Link;
use super::custom::{Managed, Registration, type_names, type_signature};
use super::protocol::{Blob, Kind, Reply, Request, Spec};
use super::proxy::{
    DictProxy, EventProxy, FromHandle, Handle, ListProxy, LockProxy, NamespaceProxy, Proxy,
    QueueProxy, ValueProxy, blob, types_of, unexpected,
};
use super::server::{ServerConfig, server_main};
use crate::connection::{Address, Listener};
use crate::error::Error;
use crate::{Process, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long a shutdown waits for the server before killing it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A manager: a server process holding shared objects, and the way to
/// make them and get [proxies](super) on them. Python's
/// `multiprocessing.Manager()` / `SyncManager`.
///
/// [`start`](Manager::start) starts a server owned by this handle: it ends
/// when the handle is dropped (or [shut down](Manager::shutdown)) and dies
/// with this process, even killed. [`connect`](Manager::connect) reaches a
/// server someone else started, by address and authkey.
///
/// # Examples
/// ```
/// use multiproc::{Manager, Process};
/// use multiproc::manager::DictProxy;
///
/// fn store(d: DictProxy<u32, u32>) {
///     d.insert(&7, &49).unwrap();
/// }
///
/// # multiproc::init();
/// let manager = Manager::start()?;
/// let squares = manager.dict::<u32, u32>()?;
/// Process::spawn(store, squares.clone())?.join()?;
/// assert_eq!(squares.get(&7)?, Some(49));
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Manager {
    link: Arc<Link>,
    /// The server, when this handle started it.
    server: Option<Process<()>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.link.address)
            .field("server_pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Starts a server process on a private address (an abstract Unix
    /// socket) with a random authkey: `Manager::builder().start()`.
    ///
    /// # Errors
    /// The server could not be started.
    pub fn start() -> Result<Manager, Error> {
        Manager::builder().start()
    }

    /// A builder: address, authkey, registered types, start method.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Connects to a server started elsewhere (another program, another
    /// machine) at `address` with `authkey`: Python's
    /// `BaseManager(address, authkey).connect()`. The server is not owned:
    /// dropping this handle leaves it running.
    ///
    /// # Errors
    /// [`Error::is_authentication_failure`] for a wrong authkey; an I/O
    /// error when nothing listens at `address`.
    ///
    /// # Examples
    /// ```
    /// use multiproc::Manager;
    ///
    /// let server = Manager::builder()
    ///     .address("127.0.0.1:0".parse()?)
    ///     .authkey(b"secret")
    ///     .start()?;
    /// server.named("jobs").queue::<u32>()?.put(&5)?;
    ///
    /// let client = Manager::connect(server.address(), b"secret")?;
    /// assert_eq!(client.named("jobs").queue::<u32>()?.get()?, 5);
    /// assert!(Manager::connect(server.address(), b"wrong")
    ///     .unwrap_err()
    ///     .is_authentication_failure());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Manager, Error> {
        let link = Link::get(address, authkey);
        // Connect now (not with a cached connection), so that a wrong
        // address or key, or a server that is gone, is reported here.
        link.open_fresh()?;
        Ok(Manager { link, server: None })
    }

    /// The address the server listens on (give it, with the
    /// [authkey](Manager::authkey), to programs that
    /// [connect](Manager::connect)).
    pub fn address(&self) -> &Address {
        &self.link.address
    }

    /// The authkey of the server.
    pub fn authkey(&self) -> &[u8] {
        &self.link.authkey
    }

    /// The server's process id, when this handle started it.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Process::pid)
    }

    /// A new dict (see [`DictProxy`]).
    ///
    /// # Errors
    /// [`Error::is_disconnected`] when the server is gone.
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, Error> {
        self.make(Kind::Dict, types_of::<(K, V)>(), Blob::default(), None)
    }

    /// A new list (see [`ListProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn list<T>(&self) -> Result<ListProxy<T>, Error> {
        self.make(Kind::List, types_of::<T>(), Blob::default(), None)
    }

    /// A new namespace (see [`NamespaceProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn namespace(&self) -> Result<NamespaceProxy, Error> {
        self.make(Kind::Namespace, types_of::<()>(), Blob::default(), None)
    }

    /// A new unbounded queue (see [`QueueProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn queue<T>(&self) -> Result<QueueProxy<T>, Error> {
        self.make(Kind::Queue, types_of::<T>(), bound(0)?, None)
    }

    /// A new queue of at most `capacity` items (`put` waits for room).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn bounded_queue<T>(&self, capacity: usize) -> Result<QueueProxy<T>, Error> {
        self.make(Kind::Queue, types_of::<T>(), bound(capacity.max(1))?, None)
    }

    /// A new lock (see [`LockProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn lock(&self) -> Result<LockProxy, Error> {
        self.make(Kind::Lock, types_of::<()>(), Blob::default(), None)
    }

    /// A new event (see [`EventProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn event(&self) -> Result<EventProxy, Error> {
        self.make(Kind::Event, types_of::<()>(), Blob::default(), None)
    }

    /// A new value, set to `initial` (see [`ValueProxy`]).
    ///
    /// # Errors
    /// As [`dict`](Manager::dict).
    pub fn value<T: Serialize + DeserializeOwned>(
        &self,
        initial: &T,
    ) -> Result<ValueProxy<T>, Error> {
        self.make(Kind::Value, types_of::<T>(), blob(initial)?, None)
    }

    /// A new value of the registered type `T`, made by `T::new(init)` in
    /// the server (see [`Managed`]).
    ///
    /// # Errors
    /// [`Error::is_misuse`] when the server has no `T` registered;
    /// [`Error::is_panic`] when `T::new` panicked.
    pub fn create<T: Managed>(&self, init: T::Init) -> Result<Proxy<T>, Error> {
        self.create_inner(init, None)
    }

    fn create_inner<T: Managed>(
        &self,
        init: T::Init,
        name: Option<&str>,
    ) -> Result<Proxy<T>, Error> {
        let spec = Spec {
            kind: Kind::Custom(T::TYPE_ID.to_owned()),
            types: type_signature::<T>(),
            type_names: type_names::<T>(),
            init: blob(&init)?,
        };
        self.create_spec(spec, name)
            .map(|id| Proxy::new(self.handle(id)))
    }

    /// Objects by name: `manager.named("jobs").queue::<Job>()` returns the
    /// queue called `jobs`, made by the first caller, so that programs
    /// that [connect](Manager::connect) separately find the same objects
    /// (Python's `register("get_jobs", callable=...)`).
    ///
    /// # Examples
    /// ```
    /// let manager = multiproc::Manager::start()?;
    /// let a = manager.named("totals").dict::<String, u64>()?;
    /// a.insert(&"x".into(), &1)?;
    /// let b = manager.named("totals").dict::<String, u64>()?;
    /// assert_eq!(b.get(&"x".into())?, Some(1)); // the same dict
    /// // Another kind or other types under that name are refused.
    /// assert!(manager.named("totals").list::<u8>().unwrap_err().is_misuse());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn named(&self, name: &str) -> Named<'_> {
        Named {
            manager: self,
            name: name.to_owned(),
        }
    }

    fn handle(&self, id: u64) -> Handle {
        Handle {
            link: self.link.clone(),
            id,
        }
    }

    fn create_spec(&self, spec: Spec, name: Option<&str>) -> Result<u64, Error> {
        let request = Request::Create {
            spec,
            name: name.map(str::to_owned),
        };
        match self.link.call(&request)? {
            Reply::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    fn make<P: FromHandle>(
        &self,
        kind: Kind,
        (types, type_names): (u64, String),
        init: Blob,
        name: Option<&str>,
    ) -> Result<P, Error> {
        let spec = Spec {
            kind,
            types,
            type_names,
            init,
        };
        let id = self.create_spec(spec, name)?;
        Ok(P::from_handle(self.handle(id)))
    }

    /// Stops the server this handle started (for a
    /// [connected](Manager::connect) handle, only drops it), waiting for it
    /// to exit. Proxies fail with [`Error::is_disconnected`] afterwards.
    ///
    /// # Errors
    /// The server could not be reached or reaped (it is killed then).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let asked = self
            .link
            .call_timeout(&Request::Shutdown, Some(SHUTDOWN_GRACE));
        let ended = match asked {
            Ok(_) => server.join_timeout(SHUTDOWN_GRACE).map(drop),
            Err(e) => Err(e),
        };
        if ended.is_err() {
            // Unreachable, stuck, or already dead: make sure, and reap it.
            if server.is_alive() {
                let _ = server.kill();
            }
            let _ = server.join_timeout(SHUTDOWN_GRACE);
        }
        ended
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn bound(n: usize) -> Result<Blob, Error> {
    blob(&(n as u64))
}

/// Objects by name (see [`Manager::named`]): each method returns the object
/// of that name if it exists (of the same kind and types), or makes it.
#[derive(Debug)]
pub struct Named<'a> {
    manager: &'a Manager,
    name: String,
}

impl Named<'_> {
    fn make<P: FromHandle>(
        &self,
        kind: Kind,
        types: (u64, String),
        init: Blob,
    ) -> Result<P, Error> {
        self.manager.make(kind, types, init, Some(&self.name))
    }

    /// The dict of this name.
    ///
    /// # Errors
    /// [`Error::is_misuse`] when the name is taken by another kind of
    /// object or other types; as [`Manager::dict`].
    pub fn dict<K, V>(&self) -> Result<DictProxy<K, V>, Error> {
        self.make(Kind::Dict, types_of::<(K, V)>(), Blob::default())
    }

    /// The list of this name.
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn list<T>(&self) -> Result<ListProxy<T>, Error> {
        self.make(Kind::List, types_of::<T>(), Blob::default())
    }

    /// The namespace of this name.
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn namespace(&self) -> Result<NamespaceProxy, Error> {
        self.make(Kind::Namespace, types_of::<()>(), Blob::default())
    }

    /// The queue of this name (made unbounded).
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn queue<T>(&self) -> Result<QueueProxy<T>, Error> {
        self.make(Kind::Queue, types_of::<T>(), bound(0)?)
    }

    /// The queue of this name (made with room for `capacity` items).
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn bounded_queue<T>(&self, capacity: usize) -> Result<QueueProxy<T>, Error> {
        self.make(Kind::Queue, types_of::<T>(), bound(capacity.max(1))?)
    }

    /// The lock of this name.
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn lock(&self) -> Result<LockProxy, Error> {
        self.make(Kind::Lock, types_of::<()>(), Blob::default())
    }

    /// The event of this name.
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn event(&self) -> Result<EventProxy, Error> {
        self.make(Kind::Event, types_of::<()>(), Blob::default())
    }

    /// The value of this name (made with `initial`; an existing value
    /// keeps its own).
    ///
    /// # Errors
    /// As [`dict`](Named::dict).
    pub fn value<T: Serialize + DeserializeOwned>(
        &self,
        initial: &T,
    ) -> Result<ValueProxy<T>, Error> {
        self.make(Kind::Value, types_of::<T>(), blob(initial)?)
    }

    /// The value of registered type `T` of this name (made by
    /// `T::new(init)` if there is none).
    ///
    /// # Errors
    /// As [`Manager::create`] and [`dict`](Named::dict).
    pub fn create<T: Managed>(&self, init: T::Init) -> Result<Proxy<T>, Error> {
        self.manager.create_inner(init, Some(&self.name))
    }
}

/// Configures and starts a [`Manager`].
///
/// # Examples
/// ```
/// use multiproc::Manager;
///
/// let manager = Manager::builder()
///     .address("127.0.0.1:0".parse()?) // TCP, any free port
///     .authkey(b"not a secret in real life")
///     .start()?;
/// assert!(manager.address().to_string().starts_with("127.0.0.1:"));
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ManagerBuilder {
    address: Option<Address>,
    authkey: Option<Vec<u8>>,
    registrations: Vec<Registration>,
    start_method: Option<StartMethod>,
}

/// Tells apart the private addresses of one process's managers.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl ManagerBuilder {
    /// Where the server listens: TCP for other machines
    /// (`"0.0.0.0:5000"`, port 0 for any free port), or a Unix socket.
    /// By default a private abstract Unix socket.
    pub fn address(mut self, address: Address) -> Self {
        self.address = Some(address);
        self
    }

    /// The key clients must prove they know. By default 32 random bytes
    /// (read it with [`Manager::authkey`]).
    pub fn authkey(mut self, authkey: &[u8]) -> Self {
        self.authkey = Some(authkey.to_vec());
        self
    }

    /// Registers `T` with the server, so that clients can
    /// [create](Manager::create) values of it (see [`Managed`]).
    pub fn register<T: Managed>(mut self) -> Self {
        self.registrations.push(Registration::of::<T>());
        self
    }

    /// How the server process is started ([`StartMethod::ForkServer`] by
    /// default; `Fork` is refused, as for pools).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Starts the server process and returns its owner.
    ///
    /// # Errors
    /// [`Error::is_misuse`] for an empty authkey or the `Fork` start
    /// method; an I/O error when the address cannot be bound; a start
    /// failure of the server process.
    pub fn start(self) -> Result<Manager, Error> {
        if self.start_method == Some(StartMethod::Fork) {
            return Err(Error::misuse(
                "a manager's server is started with ForkServer or Spawn, not Fork",
            ));
        }
        let authkey = match self.authkey {
            Some(k) => k,
            None => {
                let mut k = vec![0u8; 32];
                crate::connection::handshake::random_bytes(&mut k)?;
                k
            }
        };
        let address = match self.address {
            Some(a) => a,
            None => {
                let mut nonce = [0u8; 8];
                crate::connection::handshake::random_bytes(&mut nonce)?;
                Address::Abstract(format!(
                    "multiproc.manager.{}.{}.{:016x}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed),
                    u64::from_le_bytes(nonce)
                ))
            }
        };
        let listener = Listener::bind(address, &authkey)?;
        let address = listener.address().clone();
        let config = ServerConfig {
            listener: listener.into_parts()?,
            registrations: self.registrations,
        };
        let mut builder = Process::builder().name("manager").daemon(true);
        if let Some(m) = self.start_method {
            builder = builder.start_method(m);
        }
        let server = builder.spawn(server_main, config).inspect_err(|_| {
            // Nobody serves the socket: remove its file, if it has one.
            if let Address::Unix(path) = &address {
                let _ = std::fs::remove_file(path);
            }
        })?;
        Ok(Manager {
            link: Link::get(&address, &authkey),
            server: Some(server),
        })
    }
}
