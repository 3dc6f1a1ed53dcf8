"""Commands into the routing engine: one ordered Redis Stream per partition.

Why in core and not in ``routing``: the producers sit below routing (every channel adapter in
``interactions`` tells the engine about new work; the desktop and routing's API send agents'
answers), and layers only point down. The protocol is a contract between the layers, like the
pub/sub topics of ``switchboard.events`` that carry the engine's decisions back up; only the
consumer (``routing.host``) knows what a command does. Nothing here imports a domain.

API processes never assign on their own (DESIGN §3): they append a command and, when the caller
needs the outcome (an agent clicking Accept), wait for the engine's reply (``switchboard.replies``).
Commands are idempotent against SQL, so the engine may re-read a few after a crash.

The protocol is this file: every command the engine understands is one dataclass below, written
onto the stream as its JSON (``{"type": ..., fields..., "request_id": ..., "reply": bool}``) and
parsed back into the same class by the engine (``parse``), which dispatches on the class.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import redis.asyncio as aioredis

from switchboard import replies
from switchboard.redis import rkey

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000


# ---------------------------------------------------------------------- the catalogue


@dataclass(frozen=True, kw_only=True)
class Command:
    """The envelope every command shares: who waits for the reply, if anyone."""

    type: ClassVar[str]
    # An agent's own click (accept, reject, presence): the urgent stream, which the engine reads
    # before bulk arrivals, so a burst of emails cannot starve it (``routing.host.lanes``).
    urgent: ClassVar[bool] = False
    request_id: str = ""
    reply: bool = False  # the sender waits for ``{"ok": bool, ...}`` (see ``switchboard.replies``)

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class Enqueue(Command):
    """A queued interaction exists in SQL: route it."""

    type: ClassVar[str] = "enqueue"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class Adopt(Command):
    """Work an agent holds that routing never offered (their own call, an email they write)."""

    type: ClassVar[str] = "adopt"
    interaction_id: str


@dataclass(frozen=True, kw_only=True)
class AgentChanged(Command):
    """An agent's profile or presence changed in SQL: the engine re-reads it."""

    type: ClassVar[str] = "agent_changed"
    urgent: ClassVar[bool] = True
    agent_id: str


@dataclass(frozen=True, kw_only=True)
class Accept(Command):
    type: ClassVar[str] = "accept"
    urgent: ClassVar[bool] = True
    offer_id: str  # the durable (SQL) offer id the desktop shows
    agent_id: str
    # When the API received the click (epoch seconds): the engine judges "in time" by it.
    received_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class Reject(Command):
    type: ClassVar[str] = "reject"
    urgent: ClassVar[bool] = True
    offer_id: str
    agent_id: str
    received_at: float | None = None


@dataclass(frozen=True, kw_only=True)
class WrapUp(Command):
    type: ClassVar[str] = "wrap_up"
    interaction_id: str
    agent_id: str | None = None  # must be the holder


@dataclass(frozen=True, kw_only=True)
class Complete(Command):
    type: ClassVar[str] = "complete"
    interaction_id: str
    agent_id: str | None = None  # must be the holder, in wrap-up


@dataclass(frozen=True, kw_only=True)
class Abandon(Command):
    """The customer gave up (adapters, supervisors): the work leaves routing."""

    type: ClassVar[str] = "abandon"
    interaction_id: str
    agent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Transfer(Command):
    """Blind or warm transfer to a queue or a named agent; the note travels with it."""

    type: ClassVar[str] = "transfer"
    interaction_id: str
    agent_id: str
    mode: str = "blind"  # "blind" | "warm"
    note: str | None = None
    to_queue: str | None = None
    to_agent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class CancelConsult(Command):
    """The sender withdraws a warm transfer still waiting for its target."""

    type: ClassVar[str] = "cancel_consult"
    interaction_id: str
    agent_id: str


@dataclass(frozen=True, kw_only=True)
class PreviewRules(Command):
    """What publishing rule-set ``version`` and re-evaluating would move (changes nothing)."""

    type: ClassVar[str] = "preview_rules"
    version: int


@dataclass(frozen=True, kw_only=True)
class Reevaluate(Command):
    """Route all waiting work again by the live rule set."""

    type: ClassVar[str] = "reevaluate"


@dataclass(frozen=True, kw_only=True)
class Explain(Command):
    """Dry run: where would this interaction (or context) go now, and who would take it."""

    type: ClassVar[str] = "explain"
    context: dict[str, Any] = field(default_factory=dict)
    interaction_id: str | None = None
    version: int | None = None  # a rule-set version to try (a draft); None: the live one


@dataclass(frozen=True, kw_only=True)
class RuleSetPublished(Command):
    """A new rule-set version went live: new arrivals use it."""

    type: ClassVar[str] = "rule_set_published"


@dataclass(frozen=True, kw_only=True)
class Rebuild(Command):
    """Throw the engine's state away and rebuild it from SQL (an operator's explicit request)."""

    type: ClassVar[str] = "rebuild"


@dataclass(frozen=True, kw_only=True)
class QueuesChanged(Command):
    """A supervisor changed a queue's settings in SQL (its offer policy): the engine re-reads them."""

    type: ClassVar[str] = "queues_changed"


