"""deploy/'s files against the official schemas of what reads them (services/devtools/manifests.py), offline:
the Kubernetes API's JSON schemas (kubernetes-validate, pinned in pyproject.toml), Strimzi's CRDs of the release
pinned in tests/schemas/strimzi/pom.xml, and compose-go (the `docker compose` loader) for the compose files.
Each check is also shown to catch a misspelt and a missing field."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.devtools import manifests
from services.devtools.strimzi_crds import KINDS, strimzi_version

DEPLOY = manifests.PROJECT_ROOT / "deploy"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((manifests.KUBERNETES_DIR / name).read_text()) if d]


def first(name: str, kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in documents(name) if d["kind"] == kind))


def test_every_kubernetes_document_is_valid_against_its_schema() -> None:
    assert manifests.kubernetes_problems() == []
    kinds = {(d["apiVersion"], d["kind"]) for name in ("kafka.yaml", "services.yaml") for d in documents(name)}
    # every kind the files use has a schema here: the Strimzi ones from the CRDs, the rest from Kubernetes
    assert {k for k in kinds if k[0].startswith("kafka.strimzi.io/")} <= set(manifests.crd_schemas())
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Service", "StatefulSet"} <= {k for _, k in kinds}


def test_the_vendored_crds_are_those_of_the_pinned_strimzi_release() -> None:
    version = strimzi_version()
    for cls, name in KINDS.items():
        text = (manifests.CRD_DIR / name).read_text()
        assert text.startswith(f"# Strimzi {version} CustomResourceDefinition ({cls.rsplit('.', 1)[1]})"), name
        crd = yaml.safe_load(text)
        assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["group"] == "kafka.strimzi.io"
        assert crd["spec"]["names"]["kind"] == cls.rsplit(".", 1)[1]
    assert re.search(rf"Strimzi {re.escape(version)}\b", (manifests.KUBERNETES_DIR / "kafka.yaml").read_text())


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return change


def _rename(path: str, new: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[new] = node.pop(last)
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]
    return change


CONTAINER = "spec.template.spec.containers.0"
MUTATIONS = [
    # (file, kind, change, words the problem must name)
    ("services.yaml", "StatefulSet", _rename("spec.replicas", "replica"), ["'replica'"]),
    ("services.yaml", "StatefulSet", _drop("spec.selector"), ["'selector' is a required property"]),
    ("services.yaml", "StatefulSet", _rename(f"{CONTAINER}.volumeMounts", "volumeMount"), ["'volumeMount'"]),
    ("services.yaml", "StatefulSet", _drop(f"{CONTAINER}.name"), ["'name' is a required property"]),
    ("services.yaml", "StatefulSet", _set(f"{CONTAINER}.ports.0.containerPort", "8001"), ["'8001'", "integer"]),
    ("services.yaml", "Service", _drop("spec.ports.0.port"), ["'port' is a required property"]),
    ("services.yaml", "Service", _rename("metadata.name", "nmae"), ["'nmae'"]),
    ("kafka.yaml", "KafkaTopic", _rename("spec.partitions", "partition"), ["spec", "'partition'"]),
    ("kafka.yaml", "KafkaTopic", _set("spec.partitions", 0), ["spec.partitions", "minimum"]),
    ("kafka.yaml", "KafkaNodePool", _drop("spec.roles"), ["'roles' is a required property"]),
    ("kafka.yaml", "KafkaNodePool", _set("spec.roles", ["controler"]), ["spec.roles.0", "'controler'"]),
    ("kafka.yaml", "Kafka", _drop("spec.kafka"), ["'kafka' is a required property"]),
    ("kafka.yaml", "Kafka", _rename("spec.kafka.listeners", "listener"), ["spec.kafka", "'listener'"]),
    ("kafka.yaml", "Kafka", _rename("metadata.name", "nmae"), ["metadata", "'nmae'"]),
    ("kafka.yaml", "KafkaUser", _set("spec.authorization.acls.1.operations", ["Raed"]),
     ["spec.authorization.acls.1.operations.0", "'Raed'"]),
    ("kafka.yaml", "KafkaUser", _drop("spec.authorization.acls.0.resource"), ["'resource' is a required property"]),
    ("kafka.yaml", "KafkaUser", _set("apiVersion", "kafka.strimzi.io/v1beta2"), ["serves no", "v1beta2"]),
]


@pytest.mark.parametrize(("name", "kind", "change", "named"), MUTATIONS,
                         ids=[f"{m[1]}-{i}" for i, m in enumerate(MUTATIONS)])
def test_a_misspelt_missing_or_wrong_field_is_named(name: str, kind: str, change: Callable[[dict[str, Any]], None],
                                                     named: list[str]) -> None:
    doc = first(name, kind)
    assert manifests.document_problems(doc) == []
    change(doc)
    problems = manifests.document_problems(doc)
    assert problems, f"{kind}: the change went unnoticed"
    text = "\n".join(problems)
    for word in named:
        assert word in text, text


def _checker_or_skip() -> None:
    if manifests.composecheck() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must check the compose files: install Go (make composecheck)")
        pytest.skip("Go is not installed here, so compose-go (deploy/tools/composecheck) cannot be built")


@pytest.mark.parametrize("group", manifests.COMPOSE_FILES, ids=lambda g: "+".join(g))
def test_the_compose_files_are_valid_for_docker_compose(group: tuple[str, ...]) -> None:
    _checker_or_skip()
    assert manifests.compose_problems([DEPLOY / name for name in group]) == []


@pytest.mark.parametrize(("old", "new", "named"), [
    ("    command:", "    comand:", "comand"),         # a misspelt key
    ("condition: service_healthy", "condition: service_healty", "depends_on.kafka.condition"),  # not in the spec
    ("\nvolumes:\n", "\nvolume:\n", "volume"),        # a misspelt top-level key
])
def test_compose_check_names_a_bad_field(tmp_path: Path, old: str, new: str, named: str) -> None:
    _checker_or_skip()
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert old in text
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(text.replace(old, new, 1))
    problems = manifests.compose_problems([bad])
    assert problems and named in "\n".join(problems), problems
