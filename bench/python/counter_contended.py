"""counter_contended: 2 child processes each increment a multiprocessing.Value('Q') N times.

Usage: python3 counter_contended.py [--method {fork,forkserver,spawn}] --n N [--rounds R]
Each increment is `with v.get_lock(): v.value += 1`, the documented way. The children and the
parent meet at a Barrier; the clock runs from the parent passing it to the Event the last child
sets when done. Each round checks that the counter ends at exactly 2 * N. Prints
{"value": <million increments per second, both children together; the median of the rounds>,
"unit": "Mops/s"}; every round goes to stderr.
"""

import argparse
import multiprocessing
import sys
import time

from benchlib import emit

PROCESSES = 2


def increment(v, n, start, done, finished):
    start.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    with done.get_lock():
        done.value += 1
        if done.value == PROCESSES:
            finished.set()


def measure(ctx, n):
    """One round: million increments per second."""
    v = ctx.Value("Q", 0)
    start = ctx.Barrier(PROCESSES + 1)
    done = ctx.Value("i", 0)
    finished = ctx.Event()
    children = [
        ctx.Process(target=increment, args=(v, n, start, done, finished)) for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    start.wait(timeout=30)
    clock = time.perf_counter()
    if not finished.wait(timeout=120):
        raise SystemExit("the increments did not end within 120 s")
    elapsed = time.perf_counter() - clock
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"child exited with code {child.exitcode}")
    expected = PROCESSES * n
    if v.value != expected:
        raise SystemExit(f"the counter ended at {v.value}, not {expected}")
    return expected / elapsed / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    rates = [measure(ctx, args.n) for _ in range(args.rounds)]
    print("rounds (Mops/s): " + ", ".join(f"{r:.2f}" for r in rates), file=sys.stderr)
    # The upper middle for an even count, as the Rust side.
    emit(sorted(rates)[len(rates) // 2], "Mops/s")


if __name__ == "__main__":
    main()
