"""pool_cpu: naive recursive fib(K) for T inputs, in a Pool of P workers and serially.

Usage: python3 pool_cpu.py [--method {fork,forkserver,spawn}] --processes P --tasks T --fib K
           [--rounds R]

Serial and pool rounds alternate (the pool is started and warmed up first); the pool runs
`pool.map(fib, [K] * T)` (default chunk size). Prints {"value": <median serial time / median
pool time>, "unit": "×"}: the pool's speedup over this same interpreter's serial loop. The
Rust side runs fib(32), which would take minutes here: pass a K whose task takes about as long
in Python as fib(32) in Rust (the per-task time goes to stderr).
"""

import argparse
import multiprocessing
import sys
import time

from benchlib import emit


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def median(values):
    return sorted(values)[len(values) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--processes", type=int, required=True)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--fib", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.tasks < 1 or args.rounds < 1 or args.processes < 1:
        parser.error("--tasks, --rounds and --processes must be at least 1")

    expected = fib(args.fib)
    ctx = multiprocessing.get_context(args.method)
    serial, parallel = [], []
    with ctx.Pool(args.processes) as pool:
        pool.map(fib, [10] * (4 * args.processes), chunksize=1)
        for _ in range(args.rounds):
            start = time.perf_counter()
            results = [fib(args.fib) for _ in range(args.tasks)]
            serial.append(time.perf_counter() - start)
            if results != [expected] * args.tasks:
                raise SystemExit("wrong serial results")
            start = time.perf_counter()
            results = pool.map(fib, [args.fib] * args.tasks)
            parallel.append(time.perf_counter() - start)
            if results != [expected] * args.tasks:
                raise SystemExit("wrong pool results")
    shown = lambda values: ", ".join(f"{v * 1e3:.1f}" for v in values)  # noqa: E731
    print(
        f"fib({args.fib}): {median(serial) * 1e3 / args.tasks:.2f} ms per task; rounds (ms): "
        f"serial {shown(serial)}; pool {shown(parallel)}",
        file=sys.stderr,
    )
    emit(median(serial) / median(parallel), "×")


if __name__ == "__main__":
    main()
