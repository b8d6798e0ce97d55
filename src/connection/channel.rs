//! [`Channel`]: one authenticated connection, framed messages both ways.

use super::frame::{FrameReader, HEADER, Step, StepError, encode_frame};
use crate::error::{Error, Kind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// The frame size limit of a new [`Channel`]: 64 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 << 20;

/// Frames up to this size are written with their header in one `write`.
const COALESCE: usize = 64 * 1024;

/// The stream under a channel.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(t),
            Stream::Unix(s) => s.set_write_timeout(t),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

/// One end of an authenticated connection made by
/// [`Listener::accept`](super::Listener::accept) or
/// [`Client::connect`](super::Client::connect): whole messages (frames)
/// both ways, as bytes or as serde values.
///
/// Python's `multiprocessing.connection.Connection` over a socket (named
/// `Channel` here, since [`Connection`](crate::Connection) is a
/// [`Pipe`](crate::Pipe) end). Values are encoded with postcard, not
/// pickle; they must not own OS handles, which cannot cross a network.
///
/// A frame longer than [`max_frame_len`](Channel::max_frame_len) is refused
/// on both sides. After an error that leaves the stream out of step (an
/// oversized or truncated frame, a failed write) every later call fails
/// with the same kind of error; a value that does not decode, or a
/// deadline that passes in the middle of a frame, leaves it usable.
///
/// # Examples
/// ```
/// use multiproc::connection::{Address, Client, Listener};
///
/// let listener = Listener::bind("127.0.0.1:0".parse()?, b"secret")?;
/// let address = listener.address().clone();
/// let server = std::thread::spawn(move || -> Result<(), multiproc::Error> {
///     let mut channel = listener.accept()?;
///     let n: u64 = channel.recv()?;
///     channel.send(&(n * 2))
/// });
/// let mut channel = Client::connect(&address, b"secret")?;
/// channel.send(&21u64)?;
/// assert_eq!(channel.recv::<u64>()?, 42);
/// server.join().unwrap()?;
/// # Ok::<(), multiproc::Error>(())
/// ```
pub struct Channel {
    stream: Stream,
    reader: FrameReader,
    max_frame_len: usize,
    /// Why the stream is out of step, once it is.
    broken: Option<String>,
}

impl Channel {
    pub(crate) fn new(stream: Stream, max_frame_len: usize) -> Channel {
        Channel {
            stream,
            reader: FrameReader::default(),
            max_frame_len,
            broken: None,
        }
    }

    /// The largest frame this channel sends or receives, in bytes
    /// ([`DEFAULT_MAX_FRAME_LEN`] unless set).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener, DEFAULT_MAX_FRAME_LEN};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let channel = Client::connect(&a, b"k")?;
    /// assert_eq!(channel.max_frame_len(), DEFAULT_MAX_FRAME_LEN);
    /// # t.join().unwrap()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Sets the largest frame this channel sends or receives (at most
    /// `u32::MAX`, the largest length the prefix can say). A received
    /// header announcing more is refused before anything is allocated.
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut channel = Client::connect(&a, b"k")?;
    /// channel.set_max_frame_len(16);
    /// assert!(channel.send_bytes(&[0; 17]).unwrap_err().is_misuse());
    /// # t.join().unwrap()?;
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.max_frame_len = max.min(u32::MAX as usize);
    }

    /// Sends `bytes` as one frame.
    ///
    /// # Errors
    /// [`Error::is_misuse`] for a frame longer than
    /// [`max_frame_len`](Channel::max_frame_len) (nothing is sent);
    /// [`Error::is_disconnected`] when the peer has closed the connection;
    /// another I/O error otherwise.
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let mut server = t.join().unwrap()?;
    /// client.send_bytes(b"hello")?;
    /// assert_eq!(server.recv_bytes()?, b"hello");
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.check_broken()?;
        if bytes.len() > self.max_frame_len {
            return Err(Error::misuse(format!(
                "a frame of {} bytes exceeds this channel's limit of {} bytes",
                bytes.len(),
                self.max_frame_len
            )));
        }
        let written = if bytes.len() <= COALESCE {
            self.stream.write_all(&encode_frame(bytes))
        } else {
            let head = (bytes.len() as u32).to_le_bytes();
            self.stream
                .write_all(&head)
                .and_then(|()| self.stream.write_all(bytes))
        };
        written.map_err(|e| {
            let err = write_error(e);
            self.broken = Some(err.to_string());
            err
        })
    }

    /// Receives one frame's bytes, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::is_disconnected`] when the peer closed the connection
    /// between frames; [`Error::is_decode`] for a frame longer than
    /// [`max_frame_len`](Channel::max_frame_len) or cut short by the
    /// peer; another I/O error otherwise.
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let mut server = t.join().unwrap()?;
    /// server.send_bytes(&[1, 2, 3])?;
    /// drop(server);
    /// assert_eq!(client.recv_bytes()?, [1, 2, 3]);
    /// assert!(client.recv_bytes().unwrap_err().is_disconnected());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>, Error> {
        self.recv_until(None)
    }

    /// As [`recv_bytes`](Channel::recv_bytes), giving up after `timeout`.
    /// A frame half-received at the deadline stays buffered: the next call
    /// goes on with it.
    ///
    /// # Errors
    /// [`Error::is_timeout`] when no whole frame arrived in time, and those
    /// of [`recv_bytes`](Channel::recv_bytes).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # use std::time::Duration;
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let _server = t.join().unwrap()?;
    /// let err = client.recv_bytes_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert!(err.is_timeout());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_bytes_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>, Error> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    /// Sends `value`, encoded with postcard, as one frame.
    ///
    /// # Errors
    /// [`Error::is_misuse`] for a value that owns an OS handle (a
    /// [`Queue`](crate::Queue), an [`Fd`](crate::Fd)...: handles cannot
    /// cross a network) or whose encoding exceeds the frame limit;
    /// [`Error::is_decode`] when it cannot be encoded; and those of
    /// [`send_bytes`](Channel::send_bytes).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let mut server = t.join().unwrap()?;
    /// client.send(&("add", vec![1u32, 2]))?;
    /// let (op, args): (String, Vec<u32>) = server.recv()?;
    /// assert_eq!((op.as_str(), args.iter().sum::<u32>()), ("add", 3));
    /// let (pipe_end, _) = multiproc::Pipe::new::<u8>()?;
    /// assert!(client.send(&pipe_end).unwrap_err().is_misuse());
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let (bytes, handles) = crate::wire::encode(value)?;
        if !handles.is_empty() {
            return Err(Error::misuse(format!(
                "a value that owns OS handles ({} of them) cannot be sent over a network \
                 connection: handles only travel between processes on one machine",
                handles.len()
            )));
        }
        self.send_bytes(&bytes)
    }

    /// Receives one frame and decodes it as a `T`.
    ///
    /// # Errors
    /// [`Error::is_decode`] when the frame is not a valid `T` (the channel
    /// stays usable), and those of [`recv_bytes`](Channel::recv_bytes).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let mut server = t.join().unwrap()?;
    /// client.send(&Some(7u8))?;
    /// assert_eq!(server.recv::<Option<u8>>()?, Some(7));
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        let bytes = self.recv_bytes()?;
        Ok(crate::wire::decode(&bytes, Vec::new())?)
    }

    /// As [`recv`](Channel::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// [`Error::is_timeout`], and those of [`recv`](Channel::recv).
    ///
    /// # Examples
    /// ```
    /// # use multiproc::connection::{Client, Listener};
    /// # use std::time::Duration;
    /// # let listener = Listener::bind("127.0.0.1:0".parse()?, b"k")?;
    /// # let a = listener.address().clone();
    /// # let t = std::thread::spawn(move || listener.accept());
    /// let mut client = Client::connect(&a, b"k")?;
    /// let mut server = t.join().unwrap()?;
    /// assert!(server.recv_timeout::<u8>(Duration::ZERO).unwrap_err().is_timeout());
    /// client.send(&5u8)?;
    /// assert_eq!(server.recv_timeout::<u8>(Duration::from_secs(5))?, 5);
    /// # Ok::<(), multiproc::Error>(())
    /// ```
    pub fn recv_timeout<T: DeserializeOwned>(&mut self, timeout: Duration) -> Result<T, Error> {
        let bytes = self.recv_bytes_timeout(timeout)?;
        Ok(crate::wire::decode(&bytes, Vec::new())?)
    }

    /// Receives a frame of at most `max` bytes (the handshake's limit)
    /// before `deadline`.
    pub(crate) fn recv_small(&mut self, max: usize, deadline: Instant) -> Result<Vec<u8>, Error> {
        let saved = std::mem::replace(&mut self.max_frame_len, max);
        let got = self.recv_until(Some(deadline));
        self.max_frame_len = saved;
        got
    }

    /// Sends a small frame, giving up (and breaking the channel) at `deadline`.
    pub(crate) fn send_by(&mut self, bytes: &[u8], deadline: Instant) -> Result<(), Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.stream
            .set_write_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| Error::io("setting a socket's write timeout", e))?;
        let sent = self.send_bytes(bytes);
        let _ = self.stream.set_write_timeout(None);
        sent
    }

    /// The socket's descriptor (to poll it, or pass descriptors on it).
    pub(crate) fn stream_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Whether the socket is a Unix one (able to carry descriptors).
    pub(crate) fn is_unix(&self) -> bool {
        matches!(self.stream, Stream::Unix(_))
    }

    #[cfg(test)]
    pub(crate) fn reader(&self) -> &FrameReader {
        &self.reader
    }

    /// The raw stream, to write what a misbehaving peer would.
    #[cfg(test)]
    pub(crate) fn raw_stream(&mut self) -> &mut Stream {
        &mut self.stream
    }

    fn check_broken(&self) -> Result<(), Error> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::new(Kind::Disconnected(format!(
                "the connection is unusable after an earlier error: {why}"
            )))),
        }
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Vec<u8>, Error> {
        self.check_broken()?;
        loop {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                let ready = crate::sys::poll(&[self.stream.as_fd()], Some(left))
                    .map_err(|e| Error::io("waiting for a connection's data", e))?;
                if !ready[0] {
                    return Err(Error::timeout());
                }
            }
            match self.reader.step(&mut self.stream, self.max_frame_len) {
                Ok(Step::Frame(body)) => return Ok(body),
                Ok(Step::More) => {}
                Err(StepError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(StepError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(StepError::Io(e)) => {
                    let err = read_error(e);
                    self.broken = Some(err.to_string());
                    return Err(err);
                }
                Err(StepError::Fatal(err)) => {
                    self.broken = Some(err.to_string());
                    return Err(err);
                }
            }
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
    )
}

fn write_error(e: io::Error) -> Error {
    if is_reset(&e) {
        Error::new(Kind::Disconnected(format!(
            "the peer closed the connection ({e})"
        )))
    } else if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        Error::timeout()
    } else {
        Error::io("sending on a connection", e)
    }
}

fn read_error(e: io::Error) -> Error {
    if is_reset(&e) {
        Error::new(Kind::Disconnected(format!(
            "the peer closed the connection ({e})"
        )))
    } else {
        Error::io("receiving on a connection", e)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("stream", &self.stream)
            .field("max_frame_len", &self.max_frame_len)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

const _: () = assert!(HEADER == size_of::<u32>());
