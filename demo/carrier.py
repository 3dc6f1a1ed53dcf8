"""A carrier simulator: plays Twilio's part over HTTP, with correctly signed webhooks.

It follows the TwiML the app answers (the ``<Gather action>`` and ``<Redirect>`` URLs), so a
test or the demo traffic generator exercises exactly what a real carrier would. Use it with any
``httpx.AsyncClient`` (an ASGI client in tests, a network client against a running server)::

    sim = CarrierSimulator(client, auth_token=token, base_url="http://127.0.0.1:8000")
    call = await sim.incoming("+447911123456")
    await sim.press(call, "1")          # IVR: cards
    await sim.wait(call)                # hold loop; Call.agent_client once bridged
    await sim.hang_up(call)             # status callback "completed"

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
        """The agent device the call is bridged to (``<Dial><Client>``), if it is."""
        client = self.find("Dial/Client")
        return client.text if client is not None else None

    @property
    def said(self) -> str:
        root = self.twiml
        return " ".join(e.text or "" for e in root.iter("Say")) if root is not None else ""


class CarrierSimulator:
    def __init__(self, client: httpx.AsyncClient, *, auth_token: str, base_url: str) -> None:
        self.client = client
        self.auth_token = auth_token
        self.base_url = base_url.rstrip("/")

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
        call.last = await self.post(gather.attrib["action"], self.params(call, Digits=digits))
        return call.last

    async def silence(self, call: Call) -> httpx.Response:
        """No key pressed: the carrier falls through to the <Redirect>."""
        return await self.follow_redirect(call)

    async def follow_redirect(self, call: Call) -> httpx.Response:
        redirect = call.find("Redirect")
        if redirect is None or not redirect.text:
            raise AssertionError(f"no <Redirect> to follow: {call.last and call.last.text}")
        call.last = await self.post(redirect.text, self.params(call, CallStatus="in-progress"))
        return call.last

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

    async def hang_up(self, call: Call) -> httpx.Response:
        return await self.status(call, "completed")

    # -------------------------------------------------------------- an outbound leg's callee

    def leg(self, placed: PlacedCall) -> Call:
        """The call the app asked the carrier to place, as the carrier sees it."""
        return Call(call_sid=placed.call_sid, caller=placed.from_, to=placed.to, direction="outbound-api")

    async def answer(self, call: Call, placed: PlacedCall) -> httpx.Response:
        """The customer picks up: the carrier fetches the leg's Url (TwiML: the bridge to the agent)."""
        call.last = await self.post(placed.url, self.params(call, CallStatus="in-progress"))
        return call.last


# ------------------------------------------------------------------ the carrier's REST API


@dataclass(frozen=True)
class CallUpdate:
    """A change to a live call (``POST .../Calls/{CallSid}.json``): new TwiML, or a status."""

    call_sid: str
    twiml: str | None
    status: str | None


@dataclass(frozen=True)
class PlacedCall:
    call_sid: str
    to: str
    from_: str
    url: str
    status_callback: str | None
    status_events: tuple[str, ...]


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
    ) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: list[PlacedCall] = []
        self.updates: list[CallUpdate] = []  # hold / resume / hang-up from the agent desktop
        self.placed = asyncio.Event()
        self._on_call = on_call
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None
        self.app = Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{account}/Calls.json", self._create, methods=["POST"]),
                Route("/2010-04-01/Accounts/{account}/Calls/{call}.json", self._update, methods=["POST"]),
            ]
        )

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
        return JSONResponse({"sid": request.path_params["call"], "status": status or "in-progress"})

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
                if call.agent_client:
                    print(f"{call.call_sid}: bridged to agent {call.agent_client}")
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
