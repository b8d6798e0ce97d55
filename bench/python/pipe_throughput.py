"""pipe_throughput: a child sends N+1 16-byte `bytes` into Pipe(duplex=False), the parent receives them.

Usage: python3 pipe_throughput.py [--method {fork,forkserver,spawn}] [--api {send,send_bytes}] --n N
`send` pickles each message (conn.send / conn.recv); `send_bytes` does not (conn.send_bytes /
conn.recv_bytes). Prints {"value": <million messages per second>, "unit": "Mmsg/s"}: N messages
divided by the time from the parent's first receive (which absorbs the child's start-up) to its
last.
"""

import argparse
import multiprocessing
import time

from benchlib import emit

MSG = bytes(range(16))


def produce(conn, total, api):
    send = conn.send_bytes if api == "send_bytes" else conn.send
    for _ in range(total):
        send(MSG)
    conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--api", choices=["send", "send_bytes"], default="send")
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    ctx = multiprocessing.get_context(args.method)
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=produce, args=(writer, args.n + 1, args.api))
    child.start()
    writer.close()
    recv = reader.recv_bytes if args.api == "send_bytes" else reader.recv
    recv()
    start = time.perf_counter()
    for _ in range(args.n - 1):
        recv()
    last = recv()
    elapsed = time.perf_counter() - start
    child.join()
    if child.exitcode != 0 or last != MSG:
        raise SystemExit(f"child exited with code {child.exitcode}, last message {last!r}")
    emit(args.n / elapsed / 1e6, "Mmsg/s")


if __name__ == "__main__":
    main()
