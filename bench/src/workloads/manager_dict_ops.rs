//! `manager_dict_ops`: round trips to a manager's server through a dict proxy. The main process
//! does `insert(k, i)` then `get(k)` on a `DictProxy<u64, u64>` in a loop (`k = i % 100`), each
//! call one request answered by the server; reports thousand calls per second, against Python's
//! `SyncManager` dict doing `d[k] = i` and `d.get(k)` the same way.
//!
//! Variants: `local`, the default manager (`Manager::start`: an abstract Unix socket, over which
//! the client moves to a shared-memory pipe; Python's `Manager()`, a Unix socket), wherever the
//! scheduler puts the two processes; `local_1cpu` and `local_2cpu`, the same with the client and
//! every thread of the server pinned (`sched_setaffinity`, once the server's thread for this
//! client exists) to one CPU, or to two different ones; and `tcp`, a manager serving on
//! `127.0.0.1` reached with `Manager::connect` (Python: a `SyncManager` started on
//! `("127.0.0.1", 0)`, used from a second one that `connect()`s), not pinned.
//!
//! A round trip between two processes costs very different amounts depending on whether they
//! share a CPU, and the scheduler decides that differently from run to run: the pinned rows
//! measure both cases on purpose.

use std::time::Instant;

use multiproc::Manager;
use multiproc::manager::DictProxy;

use super::pool_tasks::median_of;
use super::{Better, Ctx, Row, Workload};

pub const WORKLOAD: Workload = Workload {
    name: "manager_dict_ops",
    about: "insert + get on a manager's DictProxy from the main process (thousand calls/s)",
    run,
};

const UNIT: &str = "kops/s";
/// The keys cycle through this many values.
const KEYS: u64 = 100;
/// Unmeasured insert + get pairs before each round.
const WARMUP: u64 = 500;
const AUTHKEY: &[u8] = b"multiproc-bench";

/// The variants: how the client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Local,
    LocalOneCpu,
    LocalTwoCpus,
    Tcp,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Local,
        Variant::LocalOneCpu,
        Variant::LocalTwoCpus,
        Variant::Tcp,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Local => "local",
            Variant::LocalOneCpu => "local_1cpu",
            Variant::LocalTwoCpus => "local_2cpu",
            Variant::Tcp => "tcp",
        }
    }

    /// Insert + get pairs per round: fewer where a call may be slow.
    fn pairs(self, ctx: &Ctx) -> u64 {
        match self {
            Variant::Local | Variant::LocalTwoCpus => ctx.pick(100_000, 10_000) as u64,
            Variant::LocalOneCpu | Variant::Tcp => ctx.pick(10_000, 1_000) as u64,
        }
    }

    /// Whether the server is pinned to the client's CPU (`Some(true)`), to another one
    /// (`Some(false)`), or not pinned (`None`).
    fn same_cpu(self) -> Option<bool> {
        match self {
            Variant::Local | Variant::Tcp => None,
            Variant::LocalOneCpu => Some(true),
            Variant::LocalTwoCpus => Some(false),
        }
    }
}

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let pairs_python = ctx.pick(20_000, 2_000).to_string();
    let rounds = ctx.pick(3, 1);
    let warmup = WARMUP.to_string();
    let mut rows = Vec::new();
    for variant in Variant::ALL {
        let v = variant.name();
        let pairs = variant.pairs(ctx);
        ctx.progress(name, v, "multiproc");
        let label = format!("{name}/{v}");
        let measured = with_dict(variant, |d| {
            median_of(&label, UNIT, rounds, || calls_per_second(d, pairs))
        });
        let value = ctx.check(name, v, "multiproc", measured);

        ctx.progress(name, v, "python");
        let args = ["--address", v, "--n", &pairs_python, "--warmup", &warmup];
        let python = ctx.python(name, &args, UNIT);

        rows.push(Row {
            workload: name,
            variant: v.to_string(),
            unit: UNIT,
            better: Better::Higher,
            value,
            python,
            raw: None,
            bound: "",
        });
    }
    rows
}

