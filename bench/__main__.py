"""``python -m bench`` (``make bench``): run the seven benchmarks and write docs/benchmarks.md.

    python -m bench                  # the full run: 1,000,000 events, 15 s per HTTP phase
    python -m bench --quick          # a smoke run: 50,000 events, 5 s phases (writes var/bench/)
    python -m bench --only replay    # one benchmark (repeat --only, or posting,latency)

Starts its own brokers (one for the HTTP benchmarks, a fresh one for the log) unless
KAFKA_BOOTSTRAP_SERVERS names one. Exit status 1 if a benchmark could not run; a missed
target is reported, not an error.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import codec, distribution, download, latency, peer, posting, replay
from bench.harness import Context, LedgerServer, Outcome, broker, crc32c_in_c, ledger_server, machine, say
from bench.report import render, write, write_json
from services.runtime.config import PROJECT_ROOT

NAMES = ("posting", "replay", "distribution", "latency", "peer", "download", "codec")
TITLES = {"posting": "1. Posting throughput", "replay": "2. Replay", "distribution": "3. Distribution",
          "latency": "4. Latency", "peer": "5. Peer", "download": "6. Download", "codec": "7. Codec"}


def _guarded(name: str, fn: Callable[[], Outcome]) -> Outcome:
    say(f"\n== {TITLES[name]} ==")
    began = time.perf_counter()
    try:
        outcome = fn()
    except Exception:
        error = traceback.format_exc()
        say(error)
        outcome = Outcome(name, TITLES[name], error=error)
    outcome.seconds = time.perf_counter() - began
    say(f"  ({outcome.seconds:.0f} s)")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,000 events and 5 s phases")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(NAMES)}); repeat or comma-separate")
    parser.add_argument("--events", type=int, default=None, help="events in the generated log (default 1,000,000)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each posting phase; latency runs 1.5× (default 15, quick 5)")
    parser.add_argument("--profile", choices=("missed", "always", "never"), default="missed",
                        help="profile the slow path of a benchmark that misses its target (default), always, never")
    parser.add_argument("--out", type=Path, default=None,
                        help="report file (default docs/benchmarks.md for a full run, var/bench/benchmarks.md else)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, exports, profiles)")
    args = parser.parse_args(argv)
    only = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    selected = [n for n in NAMES if not only or n in only]
    full = not args.quick and not only and args.events is None and args.seconds is None
    out = args.out or (PROJECT_ROOT / "docs" / "benchmarks.md" if full else PROJECT_ROOT / "var" / "bench" /
                       "benchmarks.md")

    work = Path(tempfile.mkdtemp(prefix="baotuan-bench-"))
    ctx = Context(quick=args.quick, work=work, profile=args.profile,
                  events=args.events or (50_000 if args.quick else 1_000_000),
                  seconds=args.seconds or (5.0 if args.quick else 15.0))
    info = machine()
    ctx.notes += known_limits()
    say(f"baotuan benchmarks: {', '.join(selected)}; {ctx.events:,} events; scratch {work}")
    for key, value in info.items():
        say(f"  {key}: {value}")
    began = time.perf_counter()
    outcomes: dict[str, Outcome] = {}
    try:
        if "distribution" in selected:
            outcomes["distribution"] = _guarded("distribution", lambda: distribution.run(ctx))
        if "codec" in selected:
            outcomes["codec"] = _guarded("codec", lambda: codec.run(ctx))
        if {"posting", "latency"} & set(selected):
            say("\n== broker and ledger server for the HTTP benchmarks ==")
            with broker(ctx, "http") as bootstrap, ledger_server(ctx, bootstrap) as server:
                _http_phase(ctx, selected, outcomes, bootstrap, server)
        if {"replay", "peer", "download"} & set(selected):
            say("\n== a fresh broker for the generated log ==")
            with broker(ctx, "log") as bootstrap:
                if "replay" in selected:
                    outcomes["replay"] = _guarded("replay", lambda: replay.run(ctx, bootstrap))
                if "peer" in selected:
                    if "replay" not in selected:
                        outcomes["replay-log"] = _guarded("replay", lambda: _log_only(ctx, bootstrap))
                    outcomes["peer"] = _guarded("peer", lambda: peer.run(ctx, bootstrap))
                if "download" in selected:  # last: it writes new events after the generated log
                    if ctx.log_summary is None:
                        outcomes["replay-log"] = _guarded("replay", lambda: _log_only(ctx, bootstrap))
                    outcomes["download"] = _guarded("download", lambda: download.run(ctx, bootstrap))
    finally:
        total = time.perf_counter() - began
        ordered = [outcomes[n] for n in NAMES if n in outcomes]
        command = "make bench" if full else "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
        text = render(ordered, info, command=command, total_seconds=total, run_notes=ctx.notes)
        write(out, text)
        write_json(out.with_suffix(".json") if out.parent.name != "docs" else PROJECT_ROOT / "var" / "bench" /
                   "results.json", ordered, info)
        say(f"\n== done in {total / 60:.1f} min; report: {out} ==")
        for outcome in ordered:
            for figure in outcome.figures:
                say(f"  [{outcome.key}] {figure.line()}")
            if outcome.error:
                say(f"  [{outcome.key}] FAILED: {outcome.error.strip().splitlines()[-1]}")
        if args.keep:
            say(f"scratch kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if any(o.error for o in outcomes.values()) else 0


def known_limits() -> list[str]:
    """Facts of this installation that bound the figures, stated next to them."""
    notes = []
    if not crc32c_in_c():
        notes.append("kafka-python computes CRC32C in pure Python here (the `crc32c` package is not installed): "
                     "every record batch produced or consumed — by the services, the audit and the baselines "
                     "alike — is checksummed byte by byte in Python.")
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        notes.append("The local broker fsyncs every append (`log.flush.interval.messages=1`: it has no replicas, so "
                     "only the disk keeps an acknowledged write through a crash of its machine): each "
                     "acknowledgement waits for the disk.")
    return notes


def _http_phase(ctx: Context, selected: list[str], outcomes: dict[str, Outcome], bootstrap: str,
                server: LedgerServer) -> None:
    # Latency first, while the ledger is small; then the throughput phases fill it.
    if "latency" in selected:
        outcomes["latency"] = _guarded("latency", lambda: latency.run(ctx, server, bootstrap))
    if "posting" in selected:
        outcomes["posting"] = _guarded("posting", lambda: posting.run(ctx, server, bootstrap))


def _log_only(ctx: Context, bootstrap: str) -> Outcome:
    """--only peer / download: the log still has to be generated (and replayed, for baotuan's side)."""
    from bench.generate import Shape, generate

    ctx.log_summary = generate(bootstrap, Shape.for_events(ctx.events), work_dir=ctx.work)
    return Outcome("replay-log", "generated log (for the peer benchmark)")


if __name__ == "__main__":
    sys.exit(main())
