"""The web page's Excel download against a real broker: the replay kept between downloads.

The log is written straight to a broker of the tests' own by ``services.devtools.synthetic`` (sealed
and chained as the services write it), so every download can be held against what the download
did before this cache: ``run_audit`` over a fresh ``KafkaSource`` and ``write_xlsx`` (the old
request handler, verbatim). Isolation (DESIGN §8): a village's accountant gets its own books and
nothing else, whatever the cache already holds and however the query is written.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask.testing import FlaskClient
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

from services.audit.checks.auditor import run_audit
from services.audit.exports.tables import write_xlsx
from services.audit.sources.kafka import KafkaSource
from services.contracts.codec import canonical
from services.contracts.topics import RECORD_TOPICS, partitions
from services.devtools.broker import LocalBroker, free_port
from services.devtools.synthetic import LogWriter, small_scenario
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.kafka_io import end_offsets, ensure_topics
from services.web.app import create_app
from services.web.books_cache import WorkbookCache
from services.web.proxy import Upstreams

pytestmark = pytest.mark.kafka

V1, V2, V3 = "jinqing-lianmeng", "jinqing-xinqiao", "jinqing-huangjiao"
NAMES = {V1: "联盟村", V2: "新桥村", V3: "黄礁村"}
PROJECT = "binhai-park"

Sheets = dict[str, list[tuple[Any, ...]]]


class Log:
    """A synthetic log on a broker: what ``writer`` published is sent by ``flush``."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        ensure_topics(bootstrap)
        self.writer = LogWriter(partitions=partitions())
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self._sent = 0

    def flush(self) -> None:
        for row in self.writer.rows[self._sent:]:
            self._producer.send(row["topic"], value=canonical(row["event"]), key=row["key"].encode(),
                                partition=row["partition"])
        self._producer.flush()
        self._sent = len(self.writer.rows)

    def close(self) -> None:
        self._producer.close()


