//! [`Listener`] and [`Client`]: the two ways to get a [`Channel`].

use super::address::Address;
use super::channel::{Channel, DEFAULT_MAX_FRAME_LEN, Stream};
use super::handshake::{self, Side};
use crate::error::Error;
use crate::wire::Fd;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// How long a peer has to complete the authkey handshake, unless set.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

enum Socket {
    Tcp(TcpListener),
    /// The listener, and the identity (device, inode) of the socket file it
    /// created, removed on drop if it is still that file.
    Unix(UnixListener, Option<(u64, u64)>),
}

/// Accepts authenticated connections: Python's
/// `multiprocessing.connection.Listener` with an `authkey`.
///
/// Every peer must pass the authkey handshake (see the
/// [module docs](super)) before [`accept`](Listener::accept) hands out its
/// [`Channel`]. A Unix socket's file is created by
/// [`bind`](Listener::bind) and removed when the listener is dropped.
///
/// # Examples
/// ```
/// use multiproc::connection::{Address, Client, Listener};
///
/// let dir = std::env::temp_dir().join(format!("mp-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("listener.sock");
/// let listener = Listener::bind(Address::Unix(path.clone()), b"k")?;
/// let t = std::thread::spawn(move || listener.accept().map(|_| ()));
/// Client::connect(&Address::Unix(path.clone()), b"k")?;
/// t.join().unwrap()?; // the listener is dropped with the thread
/// assert!(!path.exists());
/// # std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    socket: Socket,
    address: Address,
    authkey: Vec<u8>,
    handshake_timeout: Duration,
    max_frame_len: usize,
}

