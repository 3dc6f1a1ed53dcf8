"""Job functions for the failed-jobs tests (importable by a worker: ``tests.wiring.failing_jobs``)."""

from __future__ import annotations


def fail_with(message: str) -> None:
    raise RuntimeError(message)
