"""Surveys on every channel (issue #12 item 1): a link by email for email and tickets, by text for
calls, inline for chat; one answer per link; expired, reused and forged links each get a clear
page; no survey when nobody answered; at most one survey per customer in N days."""

# Fixtures are imported from email_fixtures and requested by name, which ruff reads as redefinition.
# ruff: noqa: F811

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from experience.survey_jobs import survey_pass
from experience.survey_models import SkipReason, SurveyInvitation, SurveyStatus
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction, TimelineEvent
from interactions.states import State
from switchboard.db import utcnow
from tests.factories import make_agent, make_queue, new_interaction, walk_to
from tests.helpers import FakeCarrier
from tests.interactions.email_fixtures import settings, sink  # noqa: F401

LINK = re.compile(r"http://[^\s]+/survey/([A-Za-z0-9._-]+)")


async def _completed(
    db, *, channel="email", kind="email", value="edith@example.org", queue="cards", answered=True
):
    async with db.sessionmaker() as s:
        await make_queue(s, queue, channels=["voice", "chat", "email", "ticket"])
        agent = await make_agent(s, name=f"Agent {uuid.uuid4().hex[:4]}")
        interaction = await new_interaction(s, channel=channel, kind=kind, value=value, queue=queue)
        target = State.COMPLETED if answered else State.ABANDONED
        if answered:
            await walk_to(s, interaction, target, agent_id=agent.id)
        else:
            await walk_to(s, interaction, State.QUEUED)
            await walk_to(s, await s.get(Interaction, interaction.id), State.ABANDONED)
        return interaction.id


async def _events(db, interaction_id, kind):
    async with db.sessionmaker() as s:
        rows = list(
            await s.scalars(
                select(TimelineEvent).where(
                    TimelineEvent.interaction_id == interaction_id, TimelineEvent.kind == kind
                )
            )
        )
        await s.commit()
    return rows


async def test_email_contact_gets_one_link_that_takes_one_answer(db, settings, sink, client):
    interaction_id = await _completed(db)
    first = await survey_pass(db, settings)
    again = await survey_pass(db, settings)  # a second pass (or worker) changes nothing
    assert (first.invited, first.sent) == (1, 1) and (again.invited, again.sent) == (0, 0)
    [sunk] = sink.messages
    mail = sunk.parsed()
    assert sunk.rcpt_tos == ("edith@example.org",) and mail["Auto-Submitted"] == "auto-generated"
    token = LINK.search(mail.get_content()).group(1)
    assert len(await _events(db, interaction_id, "survey_sent")) == 1

    page = await client.get(f"/survey/{token}")
    assert page.status_code == 200 and 'name="csat"' in page.text and 'name="nps"' not in page.text

    missing = await client.post(f"/survey/{token}", data={"comment": "hm"})
    assert missing.status_code == 422 and 'id="csat-error"' in missing.text

    done = await client.post(f"/survey/{token}", data={"csat": "2", "comment": "Took three transfers"})
    assert done.status_code == 200 and "Thank you" in done.text
    async with db.sessionmaker() as s:
        feedback = await s.scalar(
            select(CustomerFeedback).where(CustomerFeedback.interaction_id == interaction_id)
        )
        assert (feedback.csat, feedback.nps, feedback.comment) == (2, None, "Took three transfers")
        await s.commit()
    [event] = await _events(db, interaction_id, "feedback")
    assert event.data == {"csat": 2, "comment": "Took three transfers", "via": "email"}

    reused = await client.post(f"/survey/{token}", data={"csat": "5"})
    assert reused.status_code == 409 and "answered this survey already" in reused.text
    assert (await client.get(f"/survey/{token}")).status_code == 409


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t.replace(t.split(".")[1], str(int(t.split(".")[1]) + 86_400)),  # a later expiry
        lambda t: uuid.uuid4().hex + "." + t.split(".", 1)[1],  # another invitation id
        lambda t: "not-a-token",
    ],
)
async def test_an_altered_or_forged_link_is_refused_and_records_nothing(db, settings, sink, client, alter):
    await _completed(db)
    await survey_pass(db, settings)
    token = LINK.search(sink.messages[0].parsed().get_content()).group(1)
    forged = alter(token)
    assert (await client.get(f"/survey/{forged}")).status_code == 404
    response = await client.post(f"/survey/{forged}", data={"csat": "1"})
    assert response.status_code == 404 and "not valid" in response.text
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(CustomerFeedback)) == 0
        await s.commit()


