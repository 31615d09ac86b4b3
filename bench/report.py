"""docs/benchmarks.md: the machine, the date, every figure with its baseline, ratio and target."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from bench.harness import Outcome


def bar_chart(rows: Sequence[tuple[str, float]], unit: str, width: int = 50) -> str:
    """A text bar chart (in a code block) of labelled values."""
    top = max((value for _, value in rows), default=0.0) or 1.0
    lines = ["```"]
    for label, value in rows:
        bar = "█" * max(1, round(width * value / top))
        lines.append(f"{label}  {bar} {value:,.2f} {unit}")
    lines.append("```")
    return "\n".join(lines)


def _cell(figure_value: str) -> str:
    return figure_value.replace("|", "\\|")


def render(outcomes: Sequence[Outcome], machine: dict[str, str], *, command: str, total_seconds: float,
           run_notes: Sequence[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); every figure is measured in the same run as its baseline, "
        "on the machine below. `python -m bench --quick` is a smaller smoke run (50,000 events, shorter phases) "
        "and `--only NAME` runs one benchmark; neither overwrites this file unless given `--out`. "
        "See [How it is measured](#how-it-is-measured).",
        "",
        f"Command: `{command}` — whole run {total_seconds / 60:.1f} min.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {key} | {_cell(value)} |" for key, value in machine.items()],
        "",
    ]
    if run_notes:
        lines += [*[f"- {note}" for note in run_notes], ""]
    lines += [
        "## Summary",
        "",
        "| benchmark | figure | value | baseline | ratio | target | met |",
        "|---|---|---:|---:|---:|---|:---:|",
    ]
    for outcome in outcomes:
        if outcome.error:
            lines.append(f"| {outcome.title} | failed: {_cell(outcome.error.splitlines()[0][:150])} | | | | | ✗ |")
            continue
        for f in outcome.figures:
            baseline = f"{f.show(f.baseline)} {f.unit} ({f.baseline_label})" if f.baseline is not None else ""
            ratio = f"{f.ratio:.2f} {f.ratio_label}".strip() if f.ratio is not None else ""
            met = "" if f.met is None else ("✓" if f.met else "✗")
            lines.append(f"| {outcome.key} | {_cell(f.label)} | {f.show(f.value)} {f.unit} | {_cell(baseline)} | "
                         f"{_cell(ratio)} | {_cell(f.target)} | {met} |")
    lines.append("")
    for outcome in outcomes:
        lines += [f"## {outcome.title}", ""]
        if outcome.error:
            lines += ["This benchmark failed in this run:", "", "```", outcome.error[-3000:], "```", ""]
            continue
        lines += outcome.details
        if outcome.notes:
            lines += [*[f"- {note}" for note in outcome.notes], ""]
        if outcome.profile:
            lines += ["<details><summary>Profile of the slow path (where the time goes)</summary>", "", "```",
                      outcome.profile, "```", "", "</details>", ""]
        lines += [f"_{outcome.seconds:.0f} s for this benchmark._", ""]
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.exists():
        lines += [analysis.read_text(encoding="utf-8").strip(), ""]
    lines += [HOW, ""]
    return "\n".join(lines)


HOW = """## How it is measured

- **Posting** (`bench/posting.py`): `baotuan serve ledger` (gunicorn, one gthread worker, 32 threads)
  against its own broker; clients are `requests` sessions in threads (16 posting single entries, then
  2 posting batches of 1,000). An entry counts once the HTTP
  answer says it was posted: the service answers only after Kafka acknowledged it (acks=all), its
  projection applied it and its consumer read past it (readable to every reader); at the end the benchmark
  reads the trial balances back to check every posted entry is visible. The baseline produces the *same
  envelopes* (read back from the topic)
  with kafka-python in the client's best configuration for this durability (`BEST_PRODUCER` in
  `bench/clients.py`: acks=all, idempotent, 256 KB batches, linger 5 ms; the services linger 200 ms and
  flush each publish, one transaction each) into a scratch topic, waiting for every acknowledgement:
  once all sent, then flushing every 1,000 as one batch request does. The server's `/health` `writes`
  before and after each phase give the second table: groups, requests per group, and per group the
  milliseconds of each phase of the write path. Last, the floor under both targets: the ledger app in
  the benchmark's process on the in-memory log (no broker, no Kafka client, no HTTP server; Flask's test
  client) posts 2,000 single entries and 5 batches of 1,000, and its CPU time per post and per entry says
  how many cores each target would take for the service's own work alone.
- **Replay** (`bench/replay.py`): `bench/generate.py` writes the log straight to a fresh broker;
  `baotuan audit` replays it in a subprocess; its peak RSS is the kernel's (wait4 `ru_maxrss`).
  The baseline is a subprocess that consumes the same topics with kafka-python and does nothing.
- **Distribution** (`bench/distribution.py`): in-process, median of repeated runs.
- **Latency** (`bench/latency.py`): an open-loop schedule at a steady rate (requests are sent on
  time whether or not earlier ones have answered, so a slow answer cannot hide the queue behind
  it); latency counts from the scheduled send time. Both sides are warmed up first (2 s of posts,
  2 s of raw produce, not counted: a fresh broker's first seconds are slower). Baseline, in the same
  run just before the posts, at the same rate: one envelope produced, flushed and acknowledged with
  kafka-python's best settings (acks=all, idempotent, linger 5 ms); and one record per Kafka transaction
  (begin, produce, commit) with the services' `EventProducer`, what a group of one post pays the broker.
  Then `bench/phases.py` posts entries one at a time to the ledger in the benchmark's process and times
  each phase of a post with probes on the functions that begin and end it (decide and seal,
  AddPartitionsToTxn, produce, EndTxn, the fold at commit, the wait until readable, the response); posts
  that also carried a signed checkpoint are counted apart, and so are those the follower folded and those
  whose AddPartitionsToTxn met CONCURRENT_TRANSACTIONS.
- **Peer** (`bench/peer.py`): `baotuan export --format hledger` writes one journal per collective;
  one master journal includes them all, each under `apply account <collective>`, and
  `hledger balance` balances the whole journal in one process (checking the export's balance
  assertions). baotuan's side is the replay of benchmark 2 (which balances the same journal and
  verifies everything else as well).
- **Download** (`bench/download.py`): the web app in the benchmark's process (Flask's test client),
  against the broker of benchmark 2, a village accountant downloading its workbook
  (`GET /api/export.xlsx`). The baseline is the download as it was before the web app kept its
  replay — `run_audit` from the beginning of the log and `write_xlsx`, per click — measured in the
  same process, and every workbook the web app gives must have the baseline's cells. It runs last:
  it writes 1,000 new events (another village's) to time a download that folds only those.
- Profiles: when a target is missed, the benchmark profiles the slow path with cProfile and puts
  the summary under the benchmark (`--profile always|missed|never`)."""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_json(path: Path, outcomes: Sequence[Outcome], machine: dict[str, str]) -> None:
    data = {"machine": machine, "benchmarks": [
        {"key": o.key, "title": o.title, "seconds": o.seconds, "error": o.error, "notes": o.notes,
         "figures": [f.__dict__ for f in o.figures]} for o in outcomes]}
    write(path, json.dumps(data, ensure_ascii=False, indent=2))
