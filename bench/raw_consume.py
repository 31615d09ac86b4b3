"""The replay baseline: consume every record of the topics with kafka-python and do nothing with it.

``python -m bench.raw_consume --bootstrap HOST:PORT [--topics a,b]`` prints
``{"records": N, "seconds": S}``. The client's best configuration found for a full read
(``max_poll_records=5000``, 64 MB fetches, 16 MB per partition), not the audit's: ``baotuan
audit`` keeps kafka-python's default fetch sizes and 2,000 records a poll (larger fetches were
no faster for it and held hundreds of MB), so the ratio shows the distance to what the client
can do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, TopicPartition

from services.contracts.topics import RECORD_TOPICS


def consume(bootstrap: str, topics: list[str]) -> tuple[int, float]:
    began = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             isolation_level="read_committed", auto_offset_reset="earliest",
                             client_id="bench-raw-consume", max_poll_records=5000,
                             fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024,
                             request_timeout_ms=30_000)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)
        consumer.seek_to_beginning(*partitions)
        left = {tp: end[tp] for tp in partitions if end[tp] > 0}
        count = 0
        while left:
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for message in batch:
                    if message.offset < end[tp]:
                        count += 1
                if consumer.position(tp) >= end[tp]:
                    left.pop(tp, None)
                    consumer.pause(tp)
    finally:
        consumer.close()
    return count, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_consume")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", default=",".join(RECORD_TOPICS))
    args = parser.parse_args(argv)
    count, seconds = consume(args.bootstrap, args.topics.split(","))
    print(json.dumps({"records": count, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
