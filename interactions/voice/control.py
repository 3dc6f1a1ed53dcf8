"""Live call control: the conference that bridges a caller to an agent, and what the agent may do
to it (hold, resume, mute, keypad tones, hang up, hand back to the call flow).

The carrier owns the live call, so these are requests to it (DESIGN: the desktop never talks to
a carrier; it calls ``call_control(settings)`` and this interface). Like Twilio Flex, a caller and
an agent meet in a per-interaction **conference**: the caller's leg joins it by TwiML
(``<Dial><Conference>``, see ``twilio.py``) and the agent's device is added as a participant
through the REST API. Being participants is what gives the agent server-side controls that a
``<Dial><Client>`` bridge never had:

* mute/unmute: ``POST .../Conferences/{ConferenceSid}/Participants/{AgentCallSid}.json Muted=...``;
* hold/resume: ``Hold=true&HoldUrl=...`` / ``Hold=false`` on the caller's participant: the caller
  hears hold music while the agent's leg stays up (no re-ringing the agent on resume);
* keypad tones: an announcement (``AnnounceUrl``: TwiML ``<Play digits>``) to the caller's
  participant, so the tones go down the caller's leg without it leaving the conference.

Hang-up (``Status=completed``) and the return to the call flow (a ``<Redirect>`` to ``/wait``)
still change the caller's call; the caller joins with ``endConferenceOnExit``, so either ends the
conference and with it the agent's leg.

Participant updates need the conference's sid (a friendly name is only accepted when adding a
participant): it comes back when the agent is added and is kept; when it was not, it is resolved
by friendly name (``GET .../Conferences.json?FriendlyName=...&Status=in-progress``).

The caller of these functions must hold no database transaction (the request waits on HTTP).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from switchboard.errors import ServiceUnavailable
from switchboard.settings import Settings

PREFIX = "/carrier/twilio/voice"  # where the carrier's webhooks (and our TwiML links) live
TIMEOUT_SECONDS = 5.0
DIGITS = re.compile(r"[0-9*#w]{1,32}")  # keypad tones; "w" waits half a second (Twilio)
AGENT_LABEL = "agent"  # participant labels (Twilio): which leg is whose, in the carrier's own logs
CUSTOMER_LABEL = "customer"
# The agent leg's progress, reported to ``agent_leg_callback`` (Twilio's StatusCallbackEvent values):
# the ending ("completed" event: CallStatus completed, no-answer, busy, failed or canceled) is
# what frees a caller whose agent's device never answered.
AGENT_LEG_EVENTS = ("initiated", "ringing", "answered", "completed")
AGENT_LEG_PATH = "/agent-leg"


def conference_name(interaction_id: uuid.UUID) -> str:
    """One conference per interaction (a transfer's child gets its own)."""
    return f"interaction-{interaction_id}"


@dataclass(frozen=True)
class Conference:
    """A live conference: its friendly name (ours) and, once known, the carrier's sid."""

    name: str
    sid: str | None = None


@dataclass(frozen=True)
class AgentLeg:
    """The agent's device, added to the conference: its call sid is its participant id."""

    call_sid: str
    conference_sid: str | None


class CallControl(Protocol):
    """What the desktop (and the bridge) may ask of the carrier for a call in progress."""

    provider: str

    async def add_agent(
        self,
        *,
        conference: str,
        agent_id: uuid.UUID,
        caller_id: str,
        ring_seconds: int,
        status_callback: str,
    ) -> AgentLeg: ...

    async def hold(self, *, call_sid: str, conference: Conference) -> None: ...

    async def resume(self, *, call_sid: str, conference: Conference) -> None: ...

    async def mute(self, *, agent_call_sid: str, conference: Conference, muted: bool) -> None: ...

    async def hang_up(self, *, call_sid: str) -> None: ...

    async def return_to_flow(self, *, call_sid: str) -> None: ...

    async def send_digits(self, *, call_sid: str, conference: Conference, digits: str) -> None: ...


class TwilioCallControl:
    provider = "twilio"

    def __init__(
        self,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        hold_audio_url: str,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = api_url.rstrip("/")
        self._sid = account_sid
        self._token = auth_token
        self.hold_audio_url = hold_audio_url
        self._base_url = base_url.rstrip("/")
        self._transport = transport

    @property
    def _account(self) -> str:
        return f"{self._api}/2010-04-01/Accounts/{self._sid}"

    async def add_agent(
        self,
        *,
        conference: str,
        agent_id: uuid.UUID,
        caller_id: str,
        ring_seconds: int,
        status_callback: str,
    ) -> AgentLeg:
        """Ring the agent's device into the conference (created by whichever leg comes first).
        The agent leaving ends it, so the caller's ``<Dial>`` goes on to its ``<Redirect>``.

        The device rings for ``ring_seconds`` (``Timeout``); the leg's progress is posted to
        ``status_callback`` (a signed webhook of ours): a leg that ends unanswered must hand the
        caller back, or the caller waits in the conference for nobody (as Flex does)."""
        body = await self._post(
            f"{self._account}/Conferences/{conference}/Participants.json",
            [
                ("From", caller_id),
                ("To", f"client:{agent_id}"),
                ("Label", AGENT_LABEL),
                ("Beep", "false"),
                ("StartConferenceOnEnter", "true"),
                ("EndConferenceOnExit", "true"),
                ("Timeout", str(ring_seconds)),
                ("StatusCallback", status_callback),
                ("StatusCallbackMethod", "POST"),
                # Repeated, one event each (as Twilio's helper libraries send a list).
                *(("StatusCallbackEvent", event) for event in AGENT_LEG_EVENTS),
            ],
        )
        call_sid = body.get("call_sid")
        if not isinstance(call_sid, str) or not call_sid:
            raise ServiceUnavailable("The carrier added the agent but named no call; the call is unchanged")
        conference_sid = body.get("conference_sid")
        return AgentLeg(
            call_sid=call_sid, conference_sid=conference_sid if isinstance(conference_sid, str) else None
        )

    async def hold(self, *, call_sid: str, conference: Conference) -> None:
        await self._participant(
            conference, call_sid, {"Hold": "true", "HoldUrl": self.hold_audio_url, "HoldMethod": "GET"}
        )

    async def resume(self, *, call_sid: str, conference: Conference) -> None:
        await self._participant(conference, call_sid, {"Hold": "false"})

    async def mute(self, *, agent_call_sid: str, conference: Conference, muted: bool) -> None:
        await self._participant(conference, agent_call_sid, {"Muted": "true" if muted else "false"})

    async def send_digits(self, *, call_sid: str, conference: Conference, digits: str) -> None:
        """DTMF tones played to the caller's participant (an IVR the call reached, a PIN)."""
        if not DIGITS.fullmatch(digits):
            raise ValueError(f"not DTMF digits: {digits!r}")
        announce = f"{self._base_url}{PREFIX}/tones?{urlencode({'digits': digits})}"
        await self._participant(conference, call_sid, {"AnnounceUrl": announce, "AnnounceMethod": "POST"})

    async def hang_up(self, *, call_sid: str) -> None:
        await self._post(f"{self._account}/Calls/{call_sid}.json", {"Status": "completed"})

    async def return_to_flow(self, *, call_sid: str) -> None:
        """Back to the hold loop (``/wait``), which bridges to whoever holds the call next."""
        root = ET.Element("Response")
        ET.SubElement(root, "Redirect", method="POST").text = f"{self._base_url}{PREFIX}/wait"
        twiml = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
        await self._post(f"{self._account}/Calls/{call_sid}.json", {"Twiml": twiml})

    async def conference_sid(self, conference: Conference) -> str:
        """The live conference's sid: known already, or looked up by its friendly name."""
        if conference.sid:
            return conference.sid
        query = urlencode({"FriendlyName": conference.name, "Status": "in-progress"})
        body = await self._request("GET", f"{self._account}/Conferences.json?{query}", None)
        found = [c.get("sid") for c in body.get("conferences") or [] if isinstance(c, dict)]
        if not found or not isinstance(found[0], str):
            raise ServiceUnavailable(
                "The carrier has no live conference for this call; the call is unchanged"
            )
        return found[0]

    async def _participant(self, conference: Conference, call_sid: str, data: dict[str, str]) -> None:
        sid = await self.conference_sid(conference)
        await self._post(f"{self._account}/Conferences/{sid}/Participants/{call_sid}.json", data)

    async def _post(self, url: str, data: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
        return await self._request("POST", url, data)

    async def _request(
        self, method: str, url: str, data: dict[str, str] | list[tuple[str, str]] | None
    ) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, transport=self._transport, follow_redirects=False
            ) as client:
                if isinstance(data, list):  # a repeated field: the form is encoded here
                    response = await client.request(
                        method,
                        url,
                        content=urlencode(data).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                        auth=(self._sid, self._token),
                    )
                else:
                    response = await client.request(method, url, data=data, auth=(self._sid, self._token))
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The carrier did not answer ({exc}); the call is unchanged") from exc
        if not response.is_success:
            raise ServiceUnavailable(
                f"The carrier refused the change (HTTP {response.status_code}); the call is unchanged"
            )
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}


def configured(settings: Settings) -> bool:
    return bool(settings.carrier_api_url and settings.carrier_account_sid and settings.carrier_auth_token)


def call_control(settings: Settings, *, base_url: str) -> CallControl:
    """The configured carrier's call control; 503 when no carrier REST API is configured."""
    if not configured(settings):
        raise ServiceUnavailable(
            "Call control needs SWITCHBOARD_CARRIER_API_URL, SWITCHBOARD_CARRIER_ACCOUNT_SID and "
            "SWITCHBOARD_CARRIER_AUTH_TOKEN"
        )
    assert settings.carrier_api_url and settings.carrier_account_sid and settings.carrier_auth_token
    return TwilioCallControl(
        api_url=settings.carrier_api_url,
        account_sid=settings.carrier_account_sid,
        auth_token=settings.carrier_auth_token,
        hold_audio_url=settings.voice_hold_audio_url,
        base_url=settings.public_base_url or base_url,
    )
