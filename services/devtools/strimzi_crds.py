"""The Strimzi CustomResourceDefinitions the tests validate deploy/kubernetes/kafka.yaml against.

Strimzi publishes its CRDs only inside its release archives and its Git repository (neither reachable here); what
it publishes on Maven Central is its model (``io.strimzi:api``) and the generator (``io.strimzi:crd-generator``)
that its build runs over that model to write ``packaging/install/cluster-operator/04x-Crd-*.yaml``. This module
fetches both at the version pinned in tests/schemas/strimzi/pom.xml and runs the generator with the arguments
of Strimzi's own api/pom.xml, writing the CRDs of the kinds baotuan uses into tests/schemas/strimzi/ with a
header naming their origin and licence. The files are committed, so the tests need neither Maven nor Java::

    python -m services.devtools.strimzi_crds      # after changing <strimzi.version> in the pom

The generator's classes need Java 21 or later (``JAVA_HOME``, or a JDK under /usr/lib/jvm).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from services.runtime.config import PROJECT_ROOT

HERE = PROJECT_ROOT / "tests" / "schemas" / "strimzi"
POM = HERE / "pom.xml"
#: The kinds baotuan's Kubernetes files use: model class -> file (Strimzi's own file names).
KINDS = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "040-Crd-kafka.yaml",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "043-Crd-kafkatopic.yaml",
    "io.strimzi.api.kafka.model.user.KafkaUser": "044-Crd-kafkauser.yaml",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "045-Crd-kafkanodepool.yaml",
}
#: As Strimzi's api/pom.xml (execution generate-crd-co-install-v1) runs io.strimzi.crdgenerator.CrdGenerator.
GENERATOR_ARGS = ["--label", "app:strimzi", "--label", "strimzi.io/crd-install:true", "--target-kube", "1.16+",
                  "--crd-api-version", "v1", "--api-versions", "v1", "--storage-version", "v1", "--yaml"]
HEADER = """\
# Strimzi {version} CustomResourceDefinition ({kind}), as the release installs it
# (packaging/install/cluster-operator/{file}): written by Strimzi's own generator, io.strimzi:crd-generator:{version},
# from Strimzi's model, io.strimzi:api:{version} (both from Maven Central, pinned in pom.xml beside this file), with
# the arguments of Strimzi's api/pom.xml. Copyright the Strimzi authors; Apache License 2.0
# (https://www.apache.org/licenses/LICENSE-2.0). Do not edit: python -m services.devtools.strimzi_crds rewrites it.
"""


def strimzi_version() -> str:
    found = re.search(r"<strimzi\.version>([^<]+)</strimzi\.version>", POM.read_text())
    assert found, f"no <strimzi.version> in {POM}"
    return found.group(1)


def java_21() -> str:
    """A java binary of version 21 or later (the generator's class files need it)."""
    candidates = [Path(os.environ["JAVA_HOME"]) / "bin" / "java"] if os.environ.get("JAVA_HOME") else []
    candidates += sorted(Path("/usr/lib/jvm").glob("*/bin/java"), reverse=True)
    if shutil.which("java"):
        candidates.append(Path(str(shutil.which("java"))))
    for java in candidates:
        if not java.exists():
            continue
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, check=False).stderr
        major = re.search(r'version "(\d+)', out)
        if major and int(major.group(1)) >= 21:
            return str(java)
    raise SystemExit("the Strimzi CRD generator needs Java 21 or later: set JAVA_HOME")


def main() -> None:
    version = strimzi_version()
    java = java_21()
    with tempfile.TemporaryDirectory() as scratch:
        lib = Path(scratch) / "lib"
        subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                        f"-DoutputDirectory={lib}"], check=True)
        out = Path(scratch) / "out"
        out.mkdir()
        subprocess.run([java, "-cp", f"{lib}/*", "io.strimzi.crdgenerator.CrdGenerator", *GENERATOR_ARGS,
                        *[f"{cls}={out / name}" for cls, name in KINDS.items()]], check=True)
        for cls, name in KINDS.items():
            text = (out / name).read_text()
            kind = cls.rsplit(".", 1)[1]
            (HERE / name).write_text(HEADER.format(version=version, kind=kind, file=name) + text)
            print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
