"""queue_roundtrip: the parent puts a 16-byte `bytes` on one Queue, a child gets it and puts it on another.

Usage: python3 queue_roundtrip.py [--method {fork,forkserver,spawn}] --n N [--warmup W]
The child waits in get between messages (its peer is waiting, as in the Rust side). Prints
{"value": <mean microseconds per round trip>, "unit": "us"}.
"""

import argparse
import multiprocessing

from benchlib import emit, mean_micros

MSG = bytes(range(16))


def echo(requests, replies, total):
    for _ in range(total):
        replies.put(requests.get())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    requests, replies = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=echo, args=(requests, replies, args.warmup + args.n))
    child.start()

    def roundtrip():
        requests.put(MSG)
        if replies.get() != MSG:
            raise SystemExit("the echo differs from the message")

    micros = mean_micros(roundtrip, args.n, args.warmup)
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"child exited with code {child.exitcode}")
    emit(micros, "us")


if __name__ == "__main__":
    main()
