//! How a [`SharedMemory`] handle travels to another process: its memfd
//! (and owner link) through the handle table, with its length, name and
//! keeper.

use super::{Named, SharedMemory, check_name};
use crate::sys::shm::Region;
use crate::wire::handles::Handles;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The descriptors of a handle being sent.
pub(super) struct FdsOut<'a, const N: usize>(pub(super) [BorrowedFd<'a>; N]);

/// The descriptors of a handle being received.
struct FdsIn<const N: usize>([OwnedFd; N]);

impl<const N: usize> Serialize for FdsOut<'_, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Handles::serialize(&self.0, 0, s)
    }
}

impl<'de, const N: usize> Deserialize<'de> for FdsIn<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (fds, _) = Handles::deserialize(d, N)?;
        <[OwnedFd; N]>::try_from(fds)
            .map(FdsIn)
            .map_err(|_| D::Error::custom("shared-memory handles"))
    }
}

/// How a handle travels: the memfd (and the owner link), the length, and
/// the name and keeper of a named segment. Same shape as [`WireIn`].
#[derive(Serialize)]
pub(super) enum WireOut<'a> {
    Anonymous(FdsOut<'a, 1>, u64),
    Named(FdsOut<'a, 2>, u64, &'a str, u32),
}

#[derive(Deserialize)]
enum WireIn {
    Anonymous(FdsIn<1>, u64),
    Named(FdsIn<2>, u64, String, u32),
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let memfd = self.inner.region.as_fd();
        let len = self.len() as u64;
        match &self.inner.named {
            None => WireOut::Anonymous(FdsOut([memfd]), len),
            Some(n) => WireOut::Named(FdsOut([memfd, n.link.as_fd()]), len, &n.name, n.keeper),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = |fd: OwnedFd, len: u64| {
            usize::try_from(len)
                .map_err(|_| D::Error::custom("shared-memory segment too large"))
                .and_then(|len| Region::open(fd, len).map_err(D::Error::custom))
        };
        match WireIn::deserialize(d)? {
            WireIn::Anonymous(FdsIn([memfd]), len) => {
                Ok(SharedMemory::from_parts(map(memfd, len)?, None))
            }
            WireIn::Named(FdsIn([memfd, link]), len, name, keeper) => {
                check_name(&name).map_err(D::Error::custom)?;
                let region = map(memfd, len)?;
                let named = Named { name, link, keeper };
                Ok(SharedMemory::from_parts(region, Some(named)))
            }
        }
    }
}
