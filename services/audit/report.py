"""An audit's report: a table for people (rich), a JSON document for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from services.audit.checks import AuditResult
from services.audit.findings import CHECKS

#: Findings of one check shown in the terminal (the JSON report has them all).
SHOWN_PER_CHECK = 25


def as_json(result: AuditResult) -> dict[str, Any]:
    """The ``baotuan audit --json`` document."""
    auditor = result.auditor
    counts = result.findings.counts
    return {
        "ok": result.ok,
        "source": result.source,
        "records": auditor.records,
        "seconds": round(result.seconds, 3),
        "replayed_to": {topic: {str(p): off for p, off in parts.items()} for topic, parts in result.stopped_at.items()},
        "as_of": auditor.books.balance_date().isoformat(),
        "checks": {name: counts.get(name, 0) for name in CHECKS},
        "findings": [finding.as_dict() for finding in result.findings.items],
        "truncated": {name: n - len(result.findings.of(name)) for name, n in counts.items()
                      if n > len(result.findings.of(name))},
        "events": dict(sorted(auditor.by_type.items())),
        "collectives": len(auditor.books.collectives),
        "entries": len(auditor.books),
        "distributions": len(auditor.payouts.distributions),
        "balances_compared": result.balances_compared,
        "notes": result.notes,
    }


def print_report(result: AuditResult, console: Console) -> None:
    """The terminal report: what was read, each check's verdict, then the findings."""
    auditor = result.auditor
    rate = auditor.records / result.seconds if result.seconds > 0 else 0.0
    console.print(f"[bold]baotuan audit[/bold] of {result.source}: {auditor.records:,} records in "
                  f"{result.seconds:.1f}s ({rate:,.0f}/s); {len(auditor.books.collectives)} collectives, "
                  f"{len(auditor.books):,} entries, {len(auditor.payouts.distributions)} distributions; "
                  f"balances as of {auditor.books.balance_date()}")
    summary = Table(title="checks", show_lines=False)
    summary.add_column("check")
    summary.add_column("verdict")
    summary.add_column("what it verifies", overflow="fold")
    for name, description in CHECKS.items():
        count = result.findings.counts.get(name, 0)
        verdict = "[green]ok[/green]" if count == 0 else f"[red]{count:,} finding(s)[/red]"
        if name == "balances" and count == 0 and not result.balances_compared:
            verdict = "[yellow]not compared[/yellow]"
        summary.add_row(name, verdict, description)
    console.print(summary)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if result.ok:
        console.print("[bold green]No findings.[/bold green]")
        return
    table = Table(title="findings", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("record", no_wrap=True)
    table.add_column("subject", overflow="fold")
    table.add_column("finding", overflow="fold", ratio=1)
    for name in CHECKS:
        shown = result.findings.of(name)[:SHOWN_PER_CHECK]
        for finding in shown:
            table.add_row(finding.check, finding.location(), finding.subject or "-", finding.message)
        hidden = result.findings.counts.get(name, 0) - len(shown)
        if hidden > 0:
            table.add_row(name, "…", "", f"and {hidden:,} more (see --json)")
    console.print(table)
    console.print(f"[bold red]{len(result.findings):,} finding(s).[/bold red]")
