"""Card numbers never reach a log line (DESIGN §6: PII masked in transcripts and logs).

The filter goes on *handlers*, not loggers: a logger's filters do not see records propagated
from its children, while every record a handler writes passes the handler's filters.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from switchboard.pii import mask_card_numbers


def _masked(value: Any) -> Any:
    return mask_card_numbers(value) if isinstance(value, str) else value


class CardNumberFilter(logging.Filter):
    """Masks Luhn-valid 13-19 digit numbers (spaces/dashes allowed) in message, args and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Mask the arguments one by one first, so formatters that read record.args themselves
        # (uvicorn's access log unpacks them) keep working.
        record.msg = _masked(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_masked(a) for a in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _masked(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the handler's to report, unchanged
            return True
        # A number can still appear through a non-string argument (an int, an exception's str()).
        masked = mask_card_numbers(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            # Formatters cache the rendered traceback in exc_text; render it now so it is masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_card_numbers(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_card_numbers(record.stack_info)
        return True


def install_card_masking(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of ``logger`` (the root logger by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, CardNumberFilter) for f in handler.filters):
            handler.addFilter(CardNumberFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging config with the filter on its handlers (access log included)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_card_numbers"] = {"()": CardNumberFilter}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("mask_card_numbers")
    return config
