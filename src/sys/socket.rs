//! `SOCK_SEQPACKET` socket pairs and message passing with `SCM_RIGHTS`.
//!
//! Sequenced packets keep message boundaries (one `sendmsg` is one
//! `recvmsg`), report a closed peer as end-of-file, and carry file
//! descriptors: the whole control channel between a parent, the fork server
//! and a child is built on them.

use super::cvt;
use std::io::{self, IoSlice};
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// A connected pair of `SOCK_SEQPACKET` Unix sockets, both close-on-exec.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for socketpair to fill; on
    // success both are fresh descriptors owned by nobody else.
    unsafe {
        cvt(libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        ))?;
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

fn cmsg_space(nfds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((nfds * mem::size_of::<RawFd>()) as u32) as usize }
}

/// Sends one message made of `parts`, with `fds` attached, never raising
/// `SIGPIPE` (a closed peer is `EPIPE`). Blocks while the peer's buffer is full.
/// With `nonblocking`, a full peer buffer is `WouldBlock` instead of a wait.
pub(crate) fn send_msg(
    sock: BorrowedFd<'_>,
    parts: &[&[u8]],
    fds: &[RawFd],
    nonblocking: bool,
) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message can carry at most {MAX_FDS} descriptors, not {}",
                fds.len()
            ),
        ));
    }
    let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut cbuf = vec![0u64; cmsg_space(fds.len()).div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid "no name, no data" header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len();
    if !fds.is_empty() {
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = cmsg_space(fds.len());
        // SAFETY: [1] msg_control points at a buffer of msg_controllen bytes,
        // aligned for cmsghdr, so CMSG_FIRSTHDR returns a valid header pointer
        // inside it; [2] CMSG_DATA of that header has room for `fds.len()`
        // descriptors because the buffer is CMSG_SPACE(fds.len() * 4) long.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of_val(fds) as u32) as usize;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr(),
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
                fds.len(),
            );
        }
    }
    let total: usize = parts.iter().map(|p| p.len()).sum();
    loop {
        let flags = libc::MSG_NOSIGNAL | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `msg` points at live iovecs and control data for the call.
        let ret = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ret as usize != total {
            // SEQPACKET sends are atomic; a short count would be a kernel bug.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short sendmsg on a seqpacket socket",
            ));
        }
        return Ok(());
    }
}

/// What one [`recv_msg`] brought.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes of the message (0 with no descriptors: the peer closed).
    pub(crate) len: usize,
    /// Descriptors attached to the message, close-on-exec.
    pub(crate) fds: Vec<OwnedFd>,
    /// The message was longer than the buffer, or carried more descriptors
    /// than fit: it is unusable.
    pub(crate) truncated: bool,
}

/// Receives one message into `buf` with up to `max_fds` descriptors.
///
/// With `nonblocking`, returns `WouldBlock` when no message is waiting.
/// Every received descriptor is owned by the result, so none leaks even when
/// the message is rejected.
pub(crate) fn recv_msg(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
    nonblocking: bool,
) -> io::Result<Received> {
    let max_fds = max_fds.min(MAX_FDS);
    let mut cbuf = vec![0u64; cmsg_space(max_fds).div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid starting header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len() * 8;
    let flags = libc::MSG_CMSG_CLOEXEC | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    let n = loop {
        // SAFETY: `msg` points at `buf` and `cbuf`, both live and writable
        // for their stated lengths during the call.
        let ret = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        break ret as usize;
    };
    let mut fds = Vec::new();
    // SAFETY: [1] the kernel filled msg_control/msg_controllen, so walking it
    // with CMSG_FIRSTHDR/CMSG_NXTHDR stays inside `cbuf`; [2] an SCM_RIGHTS
    // payload is an array of descriptors now installed in our table and
    // owned by us alone, which we wrap at once so that none can leak.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                let count = bytes / mem::size_of::<RawFd>();
                for i in 0..count {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let truncated = msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0;
    Ok(Received {
        len: n,
        fds,
        truncated,
    })
}

/// Asks for a send buffer as large as the system allows an unprivileged
/// process (`net.core.wmem_max`; the request is clamped to it): how many
/// messages may wait in a socket before a non-blocking send would block.
/// Only a hint: failures are ignored.
pub(crate) fn grow_send_buffer(sock: BorrowedFd<'_>) {
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt reads one c_int from a live local.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The address of the abstract-namespace name `name` (no leading NUL: it
/// is added here) and its length.
fn abstract_addr(name: &[u8]) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: an all-zero sockaddr_un is a valid (empty) address.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if name.is_empty() || name.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "abstract socket name is empty or too long",
        ));
    }
    // sun_path[0] stays NUL: that is what makes the name abstract.
    for (dst, src) in addr.sun_path[1..].iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    let len = mem::offset_of!(libc::sockaddr_un, sun_path) + 1 + name.len();
    Ok((addr, len as libc::socklen_t))
}

