"""Exports for the auditor's own tools, written from the events (never from a service database).

- ``jsonl``: the archive of DESIGN §4, one Kafka record per line;
- ``journals``: hledger journals and beancount files, one per collective;
- ``tables``: CSV files and an Excel workbook of the same three tables.
"""
