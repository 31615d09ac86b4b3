"""Benchmark 2 — replay: ``baotuan audit`` over a 1,000,000-event log, against raw kafka-python consume.

``bench/generate.py`` writes the log straight to a fresh broker; ``baotuan audit`` then replays it
from the beginning in a subprocess (its peak RSS is the kernel's ``ru_maxrss`` for that process);
the baseline is a subprocess consuming the same topics with the same consumer settings and doing
nothing with the records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench.generate import Shape, generate
from bench.harness import Context, Figure, Measured, Outcome, profile_command, run_measured, say
from services.runtime.kafka_io import end_offsets

TARGET_RATIO = 0.5
TARGET_RSS_MB = 500.0
PROFILE_FRACTION = 0.05


def baotuan_has(ctx: Context, command: str) -> bool:
    """Is ``baotuan COMMAND`` registered (the audit commands live in services/audit/cli.py)?"""
    result = subprocess.run([ctx.tool("baotuan"), command, "--help"], capture_output=True, text=True, check=False)
    return result.returncode == 0


def command_script(ctx: Context, command: str) -> list[str]:
    """A Python script (and its leading arguments) that runs ``baotuan COMMAND``: for timing and for cProfile."""
    if baotuan_has(ctx, command):
        return [ctx.tool("baotuan"), command]
    shim = ctx.work / f"baotuan-{command}.py"
    function = {"audit": "audit_command", "export": "export_command"}[command]
    shim.write_text(f"from services.audit.cli import {function}\n{function}(prog_name='baotuan {command}')\n")
    return [sys.executable, str(shim)]


def measure_audit(ctx: Context, bootstrap: str) -> tuple[Measured, dict[str, Any]]:
    audit = run_measured([*command_script(ctx, "audit"), "--bootstrap", bootstrap, "--json"],
                         out_dir=ctx.work, name="audit")
    try:
        report = json.loads(audit.stdout)
    except ValueError:
        report = {}
    return audit, report


def run(ctx: Context, bootstrap: str) -> Outcome:
    outcome = Outcome("replay", "2. Replay: baotuan audit over the whole log")
    existing = sum(end_offsets(bootstrap, ["baotuan.ledger.entries.v1", "baotuan.ledger.investments.v1",
                                           "baotuan.rentals.v1", "baotuan.dividends.v1"]).values())
    # A shared broker ($KAFKA_BOOTSTRAP_SERVERS) that already holds events: generated ids get their own namespace.
    prefix = f"r{time.time_ns() % 10**8:08d}-" if existing else ""
    summary = generate(bootstrap, Shape.for_events(ctx.events, prefix=prefix), work_dir=ctx.work)
    ctx.log_summary = summary
    say(f"  generated {summary.events:,} events in {summary.seconds:.1f} s ({summary.events / summary.seconds:,.0f}/s, "
        f"{summary.producer}): {summary.entries:,} entries with {summary.postings:,} postings")

    raw = run_measured([sys.executable, "-m", "bench.raw_consume", "--bootstrap", bootstrap], out_dir=ctx.work,
                       name="raw-consume")
    if raw.returncode != 0:
        raise RuntimeError(f"raw consume failed: {raw.stderr[-2000:]}")
    records = int(json.loads(raw.stdout)["records"])
    raw_rate = records / raw.seconds
    say(f"  raw kafka-python consume: {records:,} records in {raw.seconds:.1f} s = {raw_rate:,.0f}/s, "
        f"peak RSS {raw.peak_rss_mb:.0f} MB")

    audit, report = measure_audit(ctx, bootstrap)
    ctx.audit_run = audit
    rate = records / audit.seconds
    say(f"  baotuan audit: exit {audit.returncode} in {audit.seconds:.1f} s = {rate:,.0f}/s, "
        f"peak RSS {audit.peak_rss_mb:.0f} MB")
    if audit.returncode not in (0, 1):
        raise RuntimeError(f"baotuan audit could not replay (exit {audit.returncode}): {audit.stderr[-2000:]}")

    ratio = rate / raw_rate
    outcome.add(Figure(f"Replay of {records:,} events (baotuan audit)", rate, "events/s", baseline=raw_rate,
                       baseline_label="raw kafka-python consume", ratio=ratio, ratio_label="of raw",
                       target=f"≥ {TARGET_RATIO} of raw", met=ratio >= TARGET_RATIO))
    outcome.add(Figure("Peak RSS of baotuan audit", audit.peak_rss_mb, "MB", baseline=raw.peak_rss_mb,
                       baseline_label="raw consumer", ratio=audit.peak_rss_mb / raw.peak_rss_mb,
                       ratio_label="× raw", target=f"≤ {TARGET_RSS_MB:.0f} MB",
                       met=audit.peak_rss_mb <= TARGET_RSS_MB))
    findings = list(report.get("findings") or [])
    verdict = "no findings" if audit.returncode == 0 else f"{len(findings)} finding(s) (exit 1)"
    outcome.details += [
        "| step | records | seconds | records/s | peak RSS (MB) | CPU seconds |",
        "|---|---:|---:|---:|---:|---:|",
        f"| generate + produce (`bench/generate.py`, {summary.producer}) | {summary.events:,} | "
        f"{summary.seconds:.1f} | {summary.events / summary.seconds:,.0f} | | |",
        f"| raw kafka-python consume (baseline) | {records:,} | {raw.seconds:.1f} | {raw_rate:,.0f} | "
        f"{raw.peak_rss_mb:.0f} | {raw.cpu_seconds:.1f} |",
        f"| `baotuan audit` ({verdict}) | {records:,} | {audit.seconds:.1f} | {rate:,.0f} | "
        f"{audit.peak_rss_mb:.0f} | {audit.cpu_seconds:.1f} |",
        "",
        f"The log: {summary.villages} villages, {summary.projects} projects, {summary.leases:,} leases, "
        f"{summary.months} months, {summary.distributions:,} distributions, {summary.entries:,} journal entries with "
        f"{summary.postings:,} postings ({summary.bytes / 1e6:.0f} MB of envelopes). By event type:",
        "",
        "| event type | records | share |",
        "|---|---:|---:|",
        *[f"| {t} | {n:,} | {100 * n / summary.events:.1f}% |" for t, n in summary.by_type.items()],
        "",
    ]
    if audit.processes > 1:
        outcome.note(f"baotuan audit ran as {audit.processes} processes; its peak RSS is the highest sum over all of "
                     f"them (the audit process alone peaked at {audit.own_peak_rss_mb:.0f} MB), its CPU time theirs")
    if audit.returncode == 1:
        outcome.note(f"the audit reported findings on a log that should be clean: {str(findings[:3])[:500]}")
    parts = []
    if ctx.should_profile(outcome.figures[0].met is False):
        parts.append(profile_audit(ctx, bootstrap, records))
    if ctx.should_profile(outcome.figures[1].met is False):
        parts.append(memory_audit(ctx, bootstrap))
    outcome.profile = "\n\n".join(parts) or None
    return outcome


def _slice(bootstrap: str) -> str:
    """``--offsets`` that stop every partition after its first PROFILE_FRACTION."""
    offsets = end_offsets(bootstrap, ["baotuan.ledger.entries.v1", "baotuan.ledger.investments.v1",
                                      "baotuan.rentals.v1", "baotuan.dividends.v1"])
    return ",".join(f"{t}:{p}:{max(1, int(off * PROFILE_FRACTION))}" for (t, p), off in sorted(offsets.items()))


def memory_audit(ctx: Context, bootstrap: str) -> str:
    """What the audit's state holds after replaying a slice of the log, structure by structure."""
    measured = run_measured([sys.executable, "-m", "bench.memory", "--bootstrap", bootstrap, "--offsets",
                             _slice(bootstrap)], out_dir=ctx.work, name="audit-memory")
    if measured.returncode != 0:
        return f"(memory profile failed: {measured.stderr[-1500:]})"
    return (f"== memory: the audit's state after replaying the first {PROFILE_FRACTION:.0%} of each partition "
            "(a deep sizeof of each structure) ==\n" + measured.stdout.strip())


def profile_audit(ctx: Context, bootstrap: str, records: int) -> str:
    """cProfile of ``baotuan audit`` over the first tenth of every partition (--offsets)."""
    stop = _slice(bootstrap)
    script = command_script(ctx, "audit")
    if script[0].endswith("baotuan"):  # a console script: run it as a file under cProfile
        script = [sys.executable, *script]
    head = f"== time: baotuan audit --offsets <first {PROFILE_FRACTION:.0%} of each partition>, about " \
           f"{int(records * PROFILE_FRACTION):,} records, under cProfile =="
    return head + "\n" + profile_command([script[0], *script[1:], "--bootstrap", bootstrap, "--json",
                                          "--offsets", stop], out_dir=ctx.work, name="audit",
                                         restrict="services/|fetcher.py|default_records.py", limit=30)
