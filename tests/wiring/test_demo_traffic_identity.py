"""Demo chats prove who they are like real customers: the generator's chats against a real app
process on the seeded demo bank reach agents as the bank's customers (verified by the bank app's
token or by a one-time code sent by SMS through the simulated carrier), and a minority stay
unverified visitors, so the demo shows both the customer 360 and the "Unverified visitor" card."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from sqlalchemy import select

from customers.models import Customer, Identity, IdentityKind
from demo.bank import seed_demo_bank
from demo.traffic import TrafficConfig, TrafficGenerator
from interactions.models import Interaction, TimelineEvent
from interactions.states import Channel
from switchboard.db import Database
from switchboard.security import app_token_key
from tests.live_app import free_port, live_settings, start_app, stop_app, wait_for_leader

TOKEN = "demo-identity-carrier-token-0123"
ACCOUNT = "ACdemoidentity"
CHATS = 12


async def _chats(db: Database, before: set[uuid.UUID]) -> list[Interaction]:
    async with db.sessionmaker() as s:
        rows = (await s.scalars(select(Interaction).where(Interaction.channel == Channel.CHAT))).all()
        await s.commit()
    return [row for row in rows if row.id not in before and row.parent_id is None]


async def test_most_demo_chats_verify_and_some_stay_unverified(
    database_url, db, redis_handle, redis_sync, tmp_path, monkeypatch
):
    assert await seed_demo_bank(db.url, schema=db.schema) is True
    async with db.sessionmaker() as s:
        history = set((await s.scalars(select(Interaction.id))).all())
        seeded = set((await s.scalars(select(Customer.id))).all())  # the demo bank's customers
        await s.commit()
    port, carrier_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{port}"
    settings = live_settings(database_url, redis_handle.url, tmp_path, name="demo-identity")
    # The app sends its SMS codes to the generator's simulated carrier, as `switchboard run` wires it.
    monkeypatch.setenv("SWITCHBOARD_CARRIER_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("SWITCHBOARD_CARRIER_ACCOUNT_SID", ACCOUNT)
    monkeypatch.setenv("SWITCHBOARD_CARRIER_API_URL", f"http://127.0.0.1:{carrier_port}")
    app = start_app(port, settings, origin, tmp_path / "app.log")
    generator = TrafficGenerator(
        TrafficConfig(
            base_url=origin,
            smtp_host="127.0.0.1",
            smtp_port=free_port(),  # no email contacts in this test
            carrier_auth_token=TOKEN,
            per_minute=0,  # no arrivals of its own: the test sends the chats
            carrier_api_port=carrier_port,
            carrier_account_sid=ACCOUNT,
            seed=11,
            patience=(300.0, 300.0),  # nobody answers; they wait until the test ends
            app_token_key=app_token_key(settings),
            jwt_issuer=settings.jwt_issuer,
        )
    )
    stop = asyncio.Event()
    running = asyncio.create_task(generator.run(stop=stop))
    try:
        await wait_for_leader(origin, app, tmp_path / "app.log")
        await asyncio.wait_for(generator.ready.wait(), 30)
        for _ in range(CHATS):
            generator.arrive("chat")

        def settled(chats: list[Interaction]) -> bool:
            # Every chat started, and each that asked for a code by SMS has typed it in.
            by_sms = sum(1 for c in chats if (c.attributes or {}).get("verified_by") == "sms")
            return len(chats) == CHATS and by_sms == generator.proofs["sms"]

        chats: list[Interaction] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            chats = await _chats(db, history)
            if settled(chats) or any(generator.failed.values()):
                break
            assert not running.done(), running
            await asyncio.sleep(0.25)
        assert generator.failed == {"chat": 0, "voice": 0, "email": 0}, (tmp_path / "app.log").read_text()
        assert len(chats) == CHATS, (tmp_path / "app.log").read_text()

        async with db.sessionmaker() as s:
            app_ids = {
                i.customer_id: i.value
                for i in (await s.scalars(select(Identity).where(Identity.kind == IdentityKind.APP))).all()
            }
            proofs = {
                e.interaction_id: e
                for e in (
                    await s.scalars(select(TimelineEvent).where(TimelineEvent.kind == "identity_verified"))
                ).all()
            }
            await s.commit()
        by_app, by_sms, unverified = [], [], []
        for chat in chats:
            attributes = chat.attributes or {}
            if attributes.get("identity") == "verified" and attributes.get("verified_by") == "app":
                # Signed in with the bank app: the seeded customer who owns that app login.
                assert chat.contact_identity == {"kind": "app", "value": app_ids[chat.customer_id]}
                assert chat.customer_id in seeded
                by_app.append(chat)
            elif attributes.get("identity") == "verified":
                # A code by SMS: the chat moved to the seeded customer, proof on their timeline.
                assert attributes.get("verified_by") == "sms"
                assert chat.customer_id in seeded
                assert proofs[chat.id].customer_id == chat.customer_id
                assert proofs[chat.id].data["method"] == "sms"
                by_sms.append(chat)
            else:
                assert attributes.get("identity") == "unverified", attributes
                assert chat.customer_id not in seeded  # an anonymous visitor profile
                unverified.append(chat)
        assert by_app and by_sms and unverified, (len(by_app), len(by_sms), len(unverified))
        assert len(by_app) + len(by_sms) > len(unverified)  # most demo chats show the customer 360
        assert generator.verified == {"app": len(by_app), "sms": len(by_sms)}
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 30)
        stop_app(app)
