"""Shared helpers for the Python counterparts of the multiproc-bench workloads.

Every script prints exactly one JSON line on stdout, ``{"value": <float>, "unit": "<unit>"}``,
which ``bench/src/python.rs`` parses. Anything else goes to stderr.
"""

import json
import sys
import time


def mean_micros(op, n, warmup):
    """Run ``op()`` ``warmup`` times unmeasured, then ``n`` times; return mean microseconds per call."""
    for _ in range(warmup):
        op()
    start = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - start) * 1e6 / n


def emit(value, unit):
    """Print the one result line the Rust harness reads."""
    sys.stdout.write(json.dumps({"value": value, "unit": unit}) + "\n")
    sys.stdout.flush()
