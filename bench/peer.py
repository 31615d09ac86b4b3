"""Benchmark 5 — the peer: the same journal balanced by baotuan's replay and by ``hledger balance``.

``baotuan export --format hledger`` writes each collective's books (with balance assertions
taken from baotuan's own trial balances) from the log of benchmark 2. One master journal
includes every collective's file under ``apply account <collective>``, so a single
``hledger balance`` run parses and balances the whole district's journal and checks every
assertion: when it exits 0, hledger agrees with baotuan to the fen on every account.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.harness import Context, Figure, Outcome, run_measured, say
from bench.replay import command_script, measure_audit


def master_journal(export_dir: Path) -> tuple[Path, int, int]:
    """The journal including every collective's file; (path, collectives, postings outside assertions)."""
    files = sorted(export_dir.glob("*.journal"))
    postings = 0
    for path in files:
        with path.open(encoding="utf-8") as handle:
            postings += sum(1 for line in handle if line.startswith("    ") and " = " not in line)
    master = export_dir.parent / "district.journal"
    master.write_text("".join(f"apply account {p.stem}\ninclude {p.resolve()}\nend apply account\n" for p in files),
                      encoding="utf-8")
    return master, len(files), postings


def run(ctx: Context, bootstrap: str) -> Outcome:
    outcome = Outcome("peer", "5. Peer: the same journal balanced by baotuan and by hledger")
    hledger = shutil.which("hledger")
    if hledger is None:
        raise RuntimeError("hledger is not installed (apt-get install hledger)")
    export_dir = ctx.work / "hledger"
    shutil.rmtree(export_dir, ignore_errors=True)
    exported = run_measured([*command_script(ctx, "export"), "--format", "hledger", "--output", str(export_dir),
                             "--bootstrap", bootstrap], out_dir=ctx.work, name="export-hledger")
    if exported.returncode != 0:
        raise RuntimeError(f"baotuan export failed (exit {exported.returncode}): {exported.stderr[-2000:]}")
    master, collectives, postings = master_journal(export_dir)
    say(f"  baotuan export --format hledger: {collectives} journals, {postings:,} postings in {exported.seconds:.1f} s")

    balance = run_measured([hledger, "-f", str(master), "balance"], out_dir=ctx.work, name="hledger-balance")
    if balance.returncode != 0:
        raise RuntimeError(f"hledger balance failed (exit {balance.returncode}): {balance.stderr[-2000:]}")
    accounts = sum(1 for line in balance.stdout.splitlines() if "CNY" in line)
    say(f"  hledger balance: {balance.seconds:.1f} s, peak RSS {balance.peak_rss_mb:.0f} MB, {accounts:,} accounts")

    audit = ctx.audit_run
    if audit is None:
        audit, _report = measure_audit(ctx, bootstrap)
        ctx.audit_run = audit
    ratio = audit.seconds / balance.seconds
    outcome.add(Figure(f"Balance the {postings:,}-posting journal: baotuan replay (baotuan audit)", audit.seconds,
                       "s", baseline=balance.seconds, baseline_label="hledger balance on the export",
                       ratio=ratio, ratio_label="× hledger's time", digits=1))
    outcome.details += [
        "| tool | what it does | seconds | postings/s | peak RSS (MB) |",
        "|---|---|---:|---:|---:|",
        f"| `baotuan audit` | replays the whole log from Kafka: balances every collective's books and verifies "
        f"schemas, hash chains, every distribution and automatic entry | {audit.seconds:.1f} | "
        f"{postings / audit.seconds:,.0f} | {audit.peak_rss_mb:.0f} |",
        f"| `hledger balance` (hledger {_version(hledger)}) | parses the exported journal and balances it, checking "
        f"the export's balance assertions | {balance.seconds:.1f} | {postings / balance.seconds:,.0f} | "
        f"{balance.peak_rss_mb:.0f} |",
        f"| `baotuan export --format hledger` | replays the log and writes {collectives} journals | "
        f"{exported.seconds:.1f} | | {exported.peak_rss_mb:.0f} |",
        "",
        f"hledger exited 0: every one of the {accounts:,} account balances it computed equals baotuan's trial "
        "balance, asserted in the export, to the fen.",
        "",
    ]
    how = f"{ratio:.1f}× hledger's time" if ratio >= 1 else f"{1 / ratio:.1f}× less time than hledger"
    outcome.note(f"baotuan's replay takes {how}, while also verifying everything the audit verifies; hledger "
                 "reads a file, baotuan reads Kafka (decoding the records is part of its time)")
    return outcome


def _version(hledger: str) -> str:
    import subprocess

    text = subprocess.run([hledger, "--version"], capture_output=True, text=True, check=False).stdout
    return text.split()[1].rstrip(",") if len(text.split()) > 1 else "?"
