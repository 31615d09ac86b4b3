"""The services on a broker that runs as production should: SASL/SCRAM users and ACLs (DESIGN §8).

Each service process logs in with its own SCRAM user (BAOTUAN_KAFKA_SASL_USERNAME/_PASSWORD),
reads its inputs and writes its own topic; a wrong password keeps a service from starting; and
neither the Kafka passwords nor the bearer tokens appear in any log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fault_harness import ServiceProcess, Stack, call, ok, post_until_ok, secrets_in_logs, stack_on, wait_for
from kafka_helpers import secured_broker

from services.contracts.topics import LEDGER_ENTRIES, partitions
from services.runtime.ownership import partition_of

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

PASSWORDS = {name: f"{name}-{os.urandom(8).hex()}" for name in ("ledger", "rentals", "dividends", "auditor")}


def sasl_env(user: str, password: str | None = None) -> dict[str, str]:
    return {"BAOTUAN_KAFKA_SASL_USERNAME": user, "BAOTUAN_KAFKA_SASL_PASSWORD": password or PASSWORDS[user]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        pytest.skip("needs a secured broker the test starts itself")
    root = tmp_path_factory.mktemp("secured")
    with secured_broker(root / "kafka", PASSWORDS) as broker, stack_on(broker, root, name="secured") as world:
        yield world


def test_each_service_runs_with_its_own_scram_user_under_the_acls(stack: Stack) -> None:
    for name in ("ledger", "rentals", "dividends"):
        stack.service(name, **sasl_env(name)).start()
    admin = stack.token("admin")
    ledger, rentals, dividends = (stack.services[n].url for n in ("ledger", "rentals", "dividends"))
    post_until_ok(f"{ledger}/v1/collectives", admin, {"collective_id": "sasl-v", "name": "联盟村", "town": "金清镇"},
                  key="c")
    post_until_ok(f"{ledger}/v1/projects", admin, {"project_id": "sasl-p", "name": "滨海产业园",
                                                    "kind": "industrial_park", "town": "金清镇", "operator": "运营"},
                  key="p")
    entry = post_until_ok(f"{ledger}/v1/collectives/sasl-v/entries", stack.token("accountant", "sasl-v"),
                          {"date": "2026-03-01", "lines": [{"account": "102", "debit": "8.88"},
                                                           {"account": "504", "credit": "8.88"}]}, key="e")
    assert entry["lines"][0]["debit"] == "8.88"
    # rentals reads the ledger's projects under its own user, and writes its own topic
    building = post_until_ok(f"{rentals}/v1/projects/sasl-p/buildings", stack.token("operator", "sasl-p"),
                             {"name": "1号厂房", "floor_area_m2": "8400.00"}, key="b")
    assert building["project_id"] == "sasl-p"
    ok(call("PUT", f"{dividends}/v1/projects/sasl-p/policy", stack.token("board", "sasl-p"),
            {"management_fee_rate": "0.05", "tax_rate": "0.06", "payout_ratio": "0.90", "guaranteed_rate": "0"},
            key="policy"))
    for name in ("ledger", "rentals", "dividends"):
        health = ok(call("GET", f"{stack.services[name].url}/health", None))
        assert health["broker"] == "reachable" and health["dead_letters"] == 0, health


def test_a_service_with_a_wrong_kafka_password_does_not_start(stack: Stack) -> None:
    impostor = stack.service("rentals-impostor")
    impostor.name = "rentals"  # the real service, started with a wrong password
    impostor.env_extra.update(sasl_env("rentals", "not-the-password"))
    with pytest.raises(RuntimeError):
        impostor.start(wait_s=12)
    impostor.kill()


def test_instances_of_a_service_share_its_partitions_under_the_acls(stack: Stack) -> None:
    """Several instances (docs/scaling.md) with the service's own user: the writers' group, its offsets in each
    transaction (KIP-447) and the forwarding all work with the grants of docs/security.md, and no more."""
    stack.services["ledger"].stop()  # one writer or a group of them, never both on the same topics
    instances = []
    for instance_id in ("1", "2"):
        svc = ServiceProcess("ledger", bootstrap=stack.broker.bootstrap, data_dir=stack.root / "ledger-cluster",
                             tokens_file=stack.tokens_file, timeout_s=stack.timeout_s)
        svc.log_path = stack.root / f"ledger-{instance_id}.process.log"
        svc.env_extra = {**sasl_env("ledger"), "BAOTUAN_INSTANCE_ID": instance_id, "BAOTUAN_ADVERTISED_URL": svc.url,
                         "BAOTUAN_GROUP_SESSION_TIMEOUT_MS": "6000"}
        stack.services[f"ledger-{instance_id}"] = svc
        instances.append(svc)
    for svc in instances:
        svc.start()

    def writes(svc: ServiceProcess) -> set[int]:
        info = ok(call("GET", f"{svc.url}/health", None))["instance"]
        return {int(n.split("[")[1].rstrip("]")) for n in info["owned"]
                if n.startswith(LEDGER_ENTRIES + "[") and n not in info["catching_up"]}

    everything = set(range(partitions()))
    wait_for("the two instances to share every partition",
             lambda: all(writes(s) for s in instances) and writes(instances[0]) | writes(instances[1]) == everything,
             timeout_s=60)
    admin = stack.token("admin")
    for svc, other in ((instances[0], instances[1]), (instances[1], instances[0])):
        village = next(f"acl-v{i}" for i in range(1000) if partition_of(f"acl-v{i}", partitions()) in writes(other))
        response = call("POST", f"{svc.url}/v1/collectives", admin,
                        {"collective_id": village, "name": "村", "town": "镇"}, key=f"acl-{village}")
        assert response.status_code == 201, response.text  # forwarded to the owner, which wrote it
        assert response.headers.get("X-Baotuan-Answered-By") == other.url


def test_no_kafka_password_and_no_bearer_token_appears_in_any_log(stack: Stack) -> None:
    # A bad token and a good one go through each service's access log and error paths first.
    for svc in [s for s in stack.services.values() if s.alive()]:
        call("GET", f"{svc.url}/v1/projects/sasl-p/policy", "bt_wrong-token-value")
        call("POST", f"{svc.url}/v1/collectives", stack.token("auditor"), {"collective_id": "x"})
    leaked = secrets_in_logs(stack, *PASSWORDS.values(), stack.broker.admin_password)
    assert leaked == [], f"secrets in the logs: {leaked}"
