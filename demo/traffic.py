"""Live demo traffic: customers who chat, call and email, so a new install shows work flowing.

Every contact goes through the real front doors, exactly as production traffic would:

* **chat**: ``POST /chat/start`` then the customer websocket ``/chat/ws`` (auth, a message or
  two, wait for an adviser; answer, leave when the bank ends it, or give up after a while). Most
  customers prove who they are, as real ones do: an app user starts with a bank-app token (signed
  with the app-token key, as the bank's app would), others ask for a one-time code by SMS and type
  it from the simulated carrier's inbox; the rest stay unverified visitors, so agents see both;
* **voice**: the carrier simulator's signed webhooks over HTTP (IVR digit, hold loop, bridge,
  hang-up; now and then "press star for a callback"); it also serves the carrier's REST API, so
  an accepted callback or an agent's own call really rings a (simulated) customer who answers;
* **email**: an SMTP conversation with the inbound listener.

Arrivals are a Poisson process at ``demo_traffic_per_minute``; callers are the demo bank's own
customers (their numbers and addresses from the deterministic demo plan), so the desktop's
customer 360 shows a real history. ``switchboard traffic`` runs it; ``switchboard run`` starts it
next to the app in demo mode. Nothing here touches the database: it is a customer, not a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import re
import smtplib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import websockets

from demo.carrier import Call, CarrierSimulator, FakeCarrierApi, PlacedCall, SentText, new_call_sid
from demo.leftovers import FILE_NAME, OpenContacts
from interactions.chat import APP_TOKEN_AUDIENCE
from switchboard.security import app_token_key, issue_token
from switchboard.settings import Settings

log = logging.getLogger(__name__)

# How demo chats say who they are: the bank's app (verified at once), a code by SMS, or nothing.
APP_SIGN_IN_SHARE = 0.6  # of the customers who have the app
SMS_CODE_SHARE = 0.6  # of the others, when the generator plays the carrier (it reads the texts)
CODE_WAIT_SECONDS = 20.0
CODE_PATTERN = re.compile(r"\b(\d{6})\b")
MAX_LIVE = 40  # contacts in flight at once; beyond this an arrival is skipped, not queued up
# How long a stopping generator's customers take to leave (chats end, callers hang up) before going.
LEAVE_SECONDS = 8.0
CHANNEL_WEIGHTS = {"chat": 0.4, "voice": 0.4, "email": 0.2}
INBOUND_NUMBER = "+442071234567"  # the bank's number the demo customers call
IVR_DIGITS = "1111222334448"  # cards most often, like a real bank's mix
CHAT_TOPICS = ("cards", "card_fraud", "mortgages", "other")
CHAT_LINES = (
    "Hi, my card was declined at the supermarket this morning.",
    "I don't recognise a payment on my statement.",
    "Can I increase my overdraft limit?",
    "I lost my card on the train, please help.",
    "How do I change the address on my account?",
    "My mortgage payment went out twice this month.",
)
EMAILS = (
    (
        "Card declined abroad",
        "Hello,\n\nMy card 4111 1111 1111 1111 was declined in Lisbon. Can you check?\n",
    ),
    ("Statement question", "Hi,\n\nThere is a payment of £42.99 I do not recognise. Who is it from?\n"),
    ("Change of address", "Dear bank,\n\nI moved last month; please update my address.\n"),
    ("Mortgage overpayment", "Hello,\n\nCan I overpay my mortgage this year without a fee?\n"),
)


@dataclass(frozen=True)
class Customer:
    name: str
    phone: str
    email: str | None
    app_id: str | None = None  # the bank-app login (an APP identity seeded by demo.bank)


@dataclass(frozen=True)
class TrafficConfig:
    base_url: str  # the app, e.g. http://127.0.0.1:8000
    smtp_host: str
    smtp_port: int
    carrier_auth_token: str | None  # no token: no voice (the app would refuse every webhook)
    per_minute: float
    carrier_api_port: int | None = None  # serve the carrier's REST API (outbound legs) here
    carrier_account_sid: str | None = None
    seed: int | None = None
    patience: tuple[float, float] = (45.0, 150.0)  # how long a customer waits before giving up
    app_token_key: str | None = None  # the key the bank's app signs chat tokens with (None: no app sign-in)
    jwt_issuer: str = "switchboard"
    # Where the generator keeps what it has open, so a killed run's contacts end on the next start.
    open_contacts_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TrafficConfig:
        # Play the carrier's REST side only when the app was pointed at our simulated carrier.
        simulated = f"http://127.0.0.1:{settings.demo_carrier_port}"
        api_port = settings.demo_carrier_port if settings.carrier_api_url == simulated else None
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        smtp_host = "127.0.0.1" if settings.smtp_host in ("0.0.0.0", "::") else settings.smtp_host
        return cls(
            base_url=settings.public_base_url or f"http://{host}:{settings.port}",
            smtp_host=smtp_host,
            smtp_port=settings.smtp_port,
            carrier_auth_token=settings.carrier_auth_token,
            per_minute=settings.demo_traffic_per_minute,
            carrier_api_port=api_port,
            carrier_account_sid=settings.carrier_account_sid,
            app_token_key=app_token_key(settings),
            jwt_issuer=settings.jwt_issuer,
            open_contacts_file=settings.data_dir / FILE_NAME,
        )


def demo_customers() -> list[Customer]:
    """The demo bank's customers (the same deterministic plan the seed used), so contacts are recognised."""
    from demo.bank import build_demo_plan

    plan = build_demo_plan()
    return [
        Customer(c.display_name, c.phone, c.email, c.app_id) for c in plan.customers if not c.do_not_contact
    ]


