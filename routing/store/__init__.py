"""The SQL safety net under the routing engine (DESIGN §3).

Every engine decision is written here as a compare-and-set inside one transaction:
* the partition epoch fences stale engines (a lapsed lease holder cannot commit),
* the interaction moves state by CAS on (version, state) through ``interactions.service.transition``,
* the partial unique index allows one live offer per interaction,
* the agent's load is checked in the same transaction.
So even two engines during a hand-over cannot double-assign. Functions take a session and do not
commit; the caller (the engine host) commits or rolls back the whole decision.

One module per kind of write, re-exported here so the host reads ``store.create_offer``:

* ``fence``         the partition fence (``fence``, ``StaleEngine``);
* ``offers``        making an offer, portable (``create_offer``, ``OfferMade``, ``declined_agent_ids``);
* ``one_statement`` the same for PostgreSQL in one statement (``offer_in_one_statement``,
                    ``offers_set_based``, ``OfferWanted``);
* ``held``          answering offers and moving held work (``accept_offer``, ``close_offer``,
                    ``accept_live_offer``, ``move_held``).
"""

from routing.store.fence import StaleEngine, fence
from routing.store.held import accept_live_offer, accept_offer, close_offer, move_held
from routing.store.offers import OCCUPYING_STATES, OfferMade, create_offer, declined_agent_ids
from routing.store.one_statement import OfferWanted, offer_in_one_statement, offers_set_based

__all__ = [
    "OCCUPYING_STATES",
    "OfferMade",
    "OfferWanted",
    "StaleEngine",
    "accept_live_offer",
    "accept_offer",
    "close_offer",
    "create_offer",
    "declined_agent_ids",
    "fence",
    "move_held",
    "offer_in_one_statement",
    "offers_set_based",
]
