"""What a supervisor writes when administering queues, skills, teams and agents (issue #11).

One write schema per entity serves create, PATCH (merged onto the current row, then validated
whole: ``switchboard.crud``) and the console's forms; ``Field`` descriptions are the API's
documentation and the forms' help text.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workforce.models import DEFAULT_CHANNEL_MAX, OfferPolicy, SelectionStrategy

CHANNELS = ("voice", "chat", "email", "ticket")
# Names the rules and other rows refer to: lower case, digits, '-' and '_'.
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]*$", min_length=2, max_length=60)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
Proficiency = Annotated[int, Field(ge=1, le=5)]
ChannelMax = Annotated[int, Field(ge=0, le=20)]


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SkillWrite(_Write):
    name: Slug = Field(description="The skill's name as rules and queues use it (e.g. card_fraud, lang-yue)")
    description: str = Field("", max_length=255, description="What the skill means, for supervisors")


class TeamWrite(_Write):
    name: Slug = Field(description="The team's name as rules and agents use it (e.g. cards-east)")
    display_name: Text = Field(description="The name supervisors see")
    description: str = Field("", max_length=255)
    lead_user_id: uuid.UUID | None = Field(None, description="Who leads it: alerts about its work go to them")


class QueueWrite(_Write):
    name: Slug = Field(description="The queue's name as rules use it (e.g. cards)")
    display_name: Text
    channels: list[str] = Field(min_length=1, description=f"Channels the queue serves: {', '.join(CHANNELS)}")
    sl_target_percent: int = Field(80, ge=1, le=100, description="Service level target, % answered in time")
    sl_threshold_seconds: int = Field(20, ge=1, le=3600, description="Answered within this many seconds")
    offer_timeout_seconds: int | None = Field(
        None,
        ge=5,
        le=600,
        description="Seconds an agent has to answer an offer; empty: the channel's default",
    )
    wrap_up_seconds: int = Field(60, ge=0, le=3600, description="After-contact-work time, seconds")
    offer_policy: OfferPolicy = Field(
        OfferPolicy.ONE_AT_A_TIME,
        description="one_at_a_time: an agent holds at most one pending offer of this queue's work; "
        "up_to_capacity: as many as free capacity allows",
    )
    strategy: SelectionStrategy = Field(
        SelectionStrategy.LONGEST_IDLE, description="Which free agent is offered"
    )
    required_skills: dict[str, Proficiency] = Field(
        default_factory=dict,
        description="Agents holding all these skills at least at this level serve the queue",
    )
    owner_user_id: uuid.UUID | None = Field(
        None, description="Who answers for its service (a supervisor): alerts about it go to them"
    )


class AgentWrite(_Write):
    user_id: uuid.UUID = Field(description="The staff user who works as this agent")
    display_name: Text
    languages: list[Language] = Field(default_factory=list, description="Languages spoken (e.g. en, yue, pl)")
    teams: list[str] = Field(default_factory=list, description="Teams the agent belongs to (team names)")
    skills: dict[str, Proficiency] = Field(default_factory=dict, description="Skill name: proficiency 1-5")
    channel_max: dict[str, ChannelMax] = Field(
        default_factory=lambda: dict(DEFAULT_CHANNEL_MAX),
        description="Most interactions at once per channel (voice blocks others)",
    )
