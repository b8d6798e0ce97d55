//! Typed messages between processes: [`Pipe`] / [`Connection`] and the
//! queues ([`Queue`], [`SimpleQueue`], [`JoinableQueue`]).
//!
//! Both are built on one shared-memory ring (`ring/`; design notes in
//! `channel/README.md`): messages are encoded with serde straight into a
//! memfd mapping shared by every process that holds the channel, under a
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
mod wrappers;

pub use pipe::{Connection, Never, Pipe};
pub use queue::Queue;
pub use wrappers::{JoinableQueue, SimpleQueue};

use crate::error::{Error, Fault};
use crate::sys::eventfd;
use crate::wire::{self, WireError};
use lane::Lane;
use ring::Ring;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeTuple};
use serde::{Deserializer, Serializer};
use std::os::fd::{BorrowedFd, OwnedFd};

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

/// How a channel handle travels: its descriptors through the handle table,
/// then one tag byte (a connection's side).
struct Handles;

impl Handles {
    fn serialize<S: Serializer>(fds: &[BorrowedFd<'_>], tag: u8, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(fds.len() + 1)?;
        for fd in fds {
            let index = wire::push_handle(*fd).map_err(S::Error::custom)?;
            t.serialize_element(&index)?;
        }
        t.serialize_element(&tag)?;
        t.end()
    }

    fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
        n: usize,
    ) -> Result<(Vec<OwnedFd>, u8), D::Error> {
        struct V(usize);
        impl<'de> Visitor<'de> for V {
            type Value = (Vec<OwnedFd>, u8);
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} handle indices and a tag", self.0)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut fds = Vec::with_capacity(self.0);
                for i in 0..self.0 {
                    let index: u32 = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                    fds.push(wire::take_handle(index).map_err(de::Error::custom)?);
                }
                let tag: u8 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(self.0, &self))?;
                Ok((fds, tag))
            }
        }
        d.deserialize_tuple(n + 1, V(n))
    }
}

#[cfg(test)]
mod test;
