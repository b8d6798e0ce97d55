//! Managers: shared objects that live in a server process and are used
//! through proxies, from any process that has a proxy or knows the
//! server's address and authkey. Python's `multiprocessing.managers`.
//!
//! ```
//! use multiproc::{Manager, Process};
//! use multiproc::manager::DictProxy;
//!
//! fn square(arg: (DictProxy<u32, u32>, u32)) {
//!     let (d, i) = arg;
//!     d.insert(&i, &(i * i)).unwrap();
//! }
//!
//! # multiproc::init();
//! let manager = Manager::start()?;
//! let d = manager.dict()?;
//! let mut kids = Vec::new();
//! for i in 0..4 {
//!     kids.push(Process::spawn(square, (d.clone(), i))?);
//! }
//! for mut k in kids {
//!     k.join()?;
//! }
//! let mut items = d.items()?;
//! items.sort();
//! assert_eq!(items, [(0, 0), (1, 1), (2, 4), (3, 9)]);
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # What there is
//! - [`Manager::start`] / [`Manager::builder`]: a server process owned by
//!   the caller; [`Manager::connect`]: a server started elsewhere, by
//!   [`Address`](crate::connection::Address) (TCP, Unix socket) and
//!   authkey.
//! - Proxies, each `Clone + Send + Sync` and a serde value (pass them to
//!   children, through pipes and queues): [`DictProxy`], [`ListProxy`],
//!   [`NamespaceProxy`], [`QueueProxy`], [`LockProxy`], [`EventProxy`],
//!   [`ValueProxy`], and [`Proxy`] for your own [`Managed`] types.
//! - [`Manager::named`]: objects found by name, for separate programs.
//!
//! Every proxy method is one request answered by the server, done whole
//! (other clients see it before or after, never half-way), and returns a
//! `Result`: a server that is gone (or, over TCP, whose host vanished: see
//! the keepalive of [`connection`](crate::connection)) is
//! [`Error::is_disconnected`], never a hang. The blocking ones ([`QueueProxy::get`], [`LockProxy::acquire`],
//! [`EventProxy::wait`]) have timeout forms.
//!
//! # How it works
//! - **Server.** One process, a thread per client connection. Objects are
//!   stored as encoded bytes: the server does not need to know their
//!   types, so it serves any program, including ones built separately
//!   that [connect](Manager::connect) to it. Dict keys compare by their
//!   encoding.
//! - **Transport.** Connections are authenticated with the authkey
//!   challenge–response of [`connection`](crate::connection) (HMAC-SHA256;
//!   a peer without the key never reaches an object). A client on the same
//!   machine then moves its connection onto a shared-memory
//!   [`Pipe`](crate::Pipe) passed over the Unix socket, so a request costs
//!   about a microsecond of shared-memory round trip instead of two trips
//!   through the kernel; TCP clients stay on TCP.
//! - **Lifetime.** The server started by [`Manager::start`] ends when its
//!   `Manager` is dropped, and dies with the owning process even if that
//!   is killed (it is a child, with the usual parent-death guarantees).
//!   Its default address is an abstract Unix socket: no file to leak.
//!   Objects live as long as the server: there is no reference counting
//!   across processes (a proxy may be in a message, in flight, when every
//!   other proxy is gone), so a long-lived server should keep its objects
//!   few, or reuse them by [name](Manager::named).
//! - **Faults.** A client that dies mid-request does not disturb the
//!   server; a lock it held is released (the next holder is told, see
//!   [`ManagedLockGuard::previous_owner_died`]). Before a `get` takes an
//!   item (and after each wait) the server checks that the client is still
//!   connected, so the item of a client that died waiting stays in the
//!   queue; only a death in the instant between that check and the reply
//!   loses it (there is no acknowledgement).
//! - **Proxies carry the key.** A proxy's serialized form holds the
//!   server's address and authkey (that is what lets it work in another
//!   process): whoever receives one can use the server. Send proxies only
//!   where you would send the authkey.
//!
//! [`Error::is_disconnected`]: crate::Error::is_disconnected

mod client;
mod custom;
mod protocol;
pub(crate) mod proxy;
mod server;
mod start;

pub use custom::Managed;
pub use proxy::{
    DictProxy, EventProxy, ListProxy, LockProxy, ManagedLockGuard, NamespaceProxy, Proxy,
    QueueProxy, ValueProxy,
};
pub use start::{Manager, ManagerBuilder, Named};

#[doc(hidden)]
pub use server::fuzz::{
    manager_request_seed_replies, manager_request_seeds, manager_requests_for_fuzz,
};
