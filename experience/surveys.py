"""Surveys on every channel (issue #12 item 1): what each invitation asks, signed one-time links,
and recording an answer.

* **Which questions**: each queue lists them in ``queue.settings["survey"]`` (any of ``csat``,
  ``nps``, ``ces``; an empty list asks nothing); a queue that says nothing asks CSAT.
* **Whether to ask** (``plan``): only completed interactions an agent answered are considered
  (the pass in ``survey_jobs`` selects them); a customer surveyed within ``survey_cap_days`` is
  not asked again; chat asks inline (the widget, when the chat ends); email and tickets get a
  link by email, calls a link by text message.
* **Links** carry the invitation id and expiry, signed with a key derived from ``secret_key``
  (keys in ``previous_secret_keys`` still verify after a rotation). A forged or altered link, an
  expired one and one already answered each get their own page; ``answer`` sets ``answered_at``
  by compare-and-set, so two submits of one link record one answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import Identity, IdentityKind
from experience.survey_models import SkipReason, SurveyDelivery, SurveyInvitation, SurveyStatus
from interactions.feedback import record_feedback
from interactions.feedback_models import CustomerFeedback
from interactions.models import Interaction
from interactions.states import Channel
from switchboard.db import utcnow
from switchboard.errors import Conflict
from switchboard.settings import Settings
from workforce.models import Queue

QUESTIONS = ("csat", "nps", "ces")
DEFAULT_QUESTIONS = ["csat"]
SCALES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
PROMPTS = {
    "csat": "How satisfied are you with the help you got?",
    "nps": "How likely are you to recommend us to a friend or colleague?",
    "ces": "How easy was it to get what you needed?",
}
ENDS = {
    "csat": ("Very dissatisfied", "Very satisfied"),
    "nps": ("Not at all likely", "Extremely likely"),
    "ces": ("Very difficult", "Very easy"),
}
LINK_KEY_CONTEXT = b"switchboard survey links v1"
# Statuses that count as "asked" for the frequency cap.
ASKED = (SurveyStatus.PENDING, SurveyStatus.SENT, SurveyStatus.INLINE, SurveyStatus.ANSWERED)


def questions_for(queue: Queue | None) -> list[str]:
    configured = (queue.settings or {}).get("survey") if queue is not None else None
    if not isinstance(configured, list):
        return list(DEFAULT_QUESTIONS)
    return [q for q in QUESTIONS if q in configured]


# ----------------------------------------------------------------------------------- links


def _link_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), LINK_KEY_CONTEXT, hashlib.sha256).digest()


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(_link_key(secret), payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_token(invitation: SurveyInvitation, settings: Settings) -> str:
    assert invitation.expires_at is not None
    payload = f"{invitation.id.hex}.{int(invitation.expires_at.timestamp())}"
    return f"{payload}.{_signature(settings.secret_key, payload)}"


def link_url(invitation: SurveyInvitation, settings: Settings) -> str:
    base = (settings.public_base_url or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/survey/{link_token(invitation, settings)}"


class LinkProblem(StrEnum):
    FORGED = "forged"  # not signed by us, altered, or no such invitation
    EXPIRED = "expired"
    ANSWERED = "answered"


@dataclass(frozen=True)
class OpenSurvey:
    invitation: SurveyInvitation
    interaction: Interaction


def _verified_id(token: str, settings: Settings) -> tuple[uuid.UUID, int] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    id_hex, expiry, signature = parts
    payload = f"{id_hex}.{expiry}"
    for secret in (settings.secret_key, *settings.previous_secret_keys):
        if hmac.compare_digest(_signature(secret, payload), signature):
            try:
                return uuid.UUID(hex=id_hex), int(expiry)
            except ValueError:
                return None
    return None


async def open_link(
    session: AsyncSession, token: str, settings: Settings, now: datetime | None = None
) -> OpenSurvey | LinkProblem:
    """The survey behind ``token``, or why it cannot be answered."""
    now = now or utcnow()
    verified = _verified_id(token, settings)
    if verified is None:
        return LinkProblem.FORGED
    invitation = await session.get(SurveyInvitation, verified[0])
    if invitation is None or invitation.expires_at is None:
        return LinkProblem.FORGED
    if int(invitation.expires_at.timestamp()) != verified[1]:
        return LinkProblem.FORGED
    if invitation.answered_at is not None or invitation.status == SurveyStatus.ANSWERED:
        return LinkProblem.ANSWERED
    if invitation.expires_at <= now:
        return LinkProblem.EXPIRED
    interaction = await session.get(Interaction, invitation.interaction_id)
    if interaction is None:
        return LinkProblem.FORGED
    return OpenSurvey(invitation, interaction)


# ------------------------------------------------------------------------------ answering


@dataclass(frozen=True)
class Answers:
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    comment: str | None = None

    def scores(self) -> dict[str, int]:
        return {q: v for q in QUESTIONS if (v := getattr(self, q)) is not None}


def check_answers(questions: list[str], answers: Answers) -> dict[str, str]:
    """Field → message for every question asked and not answered in range (empty: all good)."""
    errors = {}
    for question in questions:
        value = getattr(answers, question)
        low, high = SCALES[question]
        if value is None or not low <= value <= high:
            errors[question] = f"Choose a number from {low} to {high}"
    for question in QUESTIONS:
        if question not in questions and getattr(answers, question) is not None:
            errors[question] = "This survey does not ask that question"
    if answers.comment is not None and len(answers.comment) > 2000:
        errors["comment"] = "Keep the comment under 2,000 characters"
    return errors


async def answer(
    session: AsyncSession, survey: OpenSurvey, answers: Answers, *, now: datetime | None = None
) -> CustomerFeedback:
    """Record the answer (once: the compare-and-set on ``answered_at`` decides); the caller commits."""
    now = now or utcnow()
    invitation, interaction = survey.invitation, survey.interaction
    claimed = await session.execute(
        update(SurveyInvitation)
        .where(SurveyInvitation.id == invitation.id, SurveyInvitation.answered_at.is_(None))
        .values(answered_at=now, status=SurveyStatus.ANSWERED)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("This survey has been answered already", field="token")
    return await record_feedback(
        session,
        interaction,
        scores=answers.scores(),
        comment=answers.comment,
        now=now,
        already="We already have your answer for this conversation",  # answered in the chat already
        field="token",
        event_extra={"comment": answers.comment or None, "via": invitation.delivery.value},
    )


# ------------------------------------------------------------------------------- planning


async def address_for(session: AsyncSession, interaction: Interaction, kind: IdentityKind) -> str | None:
    """Where to send the link: the identity the customer used for this contact, else their newest
    identity of that kind."""
    used = interaction.contact_identity or {}
    if used.get("kind") == kind.value and used.get("value"):
        return str(used["value"])
    value = await session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == interaction.customer_id, Identity.kind == kind)
        .order_by(Identity.created_at.desc())
        .limit(1)
    )
    return value


async def recently_asked(session: AsyncSession, customer_id: uuid.UUID, days: int, now: datetime) -> bool:
    if days <= 0:
        return False
    return bool(
        await session.scalar(
            select(
                exists().where(
                    SurveyInvitation.customer_id == customer_id,
                    SurveyInvitation.status.in_(ASKED),
                    SurveyInvitation.created_at > now - timedelta(days=days),
                )
            )
        )
    )


@dataclass(frozen=True)
class Planned:
    invitation: SurveyInvitation
    address: str | None  # where the link goes (email address or phone), when one is sent


async def plan(session: AsyncSession, interaction: Interaction, settings: Settings, now: datetime) -> Planned:
    """The invitation for one completed, answered interaction (not yet added to the session)."""
    queue = await session.get(Queue, interaction.queue_id) if interaction.queue_id else None
    questions = questions_for(queue)
    invitation = SurveyInvitation(
        interaction_id=interaction.id,
        customer_id=interaction.customer_id,
        channel=interaction.channel.value,
        delivery=SurveyDelivery.NONE,
        questions=questions,
        status=SurveyStatus.SKIPPED,
        created_at=now,
    )
    if not questions:
        invitation.reason = SkipReason.QUEUE_ASKS_NONE
        return Planned(invitation, None)
    if await recently_asked(session, interaction.customer_id, settings.survey_cap_days, now):
        invitation.reason = SkipReason.FREQUENCY_CAP
        return Planned(invitation, None)
    if interaction.channel == Channel.CHAT:
        answered = await session.scalar(
            select(CustomerFeedback.created_at).where(CustomerFeedback.interaction_id == interaction.id)
        )
        invitation.delivery = SurveyDelivery.INLINE
        invitation.status = SurveyStatus.ANSWERED if answered else SurveyStatus.INLINE
        invitation.answered_at = answered
        return Planned(invitation, None)
    kind, delivery = (
        (IdentityKind.PHONE, SurveyDelivery.SMS)
        if interaction.channel == Channel.VOICE
        else (IdentityKind.EMAIL, SurveyDelivery.EMAIL)
    )
    address = await address_for(session, interaction, kind)
    if address is None:
        invitation.reason = SkipReason.NO_ADDRESS
        return Planned(invitation, None)
    invitation.delivery = delivery
    invitation.status = SurveyStatus.PENDING
    invitation.expires_at = now + timedelta(days=settings.survey_link_days)
    return Planned(invitation, address)
