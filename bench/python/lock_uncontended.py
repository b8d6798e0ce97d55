"""lock_uncontended: acquire and release a multiprocessing.Lock nobody else wants, in a loop.

Usage: python3 lock_uncontended.py --n N [--warmup W]
No process is started: the lock (a SemLock, the same in every context) is used by this process
alone. The loop calls the bound methods directly, without a helper function per pair, so that
Python pays only for the lock and its own loop. Prints
{"value": <mean nanoseconds per acquire+release pair>, "unit": "ns"}.
"""

import argparse
import multiprocessing
import time

from benchlib import emit


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    lock = multiprocessing.Lock()
    acquire, release = lock.acquire, lock.release
    for _ in range(args.warmup):
        acquire()
        release()
    start = time.perf_counter()
    for _ in range(args.n):
        acquire()
        release()
    elapsed = time.perf_counter() - start
    emit(elapsed * 1e9 / args.n, "ns")


if __name__ == "__main__":
    main()
