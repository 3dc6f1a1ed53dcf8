"""A merge through the API moves what the layers above customers own (the app's movers): the
source's interactions, survey answers, survey invitations and follow-ups go to the target."""

from __future__ import annotations

from sqlalchemy import select

from experience.survey_models import SurveyDelivery, SurveyInvitation, SurveyStatus
from interactions.models import Interaction, TimelineEvent
from switchboard.auth.models import Role
from tests.factories import make_customer, make_interaction


async def test_the_merge_route_moves_the_rows_of_every_layer(client, db, make_user):
    async with db.sessionmaker() as s:
        target = await make_customer(s, display_name="Ada Lovelace")
        source = await make_customer(s, display_name="Caller 0002")
        interaction = await make_interaction(s, customer=source)
        s.add(
            SurveyInvitation(
                interaction_id=interaction.id,
                customer_id=source.id,
                channel="chat",
                delivery=SurveyDelivery.INLINE,
                questions=["csat"],
                status=SurveyStatus.INLINE,
            )
        )
        await s.commit()
    _, headers = await make_user(Role.SUPERVISOR)
    response = await client.post(
        f"/api/customers/{target.id}/merge", json={"source_customer_id": str(source.id)}, headers=headers
    )
    assert response.status_code == 200, response.text
    async with db.sessionmaker() as s:
        assert (await s.get(Interaction, interaction.id)).customer_id == target.id
        assert (await s.scalar(select(SurveyInvitation))).customer_id == target.id
        event = await s.scalar(select(TimelineEvent).where(TimelineEvent.kind == "customer_merged"))
        await s.commit()
    assert event.data["moved"] == {
        "identities": 1,
        "users": 0,
        "interactions": 1,
        "feedback": 0,
        "survey_invitations": 1,
        "follow_ups": 0,
    }