/// Starts a manager for `variant`, makes a dict on it, pins the client and the server if the
/// variant says so, and runs `f` on the dict; then restores this thread's affinity and stops
/// the server.
fn with_dict<R>(
    variant: Variant,
    f: impl FnOnce(&DictProxy<u64, u64>) -> Result<R, String>,
) -> Result<R, String> {
    let saved = affinity()?;
    let server = match variant {
        Variant::Local | Variant::LocalOneCpu | Variant::LocalTwoCpus => Manager::start(),
        Variant::Tcp => {
            let address = "127.0.0.1:0".parse().map_err(|e| format!("address: {e}"))?;
            Manager::builder().address(address).authkey(AUTHKEY).start()
        }
    }
    .map_err(|e| format!("starting the manager: {e}"))?;
    let result = (|| {
        let client = match variant {
            Variant::Tcp => Some(
                Manager::connect(server.address(), AUTHKEY)
                    .map_err(|e| format!("Manager::connect: {e}"))?,
            ),
            Variant::Local | Variant::LocalOneCpu | Variant::LocalTwoCpus => None,
        };
        // Making the dict opens this client's connection, and the server's thread for it.
        let d = client
            .as_ref()
            .unwrap_or(&server)
            .dict()
            .map_err(|e| format!("dict: {e}"))?;
        if let Some(same) = variant.same_cpu() {
            let cpus = cpus_of(&saved);
            let client_cpu = *cpus.first().ok_or("an empty affinity mask")?;
            let server_cpu = match cpus.get(1) {
                Some(&other) if !same => other,
                _ => client_cpu,
            };
            pin_process(server.pid().ok_or("no server pid")?, server_cpu)?;
            set_affinity(0, &mask_of(client_cpu))?;
            eprintln!(
                "[{}/{}] client on CPU {client_cpu}, server on CPU {server_cpu}",
                WORKLOAD.name,
                variant.name()
            );
        }
        f(&d)
    })();
    set_affinity(0, &saved)?;
    server.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    result
}

/// This thread's affinity mask.
fn affinity() -> Result<libc::cpu_set_t, String> {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid, writable cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Err(format!(
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(set)
}

/// The CPUs in `set`, in order.
fn cpus_of(set: &libc::cpu_set_t) -> Vec<usize> {
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: CPU_ISSET reads bit `c` of a valid set, `c` below CPU_SETSIZE.
        .filter(|&c| unsafe { libc::CPU_ISSET(c, set) })
        .collect()
}

/// The set of the one CPU `cpu`.
fn mask_of(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes bit `cpu` of a valid set; `cpu` came from `cpus_of`, so it is
    // below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    set
}

/// Sets the affinity of thread `tid` (0: the calling thread).
fn set_affinity(tid: libc::pid_t, set: &libc::cpu_set_t) -> Result<(), String> {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid cpu_set_t of `size` bytes, only read.
    if unsafe { libc::sched_setaffinity(tid, size, set) } != 0 {
        return Err(format!(
            "sched_setaffinity({tid}): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Moves every thread of process `pid` onto `cpu`.
fn pin_process(pid: u32, cpu: usize) -> Result<(), String> {
    let dir = format!("/proc/{pid}/task");
    let tasks = std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))?;
    let set = mask_of(cpu);
    for task in tasks {
        let task = task.map_err(|e| format!("{dir}: {e}"))?;
        if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
            set_affinity(tid, &set)?;
        }
    }
    Ok(())
}

/// `WARMUP` unmeasured pairs, then `pairs` pairs of `insert(k, i)` + `get(k)`, each `get`
/// checked; thousand calls (two per pair) per second.
fn calls_per_second(d: &DictProxy<u64, u64>, pairs: u64) -> Result<f64, String> {
    let pair = |i: u64| -> Result<(), String> {
        let k = i % KEYS;
        d.insert(&k, &i).map_err(|e| format!("insert: {e}"))?;
        match d.get(&k).map_err(|e| format!("get: {e}"))? {
            Some(got) if got == i => Ok(()),
            other => Err(format!("get({k}) = {other:?} after insert({k}, {i})")),
        }
    };
    for i in 0..WARMUP {
        pair(i)?;
    }
    let pairs = pairs.max(1);
    let started = Instant::now();
    for i in 0..pairs {
        pair(i)?;
    }
    Ok(2.0 * pairs as f64 / started.elapsed().as_secs_f64() / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_measures() {
        for variant in Variant::ALL {
            let rate = with_dict(variant, |d| calls_per_second(d, 1_000)).unwrap();
            assert!(rate > 0.0 && rate.is_finite(), "{variant:?}: {rate}");
        }
    }

    #[test]
    fn is_registered() {
        assert!(super::super::find("manager_dict_ops").is_some());
    }

    #[test]
    fn the_python_script_knows_every_variant() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/manager_dict_ops.py");
        let text = std::fs::read_to_string(script).unwrap();
        for variant in Variant::ALL {
            assert!(
                text.contains(&format!("\"{}\"", variant.name())),
                "{variant:?}"
            );
        }
    }
}
