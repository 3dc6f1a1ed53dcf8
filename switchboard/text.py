"""Control characters are refused wherever text enters (HTTP bodies, query strings and forms in
``switchboard.middleware.RequestGuard``; the chat socket; SMTP): one definition for all of them.

Refused: the C0 controls except tab, newline and carriage return, and DEL. None is meaningful in
a name, a message or a note; NUL is refused by PostgreSQL's text type outright (it used to be a
500 half-way through a write), and the others can drive terminals and log viewers. Also refused:
an unpaired UTF-16 surrogate, which JSON can escape (``"\\ud800"``) but no UTF-8 text can hold (the
driver fails the write); a pair is decoded to one character before this check sees it.
"""

from __future__ import annotations

import re
from typing import Any

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MESSAGE = "Control characters (NUL and the like) and unpaired surrogates are not allowed in text"


def first_control(value: Any, path: str) -> str | None:
    """The path (``body.identity.value``, ``body.tags[2]``) of the first string in ``value``
    holding a control character (a dict key counts as its dict), or None."""
    if isinstance(value, str):
        return path if CONTROL.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and CONTROL.search(key):
                return path
            found = first_control(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_control(item, f"{path}[{i}]")
            if found:
                return found
    return None
