//! [`SharedMemory`]: bytes mapped by several processes at once.
//!
//! # How a segment lives and dies
//! The memory is always a memfd (an anonymous file the kernel frees when
//! its last descriptor and mapping are gone), sealed against shrinking and
//! growing, mapped shared. Nothing is ever created in `/dev/shm`, so there
//! is nothing to unlink after a crash: a process killed by `SIGKILL` drops
//! its descriptors and mappings like any other, and the kernel frees the
//! memory after the last of them.
//!
//! An anonymous segment ([`SharedMemory::new`]) is just that memfd; it
//! travels to other processes as a descriptor (in a child's argument, or
//! through a [`Pipe`](crate::Pipe) or a [`Queue`](crate::Queue)).
//!
//! A named segment ([`SharedMemory::create`]) adds a name that unrelated
//! processes can [`open`](SharedMemory::open). The name is an address in
//! Linux's *abstract* Unix-socket namespace, `\0multiproc.shm.<uid>.<name>`,
//! on which a small *keeper* process listens (`keeper.rs`; `owner.rs` is
//! the owners' side). An abstract name is no file: it exists exactly as
//! long as the socket bound to it, so it cannot leak either. One keeper
//! per named segment (about 1 MiB of memory); anonymous segments need
//! none. The keeper holds the memfd and one *owner link*
//! per owner (the creator, each opener); copies of a handle share their
//! link. When every copy of every link is closed — handles dropped, or
//! their processes gone, `SIGKILL` included — the keeper exits, and the
//! name goes with it. The keeper is exec'd from the creator's own program
//! and detached from it (not its child, its own session), so the creator's
//! death ends nothing but its link. The keeper notices a hang-up within
//! moments (well under a millisecond on an idle machine), so a name is
//! free again shortly after its last owner is gone; [`unlink`] frees it
//! synchronously.
//!
//! [`unlink`]: SharedMemory::unlink
//!
//! Compared with Python's `multiprocessing.shared_memory` (a file in
//! `/dev/shm`, removed by `unlink()` or, after a crash, by a resource
//! tracker that itself may be killed): the memory cannot outlive its users
//! and the name cannot outlive its owners, whatever kills them.
//!
//! Names are per network namespace (as abstract sockets are) and per user:
//! the keeper refuses connections from other users, and an opener refuses a
//! keeper of another user.

pub(crate) mod keeper;
mod owner;
mod transport;

use crate::error::{Error, Kind};
use crate::sys::shm::Region;
use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

/// Longest name [`SharedMemory::create`] accepts.
const MAX_NAME: usize = 64;

/// A block of memory shared between processes: anonymous, or named so that
/// unrelated processes can [`open`](SharedMemory::open) it.
///
/// A handle travels to another process inside any serde value: as (part
/// of) a child's argument or result, or through a
/// [`Pipe`](crate::Pipe) or a [`Queue`](crate::Queue). The copy maps the
/// same memory (at its own address). Clones and copies are owners alike.
///
/// # Lifetime
/// The memory is a memfd: the kernel frees it with its last handle or
/// mapping, in whatever way the processes holding them ended (`SIGKILL`
/// included). Nothing is created in `/dev/shm`, so nothing can be left
/// there.
///
/// A name is an address in Linux's abstract Unix-socket namespace
/// (`multiproc.shm.<uid>.<name>`, no file either) on which a small keeper
/// process, started by [`create`](SharedMemory::create), hands the memfd
/// to [`open`](SharedMemory::open)ers. Each owner (the creator, each
/// opener, with the copies and clones of its handle) holds a connection to
/// the keeper; when the last one closes, dropped or killed, the keeper
/// exits and the name vanishes with its socket. [`unlink`] removes the name
/// earlier, as in Python.
///
/// [`unlink`]: SharedMemory::unlink
///
/// The bytes are read and written with [`read`](SharedMemory::read) and
/// [`write`](SharedMemory::write) (bounds-checked copies), or through
/// [`as_ptr`](SharedMemory::as_ptr) and the `unsafe` slices. Nothing orders
/// the accesses of different processes: writers of the same bytes need a
/// lock of their own (or atomics placed in the memory).
///
/// # Examples
/// ```
/// use multiproc::{Process, SharedMemory};
///
/// fn fill(shm: SharedMemory) {
///     shm.write(0, b"written by the child").unwrap();
/// }
///
/// # multiproc::init();
/// let shm = SharedMemory::new(4096).unwrap();
/// Process::spawn(fill, shm.clone()).unwrap().join().unwrap();
/// let mut buf = [0u8; 20];
/// shm.read(0, &mut buf).unwrap();
/// assert_eq!(&buf, b"written by the child");
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    region: Region,
    named: Option<Named>,
}

