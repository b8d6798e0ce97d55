"""manager_dict_ops: `d[k] = i` then `d.get(k)` on a SyncManager dict proxy, in a loop.

Usage: python3 manager_dict_ops.py [--method {fork,forkserver,spawn}]
           [--address {local,local_1cpu,local_2cpu,tcp}] --n N [--warmup W]
`local`: `ctx.Manager()` (its server on a Unix socket, as Python's default on Linux), wherever
the scheduler puts the processes. `local_1cpu` / `local_2cpu`: the same, but once the dict's
proxy has connected (the server then has its thread for this client) this thread is pinned to the
first CPU it may use and every thread of the server to that CPU too, or to the second one, as
the Rust side does. `tcp`: a SyncManager started on ("127.0.0.1", 0) with an authkey, the dict
made and used through a second SyncManager that connect()s to it; not pinned. Keys cycle through
100 values; every get is checked. Prints
{"value": <thousand proxy calls per second, two per pair>, "unit": "kops/s"}.
"""

import argparse
import multiprocessing
import os
import sys
import time
from multiprocessing.managers import SyncManager

from benchlib import emit

KEYS = 100
AUTHKEY = b"multiproc-bench"


def place(server_pid, same_cpu):
    """Pins this thread and every thread of the server, as the module's doc says."""
    cpus = sorted(os.sched_getaffinity(0))
    client = cpus[0]
    server = client if same_cpu or len(cpus) == 1 else cpus[1]
    for tid in os.listdir(f"/proc/{server_pid}/task"):
        os.sched_setaffinity(int(tid), {server})
    os.sched_setaffinity(0, {client})
    print(f"client on CPU {client}, server on CPU {server}", file=sys.stderr)


def measure(d, n, warmup, server_pid, same_cpu):
    def pairs(start, stop):
        for i in range(start, stop):
            k = i % KEYS
            d[k] = i
            if d.get(k) != i:
                raise SystemExit(f"get({k}) differs from {i}")

    pairs(0, 1)  # connects the proxy
    if same_cpu is not None:
        place(server_pid, same_cpu)
    pairs(0, warmup)
    start = time.perf_counter()
    pairs(0, n)
    elapsed = time.perf_counter() - start
    return 2 * n / elapsed / 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--address", choices=["local", "local_1cpu", "local_2cpu", "tcp"], default="local")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    same_cpu = {"local_1cpu": True, "local_2cpu": False}.get(args.address)
    if args.address != "tcp":
        with ctx.Manager() as m:
            rate = measure(m.dict(), args.n, args.warmup, m._process.pid, same_cpu)
    else:
        server = SyncManager(address=("127.0.0.1", 0), authkey=AUTHKEY, ctx=ctx)
        server.start()
        try:
            client = SyncManager(address=server.address, authkey=AUTHKEY, ctx=ctx)
            client.connect()
            rate = measure(client.dict(), args.n, args.warmup, server._process.pid, same_cpu)
        finally:
            server.shutdown()
    emit(rate, "kops/s")


if __name__ == "__main__":
    main()
