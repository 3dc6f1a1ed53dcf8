"""Weighted agent capacity (DESIGN §3): units per agent, a cost per channel, a per-channel ceiling.

The in-memory engine's rule. The SQL safety net states the same rule as predicates in
``routing.offer_checks`` (SQL cannot call Python); tests/routing/test_offer_checks.py checks that
the two agree on every load.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_CHANNEL_COST: dict[str, int] = {"voice": 100, "chat": 25, "ticket": 10, "email": 10}
VOICE = "voice"


def load_units(load_by_channel: Mapping[str, int], costs: Mapping[str, int] = DEFAULT_CHANNEL_COST) -> int:
    return sum(costs.get(channel, 0) * count for channel, count in load_by_channel.items())


def fits(
    *,
    channel: str,
    load_by_channel: Mapping[str, int],
    capacity_units: int,
    channel_max: Mapping[str, int],
    costs: Mapping[str, int] = DEFAULT_CHANNEL_COST,
    voice_blocks: bool = True,
) -> bool:
    """Whether one more interaction on ``channel`` stays within units and the channel's ceiling.

    ``voice_blocks``: voice is exclusive both ways (DESIGN §2), as the engine's default
    ``EngineConfig.voice_blocks_other_work``: a call blocks other work, and a call goes only to an
    agent holding nothing, whatever the units would allow."""
    if load_by_channel.get(channel, 0) + 1 > channel_max.get(channel, 0):
        return False
    if voice_blocks and (
        load_by_channel.get(VOICE, 0) or (channel == VOICE and any(load_by_channel.values()))
    ):
        return False
    return load_units(load_by_channel, costs) + costs.get(channel, 0) <= capacity_units
