"""Live call control: hold, resume and hang up a call that is bridged to an agent.

The carrier owns the live call, so these are requests to it (DESIGN: the desktop never talks to
a carrier; it calls ``call_control(settings)`` and this interface). A Twilio-compatible carrier
changes a live call through its REST API, ``POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json``:
new TwiML for the caller's leg (hold audio; or a fresh ``<Dial>`` to the agent to resume), or
``Status=completed`` to hang up. Redirecting the caller's leg ends the agent's ``<Dial>`` leg, so
"resume" rings the agent's device again; a conference-based hold would keep it up, at the cost
of a conference per call.

The caller of these functions must hold no database transaction (the request waits on HTTP).
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Protocol

import httpx

from interactions.voice.adapter import Bridge
from interactions.voice.twilio import PREFIX, TwilioAdapter
from switchboard.errors import ServiceUnavailable
from switchboard.settings import Settings

TIMEOUT_SECONDS = 5.0
HOLD_MESSAGE = "Please hold. Your adviser will be right back."
RESUME_MESSAGE = "Thank you for holding."


class CallControl(Protocol):
    """What the desktop may ask of the carrier for a call in progress."""

    provider: str

    async def hold(self, *, call_sid: str) -> None: ...

    async def resume(self, *, call_sid: str, agent_id: uuid.UUID) -> None: ...

    async def hang_up(self, *, call_sid: str) -> None: ...

    async def return_to_flow(self, *, call_sid: str) -> None: ...


class TwilioCallControl:
    provider = "twilio"

    def __init__(
        self,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        adapter: TwilioAdapter,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api = api_url.rstrip("/")
        self._sid = account_sid
        self._token = auth_token
        self._adapter = adapter
        self._base_url = base_url.rstrip("/")
        self._transport = transport

    def hold_twiml(self) -> str:
        root = ET.Element("Response")
        ET.SubElement(root, "Say").text = HOLD_MESSAGE
        ET.SubElement(root, "Play", loop="0").text = self._adapter.hold_audio_url  # until redirected
        return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")

    async def hold(self, *, call_sid: str) -> None:
        await self._update(call_sid, {"Twiml": self.hold_twiml()})

    async def resume(self, *, call_sid: str, agent_id: uuid.UUID) -> None:
        twiml = self._adapter.render(
            Bridge(agent_id=agent_id, announcement=RESUME_MESSAGE), base_url=self._base_url
        )
        await self._update(call_sid, {"Twiml": twiml})

    async def hang_up(self, *, call_sid: str) -> None:
        await self._update(call_sid, {"Status": "completed"})

    async def return_to_flow(self, *, call_sid: str) -> None:
        """Back to the hold loop (``/wait``), which bridges to whoever holds the call next."""
        root = ET.Element("Response")
        ET.SubElement(root, "Redirect", method="POST").text = f"{self._base_url}{PREFIX}/wait"
        twiml = '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")
        await self._update(call_sid, {"Twiml": twiml})

    async def _update(self, call_sid: str, data: dict[str, str]) -> None:
        url = f"{self._api}/2010-04-01/Accounts/{self._sid}/Calls/{call_sid}.json"
        try:
            async with httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, transport=self._transport, follow_redirects=False
            ) as client:
                response = await client.post(url, data=data, auth=(self._sid, self._token))
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"The carrier did not answer ({exc}); the call is unchanged") from exc
        if not response.is_success:
            raise ServiceUnavailable(
                f"The carrier refused the change (HTTP {response.status_code}); the call is unchanged"
            )


def call_control(settings: Settings, *, base_url: str) -> CallControl:
    """The configured carrier's call control; 503 when no carrier REST API is configured."""
    if not (settings.carrier_api_url and settings.carrier_account_sid and settings.carrier_auth_token):
        raise ServiceUnavailable(
            "Call control needs SWITCHBOARD_CARRIER_API_URL, SWITCHBOARD_CARRIER_ACCOUNT_SID and "
            "SWITCHBOARD_CARRIER_AUTH_TOKEN"
        )
    adapter = TwilioAdapter(settings.carrier_auth_token, hold_audio_url=settings.voice_hold_audio_url)
    return TwilioCallControl(
        api_url=settings.carrier_api_url,
        account_sid=settings.carrier_account_sid,
        auth_token=settings.carrier_auth_token,
        adapter=adapter,
        base_url=settings.public_base_url or base_url,
    )
