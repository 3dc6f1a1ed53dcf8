"""A small asyncio SMTP server wrapper shared by the inbound listener and the test/demo sink.

It runs on the caller's event loop (no aiosmtpd Controller thread), so the handler can use the
same async database engine and Redis client as the code around it, and a test can run the
listener inside its own loop and talk to it with smtplib from a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP

# aiosmtpd logs every DATA line at DEBUG ("DATA readline: b'...'"): raw bodies, card numbers
# included. Keep its logger above DEBUG whatever level the root logger runs at.
AIOSMTPD_LOGGER = "mail.log"


class _SMTP(SMTP):
    """aiosmtpd's size refusals say only "Too much mail data"; senders deserve the limit itself."""

    async def push(self, status: Any) -> None:  # aiosmtpd types it AnyStr
        if isinstance(status, str) and status.startswith("552 Error"):
            status = f"552 5.3.4 Message too big: the limit is {self.data_size_limit} bytes"
        await super().push(status)


class SmtpServer:
    def __init__(
        self,
        handler: object,
        *,
        host: str,
        port: int,
        data_size_limit: int | None,
        hostname: str | None = None,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._data_size_limit = data_size_limit
        self._hostname = hostname
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when asked for port 0)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        aiosmtpd_log = logging.getLogger(AIOSMTPD_LOGGER)
        if aiosmtpd_log.level < logging.INFO:  # NOTSET would inherit a DEBUG root
            aiosmtpd_log.setLevel(logging.INFO)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SMTP(
                self._handler,
                data_size_limit=self._data_size_limit,
                hostname=self._hostname,
                decode_data=False,  # bytes in: the email package decides charsets, not aiosmtpd
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            host=self._host,
            port=self._port,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
