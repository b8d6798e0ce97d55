//! `idle_worker_rss`: the memory of an idle [`Pool`] worker, against an idle Python `Pool`
//! worker's: `VmRSS` from `/proc/<pid>/status` (every page the process maps, shared ones
//! included) and `Pss` from `/proc/<pid>/smaps_rollup` (shared pages divided among their
//! sharers: what the worker really costs). The workers' pids come from tasks that return
//! `std::process::id()`; they are read once the workers have sat idle for a moment. Reports the
//! mean over the pool's [`processes()`](pool_tasks::processes) workers, in MiB.

use std::time::Duration;

use multiproc::Pool;

use super::pool_tasks::{self, pid_after_ms};
use super::{Better, Ctx, Row, Workload};

pub const WORKLOAD: Workload = Workload {
    name: "idle_worker_rss",
    about: "resident memory (RSS, PSS) of an idle pool worker (MiB)",
    run,
};

const UNIT: &str = "MiB";
/// How long each pid-finding task sleeps: long enough that every worker gets some.
const PID_TASK_MS: u64 = 20;
/// How long the workers sit idle before their memory is read.
const IDLE: Duration = Duration::from_millis(300);

fn run(ctx: &mut Ctx) -> Vec<Row> {
    let name = WORKLOAD.name;
    let processes = pool_tasks::processes();
    eprintln!("[{name}] {processes} worker processes on each side (cpu_count)");

    ctx.progress(name, "rss+pss", "multiproc");
    let measured = Pool::new(processes)
        .map_err(|e| format!("Pool::new({processes}): {e}"))
        .and_then(|pool| idle_memory(&pool, processes));
    let (rss, pss) = match measured {
        Ok((rss, pss)) => (Some(rss), pss),
        Err(e) => {
            ctx.check::<String>(name, "rss", "multiproc", Err(e));
            (None, None)
        }
    };

    let procs = processes.to_string();
    let python = |ctx: &mut Ctx, stat: &str| {
        ctx.progress(name, stat, "python");
        ctx.python(name, &["--processes", &procs, "--stat", stat], UNIT)
    };
    let python_rss = python(ctx, "rss");
    let python_pss = python(ctx, "pss");

    let row = |variant: &str, value, python| Row {
        workload: name,
        variant: variant.to_string(),
        unit: UNIT,
        better: Better::Lower,
        value,
        python,
        raw: None,
        bound: "",
    };
    vec![row("rss", rss, python_rss), row("pss", pss, python_pss)]
}

/// The mean RSS and PSS (`None` where the kernel has no `smaps_rollup`) of `pool`'s workers,
/// in MiB, once they are idle.
fn idle_memory(pool: &Pool, processes: usize) -> Result<(f64, Option<f64>), String> {
    let pids = worker_pids(pool, processes)?;
    std::thread::sleep(IDLE);
    let mut rss = Vec::new();
    let mut pss = Vec::new();
    for &pid in &pids {
        let status = read_proc(pid, "status")?;
        let kib = proc_kib(&status, "VmRSS").ok_or(format!("no VmRSS for pid {pid}"))?;
        rss.push(kib);
        // smaps_rollup exists since Linux 4.14.
        if let Ok(rollup) = read_proc(pid, "smaps_rollup") {
            pss.extend(proc_kib(&rollup, "Pss"));
        }
    }
    let mib = |kib: &[u64]| kib.iter().sum::<u64>() as f64 / kib.len() as f64 / 1024.0;
    eprintln!(
        "[{}] workers {pids:?}: VmRSS {rss:?} KiB, Pss {pss:?} KiB",
        WORKLOAD.name
    );
    let pss = (pss.len() == rss.len()).then(|| mib(&pss));
    Ok((mib(&rss), pss))
}

/// The pids of all `processes` workers of `pool`: tasks that sleep a little and return their
/// pid, one per message, until every worker has answered.
fn worker_pids(pool: &Pool, processes: usize) -> Result<Vec<u32>, String> {
    let mut pids: Vec<u32> = Vec::new();
    for _ in 0..10 {
        let got = pool
            .map_chunked(pid_after_ms, vec![PID_TASK_MS; processes * 8], 1)
            .map_err(|e| format!("map: {e}"))?;
        for pid in got {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        if pids.len() >= processes {
            pids.sort_unstable();
            return Ok(pids);
        }
    }
    Err(format!(
        "only {} of {processes} workers ran a task: {pids:?}",
        pids.len()
    ))
}

fn read_proc(pid: u32, file: &str) -> Result<String, String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
}

/// The value in KiB of the `key:   1234 kB` line of a `/proc` file.
fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, rest) = line.split_once(':')?;
        if k != key {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_lines() {
        let status = "Name:\tbench\nVmHWM:\t    4000 kB\nVmRSS:\t    3456 kB\nRssAnon:\t 1000 kB\n";
        assert_eq!(proc_kib(status, "VmRSS"), Some(3456));
        assert_eq!(proc_kib(status, "VmHWM"), Some(4000));
        assert_eq!(proc_kib(status, "Rss"), None);
        assert_eq!(proc_kib(status, "Name"), None);
        let rollup = "55d0-7ffe ---p 00000000 00:00 0  [rollup]\nRss:  2048 kB\nPss:  1100 kB\nPss_Anon:  700 kB\n";
        assert_eq!(proc_kib(rollup, "Pss"), Some(1100));
        assert_eq!(proc_kib(rollup, "Pss_Anon"), Some(700));
    }

    #[test]
    fn finds_every_worker_and_its_memory() {
        let pool = Pool::new(2).unwrap();
        let pids = worker_pids(&pool, 2).unwrap();
        assert_eq!(pids.len(), 2, "{pids:?}");
        assert!(!pids.contains(&std::process::id()));
        let (rss, pss) = idle_memory(&pool, 2).unwrap();
        assert!(rss > 0.0, "{rss}");
        assert!(
            pss.is_none_or(|pss| pss > 0.0 && pss <= rss),
            "{pss:?} {rss}"
        );
    }

    #[test]
    fn reads_this_process() {
        let status = read_proc(std::process::id(), "status").unwrap();
        assert!(proc_kib(&status, "VmRSS").unwrap() > 0);
    }
}
