"""What every benchmark shares: figures, the broker, the ledger server, timing, memory and profiles."""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import platform
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from services.devtools.broker import KAFKA_VERSION, LocalBroker, free_port
from services.runtime.auth import add_token
from services.runtime.config import PROJECT_ROOT

VENV_BIN = Path(sys.executable).parent


@dataclass
class Figure:
    """One measured number, with the baseline it is held against and the target it must meet."""

    label: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_label: str = ""
    target: str = ""
    met: bool | None = None
    digits: int = 0

    def show(self, number: float | None) -> str:
        if number is None:
            return "—"
        return f"{number:,.{self.digits}f}"

    def line(self) -> str:
        text = f"{self.label}: {self.show(self.value)} {self.unit}"
        if self.baseline is not None:
            text += f" | {self.baseline_label}: {self.show(self.baseline)} {self.unit}"
        if self.ratio is not None:
            text += f" | {self.ratio_label or 'ratio'} {self.ratio:.2f}"
        if self.target:
            text += f" | target {self.target}: {'MET' if self.met else 'NOT MET'}"
        return text


@dataclass
class Outcome:
    """One benchmark's result: its figures, tables for the report, notes and (when missed) a profile."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print("  " + figure.line(), flush=True)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)
        print("  · " + text, flush=True)

    @property
    def missed(self) -> bool:
        return any(f.met is False for f in self.figures)


@dataclass
class Context:
    """The run: its size, its scratch directory, where to find the tools."""

    quick: bool
    work: Path
    profile: str = "missed"  # "missed" | "always" | "never"
    events: int = 1_000_000
    seconds: float = 20.0
    log_summary: Any = None  # the generated log (bench.generate.Summary), shared by replay and peer
    audit_run: Any = None  # the replay's measured audit run, reused by the peer benchmark
    notes: list[str] = field(default_factory=list)

    def tool(self, name: str) -> str:
        found = VENV_BIN / name
        return str(found) if found.exists() else (shutil.which(name) or name)

    def should_profile(self, missed: bool) -> bool:
        return self.profile == "always" or (self.profile == "missed" and missed)


def say(text: str) -> None:
    print(text, flush=True)


# -- the broker ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def broker(ctx: Context, name: str) -> Iterator[str]:
    """A broker for one phase: $KAFKA_BOOTSTRAP_SERVERS if set, else a fresh local one (stopped after)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    local = LocalBroker(ctx.work / f"kafka-{name}", free_port(), free_port())
    began = time.perf_counter()
    local.start()
    say(f"  broker {local.bootstrap} up in {time.perf_counter() - began:.1f} s")
    try:
        yield local.bootstrap
    finally:
        local.stop()
        shutil.rmtree(local.data_dir / "logs", ignore_errors=True)


# -- the ledger service as a real server ---------------------------------------------------------------------


@dataclass
class LedgerServer:
    """``baotuan serve ledger`` (gunicorn, one gthread worker) on a free port, with an admin token."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log_file: Path

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def worker_pids(self) -> list[int]:
        return [self.process.pid, *_children(self.process.pid)]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the gunicorn master and its worker so far."""
        return sum(_cpu_seconds(pid) for pid in self.worker_pids())


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(child) for child in text]
    return found


def _cpu_seconds(pid: int) -> float:
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """CPU time (user + system) in a ``/proc/…/stat`` file: a process's, or a thread's (``task/<tid>/stat``);
    0 when it is gone."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def ledger_server(ctx: Context, bootstrap: str, name: str = "ledger") -> Iterator[LedgerServer]:
    data_dir = ctx.work / f"{name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    tokens = data_dir / "tokens.json"
    token = add_token(tokens, name="bench", role="admin")
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BAOTUAN_DATA_DIR": str(data_dir),
           "BAOTUAN_TOKENS_FILE": str(tokens), "PYTHONUNBUFFERED": "1"}
    log_file = ctx.work / f"{name}-server.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen([ctx.tool("baotuan"), "serve", "ledger", "--port", str(port)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True)
    server = LedgerServer(f"http://127.0.0.1:{port}", token, process, log_file)
    try:
        _wait_healthy(server)
        yield server
    finally:
        _stop(process)


def _wait_healthy(server: LedgerServer, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the ledger server exited ({server.process.returncode}):\n" + tail(server.log_file))
        with contextlib.suppress(requests.RequestException):
            if requests.get(server.url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError("the ledger server did not become healthy:\n" + tail(server.log_file))


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- measuring ---------------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


@dataclass
class Measured:
    """A finished subprocess: exit code, wall time, peak RSS and CPU of its whole process tree, output tails.

    ``peak_rss_mb`` is the highest sum of VmRSS over the process and every descendant, sampled
    every 20 ms (a tool that starts helper processes is charged for them); ``own_peak_rss_mb`` is
    the kernel's ru_maxrss of the process itself.
    """

    returncode: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    stdout: str
    stderr: str
    own_peak_rss_mb: float = 0.0
    processes: int = 1


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 1800.0,
                 out_dir: Path, name: str) -> Measured:
    """Run ``cmd`` to completion, sampling the RSS of its process tree; CPU time from wait4 (children included)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = out_dir / f"{name}.out", out_dir / f"{name}.err"
    peak_kb, seen = 0, {0}
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        began = time.perf_counter()
        process = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=PROJECT_ROOT)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            tree = [process.pid, *_descendants(process.pid)]
            seen.update(tree)
            peak_kb = max(peak_kb, sum(_rss_kb(p) for p in tree))
            time.sleep(0.02)
        seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
    own = usage.ru_maxrss / 1024
    return Measured(process.returncode, seconds, max(peak_kb / 1024, own), usage.ru_utime + usage.ru_stime,
                    stdout_path.read_text(errors="replace"), stderr_path.read_text(errors="replace"),
                    own_peak_rss_mb=own, processes=len(seen) - 1)


