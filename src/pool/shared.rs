//! What the pool's callers and its manager thread share: the requests
//! (chunks of tasks, cancellations, close, terminate) and the inbox they
//! travel through.

use super::handle::{Arrival, Call};
use super::progress::Hook;
use super::task::RunSpec;
use super::worker::InitRun;
use crate::error::Error;
use crate::process::StartMethod;
use crate::sys::eventfd;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// What a pool runs a task with.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) method: StartMethod,
    pub(crate) max_tasks: Option<u64>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) init: Option<Init>,
    pub(crate) progress: Option<Hook>,
}

/// The initializer, its encoded argument and the argument's handles.
pub(crate) type Init = (InitRun, Vec<u8>, Vec<OwnedFd>);

/// A request to the manager.
pub(crate) enum Cmd {
    Submit(Chunk),
    /// Cancel a chunk; the reply says whether it was still pending.
    Cancel(u64, mpsc::Sender<bool>),
    /// No more submissions: finish the work, then stop the workers.
    Close,
    /// Cancel every chunk not yet handed to a worker.
    CancelPending,
    /// Stop everything now.
    Terminate,
}

/// A chunk of consecutive tasks of one call.
pub(crate) struct Chunk {
    pub(crate) id: u64,
    pub(crate) call: Arc<Call>,
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) run: RunSpec,
    /// The arguments, a postcard `Vec<A>`, and their handles.
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) skip: Vec<u32>,
    pub(crate) retries: u32,
    pub(crate) cancelled: bool,
    /// Every task was answered by the worker's results.
    pub(crate) done: bool,
    /// Marked cancelled in its worker's progress words (by a shutdown)
    /// while it may have been starting.
    pub(crate) marked: bool,
}

impl Chunk {
    /// Fails every task of the chunk not yet failed; how many that was.
    pub(crate) fn fail_rest(&mut self, error: impl Fn() -> Error) -> usize {
        if self.done {
            return 0;
        }
        let mut failed = 0;
        for pos in 0..self.count {
            if !self.skip.contains(&(pos as u32)) {
                let index = self.first + pos;
                self.call.deliver(Arrival::Failed {
                    index,
                    error: error().in_task(index),
                });
                failed += 1;
            }
        }
        self.skip = (0..self.count as u32).collect();
        failed
    }

    /// Marks every task of the chunk as answered (its results were
    /// delivered).
    pub(crate) fn answered(&mut self) {
        self.done = true;
    }
}

/// A chunk dropped with tasks unanswered (the manager stopped, or died by
/// a bug) fails them, so that no caller waits forever.
impl Drop for Chunk {
    fn drop(&mut self) {
        if !self.done && self.skip.len() < self.count && !self.call.is_abandoned() {
            self.fail_rest(pool_gone);
        }
    }
}

/// Requests not yet taken by the manager, and whether it has stopped
/// (then nothing will be taken any more).
#[derive(Default)]
struct Inbox {
    cmds: Vec<Cmd>,
    stopped: bool,
}

/// What the callers and the manager share.
pub(crate) struct Shared {
    inbox: Mutex<Inbox>,
    /// The inbox holds requests: set under its lock by senders, cleared
    /// under it by the manager, read without it (the manager then locks
    /// the inbox only when there is something to take, and contends less
    /// with callers sending one request after another).
    waiting: AtomicBool,
    pub(crate) bell: OwnedFd,
    /// The manager is (about to be) asleep: ring the bell.
    pub(crate) asleep: AtomicBool,
    next_chunk: AtomicU64,
    pub(crate) closed: AtomicBool,
    pub(crate) processes: usize,
}

impl Shared {
    pub(crate) fn new(processes: usize) -> Result<Shared, Error> {
        Ok(Shared {
            inbox: Mutex::new(Inbox::default()),
            waiting: AtomicBool::new(false),
            bell: eventfd::semaphore().map_err(|e| Error::io("pool doorbell", e))?,
            asleep: AtomicBool::new(false),
            next_chunk: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            processes,
        })
    }

    pub(crate) fn send(&self, cmd: Cmd) {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if inbox.stopped {
            drop(inbox);
            refuse(cmd);
            return;
        }
        inbox.cmds.push(cmd);
        self.posted(inbox);
    }

    /// Sends every request of `cmds` (leaving it empty), under one lock.
    pub(crate) fn send_all(&self, cmds: &mut Vec<Cmd>) {
        if cmds.is_empty() {
            return;
        }
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if inbox.stopped {
            drop(inbox);
            cmds.drain(..).for_each(refuse);
            return;
        }
        inbox.cmds.append(cmds);
        self.posted(inbox);
    }

    /// After requests were added to `inbox`: flag them, and wake the
    /// manager if it sleeps.
    fn posted(&self, inbox: std::sync::MutexGuard<'_, Inbox>) {
        // SeqCst: a Dekker pair with the manager's `asleep` store and its
        // `has_requests` look (either it sees this, or we see it asleep).
        self.waiting.store(true, Ordering::SeqCst);
        drop(inbox);
        if self.asleep.load(Ordering::SeqCst) {
            eventfd::ring(self.bell.as_fd());
        }
    }

    /// Whether requests are waiting to be taken.
    pub(crate) fn has_requests(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Moves the requests sent since the last call into `into` (empty),
    /// leaving `into`'s buffer in their place: the two buffers go back and
    /// forth and keep their room, so no request list is freed by another
    /// thread than the one that allocated it (see `ResultHeader`).
    pub(crate) fn take_into(&self, into: &mut Vec<Cmd>) {
        debug_assert!(into.is_empty());
        if !self.has_requests() {
            return;
        }
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut inbox.cmds, into);
        self.waiting.store(false, Ordering::SeqCst);
    }

    /// The manager stops: later requests are refused at once, and those
    /// that raced with the stop are refused now.
    pub(crate) fn stop(&self) {
        let left = {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            inbox.stopped = true;
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut inbox.cmds)
        };
        left.into_iter().for_each(refuse);
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_chunk.fetch_add(1, Ordering::Relaxed)
    }
}

/// Answers a request nobody will serve.
fn refuse(cmd: Cmd) {
    match cmd {
        Cmd::Submit(mut c) => {
            c.fail_rest(pool_gone);
        }
        Cmd::Cancel(_, reply) => drop(reply.send(false)),
        Cmd::Close | Cmd::CancelPending | Cmd::Terminate => {}
    }
}

pub(crate) fn pool_gone() -> Error {
    Error::new(crate::error::Kind::Terminated)
}
