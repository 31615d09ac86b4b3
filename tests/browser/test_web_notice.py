"""The public notice (公示) of a member plan, without a browser or a broker: the page, the CSV, the workbook.

A small stand-in answers the members service's ``GET …/plans/{pid}/notice`` on a loopback
port, so these tests check what the web app makes of the document and what it passes on:
the caller's own credentials, the service's refusals, and nothing for an id that is not one.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from flask import Flask, jsonify, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from services.contracts.money import format_yuan, parse_yuan
from services.devtools.broker import free_port
from services.runtime.config import Settings
from services.web.app import create_app
from services.web.notice import decimal_text, view_of
from services.web.proxy import Upstreams

NOTICE: dict[str, Any] = {
    "collective_id": "lianmeng", "collective_name": "联盟村股份经济合作社", "plan_id": "lianmeng-2025", "year": 2025,
    "status": "approved",
    "figures": {"net_income": "719600.00", "brought_forward": "300000.00", "distributable": "1019600.00",
                "reserve_rate": "0.10", "reserve": "101960.00", "welfare": "50000.00", "members_total": "1000.00",
                "undistributed": "866640.00", "record_date": "2025-12-31"},
    "vote": {"body": "representatives", "meeting_on": "2026-01-18", "entitled": 45, "present": 38, "for": 35,
             "against": 1, "abstain": 2},
    "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                    {"kind": "farm-age", "name": "农龄股", "weight": "0.5"}],
    "households": [
        {"household_id": "lm-h001", "head_name_masked": "张*明", "holdings": {"population": "3", "farm-age": "2.7"},
         "weight": "4.35", "amount": "499.43"},
        {"household_id": "lm-h002", "head_name_masked": "王*", "holdings": {"population": "2", "farm-age": "0"},
         "weight": "2", "amount": "229.63"},
        {"household_id": "lm-h003", "head_name_masked": "欧阳**", "holdings": {"population": "2", "farm-age": "0.7"},
         "weight": "2.35", "amount": "270.94"},
    ],
}


def members_stand_in() -> Flask:
    app = Flask("members-stand-in")

    @app.get("/v1/collectives/<cid>/plans/<pid>/notice")
    def notice(cid: str, pid: str) -> Any:
        if request.headers.get("Authorization") != "Bearer bt_board":
            return jsonify({"error": {"status": 403, "code": "forbidden", "message": "not this collective's board",
                                      "field": "Authorization"}}), 403
        if pid != "lianmeng-2025":
            return jsonify({"error": {"status": 404, "code": "not_found", "message": "no such plan",
                                      "field": "plan_id"}}), 404
        return jsonify(NOTICE)

    return app


@pytest.fixture(scope="module")
def members() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, members_stand_in(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(tmp_path: Path, members: str) -> FlaskClient:
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path / "data",
                        tokens_file=tmp_path / "tokens.json", request_timeout_s=2)
    down = f"http://127.0.0.1:{free_port()}"
    return create_app(settings, Upstreams(ledger=down, rentals=down, dividends=down, members=members)).test_client()


BOARD = {"Authorization": "Bearer bt_board"}


def test_the_notice_page_shows_plan_vote_households_and_exact_totals_for_a4(client: FlaskClient) -> None:
    response = client.get("/notice/lianmeng/lianmeng-2025", headers=BOARD)
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "<title>联盟村股份经济合作社2025年度收益分配方案公示</title>" in page
    assert '<link rel="stylesheet" href="/static/notice.css">' in page
    assert "<script" not in page and "style=" not in page  # the strict CSP allows neither
    for label, amount in (("可分配收益", "1,019,600.00"), ("提取公积公益金（10%）", "101,960.00"),
                          ("公益福利", "50,000.00"), ("成员分配总额", "1,000.00"),
                          ("未分配（结转下年）", "866,640.00")):
        assert f'<th scope="row">{label}</th><td class="num">{amount}</td>' in page
    for label, value in (("会议", "成员代表大会"), ("会议日期", "2026-01-18"), ("应到", "45"), ("实到", "38"),
                         ("赞成", "35"), ("反对", "1"), ("弃权", "2")):
        assert f'<th scope="row">{label}</th><td class="num">{value}</td>' in page
    assert "<td>张*明</td>" in page and "<td>王*</td>" in page
    # The totals, added up by the page: 7 人口股, 3.4 农龄股, 8.7 weighted shares, every fen of 1,000.00.
    totals = page.split('data-testid="notice-totals">')[1].split("</tr>")[0]
    assert [cell.split(">")[-1] for cell in totals.split("</td>")[:-1]] == ["3 户", "7", "3.4", "8.7", "1,000.00"]
    with client.get("/static/notice.css") as served:
        css = served.get_data(as_text=True)
    assert "@page { size: A4;" in css and "@media print" in css


def test_totals_are_added_up_exactly_from_the_households() -> None:
    view = view_of(NOTICE)
    assert view.totals.amount == "1,000.00"
    assert sum(parse_yuan(h["amount"]) for h in NOTICE["households"]) == parse_yuan(
        NOTICE["figures"]["members_total"])
    assert view.header == ("户号", "户主", "人口股", "农龄股", "折算股数", "分配金额（元）")
    assert [r.holdings for r in view.rows] == [("3", "2.7"), ("2", "0"), ("2", "0.7")]
    # 0.1 + 0.2 as fractions, never floats.
    tenths = dict(NOTICE, households=[dict(NOTICE["households"][0], weight="0.1"),
                                      dict(NOTICE["households"][1], weight="0.2")])
    assert view_of(tenths).totals.weight == "0.3"
    assert decimal_text(Fraction(16973, 10)) == "1697.3"
    assert decimal_text(Fraction(-1, 4)) == "-0.25"


def test_the_csv_and_the_workbook_hold_the_same_figures_and_rows(client: FlaskClient) -> None:
    response = client.get("/notice/lianmeng/lianmeng-2025.csv", headers=BOARD)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "notice-lianmeng-2025.csv" in response.headers["Content-Disposition"]
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["联盟村股份经济合作社2025年度收益分配方案公示"]
    assert ["成员分配总额", "1,000.00"] in rows
    assert ["赞成", "35"] in rows
    header = rows.index(["户号", "户主", "人口股", "农龄股", "折算股数", "分配金额（元）"])
    households = rows[header + 1:-1]
    assert households[1] == ["lm-h002", "王*", "2", "0", "2", "229.63"]
    assert rows[-1] == ["合计", "3 户", "7", "3.4", "8.7", "1000.00"]
    assert format_yuan(sum(parse_yuan(r[-1]) for r in households)) == "1000.00"

    response = client.get("/notice/lianmeng/lianmeng-2025.xlsx", headers=BOARD)
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.get_data())).active
    cells = [[c for c in row if c is not None] for row in sheet.iter_rows(values_only=True)]
    assert [[str(c) for c in row] for row in cells if row] == [r for r in rows if r]


@pytest.mark.parametrize(("path", "headers", "status"), [
    ("/notice/lianmeng/lianmeng-2025", {}, 401),  # not signed in
    ("/notice/lianmeng/lianmeng-2025", {"Authorization": "Bearer bt_other"}, 403),  # the service refuses
    ("/notice/lianmeng/lianmeng-2024", BOARD, 404),
    ("/notice/Lianmeng/lianmeng-2025", BOARD, 404),  # not an id: never sent on
    ("/notice/lianmeng/lianmeng%202025", BOARD, 404),
])
def test_a_notice_the_caller_may_not_see_is_refused_on_a_page_of_its_own(
        client: FlaskClient, path: str, headers: dict[str, str], status: int) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert "无法显示公示" in response.get_data(as_text=True)
    csv_response = client.get(path + ".csv", headers=headers)
    assert csv_response.status_code == status
    assert csv_response.json is not None and csv_response.json["error"]["status"] == status


def test_a_path_that_climbs_out_is_not_a_notice(client: FlaskClient) -> None:
    assert client.get("/notice/lianmeng/..%2Fplans", headers=BOARD).status_code == 404
    assert client.get("/notice/lianmeng/lianmeng-2025/../x", headers=BOARD).status_code == 404


def test_the_members_service_not_answering_is_a_502(tmp_path: Path) -> None:
    settings = Settings(bootstrap_servers="127.0.0.1:1", data_dir=tmp_path / "data",
                        tokens_file=tmp_path / "tokens.json", request_timeout_s=2)
    down = f"http://127.0.0.1:{free_port()}"
    client = create_app(settings, Upstreams(down, down, down, down)).test_client()
    response = client.get("/notice/lianmeng/lianmeng-2025.xlsx", headers=BOARD)
    assert response.status_code == 502
    assert response.json is not None and response.json["error"]["code"] == "upstream_unavailable"
