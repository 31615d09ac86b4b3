"""A small sampling profiler for every thread of this process (stdlib only).

cProfile sees one thread; a service's time is spread over the request threads, the consumer
thread that folds records into SQLite and kafka-python's network thread, and much of it is
waiting (for an acknowledgement, for the projection, for the writer lock). Sampling
``sys._current_frames()`` every few milliseconds shows where each thread spends its wall
time, and how much of it is waiting.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from types import FrameType

#: A stack made only of these files is a thread idling in the harness or a pool: not counted.
IDLE_FILES = ("/bench/", "<frozen runpy>", "threading.py", "/concurrent/futures/", "/queue.py")
#: Frames that only carry a thread or the harness (not shown in the inclusive list).
PLUMBING = ("threading.py", "/concurrent/futures/thread.py", "/bench/", "<frozen runpy>")
#: A leaf frame here means the thread is blocked (a lock, a condition, a socket poll, a sleep).
WAITS = {("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock"), ("selectors.py", "select"),
         ("queue.py", "get"), ("socket.py", "readinto")}


def _short(path: str) -> str:
    if "/site-packages/" in path:
        return path.split("/site-packages/")[-1]
    if "/work/main/" in path:
        return path.split("/work/main/")[-1]
    return path.rsplit("/", 1)[-1]


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{_short(code.co_filename)}:{code.co_firstlineno}({code.co_name})"


def _waiting(frame: FrameType) -> bool:
    return (_short(frame.f_code.co_filename), frame.f_code.co_name) in WAITS


class Sampler:
    """Samples the stacks of all other threads every ``interval`` seconds while running."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()
        self.inclusive: dict[str, Counter[str]] = {}
        self.leaf: dict[str, Counter[str]] = {}
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._halt.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident != me:
                    self._take(_group(names.get(ident, "?")), frame)
            time.sleep(self.interval)

    def _take(self, name: str, frame: FrameType) -> None:
        stack: list[FrameType] = []
        current: FrameType | None = frame
        while current is not None:
            stack.append(current)
            current = current.f_back
        if all(any(part in f.f_code.co_filename for part in IDLE_FILES) for f in stack):
            return
        self.samples[name] += 1
        waiting = _waiting(frame)
        if not waiting:
            self.busy[name] += 1
            self.leaf.setdefault(name, Counter())[_where(frame)] += 1
        inclusive = self.inclusive.setdefault(name, Counter())
        for where in {_where(f) for f in stack if not any(p in f.f_code.co_filename for p in PLUMBING)}:
            inclusive[where] += 1
        if waiting:
            inclusive["(waiting: lock, condition, socket poll)"] += 1

    def report(self, *, limit: int = 16, threads: int = 4) -> str:
        """Per thread (busiest first): share of its wall time per function (inclusive), and busy leaves."""
        out = [f"sampled every {self.interval * 1000:.0f} ms; % of each thread's wall time (waits included; "
               "a thread idling in the harness or a pool is not counted). Leaves of busy threads lean toward "
               "calls that release the GIL (the sampler runs when they do): read them with the cProfile above."]
        for name, busy in self.busy.most_common(threads):
            count = self.samples[name]
            out.append(f"== thread {name}: {count} samples, busy {100 * busy / count:.0f}% ==")
            for where, n in self.inclusive[name].most_common(limit):
                out.append(f"  {100 * n / count:5.1f}%  {where}")
            out.append("  -- busy on top of the stack:")
            for where, n in self.leaf[name].most_common(limit // 2):
                out.append(f"  {100 * n / count:5.1f}%  {where}")
        return "\n".join(out)


def _group(name: str) -> str:
    """Request threads of a pool share one report ("bench-latency_3" -> "bench-latency")."""
    if "_" in name and name.rsplit("_", 1)[1].isdigit():
        return name.rsplit("_", 1)[0]
    return name
