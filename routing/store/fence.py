"""The partition fence: every engine write first proves its epoch is the newest (DESIGN §3).

A lapsed lease holder (a paused or partitioned old engine) cannot commit: ``fence`` raises
``StaleEngine`` and the whole decision rolls back. Every other module of ``routing.store`` starts
its writes with it (the one-statement writers inline the same UPDATE as a CTE).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from routing.models import RoutingPartition
from switchboard.errors import Conflict
from switchboard.fastsql import FastStatement

# The hot statements are built once: constructing a statement costs more CPU than running it.
_partitions = cast(Table, RoutingPartition.__table__)
_FENCE = FastStatement(
    update(_partitions)
    .where(_partitions.c.name == bindparam("partition"), _partitions.c.epoch <= bindparam("epoch"))
    .values(epoch=bindparam("epoch"))
)


class StaleEngine(Conflict):
    """A newer engine holds the partition: this one must stop writing and stand by."""


async def fence(session: AsyncSession, *, partition: str, epoch: int) -> None:
    """Raise StaleEngine unless ``epoch`` is the newest this partition has seen (and record it).

    The UPDATE also takes the partition row lock on PostgreSQL, serialising engine writes.
    """
    if await _FENCE.rowcount(session, {"partition": partition, "epoch": epoch}) == 1:
        return
    if await session.get(RoutingPartition, partition) is None:
        try:
            async with session.begin_nested():
                session.add(RoutingPartition(name=partition, epoch=epoch))
            return
        except IntegrityError:
            pass  # another engine created it first; fall through to the re-check
        return await fence(session, partition=partition, epoch=epoch)
    raise StaleEngine(f"engine epoch {epoch} is stale for partition {partition!r}")
