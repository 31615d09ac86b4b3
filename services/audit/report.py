"""An audit's report: a table for people (rich), a JSON document for machines."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from services.audit.checks.auditor import AuditResult
from services.audit.checks.findings import CHECKS

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
        "member_plans": auditor.members.recomputed,
        "balances_compared": result.balances_compared,
        "notes": result.notes,
        "anchoring": auditor.anchors.report(),
    }


def print_anchoring(result: AuditResult, console: Console) -> None:
    """Authenticity (said plainly), the checkpoints per topic, what no checkpoint covers yet, the receipts."""
    anchoring = result.auditor.anchors.report()
    colour = "green" if anchoring["authenticity_checked"] else "bold yellow"
    console.print(f"[{colour}]{anchoring['authenticity']}[/{colour}]")
    for key in anchoring["keys_followed"]:
        console.print(f"  key {key['key_id']} of {key['service']} followed: announced by checkpoint "
                      f"{key['checkpoint']} of {key['topic']}, signed with {key['announced_by']}")
    table = Table(title="signed checkpoints", show_lines=False)
    for column in ("topic", "checkpoints", "signature verified", "records not covered yet"):
        table.add_column(column)
    uncovered = anchoring["uncovered"]
    for topic in sorted(set(anchoring["checkpoints"]) | set(uncovered)):
        listed = anchoring["checkpoints"].get(topic)
        numbers = f"{listed['first']}..{listed['last']} ({listed['count']})" if listed else "none"
        verified = "-" if not listed else ("not checked" if not anchoring["authenticity_checked"]
                                           else f"{listed['verified']} of {listed['count']}")
        table.add_row(topic, numbers, verified, f"{uncovered.get(topic, 0):,}")
    console.print(table)
    receipts = anchoring["receipts"]
    if receipts is not None:
        signed = receipts["signatures_verified"]
        console.print(f"receipts of {receipts['file']}: {receipts['count']:,}, found in the log {receipts['found']:,}, "
                      + (f"signatures verified {signed:,}" if signed is not None else "signatures NOT checked"))
    for note in anchoring["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")


def print_report(result: AuditResult, console: Console) -> None:
    """The terminal report: what was read, each check's verdict, then the findings."""
    auditor = result.auditor
    rate = auditor.records / result.seconds if result.seconds > 0 else 0.0
    console.print(f"[bold]baotuan audit[/bold] of {result.source}: {auditor.records:,} records in "
                  f"{result.seconds:.1f}s ({rate:,.0f}/s); {len(auditor.books.collectives)} collectives, "
                  f"{len(auditor.books):,} entries, {len(auditor.payouts.distributions)} distributions, "
                  f"{auditor.members.recomputed} member plans recomputed; "
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
    print_anchoring(result, console)
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
