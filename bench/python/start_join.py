"""start_join: Process(target=trivial).start(); join(), N times in sequence.

Usage: python3 start_join.py --method {fork,forkserver,spawn} --n N [--warmup W]
Prints {"value": <mean microseconds per start+join>, "unit": "us/op"}.
"""

import argparse
import multiprocessing

from benchlib import emit, mean_micros


def trivial(x):
    """The child's work: the same as the Rust side's `trivial` (its result is dropped here)."""
    return x + 1


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], required=True)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)

    def start_join():
        p = ctx.Process(target=trivial, args=(1,))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"child exited with code {p.exitcode}")

    emit(mean_micros(start_join, args.n, args.warmup), "us/op")


if __name__ == "__main__":
    main()
