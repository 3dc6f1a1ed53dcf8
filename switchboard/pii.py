"""Card numbers (PANs) never reach storage or a log line (DESIGN §6: PII masked in transcripts).

One detector, used by the free-text column types below (every write of a message, name, comment,
note, attachment name or timeline payload goes through them), by the log filter and by the
outbound paths that render text themselves (email bodies, transcripts).

What counts as a card number: 13-19 digits passing the Luhn check, written
* with visible separators between digit groups: spaces, no-break spaces (``&nbsp;`` too), dashes,
  `` - ``, dots, underscores;
* with invisible characters anywhere: zero-width spaces/joiners, soft hyphens, HTML tags
  (``4111<span>1111</span>...`` in an email);
* with one digit glued before it, or a CVV / expiry date after it (both masked as well).

What does not, so ordinary numbers stay readable: a number right after ``+`` (a phone number), one
that starts with 0 (no card does; international ``00`` dialling does), and a digit run whose inner
groups are 1-2 digits long, unless every group is one digit (dates and times such as
``06.12.2026 - 07.12.2026`` have 2-digit groups; someone spacing out a card digit by digit has only
1-digit groups).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import JSON, String, Text, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator, TypeEngine

# Characters a reader does not see: they never split a digit group.
_INVISIBLE = r"(?:[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]|<[^<>\d]{0,200}>)"
# Characters and entities a reader sees as a gap between digit groups.
_VISIBLE = r"(?:[ \t\u00a0\u2007\u202f._\-\u2010-\u2013]|&nbsp;|&#160;|&#xa0;)"
_GAP = rf"(?:{_INVISIBLE}|{_VISIBLE})"
# A run of digits joined by at most a few gap characters (`` - `` is three); only runs with 13 or
# more digits can hold a card number, so the regex is also the cheap pre-filter.
_RUN = re.compile(rf"(?<![\d+])\d(?:{_GAP}{{0,6}}\d){{12,}}")
_INVISIBLE_RE = re.compile(_INVISIBLE)
_VISIBLE_RE = re.compile(_VISIBLE)
_DIGIT = re.compile(r"\d")

# After a card number: an optional label, then an expiry (MM/YY, MM/YYYY, MM-YY) or a CVV, twice
# at most ("exp 12/27 cvv 123").
_TAIL_ITEM = re.compile(
    rf"(?:{_GAP}|[,;:/()\[\]])*"
    r"(?:(?:exp(?:iry|ires|\.)?|valid(?:\s+thru)?|cvv2?|cvc2?|cv2|csc|security\s+code|code)\b[\s:.#=-]*)?"
    rf"(?P<value>\d{{1,2}}\s*[/.\-]\s*(?:\d{{4}}|\d{{2}})|\d{{3,4}}|(?<=/)\d{{2}})(?!\d)",
    re.IGNORECASE,
)
# Issuer prefixes and lengths of the major brands, for the cases where the number is not set off
# from its neighbours (a digit glued before it, a CVV glued after it): Visa, Mastercard, Amex,
# Discover, JCB, Diners, UnionPay.
_BRANDS = (
    (re.compile(r"4"), (16, 13, 19)),
    (re.compile(r"5[1-5]|2[2-7]"), (16,)),
    (re.compile(r"3[47]"), (15,)),
    (re.compile(r"6(?:011|5|4[4-9]|2)|35"), (16, 19, 17, 18)),
    (re.compile(r"3[068]"), (14, 16, 19)),
)


def _brand_lengths(digits: str) -> tuple[int, ...]:
    for prefix, lengths in _BRANDS:
        if prefix.match(digits):
            return lengths
    return ()


MASK = "*"
# Card lengths, the common ones first: when a card is followed by its CVV the 16 digits win over a
# 19-digit reading that would show CVV digits as the "last four".
_LENGTHS = (16, 15, 19, 13, 14, 18, 17)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _groups_ok(sizes: list[int]) -> bool:
    """Inner groups of 3+ digits (4-4-4-4, 4-6-5, ...), or one digit at a time. Pairs are not a
    card's grouping but dates' and times' (``03.12.03 - 04-09``), so they never count."""
    return set(sizes) == {1} or all(size >= 3 for size in sizes[1:-1])


def _find_pan(digits: str, group_of: list[int]) -> tuple[int, int] | None:
    """The card number in a run of digits as (start, end) indexes (common lengths tried first)."""
    n = len(digits)
    starts = [i for i in range(n) if i == 0 or group_of[i] != group_of[i - 1]]
    ends = {i + 1 for i in range(n) if i == n - 1 or group_of[i] != group_of[i + 1]}
    for start in starts:
        for length in _LENGTHS:
            end = start + length
            if end > n or end not in ends or digits[start] == "0":
                continue
            window = digits[start:end]
            sizes = _sizes(group_of[start:end])
            if _groups_ok(sizes) and luhn_ok(window):
                return start, end
        if start != 0 or group_of[0] != group_of[1]:
            continue
        # A digit glued before the card (no gap): only a known brand's prefix and length count.
        for length in _brand_lengths(digits[1:]):
            end = 1 + length
            if end in ends and luhn_ok(digits[1:end]) and _groups_ok(_sizes(group_of[1:end])):
                return 1, end
        # The card with its CVV glued on (no gap): a known brand's length, 3-4 digits left over.
        if group_of[0] == group_of[-1]:
            for length in _brand_lengths(digits):
                if 3 <= n - length <= 4 and luhn_ok(digits[:length]):
                    return 0, length
    return None


