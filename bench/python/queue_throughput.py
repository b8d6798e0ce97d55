"""queue_throughput: a child puts N+1 16-byte `bytes` on a multiprocessing.Queue, the parent gets them.

Usage: python3 queue_throughput.py [--method {fork,forkserver,spawn}] [--maxsize M] --n N
With --maxsize, the queue is bounded (`Queue(maxsize=M)`).
Prints {"value": <million messages per second>, "unit": "Mmsg/s"}: N messages divided by the time
from the parent's first get (which absorbs the child's start-up) to its last.
"""

import argparse
import multiprocessing
import time

from benchlib import emit

MSG = bytes(range(16))


def produce(q, total):
    for _ in range(total):
        q.put(MSG)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--maxsize", type=int, default=0)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    q = ctx.Queue(maxsize=args.maxsize)
    child = ctx.Process(target=produce, args=(q, args.n + 1))
    child.start()
    q.get()
    start = time.perf_counter()
    for _ in range(args.n - 1):
        q.get()
    last = q.get()
    elapsed = time.perf_counter() - start
    child.join()
    if child.exitcode != 0 or last != MSG:
        raise SystemExit(f"child exited with code {child.exitcode}, last message {last!r}")
    emit(args.n / elapsed / 1e6, "Mmsg/s")


if __name__ == "__main__":
    main()
