"""The statutory chart of accounts (财会〔2023〕14号, DESIGN §7) kept as data."""

from __future__ import annotations

import pytest

from services.ledger import chart
from services.ledger.chart import ACCOUNTS, Account, LedgerError, UnknownAccount, is_income, lookup, split

SECTION_7_TABLE = {
    "101": "库存现金",
    "102": "银行存款",
    "111": "短期投资",
    "112": "应收款",
    "113": "内部往来",
    "121": "库存物资",
    "131": "消耗性生物资产",
    "132": "生产性生物资产",
    "133": "生产性生物资产累计折旧",
    "134": "公益性生物资产",
    "141": "长期投资",
    "151": "固定资产",
    "152": "累计折旧",
    "153": "在建工程",
    "154": "固定资产清理",
    "161": "无形资产",
    "162": "累计摊销",
    "171": "长期待摊费用",
    "181": "待处理财产损溢",
    "201": "短期借款",
    "211": "应付款",
    "212": "应付工资",
    "213": "应付劳务费",
    "214": "应交税费",
    "221": "长期借款及应付款",
    "231": "一事一议资金",
    "241": "专项应付款",
    "301": "资本",
    "311": "公积公益金",
    "321": "本年收益",
    "322": "收益分配",
    "401": "生产（劳务）成本",
    "501": "经营收入",
    "502": "投资收益",
    "503": "补助收入",
    "504": "其他收入",
    "511": "经营支出",
    "512": "税金及附加",
    "513": "管理费用",
    "514": "公益支出",
    "515": "其他支出",
    "521": "所得税费用",
}


def test_the_chart_has_exactly_the_42_codes_of_section_7_with_their_chinese_names() -> None:
    assert len(ACCOUNTS) == 42
    assert {account.code: account.name for account in ACCOUNTS} == SECTION_7_TABLE


def test_the_chart_is_kept_in_code_order_without_duplicates() -> None:
    codes = [account.code for account in ACCOUNTS]
    assert codes == sorted(set(codes))


def test_every_account_belongs_to_the_class_given_by_its_first_digit() -> None:
    expected_class = {"1": "资产", "2": "负债", "3": "所有者权益", "4": "成本", "5": "损益"}
    for account in ACCOUNTS:
        assert account.account_class == expected_class[account.code[0]], account.code


def test_assets_cost_and_expenses_are_debit_normal_except_the_contra_assets() -> None:
    debit_normal = {a.code for a in ACCOUNTS if a.normal_side == "debit"}
    assert debit_normal == (
        {code for code in SECTION_7_TABLE if code.startswith("1")} - {"133", "152", "162"}
    ) | {"401", "511", "512", "513", "514", "515", "521"}


def test_liabilities_equity_income_and_contra_assets_are_credit_normal() -> None:
    credit_normal = {a.code for a in ACCOUNTS if a.normal_side == "credit"}
    assert credit_normal == {"133", "152", "162"} | {
        "201", "211", "212", "213", "214", "221", "231", "241",
        "301", "311", "321", "322",
        "501", "502", "503", "504",
    }  # fmt: skip


def test_lookup_of_a_plain_code_returns_the_account() -> None:
    assert lookup("102") == Account("102", "银行存款", "资产", "debit")


def test_lookup_of_a_sub_account_returns_its_base_account() -> None:
    assert lookup("141/binhai-park") == Account("141", "长期投资", "资产", "debit")
    assert lookup("502/binhai-park").name == "投资收益"


def test_a_segment_of_one_character_and_of_63_characters_is_accepted() -> None:
    assert lookup("112/a").code == "112"
    assert lookup("112/" + "a" * 63).code == "112"


@pytest.mark.parametrize(
    "account",
    [
        "999",
        "1410",
        "14",
        "",
        "999/binhai-park",
        "141/",
        "141/Binhai-Park",
        "141/-binhai",
        "141/binhai_park",
        "141/binhai park",
        "141/binhai/park",
        "141/滨海",
        "141/" + "a" * 64,
        " 141",
    ],
)
def test_lookup_refuses_codes_off_the_chart_and_bad_segments(account: str) -> None:
    with pytest.raises(UnknownAccount) as raised:
        lookup(account)
    assert raised.value.field == "account"
    assert isinstance(raised.value, LedgerError)
    assert isinstance(raised.value, ValueError)


def test_lookup_refuses_a_non_string_account() -> None:
    with pytest.raises(UnknownAccount):
        lookup(141)  # type: ignore[arg-type]


def test_split_separates_the_base_code_from_the_segment() -> None:
    assert split("141/binhai-park") == ("141", "binhai-park")
    assert split("102") == ("102", None)


def test_only_501_to_504_and_their_sub_accounts_are_income() -> None:
    assert [code for code in SECTION_7_TABLE if is_income(code)] == ["501", "502", "503", "504"]
    assert is_income("502/binhai-park")
    assert not is_income("511")
    assert not is_income("999")


def test_sub_account_builds_a_checked_code_and_segment() -> None:
    assert chart.sub_account("141", "binhai-park") == "141/binhai-park"
    with pytest.raises(UnknownAccount):
        chart.sub_account("141", "Binhai")
