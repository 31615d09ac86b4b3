"""Where an audit reads the log from (each yields :class:`~services.audit.sources.records.Record`).

- ``records``: the Record, the Source protocol, ``ReplayError`` and the stop offsets;
- ``archive``: ``ArchiveSource``, an exported archive (JSON Lines);
- ``kafka``: ``KafkaSource``, the topics themselves, read by the audit's own consumer;
- ``fetch``: reading partitions between two offsets (used by ``kafka`` and ``reader``);
- ``reader``: the process that fetches a long log while the audit checks it.
"""
