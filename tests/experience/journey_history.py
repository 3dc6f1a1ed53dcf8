"""A small customer-journey history whose every figure is worked out by hand (shared by the
journey tests in tests/experience and the console's journey page test)."""

from __future__ import annotations

from datetime import timedelta

from customers.models import ValueTier
from interactions.states import Channel, State
from switchboard.db import utcnow
from tests.factories import make_agent, make_customer, make_queue, past_contact

CHAT = Channel.CHAT


async def lost_card_history(db):
    """Lost-card journeys of four customers and a mortgage contact (days before now):

    A (gold):  chat -20 abandoned, voice -19 by X             -> chat→voice, repeated, first not reached
    B:         voice -15 by X                                  -> resolved first time
    C:         voice -12 by Y, chat -10 by X                   -> voice→chat, repeated
    D:         voice -2 by Y                                   -> still open (younger than 7 days)
    E:         mortgage voice -14 by Y                         -> another topic
    """
    now = utcnow()
    day = timedelta(days=1)
    async with db.sessionmaker() as s:
        cards = await make_queue(s, "cards")
        x = await make_agent(s, name="Xena")
        y = await make_agent(s, name="Yusuf")
        a = await make_customer(s, value_tier=ValueTier.GOLD, segments=["senior"])
        b, c, d, e = [await make_customer(s) for _ in range(4)]
        lost = "lost_card"
        await past_contact(
            s, customer=a, at=now - 20 * day, topic=lost, channel=CHAT, state=State.ABANDONED, queue=cards
        )
        await past_contact(s, customer=a, at=now - 19 * day, topic=lost, agent=x, queue=cards)
        await past_contact(s, customer=b, at=now - 15 * day, topic=lost, agent=x, queue=cards)
        await past_contact(s, customer=c, at=now - 12 * day, topic=lost, agent=y, queue=cards)
        await past_contact(s, customer=c, at=now - 10 * day, topic=lost, channel=CHAT, agent=x, queue=cards)
        await past_contact(s, customer=d, at=now - 2 * day, topic=lost, agent=y, queue=cards)
        await past_contact(s, customer=e, at=now - 14 * day, topic="mortgage", agent=y, queue=cards)
        return {"a": a.id, "b": b.id, "x": x.display_name, "y": y.display_name}
