"""A key file shared by several instances of a service (docs/scaling.md, "Keys with several instances"): the
rotation's files move once, and every holder of the key sees the new one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.contracts.anchoring import key_id
from services.runtime.signing import KeyFileError, SigningKey, next_key_path, retired_dir, rotate


def test_the_instance_that_did_not_announce_reads_the_new_key_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    a, b = SigningKey.load(path, create=True), SigningKey.load(path, create=False)
    first = a.key_id
    assert b.key_id == first and not b.refresh()  # nothing changed yet
    new = key_id(rotate(path))
    a.complete_rotation(new)
    assert a.key_id == new and not next_key_path(path).exists()
    assert b.key_id == first  # in memory until it looks
    assert b.refresh() and b.key_id == new
    b.complete_rotation(new)  # the announcement folded later: already done, nothing moves again
    assert [p.name for p in retired_dir(path).iterdir()] == [f"ledger-{first}.pem"]


def test_two_instances_completing_the_same_rotation_at_once_move_the_files_once(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    holders = [SigningKey.load(path, create=True) for _ in range(4)]
    first = holders[0].key_id
    new = key_id(rotate(path))
    errors: list[BaseException] = []

    def complete(holder: SigningKey) -> None:
        try:
            holder.complete_rotation(new)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(h,)) for h in holders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert {h.key_id for h in holders} == {new}
    assert [p.name for p in retired_dir(path).iterdir()] == [f"ledger-{first}.pem"]
    assert key_id(SigningKey.load(path, create=False).public) == new


def test_a_successor_nowhere_in_the_key_files_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.pem"
    key = SigningKey.load(path, create=True)
    with pytest.raises(KeyFileError, match="neither in"):
        key.complete_rotation("0123456789abcdef")
    rotate(path)
    with pytest.raises(KeyFileError, match="is not the announced key"):
        key.complete_rotation("0123456789abcdef")


def test_a_key_directory_that_cannot_change_still_switches_to_the_announced_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Kubernetes Secret is mounted read-only: the files cannot move, the announced key signs all the same."""
    path = tmp_path / "keys" / "ledger.pem"
    key = SigningKey.load(path, create=True)
    first = key.key_id
    new = key_id(rotate(path))

    def read_only(*_args: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("services.runtime.signing.os.replace", read_only)
    key.complete_rotation(new)
    assert key.key_id == new
    assert not key.refresh() and key.key_id == new  # the unchanged file does not bring the old key back
    assert key_id(SigningKey.load(path, create=False).public) == first and next_key_path(path).exists()


def test_a_key_file_is_never_seen_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the new key's bytes are written and synced, nothing is at the key's path yet (an instance
    starting at the same moment finds no key, or the whole key: the two-instance demo once read half of one)."""
    import os

    path = tmp_path / "keys" / "members.pem"
    seen: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if not seen:  # the first sync is the key's bytes
            seen.append(path.exists())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    key = SigningKey.load(path, create=True)
    assert seen == [False]
    assert SigningKey.load(path, create=False).key_id == key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["members.pem"]  # no draft left behind
    assert path.stat().st_mode & 0o777 == 0o600


def test_instances_creating_the_key_at_once_all_read_one_whole_key(tmp_path: Path) -> None:
    def one(path: Path, start: threading.Barrier, got: list[str], failed: list[BaseException]) -> None:
        start.wait()
        try:
            got.append(SigningKey.load(path, create=True).key_id)
        except BaseException as exc:
            failed.append(exc)

    for round_ in range(20):
        start = threading.Barrier(6)
        got: list[str] = []
        failed: list[BaseException] = []
        args = (tmp_path / f"round-{round_}" / "members.pem", start, got, failed)
        threads = [threading.Thread(target=one, args=args) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not failed and len(got) == 6 and len(set(got)) == 1, (failed, got)
