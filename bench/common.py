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


def retail_queue_row(queue_id: Any, **overrides: Any) -> dict[str, Any]:
    """The one chat queue every seeded bench floor routes into (insert(Queue) row)."""
    row: dict[str, Any] = {
        "id": queue_id,
        "name": "retail",
        "display_name": "Retail",
        "channels": ["chat"],
        "sl_target_percent": 80,
        "sl_threshold_seconds": 20,
        "strategy": "longest_idle",
        "required_skills": {},
    }
    return row | overrides


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU a process has used so far (from /proc); with ``reaped_children``, plus
    that of its children that have exited and been waited for (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def runqueue_wait_seconds(pid: int) -> float:
    """How long the process's main thread (an app's event loop) has waited, runnable, for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def cpu_seconds_of(name: str) -> float:
    """CPU of every process on the host whose command is ``name`` (other users' work included),
    with that of those processes' children that have exited: a PostgreSQL backend that ended
    between two readings (a pool closing a connection) would otherwise take the CPU it had used
    out of the second sum (the two-process desktop bench read 0.0 ms of PostgreSQL per loop)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    total += cpu_seconds(int(entry.name), reaped_children=True)
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every postgres process on the host (other users' queries included)."""
    return cpu_seconds_of("postgres")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load_context() -> str:
    """The host's load averages (1, 5, 15 min): the benches share two cores with other work."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Conn:
    """One keep-alive HTTP/1.1 connection; one request at a time. ``token`` adds a Bearer header
    to every request (API clients); without it, callers pass their own (a browser's cookie)."""

    def __init__(self, port: int, token: str | None = None, path: str = "/api/interactions") -> None:
        self.port, self.path = port, path
        self.base = "Host: 127.0.0.1\r\n" + (f"Authorization: Bearer {token}\r\n" if token else "")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        status, _, reply = await self.request("POST", self.path, body, {"Content-Type": "application/json"})
        return status, reply

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, list[str]], bytes]:
        """Status, headers (lower-case names) and body. A kept-alive connection the server closed
        while idle is reopened once: the request never reached it."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        raw = f"{method} {path} HTTP/1.1\r\n{self.base}{extra}Content-Length: {len(body)}\r\n\r\n".encode()
        reused = self.writer is not None
        try:
            return await self._exchange(raw + body)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            self.close()
            if not reused:
                raise
            return await self._exchange(raw + body)

    async def _exchange(self, raw: bytes) -> tuple[int, dict[str, list[str]], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        headers: dict[str, list[str]] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        if "chunked" in headers.get("transfer-encoding", []):
            reply = await self._chunks()
        else:
            reply = await self.reader.readexactly(int(headers.get("content-length", ["0"])[0]))
        if "close" in headers.get("connection", []):
            self.close()
        return status, headers, reply

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()
        await self.reader.readline()  # the empty trailer
        return b"".join(parts)

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