impl Listener {
    /// Listens on `address` (TCP port 0: a free port, see
    /// [`address`](Listener::address)); peers must know `authkey`.
    ///
    /// # Errors
    /// [`Error::is_misuse`] for an empty authkey (it would authenticate
    /// nothing); an I/O error when the address cannot be bound (in use, a
    /// Unix path that already exists...).
    ///
    /// # Examples
    /// ```
    /// use multiproc::connection::Listener;
    ///
    /// assert!(Listener::bind("127.0.0.1:0".parse()?, b"").unwrap_err().is_misuse());
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// let taken = listener.address().clone();
    /// assert!(Listener::bind(taken, b"k").unwrap_err().io_error().is_some());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn bind(address: Address, authkey: &[u8]) -> Result<Listener, Error> {
        if authkey.is_empty() {
            return Err(Error::misuse("an empty authkey authenticates nothing"));
        }
        let (socket, address) = match address {
            Address::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(|e| Error::io("binding a TCP listener", e))?;
                let real = l
                    .local_addr()
                    .map_err(|e| Error::io("reading a listener's address", e))?;
                (Socket::Tcp(l), Address::Tcp(real))
            }
            Address::Unix(p) => {
                let l = UnixListener::bind(&p)
                    .map_err(|e| Error::io("binding a Unix socket listener", e))?;
                let id = std::fs::metadata(&p).ok().map(|m| (m.dev(), m.ino()));
                (Socket::Unix(l, id), Address::Unix(p))
            }
            Address::Abstract(name) => {
                let l = abstract_addr(&name)
                    .and_then(|a| UnixListener::bind_addr(&a))
                    .map_err(|e| Error::io("binding an abstract Unix socket listener", e))?;
                (Socket::Unix(l, None), Address::Abstract(name))
            }
        };
        let nonblocking = match &socket {
            Socket::Tcp(l) => l.set_nonblocking(true),
            Socket::Unix(l, _) => l.set_nonblocking(true),
        };
        nonblocking.map_err(|e| Error::io("configuring a listener", e))?;
        Ok(Listener {
            socket,
            address,
            authkey: authkey.to_vec(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        })
    }

    /// The address clients connect to: the bound one (with the port the
    /// system chose for port 0).
    ///
    /// # Examples
    /// ```
    /// use multiproc::connection::{Address, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// let Address::Tcp(a) = listener.address() else { unreachable!() };
    /// assert_ne!(a.port(), 0);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Sets how long each peer has to complete the handshake
    /// ([`DEFAULT_HANDSHAKE_TIMEOUT`] unless set).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::Listener;
    /// # use std::time::Duration;
    /// let mut listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// listener.set_handshake_timeout(Duration::from_secs(1));
    /// assert_eq!(listener.handshake_timeout(), Duration::from_secs(1));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// How long each peer has to complete the handshake.
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Listener, DEFAULT_HANDSHAKE_TIMEOUT};
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// assert_eq!(listener.handshake_timeout(), DEFAULT_HANDSHAKE_TIMEOUT);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// Sets the frame limit of the channels accepted from now on (see
    /// [`Channel::set_max_frame_len`]).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// let mut listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// listener.set_max_frame_len(1024);
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || Client::connect(&a, b"k"));
    /// assert_eq!(listener.accept()?.max_frame_len(), 1024);
    /// # t.join().unwrap()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.max_frame_len = max.min(u32::MAX as usize);
    }

    /// Waits for a peer, runs the handshake with it and returns its
    /// channel.
    ///
    /// # Errors
    /// An error that concerns one peer only is
    /// [`Error::is_authentication_failure`]: a wrong authkey, a peer that
    /// stays silent past the [handshake
    /// timeout](Listener::set_handshake_timeout), closes the connection or
    /// does not speak the protocol. That peer is dropped and the listener
    /// is intact: log it and call `accept` again. Any other error is about
    /// the listener itself (an I/O error).
    ///
    /// # Examples
    /// ```
    /// use multiproc::connection::{Client, Listener};
    ///
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"right")?;
    /// let a = listener.address().clone();
    /// let clients = std::thread::spawn(move || {
    ///     let bad = Client::connect(&a, b"wrong").unwrap_err();
    ///     assert!(bad.is_authentication_failure());
    ///     Client::connect(&a, b"right").map(|_| ())
    /// });
    /// let first = listener.accept().unwrap_err();
    /// assert!(first.is_authentication_failure());
    /// listener.accept()?; // the listener keeps serving
    /// clients.join().unwrap()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn accept(&self) -> Result<Channel, Error> {
        self.accept_until(None)
    }

    /// As [`accept`](Listener::accept), giving up if no peer connects
    /// within `timeout` (the handshake, once a peer is there, has its own
    /// deadline).
    ///
    /// # Errors
    /// [`Error::is_timeout`] when no peer connected in time, and those of
    /// [`accept`](Listener::accept).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::Listener;
    /// # use std::time::Duration;
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// let err = listener.accept_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn accept_timeout(&self, timeout: Duration) -> Result<Channel, Error> {
        self.accept_until(Some(Instant::now() + timeout))
    }

    fn accept_until(&self, deadline: Option<Instant>) -> Result<Channel, Error> {
        let stream = self.accept_stream(deadline)?;
        self.authenticate(stream)
    }

    /// Takes the next connection, not yet authenticated: a server runs
    /// [`authenticate`](Listener::authenticate) on a thread of its own, so
    /// that a silent peer delays nobody else.
    pub(crate) fn accept_stream(&self, deadline: Option<Instant>) -> Result<Stream, Error> {
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let fd = match &self.socket {
                Socket::Tcp(l) => l.as_fd(),
                Socket::Unix(l, _) => l.as_fd(),
            };
            let ready = crate::sys::poll(&[fd], left)
                .map_err(|e| Error::io("waiting for a connection", e))?;
            if !ready[0] {
                return Err(Error::timeout());
            }
            let accepted = match &self.socket {
                Socket::Tcp(l) => l.accept().map(|(s, _)| {
                    let _ = s.set_nodelay(true);
                    let _ = keepalive(&s);
                    s.set_nonblocking(false).map(|()| Stream::Tcp(s))
                }),
                Socket::Unix(l, _) => l
                    .accept()
                    .map(|(s, _)| s.set_nonblocking(false).map(|()| Stream::Unix(s))),
            };
            match accepted.and_then(|s| s) {
                Ok(s) => return Ok(s),
                Err(e) if retry_accept(&e) => continue,
                Err(e) => return Err(Error::io("accepting a connection", e)),
            }
        }
    }

    /// Runs the handshake on an accepted connection.
    pub(crate) fn authenticate(&self, stream: Stream) -> Result<Channel, Error> {
        self.authenticator().authenticate(stream)
    }

    /// What running the handshake takes, apart from the listener (so that
    /// the threads that run it do not keep the listening socket alive).
    pub(crate) fn authenticator(&self) -> Authenticator {
        Authenticator {
            authkey: self.authkey.clone(),
            handshake_timeout: self.handshake_timeout,
            max_frame_len: self.max_frame_len,
        }
    }

    /// The listener as values that can travel to another process (which
    /// then owns the socket, and removes a Unix socket's file when done).
    pub(crate) fn into_parts(mut self) -> Result<ListenerParts, Error> {
        let fd = match &self.socket {
            Socket::Tcp(l) => l.as_fd().try_clone_to_owned(),
            Socket::Unix(l, _) => l.as_fd().try_clone_to_owned(),
        }
        .map_err(|e| Error::io("duplicating a listener's socket", e))?;
        // The new owner removes the file; this copy must not.
        let unix_id = match &mut self.socket {
            Socket::Unix(_, id) => id.take(),
            Socket::Tcp(_) => None,
        };
        Ok(ListenerParts {
            fd: Fd::new(fd),
            unix_id,
            address: self.address.clone(),
            authkey: std::mem::take(&mut self.authkey),
            handshake_timeout: self.handshake_timeout,
            max_frame_len: self.max_frame_len,
        })
    }

    /// The listener that [`into_parts`](Listener::into_parts) took apart.
    pub(crate) fn from_parts(parts: ListenerParts) -> Listener {
        let fd = parts.fd.into_owned_fd();
        let socket = match &parts.address {
            Address::Tcp(_) => Socket::Tcp(TcpListener::from(fd)),
            _ => Socket::Unix(UnixListener::from(fd), parts.unix_id),
        };
        Listener {
            socket,
            address: parts.address,
            authkey: parts.authkey,
            handshake_timeout: parts.handshake_timeout,
            max_frame_len: parts.max_frame_len,
        }
    }
}

