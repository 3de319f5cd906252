"""NTP through an asymmetric emulated link: the client's offset is off by (forward − back)/2."""

from __future__ import annotations

import numpy as np
import pytest

from skewlab.clocks.oscillator import NodeClock, Oscillator
from skewlab.net.distributions import NS_PER_MS, ConstantDelay
from skewlab.net.link import BACK, DELIVERED, FORWARD, LinkHub
from skewlab.net.profiles import DirectionSpec, ResolvedLink
from skewlab.ntp.client import NtpClient
from skewlab.ntp.server import NtpServer

FWD_MS, BACK_MS = 6.0, 2.0
CLOCK_OFFSET_NS = 3 * NS_PER_MS  # the client's clock is 3 ms ahead: true θ = −3 ms


def test_asymmetric_link_biases_ntp_offset_by_half_the_asymmetry() -> None:
    spec = ResolvedLink(
        forward=DirectionSpec(delay=ConstantDelay(delay_ms=FWD_MS)),
        back=DirectionSpec(delay=ConstantDelay(delay_ms=BACK_MS)),
    )
    server = NtpServer("127.0.0.1", 0).start()
    hub = LinkHub(seed=1).start()
    samples = []
    try:
        relay = hub.add_link("client~ntp-server", spec, ("127.0.0.1", server.port))
        clock = NodeClock(Oscillator(offset_ns=CLOCK_OFFSET_NS))
        with NtpClient(relay[0], relay[1], clock=clock, timeout_s=1.0) as client:
            for _ in range(8):
                samples.append(client.exchange())
        hub.drain(2)
    finally:
        hub.stop()
        server.stop()
    t = hub.links["client~ntp-server"].table()
    d = np.asarray(t.column("direction"))
    fate = np.asarray(t.column("fate"))
    delay = np.asarray(t.column("truth_out_ns")) - np.asarray(t.column("truth_in_ns"))
    fwd = delay[(d == FORWARD) & (fate == DELIVERED)]
    back = delay[(d == BACK) & (fate == DELIVERED)]
    assert len(fwd) == len(back) == len(samples) == 8

    true_theta = -CLOCK_OFFSET_NS  # reference − local
    expected_err = (FWD_MS - BACK_MS) / 2 * NS_PER_MS  # the requested asymmetry
    errs = []
    for s, f, b in zip(samples, fwd, back, strict=True):
        errs.append((s.delay_ns, s.offset_ns - true_theta, (f - b) / 2))
        # the round trip includes both emulated delays
        assert s.delay_ns >= (FWD_MS + BACK_MS) * NS_PER_MS
        # whatever the asymmetry, the true offset stays inside θ ± λ
        assert abs(s.offset_ns - true_theta) <= s.root_distance_ns
    # The minimum-delay exchange (the one NTP keeps) is the least disturbed by the loopback hops
    # and the server's scheduling, which the relay does not see.
    _, err, relay_err = min(errs)
    assert err == pytest.approx(relay_err, abs=0.3 * NS_PER_MS)  # what the relay achieved
    assert err == pytest.approx(expected_err, abs=0.5 * NS_PER_MS)  # what was requested
    assert float(np.median([e for _, e, _ in errs])) == pytest.approx(
        expected_err, abs=0.5 * NS_PER_MS
    )
