"""What an audit verifies, fed the records of a source (:mod:`services.audit.sources`).

- ``auditor``: ``Auditor`` (record checks: schema, canonical, chain, order; then the checks
  across topics) and ``run_audit``;
- ``anchors``: the signed checkpoints and receipts; ``books``: every village's books;
  ``payouts`` and ``input_rows``: the dividends lifecycle and each distribution recomputed
  (late items included); ``postings``: the automatic entries the log calls for;
  ``remote``: trial balances compared with the ledger service; ``findings``: the findings.
"""
