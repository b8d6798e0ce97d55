//! The manager's server: accepts connections, authenticates each on a
//! thread of its own, then serves its requests on that thread.
//!
//! A connection over a Unix socket is moved onto a shared-memory pipe (a
//! [`Connection`] the client makes and sends over the socket): a request
//! then costs a round trip through shared memory, not two trips through
//! the kernel's socket layer. TCP connections stay on their socket.

pub(crate) mod fuzz;
mod ops;
pub(crate) mod ordered;
pub(crate) mod store;

use super::client::SOCKET_SPIN;
use super::custom::{Registration, Registry};
use super::protocol::{Failure, Op, Reply, Request};
use crate::connection::Listener;
use crate::connection::listener::{Authenticator, ListenerParts};
use crate::connection::{Channel, Stream};
use crate::error::Error;
use crate::wait::Waitable;
use crate::{Connection, sys, wire};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::{Session, Store};

/// How often the accept loop looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// The pause after a failed `accept` (the listener stays readable, so
/// retrying at once would spin).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The descriptor limit a server asks for: each local client holds about
/// seven (its socket, then its pipe's memory and doorbells).
const FD_LIMIT: u64 = 1 << 16;

/// What a server process is started with.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ServerConfig {
    pub(crate) listener: ListenerParts,
    pub(crate) registrations: Vec<Registration>,
}

/// The body of a manager's server process.
pub(crate) fn server_main(config: ServerConfig) {
    let _ = sys::proc::raise_fd_limit(FD_LIMIT);
    let listener = Listener::from_parts(config.listener);
    let registry = Registry::from_registrations(&config.registrations);
    if let Err(e) = serve(listener, registry) {
        log::error!("manager server stopped: {e}");
    }
}

/// Serves `listener` until a client asks for a shutdown; the listener
/// (and a Unix socket's file) is gone when this returns, even with
/// connections still open.
pub(crate) fn serve(listener: Listener, registry: Registry) -> Result<(), Error> {
    let shared = Arc::new(Shared {
        store: Store::new(registry),
        stop: AtomicBool::new(false),
        sessions: AtomicU64::new(1),
    });
    let auth = Arc::new(listener.authenticator());
    while !shared.stop.load(Ordering::Acquire) {
        let stream = match listener.accept_stream(Some(Instant::now() + STOP_CHECK)) {
            Ok(s) => s,
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                // Out of descriptors or memory (a flood of connections, say):
                // the connections already served go on; new ones wait in
                // the backlog until some close. Never give up the objects.
                log::warn!("manager server: cannot accept a connection: {e}");
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let (shared, auth) = (shared.clone(), auth.clone());
        let started = std::thread::Builder::new()
            .name("mp-manager-conn".into())
            .spawn(move || serve_connection(&shared, &auth, stream));
        if let Err(e) = started {
            log::warn!("manager server: no thread for a new connection: {e}");
        }
    }
    Ok(())
}

struct Shared {
    store: Store,
    stop: AtomicBool,
    sessions: AtomicU64,
}

/// One connection's transport.
enum End {
    Socket(Channel),
    Shm(Connection<Vec<u8>>),
}

impl End {
    fn recv(&mut self) -> Option<Vec<u8>> {
        match self {
            End::Socket(c) => {
                // A client in a loop sends its next request within
                // microseconds: catch it awake.
                let _ = sys::poll_spin(&[c.stream_fd()], Some(SOCKET_SPIN), SOCKET_SPIN);
                c.recv_bytes().ok()
            }
            End::Shm(c) => c.recv_bytes().ok(),
        }
    }

    /// Sends a reply; one too large for the connection's frames is
    /// replaced by an error reply, so the client hears why.
    fn send(&mut self, bytes: &[u8]) -> bool {
        match self {
            End::Socket(c) => match c.send_bytes(bytes) {
                Ok(()) => true,
                Err(e) if e.is_misuse() => {
                    let why = format!(
                        "the reply ({} bytes) is larger than the connection's frame limit \
                         ({} bytes)",
                        bytes.len(),
                        c.max_frame_len()
                    );
                    c.send_bytes(&encode(&Reply::Failed(Failure::Misuse(why))))
                        .is_ok()
                }
                Err(_) => false,
            },
            End::Shm(c) => c.send_bytes(bytes).is_ok(),
        }
    }

    /// A descriptor that polls readable (socket) or hung up (pipe) once
    /// the client is gone, while it waits for an answer.
    fn probe(&self) -> Option<OwnedFd> {
        let fd: BorrowedFd<'_> = match self {
            End::Socket(c) => c.stream_fd(),
            End::Shm(c) => c.hangup_fd()?,
        };
        fd.try_clone_to_owned().ok()
    }
}

