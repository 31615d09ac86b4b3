"""A real single-node Apache Kafka broker (KRaft) run from the jars Maven Central serves.

No Docker and no tarball: ``deploy/kafka/pom.xml`` names the broker's artifacts, Maven copies
them into ``.cache/kafka-<version>/lib`` (only when missing), and this module formats a data
directory and starts ``kafka.Kafka`` with a generated ``server.properties``. ``make kafka-up``
uses it for a durable broker (data in ``var/kafka``), the test suite for a throwaway one on
free ports. A development tool (``services.devtools``): production code never imports it.

With ``sasl_users`` the broker runs as production should (DESIGN §8): clients authenticate
with SASL/SCRAM-SHA-256, the StandardAuthorizer denies whatever no ACL allows, and
:func:`grant_acls` creates the grants of the topics table
(:func:`services.contracts.topics.standard_grants`): each service writes its own topics only,
the auditor only reads.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.contracts.topics import TOPIC_PREFIX, TopicGrant, standard_grants
from services.runtime.config import PROJECT_ROOT

KAFKA_VERSION = "4.1.1"
POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
LOG_CONFIG = PROJECT_ROOT / "deploy" / "kafka" / "log4j2.yaml"
CACHE_DIR = PROJECT_ROOT / ".cache" / f"kafka-{KAFKA_VERSION}"
LIB_DIR = CACHE_DIR / "lib"


SCRAM_MECHANISM = "SCRAM-SHA-256"
#: The broker's own principal (inter-broker and controller traffic, topic and ACL administration).
ADMIN_USER = "admin"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, formatted or started."""


def grant_acls(bootstrap: str, grants: Mapping[str, TopicGrant], timeout_s: float = 30.0,
               **admin_config: Any) -> int:
    """Create the ACLs of ``grants`` (principal name -> TopicGrant) as the admin; returns how many.

    Returns once the broker's authorizer enforces them (they are read back), so a test can
    rely on them at once.
    """
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    def allow(user: str, operation: ACLOperation, topic: str,
              pattern: ACLResourcePatternType = ACLResourcePatternType.LITERAL) -> ACL:
        return ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW,
                   ResourcePattern(ResourceType.TOPIC, topic, pattern))

    acls = []
    for user, grant in grants.items():
        acls.append(allow(user, ACLOperation.DESCRIBE, TOPIC_PREFIX, ACLResourcePatternType.PREFIXED))
        acls += [allow(user, ACLOperation.READ, topic) for topic in grant.read]
        acls += [allow(user, ACLOperation.WRITE, topic) for topic in grant.write]
        if grant.write:  # a writer publishes in transactions under ids of its own: baotuan-<user>-…
            acls += [ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW,
                         ResourcePattern(ResourceType.TRANSACTIONAL_ID, f"baotuan-{user}-",
                                         ACLResourcePatternType.PREFIXED))
                     for operation in (ACLOperation.WRITE, ACLOperation.DESCRIBE)]
            # Several instances (docs/scaling.md): they meet in the consumer group baotuan-<user>-writers, and
            # each transaction commits its group offsets there (KIP-447 fencing): READ on the group.
            acls += [ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW,
                         ResourcePattern(ResourceType.GROUP, f"baotuan-{user}-", ACLResourcePatternType.PREFIXED))
                     for operation in (ACLOperation.READ, ACLOperation.DESCRIBE)]
    return create_acls(bootstrap, acls, timeout_s, **admin_config)


def create_acls(bootstrap: str, acls: Sequence[Any], timeout_s: float = 30.0, **admin_config: Any) -> int:
    """Create kafka-python ``ACL`` objects as the admin and return once the broker lists them all."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePatternFilter,
        ResourceType,
    )

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="baotuan-acl-admin", **admin_config)
    try:
        result = admin.create_acls(list(acls))
        if result["failed"]:
            raise BrokerError(f"creating ACLs failed: {result['failed']}")
        everything = ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                               permission_type=ACLPermissionType.ANY,
                               resource_pattern=ResourcePatternFilter(ResourceType.ANY, None,
                                                                      ACLResourcePatternType.ANY))
        deadline = time.monotonic() + timeout_s
        while True:
            found, _error = admin.describe_acls(everything)
            if set(acls) <= set(found):
                return len(acls)
            if time.monotonic() > deadline:
                raise BrokerError(f"ACLs not in force after {timeout_s:.0f}s")
            time.sleep(0.2)
    finally:
        admin.close()


def ensure_jars() -> Path:
    """Fetch the broker's jars with Maven into the git-ignored cache, only when missing."""
    marker = CACHE_DIR / ".complete"
    if marker.exists():
        return LIB_DIR
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not installed; it is needed once to fetch the Kafka jars")
    LIB_DIR.mkdir(parents=True, exist_ok=True)
    cmd = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={LIB_DIR}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(f"fetching Kafka {KAFKA_VERSION} jars failed:\n{result.stdout}\n{result.stderr}")
    if not any(LIB_DIR.glob("kafka_2.13-*.jar")):
        raise BrokerError(f"Maven finished but no kafka_2.13 jar is in {LIB_DIR}")
    marker.write_text(KAFKA_VERSION)
    return LIB_DIR


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise BrokerError("Java is not installed (the broker needs a JRE 17+)")
    return found


