"""deploy/'s files checked against the official schemas of what reads them, offline.

- Core Kubernetes objects (Service, StatefulSet …): the Kubernetes API's own JSON schemas of the versions in
  :data:`KUBERNETES_VERSIONS`, as the PyPI package kubernetes-validate bundles them (its *strict* variant: a field
  the API does not define is an error, as ``kubectl apply`` with its default ``--validate=strict`` makes it).
- Strimzi resources (``kafka.strimzi.io``): the ``openAPIV3Schema`` of the served version in Strimzi's
  CustomResourceDefinitions (tests/schemas/strimzi/, written by :mod:`services.devtools.strimzi_crds` from the
  release pinned there), read as Kubernetes reads a structural schema under strict field validation: an unknown
  field is an error unless the schema preserves unknown fields; ``metadata`` is held to the Kubernetes ObjectMeta.
- Compose files: compose-go, the loader of the ``docker compose`` CLI (the Compose Specification's schema and its
  own rules), built from deploy/tools/composecheck (``make composecheck``; needs Go).

    python -m services.devtools.manifests      # prints every problem; exit status 1 if any

tests/unit/test_deploy_schemas.py runs the same checks (and shows they catch a misspelt or missing field).
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

from services.runtime.config import PROJECT_ROOT

#: The Kubernetes versions every core object must be valid in: the oldest the upstream project still supported
#: when this was pinned, and the newest kubernetes-validate (pinned in pyproject.toml) carries.
KUBERNETES_VERSIONS = ("1.35", "1.37")
KUBERNETES_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
CRD_DIR = PROJECT_ROOT / "tests" / "schemas" / "strimzi"
COMPOSE_FILES = (("docker-compose.yml",), ("docker-compose.yml", "docker-compose.scale.yml"))
COMPOSECHECK_SOURCE = PROJECT_ROOT / "deploy" / "tools" / "composecheck"
COMPOSECHECK = PROJECT_ROOT / ".cache" / "composecheck"
DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"


def _strict(node: Any) -> Any:
    """A CRD's structural schema as JSON Schema under Kubernetes' strict field validation."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items()}
    if "properties" in node:  # property names are data there, not keywords
        out["properties"] = {name: _strict(value) for name, value in node["properties"].items()}
        if not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            out["additionalProperties"] = False
    if node.get("nullable") and isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"]
    return out


@functools.cache
def _kubernetes_definitions(version: str) -> dict[str, Any]:
    root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    loaded: dict[str, Any] = json.loads((root / "_definitions.json").read_text())
    return loaded


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict JSON Schema of every version the vendored Strimzi CRDs serve."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                schema["properties"]["metadata"] = {
                    "$ref": f"{DEFINITIONS_ID}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
                found[(f"{group}/{version['name']}", kind)] = schema
    return found


def strimzi_version() -> str:
    from services.devtools.strimzi_crds import strimzi_version as pinned

    return pinned()


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(document)"


def document_problems(doc: dict[str, Any]) -> list[str]:
    """What is wrong with one Kubernetes document (empty when it is valid), each naming the field."""
    import kubernetes_validate

    name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    problems: list[str] = []
    api_version = str(doc.get("apiVersion", ""))
    if api_version.startswith("kafka.strimzi.io/"):
        schema = crd_schemas().get((api_version, str(doc.get("kind"))))
        if schema is None:
            served = sorted(f"{v} {k}" for v, k in crd_schemas())
            return [f"{name}: Strimzi {strimzi_version()} serves no {api_version} {doc.get('kind')} ({served})"]
        for version in KUBERNETES_VERSIONS:
            definitions = Resource.from_contents(_kubernetes_definitions(version))
            registry: Registry[Any] = Registry().with_resource(DEFINITIONS_ID, definitions)
            validator = jsonschema.Draft202012Validator(schema, registry=registry)
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
                problems.append(f"{name}: {_where(error)}: {error.message}")
            if problems:
                break
        return problems
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {_where(error)}: {error.message} (Kubernetes {version})")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: {error.message}")
    return problems


def kubernetes_problems(paths: Iterable[Path] | None = None) -> list[str]:
    """Every problem in deploy/kubernetes/*.yaml (or ``paths``), each prefixed with its file."""
    problems: list[str] = []
    for path in sorted(paths if paths is not None else KUBERNETES_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                problems += [f"{path.name}: {problem}" for problem in document_problems(doc)]
    return problems


def composecheck() -> str | None:
    """The compose-go checker, built from deploy/tools/composecheck when Go is here (None when it cannot be)."""
    sources = [COMPOSECHECK_SOURCE / name for name in ("main.go", "go.mod", "go.sum")]
    if COMPOSECHECK.exists() and all(s.stat().st_mtime <= COMPOSECHECK.stat().st_mtime for s in sources):
        return str(COMPOSECHECK)
    go = shutil.which("go")
    if go is None:
        return None
    COMPOSECHECK.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([go, "build", "-o", str(COMPOSECHECK), "."], cwd=COMPOSECHECK_SOURCE, check=True)
    return str(COMPOSECHECK)


def compose_problems(files: Sequence[Path]) -> list[str]:
    """What compose-go finds wrong with ``files`` read together (as ``docker compose -f A -f B config``)."""
    checker = composecheck()
    if checker is None:
        raise FileNotFoundError("Go is not installed: the compose files cannot be checked (make composecheck)")
    result = subprocess.run([checker, *map(str, files)], capture_output=True, text=True, check=False)
    return [] if result.returncode == 0 else [line for line in result.stderr.splitlines() if line.strip()]


def main() -> None:
    problems = kubernetes_problems()
    for group in COMPOSE_FILES:
        problems += compose_problems([PROJECT_ROOT / "deploy" / name for name in group])
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s): Kubernetes {', '.join(KUBERNETES_VERSIONS)}, Strimzi {strimzi_version()}, "
          "compose-go")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
