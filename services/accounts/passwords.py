"""Passwords: argon2id hashes (argon2-cffi), sealed before they go into the log, and one-time codes.

A password is never stored, logged or sent on: only its argon2id hash (the PHC string, salted, with
its parameters), and that hash is *sealed* (AES-256-GCM, the account's name as associated data)
with the accounts key before it is written to ``baotuan.accounts.v1``, so the log, its archives
and the other services' projections hold nothing an attacker could run a dictionary against.

The accounts key is ``<data dir>/keys/accounts.key`` (32 random bytes, mode 600, made on first
start), or the file ``BAOTUAN_ACCOUNTS_KEY_FILE`` names (production: the same file for every
instance of the ledger). Lost, the sealed hashes cannot be opened: every password must then be
reset (``baotuan accounts reset-password NAME``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

#: Characters of a one-time code: no 0/O, 1/l/I, so it can be read out over the phone.
CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
MIN_LENGTH = 8
MAX_LENGTH = 200


class SealError(ValueError):
    """A sealed hash that this key cannot open (another key, or altered)."""


def key_file(data_dir: Path) -> Path:
    configured = os.environ.get("BAOTUAN_ACCOUNTS_KEY_FILE")
    return Path(configured) if configured else data_dir / "keys" / "accounts.key"


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte accounts key at ``path``; made (mode 600, never overwritten) when there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: read theirs
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
                out.flush()
                os.fsync(out.fileno())
    key = base64.b64decode(path.read_bytes().strip(), validate=True)
    if len(key) != 32:
        raise ValueError(f"{path} does not hold a 256-bit key (base64)")
    return key


class Passwords:
    """Hash, seal, open and verify passwords with one accounts key."""

    def __init__(self, key: bytes, hasher: PasswordHasher | None = None) -> None:
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:16]
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's low-memory profile
        self._dummy: str | None = None

    def seal(self, name: str, password: str) -> str:
        """The sealed argon2id hash of ``password`` for the account ``name`` (what goes into the log)."""
        phc = self.hasher.hash(password)
        nonce = os.urandom(12)
        box = self._aead.encrypt(nonce, phc.encode("ascii"), name.encode("utf-8"))
        return f"sealed-v1:{self.key_id}:{base64.urlsafe_b64encode(nonce + box).decode('ascii').rstrip('=')}"

    def open(self, name: str, sealed: str) -> str:
        """The argon2id hash (PHC string) inside ``sealed``; SealError if this key cannot open it."""
        try:
            tag, kid, body = sealed.split(":", 2)
        except ValueError:
            raise SealError("not a sealed password hash") from None
        if tag != "sealed-v1" or kid != self.key_id:
            raise SealError(f"sealed with key {kid}, not with this accounts key ({self.key_id})")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], name.encode("utf-8")).decode("ascii")
        except InvalidTag:
            raise SealError("the sealed hash does not open with this key (altered, or another account's)") from None

    def verify(self, name: str, sealed: str | None, password: str) -> bool:
        """Whether ``password`` is the account's. Takes about as long when there is no such account
        (``sealed`` None) or the hash cannot be opened, so timing tells no account names."""
        phc = None
        if sealed is not None:
            try:
                phc = self.open(name, sealed)
            except SealError as exc:
                log.error("the password hash of account %r cannot be opened (%s): reset its password", name, exc)
        real = phc is not None
        if phc is None:
            if self._dummy is None:
                self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
            phc = self._dummy
        try:
            return self.hasher.verify(phc, password) and real
        except (VerificationError, InvalidHashError):
            return False


def one_time_code() -> str:
    """A one-time password to hand a person (they must change it at their first sign-in): 3 × 4 characters."""
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    return f"{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def password_problem(password: str, *, name: str) -> str | None:
    """Why ``password`` may not be chosen, or None."""
    if len(password) < MIN_LENGTH:
        return f"a password has at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"a password has at most {MAX_LENGTH} characters"
    if password.strip().lower() == name.lower():
        return "a password must not be the account's name"
    if len(set(password)) < 3:
        return "a password must not repeat one or two characters"
    return None
