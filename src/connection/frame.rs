//! The frame layer: a `u32` little-endian length, then that many bytes.
//!
//! [`FrameReader`] is a resumable state machine: a read that stops half-way
//! (a deadline, a short read) keeps what it got, so the next call goes on
//! from there. The length is checked against the limit before any byte of
//! the body is stored, and the body grows only as its bytes arrive, so a
//! peer that claims a large frame and sends nothing costs nothing.

use crate::error::{Error, Kind};
use std::io::{self, Read};

/// Bytes of the length prefix.
pub(crate) const HEADER: usize = 4;

/// The first allocation for a frame's body; it doubles as bytes arrive.
const FIRST_CHUNK: usize = 64 * 1024;

/// What one step of reading produced.
pub(crate) enum Step {
    /// A whole frame's body.
    Frame(Vec<u8>),
    /// Some bytes arrived (or none were available): read again.
    More,
}

/// Where the reading of the current frame stands.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    head: [u8; HEADER],
    head_len: usize,
    /// The body's announced length, once the header is complete.
    want: Option<usize>,
    body: Vec<u8>,
}

impl FrameReader {
    /// Whether no byte of a frame has been read yet.
    pub(crate) fn at_boundary(&self) -> bool {
        self.head_len == 0
    }

    /// Capacity held for a frame being read (tests check it stays small).
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.body.capacity()
    }

    /// Does one `read` on `src` and advances; `max` bounds the body.
    ///
    /// # Errors
    /// A frame longer than `max` (nothing is allocated for it), the end of
    /// the stream (a disconnection at a frame boundary, a truncated frame
    /// otherwise), or the error of `read` (`WouldBlock` and `Interrupted`
    /// pass through for the caller to wait and retry).
    pub(crate) fn step(&mut self, src: &mut impl Read, max: usize) -> Result<Step, StepError> {
        let Some(want) = self.want else {
            let n = src
                .read(&mut self.head[self.head_len..])
                .map_err(StepError::Io)?;
            if n == 0 {
                return Err(StepError::Fatal(self.eof()));
            }
            self.head_len += n;
            if self.head_len < HEADER {
                return Ok(Step::More);
            }
            let len = u32::from_le_bytes(self.head) as usize;
            if len > max {
                return Err(StepError::Fatal(Error::new(Kind::Decode(format!(
                    "frame of {len} bytes exceeds the limit of {max} bytes"
                )))));
            }
            self.want = Some(len);
            if len == 0 {
                return Ok(Step::Frame(self.finish()));
            }
            return Ok(Step::More);
        };
        let filled = self.body.len();
        if self.body.capacity() == filled {
            let grow = (want - filled).min(filled.max(FIRST_CHUNK));
            self.body.reserve_exact(grow);
        }
        let room = (self.body.capacity() - filled).min(want - filled);
        self.body.resize(filled + room, 0);
        let got = src.read(&mut self.body[filled..]);
        let n = *got.as_ref().unwrap_or(&0);
        self.body.truncate(filled + n);
        match got {
            Err(e) => Err(StepError::Io(e)),
            Ok(0) => Err(StepError::Fatal(self.eof())),
            Ok(_) if self.body.len() == want => Ok(Step::Frame(self.finish())),
            Ok(_) => Ok(Step::More),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.head_len = 0;
        self.want = None;
        std::mem::take(&mut self.body)
    }

    fn eof(&self) -> Error {
        if self.at_boundary() {
            return Error::new(Kind::Disconnected("the peer closed the connection".into()));
        }
        let (got, want) = match self.want {
            None => (self.head_len, HEADER),
            Some(w) => (HEADER + self.body.len(), HEADER + w),
        };
        Error::new(Kind::Decode(format!(
            "truncated frame: the peer closed the connection after {got} of its {want} bytes"
        )))
    }
}

/// Why a step did not complete.
pub(crate) enum StepError {
    /// `read` failed; `WouldBlock`/`Interrupted` mean "wait and retry".
    Io(io::Error),
    /// The stream is unusable from here on.
    Fatal(Error),
}

/// The bytes of one frame: length prefix and body.
pub(crate) fn encode_frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + body.len());
    v.extend_from_slice(&(body.len() as u32).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// A reader that hands out its bytes a few at a time, so that the fuzz
/// target exercises every partial read.
struct Trickle<'a> {
    bytes: &'a [u8],
    turn: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.turn += 1;
        let n = (self.turn % 7 + 1).min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

/// Reads `bytes` as a stream of frames received by a
/// [`Channel`](super::Channel) limited to `max_frame_len`: the frames read,
/// and `None` if the stream ended cleanly at a frame boundary, else the
/// error that ended it (for the fuzz target and its corpus test).
#[doc(hidden)]
pub fn parse_channel_for_fuzz(
    bytes: &[u8],
    max_frame_len: usize,
) -> (Vec<Vec<u8>>, Option<String>) {
    let mut src = Trickle { bytes, turn: 0 };
    let mut reader = FrameReader::default();
    let mut frames = Vec::new();
    loop {
        match reader.step(&mut src, max_frame_len) {
            Ok(Step::Frame(f)) => frames.push(f),
            Ok(Step::More) => {}
            Err(StepError::Fatal(e)) if e.is_disconnected() => return (frames, None),
            Err(StepError::Fatal(e)) => return (frames, Some(e.to_string())),
            Err(StepError::Io(e)) => return (frames, Some(e.to_string())),
        }
    }
}

/// Builds the bytes of a stream carrying `frames` (for the fuzz corpus).
#[doc(hidden)]
pub fn channel_frame_bytes(frames: &[&[u8]]) -> Vec<u8> {
    frames.iter().flat_map(|f| encode_frame(f)).collect()
}
