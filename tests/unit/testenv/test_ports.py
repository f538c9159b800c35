"""Ports for the test environment's components (``testenv.process.free_ports``).

Aspects tested: the ports are distinct, below the kernel's ephemeral range (where an
outgoing connection could take a picked port before its component binds it), bindable,
and a port that is taken is skipped; the ephemeral range is read from procfs, with
Linux's default when it cannot be read.
"""

import random
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from konsumerator_dev.testenv import process
from konsumerator_dev.testenv.errors import PortInUse


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32), count=st.integers(min_value=1, max_value=8))
def test_ports_are_distinct_and_below_the_ephemeral_range(seed: int, count: int) -> None:
    low, _ = process._ephemeral_range()
    names = [f"c{i}" for i in range(count)]
    ports = process.free_ports(names, rng=random.Random(seed))
    assert sorted(ports) == sorted(names)
    assert len(set(ports.values())) == count
    assert all(10000 <= p < low for p in ports.values())


def _adjacent_pair() -> tuple[socket.socket, int]:
    """A listening socket on a port below the ephemeral range whose next port was free
    a moment ago. Ports there are never handed to outgoing connections, unlike one the
    kernel picks for ``bind(port 0)``: its neighbour could be any connection's (the
    reason ``free_ports`` avoids that range)."""
    low = process._ephemeral_range()[0]
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, min(30000, low - 1))
        taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        spare = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            taken.bind(("127.0.0.1", port))
            spare.bind(("127.0.0.1", port + 1))
        except OSError:
            taken.close()
            continue
        finally:
            spare.close()
        taken.listen()
        return taken, port
    raise AssertionError("no two adjacent free ports below the ephemeral range")


def test_a_taken_port_is_skipped() -> None:
    taken, port = _adjacent_pair()
    try:
        # Two candidates, one of them taken: the other is always picked.
        picked = [
            process.free_ports(["a"], rng=random.Random(seed), span=(port, port + 1))["a"]
            for seed in range(10)
        ]
        with pytest.raises(PortInUse, match="no free loopback port"):
            process.free_ports(["a"], rng=random.Random(0), span=(port, port))
    finally:
        taken.close()
    assert set(picked) == {port + 1}


def test_the_ephemeral_range_comes_from_procfs(tmp_path: Path) -> None:
    good = tmp_path / "range"
    good.write_text("40000\t50000\n")
    assert process._ephemeral_range(good) == (40000, 50000)
    assert process._ephemeral_range(tmp_path / "missing") == (32768, 60999)
