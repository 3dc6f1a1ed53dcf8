"""What the benches share: a minimal keep-alive HTTP/1.1 client (a general client's per-request
CPU, httpx's ~1 ms, would take a large share of the two cores the server runs on) and the CPU
the server processes and PostgreSQL used, read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on the host (other users' queries included)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
    return total


class Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, port: int, token: str, path: str = "/api/interactions") -> None:
        self.port = port
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def print_figures(rows: list[tuple[str, Any, str]], results: dict[str, Any]) -> None:
    """Each figure beside its target, then the last line: one JSON object with every figure."""
    width = max(len(name) for name, _, _ in rows)
    measured = max(18, *(len(str(value)) for _, value, _ in rows))
    print(f"{'figure':<{width}}  {'measured':>{measured}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value!s:>{measured}}  {target}")
    print(json.dumps(results))