async def test_an_expired_link_gets_its_own_page(db, settings, sink, client):
    await _completed(db)
    await survey_pass(db, settings, now=utcnow() - timedelta(days=settings.survey_link_days, minutes=1))
    token = LINK.search(sink.messages[0].parsed().get_content()).group(1)
    page = await client.get(f"/survey/{token}")
    assert page.status_code == 410 and "closed" in page.text
    assert (await client.post(f"/survey/{token}", data={"csat": "4"})).status_code == 410


async def test_nobody_answered_means_no_survey(db, settings, sink):
    await _completed(db, answered=False)
    result = await survey_pass(db, settings)
    assert (result.invited, result.skipped, result.sent) == (0, 0, 0) and sink.messages == []
    async with db.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(SurveyInvitation)) == 0
        await s.commit()


async def test_a_customer_is_surveyed_at_most_once_in_the_cap(db, settings, sink):
    first = await _completed(db)
    second = await _completed(db)
    result = await survey_pass(db, settings)
    assert (result.invited, result.skipped, result.sent) == (1, 1, 1)
    async with db.sessionmaker() as s:
        rows = {r.interaction_id: r for r in await s.scalars(select(SurveyInvitation))}
        await s.commit()
    assert rows[first].status == SurveyStatus.SENT
    assert rows[second].status == SurveyStatus.SKIPPED and rows[second].reason == SkipReason.FREQUENCY_CAP
    [skipped] = await _events(db, second, "survey_skipped")
    assert skipped.data["reason"] == "frequency_cap"


async def test_the_queue_chooses_the_questions(db, settings, sink, client):
    async with db.sessionmaker() as s:
        await make_queue(s, "mortgages", channels=["email"], settings={"survey": ["nps", "ces"]})
    await _completed(db, queue="mortgages")
    await survey_pass(db, settings)
    token = LINK.search(sink.messages[0].parsed().get_content()).group(1)
    page = await client.get(f"/survey/{token}")
    assert 'name="nps"' in page.text and 'name="ces"' in page.text and 'name="csat"' not in page.text
    out_of_range = await client.post(f"/survey/{token}", data={"nps": "11", "ces": "3"})
    assert out_of_range.status_code == 422 and 'id="nps-error"' in out_of_range.text
    done = await client.post(f"/survey/{token}", data={"nps": "9", "ces": "6"})
    assert done.status_code == 200
    async with db.sessionmaker() as s:
        feedback = await s.scalar(select(CustomerFeedback))
        assert (feedback.csat, feedback.nps, feedback.ces) == (None, 9, 6)
        await s.commit()


async def test_a_call_gets_its_link_by_text_and_a_refusing_carrier_is_retried(db, settings, sink):
    carrier = FakeCarrier()
    carrier.thread.start()
    try:
        texting = settings.model_copy(
            update={
                "carrier_api_url": carrier.url,
                "carrier_account_sid": "AC123",
                "carrier_auth_token": "secret",
                "public_base_url": "https://bank.example",
            }
        )
        await _completed(db, channel="voice", kind="phone", value="+447911123456")
        carrier.fail_with = 503
        refused = await survey_pass(db, texting)
        assert (refused.invited, refused.sent, refused.failed) == (1, 0, 1)
        carrier.fail_with = None
        retried = await survey_pass(db, texting)
        assert (retried.invited, retried.sent) == (0, 1)
        path, _, form = carrier.updates[-1]
        assert path.endswith("/Messages.json") and form["To"] == ["+447911123456"]
        assert "https://bank.example/survey/" in form["Body"][0]
        assert sink.messages == []
    finally:
        carrier.server.shutdown()


async def test_a_chat_is_asked_inline_and_counts_for_the_cap(db, settings, sink):
    chat_id = await _completed(db, channel="chat", kind="email", value="edith@example.org")
    call_id = await _completed(db, channel="email", kind="email", value="edith@example.org")
    result = await survey_pass(db, settings)
    assert result.sent == 0 and sink.messages == []
    async with db.sessionmaker() as s:
        rows = {r.interaction_id: r for r in await s.scalars(select(SurveyInvitation))}
        await s.commit()
    assert rows[chat_id].status == SurveyStatus.INLINE
    assert rows[call_id].reason == SkipReason.FREQUENCY_CAP
