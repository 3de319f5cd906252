"""Fuzz the decoders with random and mutated inputs: no crash, no hang, every input accepted
or rejected with a reason.

Targets (each in its own child process, so a crash of the interpreter or of pyarrow's native
code is seen and counted rather than ending the benchmark):
  wire   event packets: WireCodec.decode_fields, with and without an HMAC key
  ntp    NTP replies: check_reply + sample_from_reply (the client's whole reply path)
  trace  Parquet part files: trace.read_part with the receipt schema

Half the inputs are random bytes, half mutations of valid inputs (byte flips, inserts,
deletes, truncation, extension, splices). A *crash* is any exception other than the
decoder's own (WireError, NtpError, TraceError), or a child that dies; a *hang* is a child
that exceeds its time limit. Both are counted in the final line:
``RESULT fuzz_crashes <crashes + hangs> count``.

Usage: python benchmarks/fuzz.py [--n 1000000] [--seed 1] [--targets wire,ntp,trace]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

TARGETS = ("wire", "ntp", "trace")
SOURCES = ["system", "ntp", "truetime", "clockbound", "skewlab"]


def _mutate(rng: random.Random, seed: bytes, other: bytes) -> bytes:
    d = bytearray(seed)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        n = len(d)
        if op <= 2 and n:  # flip / set bytes (most common)
            d[rng.randrange(n)] = rng.randrange(256)
        elif op == 3 and n:
            del d[rng.randrange(n) :]  # truncate
        elif op == 4:
            d += rng.randbytes(rng.randint(1, 32))  # extend
        elif op == 5 and n:
            i = rng.randrange(n)
            del d[i : i + rng.randint(1, 16)]  # delete a run
        else:
            i = rng.randrange(n + 1)
            j = rng.randrange(len(other) + 1)
            d[i:i] = other[j : j + rng.randint(1, 32)]  # splice from another valid input
    return bytes(d)


def _wire_case() -> tuple[list[bytes], Callable[[bytes, int], object], tuple]:
    from skewlab.net.wire import KIND_END, KIND_EVENT, WireCodec, WireError

    signed, plain = WireCodec(SOURCES, b"fuzz"), WireCodec(SOURCES)
    flat = (2, 10, 9, 11, 1, 5, 4, 6, 0, -(2**63), -(2**63), -(2**63), 2, 1, 1, 1, 2, 3, 2, 4)
    seeds = [c.encode_flat(k, i, i, 7 * i, flat, p) for c in (signed, plain)
             for k in (KIND_EVENT, KIND_END) for i, p in ((0, 0), (2**40, 13))]  # fmt: skip
    codecs = (signed, plain)

    def run(data: bytes, i: int) -> object:
        return codecs[(i >> 1) & 1].decode_fields(data)

    return seeds, run, (WireError,)


def _ntp_case() -> tuple[list[bytes], Callable[[bytes, int], object], tuple]:
    from skewlab.ntp.client import NtpError, check_reply, sample_from_reply
    from skewlab.ntp.packet import MODE_SERVER, NtpPacket, ns_to_ntp64, ns_to_short

    t1 = 1_800_000_000 * 10**9
    xmt = ns_to_ntp64(t1) ^ 0x5A
    seeds = [
        NtpPacket(mode=MODE_SERVER, stratum=s, origin_ts=xmt, receive_ts=ns_to_ntp64(t1 + 9_000),
                  transmit_ts=ns_to_ntp64(t1 + 10_000), root_dispersion=ns_to_short(1_000),
                  ref_id=b"KISS" if s == 0 else b"SKEW", leap=3 if s == 0 else 0).encode()
        for s in (0, 1, 2)
    ]  # fmt: skip
    seeds.append(seeds[1] + bytes(20))  # with an extension-sized tail

    def run(data: bytes, i: int) -> object:
        return sample_from_reply("fuzz", check_reply(data, xmt), t1, t1 + 20_000)

    return seeds, run, (NtpError,)


def _trace_case() -> tuple[list[bytes], Callable[[bytes, int], object], tuple]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from skewlab.trace import TraceError, read_part, receipt_schema

    schema = receipt_schema(SOURCES[:2])
    rows = [
        {"event_id": i, "seq": i, "truth_ns": 10 * i, "local_ns": 10 * i + 3,
         "send_local_ns": 10 * i - 2, **{c: (i if c.endswith("_ns") else 2)
                                         for c in schema.names[5:]}}
        for i in range(24)
    ]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=schema)
    seeds = []
    for comp in ("lz4", "none", "zstd"):
        b = io.BytesIO()
        pq.write_table(table, b, compression=comp)
        seeds.append(b.getvalue())

    def run(data: bytes, i: int) -> object:
        return read_part(data, schema)

    return seeds, run, (TraceError,)


CASES = {"wire": _wire_case, "ntp": _ntp_case, "trace": _trace_case}


def child(target: str, n: int, seed: int) -> dict:
    """Fuzz one target in this process; return its counts."""
    seeds, run, expected = CASES[target]()
    rng = random.Random(seed)
    max_len = max(len(s) for s in seeds) + 64
    counts: Counter[str] = Counter()
    crashes: list[str] = []
    slowest = 0
    t_start = time.perf_counter()
    for i in range(n):
        if i & 1:
            data = rng.randbytes(rng.randrange(max_len))
        else:
            data = _mutate(rng, rng.choice(seeds), rng.choice(seeds))
        t = time.perf_counter_ns()
        try:
            run(data, i)
            counts["accepted"] += 1
        except expected as e:
            counts[f"rejected_{e.reason}"] += 1  # type: ignore[attr-defined]
        except Exception as e:  # a crash: anything else escaping the decoder
            counts["crash"] += 1
            if len(crashes) < 5:
                crashes.append(f"{type(e).__name__}: {e} (input {data[:64].hex()}...)")
        slowest = max(slowest, time.perf_counter_ns() - t)
    return {
        "target": target,
        "inputs": n,
        "counts": dict(counts),
        "crash_examples": crashes,
        "slowest_input_ms": round(slowest / 1e6, 3),
        "elapsed_s": round(time.perf_counter() - t_start, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="inputs per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--per-input-limit-ms", type=float, default=5.0,
                    help="child time limit = inputs × this + 60 s (beyond it: a hang)")  # fmt: skip
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.n, a.seed)))
        return 0
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    bad = [t for t in targets if t not in CASES]
    if bad:
        ap.error(f"unknown target(s) {bad}; known: {', '.join(TARGETS)}")
    failures = 0
    print(f"fuzz: {a.n:,} inputs per target, seed {a.seed}")
    for t in targets:
        limit = a.n * a.per_input_limit_ms / 1000 + 60
        cmd = [sys.executable, __file__, "--child", t, "--n", str(a.n), "--seed", str(a.seed)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            print(f"  {t}: HANG (no result within {limit:.0f} s)")
            failures += 1
            continue
        if p.returncode != 0:
            print(f"  {t}: CRASH (child exit {p.returncode}): {p.stderr.strip()[-500:]}")
            failures += 1
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        c = r["counts"]
        crashes = c.pop("crash", 0)
        failures += crashes
        total = sum(c.values()) + crashes
        assert total == r["inputs"], (total, r["inputs"])  # every input has an outcome
        acc = c.pop("accepted", 0)
        print(f"  {t}: {r['inputs']:,} inputs in {r['elapsed_s']} s, accepted {acc:,}, "
              f"crashes {crashes}, slowest {r['slowest_input_ms']} ms")  # fmt: skip
        for reason, k in sorted(c.items(), key=lambda kv: -kv[1]):
            print(f"      {reason:32s} {k:>10,}")
        for ex in r["crash_examples"]:
            print(f"      crash: {ex}")
    print(f"RESULT fuzz_crashes {failures} count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
