//! What the channel workloads share: the child at the other end of the channel, how a
//! measurement against it ends, and the receiving side of the throughput workloads.

use std::time::{Duration, Instant};

use multiproc::Process;

use crate::raw_ipc::{Msg, msg_seq};

/// What a peer child returns: `Err` says what went wrong on its side.
pub type PeerResult = Result<(), String>;

/// How long the parent waits for a peer child's first message, where the channel offers a
/// timeout ([`Queue::get_timeout`](multiproc::Queue::get_timeout)): a child that failed to
/// start must not hang the bench. The timed loops use the plain blocking calls.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer child may take to finish once the parent's side is done.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a peer child gets to report its own failure once the parent's side has failed
/// (often because of it), before it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// Ends a measurement made against `child`: joins it (killing it if it does not end in time)
/// and gives `outcome` back if both sides succeeded, or says what failed on either side.
pub fn settle<T>(mut child: Process<PeerResult>, outcome: Result<T, String>) -> Result<T, String> {
    let timeout = if outcome.is_ok() { JOIN_TIMEOUT } else { GRACE };
    let joined = match child.join_timeout(timeout) {
        Err(e) if e.is_timeout() => {
            // A child blocked on a full or empty channel: it will never end on its own.
            let _ = child.kill();
            let _ = child.join();
            Err(format!("peer child did not end within {timeout:?}: killed"))
        }
        Err(e) => Err(format!("peer child: {e}")),
        Ok(Err(e)) => Err(format!("peer child failed: {e}")),
        Ok(Ok(())) => Ok(()),
    };
    match (outcome, joined) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(child)) => Err(child),
        (Err(parent), Ok(())) => Err(parent),
        (Err(parent), Err(child)) => Err(format!("{parent}; {child}")),
    }
}

/// Checks that `first` (received by the caller) is `msg(0)`, then receives `n` more messages
/// with `recv` and checks that they are `msg(1)..=msg(n)`; returns million messages per second
/// over those `n`. The clock starts once the first message is in, so the child's start-up is not
/// counted.
pub fn receive_rate(
    first: Result<Msg, String>,
    n: u64,
    mut recv: impl FnMut() -> Result<Msg, String>,
) -> Result<f64, String> {
    let check = |i: u64, m: &Msg| match msg_seq(m) {
        seq if seq == i => Ok(()),
        seq => Err(format!("message {i} carried sequence number {seq}")),
    };
    check(0, &first?)?;
    let start = Instant::now();
    for i in 1..=n {
        check(i, &recv()?)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64() / 1e6)
}
