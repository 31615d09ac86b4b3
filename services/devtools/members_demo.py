"""The demo village's members and its 2025 distribution plan, generated (DESIGN §11).

``python -m services.devtools.members_demo`` rewrites the sections ``entries``,
``year_end_closes``, ``charters``, ``households``, ``share_transfers`` and ``member_plans`` of
data/binhai_scenario.json (every other section is left as it is) for 联盟村
(jinqing-lianmeng): its own 2025 income and expenses, the year-end closes of 2024 and 2025,
a charter with two share kinds (人口股 and 农龄股), about 300 households with their members
and holdings fixed on 2020-12-31, a few transfers of shares since, and the 2025 plan with
the vote of its 成员代表大会 and the payments. The same seed gives the same file: run it
again after changing this module, and commit both.

Holdings follow the usual rules of a 股份经济合作社: one 人口股 per member registered on the
fixing date; 农龄股 = the member's years of collective farming (1956-1982, from the age of
16) ÷ 10, summed over the household. Names are illustrative.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from services.runtime.config import PROJECT_ROOT

SCENARIO = PROJECT_ROOT / "data" / "binhai_scenario.json"
VILLAGE = "jinqing-lianmeng"
SEED = 20251231
HOUSEHOLDS = 306
FIXED_ON = "2020-12-31"
PLAN_ID = "lianmeng-2025"

SURNAMES = "陈林王李张蔡金郑黄周徐潘杨梁吴叶洪管卢朱许胡应罗"
MALE = "国建明华伟军海林平志强永春荣德福成祥根友生才兴富贵忠义礼"
FEMALE = "秀美英芳娟玲丽萍兰珍凤翠霞红云月琴桂敏燕素芬"
HAMLETS = ("联盟一组", "联盟二组", "联盟三组", "联盟四组", "东村", "西村", "新塘头", "河埠头")
SECTIONS = ("entries", "year_end_closes", "charters", "households", "share_transfers", "member_plans")


def _name(rng: random.Random, surname: str, female: bool) -> str:
    chars = FEMALE if female else MALE
    given = rng.choice(chars) + (rng.choice(chars) if rng.random() < 0.8 else "")
    return surname + given


def _farm_years(born: dt.date) -> int:
    """Years of collective farming: 1956-1982, from the year the member turned 16."""
    start = max(1956, born.year + 16)
    return max(0, 1982 - start + 1)


def _day(rng: random.Random, year_from: int, year_to: int) -> dt.date:
    start = dt.date(year_from, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(start, dt.date(year_to, 12, 31).toordinal()))


def _tenths(n: int) -> str:
    """n tenths as an exact decimal string: 34 -> "3.4", 30 -> "3"."""
    whole, tenth = divmod(n, 10)
    return f"{whole}.{tenth}" if tenth else str(whole)


def household(rng: random.Random, number: int) -> dict[str, Any]:
    """One household on the register: its members, and its holdings on the fixing date."""
    hid = f"lm-h{number:03d}"
    surname = rng.choice(SURNAMES)
    alone = number % 60 == 7  # a few widowed elders live alone
    head_born = _day(rng, 1935, 1945) if alone else _day(rng, 1935, 1985)
    head_female = rng.random() < 0.12
    people = [(_name(rng, surname, head_female), "户主", head_born)]
    if alone:
        pass
    elif rng.random() < 0.85:  # a spouse, of another family name
        people.append((_name(rng, rng.choice(SURNAMES), not head_female), "配偶",
                       head_born + dt.timedelta(days=rng.randint(-1500, 1500))))
    for _ in range(0 if alone else rng.choice((0, 1, 1, 2, 2, 3))):
        born = _day(rng, min(head_born.year + 22, 2015), min(head_born.year + 38, 2019))
        female = rng.random() < 0.5
        people.append((_name(rng, surname, female), "女" if female else "子", born))
    if not alone and head_born.year < 1960 and rng.random() < 0.5:  # a grandchild, born before or after the fixing date
        born = _day(rng, 2008, 2024)
        female = rng.random() < 0.5
        people.append((_name(rng, surname, female), "孙女" if female else "孙子", born))
    members = []
    population = 0
    farm_tenths = 0
    for index, (name, relation, born) in enumerate(people, start=1):
        joined = max(born, dt.date(2020, 11, 30))
        members.append({"member_id": f"{hid}-{index}", "name": name, "relation": relation,
                        "born_on": born.isoformat(), "joined_on": joined.isoformat()})
        if born.isoformat() <= FIXED_ON:  # 生不增: no shares for those born after the fixing date
            population += 1
            farm_tenths += _farm_years(born)
    return {
        "collective_id": VILLAGE, "household_id": hid, "head_name": people[0][0],
        "address": f"金清镇联盟村{rng.choice(HAMLETS)}{rng.randint(1, 120)}号", "registered_on": "2020-11-30",
        "members": members,
        # Counted at the registration (the census before the shares were fixed): effective from registered_on.
        "holdings": {"population": str(population), "farm-age": _tenths(farm_tenths)},
    }


def transfers(households: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few changes after the fixing date, each by the only way left (SharesTransferred)."""
    by_id = {h["household_id"]: h for h in households}
    # An elderly head living alone dies; his shares go to his son's household.
    alone = next(h for h in households if len(h["members"]) == 1 and h["holdings"]["farm-age"] != "0")
    heir = next(h for h in households if h["household_id"] > alone["household_id"]
                and h["head_name"][0] == alone["head_name"][0])
    out = [
        {"transfer_id": "lm-t2023-01", "from_household": alone["household_id"], "to_household": heir["household_id"],
         "kind": "population", "shares": alone["holdings"]["population"], "effective_on": "2023-06-15",
         "reason": "inheritance", "note": f"户主{alone['head_name']}于2023年5月去世，股权由其子继承"},
        {"transfer_id": "lm-t2023-02", "from_household": alone["household_id"], "to_household": heir["household_id"],
         "kind": "farm-age", "shares": alone["holdings"]["farm-age"], "effective_on": "2023-06-15",
         "reason": "inheritance", "note": "同上，农龄股一并继承"},
    ]
    big = [h for h in households if int(h["holdings"]["population"]) >= 4]
    giver, taker = big[3], big[17]
    out.append({"transfer_id": "lm-t2024-01", "from_household": giver["household_id"],
                "to_household": taker["household_id"], "kind": "population", "shares": "1",
                "effective_on": "2024-03-01", "reason": "gift", "note": "分户后赠与"})
    court_from, court_to = big[9], big[25]
    out.append({"transfer_id": "lm-t2024-02", "from_household": court_from["household_id"],
                "to_household": court_to["household_id"], "kind": "population", "shares": "1",
                "effective_on": "2024-09-20", "reason": "court", "note": "(2024)浙1004民初1234号民事判决"})
    farmer = next(h for h in big[30:] if h["holdings"]["farm-age"] not in ("0",) and
                  int(h["holdings"]["farm-age"].split(".")[0]) >= 2)
    out.append({"transfer_id": "lm-t2025-01", "from_household": farmer["household_id"],
                "to_household": big[40]["household_id"], "kind": "farm-age", "shares": "1.5",
                "effective_on": "2025-02-10", "reason": "inheritance", "note": "母亲去世，农龄股由女儿一户继承"})
    for record in out:
        assert record["from_household"] in by_id and record["to_household"] in by_id
    return [{"collective_id": VILLAGE, **record} for record in out]


