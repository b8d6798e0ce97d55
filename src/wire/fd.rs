//! [`Fd`]: an owned file descriptor that travels to other processes.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// An owned file descriptor that can be sent to another process: pass it to
/// [`Process::spawn`](crate::Process::spawn) as (part of) the argument, or
/// return it from a child, and the other side receives a descriptor for the
/// same open file (sent with `SCM_RIGHTS`).
///
/// The sender keeps its own descriptor; the receiver gets a new one. This is
/// the mechanism every resource-owning type of multiproc (pipes, queues,
/// shared memory) uses to travel inside ordinary serde values.
///
/// Serializing an `Fd` with any serializer other than multiproc's (say
/// `serde_json`) is an error, not a silent integer.
///
/// # Examples
/// ```
/// use multiproc::{Fd, Process};
/// use std::io::{Read, Write};
///
/// fn write_hello(fd: Fd) -> () {
///     let mut file = std::fs::File::from(fd);
///     file.write_all(b"hello from the child").unwrap();
/// }
///
/// # multiproc::init();
/// let (mut reader, writer) = std::io::pipe().unwrap();
/// let mut child = Process::spawn(write_hello, Fd::new(writer)).unwrap();
/// child.join().unwrap();
/// let mut text = String::new();
/// reader.read_to_string(&mut text).unwrap();
/// assert_eq!(text, "hello from the child");
/// ```
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    /// Wraps anything that owns a descriptor: a `File`, a `PipeWriter`, a
    /// `UnixStream`, an `OwnedFd`...
    ///
    /// # Examples
    /// ```
    /// let (reader, _writer) = std::io::pipe().unwrap();
    /// let fd = multiproc::Fd::new(reader);
    /// # let _ = fd;
    /// ```
    pub fn new(owner: impl Into<OwnedFd>) -> Fd {
        Fd(owner.into())
    }

    /// Gives back the owned descriptor.
    pub fn into_owned_fd(self) -> OwnedFd {
        self.0
    }

    /// A new `Fd` for the same open file (`dup`, close-on-exec).
    ///
    /// # Errors
    /// The process is out of descriptors.
    pub fn try_clone(&self) -> std::io::Result<Fd> {
        crate::sys::dup_cloexec(self.0.as_fd()).map(Fd)
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd(fd)
    }
}

impl From<File> for Fd {
    fn from(file: File) -> Self {
        Fd(file.into())
    }
}

impl From<Fd> for OwnedFd {
    fn from(fd: Fd) -> Self {
        fd.0
    }
}

impl From<Fd> for File {
    fn from(fd: Fd) -> Self {
        File::from(fd.0)
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = super::push_handle(self.0.as_fd()).map_err(S::Error::custom)?;
        serializer.serialize_u32(index)
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)?;
        super::take_handle(index).map(Fd).map_err(D::Error::custom)
    }
}
