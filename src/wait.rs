//! [`wait`]: block until one of several objects is ready (Python's
//! `multiprocessing.connection.wait`): process sentinels, connections and
//! queues.

use crate::error::Error;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// An object [`wait`] can watch: it exposes a descriptor that polls readable
/// when the object may be ready.
///
/// Implement [`ready_fd`](Waitable::ready_fd) for your own types; the other
/// methods have defaults and serve multiproc's channels, whose readiness
/// lives in shared memory.
pub trait Waitable {
    /// The descriptor that becomes readable when the object is ready.
    fn ready_fd(&self) -> BorrowedFd<'_>;

    /// A second descriptor whose hang-up also makes the object ready (a
    /// connection's peer going away).
    #[doc(hidden)]
    fn hangup_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Registers (`on`) or unregisters a waiter, so that the other side
    /// rings [`ready_fd`](Waitable::ready_fd).
    #[doc(hidden)]
    fn arm(&self, on: bool) {
        let _ = on;
    }

    /// Called when `ready_fd` fired but the object is not ready (a stale
    /// doorbell): clears what would fire again.
    #[doc(hidden)]
    fn settle(&self) {}

    /// Whether the object is ready now, when it can tell without the
    /// descriptor (`None`: trust the descriptor).
    #[doc(hidden)]
    fn ready_now(&self) -> Option<bool> {
        None
    }
}

/// Ready once its process has ended ([`Process::sentinel`](crate::Process::sentinel)).
#[derive(Clone, Copy, Debug)]
pub struct Sentinel<'a> {
    fd: BorrowedFd<'a>,
}

impl<'a> Sentinel<'a> {
    pub(crate) fn new(fd: BorrowedFd<'a>) -> Self {
        Sentinel { fd }
    }
}

impl Waitable for Sentinel<'_> {
    fn ready_fd(&self) -> BorrowedFd<'_> {
        self.fd
    }
}

/// After a doorbell that turned out stale, look again this much later.
const STALE_PAUSE: Duration = Duration::from_millis(1);

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: no limit), and returns the indices of the ready ones (empty on
/// timeout).
///
/// A connection is ready when a message or its peer's end-of-file can be
/// received, a queue when it holds a message, a sentinel when its process
/// has ended. As in Python, another process may take a queue's message
/// between `wait` and `get`: use [`Queue::get_timeout`](crate::Queue::get_timeout).
///
/// # Errors
/// The underlying `poll` failed.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
///
/// # multiproc::init();
/// let slow = multiproc::Process::spawn(nap, 10_000).unwrap();
/// let fast = multiproc::Process::spawn(nap, 10).unwrap();
/// let q = multiproc::Queue::<u8>::new().unwrap();
/// let ready = multiproc::wait(&[&slow.sentinel(), &fast.sentinel(), &q], Some(Duration::from_secs(30))).unwrap();
/// assert_eq!(ready, vec![1]);
/// q.put(7).unwrap();
/// assert_eq!(multiproc::wait(&[&slow.sentinel(), &q], None).unwrap(), vec![1]);
/// slow.kill().unwrap();
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>, Error> {
    for o in objects {
        o.arm(true);
    }
    let result = wait_armed(objects, timeout);
    for o in objects {
        o.arm(false);
    }
    result
}

fn wait_armed(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>, Error> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let mut fds = Vec::new();
    let mut owner = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        fds.push(libc::pollfd {
            fd: o.ready_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        owner.push(i);
        if let Some(h) = o.hangup_fd() {
            fds.push(libc::pollfd {
                fd: h.as_raw_fd(),
                events: 0,
                revents: 0,
            });
            owner.push(i);
        }
    }
    loop {
        let now: Vec<bool> = objects
            .iter()
            .map(|o| o.ready_now() == Some(true))
            .collect();
        // Something is ready already: only look (without waiting) at the
        // descriptors of the others, so that every ready one is reported.
        let left = if now.contains(&true) {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(Instant::now()))
        };
        for p in fds.iter_mut() {
            p.revents = 0;
        }
        crate::sys::poll_events(&mut fds, left).map_err(|e| Error::io("poll", e))?;
        let mut ready = Vec::new();
        for (p, &i) in fds.iter().zip(&owner) {
            let fired = p.revents != 0;
            let is_hangup = p.events == 0;
            let counts = now[i] || (fired && (is_hangup || objects[i].ready_now().unwrap_or(true)));
            if counts && ready.last() != Some(&i) {
                ready.push(i);
            }
        }
        if !ready.is_empty() {
            return Ok(ready);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Vec::new());
        }
        if fds.iter().any(|p| p.revents != 0) {
            for (p, &i) in fds.iter().zip(&owner) {
                if p.revents != 0 {
                    objects[i].settle();
                    // The ring that woke us used up this wait's arming: arm
                    // again, or the next message would not ring at all.
                    objects[i].arm(false);
                    objects[i].arm(true);
                }
            }
            // A doorbell rang for a message someone else took: look again
            // shortly, leaving the token to whoever sleeps in `get`.
            std::thread::sleep(STALE_PAUSE);
        }
    }
}
