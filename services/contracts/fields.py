"""marshmallow fields for the wire formats of DESIGN §3: yuan strings, rates, mu, slugs, dates.

Values stay the strings they are on the wire (the domain parses them into fen/Fraction);
these fields only refuse what does not match, with a message that names the rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate

from services.contracts.money import MoneyError, format_yuan, parse_mu, parse_rate, parse_yuan

# Every pattern is written ^...$ (as OpenAPI and JSON Schema publish it) and always checked with
# ``fullmatch``: Python's ``$`` also matches before a trailing newline, so ``match`` would take
# "jinqing-lianmeng\n" for an id. Digits are [0-9]: ``\d`` also matches "２" and other Unicode digits.
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$")
PERIOD_RE = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
INSTANT_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$")


HookFunction = Callable[..., Any]


def json_schema_rule(rule: dict[str, Any]) -> Callable[[HookFunction], HookFunction]:
    """Say, beside a schema's ``@validates_schema`` method, what it checks in JSON Schema: ``rule`` is merged
    into the object's schema (``services.contracts.json_schema``). A schema-level hook without one has no
    JSON Schema, so its schema is checked by marshmallow alone."""
    def mark(hook: HookFunction) -> HookFunction:
        hook.json_schema_rule = rule  # type: ignore[attr-defined]
        return hook
    return mark


#: The rule of a journal line (an event's or a request's): exactly one of debit or credit.
ONE_SIDE_RULE: dict[str, Any] = {"oneOf": [{"required": ["debit"]}, {"required": ["credit"]}]}


class FullMatch(validate.Regexp):
    """``validate.Regexp`` over the whole string (``fullmatch``), documented with its ^...$ pattern."""

    def __call__(self, value: Any) -> Any:
        pattern: re.Pattern[str] = self.regex  # type: ignore[assignment]  # always built from a str pattern
        if not isinstance(value, str) or pattern.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class WireString(fields.Field[str]):
    """A string field that checks its format and returns the string unchanged."""

    def _check(self, value: str) -> None:
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValidationError(f"must be a string, not {type(value).__name__}")
        self._check(value)
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class Yuan(WireString):
    """An amount in yuan with exactly two decimals, as a string ("1234.50"). Never a float.

    The event contract takes only the canonical form (``format_yuan`` of its fen: no leading
    zeros, no "-0.00"), so every amount in the log is written one way. Request schemas use
    :class:`Amount`, which also takes "0001.00" from a tired clerk and hands on "1.00".
    """

    canonical_only = True

    def __init__(self, *, positive: bool = False, allow_negative: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.positive = positive
        self.allow_negative = allow_negative
        # Answers may hold sums past the wire bound (report totals), never leading zeros.
        pattern = r"^-?[0-9]+\.[0-9]{2}$" if not self.canonical_only else r"^-?(0|[1-9][0-9]*)\.[0-9]{2}$"
        self.metadata = {"pattern": pattern, **self.metadata}
        self.metadata = {"example": "1234.50", **self.metadata}

    def _fen(self, value: str) -> int:
        try:
            fen = parse_yuan(value, allow_negative=self.allow_negative)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc
        if self.positive and fen <= 0:
            raise ValidationError("amount must be greater than 0.00")
        return fen

    def _check(self, value: str) -> None:
        fen = self._fen(value)
        if self.canonical_only and value != format_yuan(fen):
            raise ValidationError(f"amount must be written canonically: {format_yuan(fen)!r}, not {value!r}")


class Amount(Yuan):
    """A request's amount: as :class:`Yuan`, but leading zeros are accepted and the value handed on
    is always the canonical form ("0001.00" -> "1.00"), so events carry it written one way."""

    canonical_only = False

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return format_yuan(self._fen(super()._deserialize(value, attr, data, **kwargs)))


class Rate(WireString):
    """A non-negative decimal rate string such as "0.10"."""

    def __init__(self, *, at_most_one: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.at_most_one = at_most_one
        self.metadata = {"example": "0.10", **self.metadata}

    def _check(self, value: str) -> None:
        try:
            rate = parse_rate(value)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc
        if self.at_most_one and rate > 1:
            raise ValidationError("rate must be between 0 and 1")


class Mu(WireString):
    """A land area in mu: a positive decimal string with at most 4 places ("14.2000")."""

    def _check(self, value: str) -> None:
        try:
            area = parse_mu(value)
        except MoneyError as exc:
            raise ValidationError(str(exc)) from exc
        if area <= 0:
            raise ValidationError("area must be greater than 0")


class Slug(WireString):
    """A lowercase id ``[a-z0-9][a-z0-9-]{1,62}``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"pattern": SLUG_RE.pattern, **self.metadata}

    def _check(self, value: str) -> None:
        if not SLUG_RE.fullmatch(value):
            raise ValidationError("must be a lowercase id of 2-63 characters: a-z, 0-9 and '-'")


class IsoDate(WireString):
    """A calendar date ``YYYY-MM-DD``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metadata = {"format": "date", **self.metadata}

    def _check(self, value: str) -> None:
        if not DATE_RE.fullmatch(value):
            raise ValidationError("must be a date YYYY-MM-DD")
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise ValidationError("must be a real calendar date YYYY-MM-DD") from exc


class Period(WireString):
    """An accounting period ``YYYY-MM``."""

    def _check(self, value: str) -> None:
        if not PERIOD_RE.fullmatch(value):
            raise ValidationError("must be a period YYYY-MM")


class Uscc(WireString):
    """An 18-character unified social credit code (统一社会信用代码), format and check digit."""

    def _check(self, value: str) -> None:
        if not uscc_is_valid(value):
            raise ValidationError("must be an 18-character unified social credit code with a valid check digit")


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_is_valid(code: str) -> bool:
    """GB 32100-2015: 18 characters from the code alphabet; the last is a mod-31 check character."""
    if len(code) != 18 or any(ch not in _USCC_ALPHABET for ch in code):
        return False
    total = sum(_USCC_ALPHABET.index(ch) * w for ch, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    check = (31 - total % 31) % 31
    return _USCC_ALPHABET[check] == code[17]


#: Characters no text of the contract may hold: lone UTF-16 surrogates (not Unicode text at all:
#: they cannot be written as UTF-8) and control characters other than tab, newline and return.
BAD_TEXT_RE = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text_problem(text: str) -> str | None:
    """Why ``text`` is not acceptable text (a lone surrogate, a control character), or None."""
    found = BAD_TEXT_RE.search(text)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return f"must not contain a lone UTF-16 surrogate (U+{ord(char):04X} at position {found.start()})"
    return f"must not contain the control character U+{ord(char):04X} (at position {found.start()})"


class Text(fields.String):
    """A string of bounded length: non-empty after trimming unless ``allow_empty``; never a lone
    surrogate or a control character (tab, newline and return are allowed)."""

    def __init__(self, *, max_length: int = 200, allow_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.allow_empty = allow_empty
        self.metadata = {"maxLength": max_length, **self.metadata}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.allow_empty and not text.strip():
            raise ValidationError("must not be empty")
        if len(text) > self.max_length:
            raise ValidationError(f"must be at most {self.max_length} characters")
        problem = text_problem(text)
        if problem is not None:
            raise ValidationError(problem)
        return text


class Flag(fields.Boolean):
    """A JSON ``true`` or ``false``, nothing else (marshmallow's Boolean also takes "yes", 1 and "on")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value
