"""``switchboard run``'s process tree: start every child, and stop them in order on SIGTERM or Ctrl-C.

Order matters on the way down: the traffic generators go first, while the app still answers their
hang-ups (otherwise their chats and calls stay queued and are offered again on every later start),
then the app and the services beside it (worker, SMTP listener, dialer) together.

Each child runs in its own process group, so a terminal's Ctrl-C (SIGINT to the foreground group)
reaches only this runner, which then stops the children in that order; and each child is told by
the kernel to terminate if the runner itself dies (SIGKILL included), so none is ever left behind.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("switchboard.runner")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GENERATOR_GRACE_S = 12.0  # demo customers take up to demo.traffic.LEAVE_SECONDS to leave
CHILD_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1


class StopRequested(Exception):
    """Raised in the main thread by the first SIGTERM or SIGINT."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessTree:
    """The runner's children by role; ``stop`` ends them generators first, then the app, then services."""

    env: Mapping[str, str]
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)
    generators: list[subprocess.Popen[bytes]] = field(default_factory=list)
    app: subprocess.Popen[bytes] | None = None

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "switchboard", command],
            env=dict(self.env),
            process_group=0,
            preexec_fn=_die_with_parent,
        )

    def start_service(self, command: str) -> None:
        self.services.append(self.spawn(command))

    def start_generator(self, command: str) -> None:
        self.generators.append(self.spawn(command))

    def start_app(self) -> None:
        self.app = self.spawn("serve")

    def wait(self) -> int:
        """Block until a stop signal (``StopRequested``) or the app exits; the app's exit code."""
        assert self.app is not None
        previous = {sig: signal.signal(sig, _raise_stop) for sig in STOP_SIGNALS}
        try:
            return self.app.wait()
        except StopRequested:
            return 0
        finally:
            # A second Ctrl-C while stopping must not cut the orderly stop short (each step is bounded).
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)

    def stop(self) -> None:
        began = time.monotonic()
        _terminate(self.generators, GENERATOR_GRACE_S)
        # Nothing else depends on the order among the rest: they stop together, so a stop takes
        # the generators' leaving plus the slowest of the others, not the sum of them all.
        _terminate(([self.app] if self.app is not None else []) + self.services, CHILD_GRACE_S)
        log.info("stopped every child in %.1f s", time.monotonic() - began)


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _terminate(procs: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each still running, wait up to ``grace`` seconds for all of them, then SIGKILL."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", proc.args, grace)
            proc.kill()
            proc.wait()
