"""Failed sign-ins are slowed, then locked, per account (from the log) and per address (in memory)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.accounts.policy import AddressThrottle, Backoff, SignInPolicy

T0 = datetime(2026, 3, 31, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_first_failures_cost_nothing_then_each_waits_twice_as_long_then_a_lock() -> None:
    backoff = Backoff(slow_after=3, lock_after=10, lock_s=900, max_delay_s=60)
    assert [backoff.delay(n) for n in range(12)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 900, 900]
    assert not backoff.locked(9) and backoff.locked(10)


def test_the_wait_counts_from_the_last_failure() -> None:
    backoff = Backoff(slow_after=2, lock_after=4, lock_s=600)
    assert backoff.wait([], at(0)) == 0
    assert backoff.wait([at(0)], at(0)) == 0
    two = [at(0), at(1)]
    assert backoff.wait(two, at(1)) == 1  # 1 s after the second failure
    assert backoff.wait(two, at(1.5)) == 0.5
    assert backoff.wait(two, at(2)) == 0
    three = [at(0), at(1), at(5)]
    assert backoff.wait(three, at(5)) == 2
    locked = [*three, at(8)]
    assert backoff.wait(locked, at(8)) == 600  # locked, even for the right password
    assert backoff.wait(locked, at(608)) == 0
    assert backoff.wait(list(reversed(locked)), at(8)) == 600  # the order they are read in does not matter


def test_a_base_delay_scales_the_slowing_but_not_the_lock() -> None:
    backoff = Backoff(slow_after=2, lock_after=4, lock_s=600, base_delay_s=5)
    assert [backoff.delay(n) for n in range(5)] == [0, 0, 5, 10, 600]


def test_an_address_is_slowed_then_locked_and_forgiven_after_the_window() -> None:
    policy = SignInPolicy(account=Backoff(slow_after=3, lock_after=10, lock_s=300),
                          address=Backoff(slow_after=2, lock_after=4, lock_s=300), window_s=300)
    throttle = AddressThrottle(policy)
    assert throttle.wait("10.0.0.7", at(0)) == 0
    throttle.failed("10.0.0.7", at(0))
    throttle.failed("10.0.0.7", at(1))
    assert throttle.wait("10.0.0.7", at(1)) == 1
    assert throttle.wait("10.0.0.8", at(1)) == 0  # another address is not slowed
    throttle.failed("10.0.0.7", at(3))
    throttle.failed("10.0.0.7", at(6))
    assert throttle.wait("10.0.0.7", at(6)) == 300
    # Failures older than the counted span (the window, at least the lock) no longer count.
    assert throttle.wait("10.0.0.7", at(307)) == 0
    assert "10.0.0.7" not in throttle._failures


def test_the_throttle_forgets_the_quietest_addresses_when_it_is_full() -> None:
    throttle = AddressThrottle(SignInPolicy(), limit=10)
    for n in range(10):
        throttle.failed(f"10.0.0.{n}", at(n))
    throttle.failed("10.0.1.1", at(20))
    assert len(throttle._failures) <= 10
    assert "10.0.0.0" not in throttle._failures and "10.0.1.1" in throttle._failures


def test_the_policy_comes_from_the_environment_with_the_documented_defaults() -> None:
    default = SignInPolicy.from_env({})
    assert default == SignInPolicy()
    assert (default.account.slow_after, default.account.lock_after, default.account.lock_s) == (3, 10, 900)
    assert (default.address.slow_after, default.address.lock_after) == (10, 30)
    assert (default.session_idle_s, default.session_max_s, default.token_max_days) == (1800, 43200, 366)
    custom = SignInPolicy.from_env({"BAOTUAN_SIGNIN_LOCK_AFTER": "5", "BAOTUAN_SIGNIN_LOCK_S": "60",
                                    "BAOTUAN_SESSION_IDLE_S": "600"})
    assert (custom.account.lock_after, custom.account.lock_s, custom.address.lock_s) == (5, 60, 60)
    assert custom.session_idle_s == 600


@pytest.mark.parametrize("failures", [0, 1, 2])
def test_below_the_slowing_threshold_nothing_waits(failures: int) -> None:
    backoff = SignInPolicy().account
    assert backoff.wait([at(i) for i in range(failures)], at(failures)) == 0
