"""What SQL re-checks before an offer is written: ONE list, executed by every offer writer.

The engine decides offers from memory; SQL is the safety net that refuses an offer the rows no
longer allow. Three writers exist for speed (``routing.store``): the portable transaction
(``create_offer``, every database), the one-statement offer and the set-based offers of a
take-over (PostgreSQL). Each check is written here once, as a SQL predicate (the two PostgreSQL
statements put it in their ``allowed`` step) and as the same rule over the facts the portable path
reads (``holds``); a check added, changed or removed here changes every writer at once.
``tests/routing/test_offer_one_statement.py`` runs every writer over a table of decision shapes
and checks that each check below is the reason some shape is refused.

Not listed because they are not predicates: the fence (a stale epoch writes nothing), the
compare-and-set queued -> offered, and the partial unique index (one live offer per interaction).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from routing.capacity import VOICE, load_units
from routing.models import OfferState
from workforce.models import OfferPolicy

UP_TO_CAPACITY = OfferPolicy.UP_TO_CAPACITY.value
DECLINED_STATES = (OfferState.REJECTED, OfferState.EXPIRED)  # "declined or missed"
_DECLINED_SQL = ", ".join(f"'{state.value}'" for state in DECLINED_STATES)


@dataclass(frozen=True, slots=True)
class OfferFacts:
    """What the portable path reads before offering ``channel`` work to an agent."""

    channel: str
    channel_cost: int
    channel_max: int  # the agent's ceiling for this channel
    capacity_units: int
    same_channel: int  # what the agent holds now (offered, connected, wrap-up)
    total: int
    voice: int
    pending: int  # of them, offers not yet answered
    units: int
    offer_policy: str | None  # of the queue the work is placed in
    declined: bool  # this agent rejected or missed this work before

    @classmethod
    def of(
        cls,
        *,
        channel: str,
        load_by_channel: Mapping[str, int],
        pending: int,
        capacity_units: int,
        channel_max: Mapping[str, int],
        offer_policy: str | None,
        declined: bool,
        costs: Mapping[str, int],
    ) -> OfferFacts:
        return cls(
            channel=channel,
            channel_cost=costs.get(channel, 0),
            channel_max=channel_max.get(channel, 0),
            capacity_units=capacity_units,
            same_channel=load_by_channel.get(channel, 0),
            total=sum(load_by_channel.values()),
            voice=load_by_channel.get(VOICE, 0),
            pending=pending,
            units=load_units(load_by_channel, costs),
            offer_policy=offer_policy,
            declined=declined,
        )


@dataclass(frozen=True)
class OfferCheck:
    name: str
    refusal: str  # the portable path's Conflict (field agent_id)
    # A predicate over ``held`` (same_channel, total, voice, pending, units) and ``agents``, with
    # {channel}, {channel_cost}, {offer_policy}, {interaction_id} and {agent_id} named by the writer.
    sql: str
    holds: Callable[[OfferFacts], bool]


NO_CAPACITY = "The agent has no capacity for this channel"

OFFER_CHECKS: tuple[OfferCheck, ...] = (
    OfferCheck(
        "never re-offered to an agent who declined or missed it",
        "This agent already declined or missed the interaction",
        "NOT EXISTS (SELECT 1 FROM offers WHERE offers.interaction_id = {interaction_id}"
        f" AND offers.agent_id = {{agent_id}} AND offers.state IN ({_DECLINED_SQL}))",
        lambda f: not f.declined,
    ),
    OfferCheck(
        "the channel's ceiling",
        NO_CAPACITY,
        "held.same_channel + 1 <= coalesce((agents.channel_max ->> {channel})::int, 0)",
        lambda f: f.same_channel + 1 <= f.channel_max,
    ),
    OfferCheck(
        "capacity units",
        NO_CAPACITY,
        "held.units + {channel_cost} <= agents.capacity_units",
        lambda f: f.units + f.channel_cost <= f.capacity_units,
    ),
    OfferCheck(
        "voice is exclusive both ways",
        NO_CAPACITY,
        f"held.voice = 0 AND (held.total = 0 OR {{channel}} <> '{VOICE}')",
        lambda f: f.voice == 0 and (f.total == 0 or f.channel != VOICE),
    ),
    OfferCheck(
        "one pending offer at a time, unless the queue offers up to capacity",
        "The agent already has an offer pending (one at a time)",
        f"held.pending = 0 OR {{offer_policy}} IS NOT DISTINCT FROM '{UP_TO_CAPACITY}'",
        lambda f: f.pending == 0 or f.offer_policy == UP_TO_CAPACITY,
    ),
)


def first_refusal(facts: OfferFacts, checks: tuple[OfferCheck, ...] = OFFER_CHECKS) -> OfferCheck | None:
    """The first check the facts fail (the portable path's refusal), or None: the offer may go."""
    return next((check for check in checks if not check.holds(facts)), None)


def allowed_sql(
    *,
    channel: str,
    channel_cost: str,
    offer_policy: str,
    interaction_id: str,
    agent_id: str,
    checks: tuple[OfferCheck, ...] = OFFER_CHECKS,
) -> str:
    """Every check as one SQL condition, each argument naming the writer's column or parameter."""
    names = {
        "channel": channel,
        "channel_cost": channel_cost,
        "offer_policy": offer_policy,
        "interaction_id": interaction_id,
        "agent_id": agent_id,
    }
    return "\n              AND ".join(f"({check.sql.format(**names)})" for check in checks)
