"""pipe_roundtrip: the parent sends a 16-byte `bytes` on a duplex Pipe, a child echoes it back.

Usage: python3 pipe_roundtrip.py [--method {fork,forkserver,spawn}] [--api {send,send_bytes}] --n N [--warmup W]
The child waits in recv between messages (its peer is waiting, as in the Rust side). Prints
{"value": <mean microseconds per round trip>, "unit": "us"}.
"""

import argparse
import multiprocessing

from benchlib import emit, mean_micros

MSG = bytes(range(16))


def echo(conn, total, api):
    send, recv = (conn.send_bytes, conn.recv_bytes) if api == "send_bytes" else (conn.send, conn.recv)
    for _ in range(total):
        send(recv())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--api", choices=["send", "send_bytes"], default="send")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    parent, child_end = ctx.Pipe()
    child = ctx.Process(target=echo, args=(child_end, args.warmup + args.n, args.api))
    child.start()
    child_end.close()
    send, recv = (
        (parent.send_bytes, parent.recv_bytes) if args.api == "send_bytes" else (parent.send, parent.recv)
    )

    def roundtrip():
        send(MSG)
        if recv() != MSG:
            raise SystemExit("the echo differs from the message")

    micros = mean_micros(roundtrip, args.n, args.warmup)
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"child exited with code {child.exitcode}")
    emit(micros, "us")


if __name__ == "__main__":
    main()
