"""Anchoring (DESIGN §4): signed checkpoints over the hash chains, and signed receipts of writes.

A hash chain alone does not stop a forger who holds the log and re-seals it. So each writer
signs, with its Ed25519 key, what the log held at some instants:

- A **checkpoint** (a ``ChainCheckpoint`` event on ``baotuan.checkpoints.v1``, subject = the topic
  it covers) gives, for each partition of the topic, the end offset and the heads of the streams
  (subject, seq, hash) that moved since the previous checkpoint of that topic, plus a digest that
  chains those heads onto the previous checkpoint's digest of the partition. So checkpoint ``k``
  commits to every head of the partition at its end offset, and to every record before it: a
  record changed, dropped, reordered or re-sealed changes the head of its stream.
- A **receipt** answers each 2xx write: where its event sits (topic, partition, offset) and what it
  is (subject, seq, hash), signed. A village that keeps its receipts can prove a record was there.

Everything signed is domain-separated canonical JSON (the same canonical form as the envelope);
the signature is Ed25519 from ``cryptography``, base64 (standard alphabet, padded). A key is named
by its key id, the first 16 hex digits of the SHA-256 of its raw 32-byte public key.

Pure: no I/O, no clocks. The services sign (``services.runtime.signing`` holds the private keys);
the audit verifies with the public keys an auditor pinned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.contracts.codec import canonical
from services.contracts.envelope import GENESIS_HASH

CHECKPOINT_DOMAIN = b"baotuan.checkpoint.v1\n"
RECEIPT_DOMAIN = b"baotuan.receipt.v1\n"
#: The digest a partition's heads chain starts from (before its first checkpoint).
GENESIS_DIGEST = GENESIS_HASH
#: The fields of a receipt, in the order the docs show them.
RECEIPT_FIELDS = ("topic", "partition", "offset", "subject", "seq", "hash", "key_id", "signature")

Head = tuple[str, int, str]  # (subject, seq, hash)


class AnchorError(ValueError):
    """A key, checkpoint or receipt that cannot be read."""


# -- keys ------------------------------------------------------------------------------------------------


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The name of a public key: the first 16 hex digits of SHA-256 of its raw 32 bytes."""
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_key_text(key: Ed25519PublicKey) -> str:
    """The raw public key in base64 (how a checkpoint announces the next key)."""
    return base64.b64encode(raw_public(key)).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise AnchorError(f"not an Ed25519 public key in base64: {exc}") from exc


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key_pem(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise AnchorError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AnchorError(f"not an Ed25519 public key but {type(key).__name__}")
    return key


def sign(private: Ed25519PrivateKey, payload: bytes) -> str:
    return base64.b64encode(private.sign(payload)).decode("ascii")


def verify(public: Ed25519PublicKey, payload: bytes, signature: object) -> bool:
    """Whether ``signature`` (base64) is ``public``'s signature of ``payload``."""
    if not isinstance(signature, str):
        return False
    try:
        public.verify(base64.b64decode(signature.encode("ascii"), validate=True), payload)
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError):
        return False
    return True


# -- checkpoints -----------------------------------------------------------------------------------------


def heads_digest(previous: str, heads: Iterable[Head]) -> str:
    """The partition's digest after a checkpoint: SHA-256 of the previous digest (hex), a newline, and
    the canonical JSON of the moved heads ``[[subject, seq, hash], …]`` sorted by subject."""
    rows = sorted([str(subject), int(seq), str(digest)] for subject, seq, digest in heads)
    return hashlib.sha256(previous.encode("ascii") + b"\n" + canonical({"heads": rows})).hexdigest()


def checkpoint_payload(data: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature is over: its payload without ``signature``, canonical."""
    return CHECKPOINT_DOMAIN + canonical({k: v for k, v in data.items() if k != "signature"})


def checkpoint_data(*, topic: str, number: int, writer: str, partitions: Sequence[Mapping[str, Any]],
                    private: Ed25519PrivateKey, next_key: Ed25519PublicKey | None = None) -> dict[str, Any]:
    """A signed ``ChainCheckpoint`` payload. ``partitions``: ``{partition, end_offset, heads, heads_digest}``
    with ``heads`` as ``[{subject, seq, hash}]`` sorted by subject. ``next_key`` announces a rotation."""
    data: dict[str, Any] = {
        "topic": topic, "number": number, "writer": writer,
        "partitions": [dict(p) for p in sorted(partitions, key=lambda p: int(p["partition"]))],
        "key_id": key_id(private.public_key()),
        "next_key": None if next_key is None else {"key_id": key_id(next_key), "public_key": public_key_text(next_key)},
    }
    data["signature"] = sign(private, checkpoint_payload(data))
    return data


def head_rows(heads: Iterable[Head]) -> list[dict[str, Any]]:
    """Heads as the checkpoint carries them: ``[{subject, seq, hash}]`` sorted by subject."""
    return [{"subject": s, "seq": q, "hash": h} for s, q, h in sorted(heads)]


# -- receipts --------------------------------------------------------------------------------------------


def receipt_payload(receipt: Mapping[str, Any]) -> bytes:
    """The bytes a receipt's signature is over: its fields but ``signature``, canonical."""
    return RECEIPT_DOMAIN + canonical({k: receipt[k] for k in RECEIPT_FIELDS if k != "signature"})


def receipt(*, topic: str, partition: int, offset: int, envelope: Mapping[str, Any],
            private: Ed25519PrivateKey) -> dict[str, Any]:
    """The signed receipt of one published event."""
    out: dict[str, Any] = {"topic": topic, "partition": partition, "offset": offset,
                           "subject": envelope["subject"], "seq": envelope["seq"], "hash": envelope["hash"],
                           "key_id": key_id(private.public_key())}
    out["signature"] = sign(private, receipt_payload({**out, "signature": ""}))
    return {name: out[name] for name in RECEIPT_FIELDS}


__all__ = ["CHECKPOINT_DOMAIN", "GENESIS_DIGEST", "RECEIPT_DOMAIN", "RECEIPT_FIELDS", "AnchorError", "Head",
           "checkpoint_data", "checkpoint_payload", "head_rows", "heads_digest", "key_id", "load_public_key_pem",
           "public_key_from_text", "public_key_pem", "public_key_text", "raw_public", "receipt", "receipt_payload",
           "sign", "verify"]
