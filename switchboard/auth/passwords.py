"""Password policy for every password a person sets (creation, change, reset).

A minimum length (``password_min_length``) and a refusal of common passwords: the 30,000 most
common ones from leaked password corpora, as shipped in zxcvbn's frequency lists (a kept package,
not a list of our own), compared case-insensitively. The username (or the password being just a
variant of it) is refused too. Long passphrases pass; no composition rules (NIST SP 800-63B).
"""

from __future__ import annotations

from functools import lru_cache

from switchboard.errors import Invalid


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def check_password(password: str, *, min_length: int, username: str | None = None, field: str) -> None:
    """Invalid (422 naming ``field``) unless ``password`` meets the policy."""
    if len(password) < min_length:
        raise Invalid(f"The password must have at least {min_length} characters", field=field)
    folded = password.casefold()
    if folded in common_passwords() or folded.strip("0123456789!?.") in common_passwords():
        raise Invalid("This password is one of the most commonly used; choose another", field=field)
    if username and username.casefold() in folded:
        raise Invalid("The password must not contain the username", field=field)
