"""The ``baotuan`` command: the single entry point for serving, loading, auditing and exporting."""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

import click

from services.contracts.topics import WRITERS
from services.runtime.config import PROJECT_ROOT

SERVICES = WRITERS
DEFAULT_PORTS = {"ledger": 8001, "rentals": 8002, "dividends": 8003, "members": 8004}

#: Commands that live beside what they drive (the launcher, the loader, the web page, the audit): name ->
#: ``module:attribute``, imported only when the command runs (or help lists it), so that ``baotuan serve``
#: loads none of them, and none of the dev tools (``services.devtools``).
LAZY_COMMANDS = {
    "run": "services.devtools.launcher.cli:run_command",
    "load": "services.devtools.scenario.cli:load_command",
    "status": "services.devtools.scenario.cli:status_command",
    "serve-web": "services.web.cli:web_command",
    "audit": "services.audit.cli:audit_command",
    "export": "services.audit.cli:export_command",
    "catalogue": "services.audit.cli:catalogue_command",
    "accounts": "services.accounts.cli:accounts_group",
}


class LazyGroup(click.Group):
    """A group whose :data:`LAZY_COMMANDS` are imported when asked for (click's "lazily loading subcommands")."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, _, attribute = LAZY_COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise RuntimeError(f"{LAZY_COMMANDS[cmd_name]} is not the command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup)
def main() -> None:
    """baotuan (抱团): the event-sourced ledger of village collectives' pooled projects."""


# -- broker ----------------------------------------------------------------------------------------------


@main.group()
def kafka() -> None:
    """The local Apache Kafka broker (KRaft, from Maven Central jars; data in var/kafka)."""


@kafka.command("fetch")
def kafka_fetch() -> None:
    """Fetch the broker's jars into .cache/ (only when missing)."""
    from services.devtools.broker import ensure_jars

    click.echo(f"Kafka jars in {ensure_jars()}")


@kafka.command("up")
def kafka_up() -> None:
    """Start the durable local broker unless it is already running; create the topics."""
    from services.devtools.broker import durable_broker
    from services.runtime.kafka_io import ensure_topics

    broker = durable_broker()
    if broker.is_ready():
        click.echo(f"Kafka already running on {broker.bootstrap}")
    else:
        seconds = broker.start()
        click.echo(f"Kafka {broker.bootstrap} started in {seconds:.1f}s (data: {broker.data_dir})")
    created = ensure_topics(broker.bootstrap)
    if created:
        click.echo("created topics: " + ", ".join(created))


@kafka.command("down")
def kafka_down() -> None:
    """Stop the durable local broker (its data stays in var/kafka)."""
    from services.devtools.broker import durable_broker

    broker = durable_broker()
    if broker.pid() is None:
        click.echo("Kafka is not running")
        return
    broker.stop()
    click.echo("Kafka stopped")


@main.command("topics")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:19092", show_default=True)
def topics(bootstrap: str) -> None:
    """Create baotuan's topics if missing (idempotent); as the BAOTUAN_KAFKA_SASL_* user on a secured broker."""
    from services.runtime.config import Settings
    from services.runtime.kafka_io import ensure_topics

    created = ensure_topics(bootstrap, **Settings.from_env().kafka_client_config())
    click.echo("created: " + (", ".join(created) if created else "nothing (all topics exist)"))


# -- services ----------------------------------------------------------------------------------------------


@main.command("serve")
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="default: ledger 8001, rentals 8002, dividends 8003, members 8004")
@click.option("--threads", type=int, default=32, show_default=True)
@click.option("--instance-id", envvar="BAOTUAN_INSTANCE_ID", default=None,
              help="run as one of several instances of the service (docs/scaling.md): it writes the partitions "
                   "its writers' Kafka consumer group assigns it, and forwards the other writes to their owner")
@click.option("--advertised-url", envvar="BAOTUAN_ADVERTISED_URL", default=None,
              help="with --instance-id: the URL the other instances forward to (default http://HOST:PORT)")
def serve(service: str, host: str, port: int | None, threads: int, instance_id: str | None,
          advertised_url: str | None) -> None:
    """Run a service under gunicorn (one worker process: it writes its streams, or with --instance-id the
    streams of the partitions its instance owns)."""
    from services.runtime.server import serve_wsgi

    port = port or DEFAULT_PORTS[service]
    if instance_id is not None:
        _instance_environment(service, instance_id, advertised_url or f"http://{host}:{port}")

    def load() -> object:
        return importlib.import_module(f"services.{service}.app").create_app()

    name = f"baotuan-{service}" + (f"-{instance_id}" if instance_id else "")
    serve_wsgi(load, bind=f"{host}:{port}", threads=threads, name=name)


