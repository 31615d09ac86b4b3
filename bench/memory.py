"""Where the audit's memory goes: ``python -m bench.memory --bootstrap B [--offsets ...]``.

Replays the log (or the slice ``--offsets`` names, as ``baotuan audit --offsets``) through the
audit in this process, then measures what each part of the auditor's state holds (a deep
``sys.getsizeof`` walk, shared objects counted once, in the order listed) and the process's
RSS — so the report can say which structure grows with the log, and by how much per record.
"""

from __future__ import annotations

import argparse
import resource
import sys
from collections.abc import Iterator
from typing import Any

from services.audit.checks.auditor import run_audit
from services.audit.sources.kafka import KafkaSource
from services.audit.sources.records import parse_offsets

_ATOMS = (str, bytes, int, float, bool, type(None))


def deep_size(root: Any, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it references that ``seen`` does not already hold."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__dict__")):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, _ATOMS):
            continue
        stack.extend(_children(obj))
    return total


def _children(obj: Any) -> Iterator[Any]:
    if isinstance(obj, dict):
        yield from obj.keys()
        yield from obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        yield from obj
    else:
        if hasattr(obj, "__dict__"):
            yield obj.__dict__
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                yield getattr(obj, name)


def parts(auditor: Any) -> Iterator[tuple[str, Any]]:
    """The auditor's state, one level into its books, payouts and postings."""
    for name, value in vars(auditor).items():
        if name in ("books", "payouts", "postings"):
            for inner, item in vars(value).items():
                yield f"{name}.{inner}", item
        else:
            yield name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--offsets", default=None)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    result = run_audit(KafkaSource(args.bootstrap, offsets=parse_offsets(args.offsets)))
    records = max(result.auditor.records, 1)
    seen: set[int] = set()
    sizes = sorted(((deep_size(value, seen), name) for name, value in parts(result.auditor)), reverse=True)
    held = sum(size for size, _ in sizes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{records:,} records replayed; peak RSS {peak:.0f} MB; the auditor's state after the replay "
          f"{held / 1e6:.0f} MB = {held / records:,.0f} bytes per record replayed")
    for size, name in sizes[: args.top]:
        print(f"  {size / 1e6:8.1f} MB  {size / records:7,.0f} B/record  auditor.{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
