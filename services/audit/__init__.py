"""``baotuan audit`` and ``baotuan export``: the log replayed from the beginning and verified.

``sources/`` reads it (Kafka or a JSON Lines archive), ``checks/`` verifies it, ``exports/``
writes it for the auditor's own tools; ``cli.py`` and ``report.py`` are the commands and their
report, ``catalogue.py`` the event catalogue (docs/audit.md).
"""
