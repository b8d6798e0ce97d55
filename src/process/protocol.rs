//! The messages of the control channels (envelopes of [`crate::wire::frame`]).
//!
//! Three parties talk: the parent, the fork server and each child. Every
//! child has one `SOCK_SEQPACKET` control socket for life: the parent sends
//! the [`Job`] down it, the child reports back on it, and (for children of the
//! fork server) the server, which keeps a copy of the child's end, posts the
//! exit status on it after reaping the child.

use crate::sys::proc::RawExit;
use serde::{Deserialize, Serialize};

/// Environment variable that tells a freshly exec'd copy of the program
/// which role it has (`forkserver:<fd>` or `spawn:<fd>`).
pub(crate) const ROLE_VAR: &str = "MULTIPROC_ROLE";

/// Where a child's standard stream comes from.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) enum StdioSlot {
    /// The descriptor at this index of the request's descriptors.
    Fd(u8),
    /// `/dev/null`.
    Null,
    /// The fork server's own stream, which the parent found to be the same
    /// file as the one it wants (no descriptor travels).
    Keep,
}

/// Changes to the environment of a child, applied after it is created.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct EnvPlan {
    pub(crate) clear: bool,
    pub(crate) remove: Vec<String>,
    pub(crate) set: Vec<(String, String)>,
    pub(crate) cwd: Option<Vec<u8>>,
}

/// Parent → fork server: create a child. Descriptors: `[control, status, stdio...]`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SpawnRequest {
    /// Re-exec the program in the child (start method Spawn) instead of
    /// running the job in the forked copy of the server (ForkServer).
    pub(crate) exec: bool,
    pub(crate) stdio: [StdioSlot; 3],
    pub(crate) env: EnvPlan,
    /// Short name for `ps`.
    pub(crate) comm: String,
}

/// Fork server → parent: the answer to a [`SpawnRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SpawnReply {
    /// Created; a pidfd of the child is attached.
    Spawned { pid: i32 },
    /// Could not create it.
    Failed { reason: String },
}

/// What a child needs to know about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ChildInfo {
    pub(crate) name: String,
    pub(crate) identity: String,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: u32,
    /// Log level of `log_to_stderr` in the parent, as `log::LevelFilter as u8`.
    pub(crate) log_level: Option<u8>,
}

/// Parent → child: run this function. The payload is the encoded argument.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// Identity of the executable the parent runs.
    pub(crate) exe: [u64; 4],
    /// Offset of the monomorphised trampoline from the anchor function.
    pub(crate) trampoline: i64,
    /// Offset of the user's function from the anchor function.
    pub(crate) function: i64,
    /// Hash of the trampoline's type signature.
    pub(crate) signature: u64,
    pub(crate) info: ChildInfo,
}

/// Child (or fork server) → parent, on the child's control socket.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The child is up and about to run its function.
    Started,
    /// The function returned; the payload is the encoded result.
    Returned,
    /// The function panicked.
    Panicked {
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
    },
    /// The child refused to run the function (identity check).
    Refused { reason: String },
    /// The argument could not be decoded, or the result encoded.
    Undecodable { reason: String },
    /// The child could not finish starting (exec failed...).
    BootFailed { reason: String },
    /// From the fork server: the child ended like this.
    Exited(RawExit),
}
