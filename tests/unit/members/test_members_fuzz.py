"""Bad input at scale on the in-memory log: schemathesis fuzzes every operation of the members API.

Valid-looking and schema-violating requests with an admin token, half of them aimed at real ids (a village
with a charter, households, a proposed plan and an approved one). No request may get a 5xx, and a refused
request (4xx) writes nothing: the end offsets of baotuan.members.v1 are the same after it. The same fuzz
runs against a broker in tests/security/test_openapi_fuzz.py.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from members_world import World, world_on

from services.contracts.topics import MEMBERS
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog

EXAMPLES = 8


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("members-fuzz")
    settings = Settings(bootstrap_servers="in-memory", data_dir=folder / "data", tokens_file=folder / "tokens.json",
                        request_timeout_s=5)
    with world_on(settings, folder, InMemoryLog()) as world:
        yield world


def test_no_fuzzed_request_gets_a_5xx_and_no_refused_request_writes(world: World) -> None:
    cid = world.village("fz-village")
    world.propose(cid, members_total="100.00")
    world.close_year(cid, 2026, "500.00")
    world.propose(cid, year=2026, members_total="10.00", record_date="2027-03-31")
    world.approve(cid, "plan-2026", meeting_on="2027-04-10")
    known = {"collective_id": cid, "household_id": "hu-1", "plan_id": "plan-2025"}
    admin = world.token("admin")
    log = world.ledger.log
    schema = schemathesis.openapi.from_wsgi("/openapi.json", world.client.application)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an invalid operation would raise here
        operations += 1
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode), aim=st.booleans())
            @hsettings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                       suppress_health_check=list(HealthCheck))
            def fuzz(case: Any, aim: bool) -> None:
                if aim and case.path_parameters:
                    case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
                before = log.end_offsets([MEMBERS], 5)
                response = case.call(headers={"Authorization": f"Bearer {admin}"})
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                    f"{response.text[:300]} body={case.body!r:.300}")
                elif 400 <= response.status_code < 500 and log.end_offsets([MEMBERS], 5) != before:
                    failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} but wrote")

            with contextlib.suppress(Unsatisfiable):
                fuzz()
    assert failures == [], "\n".join(failures[:20])
    assert operations >= 16 and sum(statuses.values()) >= operations * EXAMPLES
    assert any(200 <= status < 300 for status in statuses) and any(status == 422 for status in statuses)
