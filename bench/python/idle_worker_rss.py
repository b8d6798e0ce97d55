"""idle_worker_rss: the memory of an idle multiprocessing.Pool worker.

Usage: python3 idle_worker_rss.py [--method {fork,forkserver,spawn}] --processes P
           --stat {rss,pss}

Starts a Pool of P workers, finds their pids with tasks that sleep 20 ms and return os.getpid()
(one task per message, until every worker has answered), lets them sit idle for 300 ms, then
reads VmRSS from /proc/<pid>/status (rss) or Pss from /proc/<pid>/smaps_rollup (pss). Prints
{"value": <the mean over the workers, MiB>, "unit": "MiB"}; every worker's value goes to stderr.
"""

import argparse
import multiprocessing
import os
import sys
import time

from benchlib import emit

PID_TASK_MS = 20
IDLE_S = 0.3


def pid_after_ms(ms):
    time.sleep(ms / 1000)
    return os.getpid()


def proc_kib(pid, file, key):
    with open(f"/proc/{pid}/{file}") as f:
        for line in f:
            name, _, rest = line.partition(":")
            words = rest.split()
            if name == key and len(words) == 2 and words[1] == "kB":
                return int(words[0])
    raise SystemExit(f"no {key} in /proc/{pid}/{file}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--stat", choices=["rss", "pss"], required=True)
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    with ctx.Pool(args.processes) as pool:
        pids = set()
        for _ in range(10):
            pids.update(pool.map(pid_after_ms, [PID_TASK_MS] * (args.processes * 8), chunksize=1))
            if len(pids) >= args.processes:
                break
        else:
            raise SystemExit(f"only {len(pids)} of {args.processes} workers ran a task")
        time.sleep(IDLE_S)
        file, key = ("status", "VmRSS") if args.stat == "rss" else ("smaps_rollup", "Pss")
        kib = {pid: proc_kib(pid, file, key) for pid in sorted(pids)}
    print(f"workers {key} (KiB): {kib}", file=sys.stderr)
    emit(sum(kib.values()) / len(kib) / 1024, "MiB")


if __name__ == "__main__":
    main()
