"""Live demo traffic: customers who chat, call and email, so a new install shows work flowing.

Every contact goes through the real front doors, exactly as production traffic would:

* **chat**: ``POST /chat/start`` then the customer websocket ``/chat/ws`` (auth, a message or
  two, wait for an adviser; answer, leave when the bank ends it, or give up after a while);
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
import json
import logging
import random
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import websockets

from demo.carrier import Call, CarrierSimulator, FakeCarrierApi, PlacedCall
from switchboard.settings import Settings

log = logging.getLogger(__name__)

MAX_LIVE = 40  # contacts in flight at once; beyond this an arrival is skipped, not queued up
# How long a stopping generator's customers take to leave (chats end, callers hang up) before going.
LEAVE_SECONDS = 8.0
CHANNEL_WEIGHTS = {"chat": 0.4, "voice": 0.4, "email": 0.2}
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
        )


def demo_customers() -> list[Customer]:
    """The demo bank's customers (the same deterministic plan the seed used), so contacts are recognised."""
    from demo.bank import build_demo_plan

    plan = build_demo_plan()
    return [Customer(c.display_name, c.phone, c.email) for c in plan.customers if not c.do_not_contact]


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
            try:
                await self._wait_for_app(stop)
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
        contact = customer.email if customer.email and self.rng.random() < 0.5 else customer.phone
        start = asyncio.ensure_future(
            self._http.post(
                f"{base}/chat/start",
                json={"name": customer.name, "contact": contact, "topic": self.rng.choice(CHAT_TOPICS)},
                headers={"Origin": base},
            )
        )
        try:
            # Shielded: a stop that arrives while the chat is being opened must still learn its id
            # and leave it, or it would wait in the queue as a ghost (the app already created it).
            started = await asyncio.shield(start)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                started = await asyncio.wait_for(start, 5)
                if started.is_success:
                    await asyncio.wait_for(self._leave_chat(started.json()), LEAVE_SECONDS)
            raise
        started.raise_for_status()
        chat = started.json()
        async with websockets.connect(self._chat_ws_url(), additional_headers={"Origin": base}) as ws:
            try:
                await self._converse(ws, chat, customer)
            except asyncio.CancelledError:
                # The generator is stopping: leave the chat, so no ghost waits in the queue next run.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._leave(ws), LEAVE_SECONDS)
                raise

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

    async def _converse(self, ws: Any, chat: dict[str, Any], customer: Customer) -> None:
        await ws.send(
            json.dumps({"type": "auth", "interaction_id": chat["interaction_id"], "token": chat["token"]})
        )
        await ws.send(json.dumps({"type": "message", "body": self.rng.choice(CHAT_LINES)}))
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
        ringing = asyncio.ensure_future(sim.incoming(customer.phone))
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
                await asyncio.wait_for(sim.hang_up(call), LEAVE_SECONDS)
            raise

    async def _on_the_line(self, sim: CarrierSimulator, call: Call) -> None:
        (await sim.press(call, self.rng.choice(IVR_DIGITS))).raise_for_status()
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._patience()
        asked_callback = self.rng.random() < 0.15
        while call.agent_client is None:
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
    log.info("demo traffic stopped: started %s, failed %s", generator.started, generator.failed)
