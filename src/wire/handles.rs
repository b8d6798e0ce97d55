//! The serde shape shared by every handle type that owns descriptors.

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{Error as _, SerializeTuple};
use serde::{Deserializer, Serializer};
use std::os::fd::{BorrowedFd, OwnedFd};

/// How a value that owns descriptors travels (a channel, a lock, a shared
/// memory segment): its descriptors through the handle table, then one tag
/// byte of its own meaning (a connection's side, an object's kind).
pub(crate) struct Handles;

impl Handles {
    pub(crate) fn serialize<S: Serializer>(
        fds: &[BorrowedFd<'_>],
        tag: u8,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(fds.len() + 1)?;
        for fd in fds {
            let index = super::push_handle(*fd).map_err(S::Error::custom)?;
            t.serialize_element(&index)?;
        }
        t.serialize_element(&tag)?;
        t.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
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
                    fds.push(super::take_handle(index).map_err(de::Error::custom)?);
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
