"""The administered entities, each described once: the domain's service and write schema, what
refuses its delete, what routing is told, and its form and list. ``console.admin.kit`` makes the
API and pages of each from this."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.admin import usage
from console.admin.forms import FormField, static_choices
from console.admin.kit import Admin
from customers.models import Customer
from interactions import queue_texts
from switchboard.auth import admin as user_admin
from switchboard.auth.models import Role, User
from switchboard.crud import Entity
from workforce import admin_service as wf
from workforce.admin_schemas import CHANNELS, AgentWrite, QueueWrite, SkillWrite, TeamWrite
from workforce.models import Queue, SelectionStrategy, Skill, Team
from workforce.queues import POLICY_LABELS


async def skill_choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
    return [(n, n) for n in await session.scalars(select(Skill.name).order_by(Skill.name))]


async def team_choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
    rows = await session.execute(select(Team.name, Team.display_name).order_by(Team.display_name))
    return [(name, display) for name, display in rows]


async def queue_choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
    rows = await session.execute(select(Queue.id, Queue.display_name).order_by(Queue.display_name))
    return [(str(key), display) for key, display in rows]


async def staff_choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
    rows = await session.scalars(select(User).where(User.role != Role.CUSTOMER).order_by(User.username))
    return [(str(u.id), f"{u.display_name} ({u.username})") for u in rows]


async def owner_choices(session: AsyncSession) -> Sequence[tuple[str, str]]:
    rows = await session.scalars(
        select(User).where(User.role.in_([Role.SUPERVISOR, Role.ADMIN])).order_by(User.username)
    )
    return [("", "Nobody"), *((str(u.id), f"{u.display_name} ({u.username})") for u in rows)]


CHANNEL_CHOICES = static_choices([(c, c) for c in CHANNELS])
POLICY_CHOICES = static_choices([(p.value, label) for p, label in POLICY_LABELS.items()])
STRATEGY_CHOICES = static_choices([(s.value, s.value.replace("_", " ")) for s in SelectionStrategy])


def _join(values: Any) -> str:
    if isinstance(values, dict):
        return ", ".join(f"{k} {v}" for k, v in values.items()) or "—"
    return ", ".join(str(v) for v in values) or "—"


SKILLS = Admin(
    entity=Entity(
        slug="skills",
        noun="skill",
        title="Skills",
        entity_type="skill",
        write=SkillWrite,
        service=wf.skills,
        create_only=frozenset({"name"}),
        in_use=(wf.skill_in_use, usage.skill_in_rules),
    ),
    fields=(
        FormField(
            "name", "Name", help="As rules and queues use it: lower case, digits, - and _", create_only=True
        ),
        FormField("description", "Description"),
    ),
    columns=(("Skill", lambda r: r["name"]), ("Description", lambda r: r["description"] or "—")),
    base="/supervisor/skills",
    intro="What agents can do; queues require skills and rules rank agents by them. Languages are "
    "set per agent (codes such as en, yue, pl).",
)

TEAMS = Admin(
    entity=Entity(
        slug="teams",
        noun="team",
        title="Teams",
        entity_type="team",
        write=TeamWrite,
        service=wf.teams,
        create_only=frozenset({"name"}),
        in_use=(wf.team_in_use,),
    ),
    fields=(
        FormField("name", "Name", help="As rules use it: lower case, digits, - and _", create_only=True),
        FormField("display_name", "Display name"),
        FormField("description", "Description"),
        FormField(
            "lead_user_id",
            "Team lead",
            kind="select",
            choices=owner_choices,
            help="Alerts about the team's work go to them",
        ),
    ),
    columns=(("Team", lambda r: r["display_name"]), ("Name", lambda r: r["name"])),
    base="/supervisor/teams",
    intro="Groups of agents; the wallboard filters by team and rules may prefer one.",
)

QUEUES = Admin(
    entity=Entity(
        slug="queues",
        noun="queue",
        title="Queues",
        entity_type="queue",
        write=QueueWrite,
        service=wf.queues,
        create_only=frozenset({"name"}),
        in_use=(usage.queue_in_rules, usage.queue_has_interactions),
        notices=wf.queue_notices,
    ),
    fields=(
        FormField("name", "Name", help="As rules use it: lower case, digits, - and _", create_only=True),
        FormField("display_name", "Display name"),
        FormField("channels", "Channels", kind="checkboxes", choices=CHANNEL_CHOICES),
        FormField("sl_target_percent", "Service level target (%)", kind="number", low=1, high=100),
        FormField("sl_threshold_seconds", "Answered within (seconds)", kind="number", low=1, high=3600),
        FormField(
            "offer_timeout_seconds",
            "Offer timeout (seconds)",
            kind="number",
            low=5,
            high=600,
            help="How long an agent has to answer an offer; empty: the channel's default",
        ),
        FormField("wrap_up_seconds", "After-contact work (seconds)", kind="number", low=0, high=3600),
        FormField(
            "offer_policy",
            "Offer policy",
            kind="select",
            choices=POLICY_CHOICES,
            help="One offer at a time: the next after an answer or expiry; calls are always one at a time",
        ),
        FormField("strategy", "Agent selection", kind="select", choices=STRATEGY_CHOICES),
        FormField(
            "required_skills",
            "Required skills (level 1-5)",
            kind="levels",
            choices=skill_choices,
            low=1,
            high=5,
            help="Agents with all of these at least at the level serve the queue; leave empty for none",
        ),
        FormField(
            "owner_user_id",
            "Owner",
            kind="select",
            choices=owner_choices,
            help="Alerts about the queue go to them",
        ),
    ),
    columns=(
        ("Queue", lambda r: r["display_name"]),
        ("Name", lambda r: r["name"]),
        ("Channels", lambda r: _join(r["channels"])),
        ("Service level", lambda r: f"{r['sl_target_percent']}% in {r['sl_threshold_seconds']} s"),
        ("ACW", lambda r: f"{r['wrap_up_seconds']} s"),
        ("Required skills", lambda r: _join(r["required_skills"])),
    ),
    base="/supervisor/queues",
    intro="Where work waits. Changes reach routing at once: an agent who now qualifies is offered "
    "waiting work without a restart.",
    list_page=False,  # console.queue_pages: the list, with the offer policy and chat wait per queue
)


class Details:
    def __init__(self, title: str, lines: list[str]) -> None:
        self.title, self.lines = title, lines


async def agent_details(session: AsyncSession, row: Any) -> Details:
    """The relationship-manager portfolio (customers assign their manager; shown here)."""
    customers = (
        await session.scalars(
            select(Customer.display_name)
            .where(Customer.relationship_manager_id == row.id, Customer.merged_into_id.is_(None))
            .order_by(Customer.display_name)
            .limit(50)
        )
    ).all()
    lines = list(customers) or ["No customers: this agent is nobody's relationship manager."]
    return Details("Relationship-manager portfolio", lines)


AGENTS = Admin(
    entity=Entity(
        slug="agents",
        noun="agent",
        title="Agents",
        entity_type="agent",
        write=AgentWrite,
        service=wf.agents,
        create_only=frozenset({"user_id"}),
        in_use=(
            wf.agent_in_use,
            usage.agent_has_interactions,
            usage.agent_has_offers,
            usage.agent_has_portfolio,
        ),
        notices=wf.agent_notices,
    ),
    fields=(
        FormField("user_id", "Staff user", kind="select", choices=staff_choices, create_only=True),
        FormField("display_name", "Display name"),
        FormField("languages", "Languages", kind="tags", help="Codes, separated by commas: en, yue, pl"),
        FormField("teams", "Teams", kind="checkboxes", choices=team_choices),
        FormField(
            "skills",
            "Skills (proficiency 1-5)",
            kind="levels",
            choices=skill_choices,
            low=1,
            high=5,
            help="Leave a skill empty if the agent does not have it",
        ),
        FormField(
            "channel_max",
            "Capacity per channel",
            kind="levels",
            choices=CHANNEL_CHOICES,
            low=0,
            high=20,
            help="Most interactions of each channel at once; a call blocks other work",
        ),
    ),
    columns=(
        ("Agent", lambda r: r["display_name"]),
        ("Status", lambda r: r["presence"].replace("_", " ")),
        ("Teams", lambda r: _join(r["teams"])),
        ("Skills", lambda r: _join(r["skills"])),
        ("Languages", lambda r: _join(r["languages"])),
        ("Capacity", lambda r: _join(r["channel_max"])),
    ),
    base="/supervisor/agents",
    intro="Who takes work, with which skills and how much at once. Saved changes reach routing at "
    "once: an agent given a skill is offered work needing it without a restart.",
    details=agent_details,
)

WRAP_UP_CODES = Admin(
    entity=Entity(
        slug="wrap-up-codes",
        noun="wrap-up code",
        title="Wrap-up codes",
        entity_type="wrap_up_code",
        write=queue_texts.WrapUpCodeWrite,
        service=queue_texts.wrap_up_codes,
        create_only=frozenset({"queue_id"}),
    ),
    fields=(
        FormField("queue_id", "Queue", kind="select", choices=queue_choices, create_only=True),
        FormField("code", "Code", help="As reports use it: lower case, digits and _ (e.g. card_replaced)"),
    ),
    columns=(("Code", lambda r: r["code"]), ("Queue", lambda r: r["queue"])),
    base="/supervisor/wrap-up-codes",
    intro="What agents choose when they wrap up, per queue. A queue without codes of its own offers "
    f"the defaults: {', '.join(queue_texts.DEFAULT_DISPOSITIONS)}. Deleting a code takes it off the "
    "queue's list; interactions already wrapped up with it keep it.",
)

CANNED_RESPONSES = Admin(
    entity=Entity(
        slug="canned-responses",
        noun="canned response",
        title="Canned responses",
        entity_type="canned_response",
        write=queue_texts.CannedResponseWrite,
        service=queue_texts.canned_responses,
        create_only=frozenset({"queue_id"}),
    ),
    fields=(
        FormField("queue_id", "Queue", kind="select", choices=queue_choices, create_only=True),
        FormField("title", "Title"),
        FormField(
            "body",
            "Text",
            kind="textarea",
            help="Placeholders filled in for the agent: "
            + ", ".join(f"{{{k}}} ({v})" for k, v in queue_texts.PLACEHOLDERS.items()),
        ),
    ),
    columns=(("Title", lambda r: r["title"]), ("Queue", lambda r: r["queue"]), ("Text", lambda r: r["body"])),
    base="/supervisor/canned-responses",
    intro="Approved texts agents insert into replies, per queue; queues without their own offer the "
    "bank-wide defaults.",
)

USERS = Admin(
    entity=Entity(
        slug="users",
        noun="user",
        title="Users",
        entity_type="user",
        write=user_admin.UserWrite,
        service=user_admin.users,
        create_only=frozenset({"username"}),
        role=Role.ADMIN,
        secret=frozenset({"password"}),
        policy=user_admin.password_policy,
    ),
    fields=(
        FormField("username", "Username", create_only=True),
        FormField("display_name", "Display name"),
        FormField("email", "Email"),
        FormField("role", "Role", kind="select", choices=static_choices([(r.value, r.value) for r in Role])),
        FormField(
            "active",
            "Status",
            kind="select",
            choices=static_choices([("True", "Active"), ("False", "Disabled: cannot sign in")]),
            help="Disabling ends every session of the user at once",
        ),
        FormField(
            "password",
            "Password",
            kind="password",
            help="Required for a new user; for an existing one, a reset: leave empty to keep it. "
            "Every session of the user ends.",
        ),
    ),
    columns=(("User", lambda r: r["display_name"]), ("Username", lambda r: r["username"])),
    base="/admin/users",
    list_page=False,  # switchboard.auth.admin_pages: the list with disable / enable per row
)

# The order of the console's administration menu.
ADMINS: tuple[Admin, ...] = (QUEUES, SKILLS, AGENTS, TEAMS, WRAP_UP_CODES, CANNED_RESPONSES, USERS)