def _sizes(groups: list[int]) -> list[int]:
    sizes: list[int] = []
    last = None
    for g in groups:
        if g == last:
            sizes[-1] += 1
        else:
            sizes.append(1)
            last = g
    return sizes


def _mask_run(text: str, start: int, end: int) -> tuple[str, int] | None:
    """Mask the card number in ``text[start:end]``; the replacement and where it ends, or None."""
    chunk = text[start:end]
    digits: list[str] = []
    positions: list[int] = []
    group_of: list[int] = []
    group = 0
    i = 0
    while i < len(chunk):
        if _DIGIT.match(chunk, i):
            digits.append(chunk[i])
            positions.append(i)
            group_of.append(group)
            i += 1
            continue
        m = _INVISIBLE_RE.match(chunk, i)
        if m:
            i = m.end()
            continue
        m = _VISIBLE_RE.match(chunk, i)
        group += 1  # a visible gap (or anything else the run allowed) starts a new group
        i = m.end() if m else i + 1
    plain = "".join(str(int(d)) for d in digits)  # full-width and other Unicode digits too
    found = _find_pan(plain, group_of)
    if found is None:
        return None
    first, last = found
    # Everything from the card's first digit to its last becomes asterisks plus the last four;
    # digits after it in the same run (a CVV or an expiry typed with gaps) are masked too.
    head = chunk[: positions[first]]
    pan = MASK * (last - first - 4) + plain[last - 4 : last]
    rest = chunk[positions[last - 1] + 1 :]
    rest = _DIGIT.sub(MASK, rest)
    return head + pan + rest, start + len(chunk)


# A UUID (the ids in timeline data and attributes): about 1 in 400 random ones holds a Luhn-valid
# run of digits between its hyphens, which must not be masked (the id would be destroyed). The
# 32-hex form without hyphens (``uuid4().hex``: command ids in status URLs, audit data) too; it
# must hold a letter, so 32 plain digits (two cards glued together) are still read as digits.
_UUID = re.compile(
    r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])"
    r"|(?<![0-9A-Za-z])(?=\d*[A-Fa-f])[0-9A-Fa-f]{32}(?![0-9A-Za-z])"
)


def mask_card_numbers(text: str) -> str:
    """``text`` with every card number replaced by asterisks and its last four digits."""
    if len(text) < 13:
        return text
    ids = [m.span() for m in _UUID.finditer(text)] if len(text) >= 32 else []
    out: list[str] = []
    pos = 0
    for run in _RUN.finditer(text):
        if run.start() < pos or any(start <= run.start() < end for start, end in ids):
            continue
        masked = _mask_run(text, run.start(), run.end())
        if masked is None:
            continue
        replacement, end = masked
        out.append(text[pos : run.start()])
        out.append(replacement)
        # A CVV or an expiry right after the card, behind a label or punctuation.
        for _ in range(2):
            tail = _TAIL_ITEM.match(text, end)
            if tail is None:
                break
            value_start, value_end = tail.span("value")
            out.append(text[end:value_start] + _DIGIT.sub(MASK, text[value_start:value_end]))
            end = value_end
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def mask_deep(value: Any) -> Any:
    """Every string inside a JSON-like value masked (timeline payloads, attributes)."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, dict):
        return {k: mask_deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_deep(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Column types: free text is masked on its way into the database, whatever path writes it (the
# ORM, Core inserts, the compiled fastsql statements: they all run the types' bind processors).


class MaskedText(TypeDecorator[str]):
    """Free text (messages, comments, notes, email HTML) stored with card numbers masked."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return mask_card_numbers(value) if value is not None else None


class MaskedString(TypeDecorator[str]):
    """A short free-text field (a name, a subject, a file name) stored with card numbers masked."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return mask_card_numbers(value) if value is not None else None


class MaskedJSON(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose strings are masked: timeline payloads carry notes and text."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return mask_deep(value)


_MASKERS: dict[type[Any], Callable[[Any], Any]] = {
    MaskedText: lambda v: mask_card_numbers(v) if isinstance(v, str) else v,
    MaskedString: lambda v: mask_card_numbers(v) if isinstance(v, str) else v,
    MaskedJSON: mask_deep,
}


@event.listens_for(Mapper, "mapper_configured")
def _mask_on_assignment(mapper: Mapper[Any], class_: type[Any]) -> None:
    """The ORM object holds the masked value as soon as it is set, not only the stored row, so a
    page rendered from the object after a flush shows what the database holds."""
    for prop in mapper.column_attrs:
        for column in prop.columns:
            masker = _MASKERS.get(type(getattr(column, "type", None)))
            if masker is None:
                continue

            def _set(target: Any, value: Any, oldvalue: Any, initiator: Any, _m: Any = masker) -> Any:
                return _m(value)

            event.listen(getattr(class_, prop.key), "set", _set, retval=True)
