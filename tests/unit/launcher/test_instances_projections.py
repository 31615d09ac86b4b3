"""``baotuan run --instances N`` keeps each instance's projection under ``instances/``; when the local broker
is another cluster, those are set aside with the single-instance projections (they are rebuilt by replay)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.devtools.launcher import stack


def test_the_instances_projections_are_set_aside_for_another_cluster(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clusters = iter(["cluster-a", "cluster-b"])
    # The cluster's id is what the broker would answer; what is checked is what happens to the files.
    monkeypatch.setattr(stack, "cluster_id", lambda bootstrap, **config: next(clusters))
    assert stack.guard_projections(tmp_path, "broker:9092") is None
    projection = tmp_path / "instances" / "ledger-2" / "ledger.sqlite"
    projection.parent.mkdir(parents=True)
    projection.write_bytes(b"offsets of cluster a")
    (tmp_path / "ledger.sqlite").write_bytes(b"offsets of cluster a")
    note = stack.guard_projections(tmp_path, "broker:9092")
    assert note is not None and "another Kafka cluster" in note
    stale = tmp_path / "stale-projections-cluster-a"
    assert (stale / "instances" / "ledger-2" / "ledger.sqlite").read_bytes() == b"offsets of cluster a"
    assert (stale / "ledger.sqlite").exists()
    assert not (tmp_path / "instances").exists() and not (tmp_path / "ledger.sqlite").exists()
