"""Development tools: never imported by production code (``tests/unit/test_import_graph.py`` checks it).

- ``broker``: a real single-node Kafka broker run from Maven Central's jars (``make kafka-up``,
  the tests, the benchmarks), with SASL/SCRAM and the ACLs of the topics table on request;
- ``launcher``: ``baotuan run``, the whole system on one machine (what ``make run`` runs);
- ``scenario``: ``baotuan load`` (a scenario file imported through the public APIs), ``baotuan
  status``, and the demo principals' tokens of a local run;
- ``synthetic``: a valid log written without the services (tests, tamper drills, benchmarks).

The ``baotuan`` command (``services/cli.py``) loads them only when one of their commands runs.
"""
