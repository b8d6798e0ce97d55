//! Who am I: [`current_process`], [`parent_pid`], [`cpu_count`].

use super::protocol::ChildInfo;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{OnceLock, RwLock};

static CHILD: RwLock<Option<ChildInfo>> = RwLock::new(None);
static COUNTER: AtomicU32 = AtomicU32::new(0);
static EXE: OnceLock<[u64; 4]> = OnceLock::new();

/// Records that this process is the child described by `info`.
pub(crate) fn set_child(info: &ChildInfo) {
    *CHILD.write().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
    COUNTER.store(0, Ordering::Relaxed);
}

/// Identity of our executable image, computed once (the fork server computes
/// it before forking, so its children inherit it for free).
pub(crate) fn exe_identity() -> [u64; 4] {
    *EXE.get_or_init(|| crate::sys::exe_identity().unwrap_or([0; 4]))
}

/// The next default child name and identity: `Process-N`, or
/// `Process-P:N` in a child whose own identity is `P` (as Python names them).
pub(crate) fn next_identity() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    match &*CHILD.read().unwrap_or_else(|e| e.into_inner()) {
        Some(info) => format!("{}:{n}", info.identity),
        None => n.to_string(),
    }
}

/// The calling process, as multiproc sees it (Python's
/// `multiprocessing.current_process()`).
///
/// # Examples
/// ```
/// # multiproc::init();
/// let me = multiproc::current_process();
/// assert!(me.is_main());
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
///
/// fn child_name(_: ()) -> (String, bool) {
///     let me = multiproc::current_process();
///     (me.name().to_owned(), me.is_main())
/// }
/// let mut p = multiproc::Process::builder().name("worker").spawn(child_name, ()).unwrap();
/// assert_eq!(p.join().unwrap(), ("worker".to_owned(), false));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
    main: bool,
}

impl CurrentProcess {
    /// The name: `MainProcess` in the main program, the name given to
    /// [`ProcessBuilder::name`](crate::ProcessBuilder::name) or `Process-N` in a child.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this process was started as a daemon child.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Whether this is the main program rather than a child started by multiproc.
    pub fn is_main(&self) -> bool {
        self.main
    }
}

/// The calling process: its name, pid, and whether it is the main program.
pub fn current_process() -> CurrentProcess {
    let pid = std::process::id();
    match &*CHILD.read().unwrap_or_else(|e| e.into_inner()) {
        Some(info) => CurrentProcess {
            name: info.name.clone(),
            pid,
            daemon: info.daemon,
            main: false,
        },
        None => CurrentProcess {
            name: "MainProcess".to_owned(),
            pid,
            daemon: false,
            main: true,
        },
    }
}

/// The pid of the process that started this one (Python's
/// `parent_process().pid`), or `None` in the main program.
///
/// This is the *logical* parent, the process that called `spawn`. The
/// operating-system parent of a child of the fork server is the fork server
/// itself (what `std::os::unix::process::parent_id()` returns).
///
/// # Examples
/// ```
/// # multiproc::init();
/// assert_eq!(multiproc::parent_pid(), None);
/// fn parent(_: ()) -> Option<u32> { multiproc::parent_pid() }
/// let mut p = multiproc::Process::spawn(parent, ()).unwrap();
/// assert_eq!(p.join().unwrap(), Some(std::process::id()));
/// ```
pub fn parent_pid() -> Option<u32> {
    CHILD
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|info| info.parent_pid)
}

/// The number of CPUs this process may run on (affinity and cgroup quota
/// considered), at least 1: the right default size for a pool.
///
/// Python's `cpu_count()` counts every CPU of the machine; this is its
/// `process_cpu_count()`, which is what pools should use.
///
/// # Examples
/// ```
/// assert!(multiproc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
