"""Passwords: argon2id hashes sealed with the accounts key; never the password, never an openable hash in the log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from services.accounts.passwords import (
    CODE_ALPHABET,
    Passwords,
    SealError,
    load_or_create_key,
    one_time_code,
    password_problem,
)
from services.contracts.events import SEALED_RE

# Cheap parameters for the tests that are not about the parameters themselves.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def passwords(tmp_path: Path) -> Passwords:
    return Passwords(load_or_create_key(tmp_path / "keys" / "accounts.key"), FAST)


def test_the_hash_is_argon2id_with_rfc_9106s_parameters_and_sealed_so_it_cannot_be_read(tmp_path: Path) -> None:
    real = Passwords(load_or_create_key(tmp_path / "accounts.key"))
    sealed = real.seal("lianmeng-kuaiji", "correct horse battery")
    assert SEALED_RE.fullmatch(sealed)
    assert "argon2" not in sealed and "correct horse" not in sealed
    phc = real.open("lianmeng-kuaiji", sealed)
    assert phc.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert real.verify("lianmeng-kuaiji", sealed, "correct horse battery")


def test_verify_takes_the_right_password_only(passwords: Passwords) -> None:
    sealed = passwords.seal("wang", "lianmeng-2026")
    assert passwords.verify("wang", sealed, "lianmeng-2026")
    for wrong in ("lianmeng-2025", "Lianmeng-2026", "lianmeng-2026 ", "", "lianmeng-2026\x00"):
        assert not passwords.verify("wang", sealed, wrong), wrong


def test_the_same_password_is_sealed_differently_every_time(passwords: Passwords) -> None:
    first, second = passwords.seal("wang", "lianmeng-2026"), passwords.seal("wang", "lianmeng-2026")
    assert first != second  # a salt in the hash and a nonce in the seal
    assert passwords.open("wang", first) != passwords.open("wang", second)


def test_a_sealed_hash_opens_only_with_its_key_and_for_its_account(passwords: Passwords, tmp_path: Path) -> None:
    sealed = passwords.seal("wang", "lianmeng-2026")
    with pytest.raises(SealError, match=r"another account's|altered"):
        passwords.open("li", sealed)  # copied onto another account
    other = Passwords(load_or_create_key(tmp_path / "other.key"), FAST)
    with pytest.raises(SealError, match="not with this accounts key"):
        other.open("wang", sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealError):
        passwords.open("wang", tampered)
    # verify never raises: a hash it cannot open is a wrong password
    assert not passwords.verify("li", sealed, "lianmeng-2026")
    assert not other.verify("wang", sealed, "lianmeng-2026")


def test_an_unknown_account_is_checked_against_a_dummy_hash_and_fails(passwords: Passwords) -> None:
    assert not passwords.verify("nobody", None, "anything at all")
    assert passwords._dummy is not None and passwords._dummy.startswith("$argon2id$")


def test_the_key_file_is_made_once_mode_600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "accounts.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert path.stat().st_mode & 0o077 == 0
    assert load_or_create_key(path) == key
    path.write_text("c2hvcnQ=\n")  # "short"
    with pytest.raises(ValueError, match="256-bit"):
        load_or_create_key(path)


def test_one_time_codes_are_readable_over_the_phone_and_unique() -> None:
    codes = {one_time_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(rf"[{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}}-[{CODE_ALPHABET}]{{4}}", code)
        assert password_problem(code, name="wang") is None  # a one-time password is a valid password


@pytest.mark.parametrize(("password", "problem"), [
    ("short", "at least 8"),
    ("x" * 201, "at most 200"),
    ("lianmeng-kuaiji", "name"),
    ("LIANMENG-KUAIJI", "name"),
    ("abababab", "repeat"),
    ("aaaaaaaa", "repeat"),
])
def test_a_weak_password_is_refused_with_the_reason(password: str, problem: str) -> None:
    found = password_problem(password, name="lianmeng-kuaiji")
    assert found is not None and problem in found


def test_a_good_password_passes() -> None:
    assert password_problem("联盟村2026年", name="lianmeng-kuaiji") is None
    assert password_problem("lianmeng-2026", name="lianmeng-kuaiji") is None
