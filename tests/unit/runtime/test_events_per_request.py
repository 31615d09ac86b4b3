"""One request may publish at most 5,000 events (DESIGN §9, issue 13 point 6): refused with a 422, nothing sent.

No broker here: the limit is checked before an event is sealed or a producer is touched, so an
EventService with no state at all is enough to show it; the HTTP side runs ``idempotent`` over a
service on the in-memory log, which shows what reached the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_smorest import Blueprint

from services.contracts.topics import LEDGER_ENTRIES
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.runtime.http import create_service_app, idempotent
from services.runtime.service import MAX_EVENTS_PER_REQUEST, EventService, NewEvent, TooManyEvents
from services.runtime.store import ProjectionStore


def events(n: int) -> list[NewEvent]:
    return [NewEvent("ExpenseRecorded", "park", {"n": i}) for i in range(n)]


def test_the_limit_is_five_thousand() -> None:
    assert MAX_EVENTS_PER_REQUEST == 5_000


def test_publish_refuses_more_than_max_events_before_touching_anything() -> None:
    bare = EventService.__new__(EventService)  # no producer, no store: any further step would raise AttributeError
    with pytest.raises(TooManyEvents) as raised:
        bare.publish(events(MAX_EVENTS_PER_REQUEST + 1), actor="x", max_events=MAX_EVENTS_PER_REQUEST)
    assert (raised.value.count, raised.value.limit) == (5_001, 5_000)
    assert "5,001 events" in str(raised.value) and "at most 5,000" in str(raised.value)


def periods(n: int) -> list[NewEvent]:
    return [NewEvent("PeriodClosed", "park",
                     {"collective_id": "park", "period": f"{2000 + i // 12:04d}-{i % 12 + 1:02d}"}) for i in range(n)]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[FlaskClient, InMemoryLog, str]]:
    settings = Settings(bootstrap_servers="in-memory", data_dir=tmp_path / "data", tokens_file=tmp_path / "t.json")
    token = add_token(tmp_path / "t.json", name="op", role="admin")
    blp = Blueprint("t", __name__, url_prefix="/v1")

    @blp.route("/runs/<int:n>", methods=["POST"])
    def run(n: int) -> Any:
        return idempotent({"n": n}, lambda publish: publish(periods(n), {"n": n}), lambda result: result)

    @blp.route("/named", methods=["POST"])
    def named() -> Any:
        raise TooManyEvents(6_000, MAX_EVENTS_PER_REQUEST, "up_to")

    log = InMemoryLog()
    service = EventService(name="ledger", settings=settings, store=ProjectionStore(tmp_path / "p.sqlite", ""),
                           fold=lambda conn, topic, envelope: None, inputs=[], owned=[LEDGER_ENTRIES], log=log)
    service.start()
    app = create_service_app(title="t", service=service, settings=settings, blueprints=[blp])
    try:
        yield app.test_client(), log, token
    finally:
        service.stop()


def test_a_request_publishing_more_than_five_thousand_events_is_a_422_and_nothing_is_published(
        client: tuple[FlaskClient, InMemoryLog, str]) -> None:
    http, log, token = client
    headers = {"Authorization": f"Bearer {token}"}
    assert http.post("/v1/runs/5000", headers=headers).status_code == 200
    response = http.post("/v1/runs/5001", headers=headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("too_many_events", "body")
    assert "at most 5,000" in error["message"]
    assert len(log.records(LEDGER_ENTRIES)) == 5_000


def test_a_view_may_name_the_field_that_makes_the_request_too_big(
        client: tuple[FlaskClient, InMemoryLog, str]) -> None:
    http, _, token = client
    response = http.post("/v1/named", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "up_to"
