"""Compare the books rebuilt from the events with what the ledger service reports.

For every collective, ``GET {ledger}/v1/collectives/{id}/trial-balance?as_of=DATE`` (any
token that may read it: an auditor's) and compare account by account, to the fen, with the
trial balance recomputed from the log. A ledger that cannot be reached is not a finding —
the audit says it could not compare — but a difference is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import requests

from services.audit.checks.books import Books
from services.audit.checks.findings import Findings
from services.contracts.money import MoneyError, format_yuan, parse_yuan


@dataclass
class Comparison:
    """How the comparison went: collectives compared, and notes on what could not be compared."""

    compared: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fen(value: Any) -> int | None:
    try:
        return parse_yuan(value, allow_negative=True)
    except MoneyError:
        return None


def compare_with_ledger(books: Books, findings: Findings, *, ledger_url: str, token: str,
                        timeout_s: float = 15.0, session: requests.Session | None = None) -> Comparison:
    """Compare each collective's recomputed trial balance with the ledger service's."""
    if session is not None:
        return _compare_all(books, findings, ledger_url, token, timeout_s, session)
    with requests.Session() as http:  # closed here: its pooled connection must not outlive the audit
        return _compare_all(books, findings, ledger_url, token, timeout_s, http)


def _compare_all(books: Books, findings: Findings, ledger_url: str, token: str, timeout_s: float,
                 http: requests.Session) -> Comparison:
    outcome = Comparison()
    as_of: dt.date = books.balance_date()
    http.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
    base = ledger_url.rstrip("/")
    for collective_id in books.collective_ids():
        url = f"{base}/v1/collectives/{collective_id}/trial-balance"
        try:
            response = http.get(url, params={"as_of": as_of.isoformat()}, timeout=timeout_s)
        except requests.RequestException as exc:
            outcome.notes.append(f"balances not compared: the ledger at {base} is unreachable ({type(exc).__name__})")
            return outcome
        if response.status_code in (401, 403):
            outcome.notes.append(f"balances not compared: the ledger refused the token ({response.status_code})")
            return outcome
        if response.status_code == 404:
            findings.add("balances", None, collective_id,
                         f"the ledger service does not know collective {collective_id}, whose books are in the log")
            continue
        if response.status_code != 200:
            outcome.notes.append(f"balances of {collective_id} not compared: HTTP {response.status_code}")
            continue
        _compare(books, findings, collective_id, response.json(), as_of)
        outcome.compared.append(collective_id)
    return outcome


def _compare(books: Books, findings: Findings, collective_id: str, body: dict[str, Any], as_of: dt.date) -> None:
    mine = {row.code: (row.debit, row.credit, row.balance) for row in books.trial_balance(collective_id).rows}
    theirs: dict[str, tuple[int | None, int | None, int | None]] = {}
    for row in body.get("accounts") or []:
        theirs[str(row.get("code"))] = (_fen(row.get("debit")), _fen(row.get("credit")), _fen(row.get("balance")))
    for code in sorted(set(mine) | set(theirs)):
        recomputed = mine.get(code)
        reported = theirs.get(code)
        if recomputed == reported:
            continue
        if reported is None:
            assert recomputed is not None
            message = (f"account {code}: the events give debit {format_yuan(recomputed[0])}, credit "
                       f"{format_yuan(recomputed[1])}; the ledger service shows no such account")
        elif recomputed is None:
            message = f"account {code}: the ledger service shows {_show(reported)}; the events have no such account"
        else:
            message = f"account {code}: the events give {_show(recomputed)}; the ledger service shows {_show(reported)}"
        findings.add("balances", None, collective_id, f"trial balance at {as_of}: {message}")


def _show(values: tuple[int | None, int | None, int | None]) -> str:
    debit, credit, balance = (format_yuan(v) if v is not None else "?" for v in values)
    return f"debit {debit}, credit {credit}, balance {balance}"
