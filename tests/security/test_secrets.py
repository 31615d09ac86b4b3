"""No secret in the repository: no bearer token, private key, token file or password file is in git.

Runs over every file git would commit (tracked, plus untracked files that are not ignored),
so a secret is caught before it is committed. The services' and the broker's logs are
checked for tokens and Kafka passwords by tests/faults (test_broker_crash, test_secured_services).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from services.runtime.auth import new_token
from services.runtime.config import PROJECT_ROOT

PATTERNS = {
    "bearer token": re.compile(r"\bbt_[A-Za-z0-9_-]{43}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "SCRAM/JAAS password": re.compile(r'(?:Scram|Plain)LoginModule required[^;\n]*password="(?!\{)[^"]{8,}"'),
}
FORBIDDEN_FILES = re.compile(r"(^|/)(tokens\.json|admin\.secret|.*\.pem|.*\.key|\.env)$")


def committable_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                                cwd=PROJECT_ROOT, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [PROJECT_ROOT / name for name in listed.decode().split("\0") if name]


def test_the_scanner_recognises_a_real_token() -> None:
    assert PATTERNS["bearer token"].search(f"Authorization: Bearer {new_token()}")


def test_no_secret_is_in_any_file_git_would_commit() -> None:
    found = []
    for path in committable_files():
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        if FORBIDDEN_FILES.search(relative):
            found.append(f"{relative}: a secret-bearing file")
            continue
        try:
            if path.stat().st_size > 5_000_000:
                continue
            text = path.read_text(encoding="utf-8", errors="ignore")
        except OSError:
            continue
        found += [f"{relative}: {kind}" for kind, pattern in PATTERNS.items() if pattern.search(text)]
    assert found == []
