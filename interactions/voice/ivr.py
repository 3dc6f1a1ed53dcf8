"""A simple IVR menu: one digit chooses the topic and the language the caller is served in.

Topics are the ones the routing rules know (``interaction.topic``); the menu never decides a
queue itself. DOMAIN.md: a customer must never be trapped in a menu, so silence or repeated
wrong keys lead to a person (the general topic) instead of another loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from switchboard.errors import Invalid

MAX_ATTEMPTS = 3
_DIGITS = re.compile(r"^[0-9*#]{1,8}$")


@dataclass(frozen=True)
class IvrOption:
    digit: str
    topic: str
    language: str
    label: str


MENU: tuple[IvrOption, ...] = (
    IvrOption("1", "cards", "en", "cards and payments"),
    IvrOption("2", "card_fraud", "en", "a lost or stolen card, or fraud"),
    IvrOption("3", "mortgages", "en", "mortgages and loans"),
    IvrOption("4", "general", "en", "anything else"),
    IvrOption("8", "general", "zh", "普通话服务 (Mandarin)"),
    IvrOption("0", "general", "en", "an adviser"),
)
OPERATOR = MENU[-1]
_BY_DIGIT = {option.digit: option for option in MENU}


def prompt(attempt: int = 1) -> str:
    choices = " ".join(f"For {o.label}, press {o.digit}." for o in MENU)
    opening = "Welcome to the bank." if attempt == 1 else "Sorry, that is not an option."
    return f"{opening} {choices}"


@dataclass(frozen=True)
class Choice:
    """The menu's answer: an option to queue with, or ``None`` meaning "ask again"."""

    option: IvrOption | None


def choose(digits: str | None, *, attempt: int, field: str = "Digits") -> Choice:
    """Map the keys pressed to an option. Raises Invalid for something that is not keypad input."""
    if digits is None or digits == "":
        return Choice(OPERATOR)  # silence: a person, not another loop
    if not _DIGITS.fullmatch(digits):
        raise Invalid(f"Not keypad input: {digits!r}", field=field)
    option = _BY_DIGIT.get(digits[0])
    if option is None and attempt >= MAX_ATTEMPTS:
        return Choice(OPERATOR)
    return Choice(option)
