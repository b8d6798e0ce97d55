//! Anonymous shared memory: sealed memfds and their read-only mappings.
//!
//! A payload too large for one control message is written into a memfd,
//! sealed against shrinking, growing and writing, and sent as a descriptor.
//! The receiver checks the seals before it maps the file, so the sender
//! cannot truncate it under the mapping (which would raise `SIGBUS`).

use super::cvt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Creates a sealed memfd holding exactly `parts` concatenated.
pub(crate) fn sealed_with(parts: &[&[u8]]) -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string; on success the
    // returned descriptor is fresh and owned by nobody else.
    let fd = unsafe {
        let fd = cvt(libc::memfd_create(
            c"multiproc-payload".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        ))?;
        OwnedFd::from_raw_fd(fd)
    };
    let mut file = std::fs::File::from(fd);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    file.set_len(total as u64)?;
    {
        use std::io::Write;
        for p in parts {
            file.write_all(p)?;
        }
    }
    let fd: OwnedFd = file.into();
    // SAFETY: F_ADD_SEALS on our own memfd only changes its seal set.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, REQUIRED_SEALS) })?;
    Ok(fd)
}

/// A read-only mapping of a sealed memfd, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone, so sharing
// or sending it between threads is like sharing a `&[u8]` / moving a `Vec`.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`: only shared reads happen through `&Mapping`.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `fd` read-only after checking that it is sealed against any
    /// change and holds at least `min_len` bytes.
    pub(crate) fn of_sealed(fd: BorrowedFd<'_>, min_len: usize) -> io::Result<Mapping> {
        // SAFETY: F_GET_SEALS reads the seal set; a descriptor that is not a
        // memfd answers EINVAL, which we report.
        let seals =
            cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) }).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("payload descriptor is not a memfd: {e}"),
                )
            })?;
        if seals & REQUIRED_SEALS != REQUIRED_SEALS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "payload memfd is not sealed",
            ));
        }
        // SAFETY: an all-zero stat is valid storage for fstat to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is valid writable storage for the call.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        let len = st.st_size as usize;
        if len < min_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("payload memfd holds {len} bytes, the frame says {min_len}"),
            ));
        }
        if len == 0 {
            return Ok(Mapping {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: [1] we ask the kernel for a fresh read-only shared mapping
        // of `len` bytes, exactly the file's sealed size; [2] the seals
        // forbid shrinking, so no access inside the mapping can fault.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    /// The mapped bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is a live read-only mapping of `len` bytes that
        // nobody can change (write-sealed) or shrink (shrink-sealed), valid
        // until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: `ptr`/`len` describe a mapping we own and nobody
            // borrows any more (borrows are tied to `&self`).
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}
