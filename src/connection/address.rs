//! [`Address`]: where a [`Listener`](super::Listener) listens.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a [`Listener`](super::Listener) listens and a
/// [`Client`](super::Client) connects: a TCP socket address, or the path
/// of a Unix socket.
///
/// As text (its [`Display`](fmt::Display) and [`FromStr`]), a TCP address
/// is `host:port` (`127.0.0.1:5000`, `[::1]:5000`) and a Unix one is
/// `unix:` followed by the path; a bare path that contains a `/` is read
/// as a Unix address too. An abstract Unix address (Linux) is `unix:@`
/// followed by the name (so a Unix path that begins with `@` has no text
/// form: build it as `Address::Unix`, or write it as `./@name`).
///
/// # Examples
/// ```
/// use multiproc::connection::Address;
///
/// let tcp: Address = "127.0.0.1:5000".parse()?;
/// assert_eq!(tcp, Address::Tcp("127.0.0.1:5000".parse().unwrap()));
/// let unix: Address = "/tmp/server.sock".parse()?;
/// assert_eq!(unix, Address::Unix("/tmp/server.sock".into()));
/// assert_eq!(unix.to_string(), "unix:/tmp/server.sock");
/// assert_eq!(unix.to_string().parse::<Address>()?, unix);
/// let abs: Address = "unix:@my-server".parse()?;
/// assert_eq!(abs, Address::Abstract("my-server".into()));
/// assert_eq!(abs.to_string(), "unix:@my-server");
/// assert!("neither".parse::<Address>().is_err());
/// # Ok::<(), multiproc::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// A TCP socket address (port 0 asks the system for a free port).
    Tcp(SocketAddr),
    /// The path of a Unix stream socket.
    Unix(PathBuf),
    /// A name in Linux's abstract Unix socket namespace: no file is
    /// created, and the name vanishes with the socket that listens on it
    /// (even when its process is killed). Any local user can connect: the
    /// authkey is what keeps strangers out.
    Abstract(String),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(a) => write!(f, "{a}"),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Abstract(name) => write!(f, "unix:@{name}"),
        }
    }
}

impl FromStr for Address {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Address, crate::Error> {
        if let Some(name) = s.strip_prefix("unix:@") {
            return Ok(Address::Abstract(name.into()));
        }
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Address::Unix(path.into()));
        }
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(Address::Tcp(a));
        }
        if s.contains('/') {
            return Ok(Address::Unix(s.into()));
        }
        Err(crate::Error::misuse(format!(
            "`{s}` is not a connection address: expected `host:port`, `unix:PATH` or a path"
        )))
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(p)
    }
}
