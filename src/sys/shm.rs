//! Read-write shared mappings of memfds: the memory rings and locks live in.
//!
//! A region is created at its final size, which is then sealed against
//! shrinking and growing: a process that receives the descriptor checks the
//! seals before mapping it, so no peer can truncate the file under a mapping
//! (which would turn the next access into `SIGBUS`). Pages are only
//! allocated when first touched, so a large region that is mostly unused
//! costs address space, not memory.

use super::cvt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const SIZE_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

/// A read-write `MAP_SHARED` mapping of a size-sealed memfd.
#[derive(Debug)]
pub(crate) struct Region {
    ptr: *mut u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping is plain memory owned by this value; what is stored in
// it is synchronised by its users (atomics and process-shared locks).
unsafe impl Send for Region {}
// SAFETY: see `Send`: `Region` itself hands out only raw pointers.
unsafe impl Sync for Region {}

impl Region {
    /// Creates a zero-filled region of `len` bytes named `name` (the name is
    /// only shown in `/proc/<pid>/fd`).
    pub(crate) fn create(name: &std::ffi::CStr, len: usize) -> io::Result<Region> {
        // SAFETY: `name` is NUL-terminated; on success the descriptor is
        // fresh and owned by nobody else.
        let fd = unsafe {
            let fd = cvt(libc::memfd_create(
                name.as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            ))?;
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: ftruncate on our own memfd.
        cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })?;
        // SAFETY: F_ADD_SEALS on our own memfd only changes its seal set.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, SIZE_SEALS) })?;
        Region::map(fd, len)
    }

    /// Maps a region received from another process, after checking that its
    /// size is sealed and is exactly `len`.
    pub(crate) fn open(fd: OwnedFd, len: usize) -> io::Result<Region> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        // SAFETY: F_GET_SEALS only reads the seal set.
        let seals = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
            .map_err(|e| invalid(format!("not a shared-memory region: {e}")))?;
        if seals & SIZE_SEALS != SIZE_SEALS {
            return Err(invalid("shared-memory region is not size-sealed".into()));
        }
        let size = std::fs::File::from(fd.try_clone()?).metadata()?.len();
        if size != len as u64 {
            return Err(invalid(format!(
                "shared-memory region holds {size} bytes, expected {len}"
            )));
        }
        Region::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of `len` bytes of a file that holds
        // exactly `len` bytes and cannot shrink (sealed), at an address the
        // kernel chooses; nothing else refers to that range yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region {
            ptr: ptr.cast(),
            len,
            fd,
        })
    }

    /// The first byte of the mapping (page-aligned).
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// The memfd behind the mapping.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// Gives the pages of `[ptr, ptr + len)` of a shared mapping back to the
/// system (`MADV_REMOVE`); they read as zeros afterwards.
///
/// # Safety
/// The range must lie in a shared file mapping, be page-aligned, and hold
/// nothing anyone still reads.
pub(crate) unsafe fn discard(ptr: *mut u8, len: usize) {
    // SAFETY: per the contract; a failure only leaves the pages in place.
    unsafe {
        libc::madvise(ptr.cast(), len, libc::MADV_REMOVE);
    }
}

impl AsFd for Region {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `map` created; every borrow of it
        // ends with `self`.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

/// Asks the kernel to back `[ptr, ptr + len)` of our own private memory
/// with (huge, where it can) pages now, in one call, rather than one page
/// fault per 4 KiB page while a large message is copied in. Only a hint:
/// failures are ignored.
///
/// # Safety
/// The range must be memory this process owns and may write (for example
/// a `Vec`'s spare capacity); its contents are unchanged or zero.
pub(crate) unsafe fn prefault(ptr: *mut u8, len: usize) {
    const PAGE: usize = 4096;
    const HUGE_WORTH_IT: usize = 8 << 20;
    let start = (ptr as usize).next_multiple_of(PAGE);
    let end = (ptr as usize + len) / PAGE * PAGE;
    if end <= start {
        return;
    }
    // SAFETY: per the contract, the page-aligned range lies inside memory
    // we own; both advices only change how it is backed.
    unsafe {
        // Huge pages make the population several times cheaper (measured:
        // 64 MiB in 8 ms instead of 20 ms), at the price of a possible
        // compaction stall the first time: only for large buffers.
        if end - start >= HUGE_WORTH_IT {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_POPULATE_WRITE,
        );
    }
}