def sections() -> dict[str, list[dict[str, Any]]]:
    """The generated sections, in import order."""
    rng = random.Random(SEED)
    households = [household(rng, n) for n in range(1, HOUSEHOLDS + 1)]
    unpaid = [households[86]["household_id"], households[211]["household_id"]]

    def entry(date: str, memo: str, debit: str, credit: str, amount: str, attachments: int) -> dict[str, Any]:
        return {"collective_id": VILLAGE, "date": date, "memo": memo, "attachments": attachments,
                "lines": [{"account": debit, "debit": amount}, {"account": credit, "credit": amount}]}

    return {
        # 联盟村's own books of 2025 (the park's 2025 dividend is booked when the park's board approves it).
        "entries": [
            entry("2025-03-31", "土地发包收入（2025年度）", "102", "501", "820000.00", 3),
            entry("2025-06-30", "村级组织运转经费补助", "102", "503", "150000.00", 1),
            entry("2025-09-10", "村道路灯维修", "514", "102", "64000.00", 4),
            entry("2025-12-20", "村干部报酬及办公费", "513", "102", "186400.00", 6),
        ],
        "year_end_closes": [{"collective_id": VILLAGE, "year": 2024}, {"collective_id": VILLAGE, "year": 2025}],
        "charters": [{
            "collective_id": VILLAGE,
            "share_kinds": [{"kind": "population", "name": "人口股", "weight": "1"},
                            {"kind": "farm-age", "name": "农龄股", "weight": "1"}],
            "reserve_rate_min": "0.10", "shares_fixed_on": FIXED_ON, "quorum": "2/3", "majority": "1/2",
            "adopted_on": "2020-11-20",
        }],
        "households": households,
        "share_transfers": transfers(households),
        "member_plans": [{
            "collective_id": VILLAGE, "plan_id": PLAN_ID, "year": 2025, "reserve_rate": "0.10",
            "welfare": "50000.00", "members_total": "800000.00", "record_date": "2026-01-10",
            "vote": {"body": "representatives", "meeting_on": "2026-01-18", "entitled": 45, "present": 38,
                     "for": 35, "against": 1, "abstain": 2},
            "payments": {"paid_on": "2026-01-26", "bank_reference": "路桥农商银行代发2026-01", "unpaid": unpaid},
        }],
    }


def write(path: Path = SCENARIO) -> None:
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(sections())
    path.write_text(json.dumps(raw, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", type=Path, default=SCENARIO)
    write(parser.parse_args().scenario)


if __name__ == "__main__":
    main()
