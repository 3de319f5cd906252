"""NTP accuracy against truth under path asymmetry, over loopback UDP.

For each (request-path, reply-path) delay pair the embedded server is started with those
delays and a client on an emulated node clock (3 ms ahead) takes N exchanges. Reported per
pair: the predicted error (a − b)/2, the measured mean and worst error of θ against truth,
the error of the minimum-delay sample, and the interval coverage (fraction of samples with
θ − λ ≤ true offset ≤ θ + λ). Final line: the coverage over all samples.

Usage: python benchmarks/ntp_accuracy.py [--samples N]
"""

from __future__ import annotations

import argparse

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.ntp.client import NtpClient, NtpError
from skewlab.ntp.sample import NtpSample
from skewlab.ntp.server import NtpServer

MS = 1_000_000
ASYMMETRIES_MS = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (5.0, 1.0), (2.0, 8.0), (20.0, 0.0)]


def true_offset(s: NtpSample) -> int:
    """Reference − local at T4, from the exchange's own truth stamp."""
    assert s.truth_t4_ns is not None
    return s.truth_t4_ns - s.t4_ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20, help="exchanges per asymmetry")
    args = ap.parse_args()
    clock = NodeClock(Oscillator(offset_ns=3 * MS))
    covered = total = failed = 0
    print(
        f"{'a ms':>6} {'b ms':>6} {'pred ms':>8} {'mean err':>9} {'max |err−pred|':>15} "
        f"{'best err':>9} {'mean λ ms':>9} {'coverage':>9}"
    )
    for a_ms, b_ms in ASYMMETRIES_MS:
        a, b = round(a_ms * MS), round(b_ms * MS)
        samples: list[NtpSample] = []
        with (
            NtpServer("127.0.0.1", 0, request_delay_ns=a, reply_delay_ns=b) as srv,
            NtpClient("127.0.0.1", srv.port, clock=clock, timeout_s=2) as client,
        ):
            for _ in range(args.samples):
                try:
                    samples.append(client.exchange())
                except NtpError:
                    failed += 1
        if not samples:
            print(f"{a_ms:6.1f} {b_ms:6.1f}  no samples")
            continue
        pred = (a - b) / 2
        errs = [s.offset_ns - true_offset(s) for s in samples]
        cov = sum(s.earliest_offset_ns <= true_offset(s) <= s.latest_offset_ns for s in samples)
        best = min(samples, key=lambda s: s.delay_ns)
        covered += cov
        total += len(samples)
        print(
            f"{a_ms:6.1f} {b_ms:6.1f} {pred / MS:8.3f} {sum(errs) / len(errs) / MS:9.3f} "
            f"{max(abs(e - pred) for e in errs) / MS:15.3f} "
            f"{(best.offset_ns - true_offset(best)) / MS:9.3f} "
            f"{sum(s.root_distance_ns for s in samples) / len(samples) / MS:9.3f} "
            f"{cov / len(samples):9.3f}"
        )
    print(f"samples {total}, failed exchanges {failed}")
    if total == 0:
        raise SystemExit("no samples at all")
    print(f"RESULT ntp_interval_coverage {covered / total:.4f} ratio")


if __name__ == "__main__":
    main()