#: What an instance id may be: it names a Kafka transactional id, a group member and a directory.
INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _instance_environment(service: str, instance_id: str, url: str) -> None:
    """Settings of one instance among several: its own projection directory
    (``<data dir>/instances/<service>-<id>``), the service's one signing key (every instance signs with it:
    the auditor pins one key per service) and the ledger's one accounts key, both under ``<data dir>/keys``
    unless configured; its id and the URL it is reached at."""
    from services.runtime.config import Settings
    from services.runtime.signing import SigningKey, default_key_path

    if not INSTANCE_ID.fullmatch(instance_id):
        raise click.BadParameter("letters, digits, '.', '_' or '-', at most 63, starting with a letter or digit",
                                 param_hint="--instance-id")
    base = Settings.from_env().data_dir
    if not os.environ.get("BAOTUAN_SIGNING_KEY_FILE"):
        key = default_key_path(base, service)
        SigningKey.load(key, create=True)
        os.environ["BAOTUAN_SIGNING_KEY_FILE"] = str(key)
    if service == "ledger" and not os.environ.get("BAOTUAN_ACCOUNTS_KEY_FILE"):
        # The key that seals people's password hashes: one for every instance (each opens what another sealed).
        from services.accounts.passwords import key_file, load_or_create_key

        load_or_create_key(key_file(base))
        os.environ["BAOTUAN_ACCOUNTS_KEY_FILE"] = str(key_file(base))
    os.environ["BAOTUAN_DATA_DIR"] = str(base / "instances" / f"{service}-{instance_id}")
    os.environ["BAOTUAN_INSTANCE_ID"] = instance_id
    os.environ["BAOTUAN_ADVERTISED_URL"] = url


@main.group()
def tokens() -> None:
    """Bearer tokens for machines: scripts, subscribers, the importer (stored hashed in BAOTUAN_TOKENS_FILE).
    People sign in with accounts (`baotuan accounts`)."""


@tokens.command("add")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["accountant", "operator", "board", "auditor", "admin"]))
@click.option("--scope", multiple=True, help="collective or project id (repeat)")
@click.option("--file", "path", type=click.Path(path_type=Path), envvar="BAOTUAN_TOKENS_FILE",
              default=PROJECT_ROOT / "var" / "tokens.json", show_default=True)
def tokens_add(name: str, role: str, scope: tuple[str, ...], path: Path) -> None:
    """Add a principal and print its token once (only its SHA-256 is stored)."""
    from services.runtime.auth import add_token

    click.echo(add_token(path, name=name, role=role, scope=scope))


@main.group()
def keys() -> None:
    """The services' Ed25519 signing keys (checkpoints and receipts; docs/audit.md)."""


_DATA_DIR_OPTION = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="BAOTUAN_DATA_DIR",
    default=PROJECT_ROOT / "var", show_default=True, help="where the services keep their keys (keys/<service>.pem)")


@keys.command("export")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder to write the public keys to (created if missing)")
@_DATA_DIR_OPTION
@click.option("--key-file", "key_files", multiple=True, metavar="SERVICE=PATH",
              help="a service's key kept elsewhere (BAOTUAN_SIGNING_KEY_FILE in production); repeat")
def keys_export(output: Path, data_dir: Path, key_files: tuple[str, ...]) -> None:
    """Write each service's public keys as PEM (current, retired, and one waiting to be announced), with
    keys.json listing their key ids: what a town's auditor pins for `baotuan audit --trusted-keys`."""
    import json

    from services.contracts.anchoring import key_id, public_key_pem
    from services.runtime.signing import default_key_path, known_public_keys

    elsewhere = dict(item.split("=", 1) for item in key_files if "=" in item)
    unknown = sorted(set(elsewhere) - set(SERVICES))
    if unknown or len(elsewhere) != len(key_files):
        raise click.BadParameter(f"expected SERVICE=PATH with SERVICE one of {', '.join(SERVICES)}",
                                 param_hint="--key-file")
    output.mkdir(parents=True, exist_ok=True)
    listed = []
    for service in SERVICES:
        path = Path(elsewhere[service]) if service in elsewhere else default_key_path(data_dir, service)
        if not path.exists():
            click.echo(f"{service}: no signing key at {path} (has the service ever started?)", err=True)
            continue
        for stem, public in known_public_keys(path):
            status = "next" if stem.endswith(".next") else "retired" if stem != path.stem else "current"
            name = f"{service}.pem" if status == "current" else f"{service}-{key_id(public)}.pem"
            (output / name).write_bytes(public_key_pem(public))
            listed.append({"service": service, "key_id": key_id(public), "file": name, "status": status})
            click.echo(f"{service:<10} {key_id(public)}  {status:<8} {output / name}")
    if not listed:
        raise click.ClickException(f"no signing keys found under {data_dir / 'keys'}")
    (output / "keys.json").write_text(json.dumps({"keys": listed}, indent=2) + "\n", encoding="utf-8")


@keys.command("rotate")
@click.argument("service", type=click.Choice(SERVICES))
@_DATA_DIR_OPTION
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the service's current key, when kept elsewhere (BAOTUAN_SIGNING_KEY_FILE)")
def keys_rotate(service: str, data_dir: Path, key_file: Path | None) -> None:
    """Make a new key for SERVICE; the running service announces it in its next checkpoint, signed with the
    current key, and signs with the new one from then on (export the keys again afterwards)."""
    from services.contracts.anchoring import key_id
    from services.runtime.signing import KeyFileError, default_key_path, rotate

    try:
        public = rotate(key_file or default_key_path(data_dir, service))
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{service}: new key {key_id(public)} waits to be announced in the next checkpoint")


def run() -> None:  # pragma: no cover - console entry for `python -m services.cli`
    main(prog_name="baotuan")


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(prog_name="baotuan"))
