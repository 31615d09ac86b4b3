"""The public notice (公示) of an approved member plan (DESIGN §11): a printable page, a CSV, a workbook.

``GET /notice/<collective_id>/<plan_id>`` (HTML, A4 print CSS), ``….csv`` and ``….xlsx``
render the members service's ``GET /v1/collectives/{cid}/plans/{pid}/notice`` document,
asked as the signed-in person (the session cookie, or the caller's own ``Authorization``):
the members service decides who may read it, and it alone masks the heads' names (张*明, 王*),
so a full name never reaches this app. The app adds only the totals, added up exactly
(integer fen, fractions for shares) from the households it lists.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import requests
from flask import Flask, Response, render_template, send_file

from services.contracts.money import format_yuan, parse_yuan
from services.web.proxy import Upstreams
from services.web.signin import Refusal, gate

_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BODIES = {"members": "成员大会", "representatives": "成员代表大会"}
DEFAULT_KIND_NAMES = {"population": "人口股", "farm-age": "农龄股", "farm_age": "农龄股"}


def exact(text: str) -> Fraction:
    """A decimal string of the wire as an exact fraction (never a float)."""
    return Fraction(text)


def decimal_text(value: Fraction) -> str:
    """An exact fraction with a finite decimal expansion as a plain decimal string: 16973/10 -> "1697.3"."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    whole, rest = divmod(value.numerator, value.denominator)
    digits = ""
    while rest and len(digits) < 8:
        rest *= 10
        digit, rest = divmod(rest, value.denominator)
        digits += str(digit)
    return f"{sign}{whole}" + (f".{digits}" if digits else "")


def grouped(amount: str) -> str:
    """``"3550000.00"`` -> ``"3,550,000.00"``."""
    sign = "-" if amount.startswith("-") else ""
    whole, _, frac = amount.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}.{frac}"


@dataclass(frozen=True)
class Row:
    household_id: str
    head: str
    holdings: tuple[str, ...]
    weight: str
    amount: str


@dataclass(frozen=True)
class NoticeView:
    """What the notice shows, in the order it shows it."""

    title: str
    collective_name: str
    year: int
    plan_id: str
    status: str
    figures: tuple[tuple[str, str], ...]  # (label, amount)
    vote: tuple[tuple[str, str], ...]  # (label, value)
    kinds: tuple[tuple[str, str, str], ...]  # (kind, name, weight)
    rows: tuple[Row, ...]
    totals: Row
    record_date: str

    @property
    def header(self) -> tuple[str, ...]:
        return ("户号", "户主", *(name for _, name, _ in self.kinds), "折算股数", "分配金额（元）")


def _figures(notice: Mapping[str, Any]) -> Mapping[str, Any]:
    figures = notice.get("figures")
    return figures if isinstance(figures, Mapping) else notice


def view_of(notice: Mapping[str, Any]) -> NoticeView:
    """The notice document of the members service, laid out (totals added up exactly)."""
    figures = _figures(notice)
    name = str(notice.get("collective_name") or notice.get("name") or notice.get("collective_id", ""))
    year = int(notice["year"])
    households: Sequence[Mapping[str, Any]] = notice.get("households", [])
    listed = notice.get("share_kinds") or []
    if listed:
        kinds = tuple((str(k["kind"]), str(k.get("name") or k["kind"]), str(k.get("weight", ""))) for k in listed)
    else:
        found = sorted({kind for h in households for kind in h.get("holdings", {})},
                       key=lambda k: (k != "population", k))
        kinds = tuple((k, DEFAULT_KIND_NAMES.get(k, k), "") for k in found)
    rows = []
    kind_totals = [Fraction(0)] * len(kinds)
    weight_total = Fraction(0)
    amount_total = 0
    for h in households:
        holdings = h.get("holdings", {})
        shares = [exact(str(holdings.get(kind, "0"))) for kind, _, _ in kinds]
        kind_totals = [t + s for t, s in zip(kind_totals, shares, strict=True)]
        weight_total += exact(str(h["weight"]))
        amount_total += parse_yuan(str(h["amount"]))
        rows.append(Row(str(h["household_id"]), str(h.get("head_name_masked", "")),
                        tuple(decimal_text(s) for s in shares), decimal_text(exact(str(h["weight"]))),
                        grouped(str(h["amount"]))))
    totals = Row("合计", f"{len(rows)} 户", tuple(decimal_text(t) for t in kind_totals), decimal_text(weight_total),
                 grouped(format_yuan(amount_total)))
    rate = figures.get("reserve_rate")
    reserve_label = "提取公积公益金" + (f"（{decimal_text(exact(str(rate)) * 100)}%）" if rate is not None else "")
    shown = [("可分配收益", "distributable"), ("其中：本年收益", "net_income"), ("　　　上年结转", "brought_forward"),
             (reserve_label, "reserve"), ("公益福利", "welfare"), ("成员分配总额", "members_total"),
             ("未分配（结转下年）", "undistributed")]
    figure_rows = tuple((label, grouped(str(figures[key]))) for label, key in shown if figures.get(key) is not None)
    vote = notice.get("vote") or {}
    vote_rows: tuple[tuple[str, str], ...] = ()
    if vote:
        vote_rows = (("会议", BODIES.get(str(vote.get("body")), str(vote.get("body", "")))),
                     ("会议日期", str(vote.get("meeting_on", ""))), ("应到", str(vote.get("entitled", ""))),
                     ("实到", str(vote.get("present", ""))), ("赞成", str(vote.get("for", ""))),
                     ("反对", str(vote.get("against", ""))), ("弃权", str(vote.get("abstain", ""))))
    return NoticeView(title=f"{name}{year}年度收益分配方案公示", collective_name=name, year=year,
                      plan_id=str(notice.get("plan_id", "")), status=str(notice.get("status", "")),
                      figures=figure_rows, vote=vote_rows, kinds=kinds, rows=tuple(rows), totals=totals,
                      record_date=str(figures.get("record_date") or notice.get("record_date") or ""))


