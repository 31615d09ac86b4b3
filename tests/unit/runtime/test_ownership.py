"""Scale-out (DESIGN §12): who may write which partition, and what a write for another instance's
partition becomes (forwarded to its owner, 409 when it spans owners, 503 while ownership moves).

The pure decision, then two ledger instances on one in-memory log, served over loopback HTTP, each
owning a fixed set of partitions (``StaticOwnership``: the consumer group's part is tested against
a real broker in tests/faults/test_scale_out.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import Server, bearer

from services.contracts.topics import ACCOUNTS, CHECKPOINTS, LEDGER_ENTRIES, LEDGER_INVESTMENTS
from services.ledger.app import create_app
from services.runtime.auth import add_token
from services.runtime.config import Settings
from services.runtime.eventlog import InMemoryLog
from services.runtime.forwarding import FORWARDED_HEADER
from services.runtime.ownership import (
    GroupMembership,
    NotOwner,
    NotReady,
    SoleWriter,
    SpansOwners,
    StaticOwnership,
    View,
    decide,
    partition_of,
)
from services.runtime.service import EventService

COUNT = 3
LEDGER_TOPICS = (LEDGER_ENTRIES, LEDGER_INVESTMENTS, ACCOUNTS, CHECKPOINTS)


def view(owned: set[tuple[str, int]], ready: set[tuple[str, int]] | None = None,
         owners: dict[tuple[str, int], str] | None = None) -> View:
    return View(frozenset(owned), frozenset(owned if ready is None else ready), owners or {})


OWNERS = {("t", 0): "http://a", ("t", 1): "http://a", ("t", 2): "http://b", ("u", 2): "http://c"}


@pytest.mark.parametrize(("places", "owned", "ready", "expected"), [
    ({("t", 0)}, {("t", 0), ("t", 1)}, None, None),  # owned and caught up: write
    ({("t", 0), ("t", 1)}, {("t", 0), ("t", 1)}, None, None),
    ({("t", 0)}, {("t", 0)}, set(), NotReady),  # owned, still catching up with its end
    ({("t", 2)}, {("t", 0)}, None, NotOwner),  # another's: forward it
    ({("t", 0), ("t", 2)}, {("t", 0)}, None, SpansOwners),  # part ours, part another's
    ({("t", 2), ("u", 2)}, {("t", 0)}, None, SpansOwners),  # two other owners
    ({("t", 1)}, set(), None, NotOwner),  # a member that owns nothing (yet) forwards everything
])
def test_the_decision(places: set[tuple[str, int]], owned: set[tuple[str, int]], ready: set[tuple[str, int]] | None,
                      expected: type[Exception] | None) -> None:
    if expected is None:
        decide(places, view(owned, ready, OWNERS))
    else:
        with pytest.raises(expected):
            decide(places, view(owned, ready, OWNERS))


def test_not_owner_names_the_owner() -> None:
    with pytest.raises(NotOwner) as raised:
        decide({("t", 2)}, view({("t", 0)}, owners=OWNERS))
    assert (raised.value.topic, raised.value.partition, raised.value.url) == ("t", 2, "http://b")
    with pytest.raises(NotOwner) as unknown:
        decide({("t", 2)}, view({("t", 0)}))
    assert unknown.value.url is None


def test_a_subject_lives_where_kafka_puts_its_records() -> None:
    log = InMemoryLog(partition_count=COUNT)
    from services.contracts import envelope as env
    from services.runtime.kafka_io import OutRecord

    for subject in ("jinqing", "xiachen", "村-一", "binhai-park", "a", "zz-99"):
        sealed, value = env.seal_encoded(env.new_envelope(
            event_type="CollectiveRegistered", version=1, source="ledger", subject=subject,
            data={"collective_id": subject, "name": "x", "town": "y"}, actor="t"), env.ChainHead())
        (ack,) = log.publish([OutRecord(LEDGER_ENTRIES, sealed, value, [])])
        assert ack.partition == partition_of(subject, COUNT)


def test_one_instance_alone_owns_everything() -> None:
    sole = SoleWriter()
    assert not sole.grouped and sole.owns(LEDGER_ENTRIES, 2)
    sole.check({(LEDGER_ENTRIES, 0), (ACCOUNTS, 1)})
    assert sole.fencing({(ACCOUNTS, 1): 5}) is None


def village_in(part: int, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(1000) if partition_of(f"{prefix}{i}", COUNT) == part)


class Pair:
    """Two ledger instances on one in-memory log: ``a`` owns partitions 0 and 1, ``b`` partition 2."""

    def __init__(self, root: Path) -> None:
        self.log = InMemoryLog(partition_count=COUNT)
        tokens = root / "tokens.json"
        self.admin = add_token(tokens, name="admin", role="admin", scope=())
        key = root / "shared-key" / "ledger.pem"
        from services.runtime.signing import SigningKey

        SigningKey.load(key, create=True)
        self.servers = []
        for name in ("a", "b"):
            settings = Settings(bootstrap_servers="in-memory", data_dir=root / name, tokens_file=tokens,
                                request_timeout_s=5, signing_key_file=key)
            self.servers.append(Server(create_app(settings, log=self.log)))
        self.a, self.b = self.servers
        parts = {"a": {0, 1}, "b": {2}}
        owners = {(t, p): (self.a.url if p in parts["a"] else self.b.url) for t in LEDGER_TOPICS for p in range(COUNT)}
        for server, mine in ((self.a, parts["a"]), (self.b, parts["b"])):
            self.service(server).ownership = StaticOwnership(
                {(t, p) for t in LEDGER_TOPICS for p in mine}, owners, count=COUNT)

    @staticmethod
    def service(server: Server) -> EventService:
        found = server.app.extensions["baotuan_service"]
        assert isinstance(found, EventService)
        return found

    def register(self, server: Server, village: str, key: str | None = None,
                 **headers: str) -> requests.Response:
        extra = {"Idempotency-Key": key} if key else {}
        return requests.post(f"{server.url}/v1/collectives", timeout=10,
                             json={"collective_id": village, "name": f"{village}村", "town": "金清镇"},
                             headers=bearer(self.admin, **extra, **headers))

    def registered(self, village: str) -> int:
        return sum(1 for r in self.log.records(LEDGER_ENTRIES) if r.key == village.encode())

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    found = Pair(tmp_path)
    try:
        yield found
    finally:
        found.stop()


def test_a_write_for_another_instance_is_forwarded_and_answered_once(pair: Pair) -> None:
    village = village_in(2, "west-")  # b's
    response = pair.register(pair.a, village, key="reg-1")
    assert response.status_code == 201, response.text
    assert response.headers["X-Baotuan-Answered-By"] == pair.b.url
    assert response.json()["collective_id"] == village and response.json()["receipts"]
    assert pair.registered(village) == 1
    # The same request again, to either instance: the first answer, nothing written again.
    for server in (pair.a, pair.b):
        again = pair.register(server, village, key="reg-1")
        assert again.status_code == 201 and again.json()["collective_id"] == village
    assert pair.registered(village) == 1
    # Both instances read it (each folds every partition).
    for server in (pair.a, pair.b):
        got = requests.get(f"{server.url}/v1/collectives/{village}", headers=bearer(pair.admin), timeout=10)
        assert got.status_code == 200, got.text


def test_an_owner_writes_its_own_without_forwarding(pair: Pair) -> None:
    village = village_in(0, "east-")  # a's
    response = pair.register(pair.a, village)
    assert response.status_code == 201 and "X-Baotuan-Answered-By" not in response.headers
    assert pair.registered(village) == 1


def test_a_forwarded_request_is_never_forwarded_again(pair: Pair) -> None:
    village = village_in(2, "hop-")
    response = pair.register(pair.a, village, **{FORWARDED_HEADER: "http://elsewhere"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "owner_changing", response.text
    assert pair.registered(village) == 0


def test_an_unknown_owner_or_a_partition_being_taken_over_is_a_503(pair: Pair) -> None:
    svc = Pair.service(pair.a)
    assert isinstance(svc.ownership, StaticOwnership)
    mine = svc.ownership.view.owned
    svc.ownership = StaticOwnership(mine, {}, count=COUNT)  # owners not known yet
    village = village_in(2, "nobody-")
    response = pair.register(pair.a, village)
    assert response.status_code == 503 and response.json()["error"]["code"] == "owner_changing"
    svc.ownership = StaticOwnership(mine, {}, ready=set(), count=COUNT)  # a's, still catching up
    own = village_in(0, "taking-")
    response = pair.register(pair.a, own)
    assert response.status_code == 503 and "taking over" in response.json()["error"]["message"]
    assert pair.registered(village) == 0 and pair.registered(own) == 0


def test_derived_events_are_published_by_their_partitions_owner_only(pair: Pair) -> None:
    a, b = Pair.service(pair.a), Pair.service(pair.b)
    assert a._writes("CollectiveRegistered", village_in(0, "d-")) and not a._writes("CollectiveRegistered",
                                                                                    village_in(2, "d-"))
    assert b._writes("CollectiveRegistered", village_in(2, "d-")) and not b._writes("CollectiveRegistered",
                                                                                    village_in(1, "d-"))
    # Checkpoints: each topic's are signed by the one instance that owns its stream on the checkpoints topic.
    signers = [set(a._checkpointed()), set(b._checkpointed())]
    assert signers[0].isdisjoint(signers[1]) and signers[0] | signers[1] == set(a.anchored)


def membership(view_: View) -> GroupMembership:
    """A member of a writers' group as it stands after a poll (its thread not started: no broker here)."""
    member = GroupMembership(service="ledger", instance_id="1", url="http://a", bootstrap="unused:9092",
                             topics=[LEDGER_ENTRIES, CHECKPOINTS], position=lambda topic, partition: 0)
    member._view = view_
    return member


def test_a_transaction_commits_the_offsets_of_what_it_wrote_with_its_generation() -> None:
    metadata = object()  # what KafkaConsumer.group_metadata() gave with this assignment
    member = membership(View(frozenset({(LEDGER_ENTRIES, 1)}), frozenset({(LEDGER_ENTRIES, 1)}), {}, metadata))
    fenced = member.fencing({(LEDGER_ENTRIES, 1): 42})
    assert fenced is not None
    offsets, sent = fenced
    assert sent is metadata
    assert {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()} == {(LEDGER_ENTRIES, 1): 42}


@pytest.mark.parametrize("view_", [
    View(frozenset({(LEDGER_ENTRIES, 1)}), frozenset({(LEDGER_ENTRIES, 1)}), {}, None),  # no generation yet
    View(frozenset({(LEDGER_ENTRIES, 1)}), frozenset(), {}, object()),  # still catching up
    View(frozenset({(LEDGER_ENTRIES, 2)}), frozenset({(LEDGER_ENTRIES, 2)}), {}, object()),  # lost it
])
def test_a_transaction_of_what_the_member_does_not_write_now_is_refused(view_: View) -> None:
    with pytest.raises(NotReady):
        membership(view_).fencing({(LEDGER_ENTRIES, 1): 7})
