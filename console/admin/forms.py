"""The console's forms for administered entities: which inputs an entity's form has, how a
posted form becomes the write schema's fields, and how errors find their field again.

A form posts only the fields it shows; multi-value inputs (checkboxes, levels) carry a hidden
marker with their name, so "none ticked" is a change and "not on this form" is not. What a form
posts is then a PATCH like the API's (``switchboard.crud.validate_patch``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

Choices = Callable[[AsyncSession], Awaitable[Sequence[tuple[str, str]]]]  # (value, label)


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    # text | textarea | number | select | checkboxes | levels (a number per choice) | tags | password
    kind: str = "text"
    help: str = ""
    choices: Choices | None = None
    low: int = 0
    high: int = 100
    create_only: bool = False  # shown read-only when editing


def static_choices(pairs: Sequence[tuple[str, str]]) -> Choices:
    async def choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
        return pairs

    return choices


def _number(raw: str) -> Any:
    raw = raw.strip()
    try:
        return int(raw)
    except ValueError:
        return raw  # the schema names the field ("Input should be a valid integer")


def parse_form(fields: Sequence[FormField], form: FormData) -> dict[str, Any]:
    """The posted form as write-schema fields (only the fields the form carried)."""
    data: dict[str, Any] = {}
    for f in fields:
        if f.name not in form:
            continue
        if f.kind == "checkboxes":
            data[f.name] = [str(v) for v in form.getlist(f.name) if str(v)]
        elif f.kind == "levels":
            prefix = f"{f.name}."
            data[f.name] = {
                key[len(prefix) :]: _number(str(value))
                for key, value in form.multi_items()
                if key.startswith(prefix) and str(value).strip()
            }
        elif f.kind == "tags":
            data[f.name] = [t for t in str(form[f.name]).replace(",", " ").split() if t]
        elif f.kind == "password":
            if str(form[f.name]):  # empty: unchanged (a new password only when one is typed)
                data[f.name] = str(form[f.name])
        elif f.kind == "number":
            raw = str(form[f.name]).strip()
            data[f.name] = None if raw == "" else _number(raw)
        elif f.kind == "select" and str(form[f.name]) == "":
            data[f.name] = None  # the empty choice ("nobody")
        else:
            data[f.name] = str(form[f.name])
    return data


def field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``errors[]`` of a problem (``body.required_skills.cards``) keyed by the form field."""
    found: dict[str, str] = {}
    for err in errors:
        path = str(err.get("field") or "")
        parts = path.split(".")
        name = parts[1] if parts[0] == "body" and len(parts) > 1 else parts[0]
        detail = str(err.get("message") or "invalid")
        if len(parts) > 2 and parts[0] == "body":
            detail = f"{parts[2]}: {detail}"
        found.setdefault(name or "form", detail)
    return found


async def resolved_choices(
    fields: Sequence[FormField], session: AsyncSession
) -> dict[str, Sequence[tuple[str, str]]]:
    return {f.name: await f.choices(session) for f in fields if f.choices is not None}