def _table(view: NoticeView) -> list[list[str]]:
    lines = [[view.title], []]
    lines += [[label, amount] for label, amount in view.figures]
    lines += [[]] + [[label, value] for label, value in view.vote] + [[]]
    lines.append(list(view.header))
    for row in (*view.rows, view.totals):
        lines.append([row.household_id, row.head, *row.holdings, row.weight, row.amount.replace(",", "")])
    return lines


def notice_csv(view: NoticeView) -> bytes:
    """The notice as CSV (UTF-8 with a byte-order mark, so that Excel reads the Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(_table(view))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def notice_xlsx(view: NoticeView) -> bytes:
    """The notice as a workbook: one sheet, amounts as text with two decimals (exact, as on the page)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "公示"
    for line in _table(view):
        sheet.append(line)
    sheet["A1"].font = Font(bold=True, size=14)
    for column, width in zip("ABCDEF", (12, 12, 10, 10, 12, 16), strict=True):
        sheet.column_dimensions[column].width = width
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def register_notice(app: Flask, upstreams: Upstreams, http: requests.Session, timeout_s: float) -> None:
    """The notice routes; the document comes from the members service, as the caller."""

    def fetch(collective_id: str, plan_id: str) -> NoticeView:
        if not _SLUG.fullmatch(collective_id):
            raise Refusal(404, "not_found", "no such collective", "collective_id")
        if not _SLUG.fullmatch(plan_id):
            raise Refusal(404, "not_found", "no such plan", "plan_id")
        authorization = gate(app).authorization()
        if authorization is None:
            raise Refusal(401, "unauthenticated", "sign in first", "session")
        try:
            answer = http.get(f"{upstreams.url('members')}/v1/collectives/{collective_id}/plans/{plan_id}/notice",
                              headers={"Authorization": authorization, "Accept": "application/json"},
                              timeout=timeout_s, allow_redirects=False)
        except requests.Timeout:
            raise Refusal(504, "upstream_timeout", "the members service did not answer in time") from None
        except requests.RequestException:
            raise Refusal(502, "upstream_unavailable", "the members service is not reachable") from None
        if answer.status_code != 200:
            try:
                error = answer.json().get("error", {})
            except ValueError:
                error = {}
            raise Refusal(answer.status_code, str(error.get("code", "refused")),
                          str(error.get("message", answer.reason)), error.get("field"))
        return view_of(answer.json())

    def refused(exc: Refusal, html: bool) -> Response:
        if not html:
            return exc.response()
        page = render_template("notice_error.html", status=exc.status, message=exc.message)
        return Response(page, status=exc.status, mimetype="text/html")

    @app.get("/notice/<collective_id>/<plan_id>")
    def notice_page(collective_id: str, plan_id: str) -> Response:
        try:
            view = fetch(collective_id, plan_id)
        except Refusal as exc:
            return refused(exc, html=True)
        response = Response(render_template("notice.html", v=view, cid=collective_id, pid=plan_id),
                            mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/notice/<collective_id>/<plan_id>.csv")
    def notice_csv_file(collective_id: str, plan_id: str) -> Response:
        try:
            view = fetch(collective_id, plan_id)
        except Refusal as exc:
            return refused(exc, html=False)
        return send_file(io.BytesIO(notice_csv(view)), mimetype="text/csv", as_attachment=True,
                         download_name=f"notice-{collective_id}-{view.year}.csv", max_age=0)

    @app.get("/notice/<collective_id>/<plan_id>.xlsx")
    def notice_xlsx_file(collective_id: str, plan_id: str) -> Response:
        try:
            view = fetch(collective_id, plan_id)
        except Refusal as exc:
            return refused(exc, html=False)
        return send_file(io.BytesIO(notice_xlsx(view)), mimetype=XLSX, as_attachment=True,
                         download_name=f"notice-{collective_id}-{view.year}.xlsx", max_age=0)