@pytest.fixture(scope="module")
def shared_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    """A broker of the module's own (a download reads the whole log) with the small Binhai scenario."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("reads the whole log: needs a broker of its own")
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"), free_port(), free_port())
    broker.start()
    log = Log(broker.bootstrap)
    try:
        small_scenario(log.writer, villages=3, months=12)
        log.flush()
        yield log
    finally:
        log.close()
        broker.stop()


def web_app(bootstrap: str, root: Path) -> tuple[FlaskClient, WorkbookCache, Settings]:
    settings = Settings(bootstrap_servers=bootstrap, data_dir=root / "data", tokens_file=root / "tokens.json",
                        request_timeout_s=15)
    down = f"http://127.0.0.1:{free_port()}"  # the services are not needed for the download
    app = create_app(settings, Upstreams(ledger=down, rentals=down, dividends=down))
    return app.test_client(), app.extensions["baotuan_workbooks"], settings


def token(settings: Settings, role: str, *scope: str) -> str:
    assert settings.tokens_file is not None
    return add_token(settings.tokens_file, name=f"{role}-{'-'.join(scope) or 'all'}-{os.urandom(3).hex()}",
                     role=role, scope=scope)


def download(client: FlaskClient, tok: str, query: str) -> Any:
    return client.get(f"/api/export.xlsx?{query}", headers={"Authorization": f"Bearer {tok}"})


def sheets(data: bytes) -> Sheets:
    """Every sheet's cell values (the content; not the file's creation time)."""
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}
    finally:
        workbook.close()


def replayed_from_the_beginning(bootstrap: str, collective_id: str) -> Sheets | None:
    """What the download gave before the cache: a full replay of the log per request (None: 404)."""
    result = run_audit(KafkaSource(bootstrap), keep_memos=True)
    books = result.auditor.books
    if collective_id not in books.collective_ids():
        return None
    out = io.BytesIO()
    write_xlsx(books, result.auditor.payouts, out, collective_id)
    return sheets(out.getvalue())


def ok_workbook(response: Any) -> Sheets:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype.endswith("spreadsheetml.sheet")
    return sheets(response.data)


def test_every_download_is_the_workbook_a_full_replay_writes_also_after_new_records(
        shared_log: Log, tmp_path: Path) -> None:
    client, cache, settings = web_app(shared_log.bootstrap, tmp_path)
    auditor = token(settings, "auditor")
    for cid in (V1, V2, V3):
        assert ok_workbook(download(client, auditor, f"collective_id={cid}")) == \
            replayed_from_the_beginning(shared_log.bootstrap, cid)
    assert (cache.stats.full_replays, cache.stats.catch_ups, cache.stats.renders) == (1, 0, 3)
    before = ok_workbook(download(client, auditor, f"collective_id={V1}"))
    assert cache.stats.hits == 1

    # New records on every topic: entries and a reversal, rent, a distribution declared, approved and paid.
    log = shared_log.writer
    log.at("2026-02-01")
    posted = log.post_entry(V1, "2026-02-02", [("513", "debit", "880.00"), ("102", "credit", "880.00")], "二月办公费")
    log.post_entry(V2, "2026-02-03", [("102", "debit", "5000.00"), ("504", "credit", "5000.00")], "其他收入")
    log.reverse_entry(V1, posted["data"]["entry_id"], "2026-02-05", "记错科目")
    log.rent(PROJECT, "45000.00", "2026-01-20")
    log.expense(PROJECT, "3000.00", "2026-01-25")
    log.at("2026-02-06")
    january = log.declare(PROJECT, "2026-01-01", "2026-01-31")
    log.approve(january)
    log.pay(january, "2026-02-10")
    shared_log.flush()

    for cid in (V1, V2, V3):
        assert ok_workbook(download(client, auditor, f"collective_id={cid}")) == \
            replayed_from_the_beginning(shared_log.bootstrap, cid)
    assert (cache.stats.full_replays, cache.stats.catch_ups) == (1, 1)  # the new records only, once
    after = ok_workbook(download(client, auditor, f"collective_id={V1}"))
    assert len(after["凭证明细"]) > len(before["凭证明细"])
    assert any(row[2] == "2026-02-02" and row[4] == "二月办公费" for row in after["凭证明细"])
    assert any(row[0] == january for row in after["分红明细"])


def test_a_repeat_download_does_not_read_the_log_again_only_what_was_written_since(
        fresh_broker: LocalBroker, tmp_path: Path) -> None:
    log = Log(fresh_broker.bootstrap)
    try:
        small_scenario(log.writer, villages=2, months=6)
        log.flush()
        client, _cache, settings = web_app(fresh_broker.bootstrap, tmp_path)
        accountant = token(settings, "accountant", V1)
        first = ok_workbook(download(client, accountant, f"collective_id={V1}"))
        assert any(row[4] == "区财政发展资金" for row in first["凭证明细"])

        # Every record written so far is deleted from the broker (the partitions now begin at their end):
        # a download that replayed the log from its beginning would find no books of V1 at all.
        ends = end_offsets(fresh_broker.bootstrap, list(RECORD_TOPICS))
        admin = KafkaAdminClient(bootstrap_servers=fresh_broker.bootstrap)
        try:
            admin.delete_records({TopicPartition(t, p): end for (t, p), end in ends.items() if end > 0})
        finally:
            admin.close()
        assert replayed_from_the_beginning(fresh_broker.bootstrap, V1) is None

        assert ok_workbook(download(client, accountant, f"collective_id={V1}")) == first

        # A record written since is read and folded into the kept replay: old entries and the new one.
        log.writer.at("2025-08-01")
        log.writer.post_entry(V1, "2025-08-03", [("101", "debit", "300.00"), ("504", "credit", "300.00")], "零星收入")
        log.flush()
        now = ok_workbook(download(client, accountant, f"collective_id={V1}"))
        added = [row for row in now["凭证明细"] if row not in first["凭证明细"]]
        assert [(row[2], row[4], row[8]) for row in added] == [("2025-08-03", "零星收入", "101"),
                                                              ("2025-08-03", "零星收入", "504")]
        assert [row for row in now["凭证明细"] if row not in added] == first["凭证明细"]
    finally:
        log.close()


def test_a_warmed_web_app_has_replayed_the_log_before_the_first_download(shared_log: Log, tmp_path: Path) -> None:
    client, cache, settings = web_app(shared_log.bootstrap, tmp_path)
    cache.warm()  # what `baotuan serve-web --warm-export` starts in a thread
    folded = sum(end_offsets(shared_log.bootstrap, list(RECORD_TOPICS)).values())
    assert (cache.stats.full_replays, cache.stats.renders, cache.stats.records_folded) == (1, 0, folded)
    book = ok_workbook(download(client, token(settings, "accountant", V3), f"collective_id={V3}"))
    assert (cache.stats.full_replays, cache.stats.renders, cache.stats.records_folded) == (1, 1, folded)
    assert book == replayed_from_the_beginning(shared_log.bootstrap, V3)


def _cells(book: Sheets) -> list[str]:
    return [str(value) for rows in book.values() for row in rows for value in row if value is not None]


@pytest.mark.parametrize("query", [
    f"collective_id={V2}",
    f"collective_id={V2}&collective_id={V1}",
    f"collective_id={V2.upper()}",
    f"collective_id={V2}%0A",
    f"collective_id=%20{V2}",
    f"collective_id={V2}/../{V1}",
    "collective_id=",
])
def test_an_accountant_never_gets_another_villages_books_whatever_the_cache_holds(
        shared_log: Log, tmp_path: Path, query: str) -> None:
    client, cache, settings = web_app(shared_log.bootstrap, tmp_path)
    # The auditor's download puts every village's books in the kept replay, and V2's workbook in the cache.
    auditor_book = ok_workbook(download(client, token(settings, "auditor"), f"collective_id={V2}"))
    assert any(NAMES[V2] in cell for cell in _cells(auditor_book))
    renders, hits = cache.stats.renders, cache.stats.hits

    accountant = token(settings, "accountant", V1)
    refused = download(client, accountant, query)
    assert refused.status_code in (403, 422), refused.status_code
    assert refused.mimetype == "application/json" and refused.json["error"]["field"] in ("Authorization",
                                                                                        "collective_id")
    assert NAMES[V2] not in refused.get_data(as_text=True)
    assert (cache.stats.renders, cache.stats.hits) == (renders, hits)  # the cache was never asked

    # Its own workbook holds its own books only: no other village's id or name in any cell of any sheet.
    own = ok_workbook(download(client, accountant, f"collective_id={V1}&collective_id={V2}"))
    cells = _cells(own)
    assert any(NAMES[V1] in cell for cell in cells)
    for other in (V2, V3):
        assert not [cell for cell in cells if other in cell or NAMES[other] in cell]
    assert {row[0] for row in own["科目余额表"][1:]} == {row[0] for row in own["凭证明细"][1:]} == {V1}
    assert {row[5] for row in own["分红明细"][1:]} == {V1}
    assert own == ok_workbook(download(client, token(settings, "auditor"), f"collective_id={V1}"))