@dataclass
class LocalBroker:
    """One KRaft broker+controller on loopback, with its data in ``data_dir``."""

    data_dir: Path
    port: int
    controller_port: int
    partitions: int = 3
    #: SCRAM users (name -> password). Given, the broker requires SASL/SCRAM and enforces ACLs.
    sasl_users: dict[str, str] | None = field(default=None, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def secured(self) -> bool:
        """True when clients must authenticate (SASL/SCRAM) and ACLs are enforced."""
        return self.sasl_users is not None

    @property
    def admin_password(self) -> str:
        """The broker principal's password: made once per data directory, kept there (mode 0600)."""
        secret_file = self.data_dir / "admin.secret"
        if not secret_file.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            secret_file.touch(mode=0o600)
            secret_file.write_text(secrets.token_urlsafe(24))
        return secret_file.read_text().strip()

    def client_config(self, user: str | None = None) -> dict[str, Any]:
        """kafka-python settings for ``user`` (default: the admin); empty on a PLAINTEXT broker."""
        if not self.secured:
            return {}
        assert self.sasl_users is not None
        name = user or ADMIN_USER
        password = self.admin_password if name == ADMIN_USER else self.sasl_users[name]
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SCRAM_MECHANISM,
                "sasl_plain_username": name, "sasl_plain_password": password}

    def _security_properties(self) -> dict[str, str]:
        """Listener, JAAS and authorizer settings of the SASL mode (KRaft)."""
        admin = self.admin_password
        scram_login = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                       f'username="{ADMIN_USER}" password="{admin}";')
        # SCRAM credentials live in the metadata log, which the controller cannot read before it
        # runs: the controller listener authenticates with PLAIN against this static entry instead.
        plain_login = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                       f'username="{ADMIN_USER}" password="{admin}" user_{ADMIN_USER}="{admin}";')
        return {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": scram_login,
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain_login,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def write_properties(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir / "logs"),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A dead instance's open transaction is aborted soon after its timeout (default: checked every 10 s).
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
            # A record is acknowledged only once it is on disk: this single node has no replicas,
            # so an acknowledged write must survive a crash of its machine, not only of the process.
            "log.flush.interval.messages": "1",
            "auto.create.topics.enable": "false",
        }
        if self.secured:
            props.update(self._security_properties())
        self.properties_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def format(self) -> None:
        """Format the data directory once (a no-op when it is already formatted)."""
        cluster_file = self.data_dir / "cluster.id"
        if (self.data_dir / "logs" / "meta.properties").exists():
            return  # formatted before: skip a 2-7 s Java start
        if not cluster_file.exists():
            cluster_file.write_text(_random_cluster_id())
        scram: list[str] = []
        if self.sasl_users is not None:
            # SCRAM credentials go into the bootstrap metadata, so they exist before any client.
            users = {**self.sasl_users, ADMIN_USER: self.admin_password}
            for name, password in users.items():
                scram += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        self._run_tool("kafka.tools.StorageTool", "format", "-t", cluster_file.read_text().strip(),
                       "-c", str(self.properties_file), "--ignore-formatted", *scram)

    def _run_tool(self, main_class: str, *args: str) -> str:
        cmd = [_java(), "-Xmx256m", "-cp", f"{ensure_jars()}/*",
               f"-Dlog4j2.configurationFile={LOG_CONFIG}", main_class, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"{main_class} failed: {result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self, timeout: float = 90.0) -> float:
        """Start the broker in the background and wait until it answers; returns seconds taken."""
        began = time.monotonic()
        ensure_jars()
        self.write_properties()
        self.format()
        log = self.log_file.open("ab")
        cmd = [_java(), "-Xmx512m", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={LOG_CONFIG}", "-cp", f"{LIB_DIR}/*",
               "kafka.Kafka", str(self.properties_file)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._process = proc
        self.pid_file.write_text(str(proc.pid))
        deadline = began + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"broker exited with {proc.returncode}; see {self.log_file}:\n"
                                  + self.log_tail())
            if self.is_ready():
                return time.monotonic() - began
            time.sleep(0.25)
        self.stop()
        raise BrokerError(f"broker not ready after {timeout:.0f}s; see {self.log_file}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def is_ready(self) -> bool:
        """True once the broker serves metadata (a real Kafka API call, not just an open port)."""
        return broker_answers(self.bootstrap, **self.client_config())

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def grant_acls(self, grants: Mapping[str, TopicGrant] | None = None) -> int:
        """Create the ACLs of ``grants`` (default: :func:`standard_grants`) on this secured broker."""
        if not self.secured:
            raise BrokerError("ACLs need a broker started with sasl_users")
        return grant_acls(self.bootstrap, standard_grants() if grants is None else grants, **self.client_config())

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the broker: SIGTERM (a clean shutdown) or, with ``kill``, SIGKILL (a crash)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # Reap it if it is our child, so it does not linger as a zombie.
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            except OSError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(timeout=timeout)
            self._process = None
        self.pid_file.unlink(missing_ok=True)


def broker_answers(bootstrap: str, timeout_ms: int = 2000, **client_config: Any) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # Probe the port with a plain socket first: kafka-python leaves refused sockets unclosed.
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_ms / 1000):
            pass
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms, client_id="baotuan-probe", **client_config)
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        admin.close()


def _random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as StorageTool makes)."""
    import base64

    # Top bit of the first byte cleared: an id starting with "-" would read as an option to StorageTool.
    return base64.urlsafe_b64encode(bytes([uuid.uuid4().bytes[0] & 0x7F]) + uuid.uuid4().bytes[1:]).decode().rstrip("=")


def durable_broker(root: Path | None = None) -> LocalBroker:
    """The developer's durable broker (``make kafka-up``): fixed ports, data under ``var/kafka``."""
    data = (root or PROJECT_ROOT / "var") / "kafka"
    port = int(os.environ.get("BAOTUAN_KAFKA_PORT", "19092"))
    return LocalBroker(data_dir=data, port=port, controller_port=port + 1)
