"""``baotuan audit``, ``baotuan export`` and ``baotuan catalogue`` (registered by ``services/cli.py``).

Exit status of ``audit``: 0 when every check passes, 1 on any finding, 2 when the log could
not be read (bad options, broker unreachable, archive missing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.audit import catalogue as catalogue_files
from services.audit.checks.anchors import KeyDirError, TrustedKeys, load_trusted_keys
from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.checks.remote import compare_with_ledger
from services.audit.exports.journals import write_books
from services.audit.exports.jsonl import write_archive
from services.audit.exports.tables import write_csv, write_xlsx
from services.audit.report import as_json, print_report
from services.audit.sources.archive import ArchiveSource
from services.audit.sources.kafka import KafkaSource
from services.audit.sources.records import ReplayError, Source, parse_offsets
from services.contracts.topics import CHECKPOINTS, RECORD_TOPICS
from services.runtime.config import Settings

F = TypeVar("F", bound=Callable[..., Any])
#: What ``baotuan export --format`` writes (:mod:`services.audit.exports`).
FORMATS = ("jsonl", "hledger", "beancount", "csv", "xlsx")
DEFAULT_CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "catalogue"


def source_options(command: F) -> F:
    """The options that say which log to replay, shared by ``audit`` and ``export``."""
    options = [
        click.option("--archive", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="replay an exported archive (JSON Lines) instead of Kafka"),
        click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:19092", show_default=True,
                     help="the Kafka broker (env KAFKA_BOOTSTRAP_SERVERS)"),
        click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="only records up to the end of this day (UTC, by record timestamp)"),
        click.option("--offsets", default=None, metavar="TOPIC:PARTITION:OFFSET,...",
                     help="stop each named partition before this offset (the next offset not read)"),
        click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), default=None,
                     help="trial balances at this date (default: --until, else the latest entry's date)"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _source(archive: Path | None, bootstrap: str, until: dt.datetime | None, offsets: str | None,
            topics: tuple[str, ...] = RECORD_TOPICS) -> Source:
    try:
        stop = parse_offsets(offsets)
        day = until.date() if until else None
        if archive is not None:
            return ArchiveSource(archive, until=day, offsets=stop, topics=topics)
        # The broker's security settings (SASL) from BAOTUAN_KAFKA_SASL_* and BAOTUAN_KAFKA_SECURITY_PROTOCOL.
        return KafkaSource(bootstrap, until=day, offsets=stop, kafka_config=Settings.from_env().kafka_client_config(),
                           topics=topics)
    except ReplayError as exc:
        raise click.UsageError(str(exc)) from None


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress bar on stderr for long replays (only on a terminal)."""
    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("replay", total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _security_hint(source: Source, exc: ReplayError) -> str:
    """What to check when the broker's port answered but the Kafka client failed (often its SASL settings)."""
    if not isinstance(source, KafkaSource) or exc.__cause__ is None:  # no broker there, or a bad option
        return ""
    user = source.kafka_config.get("sasl_plain_username")
    if user:
        return (f"\nbaotuan: tried Kafka user {user!r} (BAOTUAN_KAFKA_SASL_USERNAME): check its password, "
                f"BAOTUAN_KAFKA_SASL_MECHANISM, BAOTUAN_KAFKA_SECURITY_PROTOCOL and its READ ACLs")
    return "\nbaotuan: if the broker requires SASL, set BAOTUAN_KAFKA_SASL_USERNAME and BAOTUAN_KAFKA_SASL_PASSWORD"


def _replay(source: Source, *, as_of: dt.date | None, keep_memos: bool, archive: bool,
            trusted_keys: TrustedKeys | None = None, receipts: Path | None = None) -> AuditResult:
    with _progress(True) as update:
        try:
            return run_audit(source, as_of=as_of, keep_memos=keep_memos, archive=archive, on_progress=update,
                             trusted_keys=trusted_keys, receipts=receipts)
        except ReplayError as exc:
            click.echo(f"baotuan: {exc}{_security_hint(source, exc)}", err=True)
            sys.exit(2)


def _as_of(as_of: dt.datetime | None, until: dt.datetime | None) -> dt.date | None:
    if as_of is not None:
        return as_of.date()
    return until.date() if until is not None else None


@click.command("audit")
@source_options
@click.option("--json", "as_json_output", is_flag=True, help="print a JSON report instead of tables")
@click.option("--ledger-url", envvar="BAOTUAN_LEDGER_URL", default=None,
              help="also compare every trial balance with the ledger service at this URL")
@click.option("--token", envvar="BAOTUAN_TOKEN", default=None, help="bearer token for --ledger-url")
@click.option("--trusted-keys", "trusted_keys", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="the services' public keys you pinned (`baotuan keys export --output DIR`): every checkpoint and "
                   "receipt must be signed with them, or with a key a verified checkpoint announced")
@click.option("--receipts", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="a JSON Lines file of receipts a village kept: each must be signed, and its record in the log")
def audit_command(archive: Path | None, bootstrap: str, until: dt.datetime | None, offsets: str | None,
                  as_of: dt.datetime | None, as_json_output: bool, ledger_url: str | None, token: str | None,
                  trusted_keys: Path | None, receipts: Path | None) -> None:
    """Replay the topics (or an archive) from the beginning and verify everything.

    Envelopes against their schemas and their canonical bytes, every hash chain and seq, the signed
    checkpoints (with --trusted-keys, their signatures) against the streams' heads, every journal
    entry balanced and on the chart, every distribution recomputed to the fen, every approved
    allocation and payment posted in the villages' books, no payment above its allocation, (with
    --receipts) a village's receipts, and (with --ledger-url and a token) the ledger service's trial
    balances. Exit status 1 on any finding, 2 if the log (or the keys) cannot be read.
    """
    try:
        pinned = load_trusted_keys(trusted_keys) if trusted_keys is not None else None
    except KeyDirError as exc:
        raise click.UsageError(str(exc)) from None
    source = _source(archive, bootstrap, until, offsets)
    result = _replay(source, as_of=_as_of(as_of, until), keep_memos=False, archive=archive is not None,
                     trusted_keys=pinned, receipts=receipts)
    if ledger_url:
        if not token:
            result.notes.append("balances not compared: --ledger-url needs --token (or BAOTUAN_TOKEN)")
        else:
            comparison = compare_with_ledger(result.auditor.books, result.findings, ledger_url=ledger_url,
                                             token=token)
            result.notes += comparison.notes
            result.balances_compared = comparison.compared
    if as_json_output:
        click.echo(json.dumps(as_json(result), ensure_ascii=False, indent=2))
    else:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: wide enough to keep each finding on a few lines
            console = Console(width=int(os.environ.get("COLUMNS", "160")))
        print_report(result, console)
    sys.exit(0 if result.ok else 1)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="what to write")
