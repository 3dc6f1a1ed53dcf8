"""What the rules editor tells a supervisor about a condition as they type: the parser's verdict
(with the position of the first problem) and completions for the word being typed.

The verdict is ``routing.conditions.Condition`` itself, the parser the engine compiles with, so
the editor can never accept a condition the engine would refuse. Completions come from the
attributes a schema declares and the values the floor knows (tiers, channels, languages, topics,
queues, teams, skills).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from customers.models import ValueTier
from interactions.chat import TOPICS
from interactions.states import Channel, Direction
from interactions.voice.ivr import MENU
from routing.conditions import (
    INTERACTION_SCHEMA,
    TARGET_SCHEMA,
    Condition,
    ConditionError,
    Schema,
)
from workforce.models import Agent, Queue, Skill

ConditionKind = Literal["when", "target"]
SCHEMAS: dict[str, Schema] = {"when": INTERACTION_SCHEMA, "target": TARGET_SCHEMA}
KEYWORDS = ("and", "or", "not", "in", "true", "false")
MAX_COMPLETIONS = 30


@dataclass(frozen=True)
class Verdict:
    valid: bool
    message: str = ""
    position: int = 0  # 0-based offset of the problem in the text

    @property
    def column(self) -> int:
        return self.position + 1


def check(text: str, kind: ConditionKind) -> Verdict:
    """The parser's verdict on ``text`` as a filter's ``when`` or a step's ``target``."""
    try:
        Condition(text, SCHEMAS[kind])
    except ConditionError as exc:
        return Verdict(False, exc.message, min(exc.pos, len(text)))
    return Verdict(True)


def attribute_names(kind: ConditionKind, skills: Sequence[str] = ()) -> list[str]:
    """Every name a condition of this kind may read (``skills.<name>`` for each known skill)."""
    schema = SCHEMAS[kind]
    names = sorted(schema.attrs)
    for prefix in sorted(schema.maps):
        names += [f"{prefix}.{s}" for s in sorted(skills)]
    return names


# Which known values an attribute compares with (agent ``languages`` share the customers').
VALUE_SOURCES: dict[str, str] = {
    "channel": "channels",
    "direction": "directions",
    "customer.tier": "tiers",
    "customer.language": "languages",
    "languages": "languages",
    "customer.segments": "segments",
    "interaction.topic": "topics",
    "interaction.intent": "intents",
    "queue.name": "queues",
    "teams": "teams",
}
SEGMENTS = ("senior", "vulnerable", "private-banking", "student", "business")
LANGUAGES = ("en", "zh", "yue", "es", "fr", "pl", "pa", "ur", "ar")


# Known values read from every agent's row: only fetched when a completion needs them (the check
# runs on each pause in typing, and a floor may have thousands of agents).
AGENT_SOURCES = frozenset({"languages", "teams"})


async def known_values(session: AsyncSession, *, agents_too: bool = True) -> dict[str, list[str]]:
    """The values the floor knows, per kind (see ``VALUE_SOURCES``), plus ``skills``; without
    ``agents_too`` the agents' languages and teams are left out (the shipped languages stay)."""
    agents = (await session.execute(select(Agent.languages, Agent.teams))).all() if agents_too else []
    languages = set(LANGUAGES) | {lang for langs, _ in agents for lang in langs or ()}
    teams = {team for _, ts in agents for team in ts or ()}
    topics = {t for t in TOPICS if t != "other"} | {option.topic for option in MENU}
    return {
        "channels": [c.value for c in Channel],
        "directions": [d.value for d in Direction],
        "tiers": [t.value for t in ValueTier],
        "languages": sorted(languages),
        "segments": list(SEGMENTS),
        "topics": sorted(topics),
        "intents": ["human"],
        "queues": sorted(await session.scalars(select(Queue.name))),
        "teams": sorted(teams),
        "skills": sorted(await session.scalars(select(Skill.name))),
    }


_PARTIAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")
_OPEN_STRING = re.compile(
    r"""(?P<attr>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:==|!=|not\s+in|in)\s*\[?"""
    r"""(?:\s*"[^"]*"\s*,)*\s*"(?P<partial>[^"]*)$"""
)
_AFTER_OPERATOR = re.compile(r"(?P<attr>[A-Za-z_][A-Za-z0-9_.]*)\s*(?:==|!=)\s*$")


def value_source(text: str) -> str | None:
    """Which known values (a ``VALUE_SOURCES`` value) the end of ``text`` is asking for, if any."""
    found = _OPEN_STRING.search(text) or _AFTER_OPERATOR.search(text)
    return VALUE_SOURCES.get(found["attr"]) if found is not None else None


def completions(text: str, kind: ConditionKind, values: Mapping[str, Sequence[str]]) -> list[str]:
    """Whole-text completions of the word at the end of ``text`` (what a ``<datalist>`` offers):
    an attribute name or keyword being typed, or a value inside an open string after a comparison."""
    names = attribute_names(kind, values.get("skills", ()))
    out: list[str] = []
    opened = _OPEN_STRING.search(text)
    if opened is not None:
        source = VALUE_SOURCES.get(opened["attr"])
        partial = opened["partial"]
        head = text[: len(text) - len(partial)]
        out = [f'{head}{v}"' for v in values.get(source or "", ()) if v.startswith(partial) and v != partial]
    elif (after := _AFTER_OPERATOR.search(text)) is not None:
        source = VALUE_SOURCES.get(after["attr"])
        sep = "" if text.endswith(" ") else " "
        out = [f'{text}{sep}"{v}"' for v in values.get(source or "", ())]
    elif text.count('"') % 2 == 0 and (partial_name := _PARTIAL_NAME.search(text)) is not None:
        word = partial_name.group()
        head = text[: partial_name.start()]
        out = [head + n for n in (*names, *KEYWORDS) if n.startswith(word) and n != word]
    elif text.count('"') % 2 == 0 and (not text.strip() or text.endswith((" ", "("))):
        out = [text + n for n in names]
    return out[:MAX_COMPLETIONS]
