"""deploy/kubernetes/ from the contract: Strimzi's Kafka, topics and users with their ACLs (``kafka.yaml``), and a
StatefulSet of several instances per service (``services.yaml``, docs/scaling.md).

    python -m services.devtools.kubernetes     # rewrites deploy/kubernetes/*.yaml

tests/unit/test_deploy_files.py holds the files to the contract (and to this output).
"""

from __future__ import annotations

from typing import Any

import yaml

from services.contracts.topics import TOPIC_CONFIG, TOPICS, WRITERS, standard_grants
from services.devtools.manifests import KUBERNETES_VERSIONS
from services.devtools.strimzi_crds import strimzi_version
from services.runtime.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "deploy" / "kubernetes"

KAFKA_HEAD = """\
# Kafka for baotuan on Kubernetes with the Strimzi operator ({strimzi}, API kafka.strimzi.io/v1; KRaft and node
# pools are its only mode, so the Kafka needs no annotation for them): a 3-node KRaft cluster, the topics of
# services/contracts/topics.py (24 partitions: up to 24 instances of a service, docs/scaling.md), one SCRAM
# user per service and the auditor with the ACLs of docs/security.md (the writers' transactional ids and
# consumer group included). Made by python -m services.devtools.kubernetes; tests/unit/test_deploy_files.py
# holds it to the contract, tests/unit/test_deploy_schemas.py to Strimzi's CRDs (tests/schemas/strimzi/).
"""
SERVICES_HEAD = """\
# The services on Kubernetes (docs/scaling.md): one StatefulSet per service with 2 replicas, each pod one
# instance (its instance id is the pod's name) in the consumer group baotuan-<service>-writers, reached by the
# others at its stable name in the headless Service <service>-instances; clients use the Service <service> (any
# instance takes any request). The service's signing key (and the ledger's accounts key) come from the Secret
# <service>-keys, the same for every replica; the Kafka password from the Secret the Strimzi user operator
# makes for the KafkaUser of kafka.yaml. Build the image from deploy/Dockerfile.
# Made by python -m services.devtools.kubernetes; tests/unit/test_deploy_schemas.py holds it to the Kubernetes API
# schemas of {kubernetes}.
"""
DESCRIBE_ALL = {"resource": {"type": "topic", "name": "baotuan.", "patternType": "prefix"}, "operations": ["Describe"]}


def kafka_yaml() -> str:
    docs: list[dict[str, Any]] = []
    docs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
                 "metadata": {"name": "dual-role", "labels": {"strimzi.io/cluster": "baotuan"}},
                 "spec": {"replicas": 3, "roles": ["controller", "broker"],
                          "storage": {"type": "persistent-claim", "size": "100Gi", "deleteClaim": False}}})
    docs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "Kafka",
                 "metadata": {"name": "baotuan"},
                 "spec": {"kafka": {"version": "4.1.1", "metadataVersion": "4.1-IV1",
                                    "listeners": [{"name": "tls", "port": 9093, "type": "internal", "tls": True,
                                                   "authentication": {"type": "scram-sha-512"}}],
                                    "authorization": {"type": "simple"},
                                    "config": {"offsets.topic.replication.factor": 3,
                                               "transaction.state.log.replication.factor": 3,
                                               "transaction.state.log.min.isr": 2,
                                               "default.replication.factor": 3, "min.insync.replicas": 2,
                                               "auto.create.topics.enable": False}},
                          "entityOperator": {"topicOperator": {}, "userOperator": {}}}})
    for name in TOPICS:
        docs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
                     "metadata": {"name": name, "labels": {"strimzi.io/cluster": "baotuan"}},
                     "spec": {"topicName": name, "partitions": 24, "replicas": 3,
                              "config": {**TOPIC_CONFIG, "min.insync.replicas": 2}}})
    for user, grant in standard_grants().items():
        acls = [DESCRIBE_ALL]
        acls += [{"resource": {"type": "topic", "name": t, "patternType": "literal"}, "operations": ["Read"]}
                 for t in grant.read]
        acls += [{"resource": {"type": "topic", "name": t, "patternType": "literal"}, "operations": ["Write"]}
                 for t in grant.write]
        if grant.write:
            acls.append({"resource": {"type": "transactionalId", "name": f"baotuan-{user}-", "patternType": "prefix"},
                         "operations": ["Write", "Describe"]})
            acls.append({"resource": {"type": "group", "name": f"baotuan-{user}-", "patternType": "prefix"},
                         "operations": ["Read", "Describe"]})
        docs.append({"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser",
                     "metadata": {"name": user, "labels": {"strimzi.io/cluster": "baotuan"}},
                     "spec": {"authentication": {"type": "scram-sha-512"},
                              "authorization": {"type": "simple", "acls": acls}}})
    head = KAFKA_HEAD.format(strimzi=f"Strimzi {strimzi_version()}")
    return head + yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)


