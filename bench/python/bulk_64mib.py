"""bulk_64mib: the parent sends one 64 MiB buffer on a duplex Pipe, a child receives it and acks.

Usage: python3 bulk_64mib.py [--method {fork,forkserver,spawn}] [--api {send_bytes,send}] --rounds R
`send_bytes` sends the raw bytes (conn.send_bytes / conn.recv_bytes); `send` pickles a `bytes`
object (conn.send / conn.recv). A round is timed from the parent's send to the child's 8-byte
ack (sent once the whole buffer is in its memory); one unmeasured round first. Prints
{"value": <GiB per second of the best round>, "unit": "GiB/s"}.
"""

import argparse
import multiprocessing
import time

from benchlib import emit

SIZE = 64 << 20


def receive(conn, rounds, api):
    recv = conn.recv_bytes if api == "send_bytes" else conn.recv
    for _ in range(rounds):
        data = recv()
        if len(data) != SIZE or data[-1] != (SIZE - 1) % 256:
            raise SystemExit(f"received {len(data)} bytes, not the buffer sent")
        del data
        conn.send_bytes(SIZE.to_bytes(8, "little"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", choices=["fork", "forkserver", "spawn"], default="forkserver")
    parser.add_argument("--api", choices=["send_bytes", "send"], default="send_bytes")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    data = bytes(range(256)) * (SIZE // 256)
    ctx = multiprocessing.get_context(args.method)
    parent, child_end = ctx.Pipe()
    child = ctx.Process(target=receive, args=(child_end, args.rounds + 1, args.api))
    child.start()
    child_end.close()
    send = parent.send_bytes if args.api == "send_bytes" else parent.send
    best = float("inf")
    for round in range(args.rounds + 1):
        start = time.perf_counter()
        send(data)
        if int.from_bytes(parent.recv_bytes(), "little") != SIZE:
            raise SystemExit("bad ack")
        if round > 0:
            best = min(best, time.perf_counter() - start)
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"child exited with code {child.exitcode}")
    emit(SIZE / (1 << 30) / best, "GiB/s")


if __name__ == "__main__":
    main()