fn gone(probe: &Option<OwnedFd>) -> bool {
    match probe {
        None => false,
        // While a client waits for its answer it sends nothing: anything
        // to read is its end-of-file (or garbage from a broken client).
        Some(fd) => sys::poll(&[fd.as_fd()], Some(Duration::ZERO)).map_or(true, |r| r[0]),
    }
}

fn serve_connection(shared: &Shared, auth: &Authenticator, stream: Stream) {
    let channel = match auth.authenticate(stream) {
        Ok(c) => c,
        Err(e) => {
            log::info!("manager server: refused a connection: {e}");
            return;
        }
    };
    let mut end = End::Socket(channel);
    let mut first = true;
    loop {
        let probe = end.probe();
        let check = || gone(&probe);
        let mut session = Session {
            id: shared.sessions.fetch_add(1, Ordering::Relaxed),
            held: Vec::new(),
            gone: &check,
        };
        match serve_requests(shared, &mut end, &mut session, first) {
            Some(upgraded) => end = upgraded,
            None => return,
        }
        first = false;
    }
}

/// Serves requests until the client leaves (`None`) or moves to a
/// shared-memory pipe (the new transport).
fn serve_requests(
    shared: &Shared,
    end: &mut End,
    session: &mut Session<'_>,
    mut first: bool,
) -> Option<End> {
    loop {
        let bytes = end.recv()?;
        let request = match wire::decode_plain::<Request>(&bytes) {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the manager could not decode a request: {e}");
                if !end.send(&encode(&Reply::Failed(Failure::Misuse(why)))) {
                    return None;
                }
                continue;
            }
        };
        let (reply, requeue) = match request {
            Request::Upgrade { end: pipe_end } => {
                if !first {
                    let why = "a connection moves to shared memory first or never".into();
                    (Reply::Failed(Failure::Misuse(why)), None)
                } else {
                    return upgrade(end, &pipe_end.0);
                }
            }
            Request::Shutdown => {
                shared.stop.store(true, Ordering::Release);
                end.send(&encode(&Reply::Done));
                return None;
            }
            Request::Create { spec, name } => (shared.store.create(spec, name), None),
            Request::Op { id, op } => {
                let is_get = matches!(op, Op::QueueGet(_));
                let reply = ops::apply(&shared.store, session, id, op);
                (reply, is_get.then_some(id))
            }
        };
        first = false;
        if !end.send(&encode(&reply)) {
            // An item taken for a client that is gone goes back first in line.
            if let (Some(id), Reply::Item(Some(item))) = (requeue, reply) {
                shared.store.requeue(id, item);
            }
            return None;
        }
    }
}

/// Receives the pipe end whose encoding is `encoded` (its descriptors come
/// next on the socket), answers on the socket, and returns the pipe.
fn upgrade(end: &mut End, encoded: &[u8]) -> Option<End> {
    let End::Socket(channel) = end else {
        return None;
    };
    let fd = channel.stream_fd();
    let ready = sys::poll(&[fd], Some(Duration::from_secs(5))).ok()?;
    if !ready[0] {
        return None;
    }
    let mut byte = [0u8; 1];
    let got = sys::socket::recv_msg(fd, &mut byte, 8, false).ok()?;
    if got.len != 1 || got.truncated {
        return None;
    }
    let pipe = match wire::decode::<Connection<Vec<u8>>>(encoded, got.fds) {
        Ok(p) => p,
        Err(e) => {
            let why = format!("the manager could not open the client's pipe: {e}");
            channel
                .send_bytes(&encode(&Reply::Failed(Failure::Misuse(why))))
                .ok()?;
            return None;
        }
    };
    channel.send_bytes(&encode(&Reply::Done)).ok()?;
    Some(End::Shm(pipe))
}

fn encode(reply: &Reply) -> Vec<u8> {
    postcard::to_allocvec(reply).unwrap_or_else(|e| {
        let why = format!("the manager could not encode its reply: {e}");
        postcard::to_allocvec(&Reply::Failed(Failure::Misuse(why))).unwrap_or_default()
    })
}
