"""deploy/ stays valid where it cannot be run here (no Docker engine on this machine)."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from services.cli import main
from services.devtools.broker import KAFKA_VERSION
from services.runtime.config import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_runs_the_pinned_kafka_in_kraft_mode_with_single_node_replication() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    env = kafka["environment"]
    for key in ("KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
                "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_CONTROLLER_LISTENER_NAMES", "CLUSTER_ID",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert key in env, key
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "9092:9092" in kafka["ports"]


def test_compose_services_use_the_one_dockerfile_and_real_serve_commands() -> None:
    services = compose()["services"]
    runner = CliRunner()
    for name, port in (("ledger", 8001), ("rentals", 8002), ("dividends", 8003), ("members", 8004)):
        svc = services[name]
        build = svc["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
        assert svc["command"][:2] == ["serve", name]
        assert svc["command"][-1] == str(port)
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
        # the command line parses with the real CLI (--help stops before serving)
        result = runner.invoke(main, [*svc["command"], "--help"])
        assert result.exit_code == 0, result.output


def test_dockerfile_installs_the_package_and_enters_through_the_cli() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "pip install ." in text
    assert 'ENTRYPOINT ["baotuan"]' in text
    assert Path(PROJECT_ROOT / "pyproject.toml").exists()


def test_the_maven_pom_pins_the_same_kafka_version_as_the_runner() -> None:
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom


def test_the_scale_out_compose_file_runs_two_instances_of_each_service() -> None:
    base = compose()["services"]
    scale = yaml.safe_load((DEPLOY / "docker-compose.scale.yml").read_text())["services"]
    runner = CliRunner()
    from services.cli import DEFAULT_PORTS
    from services.contracts.topics import WRITERS

    for name in WRITERS:  # every service that writes runs as two instances
        port = DEFAULT_PORTS[name]
        first, second = {**base[name], **scale[name]}, scale[f"{name}-2"]
        ids, urls = [], []
        for svc, host in ((first, name), (second, f"{name}-2")):
            command = svc["command"]
            assert command[:2] == ["serve", name]
            ids.append(command[command.index("--instance-id") + 1])
            urls.append(command[command.index("--advertised-url") + 1])
            assert urls[-1] == f"http://{host}:{port}"  # where the other instances forward to
            assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:29092"
            assert f"{name}-data:/data" in svc["volumes"]  # one volume: the service's one signing key
            result = runner.invoke(main, [*command, "--help"])
            assert result.exit_code == 0, result.output
        assert len(set(ids)) == 2, ids
        assert second["ports"] == [f"{port + 100}:{port}"]
        assert (DEPLOY / second["build"]["context"] / second["build"]["dockerfile"]).resolve() \
            == (DEPLOY / "Dockerfile").resolve()


def kubernetes(name: str) -> list[dict]:  # type: ignore[type-arg]
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()))
    for doc in docs:  # what every Kubernetes object has
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"]["name"], doc
    return docs


def test_the_strimzi_topics_and_users_are_those_of_the_contract() -> None:
    from services.contracts.topics import TOPIC_CONFIG, TOPICS, standard_grants

    docs = kubernetes("kafka.yaml")
    topics = {d["spec"]["topicName"]: d["spec"] for d in docs if d["kind"] == "KafkaTopic"}
    assert set(topics) == set(TOPICS)
    assert {spec["partitions"] for spec in topics.values()} == {24}  # one partition count for every topic
    assert all(TOPIC_CONFIG.items() <= spec["config"].items() for spec in topics.values())
    users = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "KafkaUser"}
    grants = standard_grants()
    assert set(users) == set(grants)
    for user, grant in grants.items():
        found = {(acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], operation)
                 for acl in users[user]["authorization"]["acls"] for operation in acl["operations"]}
        wanted = {("topic", "baotuan.", "prefix", "Describe")}
        wanted |= {("topic", t, "literal", "Read") for t in grant.read}
        wanted |= {("topic", t, "literal", "Write") for t in grant.write}
        if grant.write:  # transactions under its own ids; its instances' consumer group (docs/scaling.md)
            wanted |= {("transactionalId", f"baotuan-{user}-", "prefix", op) for op in ("Write", "Describe")}
            wanted |= {("group", f"baotuan-{user}-", "prefix", op) for op in ("Read", "Describe")}
        assert found == wanted, user


def test_the_kubernetes_services_run_several_instances_of_each_writer() -> None:
    from services.contracts.topics import WRITERS

    docs = kubernetes("services.yaml")
    kafka_users = {d["metadata"]["name"] for d in kubernetes("kafka.yaml") if d["kind"] == "KafkaUser"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    runner = CliRunner()
    for name in WRITERS:
        sets = [d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == name]
        assert len(sets) == 1, name
        spec = sets[0]["spec"]
        assert spec["replicas"] >= 2
        headless = services[spec["serviceName"]]
        assert headless["spec"]["clusterIP"] == "None"
        (container,) = spec["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["BAOTUAN_INSTANCE_ID"]["value"] == "$(POD_NAME)"
        port = container["ports"][0]["containerPort"]
        from services.cli import DEFAULT_PORTS

        assert port == DEFAULT_PORTS.get(name, port)
        assert env["BAOTUAN_ADVERTISED_URL"]["value"] == f"http://$(POD_NAME).{spec['serviceName']}:{port}"
        assert env["BAOTUAN_KAFKA_SASL_USERNAME"]["value"] == name in kafka_users
        assert env["BAOTUAN_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == name
        assert container["args"][:2] == ["serve", name] and container["args"][-1] == str(port)
        result = runner.invoke(main, [*container["args"], "--help"])
        assert result.exit_code == 0, result.output
        assert services[name]["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_the_kubernetes_files_are_what_the_generator_makes_of_the_contract() -> None:
    from services.devtools.kubernetes import kafka_yaml, services_yaml

    assert (DEPLOY / "kubernetes" / "kafka.yaml").read_text() == kafka_yaml(), \
        "run python -m services.devtools.kubernetes"
    assert (DEPLOY / "kubernetes" / "services.yaml").read_text() == services_yaml(), \
        "run python -m services.devtools.kubernetes"
