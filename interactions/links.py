"""What points at an interaction through its three links (a transfer's child, a callback, a
follow-up), in one prebuilt read.

A desktop tab asks twice per contact (the consult status of its tools, the chain of its thread),
each an ORM query of whole rows that finds nothing for almost every contact; this read comes
first, so those queries run only when something is linked.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Uuid, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from interactions.models import Interaction
from switchboard.fastsql import FastStatement


@dataclass(frozen=True, slots=True)
class LinkedFrom:
    transferred: bool  # a transfer's child names it as parent (routing.transfer)
    linked: bool  # any of the three links names it (the thread's chain goes on from it)


def _links_statement() -> FastStatement:
    it: Any = Interaction.__table__.c
    target = bindparam("interaction_id", type_=Uuid)
    child = exists().where(it.parent_id == target)
    any_link = exists().where(
        or_(it.parent_id == target, it.callback_of_id == target, it.follow_up_of_id == target)
    )
    return FastStatement(select(child.label("transferred"), any_link.label("linked")))


_LINKS = _links_statement()


async def linked_from(session: AsyncSession, interaction_id: uuid.UUID) -> LinkedFrom:
    (row,) = await _LINKS.rows(session, {"interaction_id": interaction_id})  # a SELECT of two EXISTS
    return LinkedFrom(bool(row.transferred), bool(row.linked))