def profile_call(fn: Callable[[], Any], *, limit: int = 22, restrict: str | None = None) -> str:
    """Run ``fn`` under cProfile; the top functions by cumulative and by own time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    return format_profile(pstats.Stats(profiler), limit=limit, restrict=restrict)


def format_profile(stats: pstats.Stats, *, limit: int = 22, restrict: str | None = None) -> str:
    """Cumulative (only functions whose path matches ``restrict``, if given) and own-time tables."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    out.write("-- by cumulative time" + (f" (functions matching {restrict!r})" if restrict else "") + " --\n")
    stats.sort_stats("cumulative").print_stats(*([restrict, limit] if restrict else [limit]))
    out.write("-- by own time --\n")
    stats.sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    for prefix in (r"\S*/site-packages/", re.escape(str(PROJECT_ROOT)) + "/", r"/\S*/lib/python3\.\d+/"):
        text = re.sub(prefix, "", text)
    keep = [line for line in text.splitlines()
            if line.strip() and not line.startswith(("   Ordered by", "   List ", "Function was called"))]
    return "\n".join(keep)


def profile_command(cmd: Sequence[str], *, out_dir: Path, name: str, env: dict[str, str] | None = None,
                    limit: int = 22, timeout: float = 1800.0, restrict: str | None = None) -> str:
    """Run a Python module command (``[python, -m, module, ...]``) under cProfile and summarise it."""
    prof = out_dir / f"{name}.prof"
    python, rest = cmd[0], list(cmd[1:])
    measured = run_measured([python, "-m", "cProfile", "-o", str(prof), *rest], env=env, out_dir=out_dir,
                            name=f"{name}-profiled", timeout=timeout)
    if not prof.exists():
        return f"(profiling failed, exit {measured.returncode}: {measured.stderr[-2000:]})"
    return f"(profiled run: {measured.seconds:.1f} s wall under cProfile)\n" + format_profile(
        pstats.Stats(str(prof)), limit=limit, restrict=restrict)


# -- the machine -------------------------------------------------------------------------------------------


def crc32c_in_c() -> bool:
    """kafka-python checksums every record batch it writes or reads; in C only with the crc32c package."""
    from kafka.record import util

    return getattr(util, "crc32c_c", None) is not None


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    hledger = "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        hledger = subprocess.run(["hledger", "--version"], capture_output=True, text=True, timeout=20,
                                 check=False).stdout.strip() or hledger
    commit = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=PROJECT_ROOT, timeout=10, check=False).stdout.strip() or commit
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=PROJECT_ROOT, timeout=10, check=False).stdout.strip()
        if dirty:
            commit += " (with uncommitted changes)"
    from importlib.metadata import version

    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": f"{len(os.sched_getaffinity(0))} (nproc)",
        "cpu": model,
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "kafka": ("external broker ($KAFKA_BOOTSTRAP_SERVERS)" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
                  else f"Apache Kafka {KAFKA_VERSION} (KRaft, single node, local)"),
        "kafka-python": version("kafka-python") + ("" if crc32c_in_c() else
                                                   " (CRC32C in pure Python: the `crc32c` package is not installed)"),
        "hledger": hledger,
        "commit": commit,
        "load average at start": " ".join(f"{x:.2f}" for x in load),
    }