#[derive(Debug)]
struct Named {
    name: String,
    /// This owner's link to the keeper.
    link: OwnedFd,
    keeper: u32,
}

impl SharedMemory {
    /// An anonymous segment of `size` zero bytes.
    ///
    /// Other processes get it only as a handle passed to them (it has no
    /// name); it is freed when the last handle and mapping are gone.
    ///
    /// # Errors
    /// `size == 0` or larger than `isize::MAX` ([`Error::is_misuse`]); the
    /// OS refused the memory ([`Error::io_error`]).
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(100).unwrap();
    /// assert_eq!(shm.len(), 100);
    /// assert_eq!(shm.name(), None);
    /// let mut buf = [1u8; 100];
    /// shm.read(0, &mut buf).unwrap();
    /// assert_eq!(buf, [0u8; 100]);
    /// ```
    pub fn new(size: usize) -> Result<SharedMemory, Error> {
        check_size(size)?;
        let region = Region::create(c"multiproc-shm", size)
            .map_err(|e| Error::io("creating shared memory", e))?;
        Ok(SharedMemory::from_parts(region, None))
    }

    /// A new segment of `size` zero bytes named `name`, which any process
    /// of the same user (in the same network namespace) can
    /// [`open`](SharedMemory::open) while an owner holds it.
    ///
    /// Starts the segment's keeper, a small process exec'd from this
    /// program (a few milliseconds), which lives until the last owner is
    /// gone.
    ///
    /// A name is 1 to 64 characters among `A-Z a-z 0-9 . _ -`. When the
    /// last owner lets go, the keeper notices and frees the name within
    /// moments, not at once: to reuse a name at once,
    /// [`unlink`](SharedMemory::unlink) it first (which returns once the
    /// name is free).
    ///
    /// # Errors
    /// - a bad name or size ([`Error::is_misuse`]);
    /// - the name is taken: [`Error::io_error`] of kind
    ///   [`AlreadyExists`](std::io::ErrorKind::AlreadyExists);
    /// - the keeper could not be started, or the OS refused the memory
    ///   ([`Error::io_error`]);
    /// - multiproc was not initialized ([`Error::is_not_initialized`]): the
    ///   keeper is a copy of this program.
    ///
    /// # Examples
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// let name = format!("doc-create-{}", std::process::id());
    /// let shm = SharedMemory::create(&name, 64).unwrap();
    /// assert_eq!(shm.name(), Some(name.as_str()));
    /// let err = SharedMemory::create(&name, 64).unwrap_err();
    /// assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::AlreadyExists);
    /// assert!(SharedMemory::create("no/slashes", 64).unwrap_err().is_misuse());
    /// ```
    pub fn create(name: &str, size: usize) -> Result<SharedMemory, Error> {
        check_name(name)?;
        check_size(size)?;
        if !crate::process::ready() {
            return Err(Error::new(Kind::NotInitialized));
        }
        let memfd_name = CString::new(format!("multiproc-shm:{name}"))
            .map_err(|_| Error::misuse("a shared-memory name holds no NUL"))?;
        let region = Region::create(&memfd_name, size)
            .map_err(|e| Error::io("creating shared memory", e))?;
        let (link, keeper) = owner::launch(name, region.fd().as_fd())
            .map_err(|e| Error::io("creating named shared memory", e))?;
        let named = Named {
            name: name.to_owned(),
            link,
            keeper,
        };
        Ok(SharedMemory::from_parts(region, Some(named)))
    }

