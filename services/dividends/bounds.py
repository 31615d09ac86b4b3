"""Whether a computed distribution fits the wire format (DESIGN §3), before anything is published.

Every amount of DistributionDeclared and DividendAllocated is a wire amount: at most
999999999999.99 in absolute value (``net_profit`` may be negative; its bound is the same).
The totals of a period can exceed that even when every input fits — rents summed over a long
period, or capital-days: Σ capital in fen × days, shown in yuan·days, which is the project's
capital times the length of the period (a project's capital is itself bounded by the ledger,
so a short enough period always fits). So a preview or a declaration whose numbers do not
fit is refused with 422 when it is asked for, naming ``period_end`` (a shorter period is the
way out) and the amount at fault, instead of failing later on the event's own contract.
"""

from __future__ import annotations

from services.contracts.money import MAX_YUAN, fits_wire, format_yuan
from services.dividends.domain import DistributionResult

#: The amounts of DistributionDeclared, in the order they are checked.
DECLARED_AMOUNTS = ("gross_rent", "expenses", "management_fee", "tax", "net_profit", "pool", "retained",
                    "total_top_up", "total_payout", "total_capital_days")
#: The amounts of each DividendAllocated.
ALLOCATED_AMOUNTS = ("capital_days", "pro_rata", "guaranteed_floor", "top_up", "payout")


def out_of_range(result: DistributionResult) -> tuple[str, str] | None:
    """The first amount of ``result`` that does not fit the wire format, as (field, message); None if all fit.

    ``field`` is the name in DistributionDeclared (``"total_capital_days"``) or, for an
    allocation, ``"allocations.{investor_id}.{name}"``.
    """
    for name in DECLARED_AMOUNTS:
        fen: int = getattr(result, name)
        if not fits_wire(fen):
            return name, _message(name, fen)
    for allocation in result.allocations:
        for name in ALLOCATED_AMOUNTS:
            fen = getattr(allocation, name)
            if not fits_wire(fen):
                return f"allocations.{allocation.investor_id}.{name}", _message(name, fen)
    return None


def _message(name: str, fen: int) -> str:
    unit = " yuan·days" if name.endswith("capital_days") else ""
    return (f"{name} of this period would be {format_yuan(fen)}{unit}, beyond the largest amount an event can "
            f"carry ({MAX_YUAN}); declare a shorter period")
