"""The LAN lab's rate parsing and shaping defaults, which need no namespaces."""

from __future__ import annotations

import pytest

from support.lanlab import rate_bits, tbf_params


def test_rates_and_tbf_defaults():
    assert rate_bits("1gbit") == 1_000_000_000
    assert rate_bits("300mbit") == 300_000_000
    assert rate_bits("10mbps") == 80_000_000
    assert tbf_params("1gbit") == (125_000, "5ms")
    assert tbf_params("300mbit") == (65536, "5ms")
    with pytest.raises(ValueError):
        rate_bits("fast")
