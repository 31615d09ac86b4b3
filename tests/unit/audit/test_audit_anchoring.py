"""Forgeries that re-seal the hash chains, caught by the signed checkpoints, receipts and canonical bytes (issue 14).

The archive is a signed log of services.devtools.synthetic: every writer signs a checkpoint of each
of its topics every 8 records, and once more at the end, with the keys of ``synthetic_keys()``;
the auditor pins their public keys as ``baotuan keys export`` writes them. Each forgery re-seals
what it changes as a forger who knows the hash rule would (every later seq, prev_hash and hash of
the stream recomputed, offsets renumbered where said), so the chain and order checks pass: each
test asserts that, and then that the new check names the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from forgery import renumber, reseal

from services.audit.checks.anchors import KeyDirError, load_trusted_keys
from services.audit.checks.auditor import AuditResult, run_audit
from services.audit.checks.findings import Finding
from services.audit.cli import audit_command
from services.audit.sources.archive import ArchiveSource
from services.audit.sources.records import parse_offsets
from services.contracts import anchoring
from services.contracts.money import format_yuan, parse_yuan
from services.contracts.topics import CHECKPOINTS, LEDGER_ENTRIES, LEDGER_INVESTMENTS, RECORD_TOPICS, RENTALS, owner_of
from services.devtools.synthetic import LogWriter, archive_line, small_scenario, synthetic_keys, write_public_keys

Row = dict[str, Any]
PARK = "binhai-park"
KEYS = synthetic_keys()
#: Old checks a re-sealed forgery passes: the chains and the offsets are in order.
SEALED_CHECKS = ("chain", "order", "schema", "canonical")


def signed_log(**options: Any) -> LogWriter:
    log = LogWriter(checkpoint_every=8, signing_keys=dict(KEYS), keep_receipts=True, **options)
    small_scenario(log, villages=3)
    return log


@pytest.fixture(scope="module")
def log() -> LogWriter:
    log = signed_log()
    log.checkpoint()  # the whole log is covered
    return log


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_public_keys(tmp_path_factory.mktemp("pinned"), {s: k.public_key() for s, k in KEYS.items()})


def rows_copy(log: LogWriter) -> list[Row]:
    copied: list[Row] = json.loads(json.dumps(log.rows))
    return copied


def write(rows: list[Row], path: Path) -> Path:
    path.write_text("".join(archive_line(row) for row in rows), encoding="utf-8")
    return path


def audit(rows: list[Row], tmp_path: Path, keys: Path | None, receipts: Path | None = None,
          **options: Any) -> AuditResult:
    pinned = load_trusted_keys(keys) if keys is not None else None
    return run_audit(ArchiveSource(write(rows, tmp_path / "archive.jsonl"), **options), archive=True,
                     trusted_keys=pinned, receipts=receipts)


def index_of(rows: list[Row], event_type: str, nth: int = 0) -> int:
    return [i for i, row in enumerate(rows) if row["event"]["type"] == event_type][nth]


def checkpoint_index(rows: list[Row], topic: str, number: int) -> int:
    return next(i for i, row in enumerate(rows) if row["topic"] == CHECKPOINTS
                and row["event"]["data"]["topic"] == topic and row["event"]["data"]["number"] == number)


def sealed_checks_pass(result: AuditResult) -> None:
    for check in SEALED_CHECKS:
        assert not result.findings.of(check), result.findings.of(check)


def streams(findings: list[Finding]) -> set[tuple[str | None, str | None]]:
    return {(f.topic, f.subject) for f in findings}


# -- the untouched log ---------------------------------------------------------------------------------------


def test_the_untouched_signed_archive_passes_with_keys_and_receipts(log: LogWriter, keys: Path,
                                                                    tmp_path: Path) -> None:
    result = audit(rows_copy(log), tmp_path, keys, log.write_receipts(tmp_path / "receipts.jsonl"))
    assert result.ok, result.findings.items
    report = result.auditor.anchors.report()
    assert report["authenticity_checked"] is True
    assert set(report["checkpoints"]) == set(RECORD_TOPICS)
    for topic, listed in report["checkpoints"].items():
        assert listed["verified"] == listed["count"] == listed["last"] > 0, topic
    assert report["uncovered"] == dict.fromkeys(RECORD_TOPICS, 0)
    assert report["receipts"]["count"] == report["receipts"]["found"] == report["receipts"]["signatures_verified"] \
        == len(log.receipts) > 100


def test_records_after_the_last_checkpoint_are_counted_as_not_covered(keys: Path, tmp_path: Path) -> None:
    log = signed_log()
    log.rent(PARK, "100.00", "2026-01-20")  # after the last checkpoint of the rentals
    result = audit(log.rows, tmp_path, keys)
    assert result.ok, result.findings.items
    uncovered = result.auditor.anchors.report()["uncovered"]
    assert uncovered[RENTALS] == log.positions([RENTALS])[RENTALS]["1"] % 8 > 0
    assert any(note.startswith(f"{RENTALS}: {uncovered[RENTALS]} record(s) after its last checkpoint")
               for note in result.auditor.anchors.notes)


# -- the four forgeries of issue 14, re-sealed ---------------------------------------------------------------


def test_a_changed_rent_resealed_is_named_by_its_stream_at_the_next_checkpoint(log: LogWriter, keys: Path,
                                                                              tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 3)
    rows[i]["event"]["data"]["amount"] = format_yuan(parse_yuan(rows[i]["event"]["data"]["amount"]) + 100_00)
    reseal(rows, RENTALS, PARK)
    result = audit(rows, tmp_path, keys)
    sealed_checks_pass(result)
    anchored = result.findings.of("anchored")
    assert anchored and streams(anchored) == {(RENTALS, PARK)}
    first = anchored[0]
    covering = (rows[i]["offset"] // 8 + 1)  # the rentals' checkpoint whose offsets hold the changed record
    assert f"stream {RENTALS} / {PARK}: checkpoint {covering} of {RENTALS}" in first.message
    assert f"offsets {(covering - 1) * 8}..{covering * 8 - 1}" in first.message
    assert "re-sealed before checkpoint" in first.message
    assert not result.findings.of("checkpoint")


@pytest.mark.parametrize("renumbered", [True, False], ids=["offsets-renumbered", "offset-gap-left"])
def test_a_dropped_record_resealed_is_named_by_its_stream(log: LogWriter, keys: Path, tmp_path: Path,
                                                          renumbered: bool) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 5)
    dropped = rows.pop(i)
    reseal(rows, RENTALS, PARK)
    if renumbered:
        renumber(rows, RENTALS, dropped["partition"])
    result = audit(rows, tmp_path, keys)
    assert not result.findings.of("chain")
    assert bool(result.findings.of("order")) is not renumbered  # a gap left in the offsets is seen as before
    anchored = result.findings.of("anchored")
    assert anchored and {f.subject for f in anchored} <= {PARK, None} and PARK in {f.subject for f in anchored}
    assert all(f.topic == RENTALS for f in anchored)
    if renumbered:  # one record fewer: the partition now ends before the last checkpoint's end offset
        assert any("the stream was cut before checkpoint" in f.message for f in anchored)


def test_the_last_records_of_two_streams_cut_off_are_named(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    entries = [row for row in rows if row["topic"] == LEDGER_ENTRIES]
    tail = entries[-4:]  # the last two records of two villages' streams, the end of their partition
    cut = {row["event"]["subject"] for row in tail}
    assert len(cut) == 2
    rows = [row for row in rows if not any(row is gone for gone in tail)]
    result = audit(rows, tmp_path, keys)
    sealed_checks_pass(result)  # the streams are shorter, not broken
    anchored = result.findings.of("anchored")
    partition = tail[0]["partition"]
    [cut_finding] = [f for f in anchored if f.subject is None]
    assert (cut_finding.topic, cut_finding.partition, cut_finding.offset) == (LEDGER_ENTRIES, partition,
                                                                              tail[0]["offset"])
    assert f"{LEDGER_ENTRIES}[{partition}] ends at offset {tail[0]['offset']}, before offset " \
           f"{tail[-1]['offset'] + 1}" in cut_finding.message and "cut before checkpoint" in cut_finding.message
    named = {f.subject for f in anchored if f.subject is not None}
    assert named == cut
    for finding in anchored:
        if finding.subject is not None:
            assert f"stream {LEDGER_ENTRIES} / {finding.subject}" in finding.message
            assert "the log ends before" in finding.message


def test_a_line_with_a_duplicate_amount_key_is_named(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 4)
    lines = [archive_line(row) for row in rows]
    amount = rows[i]["event"]["data"]["amount"]
    # A reader that keeps the first key sees 999999.00; Python keeps the last, so the hash still matches.
    lines[i] = lines[i].replace(f'"amount":"{amount}"', f'"amount":"999999.00","amount":"{amount}"', 1)
    assert lines[i] != archive_line(rows[i])
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    result = run_audit(ArchiveSource(path), archive=True, trusted_keys=load_trusted_keys(keys))
    assert not result.findings.of("chain")  # the hash is computed after parsing: it matches
    [canonical] = result.findings.of("canonical")
    assert (canonical.topic, canonical.partition, canonical.offset, canonical.subject) == \
        (RENTALS, rows[i]["partition"], rows[i]["offset"], PARK)
    assert 'duplicate key "amount"' in canonical.message and canonical.message.startswith("RentReceived: not the "
                                                                                          "canonical encoding")


@pytest.mark.parametrize(("change", "named"), [
    (lambda line: line.replace('"seq":', '"seq": ', 1), "whitespace"),
    (lambda line: line.replace('"event":{"actor"', '"event":{"data":{},"actor"', 1), 'duplicate key "data"'),
    (lambda line: line.replace('"project_id":"binhai-park"', '"project_id":"\\u0062inhai-park"', 1), "escapes"),
], ids=["whitespace", "duplicate-data", "escape"])
def test_other_encodings_of_the_same_json_are_named(log: LogWriter, tmp_path: Path, change: Callable[[str], str],
                                                    named: str) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 2)
    lines = [archive_line(row) for row in rows]
    lines[i] = change(lines[i])
    assert lines[i] != archive_line(rows[i])
    path = tmp_path / "other.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    result = run_audit(ArchiveSource(path), archive=True)
    [canonical] = result.findings.of("canonical")
    assert canonical.offset == rows[i]["offset"] and named in canonical.message


# -- forged, missing and rotated checkpoints ----------------------------------------------------------------


def resign(rows: list[Row], i: int, key: Ed25519PrivateKey) -> None:
    """Sign checkpoint row ``i`` again with ``key`` (and re-seal the checkpoints' stream)."""
    data = rows[i]["event"]["data"]
    data["key_id"] = anchoring.key_id(key.public_key())
    data["signature"] = anchoring.sign(key, anchoring.checkpoint_payload(data))
    reseal(rows, CHECKPOINTS, data["topic"])


def test_a_checkpoint_signed_by_an_unknown_key_is_named(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = checkpoint_index(rows, RENTALS, 3)
    resign(rows, i, Ed25519PrivateKey.generate())
    result = audit(rows, tmp_path, keys)
    sealed_checks_pass(result)
    [forged] = result.findings.of("checkpoint")
    assert (forged.topic, forged.partition, forged.offset, forged.subject) == \
        (CHECKPOINTS, rows[i]["partition"], rows[i]["offset"], RENTALS)
    assert f"checkpoint 3 of {RENTALS} is signed by key {rows[i]['event']['data']['key_id']}" in forged.message
    assert "neither pinned for rentals" in forged.message
    assert not result.findings.of("anchored")  # the records are the signed ones


def test_a_checkpoint_signed_by_another_services_key_is_named(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = checkpoint_index(rows, RENTALS, 2)
    resign(rows, i, KEYS["ledger"])
    [forged] = audit(rows, tmp_path, keys).findings.of("checkpoint")
    assert forged.offset == rows[i]["offset"] and "signed with a key of ledger" in forged.message


def test_a_changed_checkpoint_does_not_verify(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = checkpoint_index(rows, RENTALS, 4)
    rows[i]["event"]["data"]["partitions"][1]["end_offset"] -= 1
    reseal(rows, CHECKPOINTS, RENTALS)
    [forged] = audit(rows, tmp_path, keys).findings.of("checkpoint")
    assert forged.offset == rows[i]["offset"] and "its signature does not verify" in forged.message


def recheckpoint(rows: list[Row], topic: str, key: Ed25519PrivateKey) -> None:
    """Recompute every checkpoint of ``topic`` from the (forged) records and sign it with ``key``: what a
    forger without the writer's key does to make the checkpoints agree with the records again."""
    moved: dict[int, dict[str, tuple[int, str]]] = {}
    ends: dict[int, int] = {}
    digests: dict[int, str] = {}
    for i, row in enumerate(rows):
        if row["topic"] == topic:
            moved.setdefault(row["partition"], {})[row["event"]["subject"]] = (row["event"]["seq"],
                                                                               row["event"]["hash"])
            ends[row["partition"]] = row["offset"] + 1
        elif row["topic"] == CHECKPOINTS and row["event"]["data"]["topic"] == topic:
            data = row["event"]["data"]
            for part in data["partitions"]:
                heads = [(s, q, h) for s, (q, h) in moved.pop(part["partition"], {}).items()]
                digests[part["partition"]] = anchoring.heads_digest(
                    digests.get(part["partition"], anchoring.GENESIS_DIGEST), heads)
                part.update(end_offset=ends.get(part["partition"], 0), heads=anchoring.head_rows(heads),
                            heads_digest=digests[part["partition"]])
            resign(rows, i, key)


def test_a_forger_who_signs_new_checkpoints_for_a_resealed_stream_is_found(log: LogWriter, keys: Path,
                                                                           tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 3)
    rows[i]["event"]["data"]["amount"] = format_yuan(parse_yuan(rows[i]["event"]["data"]["amount"]) + 100_00)
    reseal(rows, RENTALS, PARK)
    recheckpoint(rows, RENTALS, Ed25519PrivateKey.generate())
    with_keys = audit(rows, tmp_path, keys)
    sealed_checks_pass(with_keys)
    forged = with_keys.findings.of("checkpoint")
    assert len(forged) == with_keys.auditor.anchors.report()["checkpoints"][RENTALS]["count"]
    assert all(f.subject == RENTALS and "neither pinned for rentals" in f.message for f in forged)
    # Without pinned keys, the forged checkpoints agree with the forged records: only keys tell them apart.
    without = audit(rows, tmp_path, None)
    assert not without.findings.of("checkpoint") and not without.findings.of("anchored")
    assert "authenticity NOT checked" in without.auditor.anchors.authenticity()


def test_a_checkpoint_removed_from_the_middle_is_missing(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    rows = rows_copy(log)
    i = checkpoint_index(rows, RENTALS, 3)
    removed = rows.pop(i)
    reseal(rows, CHECKPOINTS, RENTALS)
    renumber(rows, CHECKPOINTS, removed["partition"])
    result = audit(rows, tmp_path, keys)
    sealed_checks_pass(result)
    [missing] = result.findings.of("checkpoint")
    assert missing.subject == RENTALS and missing.topic == CHECKPOINTS
    assert f"checkpoint missing: number 3 of {RENTALS} is not in the log (checkpoint 2 is followed by 4)" \
        in missing.message
    assert not result.findings.of("anchored")  # the checkpoint after the gap is compared on its own heads


def test_a_key_rotation_announced_in_a_signed_checkpoint_is_followed(keys: Path, tmp_path: Path) -> None:
    log = signed_log()
    successor = Ed25519PrivateKey.generate()
    log.rotate("rentals", successor)
    for n in range(20):
        log.rent(PARK, f"{100 + n}.00", "2026-01-20")
    log.checkpoint()
    rows = rows_copy(log)
    result = audit(rows, tmp_path, keys, log.write_receipts(tmp_path / "receipts.jsonl"))
    assert result.ok, result.findings.items  # only the first keys are pinned
    [followed] = result.auditor.anchors.followed
    assert followed["service"] == "rentals" and followed["key_id"] == anchoring.key_id(successor.public_key())
    after = [row for row in rows if row["topic"] == CHECKPOINTS and row["event"]["data"]["topic"] == RENTALS
             and row["event"]["data"]["key_id"] == followed["key_id"]]
    assert len(after) >= 2
    # The old key signs no checkpoint of the topic after the one that replaced it.
    i = next(n for n, row in enumerate(rows) if row is after[-1])
    resign(rows, i, KEYS["rentals"])
    [retired] = audit(rows, tmp_path, keys).findings.of("checkpoint")
    assert retired.offset == rows[i]["offset"] and "after a rotation only the new key signs" in retired.message


def test_a_checkpoint_listing_no_heads_is_checked_by_its_digest(keys: Path, tmp_path: Path) -> None:
    log = signed_log(checkpoint_max_heads=1)  # entries: several villages' streams move between checkpoints
    log.checkpoint()
    rows = rows_copy(log)
    listed_none = [row for row in rows if row["topic"] == CHECKPOINTS and row["event"]["data"]["topic"] ==
                   LEDGER_ENTRIES and any(p["heads"] is None for p in row["event"]["data"]["partitions"])]
    assert listed_none
    assert audit(rows, tmp_path, keys).ok
    entry = next(i for i, row in enumerate(rows) if row["event"]["type"] == "EntryPosted"
                 and row["event"]["data"]["origin"]["kind"] == "development_fund")
    subject = rows[entry]["event"]["subject"]
    rows[entry]["event"]["data"]["memo"] = "改过的摘要"
    reseal(rows, LEDGER_ENTRIES, subject)
    result = audit(rows, tmp_path, keys)
    sealed_checks_pass(result)
    anchored = result.findings.of("anchored")
    assert anchored and all(f.topic == LEDGER_ENTRIES for f in anchored)
    assert any(subject in f.message and "it lists no heads" in f.message for f in anchored)


# -- receipts --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("renumbered", [False, True], ids=["offset-gap-left", "offsets-renumbered"])
def test_a_receipt_for_a_removed_record_is_named(log: LogWriter, keys: Path, tmp_path: Path,
                                                 renumbered: bool) -> None:
    rows = rows_copy(log)
    i = index_of(rows, "RentReceived", 7)
    removed = rows.pop(i)
    reseal(rows, RENTALS, PARK)
    if renumbered:
        renumber(rows, RENTALS, removed["partition"])
    receipts = log.write_receipts(tmp_path / "receipts.jsonl")
    result = audit(rows, tmp_path, keys, receipts)
    findings = result.findings.of("receipt")
    place = (RENTALS, removed["partition"], removed["offset"])
    [first] = [f for f in findings if (f.topic, f.partition, f.offset) == place]
    assert first.subject == PARK and f"seq {removed['event']['seq']}" in first.message
    assert ("is different" if renumbered else "is missing from the log") in first.message
    # The stream was re-sealed: every later receipt of it names a record that differs now.
    later = [r for r in log.receipts if r["topic"] == RENTALS and r["seq"] > removed["event"]["seq"]]
    assert len(findings) == 1 + len(later)
    assert all("is different" in f.message or (renumbered and "is missing" in f.message)  # the last, shifted out
               for f in findings if f is not first)


def test_a_receipt_must_be_signed_by_the_writer_of_its_topic(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    receipts = [dict(r) for r in log.receipts[:3]]
    receipts[0]["seq"] += 1  # changed after it was signed
    forged = anchoring.receipt(topic=receipts[1]["topic"], partition=receipts[1]["partition"],
                               offset=receipts[1]["offset"], envelope=receipts[1], private=KEYS["dividends"])
    receipts[1] = forged
    path = tmp_path / "receipts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in receipts) + "not a receipt\n", encoding="utf-8")
    result = audit(rows_copy(log), tmp_path, keys, path)
    messages = [f.message for f in result.findings.of("receipt")]
    assert len(messages) == 4, messages
    assert any("its signature does not verify" in m for m in messages)
    assert any(f"signed with a key of dividends, not of {owner_of(forged['topic'])}" in m for m in messages)
    assert any("is different" in m for m in messages)  # the changed seq
    assert any("line 4" in m and "is not a JSON receipt" in m for m in messages)
    without = audit(rows_copy(log), tmp_path, None, path)
    assert len(without.findings.of("receipt")) == 2  # unsigned checks only: the changed seq, the bad line
    assert "the receipts' signatures were NOT checked" in " ".join(without.auditor.anchors.notes)


# -- stopping early, keys, the command ---------------------------------------------------------------------


def test_a_replay_told_to_stop_early_is_not_a_cut(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    result = audit(rows_copy(log), tmp_path, keys, offsets=parse_offsets(f"{RENTALS}:1:20"))
    assert not result.findings.of("anchored") and not result.findings.of("checkpoint")
    assert any("told to stop before" in note for note in result.auditor.anchors.notes)


def test_the_pinned_keys_are_read_by_file_name_and_checked(tmp_path: Path) -> None:
    publics = {s: k.public_key() for s, k in KEYS.items()}
    retired = Ed25519PrivateKey.generate().public_key()
    pinned = load_trusted_keys(write_public_keys(tmp_path / "k", publics, [("rentals", retired, "retired")]))
    assert set(pinned.of("rentals")) == {anchoring.key_id(publics["rentals"]), anchoring.key_id(retired)}
    assert {k.status for k in pinned.keys} == {"current", "retired"}
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "ledger.pem").write_bytes(anchoring.public_key_pem(publics["ledger"]))
    assert set(load_trusted_keys(bare).of("ledger")) == {anchoring.key_id(publics["ledger"])}  # no keys.json
    (bare / "auditor.pem").write_bytes(anchoring.public_key_pem(publics["ledger"]))
    with pytest.raises(KeyDirError, match=r"cannot tell whose key auditor\.pem is"):
        load_trusted_keys(bare)
    (bare / "auditor.pem").unlink()
    (bare / "rentals.pem").write_bytes(anchoring.public_key_pem(publics["ledger"]))
    with pytest.raises(KeyDirError, match="pinned for both"):
        load_trusted_keys(bare)
    listing = tmp_path / "k" / "keys.json"
    listing.write_text(listing.read_text().replace('"ledger.pem"', '"rentals.pem"', 1))
    with pytest.raises(KeyDirError, match=r"keys\.json"):
        load_trusted_keys(tmp_path / "k")


def test_the_command_says_whether_authenticity_was_checked(log: LogWriter, keys: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    archive = write(rows_copy(log), tmp_path / "a.jsonl")
    receipts = log.write_receipts(tmp_path / "r.jsonl")
    plain = runner.invoke(audit_command, ["--archive", str(archive)])
    assert plain.exit_code == 0, plain.output
    assert "authenticity NOT checked: no keys pinned" in " ".join(plain.output.split())
    report = json.loads(runner.invoke(audit_command, ["--archive", str(archive), "--json"]).output)
    assert report["anchoring"]["authenticity_checked"] is False
    assert report["anchoring"]["authenticity"].startswith("authenticity NOT checked")
    checked = runner.invoke(audit_command, ["--archive", str(archive), "--trusted-keys", str(keys),
                                            "--receipts", str(receipts), "--json"])
    assert checked.exit_code == 0, checked.output
    anchoring_report = json.loads(checked.output)["anchoring"]
    assert anchoring_report["authenticity_checked"] is True and anchoring_report["receipts"]["found"] > 100
    assert {"checkpoint", "anchored", "receipt", "canonical"} <= set(json.loads(checked.output)["checks"])
    rows = rows_copy(log)
    resign(rows, checkpoint_index(rows, RENTALS, 2), Ed25519PrivateKey.generate())
    forged = runner.invoke(audit_command, ["--archive", str(write(rows, tmp_path / "f.jsonl")), "--trusted-keys",
                                           str(keys), "--json"])
    assert forged.exit_code == 1 and json.loads(forged.output)["checks"]["checkpoint"] == 1
    missing = runner.invoke(audit_command, ["--archive", str(archive), "--trusted-keys", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a directory" in missing.output


def test_a_rotation_announced_on_another_topic_retires_the_old_key_once_a_topic_moved_on(keys: Path,
                                                                                       tmp_path: Path) -> None:
    """Several instances share the ledger's key (docs/scaling.md): one announces the rotation in the checkpoint
    of the topic it signs (entries), the other just switches for its topic (investments). The old key then signs
    no later checkpoint of investments either, though investments' own checkpoints never announced anything."""
    log = signed_log()
    log.register_project("rot-park", "滨海产业园")
    log.checkpoint()
    successor = Ed25519PrivateKey.generate()
    log.rotate("ledger", successor)
    for round_ in range(2):  # the announcement (entries first), then checkpoints signed with the new key only
        log.register_project(f"rot-park-{round_}", "滨海产业园")
        log.post_entry("jinqing-lianmeng", "2026-02-01", [("102", "debit", "1.00"), ("504", "credit", "1.00")],
                       f"r{round_}")
        log.checkpoint(LEDGER_ENTRIES, LEDGER_INVESTMENTS)
    rows = rows_copy(log)
    new = anchoring.key_id(successor.public_key())

    def checkpoints_of(topic: str) -> list[int]:
        return [i for i, row in enumerate(rows) if row["topic"] == CHECKPOINTS
                and row["event"]["data"]["topic"] == topic]

    investments = [rows[i]["event"]["data"] for i in checkpoints_of(LEDGER_INVESTMENTS)]
    assert not any(c["next_key"] for c in investments) and investments[-1]["key_id"] == new
    assert any(rows[i]["event"]["data"]["next_key"] for i in checkpoints_of(LEDGER_ENTRIES))
    result = audit(rows, tmp_path, keys)
    assert result.ok, result.findings.items  # only the first key pinned: followed through entries' announcement
    # An instance that went on signing investments with the old key, after investments moved to the new one:
    i = checkpoints_of(LEDGER_INVESTMENTS)[-1]
    resign(rows, i, KEYS["ledger"])
    [named] = audit(rows, tmp_path, keys).findings.of("checkpoint")
    assert named.subject == LEDGER_INVESTMENTS and "after a rotation only the new key signs" in named.message
    assert new in named.message and anchoring.key_id(KEYS["ledger"].public_key()) in named.message
    # Before investments moved on (its first checkpoint after the rotation, signed with the old key), it was valid.
    rows = rows_copy(log)
    first_after = next(n for n in checkpoints_of(LEDGER_INVESTMENTS) if rows[n]["event"]["data"]["key_id"] == new)
    resign(rows, first_after, KEYS["ledger"])
    assert audit(rows, tmp_path, keys).ok
