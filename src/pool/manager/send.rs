//! How the manager hands a chunk to a worker: one message on the worker's
//! task queue, a [`TaskHeader`] then the chunk's encoded arguments.

use super::SCRATCH_KEEP;
use crate::channel::Queue;
use crate::pool::shared::Chunk;
use crate::pool::task::{TaskHeader, ToWorker};
use std::os::fd::OwnedFd;

/// Sends `chunk` to a worker's queue, the message built in `scratch` (kept
/// between calls: no allocation per task).
pub(super) fn send_chunk(
    tasks: &Queue<()>,
    chunk: &Chunk,
    timed: bool,
    scratch: &mut Vec<u8>,
) -> Result<(), std::io::Error> {
    let header = ToWorker::Run(TaskHeader {
        chunk: chunk.id,
        run: chunk.run,
        skip: chunk.skip.clone(),
        timed,
    });
    let mut msg = std::mem::take(scratch);
    msg.clear();
    crate::wire::encode_plain_into(&header, &mut msg)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    msg.extend_from_slice(&chunk.args);
    let sent = put_chunk(tasks, chunk, &msg);
    if msg.capacity() <= SCRATCH_KEEP {
        *scratch = msg;
    }
    sent
}

fn put_chunk(tasks: &Queue<()>, chunk: &Chunk, msg: &[u8]) -> Result<(), std::io::Error> {
    let fds = chunk
        .fds
        .iter()
        .map(OwnedFd::try_clone)
        .collect::<Result<Vec<_>, _>>()?;
    tasks
        .put_raw(msg, &fds)
        .map_err(|f| std::io::Error::other(f.to_string()))
}
