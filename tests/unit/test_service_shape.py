"""Every service has the same shape (services/runtime/handling.py): the same files for the same roles,
HTTP code without SQL or money rules, handlers without Flask, SQL or Kafka, and every write to a
projection in its fold."""

from __future__ import annotations

import ast
import re

import pytest

from services.runtime.config import PROJECT_ROOT

SERVICES = ("ledger", "rentals", "dividends", "members")
ROLES = ("app.py", "api.py", "schemas.py", "commands.py", "handlers.py", "reads.py", "projection.py", "domain.py")
#: SQL as the services write it (upper-case keywords).
SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)
#: Money rules live in the domain modules and contracts.money; an HTTP module only formats and parses amounts.
MONEY_RULES = {"largest_remainder", "allocate", "apply_payment", "split_fen", "compute_distribution"}


def source(service: str, name: str) -> str:
    return (PROJECT_ROOT / "services" / service / name).read_text(encoding="utf-8")


def imported(text: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def strings(text: str) -> list[str]:
    return [node.value for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Constant)
            and isinstance(node.value, str)]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_files_for_the_same_roles(service: str) -> None:
    present = {path.name for path in (PROJECT_ROOT / "services" / service).glob("*.py")}
    assert set(ROLES) <= present, sorted(set(ROLES) - present)


@pytest.mark.parametrize("service", SERVICES)
def test_the_http_layer_holds_no_sql_and_no_money_rule(service: str) -> None:
    text = source(service, "api.py")
    assert not [s for s in strings(text) if SQL.search(s)]
    modules = imported(text)
    assert ".execute(" not in text and ".query(" not in text  # rows come from reads.py (sqlite3.Row only as a type)
    assert not {name.rsplit(".", 1)[-1] for name in modules} & MONEY_RULES


@pytest.mark.parametrize("service", SERVICES)
def test_handlers_are_pure(service: str) -> None:
    text = source(service, "handlers.py")
    modules = imported(text)
    assert not [m for m in modules if m.split(".")[0] in {"flask", "flask_smorest", "sqlite3", "kafka"}]
    assert not [s for s in strings(text) if SQL.search(s)]
    assert not [m for m in modules
                if m.endswith((".api", ".projection", "runtime.http", "runtime.service.EventService"))]


@pytest.mark.parametrize("service", SERVICES)
def test_reads_only_read_and_the_fold_holds_every_write(service: str) -> None:
    reads = [s for s in strings(source(service, "reads.py")) if SQL.search(s)]
    assert reads, "the queries live in reads.py"
    assert not [s for s in reads if re.match(r"\s*(INSERT|UPDATE|DELETE)", s)]
    for name in ("handlers.py", "api.py", "domain.py", "commands.py", "schemas.py"):
        writes = re.compile(r"\b(INSERT|UPDATE\s+\w+\s+SET|DELETE\s+FROM)")
        assert not [s for s in strings(source(service, name)) if writes.search(s)], name


def test_the_shape_test_sees_sql_where_there_is_some() -> None:
    assert SQL.search("SELECT a FROM b") and SQL.search("INSERT OR IGNORE INTO t VALUES (?)")
    assert not SQL.search("select the investor from the list")  # prose is not SQL
