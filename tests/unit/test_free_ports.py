"""Ports that tests and tools choose for the servers they start lie below the kernel's ephemeral range, where
no outgoing connection can take them between the check and the bind."""

from __future__ import annotations

from pathlib import Path

from services.devtools.launcher.stack import free_base_port, port_is_free


def test_a_base_port_has_every_offset_free_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    offsets = [-1, 0, 1, 2, 3, 100, 101, 102, 103]
    for _ in range(20):
        base = free_base_port(offsets)
        assert all(1024 < base + offset < low for offset in offsets)
        assert all(port_is_free(base + offset) for offset in offsets)
