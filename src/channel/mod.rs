//! Typed messages between processes: [`Pipe`] / [`Connection`] and the
//! queues ([`Queue`], [`SimpleQueue`], [`JoinableQueue`]).
//!
//! Both are built on one shared-memory ring (`ring/`; design notes in
//! `channel/README.md`): messages are encoded with serde (on the stack when
//! they take at most 512 bytes; a larger value may see its `Serialize` run
//! twice, the first pass abandoned at 512 bytes) and copied into a memfd
//! mapping shared by every process that holds the channel, under a
//! robust process-shared lock per side, and a waiting process spins briefly
//! and then sleeps in `poll` on an eventfd doorbell that the other side
//! rings only when someone sleeps. A message that carries OS handles, or is
//! too large for the ring, goes through a Unix socket beside the ring (the
//! handles as `SCM_RIGHTS`, a large body as a sealed memfd), with a small
//! carrier record in the ring keeping its place in the order.

mod lane;
mod pipe;
mod queue;
mod ring;
mod wait;
mod wrappers;

pub use pipe::{Connection, Never, Pipe};
pub use queue::Queue;
pub use wrappers::{JoinableQueue, SimpleQueue};

use crate::error::{Error, Fault};
use crate::sys::eventfd;
use crate::wire::WireError;
use lane::Lane;
use ring::Ring;

fn new_lane(ring: Ring) -> Result<Lane, Error> {
    let bell = || eventfd::semaphore().map_err(|e| Error::io("channel doorbell", e));
    Ok(Lane {
        ring,
        data_bell: bell()?,
        space_bell: bell()?,
    })
}

fn fault_of(e: WireError) -> Fault {
    match e {
        WireError::Io(e) => Fault::broken(e.to_string()),
        other => Fault::codec(other.to_string()),
    }
}

#[cfg(test)]
mod test;
