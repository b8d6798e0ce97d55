//! Python's `multiprocessing.connection`: a [`Listener`] and a [`Client`]
//! that authenticate each other with a shared secret (the *authkey*), then
//! exchange whole messages over a [`Channel`], across processes on one
//! machine (a Unix socket) or across machines (TCP).
//!
//! This is the transport of managers (a server process that holds objects
//! and serves proxies); it is usable on its own.
//!
//! ```
//! use multiproc::connection::{Client, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:0".parse()?, b"secret key")?;
//! let address = listener.address().clone(); // the real port
//! let server = std::thread::spawn(move || -> Result<String, multiproc::Error> {
//!     let mut channel = listener.accept()?;
//!     channel.recv::<String>()
//! });
//! let mut channel = Client::connect(&address, b"secret key")?;
//! channel.send("hello")?;
//! assert_eq!(server.join().unwrap()?, "hello");
//! # Ok::<(), multiproc::Error>(())
//! ```
//!
//! # Protocol
//! - **Handshake.** Before a [`Channel`] exists, each side proves it knows
//!   the authkey, as Python's `deliver_challenge` / `answer_challenge`: the
//!   listener sends a challenge of 32 random bytes from the kernel
//!   (`/dev/urandom`), the client answers with their HMAC-SHA256 under the
//!   authkey, and the listener compares in constant time and says
//!   `#WELCOME#` or `#FAILURE#`; then the roles swap. A peer without the
//!   key never gets a channel, and never learns anything it could replay
//!   (the listener always challenges first, and the two directions' answers
//!   are computed over different labels). The authkey itself never crosses
//!   the wire. The whole handshake has a deadline (5 s by default,
//!   [`Listener::set_handshake_timeout`]), so a silent peer cannot hold a
//!   listener for longer.
//! - **Frames.** Every message is a `u32` little-endian length and that many
//!   bytes. A length above the receiver's limit
//!   ([`Channel::set_max_frame_len`], 64 MiB by default) is refused before
//!   any memory is set aside, and a body's buffer grows only as its bytes
//!   arrive. [`Channel::send`] / [`Channel::recv`] put one postcard-encoded
//!   value in a frame.
//!
//! - **Dead peers.** TCP connections send keepalive probes, so a peer
//!   whose host vanished without closing (power loss, a partition) fails
//!   a waiting `recv` within about 25 s instead of never.
//!
//! # What it does not do
//! The authkey authenticates; it does not encrypt. Over an untrusted
//! network, run the TCP connection inside TLS or a VPN, as with Python.
//! Values that own OS handles (queues, locks, shared memory, [`Fd`]) cannot
//! be sent: a handle means nothing on another machine. Handshakes run on
//! the thread that calls [`Listener::accept`], one at a time, so a peer that
//! stays silent delays the next ones by up to the handshake timeout (a
//! server that faces many untrusted peers should keep it short).
//!
//! [`Fd`]: crate::Fd

mod address;
mod channel;
pub(crate) mod frame;
pub(crate) mod handshake;
pub(crate) mod listener;

pub use address::Address;
pub(crate) use channel::Stream;
pub use channel::{Channel, DEFAULT_MAX_FRAME_LEN};
pub use listener::{Client, DEFAULT_HANDSHAKE_TIMEOUT, Listener};

#[cfg(test)]
mod test;
