"""Card numbers never reach a log line: the filter, and that the CLI and uvicorn install it."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from switchboard.logging_filters import CardNumberFilter, install_card_masking, uvicorn_log_config

PAN = "4111 1111 1111 1111"
MASKED = "************1111"


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(CardNumberFilter())
    logger = logging.getLogger(f"test.masking.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, stream


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        (f"customer wrote: card {PAN}", ()),
        ("customer wrote: card %s", (PAN,)),
        ("customer wrote: card %(pan)s", ({"pan": "4111-1111-1111-1111"},)),
        ("customer wrote: card %d", (4111111111111111,)),  # a non-string argument
    ],
)
def test_card_numbers_are_masked_in_messages_and_arguments(captured, msg, args):
    logger, stream = captured
    logger.info(msg, *args)
    line = stream.getvalue()
    assert MASKED in line
    assert "4111 1111 1111 1111" not in line and "4111111111111111" not in line and "4111-1111" not in line


def test_tracebacks_are_masked(captured):
    logger, stream = captured
    try:
        raise ValueError(f"bad card {PAN}")
    except ValueError:
        logger.exception("failed")
    assert "ValueError: bad card " + MASKED in stream.getvalue() and PAN not in stream.getvalue()


def test_numbers_that_are_not_cards_are_kept(captured):
    logger, stream = captured
    logger.info(
        "order %s, phone %s, card-like but not Luhn %s",
        "1234567890123",
        "+44 7911 123456",
        "4111 1111 1111 1112",
    )
    assert stream.getvalue().strip() == (
        "order 1234567890123, phone +44 7911 123456, card-like but not Luhn 4111 1111 1111 1112"
    )


def test_cli_logging_setup_installs_the_filter_on_root_handlers():
    from switchboard import cli

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []  # basicConfig configures only a root logger without handlers
    try:
        cli.configure_logging()
        assert root.handlers
        assert all(any(isinstance(f, CardNumberFilter) for f in h.filters) for h in root.handlers)
        install_card_masking()  # idempotent
        assert all(sum(isinstance(f, CardNumberFilter) for f in h.filters) == 1 for h in root.handlers)
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers = saved


def test_uvicorn_access_log_is_masked_and_still_formats():
    config = uvicorn_log_config()
    assert all("mask_card_numbers" in h["filters"] for h in config["handlers"].values())
    stream = io.StringIO()
    config["handlers"]["access"]["stream"] = stream
    config["handlers"]["access"]["class"] = "logging.StreamHandler"
    logging.config.dictConfig(config)
    access = logging.getLogger("uvicorn.access")
    try:
        # uvicorn's AccessFormatter unpacks record.args itself: they must stay a 5-tuple.
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x?card={PAN}", "1.1", 200)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    line = stream.getvalue()
    assert f"/x?card={MASKED}" in line and " 200" in line and PAN not in line
