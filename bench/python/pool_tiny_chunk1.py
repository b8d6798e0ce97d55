"""pool_tiny_chunk1: trivial tasks (x + 1) through a process pool, one task per message.

Usage: python3 pool_tiny_chunk1.py [--method {fork,forkserver,spawn}] --processes P
           --mode {map,submit,apply} [--n N] [--rounds R] [--stat {p50,p99}] [--warmup W]

  map     Pool.map(inc, range(n), chunksize=1): every task its own message.
  submit  concurrent.futures.ProcessPoolExecutor: submit(inc, x) for every x, then .result()
          of every future in order.
  apply   Pool.apply(inc, (x,)) n times in a row after W unmeasured: the round-trip latency.

The pool (or executor) has P workers and is warmed up (every worker started and running tasks)
before any clock starts. `map` and `submit` print {"value": <thousand tasks per second, the
median of the rounds>, "unit": "ktask/s"}, every round on stderr; `apply` prints
{"value": <the --stat percentile of the round trips, nearest rank>, "unit": "us"}.
Every result is checked.
"""

import argparse
import concurrent.futures
import math
import multiprocessing
import sys
import time

from benchlib import emit


def inc(x):
    return x + 1


def check(results, n):
    if len(results) != n or any(r != x + 1 for x, r in enumerate(results)):
        raise SystemExit(f"wrong results for {n} tasks")


def map_rate(pool, n):
    start = time.perf_counter()
    results = pool.map(inc, range(n), chunksize=1)
    elapsed = time.perf_counter() - start
    check(results, n)
    return n / elapsed / 1e3


def submit_rate(executor, n):
    start = time.perf_counter()
    futures = [executor.submit(inc, x) for x in range(n)]
    results = [f.result() for f in futures]
    elapsed = time.perf_counter() - start
    check(results, n)
    return n / elapsed / 1e3


def apply_latency(pool, n, warmup, stat):
    for x in range(warmup):
        pool.apply(inc, (x,))
    micros = []
    for x in range(n):
        start = time.perf_counter()
        got = pool.apply(inc, (x,))
        micros.append((time.perf_counter() - start) * 1e6)
        if got != x + 1:
            raise SystemExit(f"apply({x}) returned {got}")
    micros.sort()
    print(f"{n} round trips: min {micros[0]:.1f} us, max {micros[-1]:.1f} us", file=sys.stderr)
    p = {"p50": 50, "p99": 99}[stat]
    rank = max(1, math.ceil(p / 100 * len(micros)))
    return micros[rank - 1]


def median_of(rounds, round_fn):
    values = [round_fn() for _ in range(rounds)]
    print("rounds (ktask/s): " + ", ".join(f"{v:.2f}" for v in values), file=sys.stderr)
    # The upper middle for an even count, as the Rust side.
    return sorted(values)[len(values) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--mode", choices=["map", "submit", "apply"], required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stat", choices=["p50", "p99"], default="p50")
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1 or args.processes < 1:
        parser.error("--n, --rounds and --processes must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    if args.mode == "submit":
        with concurrent.futures.ProcessPoolExecutor(args.processes, mp_context=ctx) as executor:
            # Starts the workers (the executor starts them on first use) and warms them up.
            for f in [executor.submit(inc, x) for x in range(1000)]:
                f.result()
            emit(median_of(args.rounds, lambda: submit_rate(executor, args.n)), "ktask/s")
        return
    with ctx.Pool(args.processes) as pool:
        pool.map(inc, range(1000), chunksize=1)
        if args.mode == "map":
            emit(median_of(args.rounds, lambda: map_rate(pool, args.n)), "ktask/s")
        else:
            emit(apply_latency(pool, args.n, args.warmup, args.stat), "us")


if __name__ == "__main__":
    main()
