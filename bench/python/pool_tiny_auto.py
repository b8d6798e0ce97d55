"""pool_tiny_auto: Pool.map of a trivial task (x + 1) over N items, default chunk size.

Usage: python3 pool_tiny_auto.py [--method {fork,forkserver,spawn}] --processes P --n N
           [--rounds R]

Pool.map without chunksize cuts the input into ceil(N / (4 * P))-item chunks, as multiproc's
map. The pool is warmed up before the clock starts; each round times one
`pool.map(inc, range(N))` and checks its results. Prints {"value": <million tasks per second,
the median of the rounds>, "unit": "Mtask/s"}, every round on stderr.
"""

import argparse
import multiprocessing
import sys
import time

from benchlib import emit


def inc(x):
    return x + 1


def map_rate(pool, n):
    start = time.perf_counter()
    results = pool.map(inc, range(n))
    elapsed = time.perf_counter() - start
    if len(results) != n or any(r != x + 1 for x, r in enumerate(results)):
        raise SystemExit(f"wrong results for {n} tasks")
    return n / elapsed / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1 or args.processes < 1:
        parser.error("--n, --rounds and --processes must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    with ctx.Pool(args.processes) as pool:
        pool.map(inc, range(1000), chunksize=1)
        rates = [map_rate(pool, args.n) for _ in range(args.rounds)]
    print("rounds (Mtask/s): " + ", ".join(f"{r:.3f}" for r in rates), file=sys.stderr)
    # The upper middle for an even count, as the Rust side.
    emit(sorted(rates)[len(rates) // 2], "Mtask/s")


if __name__ == "__main__":
    main()
