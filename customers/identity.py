"""Normalising channel identities so one person resolves to one customer on every channel."""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from customers.models import IdentityKind
from switchboard.errors import Invalid

_OPAQUE_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def normalise_phone(raw: str, *, default_region: str, field: str = "value") -> str:
    """E.164 (``+447700900123``); a number without ``+`` is read in the bank's home region."""
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(f"Not a phone number: {raw!r}", field=field) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid(f"Not a valid phone number: {raw!r}", field=field)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str, *, field: str = "value") -> str:
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"Not a valid email address: {raw!r}", field=field) from exc
    return result.normalized.lower()


def normalise_identity(kind: IdentityKind, raw: str, *, default_region: str, field: str = "value") -> str:
    if kind is IdentityKind.PHONE:
        return normalise_phone(raw, default_region=default_region, field=field)
    if kind is IdentityKind.EMAIL:
        return normalise_email(raw, field=field)
    value = raw.strip()
    if not _OPAQUE_ID.match(value):
        raise Invalid(f"A {kind.value} id is 1-128 characters of letters, digits and _.:@-", field=field)
    return value
