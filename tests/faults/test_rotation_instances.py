"""A key rotation while two ledger instances run and write (docs/scaling.md, "Keys"; issue 17).

Both instances share the ledger's key file. With 4 partitions the checkpoint streams of the ledger's two
anchored topics are owned by different instances (entries: partition 2, investments: partition 0; the group's
range assignment gives each instance two), so each instance signs checkpoints. After ``baotuan keys rotate
ledger`` only entries are written at first: the signer of entries' checkpoints announces the new key and moves
the files, while the other instance, which signs investments', still holds the first key and must switch before
it signs again. Checked: every
checkpoint after the switch is signed with the new key, ``baotuan audit`` with only the FIRST key pinned finds
nothing, and a checkpoint signed with the retired key after the switch (what an instance that went on with the
old key would publish) is named by the audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_harness import BAOTUAN, ServiceProcess, Stack, entry_body, own_broker, stack_on
from forgery import reseal
from kafka_helpers import read_records
from scale_harness import covered, health, instance, post_any, settled_group, subjects_of

from services.contracts import anchoring
from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES, LEDGER_INVESTMENTS
from services.devtools.synthetic import archive_line
from services.runtime.config import PROJECT_ROOT
from services.runtime.ownership import partition_of
from services.runtime.signing import default_key_path, read_private, retired_dir

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

PARTITIONS = "4"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    before = os.environ.get("BAOTUAN_TOPIC_PARTITIONS")
    os.environ["BAOTUAN_TOPIC_PARTITIONS"] = PARTITIONS  # this process and the instances it starts
    root = tmp_path_factory.mktemp("rotation")
    try:
        with own_broker(root / "kafka") as broker, stack_on(broker, root, timeout_s=5, name="rotation") as world:
            yield world
    finally:
        if before is None:
            os.environ.pop("BAOTUAN_TOPIC_PARTITIONS", None)
        else:
            os.environ["BAOTUAN_TOPIC_PARTITIONS"] = before


def baotuan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BAOTUAN), *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)


def checkpoint_owner(a: ServiceProcess, b: ServiceProcess, topic: str) -> ServiceProcess:
    """The instance that signs ``topic``'s checkpoints: it owns the partition of its checkpoint stream."""
    name = f"{CHECKPOINTS}[{partition_of(topic, int(PARTITIONS))}]"
    owners = [svc for svc in (a, b) if name in health(svc)["instance"]["owned"]]
    assert len(owners) == 1, (topic, [health(svc)["instance"] for svc in (a, b)])
    return owners[0]


