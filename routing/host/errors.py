"""How leading can fail."""

from __future__ import annotations


class LostLeadership(Exception):
    """The lease lapsed or SQL holds a newer epoch: stop writing at once and stand by."""


class DecisionRefused(Exception):
    """SQL refused the engine's decision (it moved on meanwhile); the engine was put right from
    SQL (repaired for what the decision touched, or rebuilt)."""


class RebuildFailed(Exception):
    """Rebuilding from SQL kept failing: the floor cannot be trusted, so this leadership ends
    (the next one starts from SQL again)."""