@dataclass(frozen=True, kw_only=True)
class Move(Command):
    """A supervisor moves waiting (or offered) work to another queue or a named agent; it keeps
    its place (virtual start). ``actor_id``: the supervisor, for the timeline and the audit."""

    type: ClassVar[str] = "move"
    interaction_id: str
    actor_id: str
    reason: str
    to_queue: str | None = None
    to_agent_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reprioritise(Command):
    """A supervisor raises or lowers waiting work's priority."""

    type: ClassVar[str] = "reprioritise"
    interaction_id: str
    actor_id: str
    reason: str
    priority: int


CATALOGUE: dict[str, type[Command]] = {
    cls.type: cls
    for cls in (
        Enqueue,
        Adopt,
        AgentChanged,
        Accept,
        Reject,
        WrapUp,
        Complete,
        Abandon,
        Transfer,
        CancelConsult,
        PreviewRules,
        Reevaluate,
        Explain,
        RuleSetPublished,
        Rebuild,
        QueuesChanged,
        Move,
        Reprioritise,
    )
}


class UnknownCommand(ValueError):
    pass


class MalformedCommand(ValueError):
    pass


def parse(raw: dict[str, Any]) -> Command:
    """The command a stream entry (or a producer's dict) describes; unknown fields are ignored."""
    kind = raw.get("type")
    cls = CATALOGUE.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise UnknownCommand(f"unknown command {kind!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in raw.items() if k in names})
    except TypeError as exc:  # a required field missing
        raise MalformedCommand(f"malformed command: {exc}") from exc


# ---------------------------------------------------------------------- the stream


def stream_key(partition: str = "default") -> str:
    return rkey("routing", partition, "commands")


def cursor_key(partition: str = "default") -> str:
    return rkey("routing", partition, "cursor")


def urgent_stream_key(partition: str = "default") -> str:
    return rkey("routing", partition, "urgent")


def urgent_cursor_key(partition: str = "default") -> str:
    return rkey("routing", partition, "urgent-cursor")


class EngineUnavailable(Exception):
    """No engine answered in time (none holds the lease, or it is rebuilding). The command was
    sent: ``request_id`` is where its outcome appears if an engine applies it later."""

    def __init__(self, detail: str, request_id: str | None = None) -> None:
        super().__init__(detail)
        self.request_id = request_id


def encode(command: Command | dict[str, Any]) -> tuple[str, str]:
    """(request id, the stream entry's JSON); a dict is checked against the catalogue first."""
    typed = parse(command) if isinstance(command, dict) else command
    request_id = typed.request_id or uuid.uuid4().hex
    return request_id, json.dumps({**typed.as_json(), "request_id": request_id}, default=str)


async def send(
    client: aioredis.Redis, command: Command | dict[str, Any], *, partition: str = "default"
) -> str:
    """Append a command to its lane; returns its request id. Fire-and-forget: SQL already holds
    the truth."""
    typed = parse(command) if isinstance(command, dict) else command
    request_id, payload = encode(typed)
    key = urgent_stream_key(partition) if typed.urgent else stream_key(partition)
    await client.xadd(key, {"c": payload}, maxlen=STREAM_MAXLEN, approximate=True)
    return request_id


async def notify_rules_changed(client: aioredis.Redis) -> None:
    """Tell the engine another rule-set version is live. Best effort: the version is committed in
    SQL, and the engine's reconcile pass (every few seconds) or its next take-over reads it anyway."""
    try:
        await send(client, RuleSetPublished())
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
        log.warning("could not tell the routing engine of the new rule set; reconcile will find it")


async def notify_enqueued(client: aioredis.Redis, interaction_id: object) -> None:
    """Tell the engine a queued interaction exists. Best effort by design: if Redis is down the
    interaction is already committed as queued, and the engine's reconcile pass routes it anyway."""
    try:
        await send(client, Enqueue(interaction_id=str(interaction_id)))
    except (aioredis.ConnectionError, OSError):
        log.warning("could not notify the routing engine of %s; reconcile will route it", interaction_id)


async def call(
    client: aioredis.Redis,
    command: Command | dict[str, Any],
    *,
    wait_seconds: float = 4.0,
    partition: str = "default",
) -> dict[str, Any]:
    """Append a command and wait for the engine's reply ``{"ok": bool, ...}``.

    The wait holds no Redis connection: the process's one reply listener (``switchboard.replies``)
    resolves it. No answer in time raises ``EngineUnavailable`` naming the request: the command
    stays in the stream and may still be applied; its outcome is kept under that id."""
    typed = parse(command) if isinstance(command, dict) else command
    listener = replies.listener_for(client)
    request_id = listener.new_request_id()
    with listener.expect(request_id) as answer:
        await send(client, dataclasses.replace(typed, request_id=request_id, reply=True), partition=partition)
        try:
            return await asyncio.wait_for(answer, timeout=wait_seconds)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # our caller is being cancelled; the listener stopping lands below
        except TimeoutError:
            pass
    raise EngineUnavailable("the routing engine did not answer in time", request_id)


async def reply(client: aioredis.Redis, request_id: str, body: dict[str, Any]) -> None:
    await replies.deliver(client, request_id, body)


async def reply_many(client: aioredis.Redis, answers: list[tuple[str, dict[str, Any]]]) -> None:
    await replies.deliver_many(client, answers)
