//! The authkey challenge–response, as Python's `deliver_challenge` /
//! `answer_challenge`, run once each way.
//!
//! ```text
//! listener                                   client
//!    #CHALLENGE# + 32 random bytes (Ns)  ->
//!                                        <-  HMAC(key, CLIENT_LABEL + Ns)
//!    #WELCOME# (or #FAILURE#, and close) ->
//!                                        <-  #CHALLENGE# + 32 random bytes (Nc)
//!    HMAC(key, SERVER_LABEL + Nc)        ->
//!                                        <-  #WELCOME# (or #FAILURE#, and close)
//! ```
//!
//! The listener challenges first on every connection, so a peer without the
//! key cannot get an answer out of it to replay elsewhere; the labels keep
//! the two directions' answers distinct all the same.

use super::channel::Channel;
use crate::error::{Error, Kind};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::Read;
use std::time::Instant;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const CLIENT_LABEL: &[u8] = b"multiproc.connection client answer\0";
const SERVER_LABEL: &[u8] = b"multiproc.connection server answer\0";
/// Random bytes per challenge.
const NONCE_LEN: usize = 32;
/// The largest handshake message accepted (a challenge may carry a longer nonce).
const MAX_MESSAGE: usize = 1024;

/// Which side of the connection runs the handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Listener,
    Client,
}

/// Runs this side's handshake on `channel`, all of it before `deadline`.
///
/// # Errors
/// Every failure (a wrong key on either side, a silent peer, a peer that
/// does not speak the protocol or closes the connection) is
/// [`Error::is_authentication_failure`], except an OS error reading the
/// random source.
pub(crate) fn run(
    channel: &mut Channel,
    key: &[u8],
    side: Side,
    deadline: Instant,
) -> Result<(), Error> {
    let mut hs = Handshake {
        channel,
        key,
        deadline,
        side,
    };
    match side {
        Side::Listener => {
            hs.deliver_challenge(CLIENT_LABEL)?;
            hs.answer_challenge(SERVER_LABEL)
        }
        Side::Client => {
            hs.answer_challenge(CLIENT_LABEL)?;
            hs.deliver_challenge(SERVER_LABEL)
        }
    }
}

struct Handshake<'a> {
    channel: &'a mut Channel,
    key: &'a [u8],
    deadline: Instant,
    side: Side,
}

impl Handshake<'_> {
    fn peer(&self) -> &'static str {
        match self.side {
            Side::Listener => "the client",
            Side::Client => "the listener",
        }
    }

    /// Sends a challenge and checks the answer, computed with `label`.
    fn deliver_challenge(&mut self, label: &[u8]) -> Result<(), Error> {
        let mut nonce = [0u8; NONCE_LEN];
        random_bytes(&mut nonce)?;
        self.send(&[CHALLENGE, &nonce].concat())?;
        let answer = self.recv()?;
        let good = mac(self.key, label, &nonce).verify_slice(&answer).is_ok();
        if !good {
            let _ = self.send(FAILURE);
            return Err(failure(format!(
                "{} does not know the authkey (its answer to our challenge is wrong)",
                self.peer()
            )));
        }
        self.send(WELCOME)
    }

    /// Answers the peer's challenge with `label`, and reads its verdict.
    fn answer_challenge(&mut self, label: &[u8]) -> Result<(), Error> {
        let message = self.recv()?;
        let nonce = match message.strip_prefix(CHALLENGE) {
            Some(n) if n.len() >= NONCE_LEN => n,
            _ => {
                return Err(failure(format!(
                    "{} does not speak the multiproc connection protocol \
                     (expected a challenge, got {} bytes)",
                    self.peer(),
                    message.len()
                )));
            }
        };
        let answer = mac(self.key, label, nonce).finalize().into_bytes();
        self.send(&answer)?;
        match self.recv()?.as_slice() {
            WELCOME => Ok(()),
            FAILURE => Err(failure(format!(
                "{} refused our answer: the two sides have different authkeys",
                self.peer()
            ))),
            other => Err(failure(format!(
                "{} sent {} bytes where a verdict was expected",
                self.peer(),
                other.len()
            ))),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.channel
            .send_by(bytes, self.deadline)
            .map_err(|e| self.lost(e))
    }

    fn recv(&mut self) -> Result<Vec<u8>, Error> {
        self.channel
            .recv_small(MAX_MESSAGE, self.deadline)
            .map_err(|e| self.lost(e))
    }

    /// The handshake could not go on: why, as an authentication failure.
    fn lost(&self, e: Error) -> Error {
        if e.is_timeout() {
            failure(format!(
                "{} did not complete the authkey handshake in time",
                self.peer()
            ))
        } else if e.is_disconnected() {
            failure(format!(
                "{} closed the connection during the authkey handshake \
                 (a wrong authkey on its side?)",
                self.peer()
            ))
        } else {
            failure(format!(
                "authkey handshake with {} failed: {e}",
                self.peer()
            ))
        }
    }
}

fn failure(why: String) -> Error {
    Error::new(Kind::AuthenticationFailed(why))
}

fn mac(key: &[u8], label: &[u8], nonce: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    m.update(label);
    m.update(nonce);
    m
}

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| Error::io("reading /dev/urandom for an authkey challenge", e))
}