/// A fresh non-blocking, close-on-exec `SOCK_SEQPACKET` Unix socket.
fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket takes no pointers; on success the descriptor is fresh
    // and owned by nobody else.
    unsafe {
        let fd = cvt(libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A non-blocking `SOCK_SEQPACKET` socket listening on the abstract-namespace
/// address `name` (Linux: no file; the name vanishes with the socket).
/// A name already bound is `AddrInUse`.
pub(crate) fn listen_abstract(name: &[u8], backlog: i32) -> io::Result<OwnedFd> {
    let (addr, len) = abstract_addr(name)?;
    let sock = seqpacket_socket()?;
    // SAFETY: `addr` is a valid sockaddr_un of which the first `len` bytes
    // are the address, alive for the call.
    cvt(unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    })?;
    // SAFETY: listen takes no pointers.
    cvt(unsafe { libc::listen(sock.as_raw_fd(), backlog) })?;
    Ok(sock)
}

/// Connects a new non-blocking `SOCK_SEQPACKET` socket to the abstract
/// address `name`. Nobody listening is `ConnectionRefused`; a listener
/// whose backlog is full is `WouldBlock` (try again later).
pub(crate) fn connect_abstract(name: &[u8]) -> io::Result<OwnedFd> {
    let (addr, len) = abstract_addr(name)?;
    let sock = seqpacket_socket()?;
    loop {
        // SAFETY: as in `listen_abstract`.
        let ret = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other.map(|_| sock),
        }
    }
}

/// Accepts one connection of a listening socket, as a non-blocking,
/// close-on-exec socket. No connection waiting is `WouldBlock`.
pub(crate) fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: null address pointers ask for no peer address; on success
        // the descriptor is fresh and owned by nobody else.
        let ret = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // SAFETY: see above.
            other => return other.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
        }
    }
}

/// `(pid, uid)` of the process at the other end of a connected Unix socket,
/// as the kernel recorded them when it connected (or called `listen`).
pub(crate) fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(i32, u32)> {
    // SAFETY: an all-zero ucred is valid storage for getsockopt to fill.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid writable storage, `len` its size.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok((cred.pid, cred.uid))
}

/// Turns on TCP keepalive probes on `sock`: after `idle` seconds of
/// silence, a probe every `interval` seconds, and the connection fails
/// (`ETIMEDOUT` for a blocked read) after `count` unanswered ones. A peer
/// whose host vanished without closing (power loss, partition) is then
/// noticed instead of waited for forever.
pub(crate) fn set_keepalive(
    sock: BorrowedFd<'_>,
    idle: i32,
    interval: i32,
    count: i32,
) -> io::Result<()> {
    let set = |level: i32, name: i32, value: i32| -> io::Result<()> {
        // SAFETY: `value` is a valid c_int, alive for the call, and its
        // size is passed.
        cvt(unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                mem::size_of::<i32>() as libc::socklen_t,
            )
        })
        .map(drop)
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, interval)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, count)
}
