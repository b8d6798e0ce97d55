//! The manager's protocol, by hand: mirrors of its private types (postcard
//! encodes by shape, so the same shape gives the same bytes), raw
//! connections with and without the authkey handshake, and frames.
//!
//! The mirrors are checked against the library where it can be done: a
//! proxy's wire form decodes as [`WireProxy`] with the manager's address,
//! and a request built here gets the answer a proxy would get.

use super::*;
use hmac::{Hmac, KeyInit, Mac};
use multiproc::connection::Address;
use sha2::Sha256;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

/// `Kind` of `src/manager/protocol.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    Dict,
    List,
    Namespace,
    Queue,
    Lock,
    Event,
    Value,
    Custom(String),
}

/// `Spec` (a `Blob` encodes as a `Vec<u8>` does: length, then bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) types: u64,
    pub(crate) type_names: String,
    pub(crate) init: Vec<u8>,
}

type Wait = Option<Duration>;

/// `Request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Request {
    Create { spec: Spec, name: Option<String> },
    Op { id: u64, op: Op },
    Upgrade { end: Vec<u8> },
    Shutdown,
}

/// `Op`, every variant in order.
#[allow(dead_code)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Op {
    Len,
    Clear,
    DictGet(Vec<u8>),
    DictInsert(Vec<u8>, Vec<u8>),
    DictRemove(Vec<u8>),
    DictContains(Vec<u8>),
    DictSetDefault(Vec<u8>, Vec<u8>),
    DictKeys,
    DictValues,
    DictItems,
    DictUpdate(Vec<(Vec<u8>, Vec<u8>)>),
    ListPush(Vec<u8>),
    ListExtend(Vec<Vec<u8>>),
    ListGet(i64),
    ListSet(i64, Vec<u8>),
    ListInsert(i64, Vec<u8>),
    ListPop(Option<i64>),
    ListRemove(Vec<u8>),
    ListIndex(Vec<u8>),
    ListAll,
    NsGet(String),
    NsSet(String, u64, String, Vec<u8>),
    NsRemove(String),
    NsNames,
    QueuePut(Vec<u8>, Wait),
    QueueGet(Wait),
    LockAcquire(Wait),
    LockRelease,
    EventSet,
    EventClear,
    EventIsSet,
    EventWait(Wait),
    ValueGet,
    ValueSet(Vec<u8>),
    ValueSwap(Vec<u8>),
    Call(Vec<u8>),
}

/// `Failure`.
#[allow(dead_code)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Failure {
    Misuse(String),
    Decode(String),
    Panicked {
        pid: u32,
        message: String,
        location: Option<String>,
    },
    Timeout,
}

/// `Reply`.
#[allow(dead_code)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done,
    Bool(bool),
    Len(u64),
    Id(u64),
    Item(Option<Vec<u8>>),
    Items(Vec<Vec<u8>>),
    Pairs(Vec<(Vec<u8>, Vec<u8>)>),
    Names(Vec<String>),
    Attr(u64, String, Vec<u8>),
    Acquired(bool),
    Failed(Failure),
}

/// A proxy's wire form (`WireProxy` of `src/manager/proxy/mod.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireProxy {
    pub(crate) address: Address,
    pub(crate) authkey: Vec<u8>,
    pub(crate) id: u64,
    pub(crate) kind: Kind,
    pub(crate) types: u64,
}

/// The wire form of `proxy`, checked to name `manager`'s server.
pub(crate) fn wire_of<P: Serialize>(proxy: &P, manager: &Manager) -> WireProxy {
    let bytes = postcard::to_allocvec(proxy).expect("encoding a proxy");
    let w: WireProxy = postcard::from_bytes(&bytes)
        .expect("a proxy's wire form no longer decodes as this suite's mirror (wire.rs)");
    assert_eq!(
        &w.address,
        manager.address(),
        "the mirror of a proxy's wire form is out of date (wire.rs)"
    );
    w
}

/// The postcard bytes of `v`.
pub(crate) fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("postcard encoding")
}

