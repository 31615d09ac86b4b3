"""The token file (issue 13.9): `baotuan tokens add` never shows a reader a half-written file, and two
adds at once lose neither token."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

from services.runtime.auth import TokenRegistry, add_token, hash_token


def _big_token_file(path: Path, count: int) -> None:
    """A token file of ``count`` principals, so that rewriting it takes long enough to be caught midway."""
    tokens = [{"name": f"village-{i}", "sha256": hash_token(f"bt_{i}"), "role": "accountant",
               "scope": [f"village-{i}", "联盟村股份经济合作社" * 4]} for i in range(count)]
    path.write_text(json.dumps({"tokens": tokens}, ensure_ascii=False, indent=2), encoding="utf-8")


def test_a_reader_never_sees_a_half_written_token_file_while_tokens_are_added(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    _big_token_file(path, 4000)
    registry = TokenRegistry.load(path)
    stop = threading.Event()
    failures: list[Exception] = []
    reads = 0

    def read_all_the_time() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                # What every request does: re-read the file when it changed, then look the token up.
                assert registry.authenticate("Bearer bt_7").name == "village-7"
                reads += 1
            except Exception as exc:  # a JSONDecodeError on the old in-place rewrite
                failures.append(exc)
                return

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for i in range(40):
            add_token(path, name=f"new-{i}", role="operator", scope=["binhai-park"])
    finally:
        stop.set()
        reader.join()
    assert failures == []
    assert reads > 0
    names = {t["name"] for t in json.loads(path.read_text(encoding="utf-8"))["tokens"]}
    assert {f"new-{i}" for i in range(40)} <= names
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # no temporary file left behind


def test_two_adds_at_once_keep_both_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    _big_token_file(path, 1000)

    def add_many(prefix: str) -> None:
        for i in range(15):
            add_token(path, name=f"{prefix}-{i}", role="board", scope=["binhai-park"])

    threads = [threading.Thread(target=add_many, args=(prefix,)) for prefix in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = {t["name"] for t in json.loads(path.read_text(encoding="utf-8"))["tokens"]}
    assert {f"{p}-{i}" for p in ("a", "b") for i in range(15)} <= names
