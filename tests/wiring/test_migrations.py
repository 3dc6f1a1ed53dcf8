"""The schema exists only through Alembic: migrations must match the models exactly, both ways."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from switchboard.db import Database
from switchboard.model_registry import metadata


def _diff(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


async def test_models_and_migrations_do_not_drift(db: Database):
    # The `db` fixture's schema was built by `alembic upgrade head` alone.
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], f"models differ from migrations (write a migration): {diff}"


def test_downgrade_to_base_and_back_on_sqlite(tmp_path):
    from alembic import command
    from alembic.config import Config

    from switchboard.settings import PROJECT_ROOT

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")

    import asyncio

    async def tables() -> set[str]:
        database = Database(url)
        async with database.engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await database.dispose()
        return names

    assert set(metadata.tables) <= asyncio.run(tables())


@pytest.mark.parametrize("state", ["live"])
async def test_one_live_offer_per_interaction(db: Database, state: str):
    """Two live offers for one interaction violate the partial unique index on every backend."""
    from sqlalchemy.exc import IntegrityError

    from customers.models import Customer
    from interactions.models import Interaction
    from interactions.states import Channel
    from routing.models import Offer, OfferState
    from switchboard.auth.models import Role, User
    from switchboard.db import utcnow
    from workforce.models import Agent

    async with db.sessionmaker() as s:
        customer = Customer(display_name="C")
        users = [
            User(username=f"u{i}", display_name="A", role=Role.AGENT, password_hash="x") for i in range(2)
        ]
        s.add_all([customer, *users])
        await s.flush()
        agents = [Agent(user_id=u.id, display_name="A") for u in users]
        interaction = Interaction(customer_id=customer.id, channel=Channel.CHAT)
        s.add_all([*agents, interaction])
        await s.flush()
        s.add(Offer(interaction_id=interaction.id, agent_id=agents[0].id, expires_at=utcnow()))
        await s.flush()
        # A decided offer does not block a new live one...
        s.add(
            Offer(
                interaction_id=interaction.id,
                agent_id=agents[1].id,
                expires_at=utcnow(),
                state=OfferState.REJECTED,
            )
        )
        await s.flush()
        # ...but a second live one does.
        s.add(Offer(interaction_id=interaction.id, agent_id=agents[1].id, expires_at=utcnow(), state=state))
        with pytest.raises(IntegrityError):
            await s.flush()


def test_migrations_form_a_single_line():
    """Parallel branches must be merged before they land, so `upgrade head` is unambiguous."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from switchboard.settings import PROJECT_ROOT

    heads = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini"))).get_heads()
    assert len(heads) == 1, heads