class TrafficGenerator:
    def __init__(self, config: TrafficConfig, *, customers: list[Customer] | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.customers = customers or demo_customers()
        self.started: dict[str, int] = {"chat": 0, "voice": 0, "email": 0}
        self.failed: dict[str, int] = {"chat": 0, "voice": 0, "email": 0}
        self._live: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None
        self._sim: CarrierSimulator | None = None
        self._carrier: FakeCarrierApi | None = None  # while it runs: the SMS codes the app sends land here
        self.proofs = {"app": 0, "sms": 0, "none": 0}  # how chats set out to say who they are
        self.verified = {"app": 0, "sms": 0}  # and how many got there
        self.ready = asyncio.Event()  # set once the app answers and the carrier (if any) serves
        self.open = OpenContacts(config.open_contacts_file)
        self.leftovers_ended = 0  # contacts a previous run left open, ended at this start

    @property
    def channels(self) -> list[str]:
        return [c for c in CHANNEL_WEIGHTS if c != "voice" or self.config.carrier_auth_token]

    # -------------------------------------------------------------- the loop

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        carrier: FakeCarrierApi | None = None
        async with httpx.AsyncClient(timeout=15) as http:
            self._http = http
            if self.config.carrier_auth_token:
                self._sim = CarrierSimulator(
                    http, auth_token=self.config.carrier_auth_token, base_url=self.config.base_url
                )
                if self.config.carrier_api_port is not None:
                    carrier = FakeCarrierApi(
                        account_sid=self.config.carrier_account_sid or "",
                        auth_token=self.config.carrier_auth_token,
                        on_call=self._callee,
                    )
                    await carrier.start(port=self.config.carrier_api_port)
                    self._carrier = carrier
                    self._sim.api = carrier  # callers join their conferences at the same fake carrier
            try:
                await self._wait_for_app(stop)
                await self._end_leftovers()
                self.ready.set()
                log.info(
                    "demo traffic: about %.1f contacts a minute (%s)",
                    self.config.per_minute,
                    ", ".join(self.channels),
                )
                while not stop.is_set():
                    if self.config.per_minute <= 0:
                        await stop.wait()
                        break
                    gap = self.rng.expovariate(self.config.per_minute / 60.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), gap)
                        break
                    self.arrive()
            finally:
                for task in list(self._live):
                    task.cancel()
                await asyncio.gather(*self._live, return_exceptions=True)
                if carrier is not None:
                    self._carrier = None
                    await carrier.stop()

    async def _wait_for_app(self, stop: asyncio.Event) -> None:
        assert self._http is not None
        while not stop.is_set():
            try:
                if (await self._http.get(f"{self.config.base_url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)

    async def _end_leftovers(self) -> None:
        """End what a previous run left open (killed, or its app stopped first), as its customers
        would: a chat is left, a call hung up. Tried once each; the app is up, so a failure here
        (a chat whose token no longer works) would fail again."""
        self.open = OpenContacts.load(self.config.open_contacts_file)
        for key, request in list(self.open.starts.items()):
            # The same key and body: the app answers the chat it started (with a new token).
            with contextlib.suppress(Exception):
                started = await asyncio.wait_for(self._start_chat(key, request), LEAVE_SECONDS)
                if started.is_success:
                    chat = started.json()
                    self.open.add_chat(chat["interaction_id"], chat["token"])
            self.open.end_start(key)
        for interaction_id, token in list(self.open.chats.items()):
            with contextlib.suppress(Exception):
                chat = {"interaction_id": interaction_id, "token": token}
                await asyncio.wait_for(self._leave_chat(chat), LEAVE_SECONDS)
                self.leftovers_ended += 1
            self.open.end_chat(interaction_id)
        for call_sid, parties in list(self.open.calls.items()):
            if self._sim is not None:
                # Its sequence numbers continue past any the killed run sent for this call.
                call = Call(call_sid, parties["caller"], parties["to"], sequence=itertools.count(1000))
                with contextlib.suppress(Exception):
                    (await asyncio.wait_for(self._sim.hang_up(call), LEAVE_SECONDS)).raise_for_status()
                    self.leftovers_ended += 1
            self.open.end_call(call_sid)
        if self.leftovers_ended:
            log.info("demo traffic: ended %d contacts a previous run left open", self.leftovers_ended)

    def arrive(self, channel: str | None = None) -> None:
        """One new customer contact (a random channel unless given)."""
        if len(self._live) >= MAX_LIVE:
            return
        channels = self.channels
        channel = channel or self.rng.choices(channels, [CHANNEL_WEIGHTS[c] for c in channels])[0]
        customer = self.rng.choice(self.customers)
        run: Callable[[Customer], Awaitable[None]] = {
            "chat": self.chat,
            "voice": self.call,
            "email": self.email,
        }[channel]
        self.started[channel] += 1
        task = asyncio.create_task(self._guard(channel, run(customer)))
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def _guard(self, channel: str, work: Awaitable[None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one customer's trouble never stops the traffic
            self.failed[channel] += 1
            log.warning("demo %s contact failed: %r", channel, exc)

    def _patience(self) -> float:
        return self.rng.uniform(*self.config.patience)

    # -------------------------------------------------------------- chat

    async def chat(self, customer: Customer) -> None:
        assert self._http is not None
        base = self.config.base_url
        proof = self._proof(customer)
        self.proofs[proof or "none"] += 1
        request: dict[str, Any] = {"name": customer.name, "topic": self.rng.choice(CHAT_TOPICS)}
        if proof == "app":
            request["app_token"] = self._app_token(customer)
        elif proof == "sms":
            request["contact"] = customer.phone
        else:
            request["contact"] = (
                customer.email if customer.email and self.rng.random() < 0.5 else customer.phone
            )
        # On file before it is sent: a generator killed before the answer arrives has still
        # started a chat, and its successor finds it again by replaying this key (see _end_leftovers).
        key = uuid.uuid4().hex
        self.open.add_start(key, request)
        start = asyncio.ensure_future(self._start_chat(key, request))
        try:
            # Shielded: a stop that arrives while the chat is being opened must still learn its id
            # and leave it, or it would wait in the queue as a ghost (the app already created it).
            started = await asyncio.shield(start)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                started = await asyncio.wait_for(start, 5)
                if started.is_success:
                    await self._leave_or_remember(started.json())
                self.open.end_start(key)
            raise
        self.open.end_start(key)
        started.raise_for_status()
        chat = started.json()
        self.open.add_chat(chat["interaction_id"], chat["token"])
        if proof == "app":
            self.verified["app"] += 1
        try:
            async with websockets.connect(self._chat_ws_url(), additional_headers={"Origin": base}) as ws:
                await self._converse(ws, chat, customer, verify_by_sms=proof == "sms")
        except asyncio.CancelledError:
            # The generator is stopping: leave the chat, so no ghost waits in the queue next run.
            # On a socket of its own: the stop may have come before this one was even authorised.
            await self._leave_or_remember(chat)
            raise
        self.open.end_chat(chat["interaction_id"])

    async def _start_chat(self, key: str, request: dict[str, Any]) -> httpx.Response:
        assert self._http is not None
        base = self.config.base_url
        headers = {"Origin": base, "Idempotency-Key": key}
        return await self._http.post(f"{base}/chat/start", json=request, headers=headers)

    async def _leave_or_remember(self, chat: dict[str, Any]) -> None:
        """Leave the chat now; if the app cannot be told, it stays on file for the next start."""
        self.open.add_chat(chat["interaction_id"], chat["token"])
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._leave_chat(chat), LEAVE_SECONDS)
            self.open.end_chat(chat["interaction_id"])

    def _proof(self, customer: Customer) -> str | None:
        """How this customer proves who they are: ``app``, ``sms`` or None (stays unverified)."""
        if customer.app_id and self.config.app_token_key and self.rng.random() < APP_SIGN_IN_SHARE:
            return "app"
        if self._carrier is not None and self.rng.random() < SMS_CODE_SHARE:
            return "sms"
        return None

    def _app_token(self, customer: Customer) -> str:
        """What the bank's app would hand its signed-in user for the chat window."""
        assert customer.app_id and self.config.app_token_key
        return issue_token(
            subject=customer.app_id,
            role="customer",
            secret=self.config.app_token_key,
            issuer=self.config.jwt_issuer,
            audience=APP_TOKEN_AUDIENCE,
            ttl=timedelta(minutes=5),
        )

    async def _verify_by_sms(self, chat: dict[str, Any], customer: Customer) -> None:
        """Ask for a one-time code, read it off the (simulated) phone, type it in. A code that
        never comes leaves the customer chatting unverified, as a real one would."""
        assert self._http is not None and self._carrier is not None
        base = self.config.base_url
        url = f"{base}/chat/{chat['interaction_id']}/verify"
        headers = {"Origin": base, "X-Chat-Token": chat["token"]}
        (await self._http.post(f"{url}/send", headers=headers)).raise_for_status()
        text = await self._text_to(customer.phone)
        found = CODE_PATTERN.search(text.body) if text else None
        if found is None:
            log.info("demo chat: no verification code reached %s; chatting unverified", customer.name)
            return
        (await self._http.post(url, json={"code": found.group(1)}, headers=headers)).raise_for_status()
        self.verified["sms"] += 1

    async def _text_to(self, phone: str) -> SentText | None:
        """The next SMS the carrier took for ``phone`` (removed from its inbox), or None in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CODE_WAIT_SECONDS
        while (carrier := self._carrier) is not None and loop.time() < deadline:
            for text in carrier.texts:
                if text.to == phone:
                    carrier.texts.remove(text)
                    return text
            await asyncio.sleep(0.2)
        return None

    def _chat_ws_url(self) -> str:
        base = self.config.base_url
        return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/chat/ws"

    async def _leave_chat(self, chat: dict[str, Any]) -> None:
        """End the chat as its customer, on a socket of its own (opened just for that)."""
        headers = {"Origin": self.config.base_url}
        async with websockets.connect(self._chat_ws_url(), additional_headers=headers) as ws:
            auth = {"type": "auth", "interaction_id": chat["interaction_id"], "token": chat["token"]}
            await ws.send(json.dumps(auth))
            await self._leave(ws)

    @staticmethod
    async def _leave(ws: Any) -> None:
        """Say "end" and stay until the app confirms the chat ended: a socket closed right after
        sending may be torn down before the app has read the message."""
        await ws.send(json.dumps({"type": "end"}))
        while json.loads(await ws.recv()).get("type") != "ended":
            pass

    async def _converse(
        self, ws: Any, chat: dict[str, Any], customer: Customer, *, verify_by_sms: bool = False
    ) -> None:
        await ws.send(
            json.dumps({"type": "auth", "interaction_id": chat["interaction_id"], "token": chat["token"]})
        )
        await ws.send(json.dumps({"type": "message", "body": self.rng.choice(CHAT_LINES)}))
        if verify_by_sms:  # while waiting, as the chat page offers it
            await self._verify_by_sms(chat, customer)
        if customer.email and self.rng.random() < 0.2:
            await ws.send(json.dumps({"type": "transcript", "email": customer.email}))
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._patience()
        joined = False
        while True:
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                await ws.send(json.dumps({"type": "end"}))  # waited (or talked) long enough
                return
            try:
                raw = await asyncio.wait_for(ws.recv(), min(remaining, 20.0))
            except TimeoutError:
                await ws.send(json.dumps({"type": "ping"}))
                continue
            message = json.loads(raw)
            if message.get("type") == "ended":
                return
            if message.get("type") == "status" and message.get("agent_joined") and not joined:
                joined = True
                give_up_at = loop.time() + self.rng.uniform(60, 180)  # a conversation now
            elif message.get("type") == "message" and message.get("sender") == "agent":
                await asyncio.sleep(self.rng.uniform(2, 6))
                reply = self.rng.choice(
                    ("Thank you.", "Yes, that's right.", "OK, I'll wait.", "Great, thanks!")
                )
                await ws.send(json.dumps({"type": "message", "body": reply}))

    # -------------------------------------------------------------- voice

    async def call(self, customer: Customer) -> None:
        sim = self._sim
        assert sim is not None
        call_sid = new_call_sid()  # on file before the carrier rings the app: a kill mid-setup
        self.open.add_call(call_sid, caller=customer.phone, to=INBOUND_NUMBER)
        ringing = asyncio.ensure_future(sim.incoming(customer.phone, to=INBOUND_NUMBER, call_sid=call_sid))
        try:
            call = await asyncio.shield(ringing)  # as for chats: a stop mid-setup still hangs up
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sim.hang_up(await asyncio.wait_for(ringing, 5)), LEAVE_SECONDS)
            raise
        call.last.raise_for_status()  # type: ignore[union-attr]
        try:
            await self._on_the_line(sim, call)
        except asyncio.CancelledError:
            # The generator is stopping: hang up, as the carrier would report a caller leaving.
            with contextlib.suppress(Exception):
                (await asyncio.wait_for(sim.hang_up(call), LEAVE_SECONDS)).raise_for_status()
                self.open.end_call(call.call_sid)
            raise
        self.open.end_call(call.call_sid)

    async def _on_the_line(self, sim: CarrierSimulator, call: Call) -> None:
        (await sim.press(call, self.rng.choice(IVR_DIGITS))).raise_for_status()
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._patience()
        asked_callback = self.rng.random() < 0.15
        while not call.bridged:
            if call.find("Hangup") is not None:
                return  # the bank ended it (e.g. after a callback was booked)
            if loop.time() >= give_up_at:
                await sim.hang_up(call)
                return
            await asyncio.sleep(self.rng.uniform(2.0, 4.0))  # one turn of hold music
            if asked_callback and call.find("Gather") is not None and self.rng.random() < 0.3:
                await sim.press(call, "*")
                await sim.hang_up(call)
                return
            (await sim.wait(call)).raise_for_status()
        await sim.status(call, "in-progress")
        await asyncio.sleep(self.rng.uniform(20, 90))  # talking to the adviser
        await sim.hang_up(call)

    async def _callee(self, placed: PlacedCall) -> None:
        """A customer being rung by the bank (callback, agent's call): usually answers, talks, hangs up."""
        sim = self._sim
        assert sim is not None
        leg = sim.leg(placed)
        await asyncio.sleep(self.rng.uniform(0.5, 1.5))
        await sim.status(leg, "ringing")
        await asyncio.sleep(self.rng.uniform(2, 6))
        if self.rng.random() < 0.15:
            await sim.status(leg, "no-answer")
            return
        await sim.answer(leg, placed)
        await sim.status(leg, "in-progress")
        await asyncio.sleep(self.rng.uniform(20, 90))
        await sim.hang_up(leg)

    # -------------------------------------------------------------- email

    async def email(self, customer: Customer) -> None:
        address = customer.email or f"{customer.phone.lstrip('+')}@sms-gateway.example"
        subject, body = self.rng.choice(EMAILS)
        message = EmailMessage()
        message["From"] = f"{customer.name} <{address}>"
        message["To"] = "support@switchboard.example"
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="mail.example.net")
        message.set_content(body + f"\n{customer.name}\n")
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        await asyncio.to_thread(self._smtp_send, address, raw)

    def _smtp_send(self, sender: str, raw: bytes) -> None:
        with smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=15) as smtp:
            smtp.sendmail(sender, ["support@switchboard.example"], raw)


async def run_traffic(settings: Settings) -> None:
    """``switchboard traffic``: generate demo traffic until SIGTERM/SIGINT."""
    import signal

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per simulated request drowns the rest
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    generator = TrafficGenerator(TrafficConfig.from_settings(settings))
    await generator.run(stop=stop)
    log.info(
        "demo traffic stopped: started %s, failed %s, chats verified %s",
        generator.started,
        generator.failed,
        generator.verified,
    )