def checkpoints(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in read_records(stack.broker.bootstrap, CHECKPOINTS):
        data = record.envelope["data"]
        found.setdefault(data["topic"], []).append(data)
    return found


def write_on_both(stack: Stack, a: ServiceProcess, b: ServiceProcess, villages: list[str], tag: str,
                  topics: tuple[str, ...] = (LEDGER_ENTRIES, LEDGER_INVESTMENTS)) -> None:
    """Entries (ledger.entries) and/or projects (ledger.investments) through both instances at once."""
    admin = stack.token("admin")

    def write(svc: ServiceProcess, n: int) -> None:
        for i in range(3):
            village = villages[(n + i) % len(villages)]
            key = f"{tag}-{n}-{i}"
            # (a 503 while the broker is slow is retried with the same key, as a client would)
            if LEDGER_ENTRIES in topics:
                post_any([svc.url], admin, f"/v1/collectives/{village}/entries", entry_body("3.00", key), key)
            if LEDGER_INVESTMENTS in topics:
                post_any([svc.url], admin, "/v1/projects", {"project_id": f"p-{key}", "name": "滨海产业园",
                                                             "kind": "industrial_park", "town": "金清镇",
                                                             "operator": "路桥滨海产业园运营公司"}, f"p-{key}")

    threads = [threading.Thread(target=write, args=(svc, n)) for n, svc in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def audit(stack: Stack, pinned: Path, archive: Path | None = None) -> tuple[int, dict[str, Any]]:
    source = ["--archive", str(archive)] if archive is not None else ["--bootstrap", stack.broker.bootstrap]
    done = baotuan("audit", *source, "--trusted-keys", str(pinned), "--json")
    return done.returncode, json.loads(done.stdout)


def test_a_rotation_while_two_instances_write_is_followed_by_both(stack: Stack, tmp_path: Path) -> None:
    a, b = instance(stack, "ledger", "a"), instance(stack, "ledger", "b")
    a.start()
    b.start()
    held = settled_group(a, b, timeout_s=120)  # a loaded machine takes its time
    signer_of = {topic: checkpoint_owner(a, b, topic) for topic in (LEDGER_ENTRIES, LEDGER_INVESTMENTS)}
    assert signer_of[LEDGER_ENTRIES] is not signer_of[LEDGER_INVESTMENTS]  # each instance signs checkpoints
    admin = stack.token("admin")
    villages = subjects_of(held[a.url], 2, "ra-") + subjects_of(held[b.url], 2, "rb-")
    for village in villages:
        post_any([a.url], admin, "/v1/collectives", {"collective_id": village, "name": f"{village}村",
                                                     "town": "金清镇"}, f"reg-{village}")
    key_file = default_key_path(stack.root / "cluster", "ledger")
    first = anchoring.key_id(read_private(key_file).public_key())
    pinned = tmp_path / "pinned-first"
    exported = baotuan("keys", "export", "--output", str(pinned), "--data-dir", str(stack.root / "cluster"))
    assert exported.returncode == 0, exported.stderr
    assert [k["key_id"] for k in json.loads((pinned / "keys.json").read_text())["keys"]
            if k["service"] == "ledger"] == [first]

    write_on_both(stack, a, b, villages, "before")
    covered(a, b)

    rotated = baotuan("keys", "rotate", "ledger", "--data-dir", str(stack.root / "cluster"))
    assert rotated.returncode == 0, rotated.stderr
    # Entries first: their checkpoints' signer announces the key and moves the files while the other instance,
    # which signs investments, holds the first key; it must notice before it signs investments' next checkpoint.
    write_on_both(stack, a, b, villages, "after", topics=(LEDGER_ENTRIES,))
    covered(a, b)
    new = anchoring.key_id(read_private(key_file).public_key())
    assert new != first
    for tag in ("later", "last"):  # two more checkpoints of each topic, so each signs with the new key twice
        write_on_both(stack, a, b, villages, tag)
        covered(a, b)
    assert anchoring.key_id(read_private(key_file).public_key()) == new
    assert new != first and {health(a)["checkpoints"]["key_id"], health(b)["checkpoints"]["key_id"]} == {new}
    assert [p.name for p in retired_dir(key_file).iterdir()] == [f"ledger-{first}.pem"]

    # Each topic's checkpoints: the first key, then (from the switch on) the new key only; one topic's stream
    # at least carries the announcement, signed with the first key.
    found = checkpoints(stack)
    announcements = []
    for topic in (LEDGER_ENTRIES, LEDGER_INVESTMENTS):
        keys = [c["key_id"] for c in found[topic]]
        assert keys[0] == first and keys[-1] == new, (topic, keys)
        switch = keys.index(new)
        assert set(keys[:switch]) == {first} and set(keys[switch:]) == {new}, (topic, keys)
        assert len(keys) - switch >= 2, (topic, keys)
        announcements += [(topic, c["number"]) for c in found[topic] if c["next_key"]]
        assert all(c["next_key"]["key_id"] == new and c["key_id"] == first for c in found[topic] if c["next_key"])
    assert announcements, "nobody announced the new key"

    # The audit, with only the first key pinned, follows the announcement and finds nothing.
    status, report = audit(stack, pinned)
    assert status == 0, json.dumps(report)[-3000:]
    assert {k["key_id"] for k in report["anchoring"]["keys_followed"]} == {new}, report["anchoring"]

    # An instance that went on signing with the retired key: the last checkpoint of each topic (after one signed with
    # the new key) signed again with the first key (the checkpoints' stream re-sealed, so only the key can tell).
    # The audit names it, also for the topic whose own stream never announced the rotation.
    archive = tmp_path / "log.jsonl"
    exported = baotuan("export", "--format", "jsonl", "-o", str(archive), "--bootstrap", stack.broker.bootstrap)
    assert exported.returncode == 0, exported.stderr
    retired_key = read_private(retired_dir(key_file) / f"ledger-{first}.pem")
    lines = archive.read_text(encoding="utf-8").splitlines(keepends=True)
    assert audit(stack, pinned, archive)[0] == 0  # the untouched archive passes
    for topic in (LEDGER_ENTRIES, LEDGER_INVESTMENTS):
        rows = [json.loads(line) for line in lines]
        last = max((i for i, row in enumerate(rows) if row.get("event") and row["topic"] == CHECKPOINTS
                    and row["event"]["data"]["topic"] == topic), key=lambda i: rows[i]["event"]["data"]["number"])
        data = rows[last]["event"]["data"]
        assert data["key_id"] == new and data["next_key"] is None
        data["key_id"] = first
        data["signature"] = anchoring.sign(retired_key, anchoring.checkpoint_payload(data))
        reseal(rows, CHECKPOINTS, topic)
        forged = tmp_path / f"forged-{topic}.jsonl"
        forged.write_text("".join(archive_line(row) if row.get("event") else line
                                  for row, line in zip(rows, lines, strict=True)), encoding="utf-8")
        status, report = audit(stack, pinned, forged)
        assert status != 0
        named = [f for f in report["findings"] if f["check"] == "checkpoint"]
        assert len(named) == 1, named
        assert named[0]["subject"] == topic and "after a rotation only the new key signs" in named[0]["message"]
        assert first in named[0]["message"], named[0]