/// The listener's side of the handshake, for accepted connections.
#[derive(Clone)]
pub(crate) struct Authenticator {
    authkey: Vec<u8>,
    handshake_timeout: Duration,
    max_frame_len: usize,
}

impl Authenticator {
    /// Runs the handshake on an accepted connection.
    pub(crate) fn authenticate(&self, stream: Stream) -> Result<Channel, Error> {
        let mut channel = Channel::new(stream, self.max_frame_len);
        let deadline = Instant::now() + self.handshake_timeout;
        handshake::run(&mut channel, &self.authkey, Side::Listener, deadline)?;
        Ok(channel)
    }
}

/// A [`Listener`] in transit to another process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListenerParts {
    fd: Fd,
    unix_id: Option<(u64, u64)>,
    address: Address,
    authkey: Vec<u8>,
    handshake_timeout: Duration,
    max_frame_len: usize,
}

/// Keepalive probes on a TCP connection: a peer whose host vanished
/// without closing is noticed within about 25 s (10 s of silence, then 3
/// probes 5 s apart), instead of a read that waits forever.
fn keepalive(s: &TcpStream) -> io::Result<()> {
    crate::sys::socket::set_keepalive(s.as_fd(), 10, 5, 3)
}

/// The socket address of an abstract name.
fn abstract_addr(name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

/// Errors of `accept` that concern a connection which vanished before it
/// was accepted, or a wake-up with nothing to accept.
fn retry_accept(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    )
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let (Socket::Unix(_, Some(id)), Address::Unix(path)) = (&self.socket, &self.address) {
            let same = std::fs::metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == *id);
            if same {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_frame_len", &self.max_frame_len)
            .finish_non_exhaustive()
    }
}

/// Connects to a [`Listener`]: Python's
/// `multiprocessing.connection.Client` with an `authkey`.
///
/// A namespace for [`connect`](Client::connect) and
/// [`connect_timeout`](Client::connect_timeout); it has no values.
///
/// # Examples
/// ```
/// use multiproc::connection::{Client, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
/// let a = listener.address().clone();
/// let t = std::thread::spawn(move || listener.accept()?.recv::<u8>());
/// Client::connect(&a, b"k")?.send(&9u8)?;
/// assert_eq!(t.join().unwrap()?, 9);
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug)]
pub enum Client {}

impl Client {
    /// Connects to the listener at `address` and runs the handshake with
    /// `authkey`; the handshake has [`DEFAULT_HANDSHAKE_TIMEOUT`] to
    /// complete.
    ///
    /// # Errors
    /// [`Error::is_authentication_failure`] when the keys differ (or the
    /// listener does not answer the handshake in time, or is not a
    /// multiproc listener); an I/O error when nothing listens there.
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// let a = listener.address().clone();
    /// drop(listener);
    /// assert!(Client::connect(&a, b"k").unwrap_err().io_error().is_some());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn connect(address: &Address, authkey: &[u8]) -> Result<Channel, Error> {
        Client::connect_until(address, authkey, None)
    }

    /// As [`connect`](Client::connect), with `timeout` bounding the
    /// connection and the handshake together.
    ///
    /// # Errors
    /// [`Error::is_timeout`] when the TCP connection is not established in
    /// time, and those of [`connect`](Client::connect).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # use std::time::Duration;
    /// let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// // Nobody accepts: the handshake cannot complete.
    /// let err = Client::connect_timeout(listener.address(), b"k", Duration::from_millis(50))
    ///     .unwrap_err();
    /// assert!(err.is_authentication_failure());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn connect_timeout(
        address: &Address,
        authkey: &[u8],
        timeout: Duration,
    ) -> Result<Channel, Error> {
        Client::connect_until(address, authkey, Some(timeout))
    }

    fn connect_until(
        address: &Address,
        authkey: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Channel, Error> {
        if authkey.is_empty() {
            return Err(Error::misuse("an empty authkey authenticates nothing"));
        }
        let start = Instant::now();
        let stream = match address {
            Address::Tcp(a) => {
                let s = match timeout {
                    Some(t) => TcpStream::connect_timeout(a, t),
                    None => TcpStream::connect(a),
                };
                let s = s.map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::timeout(),
                    _ => Error::io("connecting to a TCP listener", e),
                })?;
                let _ = s.set_nodelay(true);
                let _ = keepalive(&s);
                Stream::Tcp(s)
            }
            Address::Unix(p) => Stream::Unix(
                UnixStream::connect(p)
                    .map_err(|e| Error::io("connecting to a Unix socket listener", e))?,
            ),
            Address::Abstract(name) => Stream::Unix(
                abstract_addr(name)
                    .and_then(|a| UnixStream::connect_addr(&a))
                    .map_err(|e| Error::io("connecting to an abstract Unix socket listener", e))?,
            ),
        };
        let mut channel = Channel::new(stream, DEFAULT_MAX_FRAME_LEN);
        let deadline = start + timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT);
        handshake::run(&mut channel, authkey, Side::Client, deadline)?;
        Ok(channel)
    }
}
