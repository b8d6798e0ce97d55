//! The client side: a [`Link`] to one server, with a pool of idle
//! transports that proxies borrow for each request.
//!
//! A process keeps one `Link` per server (address and authkey), found
//! through a process-wide cache when a proxy arrives in a message. A
//! request borrows an idle transport (or opens one), sends one frame,
//! waits for one frame, and gives the transport back; several threads
//! therefore use a server at once, each on its own transport. A transport
//! whose request failed in transit is dropped, never reused out of step.
//! Transports inherited through `fork` are closed in the child, never used
//! by two processes.

use super::protocol::{Blob, Failure, Reply, Request};
use crate::connection::{Address, Channel, Client};
use crate::error::{Error, Kind};
use crate::wait::Waitable;
use crate::{Connection, Pipe, RecvError, RecvTimeoutError, sys, wire};
use std::fmt;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How long a request on a socket polls for its reply before sleeping.
pub(crate) const SOCKET_SPIN: Duration = Duration::from_micros(50);

/// One way to the server.
pub(crate) enum Transport {
    /// A TCP connection (a Unix one only until it moves to shared memory).
    Socket(Channel),
    /// A shared-memory pipe, for a client on the server's machine.
    Shm(Connection<Vec<u8>>),
}

fn gone_error(why: impl fmt::Display) -> Error {
    Error::new(Kind::Disconnected(format!(
        "the manager's server went away ({why})"
    )))
}

impl Transport {
    /// Connects and authenticates; over a Unix socket, moves to a
    /// shared-memory pipe.
    fn open(address: &Address, authkey: &[u8]) -> Result<Transport, Error> {
        let channel = Client::connect(address, authkey)?;
        if channel.is_unix() {
            Transport::upgrade(channel)
        } else {
            Ok(Transport::Socket(channel))
        }
    }

    fn upgrade(mut channel: Channel) -> Result<Transport, Error> {
        let (mine, theirs) = Pipe::new::<Vec<u8>>()?;
        let (encoded, fds) = wire::encode(&theirs)?;
        let request = Request::Upgrade { end: Blob(encoded) };
        channel.send_bytes(&postcard::to_allocvec(&request).map_err(encode_error)?)?;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        sys::socket::send_msg(channel.stream_fd(), &[&[0u8]], &raw, false)
            .map_err(|e| Error::io("passing a pipe to the manager", e))?;
        drop((fds, theirs));
        let reply = channel.recv_bytes_timeout(Duration::from_secs(10))?;
        check(decode_reply(&reply)?)?;
        Ok(Transport::Shm(mine))
    }

    /// Whether the server end is still there, as far as can be told
    /// without a round trip: an idle socket that polls readable has
    /// reached its end; a pipe whose peer hung up is dead.
    fn is_alive(&self) -> bool {
        let fd = match self {
            Transport::Socket(c) => c.stream_fd(),
            Transport::Shm(c) => match c.hangup_fd() {
                Some(fd) => fd,
                None => return true,
            },
        };
        matches!(sys::poll(&[fd], Some(Duration::ZERO)), Ok(r) if !r[0])
    }

    /// Sends one request and waits for its reply.
    fn call(&mut self, request: &[u8], timeout: Option<Duration>) -> Result<Reply, Error> {
        let reply = match self {
            Transport::Socket(c) => {
                c.send_bytes(request)?;
                // A reply within tens of microseconds (a server on this
                // machine) is cheaper to catch awake than after a sleep.
                let spin = timeout.map_or(SOCKET_SPIN, |t| t.min(SOCKET_SPIN));
                let _ = sys::poll_spin(&[c.stream_fd()], Some(spin), spin);
                match timeout {
                    None => c.recv_bytes()?,
                    Some(t) => c.recv_bytes_timeout(t)?,
                }
            }
            Transport::Shm(c) => {
                c.send_bytes(request).map_err(gone_error)?;
                match timeout {
                    None => c.recv_bytes().map_err(|e: RecvError| gone_error(e))?,
                    Some(t) => c.recv_bytes_timeout(t).map_err(|e| match e {
                        RecvTimeoutError::Timeout => Error::timeout(),
                        other => gone_error(other),
                    })?,
                }
            }
        };
        decode_reply(&reply)
    }
}

fn encode_error(e: postcard::Error) -> Error {
    Error::misuse(format!("cannot encode a request for the manager: {e}"))
}

fn decode_reply(bytes: &[u8]) -> Result<Reply, Error> {
    wire::decode_plain::<Reply>(bytes).map_err(|e| {
        Error::new(Kind::Decode(format!(
            "the manager's reply does not decode: {e}"
        )))
    })
}

