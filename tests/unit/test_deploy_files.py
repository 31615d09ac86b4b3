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
    for name, port in (("ledger", 8001), ("rentals", 8002), ("dividends", 8003)):
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
