"""How long sessions live and how failed sign-ins are slowed, then locked (docs/security.md).

Failed sign-ins are counted per account (from the log: ``SignInFailed`` events, so every instance
of the ledger counts the same and a restart forgets nothing) and per address (in the process's
memory, unknown account names included). The first few failures cost nothing; then each further
attempt must wait twice as long as the one before (1 s, 2 s, 4 s … at most a minute); at the lock
threshold the account (or the address) is locked for ``lock_s``. An attempt that comes too early is
refused (429, ``Retry-After``) without the password even being looked at. A successful sign-in
and a new password clear an account's count; failures older than the window no longer count.

Every figure can be set in the environment (``BAOTUAN_SESSION_IDLE_S``, ``BAOTUAN_SESSION_MAX_S``,
``BAOTUAN_SIGNIN_SLOW_AFTER``, ``BAOTUAN_SIGNIN_LOCK_AFTER``, ``BAOTUAN_SIGNIN_LOCK_S``,
``BAOTUAN_SIGNIN_ADDRESS_SLOW_AFTER``, ``BAOTUAN_SIGNIN_ADDRESS_LOCK_AFTER``, ``BAOTUAN_TOKEN_MAX_DAYS``).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Backoff:
    """Failures allowed at full speed, failures that lock, and for how long."""

    slow_after: int
    lock_after: int
    lock_s: float = 900.0
    max_delay_s: float = 60.0
    base_delay_s: float = 1.0

    def delay(self, failures: int) -> float:
        """Seconds the next attempt must wait after the last of ``failures`` recent failures."""
        if failures < self.slow_after:
            return 0.0
        if failures >= self.lock_after:
            return self.lock_s
        return float(min(self.base_delay_s * 2 ** (failures - self.slow_after), self.max_delay_s))

    def wait(self, failures: Iterable[datetime], now: datetime) -> float:
        """Seconds from ``now`` until the next attempt may be tried, given the recent failures' times."""
        times = sorted(failures)
        if not times:
            return 0.0
        ready = times[-1] + timedelta(seconds=self.delay(len(times)))
        return max(0.0, (ready - now).total_seconds())

    def locked(self, failures: int) -> bool:
        return failures >= self.lock_after


def _env(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class SignInPolicy:
    account: Backoff = field(default_factory=lambda: Backoff(slow_after=3, lock_after=10))
    address: Backoff = field(default_factory=lambda: Backoff(slow_after=10, lock_after=30))
    #: Failures older than this no longer count (at least as long as a lock).
    window_s: float = 900.0
    #: A session ends after this long without a request (the web page keeps the clock) …
    session_idle_s: int = 30 * 60
    #: … and this long after sign-in, whatever happens.
    session_max_s: int = 12 * 3600
    #: An account's API token lives at most this many days.
    token_max_days: int = 366

    @property
    def counted_s(self) -> float:
        return max(self.window_s, self.account.lock_s, self.address.lock_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SignInPolicy:
        env = os.environ if environ is None else environ
        lock_s = _env(env, "BAOTUAN_SIGNIN_LOCK_S", 900)
        return cls(
            account=Backoff(int(_env(env, "BAOTUAN_SIGNIN_SLOW_AFTER", 3)),
                            int(_env(env, "BAOTUAN_SIGNIN_LOCK_AFTER", 10)), lock_s),
            address=Backoff(int(_env(env, "BAOTUAN_SIGNIN_ADDRESS_SLOW_AFTER", 10)),
                            int(_env(env, "BAOTUAN_SIGNIN_ADDRESS_LOCK_AFTER", 30)), lock_s),
            window_s=_env(env, "BAOTUAN_SIGNIN_WINDOW_S", 900),
            session_idle_s=int(_env(env, "BAOTUAN_SESSION_IDLE_S", 30 * 60)),
            session_max_s=int(_env(env, "BAOTUAN_SESSION_MAX_S", 12 * 3600)),
            token_max_days=int(_env(env, "BAOTUAN_TOKEN_MAX_DAYS", 366)),
        )


class AddressThrottle:
    """Recent failed sign-ins per address, in this process (unknown account names count too)."""

    def __init__(self, policy: SignInPolicy, limit: int = 100_000) -> None:
        self.policy = policy
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        kept = self._failures.get(address)
        if kept is None:
            return deque()
        horizon = now - timedelta(seconds=self.policy.counted_s)
        while kept and kept[0] < horizon:
            kept.popleft()
        if not kept:
            del self._failures[address]
        return kept

    def wait(self, address: str, now: datetime) -> float:
        with self._lock:
            return self.policy.address.wait(self._recent(address, now), now)

    def failed(self, address: str, now: datetime) -> None:
        with self._lock:
            if len(self._failures) >= self._limit:  # bounded memory: forget the quietest addresses first
                for stale in sorted(self._failures, key=lambda a: self._failures[a][-1])[: self._limit // 10]:
                    del self._failures[stale]
            self._recent(address, now)
            self._failures.setdefault(address, deque()).append(now)
