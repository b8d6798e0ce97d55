//! [`ProcessBuilder`] and [`Stdio`]: how a child is configured and started.

use super::handle::ChildInner;
use super::identity::{offset_of, signature, trampoline_for};
use super::protocol::{ChildInfo, EnvPlan, Job, SpawnRequest, StdioSlot};
use super::{Process, StartMethod, boot, current, fork, forkserver, registry};
use crate::error::{Error, Kind};
use crate::wire::frame;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Where a child's standard input, output or error goes.
///
/// # Examples
/// ```
/// use multiproc::{Process, Stdio};
/// fn shout(_: ()) { println!("nobody hears this") }
///
/// # multiproc::init();
/// let mut p = Process::builder().stdout(Stdio::null()).spawn(shout, ()).unwrap();
/// p.join().unwrap();
/// ```
#[derive(Debug)]
pub struct Stdio(pub(crate) StdioKind);

#[derive(Debug)]
pub(crate) enum StdioKind {
    Inherit,
    Null,
    Fd(OwnedFd),
}

impl Stdio {
    /// The parent's stream at the time of the spawn (the default).
    pub fn inherit() -> Stdio {
        Stdio(StdioKind::Inherit)
    }

    /// `/dev/null`.
    pub fn null() -> Stdio {
        Stdio(StdioKind::Null)
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Self {
        Stdio(StdioKind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Self {
        Stdio(StdioKind::Fd(file.into()))
    }
}

/// Configures a child process, then starts it ([`Process::builder`]).
///
/// # Examples
/// ```
/// use multiproc::{Process, StartMethod};
///
/// fn greet(who: String) -> String {
///     format!("hello {who} from {}", multiproc::current_process().name())
/// }
///
/// # multiproc::init();
/// let mut p = Process::builder()
///     .name("greeter")
///     .start_method(StartMethod::Spawn)
///     .env("GREETING_STYLE", "plain")
///     .spawn(greet, "world".to_string())
///     .unwrap();
/// assert_eq!(p.join().unwrap(), "hello world from greeter");
/// ```
#[derive(Debug)]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    method: StartMethod,
    env: EnvPlan,
    stdio: [Stdio; 3],
}

impl Default for ProcessBuilder {
    fn default() -> Self {
        ProcessBuilder::new()
    }
}

impl ProcessBuilder {
    /// A builder with the defaults: a `Process-N` name, not a daemon, the
    /// platform's default start method, the parent's environment and streams.
    pub fn new() -> ProcessBuilder {
        ProcessBuilder {
            name: None,
            daemon: false,
            method: StartMethod::default(),
            env: EnvPlan::default(),
            // As Python: a child's standard input is /dev/null.
            stdio: [Stdio::null(), Stdio::inherit(), Stdio::inherit()],
        }
    }

    /// The child's name (what [`current_process`](crate::current_process)
    /// returns in it, and what its log records are tagged with).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A daemon child is terminated when the parent's `main` ends; a
    /// non-daemon child is waited for (Python's rule). Default: `false`.
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// How the child is created. Default: [`StartMethod::ForkServer`].
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets an environment variable in the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        let key = key.as_ref().to_string_lossy().into_owned();
        self.env.remove.retain(|k| *k != key);
        self.env
            .set
            .push((key, value.as_ref().to_string_lossy().into_owned()));
        self
    }

    /// Removes an environment variable in the child.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        let key = key.as_ref().to_string_lossy().into_owned();
        self.env.set.retain(|(k, _)| *k != key);
        self.env.remove.push(key);
        self
    }

    /// Starts the child with an empty environment (plus what [`env`](Self::env) sets).
    pub fn env_clear(mut self) -> Self {
        self.env.clear = true;
        self.env.set.clear();
        self.env.remove.clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.env.cwd = Some(dir.as_ref().as_os_str().as_bytes().to_vec());
        self
    }

    /// The child's standard input.
    pub fn stdin(mut self, stdio: impl Into<Stdio>) -> Self {
        self.stdio[0] = stdio.into();
        self
    }

    /// The child's standard output.
    pub fn stdout(mut self, stdio: impl Into<Stdio>) -> Self {
        self.stdio[1] = stdio.into();
        self
    }

    /// The child's standard error.
    pub fn stderr(mut self, stdio: impl Into<Stdio>) -> Self {
        self.stdio[2] = stdio.into();
        self
    }