    /// Opens the segment named `name`, created by any process of the same
    /// user; this handle is one more owner of it.
    ///
    /// # Errors
    /// - a bad name ([`Error::is_misuse`]);
    /// - no such segment: [`Error::io_error`] of kind
    ///   [`NotFound`](std::io::ErrorKind::NotFound) (never created,
    ///   [unlinked](SharedMemory::unlink), or every owner is gone);
    /// - the keeper did not answer within 5 seconds (kind `TimedOut`), it
    ///   belongs to another user (`PermissionDenied`), or it has 4096
    ///   owners already.
    ///
    /// # Examples
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// let name = format!("doc-open-{}", std::process::id());
    /// let created = SharedMemory::create(&name, 16).unwrap();
    /// created.write(0, b"hello").unwrap();
    /// let opened = SharedMemory::open(&name).unwrap();
    /// assert_eq!(opened.len(), 16);
    /// let mut buf = [0u8; 5];
    /// opened.read(0, &mut buf).unwrap();
    /// assert_eq!(&buf, b"hello");
    /// drop((created, opened)); // the last owners: the name goes with them
    /// # let t = std::time::Instant::now();
    /// # while SharedMemory::open(&name).is_ok() && t.elapsed().as_secs() < 10 {
    /// #     std::thread::sleep(std::time::Duration::from_millis(10));
    /// # }
    /// let err = SharedMemory::open(&name).unwrap_err();
    /// assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn open(name: &str) -> Result<SharedMemory, Error> {
        check_name(name)?;
        let opened = owner::open(name).map_err(|e| Error::io("opening named shared memory", e))?;
        let len = usize::try_from(opened.len).map_err(|_| {
            Error::io(
                "opening named shared memory",
                std::io::Error::new(std::io::ErrorKind::InvalidData, "segment too large"),
            )
        })?;
        let region = Region::open(opened.memfd, len)
            .map_err(|e| Error::io("mapping named shared memory", e))?;
        let named = Named {
            name: name.to_owned(),
            link: opened.link,
            keeper: opened.keeper,
        };
        Ok(SharedMemory::from_parts(region, Some(named)))
    }

    fn from_parts(region: Region, named: Option<Named>) -> SharedMemory {
        SharedMemory {
            inner: Arc::new(Inner { region, named }),
        }
    }

    /// The segment's name; `None` for an anonymous one. An
    /// [unlinked](SharedMemory::unlink) segment keeps its name here.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-name-{}", std::process::id());
    /// let shm = multiproc::SharedMemory::create(&name, 1).unwrap();
    /// assert_eq!(shm.name(), Some(name.as_str()));
    /// assert_eq!(multiproc::SharedMemory::new(1).unwrap().name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.inner.named.as_ref().map(|n| n.name.as_str())
    }

    /// The segment's size in bytes (fixed at creation: it can neither
    /// shrink nor grow).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(multiproc::SharedMemory::new(12).unwrap().len(), 12);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.region.len()
    }

    /// Always `false`: a segment holds at least one byte. (For the
    /// `len`/`is_empty` pair.)
    ///
    /// # Examples
    /// ```
    /// assert!(!multiproc::SharedMemory::new(1).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first byte of this process's mapping (page-aligned, valid for
    /// [`len`](SharedMemory::len) bytes while this handle or a clone
    /// lives). Other processes map the segment at other addresses: store
    /// offsets in it, not pointers.
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(8).unwrap();
    /// let word = shm.as_ptr().cast::<std::sync::atomic::AtomicU64>();
    /// // SAFETY: the mapping is page-aligned, 8 bytes long, and lives as long as `shm`.
    /// let word = unsafe { &*word };
    /// word.fetch_add(5, std::sync::atomic::Ordering::SeqCst);
    /// let mut buf = [0u8; 8];
    /// shm.read(0, &mut buf).unwrap();
    /// assert_eq!(u64::from_ne_bytes(buf), 5);
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.region.ptr()
    }

    /// The whole segment as a byte slice.
    ///
    /// # Safety
    /// While the slice lives, nobody may write the segment: not this
    /// process (through [`as_mut_slice`](SharedMemory::as_mut_slice),
    /// [`write`](SharedMemory::write) or [`as_ptr`](SharedMemory::as_ptr))
    /// and no other process.
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(3).unwrap();
    /// shm.write(0, b"abc").unwrap();
    /// // SAFETY: this process is the only one that has the segment, and does
    /// // not write it while the slice lives.
    /// assert_eq!(unsafe { shm.as_slice() }, b"abc");
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes that live as long as
        // `self`; the caller promises that nobody writes them meanwhile.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// The whole segment as a mutable byte slice.
    ///
    /// # Safety
    /// While the slice lives, nobody else may read or write the segment:
    /// no other slice or [`read`](SharedMemory::read) /
    /// [`write`](SharedMemory::write) of this process (clones included), and
    /// no other process.
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(3).unwrap();
    /// // SAFETY: nobody else has the segment.
    /// unsafe { shm.as_mut_slice() }.copy_from_slice(b"xyz");
    /// let mut buf = [0u8; 3];
    /// shm.read(0, &mut buf).unwrap();
    /// assert_eq!(&buf, b"xyz");
    /// ```
    // Shared memory is mutable through `&self` by nature; the exclusivity a
    // `&mut` needs is the caller's promise (# Safety).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [u8] {
        // SAFETY: the mapping is `len` writable bytes that live as long as
        // `self`; the caller promises that nobody else accesses them
        // meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len()) }
    }

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// Bytes that another process writes meanwhile may be copied half old,
    /// half new (a torn read, as in Python): order the accesses with a
    /// lock when that matters. It is memory-safe regardless: every byte
    /// value is a valid `u8`.
    ///
    /// # Errors
    /// The range does not lie inside the segment ([`Error::is_misuse`]).
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(8).unwrap();
    /// shm.write(4, &[1, 2, 3, 4]).unwrap();
    /// let mut buf = [0u8; 2];
    /// shm.read(5, &mut buf).unwrap();
    /// assert_eq!(buf, [2, 3]);
    /// assert!(shm.read(7, &mut buf).unwrap_err().is_misuse());
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        self.check_range(offset, buf.len())?;
        // SAFETY: [1] the range lies inside the mapping (checked), which
        // lives as long as `self`; [2] `ptr::copy` allows `buf` to overlap
        // the segment; [3] concurrent writers can only make the copied
        // bytes a mix of old and new values, all valid `u8`s.
        unsafe {
            std::ptr::copy(self.as_ptr().add(offset), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// Copies `bytes` into the segment, starting at `offset`.
    ///
    /// Other processes that read or write these bytes meanwhile may see a
    /// mix of old and new bytes (as in Python); memory-safe regardless.
    ///
    /// # Errors
    /// The range does not lie inside the segment ([`Error::is_misuse`]).
    ///
    /// # Examples
    /// ```
    /// let shm = multiproc::SharedMemory::new(4).unwrap();
    /// shm.write(0, b"ab").unwrap();
    /// assert!(shm.write(3, b"cd").unwrap_err().is_misuse());
    /// ```
    pub fn write(&self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        self.check_range(offset, bytes.len())?;
        // SAFETY: as in `read`: the range lies inside the live mapping,
        // `ptr::copy` allows overlap, and a concurrent access sees bytes.
        unsafe {
            std::ptr::copy(bytes.as_ptr(), self.as_ptr().add(offset), bytes.len());
        }
        Ok(())
    }

    fn check_range(&self, offset: usize, n: usize) -> Result<(), Error> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len() => Ok(()),
            _ => Err(Error::misuse(format!(
                "bytes {offset}..{offset}+{n} lie outside a shared-memory segment of {} bytes",
                self.len()
            ))),
        }
    }

    /// Removes the name (Python's `unlink`): [`open`](SharedMemory::open)
    /// fails with `NotFound` once this returns, and the name may be
    /// [created](SharedMemory::create) afresh. Existing owners, in any
    /// process, keep the memory. Does nothing on an anonymous segment or
    /// one already unlinked.
    ///
    /// # Errors
    /// The keeper did not answer within 5 seconds ([`Error::io_error`]).
    ///
    /// # Examples
    /// ```
    /// use multiproc::SharedMemory;
    ///
    /// let name = format!("doc-unlink-{}", std::process::id());
    /// let shm = SharedMemory::create(&name, 8).unwrap();
    /// shm.unlink().unwrap();
    /// let err = SharedMemory::open(&name).unwrap_err();
    /// assert_eq!(err.io_error().unwrap().kind(), std::io::ErrorKind::NotFound);
    /// shm.write(0, b"still ok").unwrap();
    /// ```
    pub fn unlink(&self) -> Result<(), Error> {
        match &self.inner.named {
            None => Ok(()),
            Some(n) => owner::unlink(n.link.as_fd())
                .map_err(|e| Error::io("unlinking named shared memory", e)),
        }
    }

    /// The pid of the keeper process of a named segment (for tests).
    #[doc(hidden)]
    pub fn keeper_pid(&self) -> Option<u32> {
        self.inner.named.as_ref().map(|n| n.keeper)
    }

    /// The mapping behind this handle (for `Value` and `Array`).
    #[allow(dead_code)]
    pub(crate) fn region(&self) -> &Region {
        &self.inner.region
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let valid = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::misuse(format!(
            "invalid shared-memory name {name:?}: 1 to {MAX_NAME} characters among A-Z a-z 0-9 . _ -"
        )))
    }
}

fn check_size(size: usize) -> Result<(), Error> {
    if size == 0 || size > isize::MAX as usize {
        return Err(Error::misuse(format!(
            "invalid shared-memory size {size}: at least 1 byte, at most isize::MAX"
        )));
    }
    Ok(())
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.name())
            .field("len", &self.len())
            .field("keeper_pid", &self.keeper_pid())
            .finish()
    }
}

#[cfg(test)]
mod test;
