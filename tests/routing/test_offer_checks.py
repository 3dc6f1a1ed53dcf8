"""The SQL safety net's capacity checks (routing.offer_checks) and the engine's (routing.capacity.fits)
say the same thing about every load: SQL never refuses what the engine was right to offer, nor lets
through what the engine would not."""

from __future__ import annotations

import itertools

from routing.capacity import DEFAULT_CHANNEL_COST, fits
from routing.offer_checks import OFFER_CHECKS, OfferFacts, first_refusal

CHANNELS = ("voice", "chat", "email", "ticket")
CAPACITY = {check.name for check in OFFER_CHECKS[1:4]}  # ceiling, units, voice exclusivity


def test_the_capacity_checks_agree_with_the_engines_fits() -> None:
    channel_max = {"voice": 1, "chat": 3, "email": 2, "ticket": 2}
    compared = 0
    for voice, chat, email, ticket in itertools.product(range(2), range(4), range(3), range(3)):
        load = {"voice": voice, "chat": chat, "email": email, "ticket": ticket}
        for channel, units in itertools.product(CHANNELS, (0, 25, 60, 100, 125, 200)):
            facts = OfferFacts.of(
                channel=channel,
                load_by_channel=load,
                pending=0,
                capacity_units=units,
                channel_max=channel_max,
                offer_policy=None,
                declined=False,
                costs=DEFAULT_CHANNEL_COST,
            )
            refused = first_refusal(facts)
            assert refused is None or refused.name in CAPACITY
            engine_says = fits(
                channel=channel, load_by_channel=load, capacity_units=units, channel_max=channel_max
            )
            assert (refused is None) == engine_says, (load, channel, units, refused)
            compared += 1
    assert compared == 2 * 4 * 3 * 3 * len(CHANNELS) * 6
