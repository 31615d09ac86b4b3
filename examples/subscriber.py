"""Follow baotuan's dividends as another system would: print each payout as it is declared.

A town finance platform, a bank's payment system or a dashboard needs no access to
baotuan's services or databases: it subscribes to the ``baotuan.dividends.v1`` topic
with a consumer group of its own. Kafka remembers the group's position, so after a
restart the program goes on where it stopped, and several copies with the same group
share the work. Each record value is a JSON envelope (DESIGN §4); a ``DividendAllocated``
event carries one investor's payout of a declared distribution (DESIGN §5), printed as one line::

    binhai-park 2025-01-01..2025-12-31  jinqing-lianmeng (collective)  payout 355000.00 =
    pro-rata 211577.30 + top-up 143422.70

Usage (with ``make run`` up, or any broker holding baotuan's topics)::

    .venv/bin/python examples/subscriber.py                      # follow, from the group's position
    .venv/bin/python examples/subscriber.py --group town-finance --max-seconds 30

On a secured broker, set the Kafka user as for baotuan's own tools:
``BAOTUAN_KAFKA_SASL_USERNAME`` and ``BAOTUAN_KAFKA_SASL_PASSWORD`` (and, if not the defaults,
``BAOTUAN_KAFKA_SASL_MECHANISM`` = SCRAM-SHA-256 and ``BAOTUAN_KAFKA_SECURITY_PROTOCOL`` =
SASL_PLAINTEXT; SASL_SSL on a network you do not own). The user needs READ on the topic and on
its consumer group.

It needs only kafka-python (``pip install kafka-python``). Amounts are printed as they
are on the wire: strings in yuan with two decimals, never floats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer

TOPIC = "baotuan.dividends.v1"


def security_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """kafka-python's SASL settings from BAOTUAN_KAFKA_SASL_*; none (PLAINTEXT) without a user."""
    username = environ.get("BAOTUAN_KAFKA_SASL_USERNAME")
    if not username:
        return {}
    return {"security_protocol": environ.get("BAOTUAN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            "sasl_mechanism": environ.get("BAOTUAN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            "sasl_plain_username": username,
            "sasl_plain_password": environ.get("BAOTUAN_KAFKA_SASL_PASSWORD", "")}


class Payouts:
    """Turns the topic's events into payout lines.

    Records of one project share a key, hence a partition, hence an order: a
    DistributionDeclared always comes before its DividendAllocated events, so the period
    it declares is known by the time its payouts arrive.
    """

    def __init__(self) -> None:
        self.periods: dict[str, str] = {}

    def describe(self, envelope: dict[str, Any]) -> str | None:
        """One line per DividendAllocated; None for the topic's other event types."""
        d = envelope.get("data", {})
        if envelope.get("type") == "DistributionDeclared":
            self.periods[d["distribution_id"]] = f"{d['period_start']}..{d['period_end']}"
        if envelope.get("type") != "DividendAllocated":
            return None
        period = self.periods.get(d["distribution_id"], d["distribution_id"])
        return (f"{d['project_id']} {period}  {d['investor_id']} ({d['investor_type']})  payout {d['payout']} = "
                f"pro-rata {d['pro_rata']} + top-up {d['top_up']}")


def follow(bootstrap: str, group: str, *, from_beginning: bool = True, max_seconds: float | None = None,
           max_payouts: int | None = None) -> int:
    """Print payouts as they arrive; returns how many were printed."""
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        # A new group starts at the beginning of the log (every payout ever declared); an
        # existing group resumes from its committed position.
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=True,
        # baotuan writes in Kafka transactions: read only what was committed (a declaration with all of its
        # allocations, never half of one, nor the records of a writer that died mid-transaction).
        isolation_level="read_committed",
        client_id=f"{group}-subscriber",
        **security_config(),
    )
    payouts = Payouts()
    printed = 0
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while (deadline is None or time.monotonic() < deadline) and (max_payouts is None or printed < max_payouts):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    line = payouts.describe(json.loads(record.value.decode("utf-8")))
                    if line is not None and (max_payouts is None or printed < max_payouts):
                        print(line, flush=True)
                        printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()  # commits the position reached
    return printed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
                        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:19092)")
    parser.add_argument("--group", default="baotuan-example-subscriber", help="consumer group id")
    parser.add_argument("--new-only", action="store_true",
                        help="a new group starts at the end of the log (only payouts declared from now on)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--max-payouts", type=int, default=None, help="stop after this many payouts")
    args = parser.parse_args(argv)
    count = follow(args.bootstrap, args.group, from_beginning=not args.new_only, max_seconds=args.max_seconds,
                   max_payouts=args.max_payouts)
    print(f"{count} payouts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
