"""The run directory across an upgrade: a ring file of the earlier layout (version 1) that still
holds records stops the boot with the remedy; an empty one is replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelingest.daemon.rundir import Layout, open_rings
from otelingest.errors import BootError

CAPACITY = 1 << 20


def _v1_ring(path: Path, reserve: int, release: int) -> None:
    """The header of a layout-1 ring: magic, version, data offset, capacity; cursors on lines 1 and 3."""
    head = bytearray(4096)
    head[0:8] = b"OTIRING\0"
    head[8:12] = (1).to_bytes(4, "little")
    head[12:16] = (4096).to_bytes(4, "little")
    head[16:24] = CAPACITY.to_bytes(8, "little")
    head[64:72] = reserve.to_bytes(8, "little")
    head[128:136] = release.to_bytes(8, "little")
    head[192:200] = release.to_bytes(8, "little")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(head) + bytes(CAPACITY))


def test_an_older_ring_holding_records_stops_the_boot(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", 1, 1)
    _v1_ring(layout.ring_path(0, 0), reserve=4096, release=1024)
    with pytest.raises(BootError, match=r"ring layout 1\) and still holds 3072 bytes .* start the previous release"):
        open_rings(layout, CAPACITY)
    assert layout.ring_path(0, 0).read_bytes()[:8] == b"OTIRING\0"  # left as it was


def test_an_empty_older_ring_is_replaced(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "run", 1, 1)
    _v1_ring(layout.ring_path(0, 0), reserve=2048, release=2048)
    (ring,) = open_rings(layout, CAPACITY)
    assert ring.used_bytes == 0