@click.option("--collective", default=None, help="one collective's books (default: every collective)")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="file or directory; default: stdout for jsonl and one collective's hledger/beancount, "
                   "else ./baotuan-<format>/ (csv, books) or ./baotuan-books.xlsx")
@source_options
def export_command(fmt: str, collective: str | None, output: Path | None, archive: Path | None, bootstrap: str,
                   until: dt.datetime | None, offsets: str | None, as_of: dt.datetime | None) -> None:
    """Export the log for the auditor's own tools: the JSONL archive, hledger or beancount books,
    CSV files or an Excel workbook of trial balances, entries and dividends — written from the
    events, never from a service database."""
    if fmt == "jsonl":  # the archive holds the signed checkpoints too
        source = _source(archive, bootstrap, until, offsets, topics=(*RECORD_TOPICS, CHECKPOINTS))
    else:
        source = _source(archive, bootstrap, until, offsets)
    if fmt == "jsonl":
        if collective is not None:
            raise click.UsageError("the archive is the whole log: --collective does not apply to jsonl")
        _export_archive(source, output)
        return
    result = _replay(source, as_of=_as_of(as_of, until), keep_memos=True, archive=archive is not None)
    books, payouts = result.auditor.books, result.auditor.payouts
    if collective is not None and collective not in books.collective_ids():
        raise click.UsageError(f"no books of collective {collective!r} in the log")
    if not result.ok:
        click.echo(f"warning: the log has {len(result.findings)} audit finding(s); run `baotuan audit`", err=True)
    if fmt in ("hledger", "beancount"):
        if collective is not None and output is None:
            from services.audit.exports.journals import beancount_file, hledger_journal

            render = hledger_journal if fmt == "hledger" else beancount_file
            click.echo(render(books, collective), nl=False)
            return
        written = write_books(books, fmt, output or Path(f"baotuan-{fmt}"), collective)
    elif fmt == "csv":
        written = write_csv(books, payouts, output or Path("baotuan-csv"), collective)
    else:
        target = output or Path("baotuan-books.xlsx")
        if target.is_dir():
            target = target / "baotuan-books.xlsx"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_xlsx(books, payouts, target, collective)
        written = [target]
    for path in written:
        click.echo(f"wrote {path}", err=True)


def _export_archive(source: Source, output: Path | None) -> None:
    try:
        if output is None or str(output) == "-":
            count = write_archive(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            with output.open("wb") as handle:
                count = write_archive(source, handle)
            click.echo(f"wrote {count} records to {output}", err=True)
    except ReplayError as exc:
        click.echo(f"baotuan: {exc}{_security_hint(source, exc)}", err=True)
        sys.exit(2)


@click.command("catalogue")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_CATALOGUE,
              show_default=True, help="where the catalogue goes")
@click.option("--check", is_flag=True, help="only compare: exit 1 if the files differ from the code")
def catalogue_command(output: Path, check: bool) -> None:
    """Generate the event catalogue (JSON Schema per event type and version, AsyncAPI document)
    from the contract's code."""
    if check:
        stale = catalogue_files.differences(output)
        if stale:
            click.echo("out of date: " + ", ".join(stale) + " (run `baotuan catalogue`)", err=True)
            sys.exit(1)
        click.echo(f"{output} is up to date")
        return
    written = catalogue_files.write(output)
    click.echo(f"wrote {len(written)} files to {output}")
