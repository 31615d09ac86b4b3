"""One request may publish at most 5,000 events (DESIGN §9, issue 13 point 6): refused with a 422, nothing sent.

No broker here: the limit is checked before an event is sealed or a producer is touched, so an
EventService with no state at all is enough to show it; the HTTP side runs ``idempotent`` over a
stand-in service whose publish is the real one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_smorest import Blueprint

from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.http import create_service_app, idempotent
from services.runtime.service import MAX_EVENTS_PER_REQUEST, EventService, NewEvent, TooManyEvents


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


class StandIn:
    """The parts of EventService that ``idempotent`` uses; publish is the real check, then records the call."""

    def __init__(self) -> None:
        self.published: list[int] = []

    @contextmanager
    def writing(self) -> Iterator[None]:
        yield

    def replay_idempotent(self, key: str | None, body: Any) -> None:
        return None

    def publish(self, batch: Sequence[NewEvent], **options: Any) -> list[dict[str, Any]]:
        limit = options.get("max_events")
        if limit is not None and len(batch) > limit:
            EventService.publish(EventService.__new__(EventService), batch, actor="x", max_events=limit)
        self.published.append(len(batch))
        return []

    def receipts(self, published: Any) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[FlaskClient, StandIn, str]]:
    settings = Settings(bootstrap_servers="localhost:1", data_dir=tmp_path / "data", tokens_file=tmp_path / "t.json")
    token = add_token(tmp_path / "t.json", name="op", role="admin")
    blp = Blueprint("t", __name__, url_prefix="/v1")

    @blp.route("/runs/<int:n>", methods=["POST"])
    def run(n: int) -> Any:
        return idempotent({"n": n}, lambda publish: publish(events(n), {"n": n}), lambda result: result)

    @blp.route("/named", methods=["POST"])
    def named() -> Any:
        raise TooManyEvents(6_000, MAX_EVENTS_PER_REQUEST, "up_to")

    stand_in = StandIn()
    app = create_service_app(title="t", service=None, settings=settings, blueprints=[blp])
    app.extensions["baotuan_service"] = stand_in
    yield app.test_client(), stand_in, token


def test_a_request_publishing_more_than_five_thousand_events_is_a_422_and_nothing_is_published(
        client: tuple[FlaskClient, StandIn, str]) -> None:
    http, stand_in, token = client
    headers = {"Authorization": f"Bearer {token}"}
    assert http.post("/v1/runs/5000", headers=headers).status_code == 200
    response = http.post("/v1/runs/5001", headers=headers)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("too_many_events", "body")
    assert "at most 5,000" in error["message"]
    assert stand_in.published == [5_000]


def test_a_view_may_name_the_field_that_makes_the_request_too_big(client: tuple[FlaskClient, StandIn, str]) -> None:
    http, _, token = client
    response = http.post("/v1/named", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "up_to"