    /// Starts a child that runs `f(arg)` and sends back its result.
    ///
    /// `f` is a `fn` item or a non-capturing closure; `arg` and the result
    /// travel encoded with serde, and may carry OS handles such as
    /// [`Fd`](crate::Fd). With [`StartMethod::Fork`] the caller must be
    /// single-threaded.
    ///
    /// # Errors
    /// [`Error::is_not_initialized`] when the program never handed control to
    /// multiproc; [`Error::is_start_failure`] when the child could not be
    /// created; [`Error::is_not_single_threaded`] for `Fork` in a threaded
    /// caller; [`Error::is_decode`] when `arg` cannot be encoded.
    pub fn spawn<A, R>(self, f: fn(A) -> R, arg: A) -> Result<Process<R>, Error>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        if !boot::ready() {
            return Err(Error::new(Kind::NotInitialized));
        }
        self.check_env()?;
        if self.method == StartMethod::Fork {
            return self.fork(move || f(arg));
        }
        let trampoline = trampoline_for::<A, R>() as usize;
        let inner = self.spawn_via_server(trampoline, f as usize, signature::<A, R>(), &arg)?;
        Ok(Process::from_inner(inner))
    }

    /// Forks the caller; the child runs the closure `f`, which may capture
    /// anything (the child is a copy of the caller's memory), and sends back
    /// its result. The start method set on the builder is ignored.
    ///
    /// # Errors
    /// [`Error::is_not_single_threaded`] when the caller has other threads
    /// (forking them is unsound); [`Error::is_start_failure`] when `fork` fails.
    ///
    /// # Examples
    /// ```
    /// # multiproc::init();
    /// // A child started by the fork server is single-threaded, so it may fork.
    /// fn forker(base: u64) -> u64 {
    ///     let offset = 1000; // captured below
    ///     let mut p = multiproc::Process::builder().fork(move || base + offset).unwrap();
    ///     p.join().unwrap()
    /// }
    /// let mut p = multiproc::Process::spawn(forker, 7).unwrap();
    /// assert_eq!(p.join().unwrap(), 1007);
    /// ```
    pub fn fork<R, F>(self, f: F) -> Result<Process<R>, Error>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        self.check_env()?;
        let info = self.child_info();
        let stdio = self.stdio.map(|s| match s.0 {
            StdioKind::Inherit => None,
            StdioKind::Null => crate::sys::open_dev_null().ok(),
            StdioKind::Fd(fd) => Some(fd),
        });
        let inner = Arc::new(fork::fork_child(info, &self.env, stdio, f)?);
        registry::register(Arc::clone(&inner));
        Ok(Process::from_inner(inner))
    }

    /// Spawns with a hand-made function identity (to test the child's checks).
    #[cfg(test)]
    pub(crate) fn spawn_raw_for_test(
        self,
        trampoline: usize,
        function: usize,
        signature: u64,
        arg: &impl Serialize,
    ) -> Result<Arc<ChildInner>, Error> {
        self.spawn_via_server(trampoline, function, signature, arg)
    }

    /// Refuses, before any process exists, what the child could not apply.
    fn check_env(&self) -> Result<(), Error> {
        let bad_key = |k: &str| k.is_empty() || k.contains(['=', '\0']);
        for k in self
            .env
            .remove
            .iter()
            .chain(self.env.set.iter().map(|(k, _)| k))
        {
            if bad_key(k) {
                return Err(Error::start(format!(
                    "invalid environment variable name {k:?}"
                )));
            }
        }
        if let Some((k, _)) = self.env.set.iter().find(|(_, v)| v.contains('\0')) {
            return Err(Error::start(format!(
                "the value of environment variable {k:?} contains a NUL byte"
            )));
        }
        if self.env.cwd.as_ref().is_some_and(|d| d.contains(&0)) {
            return Err(Error::start("the working directory contains a NUL byte"));
        }
        Ok(())
    }

    fn child_info(&self) -> ChildInfo {
        let identity = current::next_identity();
        ChildInfo {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("Process-{identity}")),
            identity,
            daemon: self.daemon,
            parent_pid: std::process::id(),
            log_level: crate::logging::current_level(),
        }
    }

    fn spawn_via_server(
        self,
        trampoline: usize,
        function: usize,
        signature: u64,
        arg: &impl Serialize,
    ) -> Result<Arc<ChildInner>, Error> {
        let info = self.child_info();
        let (name, daemon) = (info.name.clone(), info.daemon);
        let job = Job {
            exe: current::exe_identity(),
            trampoline: offset_of(trampoline),
            function: offset_of(function),
            signature,
            info,
        };
        let (parent_end, child_end) =
            crate::sys::socket::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        frame::send_value(parent_end.as_fd(), &job, arg).map_err(|e| match e {
            crate::wire::WireError::Io(e) => Error::io("sending the job", e),
            other => Error::new(Kind::Decode(format!("cannot encode the argument: {other}"))),
        })?;
        let (status_ours, status_theirs) =
            crate::sys::socket::seqpacket_pair().map_err(|e| Error::io("socketpair", e))?;
        let req = SpawnRequest {
            exec: self.method == StartMethod::Spawn,
            stdio: [StdioSlot::Keep; 3],
            env: self.env,
            comm: name.clone(),
        };
        let stdio = self.stdio.map(|s| s.0);
        let (pid, pidfd) = forkserver::request(req, child_end, status_theirs, stdio)?;
        log::debug!("started {name} (pid {pid}) with {:?}", self.method);
        let inner = Arc::new(ChildInner::new(
            pid,
            name,
            daemon,
            pidfd,
            parent_end,
            Some(status_ours),
        ));
        registry::register(Arc::clone(&inner));
        Ok(inner)
    }
}