/// A frame: `u32` little-endian length, then the body.
pub(crate) fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// A raw stream to a server, TCP or Unix (path or abstract).
pub(crate) enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Raw {
    /// Connects, without any handshake; reads give up after [`PROMPT`].
    pub(crate) fn connect(address: &Address) -> Raw {
        let raw = match address {
            Address::Tcp(a) => Raw::Tcp(TcpStream::connect(a).expect("TCP connect")),
            Address::Unix(p) => Raw::Unix(UnixStream::connect(p).expect("Unix connect")),
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .expect("abstract address");
                Raw::Unix(UnixStream::connect_addr(&a).expect("abstract connect"))
            }
        };
        match &raw {
            Raw::Tcp(s) => s.set_read_timeout(Some(PROMPT)),
            Raw::Unix(s) => s.set_read_timeout(Some(PROMPT)),
        }
        .expect("setting a read timeout");
        raw
    }

    /// Closes the writing half: the server reads end-of-file.
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Raw::Tcp(s) => s.shutdown(Shutdown::Write),
            Raw::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// Writes all of `bytes`; an error means the server closed first.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)?;
        self.flush()
    }

    /// Reads one frame.
    pub(crate) fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        let mut head = [0u8; 4];
        self.read_exact(&mut head)?;
        let len = u32::from_le_bytes(head) as usize;
        assert!(
            len < 64 << 20,
            "the server announced a frame of {len} bytes"
        );
        let mut body = vec![0u8; len];
        self.read_exact(&mut body)?;
        Ok(body)
    }

    /// Reads until the server closes the connection, within [`PROMPT`]:
    /// everything it sent. Fails the test if the connection stays open.
    pub(crate) fn read_to_close(&mut self, what: &str) -> Vec<u8> {
        let deadline = Instant::now() + PROMPT;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!("{what}: the server kept the connection open for {PROMPT:?}")
                }
                Err(e) => panic!("{what}: reading: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the server kept sending for {PROMPT:?}"
            );
        }
    }

    /// Sends `request` as one frame and reads the reply frame.
    pub(crate) fn call(&mut self, request: &Request) -> io::Result<Reply> {
        self.send(&frame(&enc(request)))?;
        let body = self.read_frame()?;
        Ok(postcard::from_bytes(&body).expect("a reply that decodes as the mirror"))
    }
}

impl Read for Raw {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Raw::Tcp(s) => s.read(buf),
            Raw::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Raw {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Raw::Tcp(s) => s.write(buf),
            Raw::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Raw::Tcp(s) => s.flush(),
            Raw::Unix(s) => s.flush(),
        }
    }
}

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const CLIENT_LABEL: &[u8] = b"multiproc.connection client answer\0";
const SERVER_LABEL: &[u8] = b"multiproc.connection server answer\0";

fn mac(key: &[u8], label: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC key");
    m.update(label);
    m.update(nonce);
    m.finalize().into_bytes().to_vec()
}

/// A raw stream that has passed the authkey handshake (the client's side,
/// by hand, checking the server's answer too).
pub(crate) fn authenticated(address: &Address, key: &[u8]) -> Raw {
    let mut raw = Raw::connect(address);
    let challenge = raw.read_frame().expect("the server's challenge");
    let nonce = challenge
        .strip_prefix(CHALLENGE)
        .expect("the server opens with a challenge");
    raw.send(&frame(&mac(key, CLIENT_LABEL, nonce)))
        .expect("answering");
    assert_eq!(raw.read_frame().expect("the verdict"), WELCOME);
    let ours = [0x5au8; 32];
    raw.send(&frame(&[CHALLENGE, &ours].concat()))
        .expect("challenging");
    let answer = raw.read_frame().expect("the server's answer");
    assert_eq!(answer, mac(key, SERVER_LABEL, &ours), "the server's answer");
    raw.send(&frame(WELCOME)).expect("welcoming");
    raw
}

/// The frames in `bytes` (what a server sent before closing); a trailing
/// partial frame is returned as is.
pub(crate) fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        let end = (4 + len).min(bytes.len());
        frames.push(bytes[4..end].to_vec());
        bytes = &bytes[end..];
    }
    if !bytes.is_empty() {
        frames.push(bytes.to_vec());
    }
    frames
}

/// Asserts that what an unauthenticated peer got is handshake only: a
/// challenge, maybe a `#FAILURE#`, never a reply.
pub(crate) fn assert_handshake_only(got: &[u8], what: &str) {
    for f in split_frames(got) {
        let ok = f.starts_with(CHALLENGE) || f == FAILURE;
        assert!(
            ok,
            "{what}: an unauthenticated peer got {} bytes that are not handshake: {f:?}",
            f.len()
        );
    }
}

/// A tiny deterministic generator of garbage (xorshift64*).
pub(crate) struct Garbage(u64);

impl Garbage {
    pub(crate) fn new(seed: u64) -> Garbage {
        Garbage(seed | 1)
    }

    pub(crate) fn word(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.word() as u8).collect()
    }
}