def services_yaml() -> str:
    docs: list[dict[str, Any]] = []
    for svc in WRITERS:
        port = 8001 + WRITERS.index(svc)  # as `baotuan serve` and `baotuan run`: ledger 8001, rentals 8002 …
        env: list[dict[str, Any]] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": "baotuan-kafka-bootstrap:9093"},
               {"name": "BAOTUAN_INSTANCE_ID", "value": "$(POD_NAME)"},
               {"name": "BAOTUAN_ADVERTISED_URL", "value": f"http://$(POD_NAME).{svc}-instances:{port}"},
               {"name": "BAOTUAN_KAFKA_SASL_USERNAME", "value": svc},
               {"name": "BAOTUAN_KAFKA_SASL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": svc, "key": "password"}}},
               {"name": "BAOTUAN_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
               {"name": "BAOTUAN_KAFKA_SECURITY_PROTOCOL", "value": "SASL_SSL"},
               {"name": "SSL_CERT_FILE", "value": "/etc/kafka-ca/ca.crt"},
               {"name": "BAOTUAN_TOKENS_FILE", "value": "/config/tokens.json"},
               {"name": "BAOTUAN_SIGNING_KEY_FILE", "value": f"/keys/{svc}.pem"}]
        if svc == "ledger":
            env.append({"name": "BAOTUAN_ACCOUNTS_KEY_FILE", "value": "/keys/accounts.key"})
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"{svc}-instances"},
                     "spec": {"clusterIP": "None", "selector": {"app": svc},
                              "ports": [{"name": "http", "port": port}]}})
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
                     "spec": {"selector": {"app": svc},
                              "ports": [{"name": "http", "port": port, "targetPort": port}]}})
        mounts = [{"name": "data", "mountPath": "/data"},
                  {"name": "keys", "mountPath": "/keys", "readOnly": True},
                  {"name": "config", "mountPath": "/config", "readOnly": True},
                  {"name": "kafka-ca", "mountPath": "/etc/kafka-ca", "readOnly": True}]
        volumes = [{"name": "keys", "secret": {"secretName": f"{svc}-keys", "defaultMode": 0o400}},
                   {"name": "config", "secret": {"secretName": "baotuan-tokens"}},
                   {"name": "kafka-ca", "secret": {"secretName": "baotuan-cluster-ca-cert"}}]
        container = {"name": svc, "image": "baotuan:latest",
                     "args": ["serve", svc, "--host", "0.0.0.0", "--port", str(port)],
                     "ports": [{"name": "http", "containerPort": port}], "env": env,
                     "readinessProbe": {"httpGet": {"path": "/health", "port": port}, "periodSeconds": 5},
                     "volumeMounts": mounts}
        claim = {"metadata": {"name": "data"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}}
        docs.append({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": svc},
                     "spec": {"serviceName": f"{svc}-instances", "replicas": 2, "podManagementPolicy": "Parallel",
                              "selector": {"matchLabels": {"app": svc}},
                              "template": {"metadata": {"labels": {"app": svc}},
                                           "spec": {"containers": [container], "volumes": volumes}},
                              "volumeClaimTemplates": [claim]}})
    head = SERVICES_HEAD.format(kubernetes=" and ".join(KUBERNETES_VERSIONS))
    return head + yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "kafka.yaml").write_text(kafka_yaml())
    (OUT / "services.yaml").write_text(services_yaml())
    print(f"wrote {OUT / 'kafka.yaml'} and {OUT / 'services.yaml'}")


if __name__ == "__main__":
    main()