/// Turns a [`Reply::Failed`] into its error.
pub(crate) fn check(reply: Reply) -> Result<Reply, Error> {
    match reply {
        Reply::Failed(f) => Err(match f {
            Failure::Misuse(why) => Error::misuse(why),
            Failure::Decode(why) => Error::new(Kind::Decode(why)),
            Failure::Timeout => Error::timeout(),
            Failure::Panicked {
                pid,
                message,
                location,
            } => Error::new(Kind::Panicked {
                pid,
                message,
                location,
                backtrace: None,
            }),
        }),
        other => Ok(other),
    }
}

struct Idle {
    /// The process the transports belong to.
    pid: i32,
    /// Each with when it was last given back.
    ends: Vec<(Transport, Instant)>,
}

/// A client's way to one server.
pub(crate) struct Link {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
    idle: Mutex<Idle>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Every live link of this process.
static LINKS: Mutex<Vec<Weak<Link>>> = Mutex::new(Vec::new());

/// Idle transports kept per link; more are closed when given back.
const KEEP_IDLE: usize = 16;
/// A transport idle for longer is checked before it is used again.
const RECHECK_IDLE: Duration = Duration::from_millis(50);

impl Link {
    /// This process's link to the server at `address` with `authkey`.
    pub(crate) fn get(address: &Address, authkey: &[u8]) -> Arc<Link> {
        let mut links = LINKS.lock().unwrap_or_else(PoisonError::into_inner);
        links.retain(|l| l.strong_count() > 0);
        let found = links
            .iter()
            .filter_map(Weak::upgrade)
            .find(|l| l.address == *address && l.authkey == authkey);
        if let Some(link) = found {
            return link;
        }
        let link = Arc::new(Link {
            address: address.clone(),
            authkey: authkey.to_vec(),
            idle: Mutex::new(Idle {
                pid: sys::getpid(),
                ends: Vec::new(),
            }),
        });
        links.push(Arc::downgrade(&link));
        link
    }

    fn idle(&self) -> MutexGuard<'_, Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let me = sys::getpid();
        if idle.pid != me {
            // Inherited through fork: the parent's, not ours to use.
            idle.ends.clear();
            idle.pid = me;
        }
        idle
    }

    /// An idle transport, or a new one. One that sat idle for a while is
    /// first checked (without a round trip): a server that went away, and
    /// perhaps was replaced at the same address since, is not blamed on
    /// the next request.
    pub(crate) fn take(&self) -> Result<Transport, Error> {
        loop {
            let spare = self.idle().ends.pop();
            match spare {
                Some((t, since)) if since.elapsed() < RECHECK_IDLE || t.is_alive() => return Ok(t),
                Some(_) => continue,
                None => {
                    return Transport::open(&self.address, &self.authkey).map_err(|e| {
                        // For a proxy, nothing listening is the server gone.
                        let refused = e.io_error().is_some_and(|io| {
                            matches!(
                                io.kind(),
                                std::io::ErrorKind::ConnectionRefused
                                    | std::io::ErrorKind::NotFound
                            )
                        });
                        if refused { gone_error(e) } else { e }
                    });
                }
            }
        }
    }

    /// Opens a new transport (checking address and authkey) and keeps it.
    pub(crate) fn open_fresh(&self) -> Result<(), Error> {
        let t = Transport::open(&self.address, &self.authkey)?;
        self.give_back(t);
        Ok(())
    }

    /// Gives back a transport whose last request completed.
    pub(crate) fn give_back(&self, t: Transport) {
        let mut idle = self.idle();
        if idle.ends.len() < KEEP_IDLE {
            idle.ends.push((t, Instant::now()));
        }
    }

    /// Sends `request` on `t` and checks the reply.
    pub(crate) fn call_on(
        t: &mut Transport,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, Error> {
        let bytes = postcard::to_allocvec(request).map_err(encode_error)?;
        check(t.call(&bytes, timeout)?)
    }

    /// One request on a borrowed transport.
    pub(crate) fn call(&self, request: &Request) -> Result<Reply, Error> {
        self.call_timeout(request, None)
    }

    /// One request, giving up on the reply after `timeout` (the transport
    /// is then dropped: its reply may still come).
    pub(crate) fn call_timeout(
        &self,
        request: &Request,
        timeout: Option<Duration>,
    ) -> Result<Reply, Error> {
        let mut t = self.take()?;
        let bytes = postcard::to_allocvec(request).map_err(encode_error)?;
        match t.call(&bytes, timeout) {
            Ok(reply) => {
                self.give_back(t);
                check(reply)
            }
            Err(e) => Err(e),
        }
    }
}
