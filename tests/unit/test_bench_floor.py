"""The posting benchmark's floor: the ledger's own CPU per post and per batch entry, in process on the
in-memory log (what the single-post and batch targets are held against, docs/benchmarks.md)."""

from __future__ import annotations

import gc
from pathlib import Path

from bench.posting import service_floor


def test_the_floor_is_measured_on_real_posts_and_batches(tmp_path: Path) -> None:
    floor = service_floor(tmp_path, posts=30, batches=1)
    assert floor.posts == 30 and floor.batches == 1
    # A post does real work (HTTP handling, decision, sealing, fold): well above nothing, and an entry of a batch
    # costs less than a post of its own (one request, one transaction for a thousand).
    assert 0.1 < floor.single_ms < 100
    assert 0.01 < floor.batch_entry_ms < floor.single_ms
    assert gc.get_freeze_count() == 0  # the collector is left as it was
    assert not (tmp_path / "ledger-floor" / "ledger.sqlite-wal").exists()  # the app was stopped
