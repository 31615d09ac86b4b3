"""A service's Ed25519 signing key, on disk (DESIGN §4, "Anchoring").

Each writer signs its checkpoints and receipts with a key of its own:

- by default ``<data dir>/keys/<service>.pem``, created on first start (PKCS#8 PEM, mode 600);
- in production from ``BAOTUAN_SIGNING_KEY_FILE`` (a path; the file is never created there).

Rotation: ``baotuan keys rotate SERVICE`` puts a new key beside the current one
(``<service>.next.pem``). The service announces it in its next checkpoint, signed with the
current key; once that checkpoint is in the log it moves the current key to
``retired/<service>-<key id>.pem`` and signs with the new one from then on. An auditor who
pinned the first key follows the chain of announcements (docs/audit.md).

Several instances of a service (docs/scaling.md) share one key file. Whichever instance announces
the next key moves the files (under a lock on the keys directory, so two announcing at once move
them once); the others notice before they sign again, from the key file that changed
(:meth:`SigningKey.refresh`) or from the announcing checkpoint they folded, and switch too
(services/runtime/service.py, ``Service.signing_key``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.contracts.anchoring import key_id
from services.contracts.topics import WRITERS

SERVICES = WRITERS  # every writer signs the checkpoints of its own topics

log = logging.getLogger(__name__)


class KeyFileError(RuntimeError):
    """A signing key that cannot be read or written."""


def default_key_path(data_dir: Path, service: str) -> Path:
    return data_dir / "keys" / f"{service}.pem"


def next_key_path(current: Path) -> Path:
    return current.with_name(current.name.removesuffix(".pem") + ".next.pem")


def retired_dir(current: Path) -> Path:
    return current.parent / "retired"


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a new private key file, mode 600 from its creation; never overwrite one.

    The key is written and synced under a name of its own first, then linked to ``path`` (which fails if
    ``path`` exists): a process that finds ``path`` finds the whole key. Two instances of a service starting
    together both create their key this way; the second one's link fails and it reads the first one's key
    (written in place, the second could read it half written)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(draft, path)
        except FileExistsError as exc:
            raise KeyFileError(f"{path} exists already; a signing key is never overwritten") from exc
    finally:
        draft.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the new name survives a crash of the machine
    finally:
        os.close(directory)


def read_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


@dataclass
class SigningKey:
    """The key a service signs with now (and the file it lives in)."""

    path: Path
    private: Ed25519PrivateKey
    #: What the key file was when ``private`` was read from it (inode, modification time, size).
    stamp: tuple[int, int, int] | None = field(default=None, compare=False)

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    @classmethod
    def load(cls, path: Path, *, create: bool) -> SigningKey:
        """The key at ``path``; created (mode 600) when missing and ``create``."""
        if not path.exists():
            if not create:
                raise KeyFileError(f"no signing key at {path}")
            with contextlib.suppress(KeyFileError):  # another process may have created it meanwhile
                _write_private(path, Ed25519PrivateKey.generate())
        stamp = _stamp(path)
        return cls(path, read_private(path), stamp)

    def refresh(self) -> bool:
        """Read the key file again if it changed since it was read (another instance completed a rotation).
        Returns whether the key changed."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self.stamp:
            return False
        before = self.key_id
        self.private, self.stamp = read_private(self.path), stamp
        return self.key_id != before

    def pending_rotation(self) -> Ed25519PrivateKey | None:
        """The next key, when one waits to be announced (``baotuan keys rotate``)."""
        upcoming = next_key_path(self.path)
        return read_private(upcoming) if upcoming.exists() else None

    def complete_rotation(self, announced: str) -> None:
        """After a checkpoint announcing ``announced`` is in the log: retire the current key, sign with the next.

        Another instance sharing the key file may have done it already (then the file holds ``announced``
        and is only read again); the files move under a lock on their directory, so they move once."""
        upcoming = next_key_path(self.path)
        with _directory_lock(self.path.parent):
            self.refresh()
            if self.key_id == announced:
                return
            if not upcoming.exists():
                raise KeyFileError(f"the announced key {announced} is neither in {self.path} nor in {upcoming}")
            nxt = read_private(upcoming)
            if key_id(nxt.public_key()) != announced:
                raise KeyFileError(f"{upcoming} is not the announced key {announced}")
            on_disk = read_private(self.path)  # the file's own key goes to retired/, whatever this process held
            retired = retired_dir(self.path)
            try:
                retired.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.replace(self.path, retired / f"{self.path.name.removesuffix('.pem')}-"
                                                f"{key_id(on_disk.public_key())}.pem")
                os.replace(upcoming, self.path)
            except OSError as exc:
                # A key directory this process cannot change (a Kubernetes Secret is mounted read-only): the
                # announced key signs from now on all the same; the operator puts it in place of the old one.
                log.warning("signing with the announced key %s, but the key files could not be moved (%s): "
                            "replace %s with %s", announced, exc, self.path, upcoming)
                self.private = nxt
                return
            self.private, self.stamp = nxt, _stamp(self.path)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock between the processes sharing ``directory`` (flock on the directory itself)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def service_key(service: str, data_dir: Path, configured: Path | None) -> SigningKey:
    """The signing key of ``service``: ``configured`` (must exist) or the one under ``data_dir`` (made if new)."""
    if configured is not None:
        return SigningKey.load(configured, create=False)
    return SigningKey.load(default_key_path(data_dir, service), create=True)


def rotate(path: Path) -> Ed25519PublicKey:
    """Put a new key beside the current one; the service announces it in its next checkpoint."""
    if not path.exists():
        raise KeyFileError(f"no signing key at {path} to rotate (has the service ever started?)")
    upcoming = next_key_path(path)
    key = Ed25519PrivateKey.generate()
    _write_private(upcoming, key)
    return key.public_key()


def known_public_keys(path: Path) -> Iterator[tuple[str, Ed25519PublicKey]]:
    """(file stem, public key) of the current key, the retired ones and a pending next one."""
    candidates = [path, *sorted(retired_dir(path).glob(f"{path.name.removesuffix('.pem')}-*.pem")),
                  next_key_path(path)]
    for candidate in candidates:
        if candidate.exists():
            yield candidate.name.removesuffix(".pem"), read_private(candidate).public_key()


__all__ = ["SERVICES", "KeyFileError", "SigningKey", "default_key_path", "known_public_keys", "next_key_path",
           "read_private", "rotate", "service_key"]
