"""A carrier simulator: plays Twilio's part over HTTP, with correctly signed webhooks.

It follows the TwiML the app answers (the ``<Gather action>`` and ``<Redirect>`` URLs), so a
test or the demo traffic generator exercises exactly what a real carrier would. Use it with any
``httpx.AsyncClient`` (an ASGI client in tests, a network client against a running server)::

    sim = CarrierSimulator(client, auth_token=token, base_url="http://127.0.0.1:8000")
    call = await sim.incoming("+447911123456")
    await sim.press(call, "1")          # IVR: cards
    await sim.wait(call)                # hold loop; Call.bridged (its conference) once bridged
    await sim.hang_up(call)             # status callback "completed"

An agent's device that does not answer (``FakeCarrierApi.device_does_not_answer``) leaves the
conference unanswered; ``FakeCarrierApi.deliver_leg_callbacks`` then posts its status callback
("completed" with CallStatus no-answer) as the carrier does when the ring timeout passes, and
``sim.redirected(call)`` plays the caller's leg on from the TwiML the app gave it meanwhile.

``python -m demo.carrier --calls 5`` drives demo traffic into a running app.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import itertools
import random
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from interactions.voice.twilio import FORM, PREFIX, SIGNATURE_HEADER, compute_signature


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


@dataclass
class Call:
    call_sid: str
    caller: str
    to: str
    last: httpx.Response | None = None
    direction: str = "inbound"  # "outbound-api" for a leg placed through the REST API
    sequence: itertools.count = field(default_factory=itertools.count)

    @property
    def twiml(self) -> ET.Element | None:
        if self.last is None or not self.last.text.strip():
            return None
        return ET.fromstring(self.last.text)

    def find(self, path: str) -> ET.Element | None:
        root = self.twiml
        return None if root is None else root.find(path)

    @property
    def agent_client(self) -> str | None:
        """The agent device the call is bridged to directly (``<Dial><Client>``), if it is."""
        client = self.find("Dial/Client")
        return client.text if client is not None else None

    @property
    def conference(self) -> str | None:
        """The conference the call joins (``<Dial><Conference>``), if it does."""
        room = self.find("Dial/Conference")
        return room.text if room is not None else None

    @property
    def bridged(self) -> bool:
        """Bridged to an agent, either way."""
        return self.agent_client is not None or self.conference is not None

    @property
    def said(self) -> str:
        root = self.twiml
        return " ".join(e.text or "" for e in root.iter("Say")) if root is not None else ""


class CarrierSimulator:
    """The callers' side. Given the carrier's REST peer (``api``), a caller whose TwiML says
    ``<Dial><Conference>`` joins that conference there, as the carrier would."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        auth_token: str,
        base_url: str,
        api: FakeCarrierApi | None = None,
    ) -> None:
        self.client = client
        self.auth_token = auth_token
        self.base_url = base_url.rstrip("/")
        self.api = api

    def _follow(self, call: Call, response: httpx.Response) -> httpx.Response:
        call.last = response
        room = call.find("Dial/Conference")
        if self.api is not None and room is not None and room.text:
            self.api.join(
                call.call_sid,
                room.text,
                label=room.attrib.get("participantLabel"),
                end_conference_on_exit=room.attrib.get("endConferenceOnExit") == "true",
            )
        return response

    # -------------------------------------------------------------- raw webhooks

    def signed(self, url: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a webhook exactly as the carrier would send it."""
        signature = compute_signature(self.auth_token, url, list(params.items()))
        return urlencode(params).encode(), {"Content-Type": FORM, SIGNATURE_HEADER: signature}

    async def post(self, url: str, params: dict[str, str], *, signature: str | None = None) -> httpx.Response:
        """POST a webhook to an absolute URL; ``signature`` overrides the real one (to test refusal)."""
        body, headers = self.signed(url, params)
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return await self.client.post(url, content=body, headers=headers)

    def url(self, path: str) -> str:
        return f"{self.base_url}{PREFIX}/{path}"

    @staticmethod
    def params(call: Call, **extra: str) -> dict[str, str]:
        return {
            "CallSid": call.call_sid,
            "AccountSid": "AC" + "0" * 32,
            "From": call.caller,
            "Caller": call.caller,
            "To": call.to,
            "Direction": call.direction,
            **extra,
        }

    # -------------------------------------------------------------- a caller's actions

    async def incoming(self, caller: str, *, to: str = "+442071234567", call_sid: str | None = None) -> Call:
        call = Call(call_sid=call_sid or new_call_sid(), caller=caller, to=to)
        call.last = await self.post(self.url("incoming"), self.params(call, CallStatus="ringing"))
        return call

    async def press(self, call: Call, digits: str) -> httpx.Response:
        """Key presses into the current <Gather> (the menu, or the hold loop's callback offer)."""
        gather = call.find("Gather")
        if gather is None:
            raise AssertionError(f"the call is not gathering digits: {call.last and call.last.text}")
        return self._follow(call, await self.post(gather.attrib["action"], self.params(call, Digits=digits)))

    async def silence(self, call: Call) -> httpx.Response:
        """No key pressed: the carrier falls through to the <Redirect>."""
        return await self.follow_redirect(call)

    async def follow_redirect(self, call: Call) -> httpx.Response:
        redirect = call.find("Redirect")
        if redirect is None or not redirect.text:
            raise AssertionError(f"no <Redirect> to follow: {call.last and call.last.text}")
        return self._follow(call, await self.post(redirect.text, self.params(call, CallStatus="in-progress")))

    async def wait(self, call: Call) -> httpx.Response:
        """One turn of the hold loop."""
        return await self.follow_redirect(call)

    async def status(self, call: Call, status: str) -> httpx.Response:
        params = self.params(
            call,
            CallStatus=status,
            SequenceNumber=str(next(call.sequence)),
            CallbackSource="call-progress-events",
        )
        return await self.post(self.url("status"), params)

    async def redirected(self, call: Call) -> httpx.Response:
        """The app changed the caller's live call (``return_to_flow``: new TwiML, the leg leaves
        its conference): the carrier runs that TwiML, whose ``<Redirect>`` it follows."""
        if self.api is None:
            raise AssertionError("no carrier API: nobody could change the call")
        twiml = next(
            (u.twiml for u in reversed(self.api.updates) if u.call_sid == call.call_sid and u.twiml), None
        )
        if twiml is None:
            raise AssertionError(f"the app never changed call {call.call_sid}")
        call.last = httpx.Response(200, text=twiml)
        return await self.follow_redirect(call)

    async def hang_up(self, call: Call) -> httpx.Response:
        if self.api is not None:
            self.api.leave(call.call_sid)
        return await self.status(call, "completed")

    # -------------------------------------------------------------- an outbound leg's callee

    def leg(self, placed: PlacedCall) -> Call:
        """The call the app asked the carrier to place, as the carrier sees it."""
        return Call(call_sid=placed.call_sid, caller=placed.from_, to=placed.to, direction="outbound-api")

    async def answer(self, call: Call, placed: PlacedCall) -> httpx.Response:
        """The customer picks up: the carrier fetches the leg's Url (TwiML: the bridge to the agent)."""
        return self._follow(call, await self.post(placed.url, self.params(call, CallStatus="in-progress")))


# ------------------------------------------------------------------ the carrier's REST API


@dataclass(frozen=True)
class CallUpdate:
    """A change to a live call (``POST .../Calls/{CallSid}.json``): new TwiML, or a status."""

    call_sid: str
    twiml: str | None
    status: str | None


@dataclass
class Participant:
    """A leg in a conference, as the carrier keeps it (the Participant resource's fields)."""

    call_sid: str
    label: str | None
    to: str | None = None
    status: str = "connected"  # "ringing" until a device that does not answer gives up
    muted: bool = False
    hold: bool = False
    hold_url: str | None = None
    end_conference_on_exit: bool = False
    announcements: list[str] = field(default_factory=list)

    def resource(self, account_sid: str, conference_sid: str) -> dict[str, Any]:
        return {
            "account_sid": account_sid,
            "call_sid": self.call_sid,
            "conference_sid": conference_sid,
            "label": self.label,
            "muted": self.muted,
            "hold": self.hold,
            "end_conference_on_exit": self.end_conference_on_exit,
            "status": self.status,
        }


@dataclass
class FakeConference:
    sid: str
    friendly_name: str
    status: str = "in-progress"
    participants: dict[str, Participant] = field(default_factory=dict)


@dataclass(frozen=True)
class ParticipantUpdate:
    """A change to a conference participant (``POST .../Participants/{CallSid}.json``)."""

    conference_sid: str
    call_sid: str
    form: dict[str, str]


@dataclass(frozen=True)
class PlacedCall:
    call_sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    status_events: tuple[str, ...]


@dataclass(frozen=True)
class LegCallback:
    """A status callback the carrier owes the app for a participant it dialled (``StatusCallback``
    of the add): delivered by ``FakeCarrierApi.deliver_leg_callbacks``, signed as the carrier
    signs it; ``CallStatus`` is the leg's (in-progress when answered, no-answer, busy, ...)."""

    url: str
    params: dict[str, str]


@dataclass(frozen=True)
class SentText:
    """An SMS sent through ``POST .../Messages.json`` (chat verification codes)."""

    sid: str
    to: str
    from_: str
    body: str


class FakeCarrierApi:
    """The carrier's REST "create call" (``POST /2010-04-01/Accounts/{sid}/Calls.json``) over real
    HTTP: checks Basic auth like the carrier, records the call and answers its sid. ``on_call`` plays
    the callee (the demo answers, talks and hangs up through the same signed webhooks)."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        on_call: Callable[[PlacedCall], Awaitable[None]] | None = None,
        webhooks: httpx.AsyncClient | None = None,
    ) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: list[PlacedCall] = []
        self.updates: list[CallUpdate] = []  # hold / resume / hang-up from the agent desktop
        self.texts: list[SentText] = []  # SMS (one-time codes), kept instead of delivered
        self.conferences: list[FakeConference] = []  # every conference, ended ones too
        self.participant_updates: list[ParticipantUpdate] = []  # mute / hold / tones from the desktop
        self.participant_adds: list[dict[str, list[str]]] = []  # every add's form (a field may repeat)
        # How an agent's device answers being added ("client:<agent id>" -> "no-answer", "busy",
        # "failed"); absent: it answers at once.
        self.device_outcomes: dict[str, str] = {}
        self.leg_callbacks: list[LegCallback] = []  # owed, not yet delivered
        self.delivered_leg_callbacks: list[LegCallback] = []
        self.webhooks = webhooks  # how the carrier reaches the app's webhooks
        self.placed = asyncio.Event()
        self._on_call = on_call
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Calls/{call}.json", self._update, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Messages.json", self._text, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Conferences.json", self._conferences, methods=["GET"]),
                Route(
                    "/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants.json",
                    self._add_participant,
                    methods=["POST"],
                ),
                Route(
                    "/2010-04-01/Accounts/{account}/Conferences/{conference}/Participants/{participant}.json",
                    self._update_participant,
                    methods=["POST"],
                ),
            ]
        )

    # -------------------------------------------------------------- conferences

    def live_conference(self, friendly_name: str) -> FakeConference | None:
        return next(
            (c for c in self.conferences if c.friendly_name == friendly_name and c.status == "in-progress"),
            None,
        )

    def _conference_for(self, name_or_sid: str) -> FakeConference:
        """Adding a participant: by sid, or by friendly name (the live one, else a new one)."""
        by_sid = next((c for c in self.conferences if c.sid == name_or_sid), None)
        if by_sid is not None:
            return by_sid
        room = self.live_conference(name_or_sid)
        if room is None:
            room = FakeConference(sid="CF" + secrets.token_hex(16), friendly_name=name_or_sid)
            self.conferences.append(room)
        return room

    def join(
        self, call_sid: str, friendly_name: str, *, label: str | None, end_conference_on_exit: bool
    ) -> None:
        """A caller's leg runs ``<Dial><Conference>``: it joins the live conference of that name."""
        room = self._conference_for(friendly_name)
        room.participants[call_sid] = Participant(
            call_sid=call_sid, label=label, end_conference_on_exit=end_conference_on_exit
        )

    def leave(self, call_sid: str) -> None:
        """A leg left (hung up, or its TwiML changed): ``endConferenceOnExit`` ends the conference."""
        for room in self.conferences:
            gone = room.participants.pop(call_sid, None) if room.status == "in-progress" else None
            if gone is not None and (gone.end_conference_on_exit or not room.participants):
                room.status = "completed"
                room.participants.clear()

    def device_does_not_answer(self, agent_id: object, *, status: str = "no-answer") -> None:
        """The agent's device will not answer (``no-answer`` once the ring timeout passes), is
        ``busy`` or ``failed``, each time it is added; ``device_answers`` undoes it."""
        self.device_outcomes[f"client:{agent_id}"] = status

    def device_answers(self, agent_id: object) -> None:
        self.device_outcomes.pop(f"client:{agent_id}", None)

    async def deliver_leg_callbacks(self) -> list[httpx.Response]:
        """Post the status callbacks owed so far, in order, signed (the ring timeout passed)."""
        if self.webhooks is None:
            raise AssertionError("FakeCarrierApi(webhooks=...) is needed to reach the app")
        answers = []
        while self.leg_callbacks:
            callback = self.leg_callbacks.pop(0)
            answers.append(await self.post_leg_callback(callback))
            self.delivered_leg_callbacks.append(callback)
        return answers

    async def post_leg_callback(self, callback: LegCallback) -> httpx.Response:
        """One callback, as the carrier sends it (again, for a retry)."""
        assert self.webhooks is not None
        signature = compute_signature(self.auth_token, callback.url, list(callback.params.items()))
        return await self.webhooks.post(
            callback.url,
            content=urlencode(callback.params).encode(),
            headers={"Content-Type": FORM, SIGNATURE_HEADER: signature},
        )

    def _owe_callbacks(self, form: Any, leg: Participant, room: FakeConference) -> None:
        """What the carrier will report of a dialled participant: ringing, then answered (the
        device picks up) or the ending that means nobody did; only the events asked for
        (``StatusCallbackEvent``; none asked: the ending only, as the carrier does)."""
        url = str(form.get("StatusCallback") or "")
        if not url:
            return
        asked = {str(v) for v in form.getlist("StatusCallbackEvent")} or {"completed"}
        outcome = self.device_outcomes.get(leg.to or "")
        steps = [("ringing", "ringing")]
        steps.append(("completed", outcome) if outcome else ("answered", "in-progress"))
        sequence = itertools.count()
        for event, status in steps:
            if event not in asked:
                continue
            params = {
                "CallSid": leg.call_sid,
                "AccountSid": self.account_sid,
                "ConferenceSid": room.sid,
                "From": str(form.get("From") or ""),
                "To": leg.to or "",
                "Direction": "outbound-api",
                "CallStatus": status,
                "StatusCallbackEvent": event,
                "CallbackSource": "call-progress-events",
                "SequenceNumber": str(next(sequence)),
                "Timeout": str(form.get("Timeout") or ""),
            }
            self.leg_callbacks.append(LegCallback(url=url, params=params))

    def participant(self, friendly_name: str, call_sid_or_label: str) -> Participant | None:
        """A live participant, by call sid or label (as the REST API finds it)."""
        room = self.live_conference(friendly_name)
        return None if room is None else self._find(room, call_sid_or_label)

    @staticmethod
    def _find(room: FakeConference, call_sid_or_label: str) -> Participant | None:
        found = room.participants.get(call_sid_or_label)
        if found is None:
            found = next((p for p in room.participants.values() if p.label == call_sid_or_label), None)
        return found

    async def _conferences(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        name, status = request.query_params.get("FriendlyName"), request.query_params.get("Status")
        rooms = [
            {"sid": c.sid, "friendly_name": c.friendly_name, "status": c.status}
            for c in self.conferences
            if (name is None or c.friendly_name == name) and (status is None or c.status == status)
        ]
        return JSONResponse({"conferences": rooms})

    async def _add_participant(self, request: Any) -> Any:
        """Dial a participant into a conference (created if none of that name is live). The fake's
        callee (an agent's device) answers at once, unless told otherwise (``device_outcomes``):
        then it rings, and leaves the conference unanswered when its callback is owed."""
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = await request.form()
        to, from_ = str(form.get("To") or ""), str(form.get("From") or "")
        if not to or not from_:
            return JSONResponse({"code": 21201, "message": "To and From are required"}, status_code=400)
        self.participant_adds.append({k: [str(v) for v in form.getlist(k)] for k in form})
        room = self._conference_for(request.path_params["conference"])
        leg = Participant(
            call_sid=new_call_sid(),
            label=str(form.get("Label") or "") or None,
            to=to,
            muted=str(form.get("Muted") or "").lower() == "true",
            end_conference_on_exit=str(form.get("EndConferenceOnExit") or "").lower() == "true",
        )
        answers = to not in self.device_outcomes
        if answers:
            room.participants[leg.call_sid] = leg
        else:
            leg.status = "ringing"  # never joins: the leg ends unanswered, the conference goes on
        self._owe_callbacks(form, leg, room)
        return JSONResponse(leg.resource(self.account_sid, room.sid), status_code=201)

    async def _update_participant(self, request: Any) -> Any:
        """Mute, hold or announce to a live participant. The conference is named by its sid only
        (as the carrier's update does); an unknown conference or participant is a 404."""
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        sid = request.path_params["conference"]
        room = next((c for c in self.conferences if c.sid == sid and c.status == "in-progress"), None)
        leg = None if room is None else self._find(room, request.path_params["participant"])
        if room is None or leg is None:
            return JSONResponse({"code": 20404, "message": "Not found"}, status_code=404)
        form = {k: str(v) for k, v in (await request.form()).items()}
        if "Muted" in form:
            leg.muted = form["Muted"].lower() == "true"
        if "Hold" in form:
            leg.hold = form["Hold"].lower() == "true"
            leg.hold_url = form.get("HoldUrl") if leg.hold else None
        if form.get("AnnounceUrl"):
            leg.announcements.append(form["AnnounceUrl"])
        self.participant_updates.append(
            ParticipantUpdate(conference_sid=room.sid, call_sid=leg.call_sid, form=form)
        )
        return JSONResponse(leg.resource(self.account_sid, room.sid))

    def _authorised(self, request: Any) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        authorised = hmac.compare_digest(request.headers.get("authorization", ""), expected)
        return authorised and request.path_params["account"] == self.account_sid

    async def _update(self, request: Any) -> Any:
        """Modify a live call: ``Twiml`` (e.g. hold audio, a fresh bridge) or ``Status=completed``."""
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = await request.form()
        twiml, status = str(form.get("Twiml") or "") or None, str(form.get("Status") or "") or None
        if twiml is None and status not in ("completed", "canceled"):
            return JSONResponse({"code": 21220, "message": "Twiml or Status is required"}, status_code=400)
        self.updates.append(CallUpdate(call_sid=request.path_params["call"], twiml=twiml, status=status))
        self.leave(request.path_params["call"])  # new TwiML or a hang-up takes the leg out of any conference
        return JSONResponse({"sid": request.path_params["call"], "status": status or "in-progress"})

    async def _text(self, request: Any) -> Any:
        """Send an SMS: kept in ``texts`` (the demo's phones are not real)."""
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = await request.form()
        to, body = str(form.get("To") or ""), str(form.get("Body") or "")
        if not to.startswith("+") or not body:
            return JSONResponse({"code": 21604, "message": "To and Body are required"}, status_code=400)
        text = SentText(sid="SM" + new_call_sid()[2:], to=to, from_=str(form.get("From") or ""), body=body)
        self.texts.append(text)
        return JSONResponse({"sid": text.sid, "status": "queued", "to": to}, status_code=201)

    async def _create(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if not self._authorised(request):
            return JSONResponse({"code": 20003, "message": "Authenticate"}, status_code=401)
        form = await request.form()
        to, url = str(form.get("To") or ""), str(form.get("Url") or "")
        if not to.startswith("+") or not url.startswith("http"):
            return JSONResponse({"code": 21201, "message": "To and Url are required"}, status_code=400)
        placed = PlacedCall(
            call_sid=new_call_sid(),
            to=to,
            from_=str(form.get("From") or ""),
            url=url,
            status_callback=str(form.get("StatusCallback") or "") or None,
            status_events=tuple(str(v) for v in form.getlist("StatusCallbackEvent")),
        )
        self.calls.append(placed)
        self.placed.set()
        if self._on_call is not None:
            task = asyncio.create_task(self._on_call(placed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        body = {"sid": placed.call_sid, "status": "queued", "to": placed.to, "from": placed.from_}
        return JSONResponse(body, status_code=201)

    async def start(self, *, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0: any free port) in this event loop; returns the base URL."""
        import uvicorn

        config = uvicorn.Config(self.app, host=host, port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()
        return f"http://{host}:{bound[1]}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await self._serving


# ------------------------------------------------------------------ demo traffic


async def demo_traffic(base_url: str, auth_token: str, *, calls: int, seed: int = 7) -> None:
    """Callers who choose a topic, wait a little, and either stay on the line or hang up."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=10) as client:
        sim = CarrierSimulator(client, auth_token=auth_token, base_url=base_url)

        async def one(n: int) -> None:
            call = await sim.incoming(f"+447911{n:06d}")
            await sim.press(call, rng.choice("12348"))
            for _ in range(rng.randint(1, 5)):
                if call.bridged:
                    print(f"{call.call_sid}: bridged to agent ({call.conference or call.agent_client})")
                    return
                await asyncio.sleep(1)
                await sim.wait(call)
            await sim.hang_up(call)
            print(f"{call.call_sid}: caller hung up while waiting")

        await asyncio.gather(*(one(n) for n in range(calls)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--auth-token", required=True, help="the app's SWITCHBOARD_CARRIER_AUTH_TOKEN")
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(demo_traffic(args.base_url, args.auth_token, calls=args.calls))


if __name__ == "__main__":
    main()
