//! [`wait`]: block until one of several objects is ready (Python's
//! `multiprocessing.connection.wait`).
//!
//! Today the objects are process sentinels; connections and queues join them
//! by implementing [`Waitable`].

use crate::error::Error;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// An object [`wait`] can watch: it exposes a descriptor that polls readable
/// when the object is ready.
pub trait Waitable {
    /// The descriptor that becomes readable when the object is ready.
    fn ready_fd(&self) -> BorrowedFd<'_>;
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

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: no limit), and returns the indices of the ready ones (empty on
/// timeout).
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
/// let ready = multiproc::wait(&[&slow.sentinel(), &fast.sentinel()], Some(Duration::from_secs(30))).unwrap();
/// assert_eq!(ready, vec![1]);
/// slow.kill().unwrap();
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>, Error> {
    let fds: Vec<BorrowedFd<'_>> = objects.iter().map(|o| o.ready_fd()).collect();
    let ready = crate::sys::poll(&fds, timeout).map_err(|e| Error::io("poll", e))?;
    Ok(ready
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.then_some(i))
        .collect())
}
